//! Reconcile decisions as pure functions: the objects a controller read → what it should write
//! (the config Secret or nothing, the status, Events, pod annotations). The controllers in
//! [`crate::controller`] only fetch these inputs and carry the plan out.
//!
//! GostService rules:
//! - The spec is rendered with its GostChains and Secrets and checked by the engine in strict
//!   mode ([`render::render_checked`]).
//! - Clean render, no conflict: the config Secret gets the render (written only if it differs).
//! - Any error (missing chain or Secret, a value the engine rejects, a conflict with another
//!   GostService): the conditions name the field, and a Secret that already exists keeps its
//!   content, so running sidecars keep serving the last good config. Only when there is no
//!   Secret yet is one written, with the failing services as fail-closed placeholders (they
//!   refuse connections with the reason) so the pods can start and nothing goes direct.
//! - On deletion the Secret is emptied first (the sidecars stop those services) and the
//!   finalizer is removed after.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    Condition, LabelSelector, LabelSelectorRequirement, ObjectMeta, Time,
};
use k8s_openapi::ByteString;
use kube::{Resource, ResourceExt};

use crate::crd::{GostChain, GostChainStatus, GostService, GostServiceStatus};
use crate::inject::{self, InjectSettings};
use crate::render::{self, detect_conflicts, RenderError, RenderSettings};
use crate::status::{self, reasons, types, Desired};

/// Field manager of every write the reconcilers make.
pub const FIELD_MANAGER: &str = "gost-operator";
/// Finalizer that empties the config Secret before a GostService goes.
pub const FINALIZER: &str = "kubegost.io/config-cleanup";
/// Label on every object the operator creates.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "gost-operator";
/// Label naming the GostService a config Secret belongs to.
pub const GOSTSERVICE_LABEL: &str = "kubegost.io/gostservice";
/// Annotation with the hash of a config Secret's content (on the Secret) and with the combined
/// hash of a pod's config Secrets (on the pod: patching it makes the kubelet refresh the
/// mounted Secrets at once instead of on its next periodic sync).
pub const CONFIG_HASH_ANNOTATION: &str = "kubegost.io/config-hash";

/// An Event to publish about the reconciled object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventNote {
    /// `Normal` or `Warning`.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: String,
    /// The message.
    pub note: String,
}

/// A pod annotation patch: `kubegost.io/config-hash` to `hash` on pod `pod`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNudge {
    /// Pod name (same namespace).
    pub pod: String,
    /// New annotation value.
    pub hash: String,
}

/// What a GostService reconcile reads.
pub struct GostServiceInputs<'a> {
    /// The GostService.
    pub gsvc: &'a GostService,
    /// The GostChains of its namespace.
    pub chains: &'a [GostChain],
    /// The Secrets it references that exist.
    pub secrets: &'a [Secret],
    /// Every GostService of its namespace (itself included), for conflicts and pod hashes.
    pub namespace_gostservices: &'a [GostService],
    /// Metadata of the pods of its namespace.
    pub pods: &'a [ObjectMeta],
    /// Its config Secret as stored, if any.
    pub current_secret: Option<&'a Secret>,
    /// Render settings.
    pub render: &'a RenderSettings,
    /// Injection settings (for outdated pods).
    pub inject: &'a InjectSettings,
    /// The time to stamp on changed conditions.
    pub now: Time,
}

/// What a GostService reconcile should do.
#[derive(Debug, Clone, PartialEq)]
pub struct GostServicePlan {
    /// The config Secret to apply (server-side), or `None` when the stored one is right or
    /// must be kept.
    pub secret: Option<Secret>,
    /// The status to store (equal to the stored one when nothing changed).
    pub status: GostServiceStatus,
    /// Whether `status` differs from the stored status.
    pub status_changed: bool,
    /// Events to publish.
    pub events: Vec<EventNote>,
    /// Pod annotations to patch.
    pub nudges: Vec<PodNudge>,
    /// With `rollout: Automatic`: the owners (kind, name) of outdated pods, sorted; the
    /// controller restarts one workload at a time.
    pub restart: Vec<(String, String)>,
}

// === selectors ===

/// Whether `selector` matches `labels`. An operator other than `In`, `NotIn`, `Exists` and
/// `DoesNotExist` matches nothing ([`selector_error`] reports it).
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let ml = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    ml && selector
        .match_expressions
        .iter()
        .flatten()
        .all(|r| requirement(r, labels))
}

