//! Pure rendering: a [`GostService`], the [`GostChain`]s and Secrets it references → the engine
//! config `gost-proxy` reads, the extra files it needs (TLS material) and the errors that made
//! services fail closed.
//!
//! Rules (operator.md §1):
//! - `handler.chain` / `listener.chain` name a GostChain explicitly and win over `spec.chain`;
//!   `ignoreChain` wins over both. `spec.chain` goes to the handler, or to the listener for the
//!   reverse listeners (`rtcp`, `rudp`, `runix`), as GOST's `-F` does.
//! - Chains are rendered under a name scoped by the GostService, `<gostservice>_<chain>`
//!   ([`chain_name`]), so several GostServices merged into one engine never collide. `_` never
//!   occurs in a Kubernetes object name, so the name splits back unambiguously, and it needs no
//!   escaping in the engine's Web API paths (`GET /config/chains/web-egress_corp-egress`).
//! - Hooks become service metadata `preUp`, `postUp`, `preDown`, `postDown` and `hookTimeout`.
//! - Credentials are copied from Secrets; TLS material becomes files next to the config.
//! - A missing chain, Secret or key is a [`RenderError`] naming the field, and the service is
//!   rendered as a fail-closed placeholder (name, address, listener network and service
//!   metadata `failClosed: <reason>`): the sidecar binds the address and refuses every
//!   connection with the logged reason, and `/ready` names it. It is never rendered with a
//!   direct route.
//! - [`render_checked`] also runs the engine's own validation (strict, in memory, TLS files
//!   included) and turns what it rejects into errors naming the CRD field, with the offending
//!   services failed closed the same way, so what it returns always loads in the sidecar.

use std::collections::{BTreeMap, BTreeSet};

use gost_config::{
    AuthConfig, ChainConfig, Config, ConnectorConfig, DialerConfig, ForwardNodeConfig,
    ForwarderConfig, GoDuration, HandlerConfig, HopConfig, ListenerConfig, NodeConfig,
    SelectorConfig, ServiceConfig, TlsConfig,
};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use crate::crd::{
    AuthSpec, ClientTlsSpec, GostChain, GostService, Metadata, ProcessMode, SelectorSpec,
    ServerTlsSpec, ServiceSpec,
};

mod conflict;
#[cfg(test)]
mod tests;

pub use conflict::{detect_conflicts, reserved_port_clashes, Conflict, ConflictKind};

/// Where the sidecar mounts the config Secrets (a directory, no `subPath`).
pub const CONFIG_DIR: &str = "/etc/kubegost/config";

/// Listener types whose chain is the listener's own (GOST `-F` sets `listener.chain` for them).
const REVERSE_LISTENERS: &[&str] = &["rtcp", "rudp", "runix"];

/// Service metadata keys the operator sets from dedicated fields; writing them in `metadata`
/// is an error (GOST matches metadata keys case-insensitively, so do we).
const HOOK_KEYS: &[&str] = &["preUp", "postUp", "preDown", "postDown", "hookTimeout"];

/// Rendering settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderSettings {
    /// Directory where the config Secret is mounted in the sidecar; TLS file paths point there.
    pub config_dir: String,
}

/// The result of rendering one GostService.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rendered {
    /// The engine config: every service that rendered, and the chains they use.
    pub config: Config,
    /// Extra files of the config Secret (TLS material), by Secret data key.
    pub files: BTreeMap<String, String>,
    /// Why services were left out (fail closed); empty when everything rendered.
    pub errors: Vec<RenderError>,
    /// Names of the services left out.
    pub failed_services: Vec<String>,
    /// GostChains the spec references (found or not), for status and watches.
    pub chains: BTreeSet<String>,
    /// Secrets the spec and its chains reference (found or not), for watches.
    pub secrets: BTreeSet<String>,
}

/// Why a service could not be rendered. Every variant names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A referenced GostChain does not exist in the namespace.
    #[error("{field}: GostChain {name:?} not found")]
    ChainNotFound {
        /// The referencing field, e.g. `spec.services[web].handler.chain`.
        field: String,
        /// The chain name.
        name: String,
    },
    /// A referenced Secret does not exist in the namespace.
    #[error("{field}: Secret {name:?} not found")]
    SecretNotFound {
        /// The referencing field, e.g. `spec.services[web].handler.auth.secretRef.name`.
        field: String,
        /// The Secret name.
        name: String,
    },
    /// A Secret lacks a key the reference needs.
    #[error("{field}: Secret {name:?} has no key {key:?}")]
    SecretKeyMissing {
        /// The referencing field.
        field: String,
        /// The Secret name.
        name: String,
        /// The missing key.
        key: String,
    },
    /// A Secret value is not UTF-8 text.
    #[error("{field}: key {key:?} of Secret {name:?} is not UTF-8 text")]
    SecretKeyNotText {
        /// The referencing field.
        field: String,
        /// The Secret name.
        name: String,
        /// The key.
        key: String,
    },
    /// A value the schema cannot check.
    #[error("{field}: {reason}")]
    Invalid {
        /// The offending field.
        field: String,
        /// What is wrong and what is accepted.
        reason: String,
    },
}

