#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Level-1 cluster tests of the `gost-operator` binary against a real kube-apiserver
//! (scripts/testenv): it runs as the chart's ServiceAccount, so every test also proves the
//! chart's RBAC is enough. Each test has its own namespace and its own operator process
//! restricted to it (`--watch-namespace`). They skip loudly without a test cluster and fail
//! when `KUBEGOST_TESTENV_REQUIRED=1` is set but none is up.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use gost_operator::crd::{GostChain, GostService};
use gost_operator::inject::{plan_injection, InjectSettings};
use gost_operator::reconcile::{CONFIG_HASH_ANNOTATION, FINALIZER};
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::Api;
use kubegost_tests::testenv::{self, wait_for, Cluster};
use support::*;

fn examples() -> PathBuf {
    repo().join("operator/examples")
}

fn secret_text(s: &Secret, key: &str) -> Option<String> {
    s.data
        .as_ref()?
        .get(key)
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
}

/// The engine (strict) accepts a config Secret's content, with its TLS files in memory at
/// their paths in the sidecar.
fn engine_loads(s: &Secret, key: &str) -> Result<gost_config::Config> {
    let text = secret_text(s, key).context("no config key")?;
    let cfg = gost_config::Config::from_yaml(&text)?;
    let files = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (PathBuf::from("/etc/kubegost/config").join(k), v.0.clone()))
        .collect();
    gost_validate::validate_with_files(&cfg, files, gost_validate::Opts { strict: true })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(cfg)
}

async fn wait_secret(
    api: &Api<Secret>,
    name: &str,
    what: &str,
    pred: impl Fn(&Secret) -> bool,
) -> Result<Secret> {
    wait_for(what, Duration::from_secs(45), || async {
        Ok(api.get_opt(name).await?.filter(|s| pred(s)))
    })
    .await
}

async fn ready_all(gsvcs: &Api<GostService>, names: &[&str]) -> Result<()> {
    for n in names {
        wait_gsvc(gsvcs, n, &format!("{n} Accepted/ResolvedRefs/Ready"), |g| {
            has(g, "Accepted", "True", None)
                && has(g, "ResolvedRefs", "True", None)
                && has(g, "Ready", "True", Some("ConfigApplied"))
        })
        .await?;
    }
    Ok(())
}

/// Events about an object (events.k8s.io), as "Type Reason Note" lines.
fn events_of(cluster: &Cluster, ns: &str, name: &str) -> String {
    kubectl(
        cluster,
        &[
            "get",
            "events.events.k8s.io",
            "-n",
            ns,
            "--field-selector",
            &format!("regarding.name={name}"),
            "-o",
            "custom-columns=T:.type,R:.reason,N:.note",
            "--no-headers",
        ],
        None,
    )
    .unwrap_or_default()
}

