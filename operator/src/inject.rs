//! The pure injection plan: `pod + the GostServices that select it + settings → injected pod`
//! (operator.md §2, §3), and the JSON patch between the two that the webhook returns.
//!
//! What is added:
//! - the sidecar `gost-proxy`: a native sidecar (init container with `restartPolicy: Always`,
//!   before the app's init containers) or, without native sidecars, the first app container;
//!   args `-C /etc/kubegost/config --health … --drain-timeout … --strict`, plus one `-- -C <file>`
//!   group per `Dedicated` GostService; startup and readiness probes on the health endpoint;
//!   lifecycle `postStart: gost-proxy hook post-up --health …` (always: it waits until every
//!   service listens, runs postUp and reports to the engine, which only then turns ready; the
//!   engine runs with `--external-hooks`) and `preStop: gost-proxy hook pre-down`;
//! - the init container `gost-pre-up` when any service has `preUp` hooks;
//! - the volumes: the config Secrets of the GostServices projected into one directory (no
//!   `subPath`, so updates arrive live) and an in-memory `/run/kubegost`;
//! - annotations `kubegost.io/status` and `kubectl.kubernetes.io/default-container`.
//!
//! Injection is idempotent (a pod with `kubegost.io/status` is returned unchanged), a pod's own
//! container named `gost-proxy` keeps the fields it sets, and containers added by other webhooks
//! are left alone.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, EnvVarSource, ExecAction, HTTPGetAction, Lifecycle,
    LifecycleHandler, ObjectFieldSelector, Pod, PodSpec, Probe, ProjectedVolumeSource,
    ResourceRequirements, SeccompProfile, SecretProjection, SecurityContext, Volume, VolumeMount,
    VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use serde::{Deserialize, Serialize};

use crate::crd::{GostService, ProcessMode};
use crate::render::{self, detect_conflicts, CONFIG_DIR};

#[cfg(test)]
mod tests;

/// Name of the injected sidecar container.
pub const SIDECAR: &str = "gost-proxy";
/// Label a pod sets to `false` to opt out of injection.
pub const INJECT_LABEL: &str = "kubegost.io/inject";
/// Name of the init container running `preUp` hooks.
pub const PRE_UP: &str = "gost-pre-up";
/// Annotation recording an injection (its presence makes injection a no-op).
pub const STATUS_ANNOTATION: &str = "kubegost.io/status";
/// kubectl's default container annotation.
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";
/// Per-pod override of the sidecar image.
pub const IMAGE_ANNOTATION: &str = "kubegost.io/proxy-image";
/// Per-pod override of the engine log level.
pub const LOG_LEVEL_ANNOTATION: &str = "kubegost.io/proxy-log-level";
/// Volume holding the projected config Secrets.
pub const CONFIG_VOLUME: &str = "kubegost-config";
/// In-memory scratch volume for hooks (`/run/kubegost`).
pub const RUN_VOLUME: &str = "kubegost-run";
/// Mount path of [`RUN_VOLUME`].
pub const RUN_DIR: &str = "/run/kubegost";
/// Empty volume mounted over the service-account token path in the injected containers: the
/// API server's ServiceAccount admission (re-run after this webhook) skips containers that
/// already mount that path, so the sidecar never gets the pod's API token.
pub const NO_TOKEN_VOLUME: &str = "kubegost-no-token";
/// Where Kubernetes mounts a service-account token.
pub const TOKEN_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Log levels the engine accepts.
const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "fatal"];

/// Injection settings (chart values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectSettings {
    /// Sidecar image.
    pub image: String,
    /// Image pull policy of the injected containers (unset: Kubernetes' default).
    pub image_pull_policy: Option<String>,
    /// Inject a native sidecar (Kubernetes 1.29+); otherwise the first app container.
    pub native_sidecars: bool,
    /// Address of the engine's `/live` and `/ready` endpoint. It must be reachable on the pod
    /// IP, because the kubelet probes from outside the pod's network namespace.
    pub health_addr: String,
    /// Drain deadline on SIGTERM (Go duration).
    pub drain_timeout: String,
    /// Engine log level (unset: the engine's default).
    pub log_level: Option<String>,
    /// Default requests and limits of the injected containers.
    pub resources: ProxyResources,
    /// User and group id the injected containers run as.
    pub run_as_user: i64,
    /// Operator version recorded in the status annotation.
    pub operator_version: String,
}