// === impl RenderSettings ===

impl Default for RenderSettings {
    fn default() -> Self {
        RenderSettings {
            config_dir: CONFIG_DIR.to_string(),
        }
    }
}

// === impl RenderError ===

impl RenderError {
    /// The offending field.
    pub fn field(&self) -> &str {
        match self {
            RenderError::ChainNotFound { field, .. }
            | RenderError::SecretNotFound { field, .. }
            | RenderError::SecretKeyMissing { field, .. }
            | RenderError::SecretKeyNotText { field, .. }
            | RenderError::Invalid { field, .. } => field,
        }
    }

    /// Condition reason: `ChainNotFound`, `SecretNotFound` or `Invalid`.
    pub fn reason(&self) -> &'static str {
        match self {
            RenderError::ChainNotFound { .. } => "ChainNotFound",
            RenderError::SecretNotFound { .. }
            | RenderError::SecretKeyMissing { .. }
            | RenderError::SecretKeyNotText { .. } => "SecretNotFound",
            RenderError::Invalid { .. } => "Invalid",
        }
    }

    /// True for unresolved references (condition `ResolvedRefs=False`).
    pub fn is_unresolved_ref(&self) -> bool {
        !matches!(self, RenderError::Invalid { .. })
    }
}

// === impl Rendered ===

impl Rendered {
    /// The data of the config Secret: the config file (named by [`config_key`]) and the TLS
    /// files.
    pub fn secret_data(
        &self,
        gostservice: &str,
        process: ProcessMode,
    ) -> Result<BTreeMap<String, String>, gost_config::ConfigError> {
        let mut data = self.files.clone();
        data.insert(config_key(gostservice, process), self.config.to_yaml()?);
        Ok(data)
    }
}

/// Data key of a GostService's config file. The sidecar mounts every config Secret of a pod into
/// one directory: `Shared` files end in `.yaml` (the engine merges them as `-C <dir>`), while a
/// `Dedicated` file ends in `.dedicated` so the directory merge skips it and its own process
/// reads it with `-C <dir>/<file>`.
pub fn config_key(gostservice: &str, process: ProcessMode) -> String {
    match process {
        ProcessMode::Shared => format!("{gostservice}.yaml"),
        ProcessMode::Dedicated => format!("{gostservice}.dedicated"),
    }
}

/// Name of the Secret holding a GostService's rendered config.
pub fn config_secret_name(gostservice: &str) -> String {
    format!("kubegost-{gostservice}")
}

/// The engine-side name of a GostChain used by a GostService: `<gostservice>_<chain>`.
pub fn chain_name(gostservice: &str, chain: &str) -> String {
    format!("{gostservice}_{chain}")
}

