//! The `gost-operator` process: flags, JSON logs, the health/metrics endpoint, leader election
//! on a `coordination.k8s.io` Lease (every replica stays ready; only the holder runs the
//! controllers, and it stops them the moment it loses the Lease), graceful shutdown on SIGTERM
//! (not ready at once, controllers finish their reconciles, the Lease is released so another
//! replica takes over without waiting for it to expire).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kube::runtime::events::Reporter;
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio_util::sync::CancellationToken;

use crate::controller::{self, NamespaceAccess, Settings};
use crate::inject::{InjectSettings, ProxyResources};
use crate::metrics::Metrics;
use crate::render::RenderSettings;
use crate::server::{self, Health};

/// Command line of `gost-operator` (every flag also reads an environment variable).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "gost-operator",
    version,
    about = "kubegost operator: reconciles GostService and GostChain resources into sidecar config"
)]
pub struct Args {
    /// Address of the plain-HTTP endpoint: /healthz, /readyz, /metrics.
    #[arg(long, env = "KUBEGOST_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Namespace the operator runs in (its Lease lives there).
    #[arg(long, env = "POD_NAMESPACE", default_value = "kubegost-system")]
    pub namespace: String,
    /// Identity in the leader election (default: the pod name, else the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Elect a leader among the replicas; only the leader reconciles.
    #[arg(long, env = "KUBEGOST_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Name of the Lease.
    #[arg(long, env = "KUBEGOST_LEASE_NAME", default_value = "gost-operator")]
    pub lease_name: String,
    /// Namespace of the Lease (default: --namespace).
    #[arg(long, env = "KUBEGOST_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Seconds a Lease is valid after its last renewal.
    #[arg(long, default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// Seconds before expiry at which the holder renews.
    #[arg(long, default_value_t = 5)]
    pub lease_grace_seconds: u64,
    /// Reconcile only this namespace (empty: every namespace).
    #[arg(long, env = "KUBEGOST_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// ClusterRole that the operator binds to its own ServiceAccount in every namespace with a
    /// GostService (writing config Secrets, patching pods there). Empty: bind nothing (the
    /// operator already has that access).
    #[arg(long, env = "KUBEGOST_NAMESPACE_ROLE")]
    pub namespace_role: Option<String>,
    /// Name of those RoleBindings.
    #[arg(
        long,
        env = "KUBEGOST_NAMESPACE_BINDING",
        default_value = "gost-operator"
    )]
    pub namespace_binding: String,
    /// The operator's ServiceAccount (subject of those RoleBindings).
    #[arg(long, env = "SERVICE_ACCOUNT_NAME", default_value = "gost-operator")]
    pub service_account: String,
    /// Sidecar image (used to tell which injected pods run outdated settings).
    #[arg(
        long,
        env = "KUBEGOST_PROXY_IMAGE",
        default_value = "localhost/kubegost/proxy:latest"
    )]
    pub proxy_image: String,
    /// Address of the injection webhook (HTTPS, `POST /mutate`); empty: no webhook.
    #[arg(long, env = "KUBEGOST_WEBHOOK_ADDR", default_value = "[::]:9443")]
    pub webhook_addr: String,
    /// Secret (in --namespace) with the webhook's serving certificate.
    #[arg(
        long,
        env = "KUBEGOST_WEBHOOK_SECRET",
        default_value = "gost-operator-webhook-tls"
    )]
    pub webhook_secret: String,
    /// The webhook's Service (its DNS names go into the certificate).
    #[arg(
        long,
        env = "KUBEGOST_WEBHOOK_SERVICE",
        default_value = "gost-operator-webhook"
    )]
    pub webhook_service: String,
    /// MutatingWebhookConfiguration whose caBundle the leader keeps current (`self` mode).
    #[arg(long, env = "KUBEGOST_WEBHOOK_CONFIG")]
    pub webhook_config: Option<String>,
    /// `self`: the operator makes and rotates the certificate; `external`: cert-manager (or
    /// anyone) writes the Secret and the caBundle.
    #[arg(long, env = "KUBEGOST_WEBHOOK_CERT_MODE", default_value = "self", value_parser = ["self", "external"])]
    pub webhook_cert_mode: String,
    /// Validity of a serving certificate the operator issues (Go duration); a new one is issued
    /// once a third is left.
    #[arg(long, env = "KUBEGOST_WEBHOOK_CERT_VALIDITY", default_value = "2160h")]
    pub webhook_cert_validity: String,
    /// Extra names (DNS or IP) in the serving certificate, comma-separated.
    #[arg(long, env = "KUBEGOST_WEBHOOK_EXTRA_SANS", default_value = "")]
    pub webhook_extra_sans: String,
    /// Native sidecars for injected pods: `auto` (on when the API server is 1.29+), `on`, `off`.
    #[arg(long, env = "KUBEGOST_PROXY_NATIVE_SIDECARS", default_value = "auto", value_parser = ["auto", "on", "off"])]
    pub proxy_native_sidecars: String,
    /// Sidecar log level.
    #[arg(long, env = "KUBEGOST_PROXY_LOG_LEVEL")]
    pub proxy_log_level: Option<String>,
    /// Sidecar drain deadline on SIGTERM (Go duration).
    #[arg(long, env = "KUBEGOST_PROXY_DRAIN_TIMEOUT", default_value = "30s")]
    pub proxy_drain_timeout: String,
    /// Sidecar `requests.cpu` (empty: none).
    #[arg(long, env = "KUBEGOST_PROXY_CPU_REQUEST", default_value = "10m")]
    pub proxy_cpu_request: String,
    /// Sidecar `requests.memory` (empty: none).
    #[arg(long, env = "KUBEGOST_PROXY_MEMORY_REQUEST", default_value = "32Mi")]
    pub proxy_memory_request: String,
    /// Sidecar `limits.cpu` (empty: none).
    #[arg(long, env = "KUBEGOST_PROXY_CPU_LIMIT", default_value = "")]
    pub proxy_cpu_limit: String,
    /// Sidecar `limits.memory` (empty: none).
    #[arg(long, env = "KUBEGOST_PROXY_MEMORY_LIMIT", default_value = "256Mi")]
    pub proxy_memory_limit: String,
    /// Log level (`trace` … `error`) or a tracing filter such as `info,kube=warn`.
    #[arg(long, env = "KUBEGOST_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format: `json` or `text`.
    #[arg(long, env = "KUBEGOST_LOG_FORMAT", default_value = "json", value_parser = ["json", "text"])]
    pub log_format: String,
    /// Reconciles run at once, per controller.
    #[arg(long, default_value_t = 4)]
    pub concurrency: u16,
}