fn requirement(r: &LabelSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" => labels.get(&r.key).is_some_and(|v| values.contains(v)),
        "NotIn" => labels.get(&r.key).is_none_or(|v| !values.contains(v)),
        "Exists" => labels.contains_key(&r.key),
        "DoesNotExist" => !labels.contains_key(&r.key),
        _ => false,
    }
}

/// What is wrong with a selector, naming the field and what is accepted.
pub fn selector_error(selector: &LabelSelector) -> Option<String> {
    for (i, r) in selector.match_expressions.iter().flatten().enumerate() {
        let field = format!("spec.selector.matchExpressions[{i}]");
        let n = r.values.as_ref().map_or(0, Vec::len);
        match r.operator.as_str() {
            "In" | "NotIn" if n == 0 => {
                return Some(format!(
                    "{field}.values: operator {} needs at least one value",
                    r.operator
                ))
            }
            "Exists" | "DoesNotExist" if n > 0 => {
                return Some(format!(
                    "{field}.values: operator {} takes no values",
                    r.operator
                ))
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            op => {
                return Some(format!(
                    "{field}.operator: {op:?} is not an operator (accepted: In, NotIn, Exists, DoesNotExist)"
                ))
            }
        }
    }
    None
}

/// Whether two selectors can share a pod: one implies the other, or a pod of `pods` is
/// selected by both (what [`conflicts_of`] compares GostServices for).
pub fn may_share(a: &LabelSelector, b: &LabelSelector, pods: &[&ObjectMeta]) -> bool {
    implies(a, b)
        || implies(b, a)
        || pods.iter().any(|p| {
            let l = labels(p);
            selects(a, &l) && selects(b, &l)
        })
}

/// Whether every pod `a` selects is also selected by `b` (decided on `matchLabels` only; a
/// selector with expressions implies nothing here).
fn implies(a: &LabelSelector, b: &LabelSelector) -> bool {
    let no_expr = |s: &LabelSelector| s.match_expressions.as_ref().is_none_or(Vec::is_empty);
    no_expr(a)
        && no_expr(b)
        && b.match_labels
            .iter()
            .flatten()
            .all(|(k, v)| a.match_labels.as_ref().and_then(|m| m.get(k)) == Some(v))
}

fn labels(m: &ObjectMeta) -> BTreeMap<String, String> {
    m.labels.clone().unwrap_or_default()
}

fn annotations(m: &ObjectMeta) -> BTreeMap<String, String> {
    m.annotations.clone().unwrap_or_default()
}

// === GostService ===

/// Secrets a GostService references, directly or through the GostChains it uses (found or
/// not): what its reconcile reads and what a Secret change maps back from.
pub fn referenced_secrets(gsvc: &GostService, chains: &[GostChain]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for s in &gsvc.spec.services {
        if let Some(h) = &s.handler {
            out.extend(h.auth.as_ref().map(|a| a.secret_ref.name.clone()));
            out.extend(h.tls.as_ref().map(|t| t.secret_ref.name.clone()));
        }
        if let Some(l) = &s.listener {
            out.extend(l.auth.as_ref().map(|a| a.secret_ref.name.clone()));
            out.extend(l.tls.as_ref().map(|t| t.secret_ref.name.clone()));
        }
    }
    let used = render::referenced_chains(gsvc);
    for c in chains.iter().filter(|c| used.contains(&c.name_any())) {
        out.extend(chain_secrets(c));
    }
    out
}

/// Secrets a GostChain references.
pub fn chain_secrets(c: &GostChain) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for n in c.spec.hops.iter().flat_map(|h| &h.nodes) {
        for (auth, tls) in [
            n.connector
                .as_ref()
                .map(|x| (x.auth.as_ref(), x.tls.as_ref())),
            n.dialer.as_ref().map(|x| (x.auth.as_ref(), x.tls.as_ref())),
        ]
        .into_iter()
        .flatten()
        {
            out.extend(auth.map(|a| a.secret_ref.name.clone()));
            out.extend(
                tls.and_then(|t| t.secret_ref.as_ref())
                    .map(|r| r.name.clone()),
            );
        }
    }
    out
}

/// The GostServices of `all` whose selector matches `pod_labels`, sorted by name.
pub fn selecting<'a>(
    all: &'a [GostService],
    pod_labels: &BTreeMap<String, String>,
) -> Vec<&'a GostService> {
    let mut v: Vec<&GostService> = all
        .iter()
        .filter(|g| {
            g.metadata.deletion_timestamp.is_none() && selects(&g.spec.selector, pod_labels)
        })
        .collect();
    v.sort_by_key(|g| g.name_any());
    v
}

