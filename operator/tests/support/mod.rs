//! Shared harness of the operator's cluster tests: the chart's RBAC installed once per test
//! binary (release `kubegost-l1` in namespace `kubegost-l1`, no pods), a kubeconfig that
//! authenticates as the chart's ServiceAccount (so the operator runs with exactly the
//! permissions the chart grants), and the real `gost-operator` binary as a child process
//! restricted to one test namespace. Everything talks to the test cluster's API server and
//! 127.0.0.1 only.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use gost_operator::crd::{GostChain, GostService};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Api;
use kubegost_tests::testenv::{wait_for, Cluster};

/// Helm release (and namespace) of the chart installed for the L1 tests.
pub const RELEASE: &str = "kubegost-l1";
/// The chart's ServiceAccount in that release.
pub const SA: &str = "kubegost-l1-operator";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn tool(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// Runs kubectl/helm synchronously against the test cluster.
pub fn run(kubeconfig: &Path, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    use std::io::Write as _;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("starting {program}"))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{program} {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn kubectl(cluster: &Cluster, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let kc = format!("--kubeconfig={}", cluster.kubeconfig.display());
    let mut all = vec![kc.as_str(), "--request-timeout=30s"];
    all.extend_from_slice(args);
    run(
        &cluster.kubeconfig,
        &tool("KUBEGOST_TESTENV_KUBECTL", "kubectl"),
        &all,
        stdin,
    )
}

pub fn helm(cluster: &Cluster, args: &[&str]) -> Result<String> {
    run(
        &cluster.kubeconfig,
        &tool("KUBEGOST_TESTENV_HELM", "helm"),
        args,
        None,
    )
}

/// The chart installed once: its RBAC and ServiceAccount are what the operator runs with.
pub struct Installed {
    /// A kubeconfig authenticating as the chart's ServiceAccount.
    pub sa_kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

static INSTALLED: OnceLock<Result<Installed, String>> = OnceLock::new();

/// Installs the chart (no operator pods: replicas 0, no webhook) and makes a ServiceAccount
/// kubeconfig; once per test binary.
pub fn installed(cluster: &Cluster) -> &'static Installed {
    let r = INSTALLED.get_or_init(|| install(cluster).map_err(|e| format!("{e:#}")));
    match r {
        Ok(i) => i,
        Err(e) => panic!("installing the chart for the L1 operator tests: {e}"),
    }
}

fn install(cluster: &Cluster) -> Result<Installed> {
    let chart = repo().join("charts/kubegost");
    helm(
        cluster,
        &[
            "upgrade",
            "--install",
            RELEASE,
            chart.to_str().unwrap(),
            "--namespace",
            RELEASE,
            "--create-namespace",
            "--set",
            "replicas=0",
            "--set",
            "webhook.enabled=false",
            "--wait=false",
        ],
    )?;
    let token = kubectl(
        cluster,
        &["create", "token", SA, "-n", RELEASE, "--duration=4h"],
        None,
    )?;
    let admin: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&cluster.kubeconfig)?)?;
    let c = &admin["clusters"][0]["cluster"];
    let dir = tempfile::tempdir()?;
    let kc = dir.path().join("sa.kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: sa\n  user:\n    token: {}\ncontexts:\n- name: t\n  context: {{cluster: t, user: sa}}\ncurrent-context: t\n",
            c["server"].as_str().context("server")?,
            c["certificate-authority-data"].as_str().context("CA")?,
            token.trim()
        ),
    )?;
    Ok(Installed {
        sa_kubeconfig: kc,
        _dir: dir,
    })
}

/// A running `gost-operator`, stopped with SIGTERM on drop (its log is printed when the test
/// fails).
pub struct Operator {
    child: Option<Child>,
    pub http: u16,
    pub log: PathBuf,
    ns: String,
    ok: bool,
    _dir: tempfile::TempDir,
}

