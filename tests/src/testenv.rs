//! Connects tests to the real Kubernetes test cluster started by
//! `scripts/testenv/up.sh` (or `scripts/testenv/run.sh --level N -- CMD`).
//!
//! The cluster is named only by `KUBEGOST_TESTENV_KUBECONFIG` (never
//! `KUBECONFIG`, so a developer's real cluster is never touched);
//! `KUBEGOST_TESTENV_LEVEL` says what runs there (1: API server + controller
//! manager, 2: + scheduler, kubelet, containerd). Without the variable a
//! cluster test prints `SKIPPED <test>: ...` to stderr and returns; with
//! `KUBEGOST_TESTENV_REQUIRED=1` a missing (or too low) cluster panics, so CI
//! can never pass by skipping.
//!
//! ```no_run
//! # async fn t() -> anyhow::Result<()> {
//! let Some(cluster) = kubegost_tests::testenv::cluster(1, "k8s_l1_example").await else {
//!     return Ok(());
//! };
//! let ns = cluster.namespace().await?; // deleted when `ns` is dropped
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{ApiResource, DeleteParams, DynamicObject, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use tokio::io::AsyncWriteExt;

/// Path of the test cluster's kubeconfig (written by `up.sh`).
pub const ENV_KUBECONFIG: &str = "KUBEGOST_TESTENV_KUBECONFIG";
/// Level of the running test cluster (1 or 2).
pub const ENV_LEVEL: &str = "KUBEGOST_TESTENV_LEVEL";
/// When set (not `0`/`false`/empty), a missing cluster fails the test instead of skipping it.
pub const ENV_REQUIRED: &str = "KUBEGOST_TESTENV_REQUIRED";
/// kubectl built for the cluster's version (falls back to `kubectl` in PATH).
pub const ENV_KUBECTL: &str = "KUBEGOST_TESTENV_KUBECTL";
/// helm binary (falls back to `helm` in PATH).
pub const ENV_HELM: &str = "KUBEGOST_TESTENV_HELM";
/// Label put on every test namespace; its value is the namespace's test id.
pub const TEST_LABEL: &str = "kubegost.io/test";

/// What a cluster test should do, given its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run against the cluster at `kubeconfig`, which is at `level`.
    Run { kubeconfig: PathBuf, level: u8 },
    /// Skip, with the reason.
    Skip(String),
    /// Fail (KUBEGOST_TESTENV_REQUIRED is set), with the reason.
    Fail(String),
}

/// Whether `KUBEGOST_TESTENV_REQUIRED` is set (anything but empty, `0`, `false`, `no`):
/// then a cluster test that cannot run fails instead of skipping.
pub fn required() -> bool {
    flag_set(std::env::var(ENV_REQUIRED).ok().as_deref())
}

fn flag_set(v: Option<&str>) -> bool {
    match v.map(str::trim) {
        None | Some("") | Some("0") => false,
        Some(s) => !s.eq_ignore_ascii_case("false") && !s.eq_ignore_ascii_case("no"),
    }
}

/// Pure decision from the values of `KUBEGOST_TESTENV_KUBECONFIG`,
/// `KUBEGOST_TESTENV_LEVEL` and `KUBEGOST_TESTENV_REQUIRED`.
pub fn decide(
    kubeconfig: Option<&str>,
    level: Option<&str>,
    required: Option<&str>,
    min_level: u8,
) -> Decision {
    let required = flag_set(required);
    let not_here = |why: String| {
        if required {
            Decision::Fail(format!("{why}, and {ENV_REQUIRED} is set"))
        } else {
            Decision::Skip(why)
        }
    };
    let kubeconfig = match kubeconfig.map(str::trim) {
        Some(k) if !k.is_empty() => PathBuf::from(k),
        _ => {
            return not_here(format!(
                "no test cluster ({ENV_KUBECONFIG} is not set; start one with \
                 scripts/testenv/run.sh --level {min_level} -- cargo test ...)"
            ))
        }
    };
    // A cluster named without a level has at least an API server.
    let level = match level.map(str::trim) {
        None | Some("") => 1,
        Some(l) => match l.parse::<u8>() {
            Ok(l) => l,
            Err(_) => return Decision::Fail(format!("{ENV_LEVEL}={l:?} is not a number")),
        },
    };
    if level < min_level {
        return not_here(format!(
            "needs a level-{min_level} test cluster, the one running is level {level} \
             (scripts/testenv/up.sh --level {min_level})"
        ));
    }
    Decision::Run { kubeconfig, level }
}