/// A stable hash of the config Secret data (hex SHA-256, first 16 bytes).
pub fn config_hash(data: &BTreeMap<String, String>) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for (k, v) in data {
        // length-prefixed so (k, v) boundaries cannot shift
        ctx.update(&(k.len() as u64).to_be_bytes());
        ctx.update(k.as_bytes());
        ctx.update(&(v.len() as u64).to_be_bytes());
        ctx.update(v.as_bytes());
    }
    ctx.finish().as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Validates a rendered config the way the sidecar will load it (strict: unknown metadata keys
/// are errors), in memory: the TLS files of [`Rendered::files`] are given to the engine at their
/// paths under `settings.config_dir`, and nothing is read from disk.
pub fn validate(r: &Rendered, settings: &RenderSettings) -> Result<(), gost_validate::BuildErrors> {
    let dir = std::path::Path::new(&settings.config_dir);
    let files = r
        .files
        .iter()
        .map(|(k, v)| (dir.join(k), v.clone().into_bytes()))
        .collect();
    gost_validate::validate_with_files(&r.config, files, gost_validate::Opts { strict: true })
}

/// The fail-closed placeholder of a service that cannot be rendered: same name and address,
/// the listener reduced to its network (`tcp`, `udp`, or the reverse type that binds nothing
/// locally), no handler, no chain, no hooks, and the reason. None of the rejected settings are
/// written.
fn fail_closed_service(s: &ServiceSpec, reason: &str) -> ServiceConfig {
    use gost_validate::fail_closed::{bind_for, Bind};
    let mut metadata = Metadata::new();
    metadata.insert(
        gost_validate::fail_closed::KEY.into(),
        reason.to_string().into(),
    );
    let ltype = s.listener.as_ref().map(|l| l.kind.as_str()).unwrap_or("");
    let kind = match bind_for(ltype) {
        Bind::Tcp => "tcp",
        Bind::Udp => "udp",
        Bind::Nothing => ltype,
    };
    ServiceConfig {
        name: s.name.clone(),
        addr: s.addr.clone(),
        listener: Some(ListenerConfig {
            kind: kind.to_string(),
            ..Default::default()
        }),
        metadata,
        ..Default::default()
    }
}

/// "reason; reason" for a placeholder.
fn reasons(errs: &[RenderError]) -> String {
    errs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The CRD field an engine error path names: `services[web].handler.type` →
/// `spec.services[web].handler.type`; `chains[<gostservice>_<chain>].hops[h]…` →
/// `GostChain <chain>: spec.hops[h]…`.
pub fn crd_field(gostservice: &str, engine_path: &str) -> String {
    if let Some(rest) = engine_path.strip_prefix("services[") {
        return format!("spec.services[{rest}");
    }
    if let Some((_, field)) = limiter_field(engine_path) {
        return field;
    }
    if let Some(rest) = engine_path.strip_prefix("chains[") {
        let prefix = format!("{gostservice}_");
        if let Some((name, tail)) = rest.split_once(']') {
            if let Some(chain) = name.strip_prefix(&prefix) {
                return format!("GostChain {chain}: spec{tail}");
            }
        }
    }
    engine_path.to_string()
}

/// Rendered limiter sections: (config section, name suffix, `limits` field of the CRD).
const LIMITS: [(&str, &str, &str); 3] = [
    ("limiters", "-traffic", "traffic"),
    ("climiters", "-connections", "connections"),
    ("rlimiters", "-rate", "rate"),
];

/// A rendered limiter's engine path → (its service, the CRD field):
/// `climiters[web-connections].limits[1]` → (`web`, `spec.services[web].limits.connections[1]`).
fn limiter_field(engine_path: &str) -> Option<(&str, String)> {
    LIMITS.iter().find_map(|(section, suffix, field)| {
        let rest = engine_path.strip_prefix(section)?.strip_prefix('[')?;
        let (name, tail) = rest.split_once(']')?;
        let svc = name.strip_suffix(suffix)?;
        let tail = tail.strip_prefix(".limits").unwrap_or(tail);
        Some((svc, format!("spec.services[{svc}].limits.{field}{tail}")))
    })
}

/// The service an engine error path belongs to (`services[web]…` → `web`).
fn engine_service(engine_path: &str) -> Option<&str> {
    engine_path
        .strip_prefix("services[")
        .and_then(|r| r.split_once(']'))
        .map(|(n, _)| n)
        .or_else(|| limiter_field(engine_path).map(|(s, _)| s))
}

/// The GostChain an engine error path belongs to (`chains[<gsvc>_<chain>]…` → `<chain>`).
fn engine_chain<'a>(gostservice: &str, engine_path: &'a str) -> Option<&'a str> {
    let rest = engine_path.strip_prefix("chains[")?;
    let (name, _) = rest.split_once(']')?;
    name.strip_prefix(gostservice)?.strip_prefix('_')
}

