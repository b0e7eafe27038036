//! Level-2 cluster tests: real pods (kubelet + containerd + CNI bridge kgbr0)
//! from scripts/testenv. They skip loudly without a level-2 cluster and fail
//! when `KUBEGOST_TESTENV_REQUIRED=1` is set but none is up.
//!
//! Traffic goes only to the test cluster's API server and to pod IPs on the
//! test bridge (10.244.0.0/24); every other address is refused before use.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, HTTPGetAction, Pod, PodSpec, PodTemplateSpec, Probe,
    TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::Api;
use kubegost_tests::testenv::{self, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn origin_image() -> String {
    match std::env::var("KUBEGOST_TESTENV_IMAGE_ORIGIN") {
        Ok(i) if !i.is_empty() => i,
        _ => panic!(
            "KUBEGOST_TESTENV_IMAGE_ORIGIN is not set (scripts/testenv/up.sh --level 2 sets it)"
        ),
    }
}

/// Pod IPs must be on the test cluster's own pod network.
fn pod_addr(ip: &str, port: u16) -> Result<SocketAddr> {
    let ip: Ipv4Addr = ip.parse().with_context(|| format!("pod IP {ip:?}"))?;
    let [a, b, c, _] = ip.octets();
    if (a, b, c) != (10, 244, 0) {
        bail!("pod IP {ip} is outside the test pod network 10.244.0.0/24; refusing to connect");
    }
    Ok(SocketAddr::new(IpAddr::V4(ip), port))
}

/// One bounded HTTP/1.0 GET; returns the response body.
async fn http_get(addr: SocketAddr) -> Result<String> {
    let fut = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"GET / HTTP/1.0\r\nHost: origin\r\n\r\n")
            .await?;
        let mut buf = Vec::new();
        (&mut s).take(64 * 1024).read_to_end(&mut buf).await?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .with_context(|| format!("no header end in {text:?}"))?;
        if !head.starts_with("HTTP/1.1 200") {
            bail!("unexpected response head {head:?}");
        }
        Ok(body.to_string())
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .context("HTTP GET timed out")?
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

#[tokio::test]
async fn k8s_l2_origin_deployment_serves_http() -> Result<()> {
    let Some(cluster) = testenv::cluster(2, "k8s_l2_origin_deployment_serves_http").await else {
        return Ok(());
    };
    let image = origin_image();
    let mut ns = cluster.namespace().await?;
    let body = format!("hello from {}", ns.name);
    let labels = BTreeMap::from([("app".to_string(), "origin".to_string())]);
    let deploy = Deployment {
        metadata: ObjectMeta {
            name: Some("origin".into()),
            ..ObjectMeta::default()
        },
        spec: DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    termination_grace_period_seconds: Some(2),
                    containers: vec![Container {
                        name: "origin".into(),
                        image: Some(image),
                        image_pull_policy: Some("Never".into()),
                        env: Some(vec![env("ORIGIN_BODY", &body), env("PORT", "8080")]),
                        ports: Some(vec![ContainerPort {
                            container_port: 8080,
                            name: Some("http".into()),
                            ..ContainerPort::default()
                        }]),
                        readiness_probe: Some(Probe {
                            http_get: Some(HTTPGetAction {
                                path: Some("/".into()),
                                port: IntOrString::Int(8080),
                                ..HTTPGetAction::default()
                            }),
                            period_seconds: Some(1),
                            ..Probe::default()
                        }),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    };
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns.name);
    deployments.create(&PostParams::default(), &deploy).await?;
    wait_for(
        "Deployment origin Available",
        Duration::from_secs(180),
        || async {
            let d = deployments.get("origin").await?;
            let available = d
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.type_.as_deref() == Some("Available")
                            && c.status.as_deref() == Some("True")
                    })
                });
            let ready = d.status.as_ref().and_then(|s| s.ready_replicas) == Some(1);
            Ok((available && ready).then_some(()))
        },
    )
    .await?;

    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns.name);
    let list = pods
        .list(&ListParams::default().labels("app=origin"))
        .await?;
    let ip = list
        .items
        .iter()
        .find_map(|p| p.status.as_ref()?.pod_ip.clone())
        .context("no pod IP")?;
    eprintln!("origin pod IP {ip}");
    let addr = pod_addr(&ip, 8080)?;
    let got = wait_for(
        "HTTP answer from the origin pod",
        Duration::from_secs(30),
        || async { Ok(Some(http_get(addr).await?)) },
    )
    .await?;
    assert_eq!(got, format!("{body}\n"));
    ns.success();
    Ok(())
}

