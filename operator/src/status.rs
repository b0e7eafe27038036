//! Conditions as data (Kubernetes API conventions): type-keyed, `lastTransitionTime` moves only
//! when `status` flips, and an unchanged condition is returned as it was, so a reconcile that
//! changes nothing produces a status equal to the stored one and writes nothing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition types.
pub mod types {
    /// The spec is valid and does not conflict with another GostService.
    pub const ACCEPTED: &str = "Accepted";
    /// Every referenced GostChain and Secret exists.
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    /// The rendered config is in place (GostService) / the chain can be used (GostChain).
    pub const READY: &str = "Ready";
    /// No injected pod needs a restart to pick up a change.
    pub const PODS_UP_TO_DATE: &str = "PodsUpToDate";
}

/// Condition reasons (CamelCase, stable: tools match on them).
pub mod reasons {
    /// Accepted=True.
    pub const ACCEPTED: &str = "Accepted";
    /// A value the engine or the render rejects.
    pub const INVALID: &str = "Invalid";
    /// Two services clash in a pod (address or name).
    pub const CONFLICT: &str = "Conflict";
    /// ResolvedRefs=True.
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    /// A GostChain does not exist.
    pub const CHAIN_NOT_FOUND: &str = "ChainNotFound";
    /// A Secret or one of its keys does not exist.
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    /// Ready=True on a GostService: the rendered config is in its Secret.
    pub const CONFIG_APPLIED: &str = "ConfigApplied";
    /// Ready=False: the last good config is kept because the new one has errors.
    pub const PREVIOUS_CONFIG_KEPT: &str = "PreviousConfigKept";
    /// Ready=False: some services fail closed in the sidecars.
    pub const SERVICES_FAIL_CLOSED: &str = "ServicesFailClosed";
    /// Ready=True on a GostChain.
    pub const READY: &str = "Ready";
    /// Ready=False on a GostChain whose spec is not accepted.
    pub const NOT_ACCEPTED: &str = "NotAccepted";
    /// PodsUpToDate=True.
    pub const UP_TO_DATE: &str = "UpToDate";
    /// PodsUpToDate=False.
    pub const RESTART_NEEDED: &str = "RestartNeeded";
    /// PodsUpToDate=False: selected pods run without the sidecar (never restarted for).
    pub const SIDECAR_MISSING: &str = "SidecarMissing";
}

/// One condition as the controller wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// Condition type.
    pub type_: &'static str,
    /// True or False.
    pub status: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// Human-readable message naming the offending field.
    pub message: String,
}

impl Desired {
    /// A True condition.
    pub fn ok(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Desired {
            type_,
            status: true,
            reason,
            message: message.into(),
        }
    }

    /// A False condition.
    pub fn fail(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Desired {
            type_,
            status: false,
            reason,
            message: message.into(),
        }
    }
}

fn status_str(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// The conditions to store: `desired` in order, each keeping the stored condition's
/// `lastTransitionTime` unless its status flips, and returned unchanged (the stored object)
/// when nothing about it changed.
pub fn conditions(
    stored: &[Condition],
    desired: &[Desired],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    desired
        .iter()
        .map(|d| {
            let old = stored.iter().find(|c| c.type_ == d.type_);
            let status = status_str(d.status);
            let last_transition_time = match old {
                Some(o) if o.status == status => o.last_transition_time.clone(),
                _ => now.clone(),
            };
            let c = Condition {
                type_: d.type_.to_string(),
                status: status.to_string(),
                reason: d.reason.to_string(),
                message: d.message.clone(),
                observed_generation: generation,
                last_transition_time,
            };
            match old {
                Some(o) if *o == c => o.clone(),
                _ => c,
            }
        })
        .collect()
}

/// Whether a condition changed in a way worth an Event: it is new, or its status, reason or
/// message differ from the stored one.
pub fn changed<'a>(stored: &[Condition], new: &'a [Condition]) -> Vec<&'a Condition> {
    new.iter()
        .filter(|c| {
            !stored.iter().any(|o| {
                o.type_ == c.type_
                    && o.status == c.status
                    && o.reason == c.reason
                    && o.message == c.message
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let now1 = t("2026-01-01T00:00:00Z");
        let first = conditions(
            &[],
            &[Desired::fail(types::READY, reasons::INVALID, "x")],
            Some(1),
            &now1,
        );
        assert_eq!(first[0].last_transition_time, now1);
        assert_eq!(first[0].status, "False");
        assert_eq!(first[0].observed_generation, Some(1));

        // same status, other message, later: time kept, message and generation updated
        let now2 = t("2026-01-01T00:01:00Z");
        let second = conditions(
            &first,
            &[Desired::fail(types::READY, reasons::INVALID, "y")],
            Some(2),
            &now2,
        );
        assert_eq!(second[0].last_transition_time, now1);
        assert_eq!(second[0].message, "y");
        assert_eq!(second[0].observed_generation, Some(2));

        // flip: time moves
        let now3 = t("2026-01-01T00:02:00Z");
        let third = conditions(
            &second,
            &[Desired::ok(types::READY, reasons::CONFIG_APPLIED, "ok")],
            Some(2),
            &now3,
        );
        assert_eq!(third[0].last_transition_time, now3);
        assert_eq!(third[0].status, "True");
    }

    #[test]
    fn nothing_changed_returns_the_stored_conditions_exactly() {
        let now1 = t("2026-01-01T00:00:00Z");
        let d = [
            Desired::ok(types::ACCEPTED, reasons::ACCEPTED, "fine"),
            Desired::ok(types::READY, reasons::CONFIG_APPLIED, "fine"),
        ];
        let stored = conditions(&[], &d, Some(3), &now1);
        let again = conditions(&stored, &d, Some(3), &t("2030-01-01T00:00:00Z"));
        assert_eq!(again, stored);
        assert!(changed(&stored, &again).is_empty());
    }

    #[test]
    fn changed_reports_new_and_different_conditions_only() {
        let now = t("2026-01-01T00:00:00Z");
        let a = conditions(
            &[],
            &[
                Desired::ok(types::ACCEPTED, reasons::ACCEPTED, "fine"),
                Desired::ok(types::RESOLVED_REFS, reasons::RESOLVED_REFS, "fine"),
            ],
            Some(1),
            &now,
        );
        let b = conditions(
            &a,
            &[
                Desired::ok(types::ACCEPTED, reasons::ACCEPTED, "fine"),
                Desired::fail(types::RESOLVED_REFS, reasons::CHAIN_NOT_FOUND, "spec.chain"),
            ],
            Some(2),
            &now,
        );
        let ch: Vec<_> = changed(&a, &b).iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(ch, ["ResolvedRefs"]);
    }
}
