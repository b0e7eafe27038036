//! The controllers: GostService and GostChain reconcilers on kube-runtime. They read their
//! inputs (reflector stores of GostServices, GostChains and pod metadata; referenced Secrets by
//! GET), ask [`crate::reconcile`] what to do, and write: the config Secret (server-side apply),
//! the status (server-side apply of the status subresource), Events, the pods'
//! `kubegost.io/config-hash` annotation, and the namespace RoleBinding that lets the operator
//! write config Secrets there. Nothing is written when the plan says nothing changed.
//!
//! Watches: GostServices (main), GostChains, Secrets (metadata only: owned config Secrets and
//! referenced ones map back to their GostServices) and pods (metadata only) for the GostService
//! controller; GostChains (main), GostServices and Secrets (metadata) for the GostChain one.

mod gostchain;
mod gostservice;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ObjectMeta, PartialObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::crd::{GostChain, GostService};
use crate::inject::{self, InjectSettings};
use crate::metrics::Metrics;
use crate::reconcile::{self, EventNote, FIELD_MANAGER, MANAGED_BY, MANAGED_BY_LABEL};
use crate::render::{self, RenderSettings};

/// How often an object is reconciled without any change (status drift, pod counts).
const RESYNC: Duration = Duration::from_secs(300);

/// The pause before a failed watch (or a controller's trigger stream) tries again: 250 ms,
/// doubling to at most 5 s, each pause drawn from 50–100 % of that (jitter), back to 250 ms
/// after a minute without errors. kube's default grows to 30 s (up to 60 s with its jitter):
/// after an API server restart, whose fresh watch cache no longer has the resource versions
/// the watches resume from (410 Gone, so every watch must list again), the controllers came
/// back only minutes later (`k8s_l1_apiserver_restart.rs`: not within 120 s). With 5 s at
/// most, eight watches cost the API server under two requests a second during an outage.
#[derive(Debug)]
pub struct WatchBackoff {
    next: Duration,
    last: Option<Instant>,
}

impl WatchBackoff {
    const MIN: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(5);
    const RESET_AFTER: Duration = Duration::from_secs(60);
}

impl Default for WatchBackoff {
    fn default() -> Self {
        WatchBackoff {
            next: Self::MIN,
            last: None,
        }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|l| now.duration_since(l) > Self::RESET_AFTER)
        {
            self.next = Self::MIN;
        }
        self.last = Some(now);
        let pause = self.next.mul_f64(rand::random_range(0.5..=1.0));
        self.next = (self.next * 2).min(Self::MAX);
        Some(pause)
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = Self::MIN;
    }
}

/// The pause of a controller's merged trigger stream after an error one of its watches passed
/// on: 100 ms, always. The watches back off on their own ([`WatchBackoff`]); kube's default
/// here would pause every trigger for longer with each error of any watch, so after an API
/// server restart, with each watch hitting 410 Gone in turn, reconciles waited for all of them
/// (measured: the last of 60 GostServices Ready 19 s after the API server was back; 5.3 s
/// with this).
#[derive(Debug, Clone, Copy)]
pub struct TriggerPause;

impl Iterator for TriggerPause {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        Some(Duration::from_millis(100))
    }
}

impl kube::runtime::utils::Backoff for TriggerPause {
    fn reset(&mut self) {}
}

/// Errors of one reconcile (logged, counted by kind, retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The finalizer could not be added, run or removed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// The object has no namespace (the resources are namespaced).
    #[error("{0} has no namespace")]
    NoNamespace(String),
    /// JSON for a patch could not be built.
    #[error("serializing: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// The `error` label of `kubegost_reconcile_errors_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 403 => "forbidden",
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "conflict",
            Error::Kube(_) => "kube",
            Error::Finalizer(_) => "finalizer",
            Error::NoNamespace(_) => "no_namespace",
            Error::Json(_) => "json",
        }
    }
}

/// The RoleBinding the operator keeps in every namespace with a GostService, binding its own
/// ServiceAccount to a ClusterRole that allows writing config Secrets, patching pods and
/// publishing Events there (so it needs no cluster-wide write access to Secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceAccess {
    /// Name of the RoleBinding in each namespace.
    pub binding: String,
    /// The ClusterRole it binds.
    pub cluster_role: String,
    /// Namespace of the operator's ServiceAccount.
    pub sa_namespace: String,
    /// Name of the operator's ServiceAccount.
    pub sa_name: String,
}

