//! `chains[]`, `hops[]`, nodes, connectors, dialers and selectors.

use serde::{Deserialize, Serialize};

use crate::{is_default, AuthConfig, GoDuration, Metadata, SockOptsConfig, TlsConfig};

/// A named chain: an ordered list of hops.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChainConfig {
    /// Chain name.
    pub name: String,
    /// Selector shown in GOST's reference file; GOST ignores it and so do we (a warning is logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<SelectorConfig>,
    /// Hops, inline (with `nodes`) or references to top-level hops by `name`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hops: Vec<HopConfig>,
    /// Chain options.
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

/// A hop: a group of nodes plus a selector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HopConfig {
    /// Hop name (inside a chain without `nodes`: a reference to a top-level hop).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Node selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<SelectorConfig>,
    /// Hop bypass: a matching target cuts the chain before this hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bypass: Option<String>,
    /// Hop bypasses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bypasses: Vec<String>,
    /// Resolver for node addresses (inherited by nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<String>,
    /// Hosts mapper for node addresses (inherited by nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<String>,
    /// Deprecated: use metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Deprecated: use metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sockopts: Option<SockOptsConfig>,
    /// The nodes; present (even empty) means an inline hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<NodeConfig>>,
    /// Dynamic node source reload period (not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<GoDuration>,
    /// Dynamic node source: file (not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<serde_json::Value>,
    /// Dynamic node source: redis (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<serde_json::Value>,
    /// Dynamic node source: http (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<serde_json::Value>,
    /// Plugin (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<serde_json::Value>,
    /// Hop options inherited by nodes.
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

/// A chain node: address + dialer + connector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeConfig {
    /// Node name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// `host:port` of the proxy node.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub addr: String,
    /// Network when used as a forward target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Proxy protocol spoken to the node; default `http`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<ConnectorConfig>,
    /// Transport to the node; default `tcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialer: Option<DialerConfig>,
    /// Node bypass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bypass: Option<String>,
    /// Node bypasses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bypasses: Vec<String>,
    /// Resolver for this node's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<String>,
    /// Hosts mapper for this node's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<String>,
    /// Deprecated: use metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Deprecated: use metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// Deprecated: use metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sockopts: Option<SockOptsConfig>,
    /// Deprecated filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<NodeFilterConfig>,
    /// Matcher (not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matcher: Option<serde_json::Value>,
    /// HTTP node settings (not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<serde_json::Value>,
    /// TLS node settings (sniffing only; not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Probe (not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<serde_json::Value>,
    /// Node options (`weight`, `backup`, `maxFails`, `failTimeout`, …).
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

/// Deprecated node filter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeFilterConfig {
    /// Protocol equality.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    /// Host (with `.suffix` support).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// Path prefix.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
}

/// `connector:` of a node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectorConfig {
    /// Connector type string; empty means `http`.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Client credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
    /// Client TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Connector options.
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

/// `dialer:` of a node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DialerConfig {
    /// Dialer type string; empty means `tcp`.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Client credentials (ssh dialers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
    /// Client TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Dialer options.
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

/// `selector:` of a hop, forwarder or chain group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SelectorConfig {
    /// `round`/`rr`, `rand`/`random`, `fifo`/`ha`, `hash`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub strategy: String,
    /// Failures before a node is marked; ≤0 means 1.
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_fails: i64,
    /// How long a marked node stays out; ≤0 means 10 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_timeout: Option<GoDuration>,
}