#[tokio::test]
async fn k8s_l1_operator_examples_render_and_changes_rerender() -> Result<()> {
    let test = "k8s_l1_operator_examples_render_and_changes_rerender";
    let Some(cluster) = testenv::cluster(1, test).await else {
        return Ok(());
    };
    let mut ns = cluster.namespace().await?;
    let mut op = Operator::start(&cluster, &ns.name).await;
    kubectl(
        &cluster,
        &["apply", "-n", &ns.name, "-f", examples().to_str().unwrap()],
        None,
    )?;
    let gsvcs: Api<GostService> = Api::namespaced(cluster.client.clone(), &ns.name);
    let chains: Api<GostChain> = Api::namespaced(cluster.client.clone(), &ns.name);
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), &ns.name);
    let names = ["web-egress", "worker-egress", "api-hooks", "dev-box-tunnel"];
    ready_all(&gsvcs, &names).await?;

    // every Secret is what the engine loads, and the status names its hash
    let mut hashes = BTreeMap::new();
    for n in names {
        let g = gsvcs.get(n).await?;
        let s = secrets.get(&format!("kubegost-{n}")).await?;
        let cfg = engine_loads(&s, &format!("{n}.yaml")).with_context(|| n.to_string())?;
        assert!(!cfg.services.is_empty());
        let ann = s.metadata.annotations.clone().unwrap_or_default();
        let hash = g.status.as_ref().unwrap().config_hash.clone().unwrap();
        assert_eq!(ann.get(CONFIG_HASH_ANNOTATION), Some(&hash), "{n}");
        assert!(g
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&FINALIZER.to_string()));
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("GostService", n)
        );
        hashes.insert(n, hash);
    }
    let web = secret_text(
        &secrets.get("kubegost-web-egress").await?,
        "web-egress.yaml",
    )
    .unwrap();
    assert!(
        web.contains("web-egress_corp-egress") && web.contains("password: change-me"),
        "{web}"
    );

    // chains report who uses them
    let corp = wait_for(
        "corp-egress Ready with referencedBy",
        Duration::from_secs(30),
        || async {
            let c = chains.get("corp-egress").await?;
            Ok(
                (gchain_cond(&c, "Ready").is_some_and(|r| r.status == "True")
                    && c.status
                        .as_ref()
                        .is_some_and(|s| s.referenced_by == ["web-egress", "worker-egress"]))
                .then_some(c),
            )
        },
    )
    .await?;
    assert_eq!(gchain_cond(&corp, "Accepted").unwrap().status, "True");

    // kubectl get gsvc shows the printer columns
    let table = kubectl(&cluster, &["get", "gsvc", "-n", &ns.name], None)?;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "CHAIN", "READY", "SELECTED", "INJECTED", "OUTDATED", "AGE"],
        "{table}"
    );
    let row = table.lines().find(|l| l.starts_with("web-egress")).unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cols[..6],
        ["web-egress", "corp-egress", "True", "0", "0", "0"],
        "{table}"
    );

    // a GostChain change re-renders every GostService that uses it
    chains
        .patch(
            "corp-egress",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(serde_json::json!([
                {"op": "replace", "path": "/spec/hops/0/nodes/0/addr", "value": "proxy2.corp.example:3128"}
            ]))?),
        )
        .await?;
    for n in ["web-egress", "worker-egress"] {
        let s = wait_secret(
            &secrets,
            &format!("kubegost-{n}"),
            &format!("{n} re-rendered"),
            |s| {
                secret_text(s, &format!("{n}.yaml"))
                    .is_some_and(|t| t.contains("proxy2.corp.example:3128"))
            },
        )
        .await?;
        engine_loads(&s, &format!("{n}.yaml"))?;
        let g = wait_gsvc(&gsvcs, n, "new configHash in status", |g| {
            g.status.as_ref().and_then(|s| s.config_hash.as_ref()) != Some(&hashes[n])
        })
        .await?;
        assert!(has(&g, "Ready", "True", None));
    }
    // the chain did not change the others
    let hooks = gsvcs.get("api-hooks").await?;
    assert_eq!(
        hooks.status.unwrap().config_hash.as_ref(),
        Some(&hashes["api-hooks"])
    );

    // a referenced Secret change re-renders too
    let creds: Api<Secret> = Api::namespaced(cluster.client.clone(), &ns.name);
    creds
        .patch(
            "corp-proxy-creds",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"stringData": {"password": "rotated-1"}})),
        )
        .await?;
    wait_secret(
        &secrets,
        "kubegost-web-egress",
        "new password rendered",
        |s| secret_text(s, "web-egress.yaml").is_some_and(|t| t.contains("password: rotated-1")),
    )
    .await?;
    let ev = events_of(&cluster, &ns.name, "web-egress");
    assert!(ev.contains("ConfigWritten"), "{ev}");
    ns.success();
    op.success();
    Ok(())
}

const EGRESS_ONLY: &[&str] = &["gostchain.yaml", "gostservice-egress.yaml"];

fn apply_examples(cluster: &Cluster, ns: &str, files: &[&str]) -> Result<()> {
    for f in files {
        kubectl(
            cluster,
            &[
                "apply",
                "-n",
                ns,
                "-f",
                examples().join(f).to_str().unwrap(),
            ],
            None,
        )?;
    }
    Ok(())
}

