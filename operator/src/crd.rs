//! The custom resources: [`GostService`] (`gsvc`) and [`GostChain`] (`gchain`), group
//! `kubegost.io`, version `v1alpha1`.
//!
//! These Rust types are the source of truth; `crds/*.yaml` is generated from them by the
//! `crdgen` binary and a test fails when the committed copy is stale. Every field carries a
//! doc comment, which becomes its `description` (what `kubectl explain` prints).
//!
//! Where a field mirrors the engine config it keeps GOST's name and type strings, so a GOST
//! `services:` entry pastes in; the only deliberate difference is credentials, which never
//! appear in a spec: `auth` and `tls` carry a `secretRef` to a Secret in the same namespace.

mod chain;
mod service;

pub use chain::{
    ConnectorSpec, DialerSpec, GostChain, GostChainSpec, GostChainStatus, HopSpec, NodeSpec,
};
pub use service::{
    ForwardNodeSpec, ForwarderSpec, GostService, GostServiceSpec, GostServiceStatus, HandlerSpec,
    HooksSpec, ListenerSpec, ProcessMode, RolloutPolicy, ServiceSpec,
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every kubegost resource.
pub const GROUP: &str = "kubegost.io";
/// API version of the resources in this module.
pub const VERSION: &str = "v1alpha1";

/// Free-form options map (GOST `metadata`): keys and values pass through to the engine, which
/// rejects unknown keys by name (the operator is always strict).
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// A DNS-1123 label: what service, hop and node names must be.
pub(crate) const DNS1123_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A DNS-1123 subdomain: what Kubernetes object names (chains, Secrets) must be.
pub(crate) const DNS1123_SUBDOMAIN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A Go duration such as `10s`, `1m30s` or `250ms` (non-negative).
pub(crate) const GO_DURATION: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$|^0$";

/// Credentials taken from a Secret: `auth: {secretRef: {...}}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthSpec {
    /// The Secret (same namespace) holding the user name and password; the operator copies them
    /// into the rendered engine config, so they never appear in this resource.
    pub secret_ref: AuthSecretRef,
}

/// Reference to a Secret with a user name and password (for example of type
/// `kubernetes.io/basic-auth`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthSecretRef {
    /// Name of the Secret in the namespace of this resource.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS1123_SUBDOMAIN))]
    pub name: String,
    /// Key of the user name in the Secret's data (default `username`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub username_key: Option<String>,
    /// Key of the password in the Secret's data (default `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub password_key: Option<String>,
}

/// Reference to a Secret holding TLS material with the standard keys of a
/// `kubernetes.io/tls` Secret: `tls.crt`, `tls.key` and optionally `ca.crt`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsSecretRef {
    /// Name of the Secret in the namespace of this resource.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS1123_SUBDOMAIN))]
    pub name: String,
}

/// Server-side TLS of a listener or handler: the certificate comes from a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerTlsSpec {
    /// A `kubernetes.io/tls` Secret: `tls.crt` and `tls.key` are the server certificate;
    /// `ca.crt`, when present, makes the server require client certificates signed by it.
    pub secret_ref: TlsSecretRef,
}

/// Client-side TLS of a connector or dialer (GOST `tls:` of a node).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientTlsSpec {
    /// Name used for SNI and certificate verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Verify the server certificate (GOST `secure`). Defaults to true when `secretRef`
    /// provides a `ca.crt`, otherwise GOST's default (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure: Option<bool>,
    /// A Secret with `ca.crt` (trust roots) and optionally `tls.crt`/`tls.key` (a client
    /// certificate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<TlsSecretRef>,
}

/// GOST `selector:` of a chain, hop or forwarder: how a node is picked and when a failing node
/// is taken out.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SelectorSpec {
    /// Strategy: `round` (`rr`), `rand` (`random`), `fifo` (`ha`) or `hash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self in ['round', 'rr', 'rand', 'random', 'fifo', 'ha', 'hash']").message("strategy must be one of round, rr, rand, random, fifo, ha, hash"))]
    pub strategy: Option<String>,
    /// Failures before a node is marked as failed (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_fails: Option<i64>,
    /// How long a failed node stays out of selection, as a Go duration (default `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = GO_DURATION), length(max = 64))]
    pub fail_timeout: Option<String>,
}

/// Schema of a GOST `metadata` map: an object whose keys are kept as written.
pub(crate) fn metadata_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Schema of a status `conditions` list: one entry per `type` (merged by key on apply).
pub(crate) fn conditions_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut s = g.subschema_for::<Vec<Condition>>();
    s.insert("x-kubernetes-list-type".into(), "map".into());
    s.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    s
}
