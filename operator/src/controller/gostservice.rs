//! The GostService reconciler: finalizer, then the plan of [`crate::reconcile::plan_gostservice`]
//! carried out; on deletion the config Secret is emptied (sidecars stop the services) before
//! the finalizer goes.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::ResourceExt;

use super::{key_of, Context, Error, RESYNC};
use crate::crd::GostService;
use crate::inject;
use crate::reconcile::{self, EventNote, GostServiceInputs, PodNudge, FIELD_MANAGER, FINALIZER};
use crate::render;

const CONTROLLER: &str = "gostservice";

/// Reconciles one GostService.
pub async fn reconcile(g: Arc<GostService>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let key = key_of(g.as_ref());
    let ns = g
        .namespace()
        .ok_or_else(|| Error::NoNamespace(key.clone()))?;
    let api: Api<GostService> = Api::namespaced(ctx.client.clone(), &ns);
    let snapshot = Arc::clone(&g);
    let result = finalizer(&api, FINALIZER, g, |ev| async {
        match ev {
            Finalizer::Apply(g) => apply(&g, &ns, &ctx).await,
            Finalizer::Cleanup(g) => cleanup(&g, &ns, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    if let Err(e) = &result {
        ctx.publish_error(snapshot.as_ref(), e).await;
    }
    ctx.record(CONTROLLER, key, started, result.as_ref().err());
    result
}

/// Retry with a per-object exponential backoff.
pub fn error_policy(g: Arc<GostService>, err: &Error, ctx: Arc<Context>) -> Action {
    let wait = ctx.backoff(key_of(g.as_ref()));
    tracing::warn!(gostservice = %key_of(g.as_ref()), error = %err, retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}

async fn apply(g: &GostService, ns: &str, ctx: &Context) -> Result<Action, Error> {
    ctx.ensure_access(ns).await?;
    let name = g.name_any();
    let chains = ctx.chains_in(ns);
    let gostservices = ctx.gostservices_in(ns);
    let pods = ctx.pods_in(ns);
    let secrets = ctx
        .secrets(ns, reconcile::referenced_secrets(g, &chains))
        .await?;
    let secret_api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let current = secret_api
        .get_opt(&render::config_secret_name(&name))
        .await?;
    let plan = reconcile::plan_gostservice(&GostServiceInputs {
        gsvc: g,
        chains: &chains,
        secrets: &secrets,
        namespace_gostservices: &gostservices,
        pods: &pods,
        current_secret: current.as_ref(),
        render: &ctx.settings.render,
        inject: &ctx.settings.inject,
        now: super::now(),
    });
    if let Some(s) = &plan.secret {
        let sname = render::config_secret_name(&name);
        secret_api
            .patch(
                &sname,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(s),
            )
            .await?;
        tracing::info!(gostservice = %key_of(g), secret = %sname, hash = ?plan.status.config_hash, "config Secret written");
    }
    ctx.nudge(ns, &plan.nudges).await?;
    if !plan.restart.is_empty() {
        if let Some(ev) = rollout(ctx, ns, &plan.restart).await? {
            ctx.publish(g, &[ev], "Rollout").await;
        }
    }
    if plan.status_changed {
        let api: Api<GostService> = Api::namespaced(ctx.client.clone(), ns);
        let body = serde_json::json!({
            "apiVersion": "kubegost.io/v1alpha1",
            "kind": "GostService",
            "status": plan.status,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    }
    ctx.publish(g, &plan.events, "Reconcile").await;
    Ok(Action::requeue(RESYNC))
}

async fn cleanup(g: &GostService, ns: &str, ctx: &Context) -> Result<Action, Error> {
    let name = g.name_any();
    let sname = render::config_secret_name(&name);
    let secret_api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let empty = reconcile::cleanup_secret(g);
    let hash = reconcile::stored_hash(&empty);
    if secret_api.get_opt(&sname).await?.is_some() {
        secret_api
            .patch(
                &sname,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&empty),
            )
            .await?;
        tracing::info!(gostservice = %key_of(g), secret = %sname, "config emptied before deletion");
    }
    // make the kubelet deliver the empty config now
    let others = ctx.gostservices_in(ns);
    let nudges: Vec<PodNudge> = ctx
        .pods_in(ns)
        .iter()
        .filter_map(|p| {
            let st = inject::injection_status(p.annotations.as_ref()?)?;
            st.gost_services.contains(&name).then(|| PodNudge {
                pod: p.name.clone().unwrap_or_default(),
                hash: reconcile::pod_config_hash(&st.gost_services, &others, (&name, &hash)),
            })
        })
        .collect();
    ctx.nudge(ns, &nudges).await?;
    ctx.publish(
        g,
        &[EventNote {
            warning: false,
            reason: "ConfigRemoved".into(),
            note: format!(
                "services stopped in {} running sidecars; Secret {sname} goes with the GostService",
                nudges.len()
            ),
        }],
        "Delete",
    )
    .await;
    let live = others
        .iter()
        .filter(|o| o.name_any() != name && o.metadata.deletion_timestamp.is_none())
        .count();
    if live == 0 {
        ctx.drop_access(ns).await?;
    }
    Ok(Action::await_change())
}

/// Annotation on a workload's pod template whose change makes it roll its pods.
pub const RESTARTED_AT_ANNOTATION: &str = "kubegost.io/restartedAt";

/// `rollout: Automatic`: restarts one workload whose pods are outdated, and none while a
/// workload of them is still rolling. Pods owned by a ReplicaSet restart through its
/// Deployment; StatefulSets and DaemonSets directly; other owners are left alone.
async fn rollout(
    ctx: &Context,
    ns: &str,
    owners: &[(String, String)],
) -> Result<Option<EventNote>, Error> {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
    let mut workloads: Vec<(String, String)> = Vec::new();
    for (kind, name) in owners {
        let w = match kind.as_str() {
            "ReplicaSet" => {
                let rs: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), ns);
                rs.get_opt(name).await?.and_then(|r| {
                    r.metadata
                        .owner_references
                        .unwrap_or_default()
                        .into_iter()
                        .find(|o| o.kind == "Deployment" && o.controller == Some(true))
                        .map(|o| ("Deployment".to_string(), o.name))
                })
            }
            "StatefulSet" | "DaemonSet" => Some((kind.clone(), name.clone())),
            _ => None,
        };
        if let Some(w) = w.filter(|w| !workloads.contains(w)) {
            workloads.push(w);
        }
    }
    workloads.sort();
    // one at a time: wait while any of them is still rolling out
    for (kind, name) in &workloads {
        let rolling = match kind.as_str() {
            "Deployment" => Api::<Deployment>::namespaced(ctx.client.clone(), ns)
                .get_opt(name)
                .await?
                .is_some_and(|d| {
                    let st = d.status.unwrap_or_default();
                    let want = d.spec.replicas.unwrap_or(1);
                    st.observed_generation < d.metadata.generation
                        || st.updated_replicas.unwrap_or(0) < want
                        || st.replicas.unwrap_or(0) > want
                        || st.available_replicas.unwrap_or(0) < want
                }),
            "StatefulSet" => Api::<StatefulSet>::namespaced(ctx.client.clone(), ns)
                .get_opt(name)
                .await?
                .is_some_and(|d| {
                    let st = d.status.unwrap_or_default();
                    st.observed_generation < d.metadata.generation
                        || st.update_revision != st.current_revision
                }),
            _ => Api::<DaemonSet>::namespaced(ctx.client.clone(), ns)
                .get_opt(name)
                .await?
                .is_some_and(|d| {
                    let st = d.status.unwrap_or_default();
                    st.observed_generation < d.metadata.generation
                        || st.updated_number_scheduled.unwrap_or(0) < st.desired_number_scheduled
                }),
        };
        if rolling {
            tracing::debug!(namespace = ns, workload = %format!("{kind}/{name}"), "waiting for a rollout to finish");
            return Ok(None);
        }
    }
    let Some((kind, name)) = workloads.first() else {
        return Ok(None);
    };
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let patch = serde_json::json!({"spec": {"template": {"metadata": {"annotations": {
        RESTARTED_AT_ANNOTATION: now,
    }}}}});
    let pp = PatchParams::default();
    match kind.as_str() {
        "Deployment" => {
            Api::<Deployment>::namespaced(ctx.client.clone(), ns)
                .patch(name, &pp, &Patch::Merge(&patch))
                .await?;
        }
        "StatefulSet" => {
            Api::<StatefulSet>::namespaced(ctx.client.clone(), ns)
                .patch(name, &pp, &Patch::Merge(&patch))
                .await?;
        }
        _ => {
            Api::<DaemonSet>::namespaced(ctx.client.clone(), ns)
                .patch(name, &pp, &Patch::Merge(&patch))
                .await?;
        }
    }
    tracing::info!(namespace = ns, workload = %format!("{kind}/{name}"), "restarted for outdated sidecars (rollout: Automatic)");
    Ok(Some(EventNote {
        warning: false,
        reason: "RolloutRestarted".into(),
        note: format!("{kind} {name} restarted: its pods run outdated sidecar settings"),
    }))
}