#[tokio::test]
async fn k8s_l1_operator_errors_name_the_field_and_keep_the_previous_secret() -> Result<()> {
    let test = "k8s_l1_operator_errors_name_the_field_and_keep_the_previous_secret";
    let Some(cluster) = testenv::cluster(1, test).await else {
        return Ok(());
    };
    let mut ns = cluster.namespace().await?;
    let mut op = Operator::start(&cluster, &ns.name).await;
    apply_examples(&cluster, &ns.name, EGRESS_ONLY)?;
    let gsvcs: Api<GostService> = Api::namespaced(cluster.client.clone(), &ns.name);
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), &ns.name);
    ready_all(&gsvcs, &["web-egress"]).await?;
    let good = secrets.get("kubegost-web-egress").await?;
    let good_rv = good.metadata.resource_version.clone();
    let unchanged = |s: Secret| {
        assert_eq!(
            s.metadata.resource_version, good_rv,
            "the previous Secret content must stay"
        );
        assert_eq!(s.data, good.data);
    };
    let json_patch =
        |ops: serde_json::Value| Patch::Json::<()>(serde_json::from_value(ops).unwrap());

    // 1. a missing chain
    gsvcs
        .patch(
            "web-egress",
            &PatchParams::default(),
            &json_patch(serde_json::json!([
            {"op": "replace", "path": "/spec/chain", "value": "no-such-chain"}])),
        )
        .await?;
    let g = wait_gsvc(&gsvcs, "web-egress", "ResolvedRefs=False", |g| {
        has(g, "ResolvedRefs", "False", Some("ChainNotFound"))
    })
    .await?;
    let m = gsvc_cond(&g, "ResolvedRefs").unwrap().message;
    assert!(
        m.contains("spec.chain") && m.contains("\"no-such-chain\""),
        "{m}"
    );
    assert!(has(&g, "Ready", "False", Some("PreviousConfigKept")));
    unchanged(secrets.get("kubegost-web-egress").await?);
    let ev = wait_for(
        "a Warning event naming the field",
        Duration::from_secs(20),
        || async {
            let e = events_of(&cluster, &ns.name, "web-egress");
            Ok((e.contains("Warning") && e.contains("ChainNotFound")).then_some(e))
        },
    )
    .await?;
    assert!(ev.contains("spec.chain"), "{ev}");

    // 2. a handler type the engine does not know
    gsvcs
        .patch(
            "web-egress",
            &PatchParams::default(),
            &json_patch(serde_json::json!([
            {"op": "replace", "path": "/spec/chain", "value": "corp-egress"},
            {"op": "replace", "path": "/spec/services/0/handler/type", "value": "htp"}])),
        )
        .await?;
    let g = wait_gsvc(&gsvcs, "web-egress", "Accepted=False Invalid", |g| {
        has(g, "Accepted", "False", Some("Invalid"))
    })
    .await?;
    let m = gsvc_cond(&g, "Accepted").unwrap().message;
    assert!(
        m.contains("spec.services[http-proxy].handler.type") && m.contains("htp"),
        "{m}"
    );
    assert!(has(&g, "ResolvedRefs", "True", None));
    unchanged(secrets.get("kubegost-web-egress").await?);

    // 3. an address clash with another GostService on the same pods
    gsvcs
        .patch(
            "web-egress",
            &PatchParams::default(),
            &json_patch(serde_json::json!([
            {"op": "replace", "path": "/spec/services/0/handler/type", "value": "http"}])),
        )
        .await?;
    ready_all(&gsvcs, &["web-egress"]).await?;
    apply(
        &cluster,
        &ns.name,
        r#"
apiVersion: kubegost.io/v1alpha1
kind: GostService
metadata: {name: clash}
spec:
  selector: {}
  services:
  - {name: socks, addr: "127.0.0.1:8080", handler: {type: socks5}}
"#,
    )?;
    let g = wait_gsvc(&gsvcs, "web-egress", "Accepted=False Conflict", |g| {
        has(g, "Accepted", "False", Some("Conflict"))
    })
    .await?;
    let m = gsvc_cond(&g, "Accepted").unwrap().message;
    assert!(
        m.contains("spec.services[http-proxy].addr") && m.contains("\"clash\""),
        "{m}"
    );
    let c = wait_gsvc(&gsvcs, "clash", "clash reports the conflict too", |g| {
        has(g, "Accepted", "False", Some("Conflict"))
    })
    .await?;
    assert!(gsvc_cond(&c, "Accepted")
        .unwrap()
        .message
        .contains("\"web-egress\""));
    unchanged(secrets.get("kubegost-web-egress").await?);
    gsvcs.delete("clash", &DeleteParams::default()).await?;
    ready_all(&gsvcs, &["web-egress"]).await?;

    // 4. a missing Secret of the chain
    secrets
        .delete("corp-proxy-creds", &DeleteParams::default())
        .await?;
    let g = wait_gsvc(
        &gsvcs,
        "web-egress",
        "ResolvedRefs=False SecretNotFound",
        |g| has(g, "ResolvedRefs", "False", Some("SecretNotFound")),
    )
    .await?;
    let m = gsvc_cond(&g, "ResolvedRefs").unwrap().message;
    assert!(
        m.contains("GostChain corp-egress: spec.hops[hop-0].nodes[corp-proxy].connector.auth.secretRef.name"),
        "{m}"
    );
    unchanged(secrets.get("kubegost-web-egress").await?);
    let chains: Api<GostChain> = Api::namespaced(cluster.client.clone(), &ns.name);
    wait_for(
        "GostChain Ready=False SecretNotFound",
        Duration::from_secs(30),
        || async {
            let c = chains.get("corp-egress").await?;
            Ok(gchain_cond(&c, "Ready")
                .filter(|r| r.reason == "SecretNotFound")
                .map(|_| ()))
        },
    )
    .await?;
    ns.success();
    op.success();
    Ok(())
}

