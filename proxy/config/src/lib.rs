//! Raw GOST v3 configuration model: serde types only.
//!
//! This crate is shared by the engine (`gost-proxy`) and the operator, so the operator renders
//! exactly what the engine reads. Field names are GOST's (camelCase); every struct rejects
//! unknown fields so typos are reported instead of ignored. Validation into runtime types
//! happens in the engine, which reports errors with the config path
//! (`services[web].handler.type`).
//!
//! ```
//! let cfg = gost_config::Config::from_yaml(r#"
//! services:
//!   - name: web
//!     addr: 127.0.0.1:8080
//!     handler: {type: http}
//!     listener: {type: tcp}
//! "#).unwrap();
//! assert_eq!(cfg.services[0].name, "web");
//! ```

mod chain;
mod duration;
mod objects;
mod service;

pub use chain::{
    ChainConfig, ConnectorConfig, DialerConfig, HopConfig, NodeConfig, NodeFilterConfig,
    SelectorConfig,
};
pub use duration::{
    format_go_duration, json_durations, parse_go_duration, DurationError, GoDuration,
};
pub use objects::{
    AdmissionConfig, ApiConfig, AuthConfig, AutherConfig, BypassConfig, FileSourceConfig,
    HostMappingConfig, HostsConfig, LimiterConfig, LogConfig, MatcherListConfig, MetricsConfig,
    NameserverConfig, ProfilingConfig, ResolverConfig, TlsConfig, TlsOptionsConfig,
};
pub use service::{
    ChainGroupConfig, ForwardNodeConfig, ForwarderConfig, HandlerConfig, ListenerConfig,
    ServiceConfig, SockOptsConfig,
};

use serde::{Deserialize, Serialize};

/// Free-form options map carried by most objects; keys are matched case-insensitively.
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// The top-level GOST configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Services (always emitted).
    #[serde(default)]
    pub services: Vec<ServiceConfig>,
    /// Named chains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chains: Vec<ChainConfig>,
    /// Reusable named hops.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hops: Vec<HopConfig>,
    /// Authenticators.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authers: Vec<AutherConfig>,
    /// Client-IP admission controllers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admissions: Vec<AdmissionConfig>,
    /// Target bypass lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bypasses: Vec<BypassConfig>,
    /// Resolvers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolvers: Vec<ResolverConfig>,
    /// Static host mappings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostsConfig>,
    /// Traffic-rate limiters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limiters: Vec<LimiterConfig>,
    /// Concurrent-connection limiters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub climiters: Vec<LimiterConfig>,
    /// Connection-rate limiters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rlimiters: Vec<LimiterConfig>,
    /// Sections GOST has and gost-proxy does not implement yet; present and non-empty is an
    /// error naming the section (see [`Config::unsupported_sections`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingresses: Option<serde_json::Value>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routers: Option<serde_json::Value>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sds: Option<serde_json::Value>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorders: Option<serde_json::Value>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewriters: Option<serde_json::Value>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caches: Option<serde_json::Value>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<serde_json::Value>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observers: Option<serde_json::Value>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loggers: Option<serde_json::Value>,
    /// Global default server certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Global logger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogConfig>,
    /// Go pprof server (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profiling: Option<ProfilingConfig>,
    /// Web API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiConfig>,
    /// Prometheus endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsConfig>,
}

/// Config text format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

/// Errors decoding or encoding configuration text.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// YAML syntax or shape error.
    #[error("invalid YAML config: {0}")]
    Yaml(String),
    /// JSON syntax or shape error.
    #[error("invalid JSON config: {0}")]
    // not a `#[source]`: the message already includes it, and error chains would repeat it
    Json(serde_json::Error),
    /// The document is larger than [`MAX_CONFIG_BYTES`].
    #[error("config document of {len} bytes is too large (accepted: at most {max} bytes)", max = MAX_CONFIG_BYTES)]
    TooLarge {
        /// Size of the rejected document.
        len: usize,
    },
}

impl From<serde_json::Error> for ConfigError {
    fn from(e: serde_json::Error) -> ConfigError {
        ConfigError::Json(e)
    }
}

/// The largest config document accepted (16 MiB): a config with thousands of services fits,
/// and a runaway or hostile document is refused before it is parsed.
pub const MAX_CONFIG_BYTES: usize = 16 << 20;

fn check_size(text: &str) -> Result<(), ConfigError> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge { len: text.len() });
    }
    Ok(())
}

/// Returns true for a value equal to its type's default (serde `skip_serializing_if`).
pub fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

// === impl Config ===

