//! `GostService` (`gsvc`): the Kubernetes form of one `gost -L … -L … -F …` command line.

// `printcolumn(type_ = …)` repeats legitimately; clippy reads the derive attributes as duplicates.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{AuthSpec, Metadata, SelectorSpec, ServerTlsSpec, DNS1123_LABEL, DNS1123_SUBDOMAIN};

/// A group of GOST services that share a default chain and run in the `gost-proxy` sidecar of
/// every pod in this namespace that `selector` matches.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "kubegost.io",
    version = "v1alpha1",
    kind = "GostService",
    namespaced,
    shortname = "gsvc",
    category = "kubegost",
    status = "GostServiceStatus",
    doc = "A group of GOST services run in the gost-proxy sidecar of the selected pods (one `gost -L … -F …` invocation).",
    printcolumn(
        name = "Chain",
        type_ = "string",
        description = "Default chain of the services",
        json_path = ".spec.chain"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        description = "Ready condition",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Selected",
        type_ = "integer",
        description = "Pods selected",
        json_path = ".status.selectedPods"
    ),
    printcolumn(
        name = "Injected",
        type_ = "integer",
        description = "Pods running the sidecar",
        json_path = ".status.injectedPods"
    ),
    printcolumn(
        name = "Outdated",
        type_ = "integer",
        description = "Pods that need a restart to pick up changes",
        json_path = ".status.outdatedPods"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("self.services.all(s, self.services.exists_one(t, t.name == s.name))").message("service names must be unique in a GostService").field_path(".services"))]
pub struct GostServiceSpec {
    /// Pods in this namespace that run these services in their sidecar. Required; an empty
    /// selector selects every pod of the namespace.
    pub selector: LabelSelector,
    /// Default chain (a GostChain in this namespace) of every service below, like `-F` on the
    /// command line. `handler.chain` / `listener.chain` override it; `ignoreChain` disables it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS1123_SUBDOMAIN))]
    pub chain: Option<String>,
    /// `Shared` runs these services in the sidecar's main engine process together with other
    /// GostServices; `Dedicated` runs them in their own supervised engine process (GOST's `--`).
    #[serde(default)]
    pub process: ProcessMode,
    /// What happens when a change cannot reach running pods (image, resources, hooks, process
    /// mode): `Manual` marks the pods outdated; `Automatic` also restarts their workloads one at
    /// a time.
    #[serde(default)]
    pub rollout: RolloutPolicy,
    /// The GOST services (same fields as a GOST `services:` entry, credentials by Secret).
    #[schemars(length(min = 1, max = 256))]
    pub services: Vec<ServiceSpec>,
}

/// How the services of a GostService are run in the sidecar.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ProcessMode {
    /// In the sidecar's main engine process, with the other Shared GostServices of the pod.
    #[default]
    Shared,
    /// In an engine process of its own, supervised by the sidecar (GOST's `--`).
    Dedicated,
}

/// Rollout policy for changes that need a pod restart.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RolloutPolicy {
    /// Mark pods outdated (status, Event); restarting them is up to the user.
    #[default]
    Manual,
    /// Restart the owning Deployment/StatefulSet/DaemonSet, one workload at a time.
    Automatic,
}

/// One GOST service: a listener, a handler and optional fixed targets.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    /// Service name: a DNS-1123 label, unique in this GostService and among all GostServices
    /// selecting the same pod.
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS1123_LABEL))]
    pub name: String,
    /// Listen address `host:port` (`:8080` listens on every address of the pod).
    #[schemars(length(min = 1, max = 256))]
    pub addr: String,
    /// Never use a chain, not even `spec.chain` or `handler.chain` (GOST `ignoreChain`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_chain: bool,
    /// The protocol handler (GOST `handler:`); absent means `{type: auto}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<HandlerSpec>,
    /// The listener (GOST `listener:`); absent means `{type: tcp}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<ListenerSpec>,
    /// Fixed targets for forwarding handlers such as `tcp`, `udp` and `forward`
    /// (GOST `forwarder:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarder: Option<ForwarderSpec>,
    /// Service options (GOST service `metadata`, e.g. `dialTimeout`). Hooks and `ignoreChain`
    /// have their own fields here.
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    #[schemars(schema_with = "super::metadata_schema")]
    pub metadata: Metadata,
    /// Commands run around the service's lifetime, as container lifecycle steps of the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<HooksSpec>,
    /// Traffic, concurrent-connection and connection-rate limits (GOST `limiters`,
    /// `climiters`, `rlimiters`, rendered for this service alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsSpec>,
}