/// A connection to the test cluster.
#[derive(Clone)]
pub struct Cluster {
    /// Client authenticated as cluster admin (system:masters).
    pub client: Client,
    /// Level of the cluster (1 or 2).
    pub level: u8,
    /// The kubeconfig file the client was built from.
    pub kubeconfig: PathBuf,
    test: String,
}

/// Returns the test cluster if one of at least `min_level` is available;
/// otherwise prints `SKIPPED <test>: <why>` to stderr and returns `None`, or
/// panics when `KUBEGOST_TESTENV_REQUIRED` is set. Also panics when a cluster
/// is named but cannot be reached.
pub async fn cluster(min_level: u8, test: &str) -> Option<Cluster> {
    let var = |k: &str| std::env::var(k).ok();
    match decide(
        var(ENV_KUBECONFIG).as_deref(),
        var(ENV_LEVEL).as_deref(),
        var(ENV_REQUIRED).as_deref(),
        min_level,
    ) {
        Decision::Skip(why) => {
            // Straight to the process's stderr: libtest captures eprintln!
            // of passing tests, and a skip must be visible.
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
            None
        }
        Decision::Fail(why) => panic!("{test}: {why}"),
        Decision::Run { kubeconfig, level } => match connect(&kubeconfig).await {
            Ok(client) => Some(Cluster {
                client,
                level,
                kubeconfig,
                test: test.to_string(),
            }),
            Err(e) => panic!(
                "{test}: cannot use the test cluster of {}: {e:#}",
                kubeconfig.display()
            ),
        },
    }
}

/// Builds a client from a kubeconfig file and checks that the API server answers.
pub async fn connect(kubeconfig: &Path) -> Result<Client> {
    let client = client_from(kubeconfig).await?;
    client
        .apiserver_version()
        .await
        .context("GET /version on the test cluster")?;
    Ok(client)
}

async fn client_from(kubeconfig: &Path) -> Result<Client> {
    let kc = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .context("building the client configuration")?;
    Client::try_from(config).context("building the client")
}