/// [`render`], then the engine's strict validation in memory: services the engine rejects (or
/// whose chain it rejects) become fail-closed placeholders and their errors are added as
/// [`RenderError::Invalid`] naming the CRD field. The returned config always validates; when
/// nothing in it can be made to validate, every service is a placeholder.
pub fn render_checked(
    svc: &GostService,
    chains: &[GostChain],
    secrets: &[Secret],
    settings: &RenderSettings,
) -> Rendered {
    let mut r = render(svc, chains, secrets, settings);
    let gname = svc.name_any();
    // two rounds: the second only sees errors the first round's placeholders could not remove
    for _ in 0..2 {
        let errs = match validate(&r, settings) {
            Ok(()) => return r,
            Err(e) => e.0,
        };
        let mut by_service: BTreeMap<String, Vec<RenderError>> = BTreeMap::new();
        for e in &errs {
            let err = RenderError::Invalid {
                field: crd_field(&gname, &e.path),
                reason: e.msg.clone(),
            };
            let owners: Vec<String> = if let Some(s) = engine_service(&e.path) {
                vec![s.to_string()]
            } else if let Some(c) = engine_chain(&gname, &e.path) {
                let engine_name = chain_name(&gname, c);
                r.config
                    .services
                    .iter()
                    .filter(|s| {
                        s.handler.as_ref().and_then(|h| h.chain.as_deref()) == Some(&engine_name)
                            || s.listener.as_ref().and_then(|l| l.chain.as_deref())
                                == Some(&engine_name)
                    })
                    .map(|s| s.name.clone())
                    .collect()
            } else {
                r.config.services.iter().map(|s| s.name.clone()).collect()
            };
            for o in owners {
                by_service.entry(o).or_default().push(err.clone());
            }
            if !r.errors.contains(&err) {
                r.errors.push(err);
            }
        }
        if by_service.is_empty() {
            // errors no service owns (not produced by this renderer): fail everything
            for s in &r.config.services {
                by_service.entry(s.name.clone()).or_default();
            }
        }
        for s in &svc.spec.services {
            let Some(errs) = by_service.get(&s.name) else {
                continue;
            };
            if let Some(slot) = r.config.services.iter_mut().find(|c| c.name == s.name) {
                let reason = if errs.is_empty() {
                    "the engine rejects this configuration".to_string()
                } else {
                    reasons(errs)
                };
                *slot = fail_closed_service(s, &reason);
            }
            if !r.failed_services.contains(&s.name) {
                r.failed_services.push(s.name.clone());
            }
        }
        // chains no service uses any more go, with their files
        let used: BTreeSet<String> = r
            .config
            .services
            .iter()
            .flat_map(|s| {
                [
                    s.handler.as_ref().and_then(|h| h.chain.clone()),
                    s.listener.as_ref().and_then(|l| l.chain.clone()),
                ]
            })
            .flatten()
            .collect();
        r.config.chains.retain(|c| used.contains(&c.name));
        // and so do the limiters of services that fail closed
        let used: BTreeSet<String> = r
            .config
            .services
            .iter()
            .flat_map(|s| [s.limiter.clone(), s.climiter.clone(), s.rlimiter.clone()])
            .flatten()
            .collect();
        for list in [
            &mut r.config.limiters,
            &mut r.config.climiters,
            &mut r.config.rlimiters,
        ] {
            list.retain(|l| used.contains(&l.name));
        }
    }
    // still invalid: every service fails closed
    let reason = reasons(&r.errors);
    r.config = Config {
        services: svc
            .spec
            .services
            .iter()
            .map(|s| fail_closed_service(s, &reason))
            .collect(),
        ..Config::default()
    };
    r.files.clear();
    r.failed_services = svc.spec.services.iter().map(|s| s.name.clone()).collect();
    // a placeholder the engine still rejects (its own address is invalid, so it could hold no
    // port anyway) is left out; its errors stay in `r.errors` for the status
    if let Err(e) = validate(&r, settings) {
        let bad: BTreeSet<String> =
            e.0.iter()
                .filter_map(|x| engine_service(&x.path))
                .map(str::to_string)
                .collect();
        r.config.services.retain(|s| !bad.contains(&s.name));
        if validate(&r, settings).is_err() {
            r.config.services.clear();
        }
    }
    r
}

/// Errors of a GostChain on its own: what its render reports (missing Secrets or keys, bad
/// selectors) and what the engine rejects in strict mode, each naming the field.
pub fn check_chain(
    c: &GostChain,
    secrets: &[Secret],
    settings: &RenderSettings,
) -> Vec<RenderError> {
    let ns = c.namespace();
    let gname = "check".to_string();
    let mut r = Renderer {
        gname: gname.clone(),
        settings,
        chains: BTreeMap::new(),
        secrets: secrets
            .iter()
            .filter(|s| s.metadata.namespace.is_none() || s.metadata.namespace == ns)
            .map(|s| (s.name_any(), s))
            .collect(),
        rendered_chains: BTreeMap::new(),
        out: Rendered::default(),
    };
    match r.render_chain(c) {
        Err(errs) => errs,
        Ok((cfg, files)) => {
            let rendered = Rendered {
                config: Config {
                    chains: vec![cfg],
                    ..Config::default()
                },
                files,
                ..Rendered::default()
            };
            match validate(&rendered, settings) {
                Ok(()) => Vec::new(),
                Err(e) => {
                    e.0.into_iter()
                        .map(|e| RenderError::Invalid {
                            field: crd_field(&gname, &e.path),
                            reason: e.msg,
                        })
                        .collect()
                }
            }
        }
    }
}