/// CPU and memory requests and limits (Kubernetes quantities).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyResources {
    /// `requests.cpu`.
    pub cpu_request: Option<String>,
    /// `requests.memory`.
    pub memory_request: Option<String>,
    /// `limits.cpu`.
    pub cpu_limit: Option<String>,
    /// `limits.memory`.
    pub memory_limit: Option<String>,
}

/// The value of `kubegost.io/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InjectionStatus {
    /// Operator version that injected the pod.
    pub version: String,
    /// GostServices whose services the sidecar runs, by name.
    pub gost_services: Vec<String>,
    /// Hash over the GostServices' config hashes (from their status) at injection time.
    pub config_hash: String,
    /// Hash over what a running pod cannot take without a restart ([`restart_hash`]): the
    /// GostServices selecting it, their process modes and hooks, the sidecar image, resources,
    /// log level and lifecycle settings. A pod whose recorded value differs from today's is
    /// outdated.
    #[serde(default)]
    pub restart_hash: String,
}

/// Why a pod cannot be injected (the webhook denies it with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InjectError {
    /// Services of the selecting GostServices clash.
    #[error("kubegost: conflicting GostServices select this pod: {}", .0.join("; "))]
    Conflict(Vec<String>),
    /// An override annotation has a value that cannot be used.
    #[error("kubegost: annotation {annotation}: invalid value {value:?} ({expected})")]
    InvalidAnnotation {
        /// The annotation.
        annotation: String,
        /// Its value.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// The pod could not be converted to or from JSON.
    #[error("kubegost: cannot process the pod: {0}")]
    Json(String),
}

// === impl InjectSettings ===