/// Polls `f` every 500 ms until it returns `Ok(Some(v))`; fails after `timeout`.
/// Errors from `f` are retried too (the last one is reported on timeout).
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match f().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() >= deadline {
            return Err(match last_err {
                Some(e) => e.context(format!("timed out after {timeout:?} waiting for {what}")),
                None => anyhow!("timed out after {timeout:?} waiting for {what}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Output of a command run by [`Cluster::kubectl`] / [`Cluster::helm`].
#[derive(Debug)]
pub struct CmdOutput {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    /// `Ok(self)` if the command exited 0, else an error with its output.
    pub fn success(self) -> Result<Self> {
        if self.status.success() {
            Ok(self)
        } else {
            bail!(
                "command failed ({}):\nstdout:\n{}\nstderr:\n{}",
                self.status,
                self.stdout,
                self.stderr
            )
        }
    }
}

fn tool(env: &str, default: &str) -> PathBuf {
    std::env::var_os(env)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

async fn run_cmd(
    program: &Path,
    args: &[&str],
    kubeconfig: &Path,
    stdin: Option<&[u8]>,
) -> Result<CmdOutput> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(data).await.context("writing stdin")?;
        drop(pipe);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .map_err(|_| anyhow!("{} {args:?} did not finish in 120 s", program.display()))??;
    Ok(CmdOutput {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

impl Cluster {
    /// The name of the test this cluster handle was created for.
    pub fn test_name(&self) -> &str {
        &self.test
    }

    /// Runs kubectl against the test cluster (`--kubeconfig` is added).
    pub async fn kubectl(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<CmdOutput> {
        let kc = format!("--kubeconfig={}", self.kubeconfig.display());
        let mut all = vec![kc.as_str(), "--request-timeout=60s"];
        all.extend_from_slice(args);
        run_cmd(&tool(ENV_KUBECTL, "kubectl"), &all, &self.kubeconfig, stdin).await
    }

    /// Runs helm with `KUBECONFIG` pointing at the test cluster.
    pub async fn helm(&self, args: &[&str]) -> Result<CmdOutput> {
        run_cmd(&tool(ENV_HELM, "helm"), args, &self.kubeconfig, None).await
    }

    /// Creates a throwaway namespace `kg-<test>-<random>` labelled
    /// `kubegost.io/test=<its name>`, waits for its `default` ServiceAccount,
    /// and returns a guard that deletes it when dropped.
    pub async fn namespace(&self) -> Result<TestNamespace> {
        let name = namespace_name(&self.test, rand::random::<u32>());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(BTreeMap::from([(TEST_LABEL.to_string(), name.clone())])),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        let guard = TestNamespace {
            name: name.clone(),
            cluster: self.clone(),
            delete: DeleteOnDrop::new(
                &self.kubeconfig,
                ApiResource::erase::<Namespace>(&()),
                None,
                &name,
            ),
            ok: false,
        };
        // The ServiceAccount admission plugin rejects pods until the controller
        // manager has created the namespace's default ServiceAccount.
        let sas: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &name);
        wait_for(
            "the default ServiceAccount",
            Duration::from_secs(60),
            || async { Ok(sas.get_opt("default").await?.map(|_| ())) },
        )
        .await?;
        Ok(guard)
    }
}

/// `kg-<sanitized test name>-<8 hex digits>`, at most 63 characters.
pub fn namespace_name(test: &str, random: u32) -> String {
    let mut s: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    s.truncate(40);
    let s = s.trim_matches('-');
    format!("kg-{s}-{random:08x}")
}

/// A namespace that exists for one test; deleted (in the background) on drop.
/// Unless [`TestNamespace::success`] was called, dropping it first prints
/// the namespace's pods, events and container logs to stderr.
pub struct TestNamespace {
    /// Namespace name (also the value of its `kubegost.io/test` label).
    pub name: String,
    cluster: Cluster,
    delete: DeleteOnDrop,
    ok: bool,
}

impl TestNamespace {
    /// Marks the test as passed: no diagnostics dump when dropped.
    pub fn success(&mut self) {
        self.ok = true;
    }

    /// Prints pods, events and logs of this namespace to stderr.
    pub fn dump(&self) {
        let ns = self.name.clone();
        let cluster = self.cluster.clone();
        run_detached(async move {
            for args in [
                vec!["get", "all,events", "-o", "wide", "-n", ns.as_str()],
                vec!["describe", "pods", "-n", ns.as_str()],
                vec![
                    "logs",
                    "-n",
                    ns.as_str(),
                    "--all-containers",
                    "--prefix",
                    "-l",
                    "kubegost.io/dump!=no",
                    "--tail=50",
                ],
            ] {
                match cluster.kubectl(&args, None).await {
                    Ok(o) => eprintln!("--- kubectl {}\n{}{}", args.join(" "), o.stdout, o.stderr),
                    Err(e) => eprintln!("--- kubectl {}: {e:#}", args.join(" ")),
                }
            }
            Ok(())
        });
    }

    /// The test-id label selector of this namespace (`kubegost.io/test=<name>`).
    pub fn selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(TEST_LABEL.to_string(), self.name.clone())])
    }

    /// Keeps the namespace (for debugging): it is not deleted on drop.
    pub fn keep(mut self) {
        self.delete.disarm();
        self.ok = true;
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if !self.ok || std::thread::panicking() {
            eprintln!(
                "{}: test did not finish successfully; state of namespace {}:",
                self.cluster.test, self.name
            );
            self.dump();
        }
        // self.delete runs its own Drop next
    }
}

/// Deletes one object (cluster-scoped or namespaced) when dropped, from a
/// separate thread with its own runtime and client, so it also works while
/// the test's runtime is blocked or unwinding. Waits at most 30 s; a missing
/// object is fine.
pub struct DeleteOnDrop {
    kubeconfig: PathBuf,
    resource: ApiResource,
    namespace: Option<String>,
    name: String,
    armed: bool,
}

impl DeleteOnDrop {
    pub fn new(
        kubeconfig: &Path,
        resource: ApiResource,
        namespace: Option<&str>,
        name: &str,
    ) -> Self {
        Self {
            kubeconfig: kubeconfig.to_path_buf(),
            resource,
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
            armed: true,
        }
    }

    /// A guard for a typed object, e.g. `DeleteOnDrop::of::<MutatingWebhookConfiguration>(..)`.
    pub fn of<K>(cluster: &Cluster, namespace: Option<&str>, name: &str) -> Self
    where
        K: kube::Resource<DynamicType = ()>,
    {
        Self::new(
            &cluster.kubeconfig,
            ApiResource::erase::<K>(&()),
            namespace,
            name,
        )
    }

    /// Do not delete on drop.
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let kubeconfig = self.kubeconfig.clone();
        let ar = self.resource.clone();
        let ns = self.namespace.clone();
        let name = self.name.clone();
        run_detached(async move {
            let client = client_from(&kubeconfig).await?;
            let api: Api<DynamicObject> = match &ns {
                Some(ns) => Api::namespaced_with(client, ns, &ar),
                None => Api::all_with(client, &ar),
            };
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                Err(e) => Err(anyhow!(e).context(format!("deleting {} {name}", ar.kind))),
            }
        });
    }
}

/// Runs `fut` to completion on a fresh thread with its own current-thread
/// runtime (at most 30 s), blocking the caller; errors go to stderr.
fn run_detached<F>(fut: F)
where
    F: Future<Output = Result<()>> + Send + 'static,
{
    let handle = std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("testenv cleanup: cannot build a runtime: {e}");
                return;
            }
        };
        // the timer must be created inside the runtime
        match rt.block_on(async { tokio::time::timeout(Duration::from_secs(30), fut).await }) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("testenv cleanup: {e:#}"),
            Err(_) => eprintln!("testenv cleanup: timed out after 30 s"),
        }
    });
    if handle.join().is_err() {
        eprintln!("testenv cleanup: cleanup thread panicked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_without_kubeconfig() {
        assert!(matches!(decide(None, None, None, 1), Decision::Skip(_)));
        assert!(matches!(
            decide(Some(" "), Some("2"), Some("0"), 2),
            Decision::Skip(_)
        ));
        assert!(matches!(
            decide(None, None, Some("false"), 1),
            Decision::Skip(_)
        ));
    }

    #[test]
    fn fail_without_kubeconfig_when_required() {
        assert!(matches!(
            decide(None, None, Some("1"), 1),
            Decision::Fail(_)
        ));
        assert!(matches!(
            decide(Some(""), None, Some("yes"), 2),
            Decision::Fail(_)
        ));
    }

    #[test]
    fn level_too_low() {
        assert!(matches!(
            decide(Some("/k"), Some("1"), None, 2),
            Decision::Skip(_)
        ));
        assert!(matches!(
            decide(Some("/k"), Some("1"), Some("1"), 2),
            Decision::Fail(_)
        ));
        assert!(matches!(
            decide(Some("/k"), Some("x"), None, 1),
            Decision::Fail(_)
        ));
    }

    #[test]
    fn run_with_cluster() {
        assert_eq!(
            decide(Some("/k"), Some("2"), Some("1"), 2),
            Decision::Run {
                kubeconfig: PathBuf::from("/k"),
                level: 2
            }
        );
        assert_eq!(
            decide(Some("/k"), None, None, 1),
            Decision::Run {
                kubeconfig: PathBuf::from("/k"),
                level: 1
            }
        );
    }

    #[test]
    fn namespace_names_are_dns_labels() {
        let n = namespace_name(
            "k8s_l2_Origin::deployment_with_a_very_long_name_indeed_yes",
            0xabc,
        );
        assert!(n.len() <= 63, "{n}");
        assert!(n.starts_with("kg-k8s-l2-origin"));
        assert!(n.ends_with("-00000abc"));
        assert!(n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }
}