/// Why the operator stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The Kubernetes client could not be configured.
    #[error("kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// The health endpoint could not bind.
    #[error("--http-addr {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The Lease could not be set up.
    #[error("leader election (Lease {namespace}/{name}): {source}")]
    Lease {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// Why.
        #[source]
        source: kube_lease_manager::LeaseManagerError,
    },
    /// Signal handlers could not be installed.
    #[error("signals: {0}")]
    Signals(#[source] std::io::Error),
    /// A flag has a value that cannot be used.
    #[error("{0}")]
    Flag(String),
    /// The log filter does not parse.
    #[error("--log-level {0:?}: {1}")]
    LogLevel(String, String),
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_ref()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

impl Args {
    /// Controller settings from the flags.
    pub fn settings(&self) -> Settings {
        Settings {
            render: RenderSettings::default(),
            inject: InjectSettings {
                image: self.proxy_image.clone(),
                // `auto` is decided from the server version when the webhook starts
                native_sidecars: self.proxy_native_sidecars != "off",
                drain_timeout: self.proxy_drain_timeout.clone(),
                log_level: non_empty(&self.proxy_log_level),
                resources: ProxyResources {
                    cpu_request: non_empty(&Some(self.proxy_cpu_request.clone())),
                    memory_request: non_empty(&Some(self.proxy_memory_request.clone())),
                    cpu_limit: non_empty(&Some(self.proxy_cpu_limit.clone())),
                    memory_limit: non_empty(&Some(self.proxy_memory_limit.clone())),
                },
                ..InjectSettings::default()
            },
            watch_namespace: non_empty(&self.watch_namespace),
            namespace_access: non_empty(&self.namespace_role).map(|role| NamespaceAccess {
                binding: self.namespace_binding.clone(),
                cluster_role: role,
                sa_namespace: self.namespace.clone(),
                sa_name: self.service_account.clone(),
            }),
            concurrency: self.concurrency,
        }
    }

    /// The webhook's address, `None` when it is off.
    pub fn webhook_addr(&self) -> Result<Option<SocketAddr>, AppError> {
        let a = self.webhook_addr.trim();
        if a.is_empty() {
            return Ok(None);
        }
        crate::net::parse_addr(a).map(Some).ok_or_else(|| {
            AppError::Flag(format!(
                "--webhook-addr {a:?}: expected host:port such as [::]:9443"
            ))
        })
    }

    /// Certificate settings from the flags.
    pub fn cert_settings(&self) -> Result<crate::certs::CertSettings, AppError> {
        let validity =
            gost_config::parse_go_duration(&self.webhook_cert_validity).map_err(|e| {
                AppError::Flag(format!(
                    "--webhook-cert-validity {:?}: {e}",
                    self.webhook_cert_validity
                ))
            })?;
        if validity < Duration::from_secs(3) {
            return Err(AppError::Flag(format!(
                "--webhook-cert-validity {:?}: at least 3s",
                self.webhook_cert_validity
            )));
        }
        Ok(crate::certs::CertSettings {
            namespace: self.namespace.clone(),
            secret: self.webhook_secret.clone(),
            service: self.webhook_service.clone(),
            webhook_config: non_empty(&self.webhook_config),
            self_managed: self.webhook_cert_mode == "self",
            validity,
            extra_sans: self
                .webhook_extra_sans
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        })
    }

    fn identity(&self) -> String {
        non_empty(&self.identity).unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "gost-operator".into());
            format!("{host}-{:08x}", rand::random::<u32>())
        })
    }
}