/// Controller settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Render settings.
    pub render: RenderSettings,
    /// Injection settings (outdated pods, pod hashes).
    pub inject: InjectSettings,
    /// Watch only this namespace (all when `None`).
    pub watch_namespace: Option<String>,
    /// Keep a RoleBinding per namespace (see [`NamespaceAccess`]); `None` when the operator
    /// already has the access it needs.
    pub namespace_access: Option<NamespaceAccess>,
    /// Reconciles run at once, per controller.
    pub concurrency: u16,
}

/// What reconcilers share.
pub struct Context {
    /// The client.
    pub client: Client,
    /// Settings.
    pub settings: Settings,
    /// GostServices (the GostService controller's own store).
    pub gostservices: Store<GostService>,
    /// GostChains.
    pub chains: Store<GostChain>,
    /// Pod metadata.
    pub pods: Store<PartialObjectMeta<Pod>>,
    /// Event recorder.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Namespaces whose RoleBinding is known to be in place.
    access: Mutex<HashSet<String>>,
    /// Consecutive failures per object, for the retry backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// The last reconcile error published as an Event, per object (the same error is published
    /// once, not at every retry).
    last_error: Mutex<HashMap<String, String>>,
}

impl Context {
    /// The GostServices of `ns`.
    pub fn gostservices_in(&self, ns: &str) -> Vec<GostService> {
        let mut v: Vec<GostService> = self
            .gostservices
            .state()
            .into_iter()
            .filter(|g| g.namespace().as_deref() == Some(ns))
            .map(|g| (*g).clone())
            .collect();
        v.sort_by_key(|g| g.name_any());
        v
    }

    /// The GostChains of `ns`.
    pub fn chains_in(&self, ns: &str) -> Vec<GostChain> {
        let mut v: Vec<GostChain> = self
            .chains
            .state()
            .into_iter()
            .filter(|c| c.namespace().as_deref() == Some(ns))
            .map(|c| (*c).clone())
            .collect();
        v.sort_by_key(|c| c.name_any());
        v
    }