/// A loopback port nobody listens on right now (bound, read and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Operator {
    /// Starts the operator for namespace `ns` as the chart's ServiceAccount (no webhook) and
    /// waits until it leads (its controllers run).
    pub async fn start(cluster: &Cluster, ns: &str) -> Operator {
        Operator::start_with(cluster, ns, &["--webhook-addr="]).await
    }

    /// Like [`Operator::start`] with extra flags; waits until it leads and `/readyz` is 200.
    pub async fn start_with(cluster: &Cluster, ns: &str, extra: &[&str]) -> Operator {
        let inst = installed(cluster);
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("operator.log");
        let http = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_gost-operator"))
            .args([
                &format!("--http-addr=127.0.0.1:{http}"),
                &format!("--namespace={RELEASE}"),
                &format!("--lease-name=l1-{ns}"),
                &format!("--watch-namespace={ns}"),
                &format!("--namespace-role={RELEASE}-namespace"),
                &format!("--namespace-binding={SA}"),
                &format!("--service-account={SA}"),
                "--lease-duration-seconds=6",
                "--lease-grace-seconds=2",
                "--log-format=text",
            ])
            .arg(format!(
                "--log-level={}",
                std::env::var("KUBEGOST_TEST_OPERATOR_LOG")
                    .unwrap_or_else(|_| "info,kube=warn".into())
            ))
            .args(extra)
            .env("KUBECONFIG", &inst.sa_kubeconfig)
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        let mut op = Operator {
            child: Some(child),
            http,
            log,
            ns: ns.to_string(),
            ok: false,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if op.metric("kubegost_leader").await == Some(1.0)
                && op.get("/readyz").await.map(|r| r.0) == Some(200)
            {
                break;
            }
            if let Some(c) = op.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("gost-operator exited with {st}:\n{}", op.logs());
                }
            }
            assert!(
                Instant::now() < deadline,
                "gost-operator did not lead within 60 s:\n{}",
                op.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        op
    }

    /// The test passed: no log dump on drop.
    pub fn success(&mut self) {
        self.ok = true;
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET on the operator's HTTP endpoint: (status, body).
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let fut = async {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.http))
                .await
                .ok()?;
            s.write_all(format!("GET {path} HTTP/1.0\r\nHost: op\r\n\r\n").as_bytes())
                .await
                .ok()?;
            let mut b = Vec::new();
            (&mut s).take(1 << 20).read_to_end(&mut b).await.ok()?;
            let text = String::from_utf8_lossy(&b).into_owned();
            let code = text.split_whitespace().nth(1)?.parse().ok()?;
            let body = text.split_once("\r\n\r\n").map(|x| x.1.to_string())?;
            Some((code, body))
        };
        tokio::time::timeout(Duration::from_secs(5), fut)
            .await
            .ok()
            .flatten()
    }

    /// Sum of a metric's samples whose line starts with `name` (labels included in `name`).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics").await?;
        let mut found = None;
        for l in body.lines().filter(|l| !l.starts_with('#')) {
            let (k, v) = l.rsplit_once(' ')?;
            let base = k.split('{').next()?;
            if base == name || k == name {
                *found.get_or_insert(0.0) += v.parse::<f64>().ok()?;
            }
        }
        found
    }

    /// Reconciles done so far by a controller.
    pub async fn reconciles(&self, controller: &str) -> f64 {
        self.metric(&format!(
            "kubegost_reconcile_total{{controller=\"{controller}\"}}"
        ))
        .await
        .unwrap_or(0.0)
    }

    /// Stops with SIGTERM and waits (≤ 20 s); returns whether it exited 0.
    pub fn stop(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = c.try_wait() {
                return st.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether the process is still running (not exited, not killed by the test).
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Resident memory now and at its peak (KiB), from /proc.
    pub fn rss_kib(&self) -> Option<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let field = |k: &str| -> Option<u64> {
            status
                .lines()
                .find(|l| l.starts_with(k))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Mean reconcile time of a controller so far (seconds), from the duration histogram.
    pub async fn mean_reconcile_seconds(&self, controller: &str) -> Option<f64> {
        let sum = self
            .metric(&format!(
                "kubegost_reconcile_duration_seconds_sum{{controller=\"{controller}\"}}"
            ))
            .await?;
        let count = self
            .metric(&format!(
                "kubegost_reconcile_duration_seconds_count{{controller=\"{controller}\"}}"
            ))
            .await?;
        (count > 0.0).then(|| sum / count)
    }

    /// Kills with SIGKILL (no cleanup, no Lease release).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.stop();
        // printed for a failed test, and always when a log level was asked for
        if !self.ok
            || std::thread::panicking()
            || std::env::var_os("KUBEGOST_TEST_OPERATOR_LOG").is_some()
        {
            eprintln!("--- gost-operator log ({}):\n{}", self.ns, self.logs());
        }
    }
}

/// The condition `t` of a GostService, if any.
pub fn gsvc_cond(g: &GostService, t: &str) -> Option<Condition> {
    g.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == t)
        .cloned()
}