/// Conflicts of `gsvc` with the other GostServices of its namespace: services that would share
/// a name or an address in a pod both select. Two GostServices share pods when a pod exists
/// that both select, or when one selector implies the other (so every pod of one runs both).
pub fn conflicts_of(gsvc: &GostService, all: &[GostService], pods: &[ObjectMeta]) -> Vec<String> {
    let me = gsvc.name_any();
    let mut msgs = BTreeSet::new();
    for other in all.iter().filter(|o| o.name_any() != me) {
        if other.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let share = pods.iter().any(|p| {
            let l = labels(p);
            selects(&gsvc.spec.selector, &l) && selects(&other.spec.selector, &l)
        }) || implies(&gsvc.spec.selector, &other.spec.selector)
            || implies(&other.spec.selector, &gsvc.spec.selector);
        if !share {
            continue;
        }
        for c in detect_conflicts(&[gsvc, other]) {
            if c.involves(&me) {
                msgs.insert(c.message_for(&me));
            }
        }
    }
    // address clashes inside this GostService
    for c in detect_conflicts(&[gsvc]) {
        msgs.insert(c.message_for(&me));
    }
    msgs.into_iter().collect()
}

/// [`conflicts_of`] plus services that would bind the sidecar's health port.
pub fn all_conflicts(
    gsvc: &GostService,
    all: &[GostService],
    pods: &[ObjectMeta],
    inject: &InjectSettings,
) -> Vec<String> {
    let mut v = conflicts_of(gsvc, all, pods);
    v.extend(render::reserved_port_clashes(gsvc, inject.health_port()));
    v
}

/// Data of a Secret as text (`data` and `stringData`); `None` for a value that is not UTF-8.
fn secret_text(s: &Secret) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    for (k, v) in s.data.iter().flatten() {
        out.insert(k.clone(), String::from_utf8(v.0.clone()).ok());
    }
    for (k, v) in s.string_data.iter().flatten() {
        out.insert(k.clone(), Some(v.clone()));
    }
    out
}

/// The config Secret of a GostService with `data`.
pub fn config_secret(gsvc: &GostService, data: &BTreeMap<String, String>) -> Secret {
    let name = gsvc.name_any();
    Secret {
        metadata: ObjectMeta {
            name: Some(render::config_secret_name(&name)),
            namespace: gsvc.namespace(),
            labels: Some(BTreeMap::from([
                (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
                (GOSTSERVICE_LABEL.to_string(), name.clone()),
            ])),
            annotations: Some(BTreeMap::from([(
                CONFIG_HASH_ANNOTATION.to_string(),
                render::config_hash(data),
            )])),
            owner_references: gsvc.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes())))
                .collect(),
        ),
        ..Default::default()
    }
}

/// Whether the stored Secret already is `want` (data, our labels and annotation, owner).
pub fn secret_up_to_date(stored: &Secret, want: &Secret) -> bool {
    let sub = |a: &Option<BTreeMap<String, String>>, b: &Option<BTreeMap<String, String>>| {
        b.iter()
            .flatten()
            .all(|(k, v)| a.as_ref().and_then(|m| m.get(k)) == Some(v))
    };
    let owners = |s: &Secret| {
        s.metadata
            .owner_references
            .iter()
            .flatten()
            .map(|o| o.uid.clone())
            .collect::<BTreeSet<_>>()
    };
    secret_text(stored) == secret_text(want)
        && sub(&stored.metadata.labels, &want.metadata.labels)
        && sub(&stored.metadata.annotations, &want.metadata.annotations)
        && owners(want).is_subset(&owners(stored))
        && stored.type_ == want.type_
}

/// Hash of a stored config Secret's content.
pub fn stored_hash(s: &Secret) -> String {
    let data: BTreeMap<String, String> = secret_text(s)
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect();
    render::config_hash(&data)
}

/// The `kubegost.io/config-hash` value of a pod running `gostservices`: a hash over their
/// names and the config hashes in their status (`own` overrides the one being reconciled).
pub fn pod_config_hash(gostservices: &[String], all: &[GostService], own: (&str, &str)) -> String {
    let data: BTreeMap<String, String> = gostservices
        .iter()
        .map(|n| {
            let h = if n == own.0 {
                own.1.to_string()
            } else {
                all.iter()
                    .find(|g| g.name_any() == *n)
                    .and_then(|g| g.status.as_ref())
                    .and_then(|s| s.config_hash.clone())
                    .unwrap_or_default()
            };
            (n.clone(), h)
        })
        .collect();
    render::config_hash(&data)
}