    /// Metadata of the pods of `ns`.
    pub fn pods_in(&self, ns: &str) -> Vec<ObjectMeta> {
        let mut v: Vec<ObjectMeta> = self
            .pods
            .state()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
            .map(|p| p.metadata.clone())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The Secrets `names` of `ns` that exist (GET each: Secrets are not cached, so the operator
    /// holds no copy of Secrets it does not use).
    pub async fn secrets(
        &self,
        ns: &str,
        names: impl IntoIterator<Item = String>,
    ) -> Result<Vec<Secret>, Error> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let mut out = Vec::new();
        for n in names {
            if let Some(s) = api.get_opt(&n).await? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Publishes Events about `obj`; a failure is logged, never fatal.
    pub async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        events: &[EventNote],
        action: &str,
    ) {
        let reference = obj.object_ref(&());
        for e in events {
            let ev = Event {
                type_: if e.warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: e.reason.clone(),
                note: Some(truncate(&e.note, 1000)),
                action: action.to_string(),
                secondary: None,
            };
            if let Err(err) = self.recorder.publish(&ev, &reference).await {
                tracing::warn!(object = ?reference.name, reason = %e.reason, error = %err, "cannot publish event");
            }
        }
    }

    /// Makes sure the operator may write in `ns` (see [`NamespaceAccess`]).
    pub async fn ensure_access(&self, ns: &str) -> Result<(), Error> {
        let Some(a) = &self.settings.namespace_access else {
            return Ok(());
        };
        if self.access.lock().contains(ns) {
            return Ok(());
        }
        let want = RoleBinding {
            metadata: ObjectMeta {
                name: Some(a.binding.clone()),
                namespace: Some(ns.to_string()),
                labels: Some(BTreeMap::from([(
                    MANAGED_BY_LABEL.to_string(),
                    MANAGED_BY.to_string(),
                )])),
                ..Default::default()
            },
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "ClusterRole".into(),
                name: a.cluster_role.clone(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: a.sa_name.clone(),
                namespace: Some(a.sa_namespace.clone()),
                ..Default::default()
            }]),
        };
        let api: Api<RoleBinding> = Api::namespaced(self.client.clone(), ns);
        let current = api.get_opt(&a.binding).await?;
        let same = current
            .as_ref()
            .is_some_and(|c| c.role_ref == want.role_ref && c.subjects == want.subjects);
        if !same {
            api.patch(
                &a.binding,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&want),
            )
            .await?;
            tracing::info!(namespace = ns, binding = %a.binding, role = %a.cluster_role, "namespace access granted");
        }
        self.access.lock().insert(ns.to_string());
        Ok(())
    }

    /// Removes the namespace RoleBinding (the last GostService of `ns` is gone).
    pub async fn drop_access(&self, ns: &str) -> Result<(), Error> {
        let Some(a) = &self.settings.namespace_access else {
            return Ok(());
        };
        self.access.lock().remove(ns);
        let api: Api<RoleBinding> = Api::namespaced(self.client.clone(), ns);
        match api.delete(&a.binding, &Default::default()).await {
            Ok(_) => {
                tracing::info!(namespace = ns, binding = %a.binding, "namespace access removed");
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Patches `kubegost.io/config-hash` on pods (a missing pod is fine).
    pub async fn nudge(&self, ns: &str, nudges: &[reconcile::PodNudge]) -> Result<(), Error> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        for n in nudges {
            let patch = serde_json::json!({"metadata": {"annotations": {
                reconcile::CONFIG_HASH_ANNOTATION: n.hash,
            }}});
            match api
                .patch(&n.pod, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    tracing::debug!(namespace = ns, pod = %n.pod, hash = %n.hash, "pod config hash updated")
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Publishes a failed reconcile as a Warning Event on the object (once per distinct error).
    pub async fn publish_error<K: Resource<DynamicType = ()>>(&self, obj: &K, err: &Error) {
        let key = key_of(obj);
        let msg = err.to_string();
        {
            let mut last = self.last_error.lock();
            if last.get(&key) == Some(&msg) {
                return;
            }
            last.insert(key, msg.clone());
        }
        self.publish(
            obj,
            &[EventNote {
                warning: true,
                reason: "ReconcileFailed".into(),
                note: format!("{msg} (retrying)"),
            }],
            "Reconcile",
        )
        .await;
    }

    fn record(&self, controller: &str, key: String, started: Instant, err: Option<&Error>) {
        self.metrics
            .reconciled(controller, started.elapsed(), err.map(Error::metric_label));
        if err.is_none() {
            self.failures.lock().remove(&key);
            self.last_error.lock().remove(&key);
        }
    }

    fn backoff(&self, key: String) -> Duration {
        let mut f = self.failures.lock();
        let n = f.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        // 1 s, 2 s, 4 s … at most 5 minutes
        Duration::from_secs(1u64 << (*n - 1).min(8)).min(Duration::from_secs(300))
    }
}

/// Now, to the second (what the API server stores for condition times).
pub(crate) fn now() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    let t = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::from_second(t.as_second()).unwrap_or(t),
    )
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn key_of<K: Resource>(o: &K) -> String {
    format!(
        "{}/{}",
        o.meta().namespace.clone().unwrap_or_default(),
        o.meta().name.clone().unwrap_or_default()
    )
}

fn api_for<K>(client: &Client, ns: &Option<String>) -> Api<K>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs both controllers until `stop` is cancelled (then lets in-flight reconciles finish).
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    reporter: Reporter,
    stop: CancellationToken,
) {
    let ns = settings.watch_namespace.clone();
    let wc = watcher::Config::default();
    let concurrency = settings.concurrency.max(1);

    // GostService controller and the stores its reconciles read
    // each watch has its own backoff (a failing one does not hold back the others' events);
    // the controller's trigger stream only pauses briefly on the errors they pass on
    let (gostservices, gsvc_writer) = reflector::store::<GostService>();
    let gsvc_main = watcher(api_for::<GostService>(&client, &ns), wc.clone())
        .backoff(WatchBackoff::default())
        .reflect(gsvc_writer)
        .applied_objects();
    let gsvc_ctrl = Controller::for_stream(gsvc_main, gostservices.clone());
    let (chains, chain_writer) = reflector::store::<GostChain>();
    let chain_stream = watcher(api_for::<GostChain>(&client, &ns), wc.clone())
        .backoff(WatchBackoff::default())
        .reflect(chain_writer)
        .touched_objects();
    let (pods, pod_writer) = reflector::store::<PartialObjectMeta<Pod>>();
    let pod_stream = watcher(api_for::<PartialObjectMeta<Pod>>(&client, &ns), wc.clone())
        .backoff(WatchBackoff::default())
        .reflect(pod_writer)
        .touched_objects();
    let secret_stream = watcher(
        api_for::<PartialObjectMeta<Secret>>(&client, &ns),
        wc.clone(),
    )
    .backoff(WatchBackoff::default())
    .touched_objects();

    let ctx = Arc::new(Context {
        client: client.clone(),
        settings: settings.clone(),
        gostservices: gostservices.clone(),
        chains: chains.clone(),
        pods: pods.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        metrics,
        access: Mutex::new(HashSet::new()),
        failures: Mutex::new(HashMap::new()),
        last_error: Mutex::new(HashMap::new()),
    });

    // a GostService's spec change or deletion can start or end a conflict with the others of
    // its namespace that may share a pod with it (before or after the change); status writes
    // trigger nobody (with every change reconciling every peer, 1,000 GostServices in one
    // namespace did not converge in 7 minutes)
    let peers = Arc::new(Mutex::new(PeerTriggers::default()));
    let (g4, pods4) = (gostservices.clone(), pods.clone());
    let peer_stream = watcher(api_for::<GostService>(&client, &ns), wc.clone())
        .backoff(WatchBackoff::default())
        .filter_map(|ev| std::future::ready(ev.ok()))
        .flat_map(move |ev| futures::stream::iter(peers.lock().refs(&g4, &pods4, ev)));
    let (g1, g2, g3) = (
        gostservices.clone(),
        gostservices.clone(),
        gostservices.clone(),
    );
    let chains_for_secrets = chains.clone();
    let stop1 = stop.clone();
    let gsvc_run = gsvc_ctrl
        .trigger_backoff(TriggerPause)
        .with_config(
            ControllerConfig::default()
                .concurrency(concurrency)
                .debounce(Duration::from_millis(200)),
        )
        .watches_stream(chain_stream, move |c: GostChain| map_chain(&g1, &c))
        .watches_stream(pod_stream, move |p: PartialObjectMeta<Pod>| {
            map_pod(&g2, &p)
        })
        .reconcile_on(peer_stream)
        .watches_stream(secret_stream, move |s: PartialObjectMeta<Secret>| {
            map_secret(&g3, &chains_for_secrets, &s)
        })
        .graceful_shutdown_on(async move { stop1.cancelled().await })
        .run(
            gostservice::reconcile,
            gostservice::error_policy,
            Arc::clone(&ctx),
        )
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "gostservice controller");
            }
        });

    // GostChain controller
    let (chain_store, chain_main_writer) = reflector::store::<GostChain>();
    let chain_main = watcher(api_for::<GostChain>(&client, &ns), wc.clone())
        .backoff(WatchBackoff::default())
        .reflect(chain_main_writer)
        .applied_objects();
    let chain_ctrl = Controller::for_stream(chain_main, chain_store.clone());
    let chain_store2 = chain_store.clone();
    let gsvc_stream = watcher(api_for::<GostService>(&client, &ns), wc.clone())
        .backoff(WatchBackoff::default())
        .touched_objects();
    let secret_stream2 = watcher(api_for::<PartialObjectMeta<Secret>>(&client, &ns), wc)
        .backoff(WatchBackoff::default())
        .touched_objects();
    let stop2 = stop.clone();
    let chain_run = chain_ctrl
        .trigger_backoff(TriggerPause)
        .with_config(
            ControllerConfig::default()
                .concurrency(concurrency)
                .debounce(Duration::from_millis(200)),
        )
        .watches_stream(gsvc_stream, move |g: GostService| {
            chains_of_namespace(&chain_store, &g)
        })
        .watches_stream(secret_stream2, move |s: PartialObjectMeta<Secret>| {
            chains_using_secret(&chain_store2, &s)
        })
        .graceful_shutdown_on(async move { stop2.cancelled().await })
        .run(gostchain::reconcile, gostchain::error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "gostchain controller");
            }
        });
    tracing::info!(namespace = ?ns, "controllers running");
    futures::join!(gsvc_run, chain_run);
    tracing::info!("controllers stopped");
}

