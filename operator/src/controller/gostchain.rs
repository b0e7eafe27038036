//! The GostChain reconciler: status only (`Accepted`, `Ready`, `referencedBy`) and Events; the
//! GostServices that use a chain re-render on its change through their own controller.

use std::sync::Arc;
use std::time::Instant;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::ResourceExt;

use super::{key_of, Context, Error, RESYNC};
use crate::crd::GostChain;
use crate::reconcile::{self, GostChainInputs, FIELD_MANAGER};

const CONTROLLER: &str = "gostchain";

/// Reconciles one GostChain.
pub async fn reconcile(c: Arc<GostChain>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let key = key_of(c.as_ref());
    let result = apply(&c, &ctx).await;
    if let Err(e) = &result {
        ctx.publish_error(c.as_ref(), e).await;
    }
    ctx.record(CONTROLLER, key, started, result.as_ref().err());
    result
}

/// Retry with a per-object exponential backoff.
pub fn error_policy(c: Arc<GostChain>, err: &Error, ctx: Arc<Context>) -> Action {
    let wait = ctx.backoff(key_of(c.as_ref()));
    tracing::warn!(gostchain = %key_of(c.as_ref()), error = %err, retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}

async fn apply(c: &GostChain, ctx: &Context) -> Result<Action, Error> {
    if c.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = c.namespace().ok_or_else(|| Error::NoNamespace(key_of(c)))?;
    let secrets = ctx.secrets(&ns, reconcile::chain_secrets(c)).await?;
    let gostservices = ctx.gostservices_in(&ns);
    let plan = reconcile::plan_gostchain(&GostChainInputs {
        chain: c,
        secrets: &secrets,
        namespace_gostservices: &gostservices,
        render: &ctx.settings.render,
        now: super::now(),
    });
    if plan.status_changed {
        let api: Api<GostChain> = Api::namespaced(ctx.client.clone(), &ns);
        let body = serde_json::json!({
            "apiVersion": "kubegost.io/v1alpha1",
            "kind": "GostChain",
            "status": plan.status,
        });
        api.patch_status(
            &c.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    }
    ctx.publish(c, &plan.events, "Reconcile").await;
    Ok(Action::requeue(RESYNC))
}
