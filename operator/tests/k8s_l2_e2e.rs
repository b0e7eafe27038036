#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End to end on the level-2 cluster, as a user does it: `helm install` of the chart with the
//! locally built images, a namespace labelled for injection, a GostChain whose node is a
//! `gost-proxy` relay Deployment behind a Service (addressed by its cluster DNS name), a
//! GostService selecting an app Deployment. Then:
//! - the real API server admits the app pod with our sidecar (native sidecar, probes, security
//!   context, annotations);
//! - a request from the app container through the sidecar's HTTP proxy reaches an origin whose
//!   name only the relay's hosts mapper resolves (so it cannot have gone direct), while the
//!   `ignoreChain` service reaches its target directly (it still works with the relay gone);
//! - the four hooks run in order, observed through a recorder's request log, also on deletion;
//! - editing the GostChain moves the running sidecar to a second relay without a restart;
//! - a Job with an injected sidecar completes;
//! - a missing chain, a bad handler type and an address conflict each show their condition,
//!   and the running pod keeps serving its config.
//!
//! Every packet stays on this machine (bridge, pod namespaces, Service IPs via kube-proxy).

mod support;

use std::time::Duration;

use anyhow::{bail, Context, Result};
use gost_operator::crd::GostService;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{ListParams, Patch, PatchParams};
use kube::Api;
use kubegost_tests::testenv::{self, wait_for, Cluster};
use support::*;

fn env_image(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

struct Release<'a> {
    cluster: &'a Cluster,
    name: String,
    ns: String,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        if let Err(e) = helm(
            self.cluster,
            &["uninstall", &self.name, "-n", &self.ns, "--wait=false"],
        ) {
            eprintln!("helm uninstall {}: {e:#}", self.name);
        }
    }
}

fn split(image: &str) -> (&str, &str) {
    image.rsplit_once(':').unwrap_or((image, "latest"))
}

/// Runs `sh -c script` in container `c` of pod `pod` (kubectl exec through the kubelet).
fn exec(cluster: &Cluster, ns: &str, pod: &str, c: &str, script: &str) -> Result<String> {
    kubectl(
        cluster,
        &["exec", "-n", ns, pod, "-c", c, "--", "sh", "-c", script],
        None,
    )
}

async fn running_pod(cluster: &Cluster, ns: &str, selector: &str) -> Result<Pod> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
    wait_for(
        &format!("a Ready pod {selector} in {ns}"),
        Duration::from_secs(180),
        || async {
            let l = pods.list(&ListParams::default().labels(selector)).await?;
            Ok(l.items.into_iter().find(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            }))
        },
    )
    .await
}

fn restarts(p: &Pod) -> i32 {
    let st = p.status.clone().unwrap_or_default();
    st.container_statuses
        .iter()
        .chain(st.init_container_statuses.iter())
        .flatten()
        .map(|c| c.restart_count)
        .sum()
}

/// The app's request through its sidecar (`gost-proxy fetch`: the image's busybox `wget`
/// cannot connect from a static glibc build).
const PROXY: &str =
    "gost-proxy fetch -T 5 -x http://127.0.0.1:8080 http://secret.origin.test:8080/";