/// Installs the tracing subscriber (JSON by default).
pub fn init_logging(args: &Args) -> Result<(), AppError> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .map_err(|e| AppError::LogLevel(args.log_level.clone(), e.to_string()))?;
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if args.log_format == "text" {
        b.try_init()
    } else {
        b.json().flatten_event(true).try_init()
    };
    Ok(())
}

/// Cancels the returned token on SIGTERM or SIGINT.
fn on_signals() -> Result<CancellationToken, AppError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(AppError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(AppError::Signals)?;
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
        t.cancel();
    });
    Ok(token)
}

/// Runs the operator until SIGTERM/SIGINT.
pub async fn run(args: Args) -> Result<(), AppError> {
    let shutdown = on_signals()?;
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health {
        ready: Default::default(),
        metrics: Arc::clone(&metrics),
    });
    let http_stop = CancellationToken::new();
    let http = server::serve(args.http_addr, Arc::clone(&health), http_stop.clone())
        .await
        .map_err(|source| AppError::Bind {
            addr: args.http_addr,
            source,
        })?;
    let client = Client::try_default().await.map_err(AppError::Client)?;

    // ready once the API server answers
    let mut wait = Duration::from_millis(250);
    loop {
        match client.apiserver_version().await {
            Ok(v) => {
                tracing::info!(version = %v.git_version, "connected to the API server");
                break;
            }
            Err(e) => tracing::warn!(error = %e, retry_in = ?wait, "API server not reachable"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => {
                http_stop.cancel();
                let _ = http.await;
                return Ok(());
            }
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(10));
    }
    let identity = args.identity();
    // native sidecars: `auto` is on from Kubernetes 1.29
    let mut settings = args.settings();
    if args.proxy_native_sidecars == "auto" {
        let v = client.apiserver_version().await.ok();
        let minor: u32 = v
            .as_ref()
            .map(|v| v.minor.trim_end_matches('+').parse().unwrap_or(0))
            .unwrap_or(0);
        settings.inject.native_sidecars = minor >= 29;
        tracing::info!(
            minor,
            native_sidecars = settings.inject.native_sidecars,
            "native sidecars (auto)"
        );
    }
    let certs = args.cert_settings()?;
    // every replica: GostServices for the webhook, the serving certificate, the HTTPS server
    let webhook_stop = CancellationToken::new();
    let mut webhook_tasks = Vec::new();
    let webhook_addr = args.webhook_addr()?;
    if let Some(addr) = webhook_addr {
        let r = Arc::new(crate::certs::CertResolver::default());
        let (store, writer) = kube::runtime::reflector::store::<crate::crd::GostService>();
        let api: kube::Api<crate::crd::GostService> = match &settings.watch_namespace {
            Some(ns) => kube::Api::namespaced(client.clone(), ns),
            None => kube::Api::all(client.clone()),
        };
        let stop = webhook_stop.clone();
        webhook_tasks.push(tokio::spawn(async move {
            use futures::StreamExt;
            use kube::runtime::WatchStreamExt;
            kube::runtime::watcher(api, Default::default())
                .backoff(crate::controller::WatchBackoff::default())
                .reflect(writer)
                .applied_objects()
                .take_until(stop.cancelled_owned())
                .for_each(|_| async {})
                .await;
        }));
        webhook_tasks.push(tokio::spawn(crate::certs::load_loop(
            client.clone(),
            certs.clone(),
            Arc::clone(&r),
            metrics.cert_expiry.clone(),
            Duration::from_secs(2),
            webhook_stop.clone(),
        )));
        let st = Arc::new(crate::webhook::WebhookState {
            gostservices: store.clone(),
            settings: settings.inject.clone(),
            operator_namespace: args.namespace.clone(),
            metrics: metrics.injection.clone(),
        });
        webhook_tasks.push(
            crate::webhook::serve(addr, st, Arc::clone(&r), webhook_stop.clone())
                .await
                .map_err(|source| AppError::Bind { addr, source })?,
        );
        // ready once the certificate is loaded and the GostServices are known
        let ready = Arc::clone(&health);
        let stop = shutdown.clone();
        webhook_tasks.push(tokio::spawn(async move {
            let _ = store.wait_until_ready().await;
            while !r.loaded() {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
            ready.ready.store(true, Ordering::Relaxed);
            tracing::info!("webhook ready");
        }));
    } else {
        health.ready.store(true, Ordering::Relaxed);
    }

    let reporter = Reporter {
        controller: "gost-operator".into(),
        instance: Some(identity.clone()),
    };
    let leader_work = LeaderWork {
        settings,
        certs: (webhook_addr.is_some() && certs.self_managed).then_some(certs),
    };
    if args.leader_elect {
        lead(
            &args,
            client,
            leader_work,
            Arc::clone(&metrics),
            reporter,
            identity,
            &shutdown,
        )
        .await?;
    } else {
        tracing::info!("leader election off: running the controllers");
        metrics.leader.set(1);
        leader_work
            .run(client, Arc::clone(&metrics), reporter, shutdown.clone())
            .await;
    }
    health.ready.store(false, Ordering::Relaxed);
    webhook_stop.cancel();
    for t in webhook_tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    http_stop.cancel();
    let _ = http.await;
    tracing::info!("stopped");
    Ok(())
}

/// What only the leader runs.
#[derive(Clone)]
struct LeaderWork {
    settings: Settings,
    /// Webhook certificate maintenance (`self` mode).
    certs: Option<crate::certs::CertSettings>,
}

impl LeaderWork {
    async fn run(
        self,
        client: Client,
        metrics: Arc<Metrics>,
        reporter: Reporter,
        stop: CancellationToken,
    ) {
        let certs = self.certs.clone().map(|c| {
            let period = (c.validity / 6).clamp(Duration::from_secs(1), Duration::from_secs(60));
            tokio::spawn(crate::certs::maintain(
                client.clone(),
                c,
                period,
                stop.clone(),
            ))
        });
        controller::run(client, self.settings, metrics, reporter, stop).await;
        if let Some(t) = certs {
            let _ = t.await;
        }
    }
}

/// Holds the Lease while it can and runs the controllers exactly while holding it.
async fn lead(
    args: &Args,
    client: Client,
    settings: LeaderWork,
    metrics: Arc<Metrics>,
    reporter: Reporter,
    identity: String,
    shutdown: &CancellationToken,
) -> Result<(), AppError> {
    let lease_ns = non_empty(&args.lease_namespace).unwrap_or_else(|| args.namespace.clone());
    let lease_err = |source| AppError::Lease {
        namespace: lease_ns.clone(),
        name: args.lease_name.clone(),
        source,
    };
    let manager = LeaseManagerBuilder::new(client.clone(), &args.lease_name)
        .with_namespace(&lease_ns)
        .with_identity(&identity)
        .with_duration(args.lease_duration_seconds.max(2))
        .with_grace(
            args.lease_grace_seconds
                .clamp(1, args.lease_duration_seconds.max(2) - 1),
        )
        .with_field_manager("gost-operator-lease")
        .build()
        .await
        .map_err(lease_err)?;
    tracing::info!(lease = %format!("{lease_ns}/{}", args.lease_name), identity = %identity, "waiting for leadership");
    let (mut leader, task) = manager.watch().await;
    let mut running: Option<(CancellationToken, tokio::task::JoinHandle<()>)> = None;
    loop {
        let is_leader = *leader.borrow_and_update();
        match (is_leader, running.is_some()) {
            (true, false) => {
                tracing::info!(identity = %identity, "became leader: starting the controllers");
                metrics.leader.set(1);
                let stop = CancellationToken::new();
                let handle = tokio::spawn(settings.clone().run(
                    client.clone(),
                    Arc::clone(&metrics),
                    reporter.clone(),
                    stop.clone(),
                ));
                running = Some((stop, handle));
            }
            (false, true) => {
                tracing::warn!(identity = %identity, "lost leadership: stopping the controllers");
                if let Some((stop, handle)) = running.take() {
                    stop.cancel();
                    let _ = handle.await;
                }
                metrics.leader.set(0);
            }
            _ => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            r = leader.changed() => {
                if r.is_err() {
                    tracing::error!("leader election stopped");
                    break;
                }
            }
        }
    }
    if let Some((stop, handle)) = running.take() {
        stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(20), handle).await;
    }
    metrics.leader.set(0);
    // dropping the receiver makes the manager release the Lease
    drop(leader);
    match tokio::time::timeout(Duration::from_secs(5), task).await {
        Ok(Ok(Ok(_))) => tracing::info!("Lease released"),
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "releasing the Lease"),
        Ok(Err(e)) => tracing::warn!(error = %e, "leader election task"),
        Err(_) => tracing::warn!("releasing the Lease timed out"),
    }
    Ok(())
}
