//! `services[]` and the objects a service is made of: `handler`, `listener`, `forwarder`.

use serde::{Deserialize, Serialize};

use crate::{is_default, AuthConfig, Metadata, NodeFilterConfig, SelectorConfig, TlsConfig};

/// One GOST service: a listener (data channel), a handler (protocol) and an optional
/// forwarder (fixed targets).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceConfig {
    /// Unique name; the registry key.
    pub name: String,
    /// Listen address `host:port` (`:8080` = all addresses).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub addr: String,
    /// Deprecated: use `metadata.interface`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Deprecated socket options (`mark`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sockopts: Option<SockOptsConfig>,
    /// Admission controller name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission: Option<String>,
    /// Admission controller names; all must admit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admissions: Vec<String>,
    /// Service-level bypass: matching targets are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bypass: Option<String>,
    /// Service-level bypasses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bypasses: Vec<String>,
    /// Resolver used for request targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<String>,
    /// Hosts mapper used before the resolver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<String>,
    /// Traffic-rate limiter (`limiters[]` name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limiter: Option<String>,
    /// Concurrent-connection limiter (`climiters[]` name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub climiter: Option<String>,
    /// Connection-rate limiter (`rlimiters[]` name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rlimiter: Option<String>,
    /// Named logger (not supported by gost-proxy yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logger: Option<String>,
    /// Named loggers (not supported by gost-proxy yet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loggers: Vec<String>,
    /// Stats observer (not supported by gost-proxy yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observer: Option<String>,
    /// Recorders (not supported by gost-proxy yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorders: Option<serde_json::Value>,
    /// The protocol handler; absent means `{type: auto}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<HandlerConfig>,
    /// The listener; absent means `{type: tcp}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<ListenerConfig>,
    /// Fixed targets for forwarding handlers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarder: Option<ForwarderConfig>,
    /// Service-scope options (`ignoreChain`, hooks, `dialTimeout`, …).
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
    /// Read-only live status, filled in by the Web API; ignored on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

/// Deprecated `sockopts` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SockOptsConfig {
    /// SO_MARK value.
    #[serde(default, skip_serializing_if = "is_default")]
    pub mark: i64,
}

/// `handler:` of a service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HandlerConfig {
    /// Handler type string (`http`, `socks5`, `auto`, `tcp`, …); empty means `auto`.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Extra router attempts.
    #[serde(default, skip_serializing_if = "is_default")]
    pub retries: i64,
    /// Chain used by the handler's router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// Several chains, one picked per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_group: Option<ChainGroupConfig>,
    /// Named authenticator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auther: Option<String>,
    /// Named authenticators (any success wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authers: Vec<String>,
    /// Inline single user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
    /// Server TLS for handlers that terminate TLS themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Per-client bandwidth limiter (not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limiter: Option<String>,
    /// Per-client observer (not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observer: Option<String>,
    /// Handler options.
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

/// `chainGroup:`: several chains, one picked per request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChainGroupConfig {
    /// Chain names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chains: Vec<String>,
    /// Selector among the chains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<SelectorConfig>,
}

/// `listener:` of a service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerConfig {
    /// Listener type string (`tcp`, `udp`, `tls`, …); empty means `tcp`.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Chain for listeners that dial or bind themselves (`rtcp`, `rudp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// Chain group for such listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_group: Option<ChainGroupConfig>,
    /// Named authenticator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auther: Option<String>,
    /// Named authenticators.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authers: Vec<String>,
    /// Inline single user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
    /// Server certificate for TLS-based listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Listener options.
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

/// `forwarder:` of a service: its fixed targets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ForwarderConfig {
    /// Deprecated alias of `hop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A named top-level hop used instead of inline nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hop: Option<String>,
    /// Selector for the inline nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<SelectorConfig>,
    /// Inline targets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<ForwardNodeConfig>,
}

/// One forwarding target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ForwardNodeConfig {
    /// Node name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Target `host:port`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub addr: String,
    /// Overrides the dial network (`tcp`, `udp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Node bypass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bypass: Option<String>,
    /// Node bypasses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bypasses: Vec<String>,
    /// Deprecated filter fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Deprecated filter: host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Deprecated filter: path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Deprecated filter object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<NodeFilterConfig>,
    /// Routing-rule matcher (not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matcher: Option<serde_json::Value>,
    /// HTTP node settings (sniffing only; not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<serde_json::Value>,
    /// TLS towards the target (sniffing only; not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Deprecated: use `http.auth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
    /// Node options (`weight`, `backup`, `maxFails`, `failTimeout`).
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}
