//! `GostChain` (`gchain`): a named GOST chain that GostServices of the namespace use.

// `printcolumn(type_ = …)` repeats legitimately; clippy reads the derive attributes as duplicates.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{AuthSpec, ClientTlsSpec, Metadata, SelectorSpec, DNS1123_LABEL};

/// An ordered list of hops, each a group of proxy nodes; traffic of a service using this chain
/// goes through one node of every hop in turn.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "kubegost.io",
    version = "v1alpha1",
    kind = "GostChain",
    namespaced,
    shortname = "gchain",
    category = "kubegost",
    status = "GostChainStatus",
    doc = "A GOST chain (hops of proxy nodes) used by the GostServices of its namespace.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        description = "Ready condition",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Referenced-By",
        type_ = "string",
        description = "GostServices using this chain",
        json_path = ".status.referencedBy"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("self.hops.all(h, self.hops.exists_one(g, g.name == h.name))").message("hop names must be unique in a GostChain").field_path(".hops"))]
pub struct GostChainSpec {
    /// Default node selector of every hop that has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<SelectorSpec>,
    /// The hops, in order.
    #[schemars(length(min = 1, max = 16))]
    pub hops: Vec<HopSpec>,
}

/// A hop: a group of nodes and how one is picked.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("self.nodes.all(n, self.nodes.exists_one(m, m.name == n.name))").message("node names must be unique in a hop").field_path(".nodes"))]
pub struct HopSpec {
    /// Hop name: a DNS-1123 label, unique in the chain.
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS1123_LABEL))]
    pub name: String,
    /// How a node of this hop is picked; defaults to the chain's `selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<SelectorSpec>,
    /// The nodes.
    #[schemars(length(min = 1, max = 64))]
    pub nodes: Vec<NodeSpec>,
    /// Hop options inherited by the nodes (GOST hop `metadata`).
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    #[schemars(schema_with = "super::metadata_schema")]
    pub metadata: Metadata,
}

/// A proxy node: an address, the transport to it (dialer) and the protocol spoken over it
/// (connector).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    /// Node name: a DNS-1123 label, unique in the hop.
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS1123_LABEL))]
    pub name: String,
    /// `host:port` of the proxy node.
    #[schemars(length(min = 1, max = 256))]
    pub addr: String,
    /// Proxy protocol spoken to the node (GOST `connector:`); absent means `{type: http}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<ConnectorSpec>,
    /// Transport to the node (GOST `dialer:`); absent means `{type: tcp}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialer: Option<DialerSpec>,
    /// Node options (`weight`, `backup`, `maxFails`, `failTimeout`, …).
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    #[schemars(schema_with = "super::metadata_schema")]
    pub metadata: Metadata,
}

/// GOST `connector:` of a node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectorSpec {
    /// Connector type string (`http`, `socks5`, `socks4`, `relay`, `forward`, …); empty means
    /// `http`.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 64))]
    pub kind: String,
    /// Credentials presented to the node, from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
    /// Client TLS for connectors that run TLS themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSpec>,
    /// Connector options (GOST connector `metadata`).
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    #[schemars(schema_with = "super::metadata_schema")]
    pub metadata: Metadata,
}

/// GOST `dialer:` of a node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DialerSpec {
    /// Dialer type string (`tcp`, `tls`, `ws`, `wss`, `mtls`, …); empty means `tcp`.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 64))]
    pub kind: String,
    /// Credentials for dialers that authenticate themselves, from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
    /// Client TLS (`tls`, `wss`, `mtls`, … dialers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSpec>,
    /// Dialer options (GOST dialer `metadata`).
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    #[schemars(schema_with = "super::metadata_schema")]
    pub metadata: Metadata,
}

/// Observed state of a GostChain.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GostChainStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Accepted` and `Ready`, one entry per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Names of the GostServices of this namespace that use this chain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub referenced_by: Vec<String>,
}