/// The condition `t` of a GostChain, if any.
pub fn gchain_cond(c: &GostChain, t: &str) -> Option<Condition> {
    c.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == t)
        .cloned()
}

/// Waits until GostService `name` satisfies `pred`; returns it.
pub async fn wait_gsvc(
    api: &Api<GostService>,
    name: &str,
    what: &str,
    pred: impl Fn(&GostService) -> bool,
) -> Result<GostService> {
    wait_for(what, Duration::from_secs(45), || async {
        let g = api.get_opt(name).await?;
        Ok(g.filter(|g| pred(g)))
    })
    .await
}

/// Whether the condition `t` has `status` (and `reason`, if given) for the current generation.
pub fn has(g: &GostService, t: &str, status: &str, reason: Option<&str>) -> bool {
    gsvc_cond(g, t).is_some_and(|c| {
        c.status == status
            && reason.is_none_or(|r| c.reason == r)
            && c.observed_generation == g.metadata.generation
    })
}

/// Applies YAML documents in `ns` (client-side apply, as a user would).
pub fn apply(cluster: &Cluster, ns: &str, yaml: &str) -> Result<String> {
    kubectl(cluster, &["apply", "-n", ns, "-f", "-"], Some(yaml))
}

/// A MutatingWebhookConfiguration like the chart's for pods of namespace `ns`, calling the
/// webhook at `https://127.0.0.1:{port}/mutate` (a URL instead of a Service at level 1).
pub fn webhook_config(
    name: &str,
    ns: &str,
    port: u16,
    failure_policy: &str,
) -> k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [{
            "name": "inject.kubegost.io",
            "admissionReviewVersions": ["v1"],
            "clientConfig": {"url": format!("https://127.0.0.1:{port}/mutate")},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "scope": "Namespaced"}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            "objectSelector": {"matchExpressions": [{"key": "kubegost.io/inject", "operator": "NotIn", "values": ["false"]}]},
            "sideEffects": "None", "timeoutSeconds": 5, "failurePolicy": failure_policy, "reinvocationPolicy": "IfNeeded",
        }],
    }))
    .unwrap()
}

/// A bare pod with one container and `labels`.
pub fn bare_pod(name: &str, labels: serde_json::Value) -> k8s_openapi::api::core::v1::Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
    }))
    .unwrap()
}

/// The serving certificate the webhook presents right now (PEM of the leaf).
pub async fn served_cert(port: u16) -> Result<Vec<u8>> {
    use std::sync::Arc;
    #[derive(Debug)]
    struct Any;
    impl rustls::client::danger::ServerCertVerifier for Any {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(Any))
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(rustls::pki_types::ServerName::try_from("127.0.0.1")?, tcp)
        .await?;
    let (_, conn) = tls.get_ref();
    Ok(conn.peer_certificates().context("no certificate")?[0].to_vec())
}

pub fn pem_der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// The chart's names of the release's webhook configuration and serving-certificate Secret
/// (the chart's RBAC allows exactly these).
pub fn webhook_names() -> (String, String) {
    (RELEASE.to_string(), format!("{RELEASE}-webhook-tls"))
}

