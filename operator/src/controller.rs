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
    let gsvc_ctrl = Controller::new(api_for::<GostService>(&client, &ns), wc.clone());
    let gostservices = gsvc_ctrl.store();
    let (chains, chain_writer) = reflector::store::<GostChain>();
    let chain_stream = watcher(api_for::<GostChain>(&client, &ns), wc.clone())
        .default_backoff()
        .reflect(chain_writer)
        .touched_objects();
    let (pods, pod_writer) = reflector::store::<PartialObjectMeta<Pod>>();
    let pod_stream = watcher(api_for::<PartialObjectMeta<Pod>>(&client, &ns), wc.clone())
        .default_backoff()
        .reflect(pod_writer)
        .touched_objects();
    let secret_stream = watcher(
        api_for::<PartialObjectMeta<Secret>>(&client, &ns),
        wc.clone(),
    )
    .default_backoff()
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

    // a GostService change can start or end a conflict with the others of its namespace
    let peer_stream = watcher(api_for::<GostService>(&client, &ns), wc.clone())
        .default_backoff()
        .touched_objects();
    let (g1, g2, g3, g4) = (
        gostservices.clone(),
        gostservices.clone(),
        gostservices.clone(),
        gostservices.clone(),
    );
    let chains_for_secrets = chains.clone();
    let stop1 = stop.clone();
    let gsvc_run = gsvc_ctrl
        .with_config(
            ControllerConfig::default()
                .concurrency(concurrency)
                .debounce(Duration::from_millis(200)),
        )
        .watches_stream(chain_stream, move |c: GostChain| map_chain(&g1, &c))
        .watches_stream(pod_stream, move |p: PartialObjectMeta<Pod>| {
            map_pod(&g2, &p)
        })
        .watches_stream(peer_stream, move |g: GostService| map_peers(&g4, &g))
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
    let chain_ctrl = Controller::new(api_for::<GostChain>(&client, &ns), wc.clone());
    let chain_store = chain_ctrl.store();
    let chain_store2 = chain_store.clone();
    let gsvc_stream = watcher(api_for::<GostService>(&client, &ns), wc.clone())
        .default_backoff()
        .touched_objects();
    let secret_stream2 = watcher(api_for::<PartialObjectMeta<Secret>>(&client, &ns), wc)
        .default_backoff()
        .touched_objects();
    let stop2 = stop.clone();
    let chain_run = chain_ctrl
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

/// The other GostServices of a GostService's namespace: conflicts are between them. Every
/// change maps (the watch cannot tell a spec change from a status one, and the store may not
/// hold the newest object yet when a peer reconciles, so it must look again later); a reconcile
/// that finds nothing to do writes nothing, so this settles after one round.
fn map_peers(gsvcs: &Store<GostService>, g: &GostService) -> Vec<ObjectRef<GostService>> {
    let ns = g.namespace();
    let me = g.name_any();
    gsvcs
        .state()
        .iter()
        .filter(|o| same_ns(o.as_ref(), &ns) && o.name_any() != me)
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
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
