//! The engine: the one write path for configuration (validate → diff → apply by name) and
//! the set of running services.
//!
//! Named objects (chains, hops, authers, …) are replaced by name in the store, so referrers
//! see the new objects on their next connection. Services are diffed by name: unchanged
//! services keep their listeners and connections; removed ones close (hooks, drain); changed
//! ones are closed and re-bound; new ones bind and start. A config that fails validation is
//! rejected as a whole and the running config keeps serving.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use gost_config::Config;
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::build::{self, BuildOpts, Built};
use crate::component::Kinds;
use crate::error::{BuildError, BuildErrors};
use crate::hooks::Phase;
use crate::metrics::Metrics;
use crate::service::Service;
use crate::store::{Named, Store};

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineOpts {
    /// Unknown metadata keys are errors.
    pub strict: bool,
    /// How long in-flight connections may finish when a service closes.
    pub drain: Duration,
    /// Keep the `client` label on metrics.
    pub metrics_client_label: bool,
    /// `preUp`/`postUp`/`preDown` run outside the engine (sidecar lifecycle steps).
    pub external_hooks: bool,
}

impl Default for EngineOpts {
    fn default() -> Self {
        EngineOpts {
            strict: false,
            drain: Duration::from_secs(30),
            metrics_client_label: true,
            external_hooks: false,
        }
    }
}

struct Running {
    svc: Arc<Service>,
    raw: gost_config::ServiceConfig,
    task: JoinHandle<()>,
}

/// What an apply did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    /// Services started.
    pub added: Vec<String>,
    /// Services restarted with new settings.
    pub changed: Vec<String>,
    /// Services closed.
    pub removed: Vec<String>,
    /// Services left running untouched.
    pub unchanged: Vec<String>,
    /// Services that failed to bind (the rest of the config was applied).
    pub failed: Vec<BuildError>,
}

/// The proxy engine.
pub struct Engine {
    kinds: Kinds,
    /// Named instances.
    pub store: Arc<Store>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    opts: EngineOpts,
    /// Running services. Held only to read or change the map, never across hooks, binds or
    /// drains, so `/ready` and the API answer while an apply runs hooks.
    services: tokio::sync::Mutex<BTreeMap<String, Running>>,
    /// Serialises applies (and shutdown) with each other.
    applying: tokio::sync::Mutex<()>,
    /// Services an apply is about to start (not ready until they are in the map and ready).
    starting: std::sync::atomic::AtomicUsize,
    /// Set by shutdown: nothing is ready any more.
    closing: std::sync::atomic::AtomicBool,
    config: Mutex<Config>,
    retiring: tokio_util::task::TaskTracker,
}

fn replace<T>(named: &Named<T>, items: Vec<(String, Arc<T>)>) {
    let keep: Vec<String> = items.iter().map(|(n, _)| n.clone()).collect();
    for (n, v) in items {
        named.set(&n, v);
    }
    for n in named.names() {
        if !keep.contains(&n) {
            named.remove(&n);
        }
    }
}

/// [`replace`], but an entry equal to the one installed keeps the installed object (and its
/// state: a limiter's counts and buckets survive an apply that does not change it).
fn replace_kept<T>(named: &Named<T>, items: Vec<(String, Arc<T>)>, same: impl Fn(&T, &T) -> bool) {
    let items = items
        .into_iter()
        .map(|(n, v)| match named.get(&n) {
            Some(old) if same(&old, &v) => (n, old),
            _ => (n, v),
        })
        .collect();
    replace(named, items);
}

impl Engine {
    /// A new engine with the built-in components.
    pub fn new(opts: EngineOpts) -> Arc<Engine> {
        Engine::with_kinds(Kinds::builtin(), opts)
    }

    /// A new engine with the given component registry.
    pub fn with_kinds(kinds: Kinds, opts: EngineOpts) -> Arc<Engine> {
        Arc::new(Engine {
            kinds,
            store: Arc::new(Store::default()),
            metrics: Arc::new(Metrics::new(opts.metrics_client_label)),
            opts,
            services: tokio::sync::Mutex::new(BTreeMap::new()),
            applying: tokio::sync::Mutex::new(()),
            starting: std::sync::atomic::AtomicUsize::new(0),
            closing: std::sync::atomic::AtomicBool::new(false),
            config: Mutex::new(Config::default()),
            retiring: tokio_util::task::TaskTracker::new(),
        })
    }