/// The operator with its webhook on `127.0.0.1:{port}` (serving certificates valid for
/// `validity`), after a fresh start: the release's webhook configuration (failurePolicy Fail,
/// pods of `ns`) created anew and its TLS Secret deleted. Returns the operator and a guard
/// that deletes the configuration.
pub async fn start_with_webhook(
    cluster: &Cluster,
    ns: &str,
    port: u16,
    validity: &str,
) -> Result<(Operator, kubegost_tests::testenv::DeleteOnDrop)> {
    use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{DeleteParams, PostParams};
    installed(cluster);
    let (mwc_name, tls_secret) = webhook_names();
    let mwcs: Api<MutatingWebhookConfiguration> = Api::all(cluster.client.clone());
    let guard = kubegost_tests::testenv::DeleteOnDrop::of::<MutatingWebhookConfiguration>(
        cluster, None, &mwc_name,
    );
    let _ = mwcs.delete(&mwc_name, &DeleteParams::default()).await;
    mwcs.create(
        &PostParams::default(),
        &webhook_config(&mwc_name, ns, port, "Fail"),
    )
    .await?;
    let secrets_sys: Api<Secret> = Api::namespaced(cluster.client.clone(), RELEASE);
    let _ = secrets_sys
        .delete(&tls_secret, &DeleteParams::default())
        .await;
    let op = Operator::start_with(
        cluster,
        ns,
        &[
            &format!("--webhook-addr=127.0.0.1:{port}"),
            "--webhook-extra-sans=127.0.0.1",
            &format!("--webhook-config={mwc_name}"),
            &format!("--webhook-secret={tls_secret}"),
            "--webhook-service=kubegost-l1-webhook",
            &format!("--webhook-cert-validity={validity}"),
            "--proxy-image=localhost/kubegost/proxy:l1",
        ],
    )
    .await;
    Ok((op, guard))
}

/// Creates pod `name` with `labels` until the webhook admits it with the sidecar (its
/// GostService cache may lag a moment behind the API server), deleting the earlier try each
/// time; returns the injected pod.
pub async fn create_until_injected(
    pods: &Api<k8s_openapi::api::core::v1::Pod>,
    name: &str,
    labels: serde_json::Value,
) -> Result<k8s_openapi::api::core::v1::Pod> {
    use kube::api::{DeleteParams, PostParams};
    wait_for(
        "a pod admitted with the sidecar",
        Duration::from_secs(30),
        || async {
            let _ = pods
                .delete(
                    name,
                    &DeleteParams {
                        grace_period_seconds: Some(0),
                        ..Default::default()
                    },
                )
                .await;
            wait_for("old pod gone", Duration::from_secs(10), || async {
                Ok(pods.get_opt(name).await?.is_none().then_some(()))
            })
            .await?;
            let p = pods
                .create(&PostParams::default(), &bare_pod(name, labels.clone()))
                .await?;
            Ok(gost_operator::inject::is_injected(&p).then_some(p))
        },
    )
    .await
}

/// Creates pod `name` with `labels` until the API server refuses it (an admission change may
/// take a moment to reach it), deleting what it admitted meanwhile; returns the refusal.
pub async fn create_until_refused(
    pods: &Api<k8s_openapi::api::core::v1::Pod>,
    name: &str,
    labels: serde_json::Value,
    what: &str,
) -> Result<String> {
    use kube::api::{DeleteParams, PostParams};
    wait_for(what, Duration::from_secs(30), || async {
        match pods
            .create(&PostParams::default(), &bare_pod(name, labels.clone()))
            .await
        {
            Err(kube::Error::Api(e)) => Ok(Some(e.message)),
            Ok(_) => {
                pods.delete(name, &DeleteParams::default()).await?;
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// `n` GostServices `g-0`…, each selecting its own app and serving one HTTP proxy.
pub fn many_gostservices(n: usize, port_base: usize) -> String {
    let mut y = String::new();
    for i in 0..n {
        y.push_str(&format!(
            "---\napiVersion: kubegost.io/v1alpha1\nkind: GostService\nmetadata: {{name: g-{i}}}\nspec:\n  selector: {{matchLabels: {{app: a-{i}}}}}\n  services: [{{name: p, addr: \"127.0.0.1:{}\", handler: {{type: http}}}}]\n",
            port_base + i
        ));
    }
    y
}