/// resourceVersions of everything the operator writes in `ns`.
async fn versions(cluster: &Cluster, ns: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let c = &cluster.client;
    for g in Api::<GostService>::namespaced(c.clone(), ns)
        .list(&Default::default())
        .await?
    {
        out.insert(
            format!("gsvc/{}", g.metadata.name.unwrap()),
            g.metadata.resource_version.unwrap(),
        );
    }
    for g in Api::<GostChain>::namespaced(c.clone(), ns)
        .list(&Default::default())
        .await?
    {
        out.insert(
            format!("gchain/{}", g.metadata.name.unwrap()),
            g.metadata.resource_version.unwrap(),
        );
    }
    for s in Api::<Secret>::namespaced(c.clone(), ns)
        .list(&Default::default())
        .await?
    {
        out.insert(
            format!("secret/{}", s.metadata.name.unwrap()),
            s.metadata.resource_version.unwrap(),
        );
    }
    for p in Api::<Pod>::namespaced(c.clone(), ns)
        .list(&Default::default())
        .await?
    {
        out.insert(
            format!("pod/{}", p.metadata.name.unwrap()),
            p.metadata.resource_version.unwrap(),
        );
    }
    for r in Api::<RoleBinding>::namespaced(c.clone(), ns)
        .list(&Default::default())
        .await?
    {
        out.insert(
            format!("rolebinding/{}", r.metadata.name.unwrap()),
            r.metadata.resource_version.unwrap(),
        );
    }
    let ev = kubectl(
        cluster,
        &[
            "get",
            "events.events.k8s.io",
            "-n",
            ns,
            "--no-headers",
            "-o",
            "name",
        ],
        None,
    )?;
    out.insert("events".into(), ev.lines().count().to_string());
    Ok(out)
}

/// A pod object (never scheduled at level 1) as the webhook would have admitted it.
fn injected_pod(name: &str, gsvcs: &[GostService]) -> Pod {
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
    }))
    .unwrap();
    let refs: Vec<&GostService> = gsvcs.iter().collect();
    plan_injection(&pod, &refs, &InjectSettings::default()).unwrap()
}