#[tokio::test]
async fn k8s_l2_e2e_injected_pod_carries_traffic_through_a_gostchain() -> Result<()> {
    let test = "k8s_l2_e2e_injected_pod_carries_traffic_through_a_gostchain";
    let Some(cluster) = testenv::cluster(2, test).await else {
        return Ok(());
    };
    let required = std::env::var("KUBEGOST_TESTENV_REQUIRED").is_ok_and(|v| v == "1");
    let (Some(op_image), Some(proxy_image), Some(origin_image)) = (
        env_image("KUBEGOST_TESTENV_IMAGE_OPERATOR"),
        env_image("KUBEGOST_TESTENV_IMAGE_PROXY"),
        env_image("KUBEGOST_TESTENV_IMAGE_ORIGIN"),
    ) else {
        if required {
            bail!("{test}: the operator, proxy and origin images are needed (scripts/testenv/images.sh)");
        }
        eprintln!("SKIPPED {test}: images missing");
        return Ok(());
    };
    let mut sys = cluster.namespace().await?;
    let mut infra = cluster.namespace().await?;
    let mut app = cluster.namespace().await?;
    let (infra_ns, app_ns) = (infra.name.clone(), app.name.clone());

    // 1. helm install
    let (orepo, otag) = split(&op_image);
    let (prepo, ptag) = split(&proxy_image);
    let chart = repo().join("charts/kubegost");
    let name = "kg-e2e";
    helm(
        &cluster,
        &[
            "install",
            name,
            chart.to_str().unwrap(),
            "--namespace",
            &sys.name,
            "--set",
            &format!("image.repository={orepo}"),
            "--set",
            &format!("image.tag={otag}"),
            "--set",
            "image.pullPolicy=Never",
            "--set",
            &format!("proxy.image.repository={prepo}"),
            "--set",
            &format!("proxy.image.tag={ptag}"),
            "--set",
            "proxy.image.pullPolicy=Never",
            "--set",
            &format!("watchNamespace={app_ns}"),
            "--set",
            "replicas=1",
        ],
    )?;
    let _release = Release {
        cluster: &cluster,
        name: name.into(),
        ns: sys.name.clone(),
    };
    running_pod(&cluster, &sys.name, "app.kubernetes.io/component=operator").await?;

    // 2. the chain node (a gost-proxy relay whose hosts mapper alone knows the origin's
    //    name), the origin, a second route, and a recorder for the hooks
    let origin_yaml = |n: &str, body: &str, log: bool| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {n}}}\nspec:\n  selector: {{matchLabels: {{app: {n}}}}}\n  template:\n    metadata: {{labels: {{app: {n}}}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: o\n        image: {origin_image}\n        imagePullPolicy: Never\n        env: [{{name: ORIGIN_BODY, value: '{body}'}}, {{name: PORT, value: '8080'}}{}]\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: {n}}}\nspec: {{selector: {{app: {n}}}, ports: [{{port: 8080}}]}}\n",
            if log { ", {name: LOG_REQUESTS, value: '1'}" } else { "" }
        )
    };
    apply(
        &cluster,
        &infra_ns,
        &origin_yaml("origin", "origin-1", false),
    )?;
    apply(
        &cluster,
        &infra_ns,
        &origin_yaml("origin2", "origin-2", false),
    )?;
    apply(
        &cluster,
        &infra_ns,
        &origin_yaml("recorder", "recorded", true),
    )?;
    let svcs: Api<Service> = Api::namespaced(cluster.client.clone(), &infra_ns);
    let cip = |n: &'static str| {
        let svcs = svcs.clone();
        async move {
            let s = svcs.get(n).await?;
            s.spec.and_then(|s| s.cluster_ip).context("clusterIP")
        }
    };
    let (o1, o2) = (cip("origin").await?, cip("origin2").await?);
    let relay_yaml = |n: &str, target_ip: &str| {
        format!(
            r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: {n}}}
data:
  gost.yaml: |
    hosts:
    - name: chain-only
      mappings: [{{hostname: secret.origin.test, ip: {target_ip}}}]
    services:
    - name: relay
      addr: ":8443"
      hosts: chain-only
      handler: {{type: relay}}
      listener: {{type: tcp}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {n}}}
