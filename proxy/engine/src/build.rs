//! Raw config → validated runtime objects. Every error carries the config path, the bad value
//! and what is accepted. Named objects are built without side effects; a service is built into
//! a [`ServicePlan`] (everything validated, nothing bound) and bound by [`ServicePlan::start`].
//!
//! - [`node`](mod@node): selectors, chain nodes, hops, chains and forwarder targets, their
//!   dialers and connectors taken from the registry;
//! - [`service`](mod@service): one service, validated into a plan (or a fail-closed one);
//! - [`named`](mod@named): every named object of a config, and the references between them.

mod named;
mod node;
mod service;

use std::collections::BTreeSet;

use crate::error::BuildError;
use crate::md::Md;

pub use named::{named, Built};
pub use node::{chain, connector, dialer, direct, forwarder, hop, node, selector};
pub use service::{service, ServicePlan};

/// Build-time settings.
#[derive(Debug, Clone, Default)]
pub struct BuildOpts {
    /// Unknown metadata keys are errors instead of warnings.
    pub strict: bool,
    /// `preUp`, `postUp` and `preDown` run as container lifecycle steps, not in the engine.
    pub external_hooks: bool,
}

/// Collects unknown-key reports for a set of metadata maps.
pub fn check_unknown(
    mds: &[&Md],
    extra_known: &BTreeSet<String>,
    strict: bool,
) -> Result<(), BuildError> {
    for md in mds {
        for k in md.unknown_keys() {
            if extra_known.contains(&k) {
                continue;
            }
            let path = format!("{}.{}", md.path(), k);
            if strict {
                return Err(BuildError::new(
                    path,
                    format!("unknown metadata key {k:?} (--strict)"),
                ));
            }
            tracing::warn!(path = %path, "unknown metadata key {k:?} ignored");
        }
    }
    Ok(())
}

/// A component's type string, or the default when it is empty.
fn type_or<'a>(kind: &'a str, default: &'a str) -> &'a str {
    if kind.is_empty() {
        default
    } else {
        kind
    }
}

/// The factory registered under `t` in `map`, or an error at `at` (the `type` field) naming
/// the `kind` and listing what is registered.
fn registered<'a, F>(
    map: &'a std::collections::BTreeMap<&'static str, F>,
    kind: &str,
    t: &str,
    at: String,
) -> Result<&'a F, BuildError> {
    map.get(t).ok_or_else(|| {
        BuildError::new(
            at,
            format!(
                "unknown {kind} {t:?} (supported: {})",
                crate::component::list_names(map)
            ),
        )
    })
}

/// How an entry is named in a path: its name, or its index when it has none.
fn label(i: usize, name: &str) -> String {
    if name.is_empty() {
        i.to_string()
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests;