/// GostChains a GostService references (`spec.chain`, `handler.chain`, `listener.chain`),
/// including the ones `ignoreChain` makes unused (they are still watched and reported).
pub fn referenced_chains(svc: &GostService) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    out.extend(svc.spec.chain.clone());
    for s in &svc.spec.services {
        out.extend(s.handler.as_ref().and_then(|h| h.chain.clone()));
        out.extend(s.listener.as_ref().and_then(|l| l.chain.clone()));
    }
    out
}

/// Renders a GostService. `chains` and `secrets` are the objects of its namespace (extra ones
/// are ignored; objects of other namespaces are never used).
pub fn render(
    svc: &GostService,
    chains: &[GostChain],
    secrets: &[Secret],
    settings: &RenderSettings,
) -> Rendered {
    let ns = svc.namespace();
    let gname = svc.name_any();
    let same_ns = |o: &Option<String>| o.is_none() || *o == ns;
    let chains: BTreeMap<String, &GostChain> = chains
        .iter()
        .filter(|c| same_ns(&c.metadata.namespace))
        .map(|c| (c.name_any(), c))
        .collect();
    let secrets: BTreeMap<String, &Secret> = secrets
        .iter()
        .filter(|s| same_ns(&s.metadata.namespace))
        .map(|s| (s.name_any(), s))
        .collect();
    let mut r = Renderer {
        gname,
        settings,
        chains,
        secrets,
        rendered_chains: BTreeMap::new(),
        out: Rendered {
            chains: referenced_chains(svc),
            ..Rendered::default()
        },
    };
    let mut used_chains = BTreeSet::new();
    for s in &svc.spec.services {
        let mut files = BTreeMap::new();
        match r.service(svc, s, &mut files, &mut used_chains) {
            Ok(cfg) => {
                r.out.config.services.push(cfg);
                r.out.files.append(&mut files);
            }
            Err(errs) => {
                r.out.failed_services.push(s.name.clone());
                r.out
                    .config
                    .services
                    .push(fail_closed_service(s, &reasons(&errs)));
                for e in errs {
                    if !r.out.errors.contains(&e) {
                        r.out.errors.push(e);
                    }
                }
            }
        }
    }
    for name in used_chains {
        if let Some(Ok((c, files))) = r.rendered_chains.get(&name) {
            r.out.config.chains.push(c.clone());
            r.out.files.extend(files.clone());
        }
    }
    r.out
}

/// Rendering state of one GostService.
struct Renderer<'a> {
    gname: String,
    settings: &'a RenderSettings,
    chains: BTreeMap<String, &'a GostChain>,
    secrets: BTreeMap<String, &'a Secret>,
    /// Chains rendered so far, by GostChain name (with their TLS files).
    #[allow(clippy::type_complexity)]
    rendered_chains:
        BTreeMap<String, Result<(ChainConfig, BTreeMap<String, String>), Vec<RenderError>>>,
    out: Rendered,
}

type Files = BTreeMap<String, String>;

// === impl Renderer ===