/// Plans a GostService reconcile.
pub fn plan_gostservice(i: &GostServiceInputs<'_>) -> GostServicePlan {
    let g = i.gsvc;
    let name = g.name_any();
    let generation = g.metadata.generation;
    let stored = g.status.clone().unwrap_or_default();

    let rendered = render::render_checked(g, i.chains, i.secrets, i.render);
    let selector_err = selector_error(&g.spec.selector);
    let conflicts = all_conflicts(g, i.namespace_gostservices, i.pods, i.inject);
    let unresolved: Vec<&RenderError> = rendered
        .errors
        .iter()
        .filter(|e| e.is_unresolved_ref())
        .collect();
    let invalid: Vec<&RenderError> = rendered
        .errors
        .iter()
        .filter(|e| !e.is_unresolved_ref())
        .collect();
    let data = rendered.secret_data(&name, g.spec.process);

    // Accepted
    let mut conds = Vec::new();
    let join = |v: Vec<String>| v.join("; ");
    conds.push(if let Some(e) = &selector_err {
        Desired::fail(types::ACCEPTED, reasons::INVALID, e.clone())
    } else if let Err(e) = &data {
        Desired::fail(
            types::ACCEPTED,
            reasons::INVALID,
            format!("the rendered config cannot be written: {e}"),
        )
    } else if !invalid.is_empty() {
        Desired::fail(
            types::ACCEPTED,
            reasons::INVALID,
            join(invalid.iter().map(|e| e.to_string()).collect()),
        )
    } else if !conflicts.is_empty() {
        Desired::fail(types::ACCEPTED, reasons::CONFLICT, join(conflicts.clone()))
    } else {
        Desired::ok(types::ACCEPTED, reasons::ACCEPTED, "the spec is valid")
    });
    // ResolvedRefs
    conds.push(match unresolved.first() {
        None => Desired::ok(
            types::RESOLVED_REFS,
            reasons::RESOLVED_REFS,
            "every referenced GostChain and Secret exists",
        ),
        Some(first) => Desired::fail(
            types::RESOLVED_REFS,
            first.reason(),
            join(unresolved.iter().map(|e| e.to_string()).collect()),
        ),
    });

    // the Secret
    let clean = selector_err.is_none()
        && rendered.errors.is_empty()
        && conflicts.is_empty()
        && data.is_ok();
    let secret_name = render::config_secret_name(&name);
    let mut secret = None;
    let mut applied_hash = String::new();
    // the Secret as this render would write it, and whether the stored one already is that
    let want = data
        .as_ref()
        .ok()
        .map(|d| (config_secret(g, d), render::config_hash(d)));
    let matches = match (&want, i.current_secret) {
        (Some((w, _)), Some(c)) => secret_up_to_date(c, w),
        _ => false,
    };
    // with errors, a stored Secret that holds something else is the last good config: kept
    let kept = !clean && i.current_secret.is_some() && !matches;
    if let (false, Some((w, h))) = (kept, &want) {
        applied_hash = h.clone();
        if !matches {
            secret = Some(w.clone());
        }
    } else if let Some(current) = i.current_secret {
        applied_hash = stored_hash(current);
    }
    conds.push(if clean {
        Desired::ok(
            types::READY,
            reasons::CONFIG_APPLIED,
            format!("config {applied_hash} is in Secret {secret_name}"),
        )
    } else if kept {
        Desired::fail(
            types::READY,
            reasons::PREVIOUS_CONFIG_KEPT,
            format!(
                "the new config has errors; Secret {secret_name} keeps the previous config {applied_hash}"
            ),
        )
    } else if !rendered.failed_services.is_empty() {
        Desired::fail(
            types::READY,
            reasons::SERVICES_FAIL_CLOSED,
            format!(
                "services {} fail closed (they refuse every connection) in Secret {secret_name}",
                rendered.failed_services.join(", ")
            ),
        )
    } else {
        Desired::fail(
            types::READY,
            reasons::CONFLICT,
            format!(
                "config {applied_hash} is in Secret {secret_name}, but pods that select a conflicting GostService too are not injected (see Accepted)"
            ),
        )
    });

    // pods
    let mut selected = 0;
    let mut injected = 0;
    let mut outdated = Vec::new();
    // selected, not opted out, but running without this GostService's sidecar: created before
    // the GostService or its namespace's injection, or admitted while the webhook was
    // unavailable under failurePolicy Ignore. Reported, never restarted for (a namespace
    // without injection would restart its workloads forever).
    let mut missing = Vec::new();
    let mut restart = Vec::new();
    let mut nudges = Vec::new();
    let hash_ok = !applied_hash.is_empty();
    for p in i.pods {
        // a terminating pod is on its way out: not counted, not outdated, not restarted for
        // (counting it would make `rollout: Automatic` restart the workload again)
        if p.deletion_timestamp.is_some() {
            continue;
        }
        let l = labels(p);
        let ann = annotations(p);
        let now_selecting = selecting(i.namespace_gostservices, &l);
        let selected_here = now_selecting.iter().any(|s| s.name_any() == name);
        let st = inject::injection_status(&ann);
        let runs_it = st.as_ref().is_some_and(|s| s.gost_services.contains(&name));
        if selected_here {
            selected += 1;
        }
        if !runs_it {
            if selected_here && l.get(inject::INJECT_LABEL).map(String::as_str) != Some("false") {
                missing.push(p.name.clone().unwrap_or_default());
            }
            continue;
        }
        injected += 1;
        let Some(st) = st else { continue };
        let recorded: Vec<String> = st.gost_services.clone();
        let current: Vec<String> = now_selecting.iter().map(|g| g.name_any()).collect();
        let restart_now = inject::restart_hash(&ann, &now_selecting, i.inject).ok();
        if recorded != current || restart_now.as_deref() != Some(st.restart_hash.as_str()) {
            tracing::debug!(pod = ?p.name, ?recorded, ?current, recorded_hash = %st.restart_hash, current_hash = ?restart_now, "pod outdated");
            outdated.push(p.name.clone().unwrap_or_default());
            if let Some(o) = p
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
            {
                let owner = (o.kind.clone(), o.name.clone());
                if !restart.contains(&owner) {
                    restart.push(owner);
                }
            }
        }
        if hash_ok && p.deletion_timestamp.is_none() {
            let want = pod_config_hash(&recorded, i.namespace_gostservices, (&name, &applied_hash));
            if ann.get(CONFIG_HASH_ANNOTATION) != Some(&want) {
                if let Some(pod) = &p.name {
                    nudges.push(PodNudge {
                        pod: pod.clone(),
                        hash: want,
                    });
                }
            }
        }
    }
    outdated.sort();
    missing.sort();
    conds.push(if outdated.is_empty() && missing.is_empty() {
        Desired::ok(
            types::PODS_UP_TO_DATE,
            reasons::UP_TO_DATE,
            format!("{injected} injected pods run the current settings"),
        )
    } else {
        let mut parts = Vec::new();
        if !outdated.is_empty() {
            parts.push(format!(
                "{} pods need a restart to pick up a change (process mode, hooks, image, resources or the GostServices selecting them): {}",
                outdated.len(),
                first_names(&outdated)
            ));
        }
        if !missing.is_empty() {
            parts.push(format!(
                "{} selected pods run without the sidecar (created before the GostService or the namespace's injection, or admitted while the webhook was unavailable with failurePolicy Ignore); delete or restart them to inject it: {}",
                missing.len(),
                first_names(&missing)
            ));
        }
        Desired::fail(
            types::PODS_UP_TO_DATE,
            if outdated.is_empty() {
                reasons::SIDECAR_MISSING
            } else {
                reasons::RESTART_NEEDED
            },
            parts.join("; "),
        )
    });

    let conditions = status::conditions(&stored.conditions, &conds, generation, &i.now);
    let events = events_for(
        &stored.conditions,
        &conditions,
        secret
            .is_some()
            .then(|| format!("rendered config {applied_hash} written to Secret {secret_name}")),
    );
    let status = GostServiceStatus {
        observed_generation: generation,
        conditions,
        selected_pods: selected,
        injected_pods: injected,
        outdated_pods: i32::try_from(outdated.len()).unwrap_or(i32::MAX),
        config_hash: (!applied_hash.is_empty()).then_some(applied_hash),
    };
    GostServicePlan {
        secret,
        status_changed: status != stored,
        status,
        events,
        nudges,
        restart: if g.spec.rollout == crate::crd::RolloutPolicy::Automatic {
            restart.sort();
            restart
        } else {
            Vec::new()
        },
    }
}