impl Default for InjectSettings {
    fn default() -> Self {
        InjectSettings {
            image: "localhost/kubegost/proxy:latest".into(),
            image_pull_policy: None,
            native_sidecars: true,
            health_addr: gost_config::SIDECAR_HEALTH_ADDR.into(),
            drain_timeout: "30s".into(),
            log_level: None,
            resources: ProxyResources {
                cpu_request: Some("10m".into()),
                memory_request: Some("32Mi".into()),
                cpu_limit: None,
                memory_limit: Some("256Mi".into()),
            },
            run_as_user: 65532,
            operator_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

impl InjectSettings {
    /// The health endpoint's port (reserved: no service may bind it).
    pub fn health_port(&self) -> i32 {
        self.health_addr
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(15300)
    }
}

/// The injection status a pod carries, if any (an unreadable value counts as none).
pub fn injection_status(annotations: &BTreeMap<String, String>) -> Option<InjectionStatus> {
    serde_json::from_str(annotations.get(STATUS_ANNOTATION)?).ok()
}

/// Hash over what an injected pod cannot pick up while it runs: the (sorted) GostServices that
/// select it with their process modes and hooks, and the sidecar settings after the pod's
/// override annotations (image, resources, log level, native sidecar, health address, drain).
/// Addresses, handlers and chains are not part of it: they reach running sidecars live.
pub fn restart_hash(
    pod_annotations: &BTreeMap<String, String>,
    matched: &[&GostService],
    settings: &InjectSettings,
) -> Result<String, InjectError> {
    let pod = Pod {
        metadata: kube::api::ObjectMeta {
            annotations: Some(pod_annotations.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    let ov = Overrides::from_pod(&pod, settings)?;
    let mut gs: Vec<serde_json::Value> = matched
        .iter()
        .map(|g| {
            serde_json::json!({
                "name": g.name_any(),
                "process": g.spec.process,
                "hooks": g.spec.services.iter()
                    .map(|s| (s.name.clone(), s.hooks.clone()))
                    .collect::<BTreeMap<_, _>>(),
            })
        })
        .collect();
    gs.sort_by_key(|v| v["name"].as_str().map(str::to_string));
    let r = &ov.resources;
    let v = serde_json::json!({
        "gostServices": gs,
        "image": ov.image,
        "logLevel": ov.log_level,
        "resources": [&r.cpu_request, &r.memory_request, &r.cpu_limit, &r.memory_limit],
        "nativeSidecars": settings.native_sidecars,
        "health": settings.health_addr,
        "drain": settings.drain_timeout,
    });
    let text = serde_json::to_string(&v).map_err(|e| InjectError::Json(e.to_string()))?;
    Ok(render::config_hash(&BTreeMap::from([(
        "restart".to_string(),
        text,
    )])))
}

/// True when the pod already carries the injection status annotation.
pub fn is_injected(pod: &Pod) -> bool {
    pod.annotations().contains_key(STATUS_ANNOTATION)
}

/// The injected pod. `matched` are the GostServices of the pod's namespace whose selector
/// matches it (in any order). A pod that is already injected, or that no GostService selects,
/// is returned unchanged.
pub fn plan_injection(
    pod: &Pod,
    matched: &[&GostService],
    settings: &InjectSettings,
) -> Result<Pod, InjectError> {
    if is_injected(pod) || matched.is_empty() {
        return Ok(pod.clone());
    }
    let mut matched: Vec<&GostService> = matched.to_vec();
    matched.sort_by_key(|g| g.name_any());
    let mut conflicts: Vec<String> = detect_conflicts(&matched)
        .iter()
        .map(ToString::to_string)
        .collect();
    for g in &matched {
        conflicts.extend(
            render::reserved_port_clashes(g, settings.health_port())
                .into_iter()
                .map(|m| format!("GostService {}: {m}", g.name_any())),
        );
    }
    if !conflicts.is_empty() {
        return Err(InjectError::Conflict(conflicts));
    }
    let ov = Overrides::from_pod(pod, settings)?;

    let mut out = pod.clone();
    let spec = out.spec.get_or_insert_with(PodSpec::default);
    let app_default = spec
        .containers
        .iter()
        .map(|c| c.name.clone())
        .find(|n| n != SIDECAR);

    // the pod's own `gost-proxy` (Istio's escape hatch): take it out, merge it in later
    let user_sidecar = take_named(spec, SIDECAR);
    let user_pre_up = take_named(spec, PRE_UP);

    // config sources: the Shared directory, then one file per Dedicated GostService
    let dedicated: Vec<String> = matched
        .iter()
        .filter(|g| g.spec.process == ProcessMode::Dedicated)
        .map(|g| {
            format!(
                "{CONFIG_DIR}/{}",
                render::config_key(&g.name_any(), ProcessMode::Dedicated)
            )
        })
        .collect();
    let mut sources = vec!["-C".to_string(), CONFIG_DIR.to_string()];
    for f in &dedicated {
        sources.extend(["-C".to_string(), f.clone()]);
    }
    let has_hook = |f: fn(&crate::crd::HooksSpec) -> bool| {
        matched
            .iter()
            .flat_map(|g| &g.spec.services)
            .filter_map(|s| s.hooks.as_ref())
            .any(f)
    };
    let pre_up = has_hook(|h| !h.pre_up.is_empty());

    // the sidecar
    let mut args = vec![
        "-C".to_string(),
        CONFIG_DIR.to_string(),
        "--health".to_string(),
        settings.health_addr.clone(),
        "--drain-timeout".to_string(),
        settings.drain_timeout.clone(),
        "--strict".to_string(),
        // preUp/postUp/preDown run as the lifecycle steps below; the engine runs postDown
        "--external-hooks".to_string(),
    ];
    for f in &dedicated {
        args.extend(
            [
                "--",
                "-C",
                f,
                "--drain-timeout",
                &settings.drain_timeout,
                "--strict",
                "--external-hooks",
            ]
            .map(String::from),
        );
    }
    let hook_cmd = |phase: &str| {
        let mut c = vec![
            "gost-proxy".to_string(),
            "hook".to_string(),
            phase.to_string(),
        ];
        c.extend(sources.iter().cloned());
        if phase == "post-up" || phase == "pre-down" {
            // post-up waits until every service listens, runs postUp, then reports to
            // /post-up-done, which is what turns the readiness probe green; pre-down runs
            // preDown, then makes inbound services stop accepting (/drain-inbound)
            c.extend([
                "--health".to_string(),
                format!("127.0.0.1:{}", settings.health_port()),
            ]);
        }
        c
    };
    let exec = |cmd: Vec<String>| LifecycleHandler {
        exec: Some(ExecAction { command: Some(cmd) }),
        ..Default::default()
    };
    let probe = |period, failures| Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/ready".into()),
            port: IntOrString::Int(settings.health_port()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(1),
        ..Default::default()
    };
    let lifecycle = Lifecycle {
        // always: postStart reports postUp done (readiness waits for it), and without native
        // sidecars it is what holds the app containers back
        post_start: Some(exec(hook_cmd("post-up"))),
        // always: after the preDown commands (if any) inbound services stop accepting and
        // drain, while egress keeps serving the app until SIGTERM
        pre_stop: Some(exec(hook_cmd("pre-down"))),
        ..Default::default()
    };
    let base = base_container(settings, &ov);
    let mut sidecar = Container {
        name: SIDECAR.into(),
        args: Some(args),
        restart_policy: settings.native_sidecars.then(|| "Always".to_string()),
        startup_probe: Some(probe(1, 600)),
        readiness_probe: Some(probe(5, 3)),
        lifecycle: (lifecycle.post_start.is_some() || lifecycle.pre_stop.is_some())
            .then_some(lifecycle),
        ..base.clone()
    };
    if let Some(user) = user_sidecar {
        sidecar = merge_container(sidecar, &user)?;
    }
    let pre_up_container = if pre_up {
        let mut c = Container {
            name: PRE_UP.into(),
            args: Some({
                let mut a = vec!["hook".to_string(), "pre-up".to_string()];
                a.extend(sources.iter().cloned());
                a
            }),
            ..base
        };
        if let Some(user) = user_pre_up {
            c = merge_container(c, &user)?;
        }
        Some(c)
    } else {
        user_pre_up
    };

    let init = spec.init_containers.get_or_insert_with(Vec::new);
    let mut front: Vec<Container> = pre_up_container.into_iter().collect();
    if settings.native_sidecars {
        front.push(sidecar);
    } else {
        spec.containers.insert(0, sidecar);
    }
    init.splice(0..0, front);
    if spec.init_containers.as_ref().is_some_and(Vec::is_empty) {
        spec.init_containers = None;
    }

    // volumes
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    volumes
        .retain(|v| v.name != CONFIG_VOLUME && v.name != RUN_VOLUME && v.name != NO_TOKEN_VOLUME);
    volumes.push(Volume {
        name: CONFIG_VOLUME.into(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(
                matched
                    .iter()
                    .map(|g| VolumeProjection {
                        secret: Some(SecretProjection {
                            name: render::config_secret_name(&g.name_any()),
                            optional: Some(false),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    });
    volumes.push(Volume {
        name: RUN_VOLUME.into(),
        empty_dir: Some(k8s_openapi::api::core::v1::EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(Quantity("16Mi".into())),
            ..Default::default()
        }),
        ..Default::default()
    });
    volumes.push(Volume {
        name: NO_TOKEN_VOLUME.into(),
        empty_dir: Some(k8s_openapi::api::core::v1::EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(Quantity("1Ki".into())),
            ..Default::default()
        }),
        ..Default::default()
    });

    // annotations
    let status = InjectionStatus {
        version: settings.operator_version.clone(),
        gost_services: matched.iter().map(|g| g.name_any()).collect(),
        config_hash: render::config_hash(
            &matched
                .iter()
                .map(|g| {
                    (
                        g.name_any(),
                        g.status
                            .as_ref()
                            .and_then(|s| s.config_hash.clone())
                            .unwrap_or_default(),
                    )
                })
                .collect(),
        ),
        restart_hash: restart_hash(pod.annotations(), &matched, settings)?,
    };
    let status = serde_json::to_string(&status).map_err(|e| InjectError::Json(e.to_string()))?;
    let ann = out.annotations_mut();
    ann.insert(STATUS_ANNOTATION.into(), status);
    if let Some(app) = app_default {
        ann.entry(DEFAULT_CONTAINER_ANNOTATION.into())
            .or_insert(app);
    }
    Ok(out)
}

/// The JSON patch (RFC 6902) that turns `before` into `after`.
pub fn injection_patch(before: &Pod, after: &Pod) -> Result<json_patch::Patch, InjectError> {
    let b = serde_json::to_value(before).map_err(|e| InjectError::Json(e.to_string()))?;
    let a = serde_json::to_value(after).map_err(|e| InjectError::Json(e.to_string()))?;
    Ok(json_patch::diff(&b, &a))
}

/// Per-pod overrides from annotations, checked.
struct Overrides {
    image: String,
    log_level: Option<String>,
    resources: ProxyResources,
}

// === impl Overrides ===

impl Overrides {
    fn from_pod(pod: &Pod, settings: &InjectSettings) -> Result<Overrides, InjectError> {
        let ann = pod.annotations();
        let get = |k: &str| ann.get(k).map(|v| v.trim().to_string());
        let image = match get(IMAGE_ANNOTATION) {
            Some(v) if v.is_empty() || v.contains(char::is_whitespace) => {
                return Err(InjectError::InvalidAnnotation {
                    annotation: IMAGE_ANNOTATION.into(),
                    value: v,
                    expected: "an image reference",
                })
            }
            Some(v) => v,
            None => settings.image.clone(),
        };
        let log_level = match get(LOG_LEVEL_ANNOTATION) {
            Some(v) if !LOG_LEVELS.contains(&v.as_str()) => {
                return Err(InjectError::InvalidAnnotation {
                    annotation: LOG_LEVEL_ANNOTATION.into(),
                    value: v,
                    expected: "trace, debug, info, warn, error or fatal",
                })
            }
            Some(v) => Some(v),
            None => settings.log_level.clone(),
        };
        let mut resources = settings.resources.clone();
        for (key, slot) in [
            ("cpu-request", &mut resources.cpu_request),
            ("memory-request", &mut resources.memory_request),
            ("cpu-limit", &mut resources.cpu_limit),
            ("memory-limit", &mut resources.memory_limit),
        ] {
            let annotation = format!("kubegost.io/proxy-{key}");
            if let Some(v) = get(&annotation) {
                if !is_quantity(&v) {
                    return Err(InjectError::InvalidAnnotation {
                        annotation,
                        value: v,
                        expected: "a Kubernetes quantity such as 100m, 0.5, 64Mi or 1Gi",
                    });
                }
                *slot = Some(v);
            }
        }
        Ok(Overrides {
            image,
            log_level,
            resources,
        })
    }
}

/// What the sidecar and `gost-pre-up` share: image, env, mounts, resources, security.
fn base_container(settings: &InjectSettings, ov: &Overrides) -> Container {
    let field_env = |name: &str, path: &str| EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
    ];
    if let Some(l) = &ov.log_level {
        env.push(EnvVar {
            name: "GOST_LOGGER_LEVEL".into(),
            value: Some(l.clone()),
            ..Default::default()
        });
    }
    let q = |m: &mut BTreeMap<String, Quantity>, k: &str, v: &Option<String>| {
        if let Some(v) = v {
            m.insert(k.into(), Quantity(v.clone()));
        }
    };
    let (mut requests, mut limits) = (BTreeMap::new(), BTreeMap::new());
    q(&mut requests, "cpu", &ov.resources.cpu_request);
    q(&mut requests, "memory", &ov.resources.memory_request);
    q(&mut limits, "cpu", &ov.resources.cpu_limit);
    q(&mut limits, "memory", &ov.resources.memory_limit);
    Container {
        image: Some(ov.image.clone()),
        image_pull_policy: settings.image_pull_policy.clone(),
        command: Some(vec!["gost-proxy".into()]),
        env: Some(env),
        resources: Some(ResourceRequirements {
            requests: (!requests.is_empty()).then_some(requests),
            limits: (!limits.is_empty()).then_some(limits),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: CONFIG_VOLUME.into(),
                mount_path: CONFIG_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            },
            VolumeMount {
                name: RUN_VOLUME.into(),
                mount_path: RUN_DIR.into(),
                ..Default::default()
            },
            VolumeMount {
                name: NO_TOKEN_VOLUME.into(),
                mount_path: TOKEN_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            },
        ]),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(settings.run_as_user),
            run_as_group: Some(settings.run_as_user),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    }
}

/// Removes and returns the container called `name` from the init containers or the containers.
fn take_named(spec: &mut PodSpec, name: &str) -> Option<Container> {
    if let Some(c) = take_container(&mut spec.init_containers, name) {
        if spec.init_containers.as_ref().is_some_and(Vec::is_empty) {
            spec.init_containers = None;
        }
        return Some(c);
    }
    let i = spec.containers.iter().position(|c| c.name == name)?;
    Some(spec.containers.remove(i))
}

fn take_container(list: &mut Option<Vec<Container>>, name: &str) -> Option<Container> {
    let v = list.as_mut()?;
    let i = v.iter().position(|c| c.name == name)?;
    Some(v.remove(i))
}

/// The injected container with every field the user's container of the same name sets:
/// objects merge key by key (so `resources.limits.memory` alone keeps the injected requests),
/// `env` and `volumeMounts` merge by name / mount path (the user's entries win), any other value
/// the user sets replaces the injected one.
fn merge_container(injected: Container, user: &Container) -> Result<Container, InjectError> {
    fn merge(base: &mut serde_json::Value, user: &serde_json::Value, key: Option<&str>) {
        use serde_json::Value;
        match (base, user) {
            (Value::Object(b), Value::Object(u)) => {
                for (k, v) in u {
                    match b.get_mut(k) {
                        Some(slot) => merge(slot, v, Some(k)),
                        None => {
                            b.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            (Value::Array(mine), Value::Array(theirs))
                if matches!(key, Some("env" | "volumeMounts")) =>
            {
                let id = if key == Some("env") {
                    "name"
                } else {
                    "mountPath"
                };
                mine.retain(|m| !theirs.iter().any(|t| t.get(id) == m.get(id)));
                mine.extend(theirs.iter().cloned());
            }
            (slot, v) => *slot = v.clone(),
        }
    }
    let to = |c: &Container| serde_json::to_value(c).map_err(|e| InjectError::Json(e.to_string()));
    let mut base = to(&injected)?;
    merge(&mut base, &to(user)?, None);
    serde_json::from_value(base).map_err(|e| InjectError::Json(e.to_string()))
}

/// A Kubernetes quantity: a decimal number with an optional SI or binary suffix.
fn is_quantity(s: &str) -> bool {
    const SUFFIXES: &[&str] = &[
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E", "",
    ];
    let s = s.strip_prefix('+').unwrap_or(s);
    SUFFIXES.iter().any(|suf| {
        s.strip_suffix(suf).is_some_and(|num| {
            let mut parts = num.splitn(2, '.');
            let int = parts.next().unwrap_or("");
            let frac = parts.next();
            (!int.is_empty() || frac.is_some_and(|f| !f.is_empty()))
                && int.bytes().all(|b| b.is_ascii_digit())
                && frac.is_none_or(|f| f.bytes().all(|b| b.is_ascii_digit()))
                && !(int.is_empty() && frac.is_none())
        })
    })
}