#[tokio::test]
async fn k8s_l1_operator_forced_resync_writes_nothing() -> Result<()> {
    let test = "k8s_l1_operator_forced_resync_writes_nothing";
    let Some(cluster) = testenv::cluster(1, test).await else {
        return Ok(());
    };
    let mut ns = cluster.namespace().await?;
    let mut op = Operator::start(&cluster, &ns.name).await;
    kubectl(
        &cluster,
        &["apply", "-n", &ns.name, "-f", examples().to_str().unwrap()],
        None,
    )?;
    let gsvcs: Api<GostService> = Api::namespaced(cluster.client.clone(), &ns.name);
    let names = ["web-egress", "worker-egress", "api-hooks", "dev-box-tunnel"];
    ready_all(&gsvcs, &names).await?;
    // an injected pod the operator counts and annotates
    let web = gsvcs.get("web-egress").await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns.name);
    pods.create(&PostParams::default(), &injected_pod("web-1", &[web]))
        .await?;
    let g = wait_gsvc(&gsvcs, "web-egress", "the pod counted", |g| {
        g.status
            .as_ref()
            .is_some_and(|s| s.selected_pods == 1 && s.injected_pods == 1)
    })
    .await?;
    let hash_ann = wait_for(
        "pod config-hash annotation",
        Duration::from_secs(30),
        || async {
            let p = pods.get("web-1").await?;
            Ok(p.metadata
                .annotations
                .and_then(|a| a.get(CONFIG_HASH_ANNOTATION).cloned()))
        },
    )
    .await?;
    assert!(!hash_ann.is_empty());
    assert!(has(&g, "PodsUpToDate", "True", None));
    // settle: nothing left to do
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = versions(&cluster, &ns.name).await?;

    // forced resync: a fresh operator reconciles everything from scratch
    assert!(op.stop(), "SIGTERM: exit 0\n{}", op.logs());
    op.success();
    let mut op = Operator::start(&cluster, &ns.name).await;
    wait_for(
        "every object reconciled again",
        Duration::from_secs(60),
        || async {
            let done = op.reconciles("gostservice").await >= 4.0
                && op.reconciles("gostchain").await >= 2.0;
            Ok(done.then_some(()))
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = versions(&cluster, &ns.name).await?;
    assert_eq!(before, after, "a resync changed objects:\n{}", op.logs());
    assert_eq!(
        op.metric("kubegost_reconcile_errors_total")
            .await
            .unwrap_or(0.0),
        0.0
    );
    ns.success();
    op.success();
    Ok(())
}

#[tokio::test]
async fn k8s_l1_operator_deletion_empties_the_config_first() -> Result<()> {
    let test = "k8s_l1_operator_deletion_empties_the_config_first";
    let Some(cluster) = testenv::cluster(1, test).await else {
        return Ok(());
    };
    let mut ns = cluster.namespace().await?;
    let mut op = Operator::start(&cluster, &ns.name).await;
    apply_examples(&cluster, &ns.name, EGRESS_ONLY)?;
    let gsvcs: Api<GostService> = Api::namespaced(cluster.client.clone(), &ns.name);
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), &ns.name);
    ready_all(&gsvcs, &["web-egress"]).await?;
    let web = gsvcs.get("web-egress").await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns.name);
    pods.create(&PostParams::default(), &injected_pod("web-1", &[web]))
        .await?;
    let rbs: Api<RoleBinding> = Api::namespaced(cluster.client.clone(), &ns.name);
    assert!(
        rbs.get_opt(SA).await?.is_some(),
        "the operator granted itself access"
    );
    let first = wait_for("pod annotated", Duration::from_secs(30), || async {
        let p = pods.get("web-1").await?;
        Ok(p.metadata
            .annotations
            .and_then(|a| a.get(CONFIG_HASH_ANNOTATION).cloned()))
    })
    .await?;

    // record every version of the Secret while the GostService goes
    let watch_api = secrets.clone();
    let seen = tokio::spawn(async move {
        use futures::StreamExt;
        let mut out = Vec::new();
        let wc =
            kube::runtime::watcher::Config::default().fields("metadata.name=kubegost-web-egress");
        let mut s = std::pin::pin!(kube::runtime::watcher(watch_api, wc));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, s.next()).await {
            match ev {
                Ok(
                    kube::runtime::watcher::Event::Apply(o)
                    | kube::runtime::watcher::Event::InitApply(o),
                ) => out.push(Some(secret_text(&o, "web-egress.yaml").unwrap_or_default())),
                Ok(kube::runtime::watcher::Event::Delete(_)) => {
                    out.push(None);
                    break;
                }
                _ => {}
            }
        }
        out
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    gsvcs.delete("web-egress", &DeleteParams::default()).await?;
    wait_for("GostService gone", Duration::from_secs(45), || async {
        Ok(gsvcs.get_opt("web-egress").await?.is_none().then_some(()))
    })
    .await?;
    let versions = seen.await?;
    let empty_at = versions
        .iter()
        .position(|v| v.as_deref() == Some("services: []\n"))
        .unwrap_or_else(|| panic!("the Secret was never emptied: {versions:?}"));
    assert!(versions[..empty_at]
        .iter()
        .any(|v| v.as_ref().is_some_and(|t| t.contains("http-proxy"))));
    // the garbage collector removes the Secret after the GostService
    wait_for("config Secret removed", Duration::from_secs(60), || async {
        Ok(secrets
            .get_opt("kubegost-web-egress")
            .await?
            .is_none()
            .then_some(()))
    })
    .await?;
    // the running pod was told to refresh at once, and keeps running
    let p = pods.get("web-1").await?;
    let now = p.metadata.annotations.unwrap_or_default()[CONFIG_HASH_ANNOTATION].clone();
    assert_ne!(
        now, first,
        "the pod was not nudged to load the empty config"
    );
    assert!(p.metadata.deletion_timestamp.is_none());
    // the last GostService of the namespace is gone: so is the operator's access to it
    wait_for("RoleBinding removed", Duration::from_secs(30), || async {
        Ok(rbs.get_opt(SA).await?.is_none().then_some(()))
    })
    .await?;
    ns.success();
    op.success();
    Ok(())
}