    fn build_opts(&self) -> BuildOpts {
        BuildOpts {
            strict: self.opts.strict,
            external_hooks: self.opts.external_hooks,
        }
    }

    /// Validates a config without touching the running one.
    pub fn validate(&self, cfg: &Config) -> Result<(), BuildErrors> {
        self.check(cfg).map(|_| ())
    }

    /// Validates a config whose files (TLS material, `auth.file`, …) are given in memory, by
    /// path: nothing is read from disk, and a path not in `files` does not exist.
    pub fn validate_with_files(
        &self,
        cfg: &Config,
        files: std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>,
    ) -> Result<(), BuildErrors> {
        crate::files::with_files(files, || self.validate(cfg))
    }

    /// Builds every named object and validates every service against a scratch store that
    /// holds the new objects; returns the objects to install.
    fn check(&self, cfg: &Config) -> Result<Built, BuildErrors> {
        let built = build::named(&self.kinds, cfg, &self.build_opts())?;
        let scratch = Arc::new(Store::default());
        install(&scratch, built.clone());
        let errs: Vec<BuildError> = cfg
            .services
            .iter()
            .filter_map(|s| build::service(&self.kinds, s, &scratch, &self.build_opts()).err())
            .collect();
        if errs.is_empty() {
            Ok(built)
        } else {
            Err(BuildErrors(errs))
        }
    }

    /// The running raw config.
    pub fn config(&self) -> Config {
        self.config.lock().clone()
    }

    /// Applies a whole config: validate, then diff and apply by name.
    pub async fn apply(self: &Arc<Self>, cfg: Config) -> Result<ApplyReport, BuildErrors> {
        let _applying = self.applying.lock().await;
        let built = self.check(&cfg)?;
        install(&self.store, built);
        let mut report = ApplyReport::default();
        let wanted: BTreeMap<&str, &gost_config::ServiceConfig> =
            cfg.services.iter().map(|s| (s.name.as_str(), s)).collect();
        let drain = self.opts.drain;
        // Take the services that change or go out of the map first; their hooks run after.
        let mut leaving: Vec<(Running, bool)> = Vec::new();
        {
            let mut running = self.services.lock().await;
            for name in running.keys().cloned().collect::<Vec<_>>() {
                let Some(old) = running.get(&name) else {
                    continue;
                };
                let hand_over = match wanted.get(name.as_str()) {
                    Some(w) if same_service(w, &old.raw) => {
                        report.unchanged.push(name);
                        continue;
                    }
                    Some(w) => {
                        report.changed.push(name.clone());
                        // Same address and listener: hand the bound socket to the new service
                        // so nothing is refused; otherwise release it before the new one binds.
                        same_listener(w, &old.raw)
                    }
                    None => {
                        report.removed.push(name.clone());
                        false
                    }
                };
                if let Some(r) = running.remove(&name) {
                    leaving.push((r, hand_over));
                }
            }
            let to_start = cfg.services.len().saturating_sub(report.unchanged.len());
            self.starting.fetch_add(to_start, Ordering::SeqCst);
        }
        let mut handed: BTreeMap<String, Arc<dyn crate::component::Listener>> = BTreeMap::new();
        for (r, hand_over) in leaving {
            r.svc.run_hooks(Phase::PreDown).await;
            if hand_over {
                if let Some(l) = r.svc.take_listener() {
                    handed.insert(r.svc.name.clone(), l);
                }
            } else {
                r.svc.stop_listening();
            }
            self.retire(r, drain);
        }
        let unchanged = report.unchanged.clone();
        for s in &cfg.services {
            if unchanged.contains(&s.name) {
                continue;
            }
            let started = self.start_service(s, handed.remove(&s.name)).await;
            let mut running = self.services.lock().await;
            self.starting.fetch_sub(1, Ordering::SeqCst);
            match started {
                Ok(r) => {
                    if !report.changed.contains(&s.name) {
                        report.added.push(s.name.clone());
                    }
                    running.insert(s.name.clone(), r);
                }
                Err(e) => {
                    tracing::error!(service = %s.name, error = %e, "service failed to start");
                    report.failed.push(e);
                }
            }
        }
        *self.config.lock() = cfg;
        tracing::info!(added = ?report.added, changed = ?report.changed, removed = ?report.removed, unchanged = report.unchanged.len(), "config applied");
        Ok(report)
    }