impl Config {
    /// Parses YAML text.
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        check_size(text)?;
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_saphyr::from_str(text).map_err(|e| ConfigError::Yaml(e.to_string()))
    }

    /// Parses JSON text.
    pub fn from_json(text: &str) -> Result<Config, ConfigError> {
        check_size(text)?;
        Ok(serde_json::from_str(text)?)
    }

    /// Parses text in the given format.
    pub fn parse(text: &str, format: Format) -> Result<Config, ConfigError> {
        match format {
            Format::Yaml => Config::from_yaml(text),
            Format::Json => Config::from_json(text),
        }
    }

    /// Parses text, detecting JSON by a leading `{` (GOST's rule for stdin and inline values).
    pub fn parse_detect(text: &str) -> Result<Config, ConfigError> {
        if text.trim_start().starts_with('{') {
            Config::from_json(text)
        } else {
            Config::from_yaml(text)
        }
    }

    /// YAML text (2-space indent, durations as strings).
    pub fn to_yaml(&self) -> Result<String, ConfigError> {
        serde_saphyr::to_string(self).map_err(|e| ConfigError::Yaml(e.to_string()))
    }

    /// JSON text (2-space indent, durations as integer nanoseconds, as GOST writes them).
    pub fn to_json_pretty(&self) -> Result<String, ConfigError> {
        Ok(json_durations(|| serde_json::to_string_pretty(self))?)
    }

    /// Appends every list of `other` to ours and replaces the singletons `other` sets
    /// (GOST's merge rule for several config sources).
    pub fn merge(&mut self, other: Config) {
        self.services.extend(other.services);
        self.chains.extend(other.chains);
        self.hops.extend(other.hops);
        self.authers.extend(other.authers);
        self.admissions.extend(other.admissions);
        self.bypasses.extend(other.bypasses);
        self.resolvers.extend(other.resolvers);
        self.hosts.extend(other.hosts);
        self.limiters.extend(other.limiters);
        self.climiters.extend(other.climiters);
        self.rlimiters.extend(other.rlimiters);
        for (mine, theirs) in [
            (&mut self.ingresses, other.ingresses),
            (&mut self.routers, other.routers),
            (&mut self.sds, other.sds),
            (&mut self.recorders, other.recorders),
            (&mut self.rewriters, other.rewriters),
            (&mut self.caches, other.caches),
            (&mut self.quotas, other.quotas),
            (&mut self.observers, other.observers),
            (&mut self.loggers, other.loggers),
        ] {
            if theirs.is_some() {
                *mine = theirs;
            }
        }
        if other.tls.is_some() {
            self.tls = other.tls;
        }
        if other.log.is_some() {
            self.log = other.log;
        }
        if other.profiling.is_some() {
            self.profiling = other.profiling;
        }
        if other.api.is_some() {
            self.api = other.api;
        }
        if other.metrics.is_some() {
            self.metrics = other.metrics;
        }
    }

    /// Names of GOST sections present in this config that gost-proxy does not implement.
    pub fn unsupported_sections(&self) -> Vec<&'static str> {
        let present = |v: &Option<serde_json::Value>| match v {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Array(a)) => !a.is_empty(),
            Some(_) => true,
        };
        let mut out = Vec::new();
        for (name, v) in [
            ("ingresses", &self.ingresses),
            ("routers", &self.routers),
            ("sds", &self.sds),
            ("recorders", &self.recorders),
            ("rewriters", &self.rewriters),
            ("caches", &self.caches),
            ("quotas", &self.quotas),
            ("observers", &self.observers),
            ("loggers", &self.loggers),
        ] {
            if present(v) {
                out.push(name);
            }
        }
        if self.profiling.is_some() {
            out.push("profiling");
        }
        out
    }
}

/// Sections gost-proxy implements, for error messages.
/// Default address of the sidecar's health endpoint (`gost-proxy --health`): dual-stack, and
/// not Istio's 15020/15021, so an Istio sidecar can share the pod. The engine serves it; the
/// operator's injection probes it and reserves its port.
pub const SIDECAR_HEALTH_ADDR: &str = "[::]:15300";

pub const SUPPORTED_SECTIONS: &[&str] = &[
    "services",
    "chains",
    "hops",
    "authers",
    "admissions",
    "bypasses",
    "resolvers",
    "hosts",
    "limiters",
    "climiters",
    "rlimiters",
    "tls",
    "log",
    "api",
    "metrics",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_roundtrip_keeps_config() {
        let text = r#"
services:
- name: web
  addr: :8080
  handler:
    type: http
    chain: c1
    metadata: {readTimeout: 10s}
  listener: {type: tcp}
  metadata:
    ignoreChain: true
    preUp: ["echo hi"]
chains:
- name: c1
  hops:
  - name: h1
    selector: {strategy: fifo, maxFails: 2, failTimeout: 30s}
    nodes:
    - name: n1
      addr: 127.0.0.1:1080
      connector: {type: socks5, auth: {username: u, password: p}}
      dialer: {type: tcp}
"#;
        let cfg = Config::from_yaml(text).unwrap();
        let y = cfg.to_yaml().unwrap();
        assert_eq!(Config::from_yaml(&y).unwrap(), cfg);
        let j = cfg.to_json_pretty().unwrap();
        assert!(j.contains("30000000000"), "{j}");
        assert_eq!(Config::from_json(&j).unwrap(), cfg);
    }

    #[test]
    fn unknown_field_is_an_error_naming_it() {
        let err = Config::from_yaml("services:\n- name: a\n  adr: :1\n").unwrap_err();
        assert!(err.to_string().contains("adr"), "{err}");
    }

    #[test]
    fn merge_concatenates_lists_and_replaces_singletons() {
        let mut a = Config::from_yaml("services: [{name: a}]\nlog: {level: info}").unwrap();
        let b = Config::from_yaml("services: [{name: b}]\nlog: {level: debug}").unwrap();
        a.merge(b);
        assert_eq!(a.services.len(), 2);
        assert_eq!(a.log.unwrap().level, "debug");
    }

    #[test]
    fn unsupported_sections_are_named() {
        let c = Config::from_yaml("quotas: [{name: q}]\nlimiters: [{name: l, limits: ['$ 1MB']}]")
            .unwrap();
        assert_eq!(c.unsupported_sections(), vec!["quotas"]);
        assert_eq!(c.limiters[0].limits, vec!["$ 1MB".to_string()]);
    }
}