spec:
  selector: {{matchLabels: {{app: {n}}}}}
  template:
    metadata: {{labels: {{app: {n}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: relay
        image: {proxy_image}
        imagePullPolicy: Never
        args: [-C, /etc/relay/gost.yaml]
        readinessProbe: {{tcpSocket: {{port: 8443}}, periodSeconds: 1}}
        volumeMounts: [{{name: c, mountPath: /etc/relay}}]
      volumes: [{{name: c, configMap: {{name: {n}}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: {n}}}
spec: {{selector: {{app: {n}}}, ports: [{{port: 8443}}]}}
"#
        )
    };
    apply(&cluster, &infra_ns, &relay_yaml("relay", &o1))?;
    apply(&cluster, &infra_ns, &relay_yaml("relay2", &o2))?;
    for n in ["origin", "origin2", "recorder", "relay", "relay2"] {
        running_pod(&cluster, &infra_ns, &format!("app={n}")).await?;
    }

    // 3. the user's side: label the namespace, a GostChain, a GostService, an app
    kubectl(
        &cluster,
        &[
            "label",
            "namespace",
            &app_ns,
            "kubegost.io/injection=enabled",
        ],
        None,
    )?;
    let recorder = format!("http://recorder.{infra_ns}.svc.cluster.local:8080");
    let hook =
        |phase: &str| format!("\"sh -c 'gost-proxy fetch {recorder}/hook/{phase}/$POD_NAME'\"");
    apply(
        &cluster,
        &app_ns,
        &format!(
            r#"apiVersion: kubegost.io/v1alpha1
kind: GostChain
metadata: {{name: via-relay}}
spec:
  hops:
  - name: hop-0
    nodes: [{{name: relay, addr: "relay.{infra_ns}.svc.cluster.local:8443", connector: {{type: relay}}, dialer: {{type: tcp}}}}]
---
apiVersion: kubegost.io/v1alpha1
kind: GostService
metadata: {{name: web}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  chain: via-relay
  services:
  - name: http-proxy
    addr: "127.0.0.1:8080"
    handler: {{type: http}}
    hooks:
      preUp: [{pre}]
      postUp: [{post}]
      preDown: [{pred}]
      postDown: [{postd}]
      timeoutSeconds: 10
  - name: direct
    addr: "127.0.0.1:9090"
    ignoreChain: true
    handler: {{type: tcp}}
    forwarder: {{nodes: [{{name: o, addr: "origin.{infra_ns}.svc.cluster.local:8080"}}]}}
---
apiVersion: kubegost.io/v1alpha1
kind: GostService
metadata: {{name: job-egress}}
spec:
  selector: {{matchLabels: {{app: job}}}}
  chain: via-relay
  services:
  - {{name: job-proxy, addr: "127.0.0.1:8080", handler: {{type: http}}}}
"#,
            pre = hook("pre-up"),
            post = hook("post-up"),
            pred = hook("pre-down"),
            postd = hook("post-down"),
        ),
    )?;
    let gsvcs: Api<GostService> = Api::namespaced(cluster.client.clone(), &app_ns);
    wait_gsvc(&gsvcs, "web", "web Ready", |g| {
        has(g, "Ready", "True", None)
    })
    .await?;
    apply(
        &cluster,
        &app_ns,
        &format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      terminationGracePeriodSeconds: 20\n      containers:\n      - name: app\n        image: {proxy_image}\n        imagePullPolicy: Never\n        command: [/bin/sh, -c, 'while true; do sleep 3600; done']\n"
        ),
    )?;
    let pod = running_pod(&cluster, &app_ns, "app=web").await?;
    let pod_name = pod.metadata.name.clone().unwrap();

    // 4. admitted with the sidecar by the real API server
    let spec = pod.spec.clone().unwrap();
    let init = spec.init_containers.clone().unwrap_or_default();
    let names: Vec<&str> = init.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["gost-pre-up", "gost-proxy"], "init containers");
    let sidecar = &init[1];
    assert_eq!(sidecar.restart_policy.as_deref(), Some("Always"));
    assert!(sidecar.startup_probe.is_some() && sidecar.readiness_probe.is_some());
    let sc = sidecar.security_context.clone().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.capabilities.unwrap().drop.unwrap(), ["ALL"]);
    // what the running sidecar process actually gets: not root, no capability, no writable
    // root filesystem, no service-account token
    let posture = exec(
        &cluster,
        &app_ns,
        &pod_name,
        "gost-proxy",
        // shell builtins only: the image's busybox is there as /bin/sh, with no applet links
        "while read -r k v; do case $k in Uid:|CapEff:|CapPrm:) echo \"$k $v\";; esac; done </proc/self/status; \
         while read -r id parent dev root mnt opts rest; do [ \"$mnt\" = / ] && echo \"root-mount $opts\"; done </proc/self/mountinfo; \
         if [ -e /var/run/secrets/kubernetes.io/serviceaccount/token ]; then echo token; else echo no-token; fi",
    )?;
    let lines: Vec<&str> = posture.lines().map(str::trim).collect();
    let uid = lines
        .iter()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or_default();
    assert!(!uid.is_empty() && uid != "0", "sidecar uid: {posture}");
    let caps: Vec<&&str> = lines.iter().filter(|l| l.starts_with("Cap")).collect();
    assert_eq!(caps.len(), 2, "{posture}");
    for cap in caps {
        assert!(
            cap.ends_with("0000000000000000"),
            "sidecar capabilities: {posture}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("root-mount ro,") || *l == "root-mount ro"),
        "sidecar root filesystem not mounted read-only: {posture}"
    );
    assert!(lines.contains(&"no-token"), "{posture}");
    let ann = pod.metadata.annotations.clone().unwrap();
    assert!(ann["kubegost.io/status"].contains("\"web\""), "{ann:?}");
    assert_eq!(ann["kubectl.kubernetes.io/default-container"], "app");

    // 5. through the chain, and directly
    let body = wait_for(
        "a request through the sidecar and the relay",
        Duration::from_secs(60),
        || async { Ok(exec(&cluster, &app_ns, &pod_name, "app", PROXY).ok()) },
    )
    .await?;
    assert_eq!(body.trim(), "origin-1");
    let direct = exec(
        &cluster,
        &app_ns,
        &pod_name,
        "app",
        "gost-proxy fetch -T 5 http://127.0.0.1:9090/",
    )?;
    assert_eq!(direct.trim(), "origin-1");

    // 6. the hooks ran in order (pre-up in the init container, post-up in postStart)
    let recorded = || {
        let l = kubectl(
            &cluster,
            &["logs", "-n", &infra_ns, "deploy/recorder"],
            None,
        )
        .unwrap_or_default();
        l.lines()
            .filter_map(|l| l.strip_prefix("request: GET /hook/"))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|l| l.ends_with(&format!("/{pod_name}")))
            .map(|l| l.split('/').next().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(recorded(), ["pre-up", "post-up"], "hooks at start");

    // 7. a GostChain edit moves the running sidecar to relay2, without a restart
    let before = restarts(&pods_get(&cluster, &app_ns, &pod_name).await?);
    kubectl(
        &cluster,
        &[
            "patch",
            "gchain",
            "via-relay",
            "-n",
            &app_ns,
            "--type=json",
            "-p",
            &format!(
                r#"[{{"op":"replace","path":"/spec/hops/0/nodes/0/addr","value":"relay2.{infra_ns}.svc.cluster.local:8443"}}]"#
            ),
        ],
        None,
    )?;
    let t0 = std::time::Instant::now();
    wait_for("the new route serving", Duration::from_secs(90), || async {
        Ok(exec(&cluster, &app_ns, &pod_name, "app", PROXY)
            .ok()
            .filter(|b| b.trim() == "origin-2"))
    })
    .await?;
    eprintln!(
        "{test}: GostChain edit served by the running sidecar after {:?}",
        t0.elapsed()
    );
    let after = pods_get(&cluster, &app_ns, &pod_name).await?;
    assert_eq!(restarts(&after), before, "no container restarted");

    // 8. a Job with an injected sidecar completes
    apply(
        &cluster,
        &app_ns,
        &format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: fetch}}\nspec:\n  backoffLimit: 0\n  template:\n    metadata: {{labels: {{app: job}}}}\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: fetch\n        image: {proxy_image}\n        imagePullPolicy: Never\n        command: [/bin/sh, -c, '{PROXY}']\n"
        ),
    )?;
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), &app_ns);
    wait_for("the Job completes", Duration::from_secs(120), || async {
        let j = jobs.get("fetch").await?;
        let st = j.status.unwrap_or_default();
        if st.failed.unwrap_or(0) > 0 {
            bail!("the Job failed");
        }
        Ok((st.succeeded == Some(1)).then_some(()))
    })
    .await?;

    // 9. errors show as conditions; the running pod keeps serving its config
    let json = |ops: serde_json::Value| Patch::Json::<()>(serde_json::from_value(ops).unwrap());
    gsvcs
        .patch(
            "web",
            &PatchParams::default(),
            &json(serde_json::json!([
            {"op": "replace", "path": "/spec/chain", "value": "no-such-chain"}])),
        )
        .await?;
    let g = wait_gsvc(&gsvcs, "web", "ResolvedRefs=False", |g| {
        has(g, "ResolvedRefs", "False", Some("ChainNotFound"))
    })
    .await?;
    assert!(gsvc_cond(&g, "ResolvedRefs")
        .unwrap()
        .message
        .contains("spec.chain"));
    assert_eq!(
        exec(&cluster, &app_ns, &pod_name, "app", PROXY)?.trim(),
        "origin-2"
    );
    gsvcs
        .patch(
            "web",
            &PatchParams::default(),
            &json(serde_json::json!([
            {"op": "replace", "path": "/spec/chain", "value": "via-relay"},
            {"op": "replace", "path": "/spec/services/0/handler/type", "value": "htp"}])),
        )
        .await?;
    let g = wait_gsvc(&gsvcs, "web", "Accepted=False Invalid", |g| {
        has(g, "Accepted", "False", Some("Invalid"))
    })
    .await?;
    assert!(gsvc_cond(&g, "Accepted")
        .unwrap()
        .message
        .contains("spec.services[http-proxy].handler.type"));
    assert_eq!(
        exec(&cluster, &app_ns, &pod_name, "app", PROXY)?.trim(),
        "origin-2"
    );
    gsvcs
        .patch(
            "web",
            &PatchParams::default(),
            &json(serde_json::json!([
            {"op": "replace", "path": "/spec/services/0/handler/type", "value": "http"}])),
        )
        .await?;
    wait_gsvc(&gsvcs, "web", "web Ready again", |g| {
        has(g, "Ready", "True", None)
    })
    .await?;
    apply(
        &cluster,
        &app_ns,
        "apiVersion: kubegost.io/v1alpha1\nkind: GostService\nmetadata: {name: clash}\nspec:\n  selector: {matchLabels: {app: web}}\n  services: [{name: s5, addr: \"127.0.0.1:8080\", handler: {type: socks5}}]\n",
    )?;
    let g = wait_gsvc(&gsvcs, "web", "Accepted=False Conflict", |g| {
        has(g, "Accepted", "False", Some("Conflict"))
    })
    .await?;
    assert!(gsvc_cond(&g, "Accepted")
        .unwrap()
        .message
        .contains("\"clash\""));
    assert_eq!(
        exec(&cluster, &app_ns, &pod_name, "app", PROXY)?.trim(),
        "origin-2"
    );
    kubectl(&cluster, &["delete", "gsvc", "clash", "-n", &app_ns], None)?;

    // 10. the ignoreChain service does not need the chain: with both relays gone it still works
    for r in ["relay", "relay2"] {
        kubectl(
            &cluster,
            &["scale", "deploy", r, "-n", &infra_ns, "--replicas=0"],
            None,
        )?;
    }
    wait_for(
        "the chained request failing without a relay",
        Duration::from_secs(60),
        || async {
            Ok(exec(&cluster, &app_ns, &pod_name, "app", PROXY)
                .is_err()
                .then_some(()))
        },
    )
    .await?;
    let direct = exec(
        &cluster,
        &app_ns,
        &pod_name,
        "app",
        "gost-proxy fetch -T 5 http://127.0.0.1:9090/",
    )?;
    assert_eq!(direct.trim(), "origin-1");

    // 11. deleting the pod runs preDown and postDown
    kubectl(
        &cluster,
        &[
            "delete",
            "pod",
            &pod_name,
            "-n",
            &app_ns,
            "--wait=true",
            "--timeout=90s",
        ],
        None,
    )?;
    let hooks = wait_for(
        "all four hooks recorded",
        Duration::from_secs(30),
        || async {
            let r = recorded();
            Ok((r.len() >= 4).then_some(r))
        },
    )
    .await?;
    assert_eq!(hooks, ["pre-up", "post-up", "pre-down", "post-down"]);

    // 12. a change running pods cannot take: outdated; with rollout: Automatic the operator
    //     restarts the Deployment and the new pod is up to date
    running_pod(&cluster, &app_ns, "app=web").await?;
    wait_gsvc(&gsvcs, "web", "the replacement pod up to date", |g| {
        g.status
            .as_ref()
            .is_some_and(|s| s.injected_pods == 1 && s.outdated_pods == 0)
    })
    .await?;
    gsvcs
        .patch(
            "web",
            &PatchParams::default(),
            &json(serde_json::json!([
            {"op": "replace", "path": "/spec/services/0/hooks/timeoutSeconds", "value": 11}])),
        )
        .await?;
    wait_gsvc(&gsvcs, "web", "PodsUpToDate=False", |g| {
        has(g, "PodsUpToDate", "False", Some("RestartNeeded"))
    })
    .await?;
    gsvcs
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"rollout": "Automatic"}})),
        )
        .await?;
    let deploys: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(cluster.client.clone(), &app_ns);
    wait_for(
        "the Deployment restarted by the operator",
        Duration::from_secs(60),
        || async {
            let d = deploys.get("web").await?;
            Ok(d.spec
                .template
                .metadata
                .and_then(|m| m.annotations)
                .and_then(|a| a.get("kubegost.io/restartedAt").cloned()))
        },
    )
    .await?;
    wait_gsvc(&gsvcs, "web", "PodsUpToDate=True after the rollout", |g| {
        has(g, "PodsUpToDate", "True", None)
            && g.status.as_ref().is_some_and(|s| s.injected_pods == 1)
    })
    .await?;
    sys.success();
    infra.success();
    app.success();
    Ok(())
}

async fn pods_get(cluster: &Cluster, ns: &str, name: &str) -> Result<Pod> {
    Ok(Api::<Pod>::namespaced(cluster.client.clone(), ns)
        .get(name)
        .await?)
}