/// `kubectl auth can-i` as the operator's ServiceAccount: "yes" or "no".
fn can_i(cluster: &Cluster, args: &[&str]) -> String {
    let who = format!("--as=system:serviceaccount:{RELEASE}:{SA}");
    let mut all = vec!["auth", "can-i", who.as_str()];
    all.extend_from_slice(args);
    let kc = format!("--kubeconfig={}", cluster.kubeconfig.display());
    all.insert(0, &kc);
    let out = std::process::Command::new(
        std::env::var("KUBEGOST_TESTENV_KUBECTL").unwrap_or_else(|_| "kubectl".into()),
    )
    .args(&all)
    .output()
    .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn k8s_l1_operator_rbac_is_what_it_needs_and_nothing_more() -> Result<()> {
    let test = "k8s_l1_operator_rbac_is_what_it_needs_and_nothing_more";
    let Some(cluster) = testenv::cluster(1, test).await else {
        return Ok(());
    };
    let mut ns = cluster.namespace().await?;
    let other = cluster.namespace().await?;
    let mut op = Operator::start(&cluster, &ns.name).await;
    apply_examples(&cluster, &ns.name, EGRESS_ONLY)?;
    let gsvcs: Api<GostService> = Api::namespaced(cluster.client.clone(), &ns.name);
    ready_all(&gsvcs, &["web-egress"]).await?;
    op.success();
    let (n, o) = (ns.name.as_str(), other.name.as_str());
    let rb = format!("rolebindings/{SA}");
    let nsrole = format!("clusterroles/{RELEASE}-namespace");
    let yes: Vec<Vec<&str>> = vec![
        vec!["list", "gostservices.kubegost.io", "-A"],
        vec!["watch", "gostchains.kubegost.io", "-A"],
        vec![
            "patch",
            "gostservices.kubegost.io",
            "--subresource=status",
            "-A",
        ],
        vec![
            "patch",
            "gostchains.kubegost.io",
            "--subresource=status",
            "-A",
        ],
        vec!["patch", "gostservices.kubegost.io", "-A"],
        vec![
            "update",
            "gostservices.kubegost.io",
            "--subresource=finalizers",
            "-A",
        ],
        vec!["list", "secrets", "-A"],
        vec!["get", "secrets", "-n", o],
        vec!["watch", "pods", "-A"],
        vec!["create", "events.events.k8s.io", "-n", o],
        vec!["patch", "secrets", "-n", n],
        vec!["create", "secrets", "-n", n],
        vec!["patch", "pods", "-n", n],
        vec!["patch", rb.as_str(), "-n", o],
        vec!["delete", rb.as_str(), "-n", o],
        vec!["create", "rolebindings", "-n", o],
        vec!["bind", nsrole.as_str()],
        vec!["get", "leases.coordination.k8s.io", "-n", RELEASE],
        vec!["create", "leases.coordination.k8s.io", "-n", RELEASE],
        vec!["update", "leases.coordination.k8s.io", "-n", RELEASE],
    ];
    let no: Vec<Vec<&str>> = vec![
        vec!["create", "secrets", "-A"],
        vec!["patch", "secrets", "-A"],
        vec!["delete", "secrets", "-A"],
        vec!["patch", "secrets", "-n", o],
        vec!["delete", "secrets", "-n", n],
        vec!["create", "pods", "--subresource=exec", "-n", n],
        vec!["get", "pods", "--subresource=exec", "-n", n],
        vec!["patch", "pods", "-n", o],
        vec!["delete", "pods", "-n", n],
        vec!["get", "nodes"],
        vec!["list", "nodes"],
        vec!["create", "clusterrolebindings"],
        vec!["patch", "rolebindings/something-else", "-n", o],
        vec!["bind", "clusterroles/cluster-admin"],
        vec!["escalate", "clusterroles"],
        vec!["create", "leases.coordination.k8s.io", "-n", o],
        vec!["delete", "gostservices.kubegost.io", "-A"],
        vec!["create", "serviceaccounts/token", "-n", RELEASE],
        vec!["create", "mutatingwebhookconfigurations"],
        vec!["*", "*"],
    ];
    let mut wrong = Vec::new();
    for (want, list) in [("yes", &yes), ("no", &no)] {
        for args in list.iter() {
            let got = can_i(&cluster, args);
            if got != want {
                wrong.push(format!("can-i {}: {got} (want {want})", args.join(" ")));
            }
        }
    }
    assert!(wrong.is_empty(), "RBAC matrix:\n{}", wrong.join("\n"));
    ns.success();
    let mut other = other;
    other.success();
    Ok(())
}

#[tokio::test]
async fn k8s_l1_operator_bad_input_never_reaches_a_secret_and_a_restart_loses_nothing() -> Result<()>
{
    let test = "k8s_l1_operator_bad_input_never_reaches_a_secret_and_a_restart_loses_nothing";
    let Some(cluster) = testenv::cluster(1, test).await else {
        return Ok(());
    };
    let mut ns = cluster.namespace().await?;
    let mut op = Operator::start(&cluster, &ns.name).await;
    let gsvcs: Api<GostService> = Api::namespaced(cluster.client.clone(), &ns.name);
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), &ns.name);
    // a GostService the engine rejects, with no Secret yet: only a fail-closed placeholder
    apply(
        &cluster,
        &ns.name,
        r#"
apiVersion: kubegost.io/v1alpha1
kind: GostService
metadata: {name: bad}
spec:
  selector: {matchLabels: {app: bad}}
  services:
  - {name: p, addr: "127.0.0.1:3128", handler: {type: htp, metadata: {secretOption: leak-me}}}
"#,
    )?;
    let g = wait_gsvc(&gsvcs, "bad", "Accepted=False", |g| {
        has(g, "Accepted", "False", Some("Invalid"))
    })
    .await?;
    assert!(has(&g, "Ready", "False", Some("ServicesFailClosed")));
    let s = secrets.get("kubegost-bad").await?;
    let text = secret_text(&s, "bad.yaml").unwrap();
    // the reason names the rejected value; none of the rejected settings are written
    assert!(
        !text.contains("handler:") && !text.contains("leak-me"),
        "rejected settings reached the Secret:\n{text}"
    );
    let cfg = engine_loads(&s, "bad.yaml")?;
    assert!(
        cfg.services[0].metadata.contains_key("failClosed"),
        "{text}"
    );

    // several changes at once, and the operator dies in the middle (SIGKILL: no cleanup)
    apply_examples(&cluster, &ns.name, EGRESS_ONLY)?;
    gsvcs
        .patch("bad", &PatchParams::default(), &Patch::Merge(serde_json::json!({
            "spec": {"services": [{"name": "p", "addr": "127.0.0.1:3128", "handler": {"type": "http"}}]}})))
        .await?;
    tokio::time::sleep(Duration::from_millis(150)).await;
    op.kill();
    // the next one converges
    let mut op2 = Operator::start(&cluster, &ns.name).await;
    ready_all(&gsvcs, &["bad", "web-egress"]).await?;
    let s = secrets.get("kubegost-bad").await?;
    let cfg = engine_loads(&s, "bad.yaml")?;
    assert!(!cfg.services[0].metadata.contains_key("failClosed"));
    assert_eq!(cfg.services[0].handler.as_ref().unwrap().kind, "http");
    engine_loads(
        &secrets.get("kubegost-web-egress").await?,
        "web-egress.yaml",
    )?;
    ns.success();
    op.success();
    op2.success();
    Ok(())
}