// === mappers: a changed object → the objects to reconcile ===

fn same_ns<K: Resource>(a: &K, ns: &Option<String>) -> bool {
    a.meta().namespace == *ns
}

/// GostServices that reference a GostChain.
fn map_chain(gsvcs: &Store<GostService>, c: &GostChain) -> Vec<ObjectRef<GostService>> {
    let ns = c.namespace();
    let name = c.name_any();
    gsvcs
        .state()
        .iter()
        .filter(|g| same_ns(g.as_ref(), &ns) && render::referenced_chains(g).contains(&name))
        .map(|g| ObjectRef::from_obj(g.as_ref()))
        .collect()
}

/// The generation and selector last seen of each GostService, to tell spec changes from
/// status writes and to reach the peers its old selector shared pods with.
#[derive(Default)]
struct PeerTriggers {
    seen: HashMap<(Option<String>, String), (Option<i64>, LabelSelector)>,
}

impl PeerTriggers {
    /// The peers to reconcile for one watch event: none for the initial list (every
    /// GostService is reconciled then anyway) or a write that left the generation alone;
    /// after a spec change or a deletion, the others of the namespace that may share a pod
    /// with the old or the new selector.
    fn refs(
        &mut self,
        gsvcs: &Store<GostService>,
        pods: &Store<PartialObjectMeta<Pod>>,
        ev: watcher::Event<GostService>,
    ) -> Vec<ObjectRef<GostService>> {
        let (g, deleted) = match ev {
            watcher::Event::InitApply(g) => {
                self.seen.insert(
                    (g.namespace(), g.name_any()),
                    (g.metadata.generation, g.spec.selector.clone()),
                );
                return Vec::new();
            }
            watcher::Event::Apply(g) => (g, false),
            watcher::Event::Delete(g) => (g, true),
            watcher::Event::Init | watcher::Event::InitDone => return Vec::new(),
        };
        let key = (g.namespace(), g.name_any());
        let before = if deleted {
            self.seen.remove(&key)
        } else {
            self.seen
                .insert(key, (g.metadata.generation, g.spec.selector.clone()))
        };
        let mut selectors = vec![&g.spec.selector];
        match &before {
            Some((generation, _)) if !deleted && *generation == g.metadata.generation => {
                return Vec::new()
            }
            Some((_, old)) if old != &g.spec.selector => selectors.push(old),
            _ => {}
        }
        let ns = g.namespace();
        let pods: Vec<_> = pods
            .state()
            .into_iter()
            .filter(|p| p.metadata.namespace == ns)
            .collect();
        let metas: Vec<&ObjectMeta> = pods.iter().map(|p| &p.metadata).collect();
        gsvcs
            .state()
            .iter()
            .filter(|o| same_ns(o.as_ref(), &ns) && o.name_any() != g.name_any())
            .filter(|o| {
                selectors
                    .iter()
                    .any(|s| reconcile::may_share(s, &o.spec.selector, &metas))
            })
            .map(|o| ObjectRef::from_obj(o.as_ref()))
            .collect()
    }
}