/// Events for conditions that changed: a Warning for each one that is False now, a Normal one
/// when Ready turns True, and `written` as a Normal `ConfigWritten` event.
fn events_for(stored: &[Condition], new: &[Condition], written: Option<String>) -> Vec<EventNote> {
    let mut out = Vec::new();
    for c in status::changed(stored, new) {
        if c.status == "False" {
            out.push(EventNote {
                warning: true,
                reason: c.reason.clone(),
                note: format!("{}: {}", c.type_, c.message),
            });
        } else if c.type_ == types::READY {
            out.push(EventNote {
                warning: false,
                reason: c.reason.clone(),
                note: c.message.clone(),
            });
        }
    }
    if let Some(w) = written {
        out.push(EventNote {
            warning: false,
            reason: "ConfigWritten".into(),
            note: w,
        });
    }
    out
}

/// The config Secret of a GostService being deleted: its config file empty (so the sidecars
/// stop its services), the TLS files gone.
pub fn cleanup_secret(gsvc: &GostService) -> Secret {
    let data = BTreeMap::from([(
        render::config_key(&gsvc.name_any(), gsvc.spec.process),
        "services: []\n".to_string(),
    )]);
    config_secret(gsvc, &data)
}

// === GostChain ===

/// What a GostChain reconcile reads.
pub struct GostChainInputs<'a> {
    /// The GostChain.
    pub chain: &'a GostChain,
    /// The Secrets it references that exist.
    pub secrets: &'a [Secret],
    /// The GostServices of its namespace.
    pub namespace_gostservices: &'a [GostService],
    /// Render settings.
    pub render: &'a RenderSettings,
    /// The time to stamp on changed conditions.
    pub now: Time,
}