/// Limits of one service, as GOST limit lines `<scope> <value>…`. The scope is `$` (the
/// whole service), `$$` (each connection for traffic, each client IP otherwise), an IP or a
/// CIDR (each client in it; the most specific line wins). Zero or negative means unlimited.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitsSpec {
    /// Bytes per second, `<scope> <in> [<out> [<burst>]]` with units B, KB, MB, GB (1024-based),
    /// e.g. `$ 100MB 100MB`, `$$ 10MB`. `in` is what the service reads from its clients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 256)))]
    pub traffic: Vec<String>,
    /// Concurrent connections, `<scope> <n>`, e.g. `$ 1000`, `$$ 100`. A connection over
    /// the cap is closed when accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 256)))]
    pub connections: Vec<String>,
    /// New connections per second, `<scope> <rate>` (burst: rate + 1), e.g. `$$ 10`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 256)))]
    pub rate: Vec<String>,
}

/// GOST `handler:` of a service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HandlerSpec {
    /// Handler type string (`http`, `socks5`, `auto`, `tcp`, `udp`, `forward`, `relay`, …);
    /// empty means `auto`.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 64))]
    pub kind: String,
    /// Extra attempts of the handler's router when dialing a target fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub retries: Option<i64>,
    /// Chain used by this handler (a GostChain in this namespace); overrides `spec.chain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS1123_SUBDOMAIN))]
    pub chain: Option<String>,
    /// The single user clients must authenticate as; credentials come from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
    /// Server TLS for handlers that terminate TLS themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSpec>,
    /// Handler options (GOST handler `metadata`).
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    #[schemars(schema_with = "super::metadata_schema")]
    pub metadata: Metadata,
}

/// GOST `listener:` of a service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerSpec {
    /// Listener type string (`tcp`, `udp`, `tls`, `ws`, `rtcp`, …); empty means `tcp`.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 64))]
    pub kind: String,
    /// Chain for listeners that dial or bind through a chain themselves (`rtcp`, `rudp`);
    /// overrides `spec.chain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS1123_SUBDOMAIN))]
    pub chain: Option<String>,
    /// The single user clients must authenticate as (listeners with their own handshake);
    /// credentials come from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
    /// Server certificate for TLS-based listeners (`tls`, `mtls`, `wss`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSpec>,
    /// Listener options (GOST listener `metadata`).
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    #[schemars(schema_with = "super::metadata_schema")]
    pub metadata: Metadata,
}

/// GOST `forwarder:`: the fixed targets of a forwarding service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ForwarderSpec {
    /// How a target is picked among `nodes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<SelectorSpec>,
    /// The targets; names are unique (a list keyed by `name`).
    #[schemars(length(min = 1, max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub nodes: Vec<ForwardNodeSpec>,
}

/// One forwarding target.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ForwardNodeSpec {
    /// Target name, unique in the forwarder.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Target `host:port`.
    #[schemars(length(min = 1, max = 256))]
    pub addr: String,
    /// Overrides the network used to reach the target (`tcp` or `udp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub network: Option<String>,
    /// Target options (`weight`, `backup`, `maxFails`, `failTimeout`).
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    #[schemars(schema_with = "super::metadata_schema")]
    pub metadata: Metadata,
}

/// GOST hooks of a service, run as Kubernetes lifecycle steps: `preUp` in the `gost-pre-up`
/// init container, `postUp` in the sidecar's postStart, `preDown` in its preStop, `postDown`
/// by the engine on SIGTERM. Commands run without a shell (split like a POSIX shell),
/// sequentially.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HooksSpec {
    /// Commands run before the engine starts (a failure fails the pod start).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 4096)))]
    pub pre_up: Vec<String>,
    /// Commands run once every service of the pod listens; readiness waits for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 4096)))]
    pub post_up: Vec<String>,
    /// Commands run when the pod stops, before inbound services stop accepting.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 4096)))]
    pub pre_down: Vec<String>,
    /// Commands run after every listener closed and connections drained.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 4096)))]
    pub post_down: Vec<String>,
    /// Time limit of each command in seconds (1–3600, default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 3600").message("timeoutSeconds must be between 1 and 3600"))]
    pub timeout_seconds: Option<i32>,
}

/// Observed state of a GostService.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GostServiceStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Accepted`, `ResolvedRefs`, `Ready` and `PodsUpToDate`, one entry per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Pods the selector matches.
    #[serde(default)]
    pub selected_pods: i32,
    /// Selected pods that run the sidecar with these services.
    #[serde(default)]
    pub injected_pods: i32,
    /// Injected pods that need a restart to pick up a change.
    #[serde(default)]
    pub outdated_pods: i32,
    /// Hash of the rendered engine config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
}