#[tokio::test]
async fn k8s_l1_chart_templates_are_accepted_by_the_api_server() -> Result<()> {
    let test = "k8s_l1_chart_templates_are_accepted_by_the_api_server";
    let Some(cluster) = testenv::cluster(1, test).await else {
        return Ok(());
    };
    installed(&cluster); // the release namespace exists
    let chart = repo().join("charts/kubegost");
    let chart = chart.to_str().unwrap();
    helm(&cluster, &["lint", "--strict", chart])?;
    for extra in [
        vec![],
        vec![
            "--set",
            "webhook.failurePolicy=Ignore",
            "--set",
            "proxy.nativeSidecars=off",
            "--set",
            "replicas=3",
        ],
        vec![
            "--set",
            "webhook.certManager.enabled=true",
            "--set",
            "webhook.certManager.issuerRef.name=ca",
        ],
    ] {
        let mut args = vec!["template", "dry", chart, "--namespace", RELEASE];
        args.extend(extra.iter().copied());
        let rendered = helm(&cluster, &args)?;
        // cert-manager's Certificate needs cert-manager's CRDs, which this cluster does not have
        if extra.iter().any(|a| a.contains("certManager.enabled=true")) {
            assert!(rendered.contains("kind: Certificate\n"), "{rendered}");
            assert!(
                rendered.contains("cert-manager.io/inject-ca-from"),
                "{rendered}"
            );
            assert!(
                rendered.contains("--webhook-cert-mode=external"),
                "{rendered}"
            );
        }
        let rendered = rendered
            .split("\n---\n")
            .filter(|d| !d.contains("kind: Certificate\n"))
            .collect::<Vec<_>>()
            .join("\n---\n");
        let out = kubectl(
            &cluster,
            &["apply", "--dry-run=server", "-f", "-"],
            Some(&rendered),
        )
        .with_context(|| format!("helm template {extra:?}"))?;
        assert!(
            out.contains("deployment.apps/dry-kubegost-operator created (server dry run)"),
            "{out}"
        );
        assert!(
            out.contains("clusterrole.rbac.authorization.k8s.io/dry-kubegost-namespace"),
            "{out}"
        );
    }
    let err = helm(
        &cluster,
        &[
            "template",
            "dry",
            chart,
            "--set",
            "webhook.failurePolicy=Sometimes",
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("webhook.failurePolicy must be Fail or Ignore"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn k8s_l1_operator_webhook_injects_denies_conflicts_and_rotates_its_certificate() -> Result<()>
{
    let test = "k8s_l1_operator_webhook_injects_denies_conflicts_and_rotates_its_certificate";
    let Some(cluster) = testenv::cluster(1, test).await else {
        return Ok(());
    };
    use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
    let mut ns = cluster.namespace().await?;
    let (mwc_name, tls_secret) = webhook_names();
    let port = free_port();
    // the API server calls the operator on loopback (url instead of a Service at level 1)
    let (mut op, _mwc_guard) = start_with_webhook(&cluster, &ns.name, port, "24s").await?;
    let mwcs: Api<MutatingWebhookConfiguration> = Api::all(cluster.client.clone());
    let secrets_sys: Api<Secret> = Api::namespaced(cluster.client.clone(), RELEASE);
    // the leader wrote the CA into the webhook configuration
    let ca = wait_for("caBundle set", Duration::from_secs(30), || async {
        let m = mwcs.get(&mwc_name).await?;
        Ok(m.webhooks.unwrap_or_default()[0]
            .client_config
            .ca_bundle
            .clone())
    })
    .await?;
    let s = secrets_sys.get(&tls_secret).await?;
    assert_eq!(
        ca.0,
        s.data.as_ref().unwrap()["ca.crt"].0,
        "caBundle is the Secret's CA"
    );

    apply_examples(&cluster, &ns.name, EGRESS_ONLY)?;
    let gsvcs: Api<GostService> = Api::namespaced(cluster.client.clone(), &ns.name);
    ready_all(&gsvcs, &["web-egress"]).await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns.name);
    // a selected pod is admitted with the sidecar (the webhook's reflector may lag a moment)
    let injected = create_until_injected(&pods, "web-1", serde_json::json!({"app": "web"})).await?;
    let spec = injected.spec.clone().unwrap();
    let sidecar = spec
        .init_containers
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.name == "gost-proxy")
        .unwrap();
    assert_eq!(
        sidecar.restart_policy.as_deref(),
        Some("Always"),
        "native sidecar"
    );
    assert_eq!(
        sidecar.image.as_deref(),
        Some("localhost/kubegost/proxy:l1")
    );
    assert!(sidecar.startup_probe.is_some() && sidecar.readiness_probe.is_some());
    let sc = sidecar.security_context.as_ref().unwrap();
    assert_eq!(
        (sc.run_as_non_root, sc.read_only_root_filesystem),
        (Some(true), Some(true))
    );
    // the token path is covered by an empty volume, so the API server adds no token there
    let token_mounts: Vec<&str> = sidecar
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| m.mount_path.contains("serviceaccount"))
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(
        token_mounts,
        ["kubegost-no-token"],
        "the sidecar has no service-account token"
    );
    let ann = injected.metadata.annotations.clone().unwrap();
    assert_eq!(ann["kubectl.kubernetes.io/default-container"], "app");
    assert!(ann["kubegost.io/status"].contains("web-egress"));
    // opted out, and not selected: unchanged
    let p = pods
        .create(
            &PostParams::default(),
            &bare_pod(
                "out-1",
                serde_json::json!({"app": "web", "kubegost.io/inject": "false"}),
            ),
        )
        .await?;
    assert!(!gost_operator::inject::is_injected(&p));
    let p = pods
        .create(
            &PostParams::default(),
            &bare_pod("db-1", serde_json::json!({"app": "db"})),
        )
        .await?;
    assert!(!gost_operator::inject::is_injected(&p));

    // a conflict is a denial naming both GostServices
    apply(
        &cluster,
        &ns.name,
        "apiVersion: kubegost.io/v1alpha1\nkind: GostService\nmetadata: {name: clash}\nspec:\n  selector: {matchLabels: {app: web}}\n  services: [{name: s5, addr: \"127.0.0.1:8080\", handler: {type: socks5}}]\n",
    )?;
    let denied = create_until_refused(
        &pods,
        "web-2",
        serde_json::json!({"app": "web"}),
        "a denial",
    )
    .await?;
    assert!(
        denied.contains("GostService clash/s5")
            && denied.contains("GostService web-egress/http-proxy"),
        "{denied}"
    );
    gsvcs.delete("clash", &DeleteParams::default()).await?;

    // rotation: a new serving certificate before the old one expires, served without a restart
    let first = served_cert(port).await?;
    assert_eq!(
        first,
        pem_der(&String::from_utf8_lossy(
            &s.data.as_ref().unwrap()["tls.crt"].0
        ))
    );
    let rotated = wait_for(
        "a renewed certificate being served",
        Duration::from_secs(40),
        || async {
            let c = served_cert(port).await?;
            Ok((c != first).then_some(c))
        },
    )
    .await?;
    let s2 = secrets_sys.get(&tls_secret).await?;
    assert_eq!(
        rotated,
        pem_der(&String::from_utf8_lossy(
            &s2.data.as_ref().unwrap()["tls.crt"].0
        ))
    );
    assert_eq!(
        s2.data.as_ref().unwrap()["ca.crt"],
        s.data.as_ref().unwrap()["ca.crt"],
        "same CA"
    );
    // the API server still trusts it: pods are still admitted
    let p = pods
        .create(
            &PostParams::default(),
            &bare_pod("web-3", serde_json::json!({"app": "web"})),
        )
        .await?;
    assert!(gost_operator::inject::is_injected(&p));
    assert!(
        op.metric("kubegost_injection_injected_total")
            .await
            .unwrap_or(0.0)
            >= 2.0
    );
    assert!(
        op.metric("kubegost_webhook_certificate_expiry_seconds")
            .await
            .unwrap_or(0.0)
            > 0.0
    );
    ns.success();
    op.success();
    Ok(())
}