impl Renderer<'_> {
    fn service(
        &mut self,
        svc: &GostService,
        s: &ServiceSpec,
        files: &mut Files,
        used_chains: &mut BTreeSet<String>,
    ) -> Result<ServiceConfig, Vec<RenderError>> {
        let path = format!("spec.services[{}]", s.name);
        let mut errs = Vec::new();

        // metadata: hooks have their own field; `ignoreChain` is accepted in metadata too
        // (a pasted GOST entry) and means the same as the field.
        let mut metadata = sorted(&s.metadata);
        let mut ignore_chain = s.ignore_chain;
        for key in s.metadata.keys() {
            if let Some(k) = HOOK_KEYS.iter().find(|k| k.eq_ignore_ascii_case(key)) {
                errs.push(RenderError::Invalid {
                    field: format!("{path}.metadata.{key}"),
                    reason: format!("set hooks with `hooks.{}`, not in metadata", hook_field(k)),
                });
            }
            if key.eq_ignore_ascii_case("ignoreChain") {
                match truthy(&s.metadata[key]) {
                    Some(b) => ignore_chain |= b,
                    None => errs.push(RenderError::Invalid {
                        field: format!("{path}.metadata.{key}"),
                        reason: "must be a boolean (or use the `ignoreChain` field)".into(),
                    }),
                }
                metadata.remove(key);
            }
        }
        if ignore_chain {
            metadata.insert("ignoreChain".into(), true.into());
        }
        if let Some(h) = &s.hooks {
            for (key, cmds) in [
                ("preUp", &h.pre_up),
                ("postUp", &h.post_up),
                ("preDown", &h.pre_down),
                ("postDown", &h.post_down),
            ] {
                if !cmds.is_empty() {
                    metadata.insert(key.into(), cmds.clone().into());
                }
            }
            if let Some(t) = h.timeout_seconds {
                if !(1..=3600).contains(&t) {
                    errs.push(RenderError::Invalid {
                        field: format!("{path}.hooks.timeoutSeconds"),
                        reason: format!("{t} is out of range (accepted: 1 to 3600)"),
                    });
                }
                metadata.insert("hookTimeout".into(), format!("{t}s").into());
            }
        }

        // chains: explicit wins over spec.chain; ignoreChain wins over both
        let hspec = s.handler.clone().unwrap_or_default();
        let lspec = s.listener.clone().unwrap_or_default();
        let reverse = REVERSE_LISTENERS.contains(&lspec.kind.as_str());
        let (hchain, lchain) = if ignore_chain {
            (None, None)
        } else {
            let default = svc
                .spec
                .chain
                .as_ref()
                .map(|c| ("spec.chain".to_string(), c));
            let h = hspec
                .chain
                .as_ref()
                .map(|c| (format!("{path}.handler.chain"), c))
                .or(if reverse { None } else { default.clone() });
            let l = lspec
                .chain
                .as_ref()
                .map(|c| (format!("{path}.listener.chain"), c))
                .or(if reverse { default } else { None });
            (h, l)
        };
        let mut resolve = |r: &mut Self, c: Option<(String, &String)>| -> Option<String> {
            let (field, name) = c?;
            match r.chain(&field, name) {
                Ok(()) => {
                    used_chains.insert(name.clone());
                    Some(chain_name(&r.gname, name))
                }
                Err(e) => {
                    errs.extend(e);
                    None
                }
            }
        };
        let hchain = resolve(self, hchain);
        let lchain = resolve(self, lchain);

        let hauth = self.auth(
            &format!("{path}.handler.auth"),
            hspec.auth.as_ref(),
            &mut errs,
        );
        let htls = self.server_tls(
            &format!("{path}.handler.tls"),
            hspec.tls.as_ref(),
            files,
            &mut errs,
        );
        let lauth = self.auth(
            &format!("{path}.listener.auth"),
            lspec.auth.as_ref(),
            &mut errs,
        );
        let ltls = self.server_tls(
            &format!("{path}.listener.tls"),
            lspec.tls.as_ref(),
            files,
            &mut errs,
        );
        let forwarder = s.forwarder.as_ref().map(|f| ForwarderConfig {
            selector: selector(&format!("{path}.forwarder.selector"), f.selector.as_ref())
                .map_err(|e| errs.push(e))
                .ok()
                .flatten(),
            nodes: f
                .nodes
                .iter()
                .map(|n| ForwardNodeConfig {
                    name: n.name.clone(),
                    addr: n.addr.clone(),
                    network: n.network.clone(),
                    metadata: sorted(&n.metadata),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
        if !errs.is_empty() {
            return Err(errs);
        }
        let mut limiter_names: [Option<String>; 3] = Default::default();
        if let Some(l) = &s.limits {
            for (i, lines) in [&l.traffic, &l.connections, &l.rate]
                .into_iter()
                .enumerate()
            {
                if lines.is_empty() {
                    continue;
                }
                let (_, suffix, _) = LIMITS[i];
                let lc = gost_config::LimiterConfig {
                    name: format!("{}{suffix}", s.name),
                    limits: lines.clone(),
                    ..Default::default()
                };
                limiter_names[i] = Some(lc.name.clone());
                let c = &mut self.out.config;
                [&mut c.limiters, &mut c.climiters, &mut c.rlimiters][i].push(lc);
            }
        }
        let [limiter, climiter, rlimiter] = limiter_names;
        Ok(ServiceConfig {
            name: s.name.clone(),
            addr: s.addr.clone(),
            limiter,
            climiter,
            rlimiter,
            handler: Some(HandlerConfig {
                kind: hspec.kind.clone(),
                retries: hspec.retries.unwrap_or(0),
                chain: hchain,
                auth: hauth,
                tls: htls,
                metadata: sorted(&hspec.metadata),
                ..Default::default()
            }),
            listener: Some(ListenerConfig {
                kind: lspec.kind.clone(),
                chain: lchain,
                auth: lauth,
                tls: ltls,
                metadata: sorted(&lspec.metadata),
                ..Default::default()
            }),
            forwarder,
            metadata,
            ..Default::default()
        })
    }

    /// Renders a GostChain once; errors are reported for every service that uses it.
    fn chain(&mut self, field: &str, name: &str) -> Result<(), Vec<RenderError>> {
        if !self.rendered_chains.contains_key(name) {
            let result = match self.chains.get(name).copied() {
                None => Err(vec![RenderError::ChainNotFound {
                    field: field.to_string(),
                    name: name.to_string(),
                }]),
                Some(c) => self.render_chain(c),
            };
            self.rendered_chains.insert(name.to_string(), result);
        }
        match self.rendered_chains.get(name) {
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(e
                .iter()
                .map(|e| match e {
                    // the same chain referenced from another field: name that field
                    RenderError::ChainNotFound { name, .. } => RenderError::ChainNotFound {
                        field: field.to_string(),
                        name: name.clone(),
                    },
                    e => e.clone(),
                })
                .collect()),
            None => Ok(()),
        }
    }

    fn render_chain(
        &mut self,
        c: &GostChain,
    ) -> Result<(ChainConfig, BTreeMap<String, String>), Vec<RenderError>> {
        let cname = c.name_any();
        let base = format!("GostChain {cname}: spec");
        let mut errs = Vec::new();
        let mut files = Files::new();
        let chain_selector = c.spec.selector.as_ref();
        let mut hops = Vec::new();
        for h in &c.spec.hops {
            let hpath = format!("{base}.hops[{}]", h.name);
            let sel = selector(
                &format!("{hpath}.selector"),
                h.selector.as_ref().or(chain_selector),
            )
            .map_err(|e| errs.push(e))
            .ok()
            .flatten();
            let mut nodes = Vec::new();
            for n in &h.nodes {
                let npath = format!("{hpath}.nodes[{}]", n.name);
                let connector = n.connector.as_ref().map(|cs| ConnectorConfig {
                    kind: cs.kind.clone(),
                    auth: self.auth(
                        &format!("{npath}.connector.auth"),
                        cs.auth.as_ref(),
                        &mut errs,
                    ),
                    tls: self.client_tls(
                        &format!("{npath}.connector.tls"),
                        cs.tls.as_ref(),
                        &mut files,
                        &mut errs,
                    ),
                    metadata: sorted(&cs.metadata),
                });
                let dialer = n.dialer.as_ref().map(|ds| DialerConfig {
                    kind: ds.kind.clone(),
                    auth: self.auth(&format!("{npath}.dialer.auth"), ds.auth.as_ref(), &mut errs),
                    tls: self.client_tls(
                        &format!("{npath}.dialer.tls"),
                        ds.tls.as_ref(),
                        &mut files,
                        &mut errs,
                    ),
                    metadata: sorted(&ds.metadata),
                });
                nodes.push(NodeConfig {
                    name: n.name.clone(),
                    addr: n.addr.clone(),
                    connector,
                    dialer,
                    metadata: sorted(&n.metadata),
                    ..Default::default()
                });
            }
            hops.push(HopConfig {
                name: h.name.clone(),
                selector: sel,
                nodes: Some(nodes),
                metadata: sorted(&h.metadata),
                ..Default::default()
            });
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok((
            ChainConfig {
                name: chain_name(&self.gname, &cname),
                hops,
                ..Default::default()
            },
            files,
        ))
    }

    /// Looks up `key` of Secret `name`, recording the Secret as referenced.
    fn secret_value(
        &mut self,
        field: &str,
        name: &str,
        key: &str,
        required: bool,
    ) -> Result<Option<String>, RenderError> {
        self.out.secrets.insert(name.to_string());
        let secret = self
            .secrets
            .get(name)
            .ok_or_else(|| RenderError::SecretNotFound {
                field: format!("{field}.secretRef.name"),
                name: name.to_string(),
            })?;
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.clone())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .map(|s| s.clone().into_bytes())
            });
        match bytes {
            None if required => Err(RenderError::SecretKeyMissing {
                field: format!("{field}.secretRef"),
                name: name.to_string(),
                key: key.to_string(),
            }),
            None => Ok(None),
            Some(b) => String::from_utf8(b)
                .map(Some)
                .map_err(|_| RenderError::SecretKeyNotText {
                    field: format!("{field}.secretRef"),
                    name: name.to_string(),
                    key: key.to_string(),
                }),
        }
    }

    fn auth(
        &mut self,
        field: &str,
        spec: Option<&AuthSpec>,
        errs: &mut Vec<RenderError>,
    ) -> Option<AuthConfig> {
        let r = &spec?.secret_ref;
        let ukey = r.username_key.as_deref().unwrap_or("username");
        let pkey = r.password_key.as_deref().unwrap_or("password");
        let user = self.secret_value(field, &r.name, ukey, true);
        let pass = self.secret_value(field, &r.name, pkey, true);
        match (user, pass) {
            (Ok(Some(username)), Ok(Some(password))) => Some(AuthConfig {
                username,
                password,
                file: None,
            }),
            (u, p) => {
                for e in [u.err(), p.err()].into_iter().flatten() {
                    if !errs.contains(&e) {
                        errs.push(e);
                    }
                }
                None
            }
        }
    }

    /// Writes Secret key `key` as file `<gostservice>.<secret>.<key>` and returns its path.
    fn file(
        &mut self,
        field: &str,
        secret: &str,
        key: &str,
        required: bool,
        files: &mut Files,
        errs: &mut Vec<RenderError>,
    ) -> Option<String> {
        match self.secret_value(field, secret, key, required) {
            Ok(Some(text)) => {
                let fname = format!("{}.{secret}.{key}", self.gname);
                let path = format!("{}/{fname}", self.settings.config_dir.trim_end_matches('/'));
                files.insert(fname, text);
                Some(path)
            }
            Ok(None) => None,
            Err(e) => {
                if !errs.contains(&e) {
                    errs.push(e);
                }
                None
            }
        }
    }

    fn server_tls(
        &mut self,
        field: &str,
        spec: Option<&ServerTlsSpec>,
        files: &mut Files,
        errs: &mut Vec<RenderError>,
    ) -> Option<TlsConfig> {
        let name = &spec?.secret_ref.name;
        let cert = self.file(field, name, "tls.crt", true, files, errs);
        let key = self.file(field, name, "tls.key", true, files, errs);
        let ca = self.file(field, name, "ca.crt", false, files, errs);
        Some(TlsConfig {
            cert_file: cert?,
            key_file: key?,
            ca_file: ca.unwrap_or_default(),
            ..Default::default()
        })
    }

    fn client_tls(
        &mut self,
        field: &str,
        spec: Option<&ClientTlsSpec>,
        files: &mut Files,
        errs: &mut Vec<RenderError>,
    ) -> Option<TlsConfig> {
        let spec = spec?;
        let mut tls = TlsConfig {
            server_name: spec.server_name.clone().unwrap_or_default(),
            secure: spec.secure.unwrap_or(false),
            ..Default::default()
        };
        if let Some(r) = &spec.secret_ref {
            let ca = self.file(field, &r.name, "ca.crt", false, files, errs);
            let cert = self.file(field, &r.name, "tls.crt", false, files, errs);
            let key = self.file(field, &r.name, "tls.key", false, files, errs);
            if let Some(ca) = ca {
                tls.ca_file = ca;
                tls.secure = spec.secure.unwrap_or(true);
            }
            match (cert, key) {
                (Some(c), Some(k)) => {
                    tls.cert_file = c;
                    tls.key_file = k;
                }
                (None, None) => {}
                _ => errs.push(RenderError::Invalid {
                    field: format!("{field}.secretRef"),
                    reason: format!(
                        "Secret {:?} must hold both tls.crt and tls.key, or neither",
                        r.name
                    ),
                }),
            }
        }
        Some(tls)
    }
}

/// A selector in engine form; the fail timeout is checked against Go's duration grammar.
fn selector(field: &str, s: Option<&SelectorSpec>) -> Result<Option<SelectorConfig>, RenderError> {
    let Some(s) = s else { return Ok(None) };
    let fail_timeout = match &s.fail_timeout {
        None => None,
        Some(t) => Some(GoDuration(gost_config::parse_go_duration(t).map_err(
            |e| RenderError::Invalid {
                field: format!("{field}.failTimeout"),
                reason: e.to_string(),
            },
        )?)),
    };
    Ok(Some(SelectorConfig {
        strategy: s.strategy.clone().unwrap_or_default(),
        max_fails: s.max_fails.unwrap_or(0),
        fail_timeout,
    }))
}

/// A metadata map with keys sorted at every level, so the rendered text (and its hash) does not
/// depend on the order the API server returned them in.
fn sorted(md: &Metadata) -> Metadata {
    fn value(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => serde_json::Value::Object(sorted(m)),
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(value).collect()),
            v => v.clone(),
        }
    }
    let mut keys: Vec<&String> = md.keys().collect();
    keys.sort();
    keys.into_iter()
        .map(|k| (k.clone(), value(&md[k])))
        .collect()
}

/// GOST's boolean metadata: a bool or the strings `true`/`false`.
fn truthy(v: &serde_json::Value) -> Option<bool> {
    match v {
        serde_json::Value::Bool(b) => Some(*b),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// `preUp` → `preUp`, `hookTimeout` → `timeoutSeconds` (the CRD field for a metadata key).
fn hook_field(key: &str) -> &str {
    if key == "hookTimeout" {
        "timeoutSeconds"
    } else {
        key
    }
}