    /// Lets a stopped service's connections finish in the background, then runs `postDown`.
    fn retire(&self, r: Running, drain: Duration) {
        self.retiring.spawn(async move {
            r.svc.finish(drain).await;
            let _ = r.task.await;
        });
    }

    async fn start_service(
        &self,
        c: &gost_config::ServiceConfig,
        handed: Option<Arc<dyn crate::component::Listener>>,
    ) -> Result<Running, BuildError> {
        let plan = build::service(&self.kinds, c, &self.store, &self.build_opts())?;
        let svc = plan.start(&self.metrics, &self.build_opts(), handed)?;
        svc.pre_up().await;
        let task = tokio::spawn(Arc::clone(&svc).serve());
        Ok(Running {
            svc,
            raw: c.clone(),
            task,
        })
    }

    /// Running services by name.
    pub async fn services(&self) -> Vec<Arc<Service>> {
        self.services
            .lock()
            .await
            .values()
            .map(|r| Arc::clone(&r.svc))
            .collect()
    }

    /// Whether every service is accepting (after its `postUp`).
    pub async fn ready(&self) -> bool {
        let running = self.services.lock().await;
        !self.closing.load(Ordering::SeqCst)
            && self.starting.load(Ordering::SeqCst) == 0
            && running.values().all(|r| r.svc.is_ready())
    }

    /// `preDown` done, the pod is stopping: services bound to a non-loopback address (inbound
    /// traffic) stop accepting and their connections drain in the background; services bound
    /// to loopback (egress for the pod's own containers) keep serving until shutdown. Returns
    /// the names of the services stopped.
    pub async fn drain_inbound(&self) -> Vec<String> {
        let running = self.services.lock().await;
        let mut stopped = Vec::new();
        for r in running.values() {
            let ip = r.svc.local_addr().ip();
            let loopback = ip.is_loopback()
                || matches!(ip, std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()));
            if !loopback && r.svc.is_ready() {
                r.svc.stop_listening();
                stopped.push(r.svc.name.clone());
            }
        }
        tracing::info!(services = ?stopped, "inbound services stopped accepting (preDown); egress keeps serving");
        stopped
    }

    /// Services that fail closed (`failClosed` metadata), with their reasons.
    pub async fn failed_closed(&self) -> Vec<(String, String)> {
        self.services
            .lock()
            .await
            .values()
            .filter_map(|r| {
                r.svc
                    .fail_closed()
                    .map(|why| (r.svc.name.clone(), why.to_string()))
            })
            .collect()
    }

    /// Graceful shutdown: `preDown` for all, listeners closed at once, connections drain until
    /// `deadline`, then `postDown` for all.
    pub async fn shutdown(&self, deadline: Duration) {
        self.closing.store(true, Ordering::SeqCst);
        let _applying = self.applying.lock().await;
        let all: Vec<Running> = std::mem::take(&mut *self.services.lock().await)
            .into_values()
            .collect();
        futures::future::join_all(all.iter().map(|r| async move {
            r.svc.run_hooks(Phase::PreDown).await;
            r.svc.stop_listening();
        }))
        .await;
        futures::future::join_all(all.iter().map(|r| r.svc.finish(deadline))).await;
        for r in all {
            let _ = r.task.await;
        }
        self.retiring.close();
        self.retiring.wait().await;
    }
}

fn same_service(a: &gost_config::ServiceConfig, b: &gost_config::ServiceConfig) -> bool {
    let mut a = a.clone();
    let mut b = b.clone();
    a.status = None;
    b.status = None;
    a == b
}

/// Whether a changed service can keep its bound socket: same address, same listener config.
fn same_listener(a: &gost_config::ServiceConfig, b: &gost_config::ServiceConfig) -> bool {
    a.addr == b.addr && a.listener == b.listener
}

fn install(store: &Store, b: Built) {
    replace(&store.authers, b.authers);
    replace(&store.admissions, b.admissions);
    replace(&store.bypasses, b.bypasses);
    replace(&store.hosts, b.hosts);
    replace(&store.resolvers, b.resolvers);
    replace_kept(&store.limiters, b.limiters, |a, b| a.source == b.source);
    replace_kept(&store.climiters, b.climiters, |a, b| a.source == b.source);
    replace_kept(&store.rlimiters, b.rlimiters, |a, b| a.source == b.source);
    replace(&store.hops, b.hops);
    replace(&store.chains, b.chains);
    *store.tls.write() = b.tls;
}