#[tokio::test]
async fn k8s_l2_native_sidecar_starts_before_app() -> Result<()> {
    let Some(cluster) = testenv::cluster(2, "k8s_l2_native_sidecar_starts_before_app").await else {
        return Ok(());
    };
    let image = origin_image();
    let mut ns = cluster.namespace().await?;
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some("with-sidecar".into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            termination_grace_period_seconds: Some(2),
            init_containers: Some(vec![Container {
                name: "sidecar".into(),
                image: Some(image.clone()),
                image_pull_policy: Some("Never".into()),
                // native sidecar: an init container that keeps running
                restart_policy: Some("Always".into()),
                env: Some(vec![env("PORT", "8081"), env("ORIGIN_BODY", "sidecar")]),
                startup_probe: Some(Probe {
                    tcp_socket: Some(TCPSocketAction {
                        port: IntOrString::Int(8081),
                        ..TCPSocketAction::default()
                    }),
                    period_seconds: Some(1),
                    failure_threshold: Some(60),
                    ..Probe::default()
                }),
                ..Container::default()
            }]),
            containers: vec![Container {
                name: "app".into(),
                image: Some(image),
                image_pull_policy: Some("Never".into()),
                // exits 3 at start if the sidecar is not listening yet
                env: Some(vec![
                    env("PORT", "8080"),
                    env("ORIGIN_BODY", "app"),
                    env("REQUIRE_PEER", "127.0.0.1:8081"),
                ]),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    };
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns.name);
    pods.create(&PostParams::default(), &pod).await?;
    let p = wait_for(
        "both containers running",
        Duration::from_secs(180),
        || async {
            let p = pods.get("with-sidecar").await?;
            let st = p.status.clone().unwrap_or_default();
            if st.phase.as_deref() == Some("Failed") {
                bail!("pod failed: {st:?}");
            }
            let app_running = st
                .container_statuses
                .as_ref()
                .and_then(|c| c.iter().find(|c| c.name == "app"))
                .is_some_and(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()));
            Ok(app_running.then_some(p))
        },
    )
    .await?;
    let st = p.status.unwrap_or_default();
    let sidecar = st
        .init_container_statuses
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.name == "sidecar")
        .context("no sidecar status")?;
    let app = st
        .container_statuses
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.name == "app")
        .context("no app status")?;
    assert_eq!(sidecar.started, Some(true), "sidecar: {sidecar:?}");
    assert_eq!(app.restart_count, 0, "app restarted: {app:?}");
    let started = |s: &k8s_openapi::api::core::v1::ContainerStatus| {
        s.state
            .as_ref()
            .and_then(|st| st.running.as_ref())
            .and_then(|r| r.started_at.clone())
    };
    let (Some(s_at), Some(a_at)) = (started(&sidecar), started(&app)) else {
        bail!("missing startedAt: sidecar {sidecar:?} app {app:?}");
    };
    assert!(
        s_at.0 <= a_at.0,
        "sidecar started at {s_at:?}, app at {a_at:?}"
    );
    // the app saw the sidecar listening when it started (REQUIRE_PEER)
    let logs = cluster
        .kubectl(&["logs", "-n", &ns.name, "with-sidecar", "-c", "app"], None)
        .await?
        .success()?;
    assert!(
        logs.stdout
            .contains("REQUIRE_PEER 127.0.0.1:8081 reachable at start"),
        "app log: {}{}",
        logs.stdout,
        logs.stderr
    );
    ns.success();
    Ok(())
}

/// The gost-proxy image built by scripts/testenv/images.sh runs in a pod and
/// forwards TCP to the origin next to it. Without the image it is skipped loudly,
/// and fails under `KUBEGOST_TESTENV_REQUIRED=1` (CI never passes by skipping).
#[tokio::test]
async fn k8s_l2_gost_proxy_image_forwards_to_origin() -> Result<()> {
    let test = "k8s_l2_gost_proxy_image_forwards_to_origin";
    let Some(cluster) = testenv::cluster(2, test).await else {
        return Ok(());
    };
    let proxy_image = match std::env::var("KUBEGOST_TESTENV_IMAGE_PROXY") {
        Ok(i) if !i.is_empty() => i,
        _ => {
            let why = "no gost-proxy image: KUBEGOST_TESTENV_IMAGE_PROXY is unset \
                       (scripts/testenv/images.sh did not build gost-proxy)";
            assert!(
                !testenv::required(),
                "{test}: {why}, and {} is set",
                testenv::ENV_REQUIRED
            );
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
            return Ok(());
        }
    };
    let mut ns = cluster.namespace().await?;
    let body = format!("through gost-proxy in {}", ns.name);
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some("proxy".into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            termination_grace_period_seconds: Some(2),
            containers: vec![
                Container {
                    name: "origin".into(),
                    image: Some(origin_image()),
                    image_pull_policy: Some("Never".into()),
                    env: Some(vec![env("PORT", "8080"), env("ORIGIN_BODY", &body)]),
                    ..Container::default()
                },
                Container {
                    name: "gost-proxy".into(),
                    image: Some(proxy_image),
                    image_pull_policy: Some("Never".into()),
                    args: Some(vec!["-L".into(), "tcp://:9090/127.0.0.1:8080".into()]),
                    readiness_probe: Some(Probe {
                        tcp_socket: Some(TCPSocketAction {
                            port: IntOrString::Int(9090),
                            ..TCPSocketAction::default()
                        }),
                        period_seconds: Some(1),
                        ..Probe::default()
                    }),
                    ..Container::default()
                },
            ],
            ..PodSpec::default()
        }),
        ..Pod::default()
    };
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns.name);
    pods.create(&PostParams::default(), &pod).await?;
    let ip = wait_for("pod proxy Ready", Duration::from_secs(180), || async {
        let p = pods.get("proxy").await?;
        let st = p.status.unwrap_or_default();
        let ready = st
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        Ok(if ready { st.pod_ip } else { None })
    })
    .await?;
    let addr = pod_addr(&ip, 9090)?;
    let got = wait_for(
        "HTTP answer through gost-proxy",
        Duration::from_secs(30),
        || async { Ok(Some(http_get(addr).await?)) },
    )
    .await?;
    assert_eq!(got, format!("{body}\n"));
    ns.success();
    Ok(())
}