/// What a GostChain reconcile should do.
#[derive(Debug, Clone, PartialEq)]
pub struct GostChainPlan {
    /// The status to store.
    pub status: GostChainStatus,
    /// Whether it differs from the stored one.
    pub status_changed: bool,
    /// Events to publish.
    pub events: Vec<EventNote>,
}

/// Plans a GostChain reconcile: `Accepted` (the engine accepts the spec), `Ready` (accepted and
/// every Secret it references exists), `referencedBy`.
pub fn plan_gostchain(i: &GostChainInputs<'_>) -> GostChainPlan {
    let c = i.chain;
    let cname = c.name_any();
    let stored = c.status.clone().unwrap_or_default();
    let errors = render::check_chain(c, i.secrets, i.render);
    let unresolved: Vec<String> = errors
        .iter()
        .filter(|e| e.is_unresolved_ref())
        .map(ToString::to_string)
        .collect();
    let invalid: Vec<String> = errors
        .iter()
        .filter(|e| !e.is_unresolved_ref())
        .map(ToString::to_string)
        .collect();
    let accepted = if invalid.is_empty() {
        Desired::ok(types::ACCEPTED, reasons::ACCEPTED, "the spec is valid")
    } else {
        Desired::fail(types::ACCEPTED, reasons::INVALID, invalid.join("; "))
    };
    let ready = if !invalid.is_empty() {
        Desired::fail(
            types::READY,
            reasons::NOT_ACCEPTED,
            "the spec is not accepted (see Accepted)",
        )
    } else if !unresolved.is_empty() {
        Desired::fail(
            types::READY,
            reasons::SECRET_NOT_FOUND,
            unresolved.join("; "),
        )
    } else {
        Desired::ok(types::READY, reasons::READY, "every node can be rendered")
    };
    let mut referenced_by: Vec<String> = i
        .namespace_gostservices
        .iter()
        .filter(|g| g.metadata.deletion_timestamp.is_none())
        .filter(|g| render::referenced_chains(g).contains(&cname))
        .map(|g| g.name_any())
        .collect();
    referenced_by.sort();
    let conditions = status::conditions(
        &stored.conditions,
        &[accepted, ready],
        c.metadata.generation,
        &i.now,
    );
    let events = events_for(&stored.conditions, &conditions, None);
    let status = GostChainStatus {
        observed_generation: c.metadata.generation,
        conditions,
        referenced_by,
    };
    GostChainPlan {
        status_changed: status != stored,
        status,
        events,
    }
}

#[cfg(test)]
mod tests;

/// The first five names, then "and N more".
fn first_names(names: &[String]) -> String {
    let shown = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    match names.len().saturating_sub(5) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}