/// GostServices that select a pod or that it runs.
fn map_pod(gsvcs: &Store<GostService>, p: &PartialObjectMeta<Pod>) -> Vec<ObjectRef<GostService>> {
    let ns = p.metadata.namespace.clone();
    let labels = p.metadata.labels.clone().unwrap_or_default();
    let runs = p
        .metadata
        .annotations
        .as_ref()
        .and_then(inject::injection_status)
        .map(|s| s.gost_services)
        .unwrap_or_default();
    gsvcs
        .state()
        .iter()
        .filter(|g| {
            same_ns(g.as_ref(), &ns)
                && (reconcile::selects(&g.spec.selector, &labels) || runs.contains(&g.name_any()))
        })
        .map(|g| ObjectRef::from_obj(g.as_ref()))
        .collect()
}

/// GostServices that own a config Secret or reference a Secret (directly or via a chain).
fn map_secret(
    gsvcs: &Store<GostService>,
    chains: &Store<GostChain>,
    s: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<GostService>> {
    let ns = s.metadata.namespace.clone();
    let name = s.metadata.name.clone().unwrap_or_default();
    let owners: Vec<String> = s
        .metadata
        .owner_references
        .iter()
        .flatten()
        .filter(|o| o.kind == "GostService" && o.api_version.starts_with("kubegost.io/"))
        .map(|o| o.name.clone())
        .collect();
    let ns_chains: Vec<GostChain> = chains
        .state()
        .iter()
        .filter(|c| same_ns(c.as_ref(), &ns))
        .map(|c| (**c).clone())
        .collect();
    gsvcs
        .state()
        .iter()
        .filter(|g| same_ns(g.as_ref(), &ns))
        .filter(|g| {
            owners.contains(&g.name_any())
                || reconcile::referenced_secrets(g, &ns_chains).contains(&name)
        })
        .map(|g| ObjectRef::from_obj(g.as_ref()))
        .collect()
}

/// Every GostChain of a GostService's namespace (its references may have moved).
fn chains_of_namespace(chains: &Store<GostChain>, g: &GostService) -> Vec<ObjectRef<GostChain>> {
    let ns = g.namespace();
    chains
        .state()
        .iter()
        .filter(|c| same_ns(c.as_ref(), &ns))
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

/// GostChains that reference a Secret.
fn chains_using_secret(
    chains: &Store<GostChain>,
    s: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<GostChain>> {
    let ns = s.metadata.namespace.clone();
    let name = s.metadata.name.clone().unwrap_or_default();
    chains
        .state()
        .iter()
        .filter(|c| same_ns(c.as_ref(), &ns) && reconcile::chain_secrets(c).contains(&name))
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::utils::Backoff as _;

    fn gsvc(name: &str, app: &str, generation: i64) -> GostService {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kubegost.io/v1alpha1", "kind": "GostService",
            "metadata": {"name": name, "namespace": "ns", "generation": generation},
            "spec": {"selector": {"matchLabels": {"app": app}},
                     "services": [{"name": "p", "addr": ":8080", "handler": {"type": "http"}}]},
        }))
        .unwrap()
    }

    #[test]
    fn peers_are_reconciled_for_spec_changes_and_deletions_that_may_share_pods() {
        let (gsvcs, mut w) = reflector::store::<GostService>();
        let (pods, _pw) = reflector::store::<PartialObjectMeta<Pod>>();
        for g in [gsvc("a", "web", 1), gsvc("b", "web", 1), gsvc("c", "db", 1)] {
            w.apply_watcher_event(&watcher::Event::Apply(g));
        }
        let mut t = PeerTriggers::default();
        let names = |v: Vec<ObjectRef<GostService>>| -> Vec<String> {
            let mut n: Vec<String> = v.into_iter().map(|r| r.name).collect();
            n.sort();
            n
        };
        // the initial list triggers nobody (everything is reconciled then)
        for g in [gsvc("a", "web", 1), gsvc("b", "web", 1), gsvc("c", "db", 1)] {
            assert!(t
                .refs(&gsvcs, &pods, watcher::Event::InitApply(g))
                .is_empty());
        }
        // a status write (same generation) triggers nobody
        assert!(t
            .refs(&gsvcs, &pods, watcher::Event::Apply(gsvc("a", "web", 1)))
            .is_empty());
        // a spec change: the peers sharing its pods, not the one with other pods
        let r = t.refs(&gsvcs, &pods, watcher::Event::Apply(gsvc("a", "web", 2)));
        assert_eq!(names(r), ["b"]);
        // moving to other pods reaches the old peers and the new ones
        let r = t.refs(&gsvcs, &pods, watcher::Event::Apply(gsvc("a", "db", 3)));
        assert_eq!(names(r), ["b", "c"]);
        // a deletion reaches the peers of its last selector
        let r = t.refs(&gsvcs, &pods, watcher::Event::Delete(gsvc("a", "db", 3)));
        assert_eq!(names(r), ["c"]);
    }

    #[test]
    fn watch_backoff_doubles_to_five_seconds_with_jitter_and_resets() {
        let mut b = WatchBackoff::default();
        let pauses: Vec<Duration> = (&mut b).take(8).collect();
        for (i, p) in pauses.iter().enumerate() {
            let cap = WatchBackoff::MIN
                .saturating_mul(1 << i.min(10))
                .min(WatchBackoff::MAX);
            assert!(*p <= cap && *p >= cap / 2, "pause {i}: {p:?} (cap {cap:?})");
        }
        assert!(pauses[7] >= Duration::from_millis(2500));
        b.reset();
        assert!(b.next().unwrap() <= WatchBackoff::MIN);
    }
}
