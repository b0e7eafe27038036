#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Level-1 cluster tests of the operator's failure modes and scale (issue "hardening", item
//! 4), against a real kube-apiserver: the webhook unavailable under `failurePolicy` Fail and
//! Ignore, the serving certificate rotated while pods are being created, the operator killed
//! (SIGKILL) in the middle of reconciles, a GostService with 200 services and 1,000
//! GostServices in one namespace. Each asserts that the system converges with nothing
//! duplicated or lost and that what happens is what the README documents; figures (reconcile
//! time, operator memory) are printed, never asserted. The API server restart is in
//! `k8s_l1_apiserver_restart.rs`, a binary of its own, so no other test sees the outage.

mod support;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Result;
use gost_operator::crd::GostService;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Api;
use kubegost_tests::testenv::{self, wait_for, Cluster};
use support::*;

/// How many of `names` are Ready=True for their current generation, and the first that is not.
async fn count_ready(gsvcs: &Api<GostService>) -> Result<(usize, usize, Option<String>)> {
    let all = gsvcs.list(&ListParams::default()).await?;
    let mut ready = 0;
    let mut first_not = None;
    for g in &all.items {
        if has(g, "Ready", "True", None) {
            ready += 1;
        } else if first_not.is_none() {
            first_not = Some(g.metadata.name.clone().unwrap_or_default());
        }
    }
    Ok((ready, all.items.len(), first_not))
}

/// Waits (≤ `limit`) until every GostService of the namespace is Ready for its generation;
/// returns how long it took.
async fn all_ready(gsvcs: &Api<GostService>, want: usize, limit: Duration) -> Result<Duration> {
    let t0 = Instant::now();
    let mut last = (0, 0, None);
    while t0.elapsed() < limit {
        last = count_ready(gsvcs).await?;
        if last.0 == want && last.1 == want {
            return Ok(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!(
        "after {limit:?}: {} of {} GostServices Ready (want {want}); first not ready: {:?}",
        last.0,
        last.1,
        last.2
    )
}

/// The operator's Secrets in the namespace, by the GostService label: (count, all distinct
/// owners, each with exactly one owner reference).
async fn rendered_secrets(cluster: &Cluster, ns: &str) -> Result<Vec<Secret>> {
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), ns);
    Ok(secrets
        .list(&ListParams::default().labels("kubegost.io/gostservice"))
        .await?
        .items)
}

fn assert_one_secret_each(secrets: &[Secret], n: usize) {
    let mut owners: Vec<String> = secrets
        .iter()
        .map(|s| {
            let refs = s.metadata.owner_references.clone().unwrap_or_default();
            assert_eq!(
                refs.len(),
                1,
                "Secret {:?} has {} owners",
                s.metadata.name,
                refs.len()
            );
            refs[0].name.clone()
        })
        .collect();
    owners.sort();
    owners.dedup();
    assert_eq!(
        (secrets.len(), owners.len()),
        (n, n),
        "one Secret per GostService, none duplicated or lost"
    );
}

#[tokio::test]
async fn k8s_l1_failures_webhook_unavailable_fail_refuses_ignore_admits_and_status_reports_it(
) -> Result<()> {
    let test =
        "k8s_l1_failures_webhook_unavailable_fail_refuses_ignore_admits_and_status_reports_it";
    let Some(cluster) = testenv::cluster(1, test).await else {
        return Ok(());
    };
    let mut ns = cluster.namespace().await?;
    let mut op = Operator::start(&cluster, &ns.name).await;
    apply(
        &cluster,
        &ns.name,
        "apiVersion: kubegost.io/v1alpha1\nkind: GostService\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  services: [{name: p, addr: \"127.0.0.1:3128\", handler: {type: http}}]\n",
    )?;
    let gsvcs: Api<GostService> = Api::namespaced(cluster.client.clone(), &ns.name);
    wait_gsvc(&gsvcs, "web", "Ready", |g| has(g, "Ready", "True", None)).await?;
    // the webhook is configured but nothing serves it (every replica down)
    let name = format!("kubegost-down-{}", ns.name);
    let mwcs: Api<MutatingWebhookConfiguration> = Api::all(cluster.client.clone());
    let _guard = testenv::DeleteOnDrop::of::<MutatingWebhookConfiguration>(&cluster, None, &name);
    let dead = free_port();
    mwcs.create(
        &PostParams::default(),
        &webhook_config(&name, &ns.name, dead, "Fail"),
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns.name);
    // Fail: no selected pod starts without its proxy (the refusal names the webhook)
    let refused = create_until_refused(
        &pods,
        "web-1",
        serde_json::json!({"app": "web"}),
        "a pod creation refused by the unavailable webhook",
    )
    .await?;
    assert!(
        refused.contains("failed calling webhook") && refused.contains("inject.kubegost.io"),
        "{refused}"
    );
    assert!(pods.get_opt("web-1").await?.is_none());
    // an opted-out pod is not sent to the webhook at all
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

    // Ignore: the pod starts without the sidecar, and the GostService's status says so
    let mut m = mwcs.get(&name).await?;
    for w in m.webhooks.iter_mut().flatten() {
        w.failure_policy = Some("Ignore".into());
    }
    mwcs.replace(&name, &PostParams::default(), &m).await?;
    let admitted = wait_for(
        "a pod admitted without the webhook",
        Duration::from_secs(30),
        || async {
            match pods
                .create(
                    &PostParams::default(),
                    &bare_pod("web-1", serde_json::json!({"app": "web"})),
                )
                .await
            {
                Ok(p) => Ok(Some(p)),
                Err(kube::Error::Api(e)) if e.message.contains("failed calling webhook") => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Ok(None)
                }
                Err(e) => Err(e.into()),
            }
        },
    )
    .await?;
    assert!(!gost_operator::inject::is_injected(&admitted));
    let g = wait_gsvc(&gsvcs, "web", "PodsUpToDate=False SidecarMissing", |g| {
        has(g, "PodsUpToDate", "False", Some("SidecarMissing"))
    })
    .await?;
    let c = gsvc_cond(&g, "PodsUpToDate").unwrap();
    assert!(
        c.message.contains("run without the sidecar") && c.message.ends_with(": web-1"),
        "{}",
        c.message
    );
    let st = g.status.unwrap();
    assert_eq!(
        (st.selected_pods, st.injected_pods),
        (2, 0),
        "web-1 and the opted-out out-1 are selected"
    );
    // deleting the pod (a restart) clears it; nothing is restarted by the operator
    pods.delete(
        "web-1",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await?;
    wait_gsvc(&gsvcs, "web", "PodsUpToDate=True", |g| {
        has(g, "PodsUpToDate", "True", None)
    })
    .await?;
    ns.success();
    op.success();
    Ok(())
}

#[tokio::test]
async fn k8s_l1_failures_certificate_rotation_while_pods_are_created() -> Result<()> {
    let test = "k8s_l1_failures_certificate_rotation_while_pods_are_created";
    let Some(cluster) = testenv::cluster(1, test).await else {
        return Ok(());
    };
    let mut ns = cluster.namespace().await?;
    let (mwc_name, tls_secret) = webhook_names();
    let port = free_port();
    // a 24 s certificate is renewed when 8 s are left: several rotations in the run below
    let (mut op, _mwc_guard) = start_with_webhook(&cluster, &ns.name, port, "24s").await?;
    let mwcs: Api<MutatingWebhookConfiguration> = Api::all(cluster.client.clone());
    let secrets_sys: Api<Secret> = Api::namespaced(cluster.client.clone(), RELEASE);
    apply(
        &cluster,
        &ns.name,
        "apiVersion: kubegost.io/v1alpha1\nkind: GostService\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  services: [{name: p, addr: \"127.0.0.1:3128\", handler: {type: http}}]\n",
    )?;
    let gsvcs: Api<GostService> = Api::namespaced(cluster.client.clone(), &ns.name);
    wait_gsvc(&gsvcs, "web", "Ready", |g| has(g, "Ready", "True", None)).await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns.name);
    // the webhook's cache and caBundle are in place once one pod is injected
    create_until_injected(&pods, "warm", serde_json::json!({"app": "web"})).await?;
    // pods created back to back (≤ 300, ≤ 75 s) until two renewals were served
    let mut certs = vec![served_cert(port).await?];
    let (mut created, mut failed) = (0usize, Vec::new());
    let t0 = Instant::now();
    for i in 0..300 {
        if certs.len() >= 3 || t0.elapsed() > Duration::from_secs(75) {
            break;
        }
        match pods
            .create(
                &PostParams::default(),
                &bare_pod(&format!("web-{i}"), serde_json::json!({"app": "web"})),
            )
            .await
        {
            Ok(p) if gost_operator::inject::is_injected(&p) => created += 1,
            Ok(p) => failed.push(format!(
                "{:?} admitted without the sidecar",
                p.metadata.name
            )),
            Err(e) => failed.push(format!("web-{i}: {e}")),
        }
        let now = served_cert(port).await?;
        if certs.last() != Some(&now) {
            certs.push(now);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "FIGURE cert rotation: {created} pods created and injected over {:.1} s, {} certificates served, {} failures",
        t0.elapsed().as_secs_f64(),
        certs.len(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "creations failed during rotation: {failed:?}"
    );
    assert!(
        certs.len() >= 2,
        "no renewal was served within the run ({created} pods)"
    );
    // the Secret holds the certificate being served, under the same CA as the caBundle
    let s = secrets_sys.get(&tls_secret).await?;
    let data = s.data.as_ref().unwrap();
    assert_eq!(
        served_cert(port).await?,
        pem_der(&String::from_utf8_lossy(&data["tls.crt"].0))
    );
    let m = mwcs.get(&mwc_name).await?;
    assert_eq!(
        m.webhooks.unwrap()[0]
            .client_config
            .ca_bundle
            .as_ref()
            .unwrap()
            .0,
        data["ca.crt"].0
    );
    ns.success();
    op.success();
    Ok(())
}

#[tokio::test]
async fn k8s_l1_failures_operator_killed_mid_reconcile_converges_without_duplicates() -> Result<()>
{
    let test = "k8s_l1_failures_operator_killed_mid_reconcile_converges_without_duplicates";
    let Some(cluster) = testenv::cluster(1, test).await else {
        return Ok(());
    };
    const N: usize = 40;
    let mut ns = cluster.namespace().await?;
    let gsvcs: Api<GostService> = Api::namespaced(cluster.client.clone(), &ns.name);
    let mut op = Operator::start(&cluster, &ns.name).await;
    kubectl(
        &cluster,
        &["create", "-n", &ns.name, "-f", "-"],
        Some(&many_gostservices(N, 20000)),
    )?;
    // SIGKILL three times at different points of the work (no Lease release, no cleanup),
    // with changes made while no operator runs
    for (round, after_ms) in [(0, 100u64), (1, 400), (2, 1200)] {
        tokio::time::sleep(Duration::from_millis(after_ms)).await;
        op.kill();
        for i in (round..N).step_by(7) {
            gsvcs
                .patch(
                    &format!("g-{i}"),
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({"spec": {"services": [
                        {"name": "p", "addr": format!("127.0.0.1:{}", 21000 + round * 100 + i), "handler": {"type": "http"}}]}})),
                )
                .await?;
        }
        op = Operator::start(&cluster, &ns.name).await;
    }
    let took = all_ready(&gsvcs, N, Duration::from_secs(120)).await?;
    eprintln!(
        "FIGURE killed 3 times: {N} GostServices Ready {:.1} s after the last start",
        took.as_secs_f64()
    );
    let secrets = rendered_secrets(&cluster, &ns.name).await?;
    assert_one_secret_each(&secrets, N);
    // the last change of each GostService is what its Secret holds
    for g in gsvcs.list(&ListParams::default()).await?.items {
        let name = g.metadata.name.clone().unwrap();
        let want = &g.spec.services[0].addr;
        let s = secrets
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(&format!("kubegost-{name}")))
            .unwrap();
        let text = String::from_utf8_lossy(&s.data.as_ref().unwrap()[&format!("{name}.yaml")].0)
            .into_owned();
        assert!(
            text.contains(want.as_str()),
            "{name}: {want} not in\n{text}"
        );
    }
    // one RoleBinding for the namespace, not one per operator start
    let rbs: Api<RoleBinding> = Api::namespaced(cluster.client.clone(), &ns.name);
    let n_rb = rbs.list(&ListParams::default()).await?.items.len();
    assert_eq!(n_rb, 1, "RoleBindings in the namespace");
    ns.success();
    op.success();
    Ok(())
}

#[tokio::test]
async fn k8s_l1_failures_a_gostservice_with_200_services() -> Result<()> {
    let test = "k8s_l1_failures_a_gostservice_with_200_services";
    let Some(cluster) = testenv::cluster(1, test).await else {
        return Ok(());
    };
    let mut ns = cluster.namespace().await?;
    let mut op = Operator::start(&cluster, &ns.name).await;
    let mut y = String::from(
        "apiVersion: kubegost.io/v1alpha1\nkind: GostService\nmetadata: {name: big}\nspec:\n  selector: {matchLabels: {app: big}}\n  services:\n",
    );
    for i in 0..200 {
        let _ = writeln!(
            y,
            "  - {{name: s{i}, addr: \"127.0.0.1:{}\", handler: {{type: {}}}}}",
            30000 + i,
            ["http", "socks5", "relay", "auto"][i % 4]
        );
    }
    let t0 = Instant::now();
    apply(&cluster, &ns.name, &y)?;
    let gsvcs: Api<GostService> = Api::namespaced(cluster.client.clone(), &ns.name);
    wait_gsvc(&gsvcs, "big", "Ready", |g| has(g, "Ready", "True", None)).await?;
    let took = t0.elapsed();
    let secrets = rendered_secrets(&cluster, &ns.name).await?;
    assert_one_secret_each(&secrets, 1);
    let text =
        String::from_utf8_lossy(&secrets[0].data.as_ref().unwrap()["big.yaml"].0).into_owned();
    let cfg = gost_config::Config::from_yaml(&text)?;
    assert_eq!(cfg.services.len(), 200);
    gost_validate::validate(&cfg, gost_validate::Opts { strict: true })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!(
        "FIGURE 200 services: Ready {:.2} s after apply, Secret {} bytes, mean reconcile {:.1} ms, operator RSS {:?} KiB",
        took.as_secs_f64(),
        text.len(),
        op.mean_reconcile_seconds("gostservice").await.unwrap_or(0.0) * 1e3,
        op.rss_kib()
    );
    ns.success();
    op.success();
    Ok(())
}

#[tokio::test]
async fn k8s_l1_failures_1000_gostservices_in_one_namespace() -> Result<()> {
    let test = "k8s_l1_failures_1000_gostservices_in_one_namespace";
    let Some(cluster) = testenv::cluster(1, test).await else {
        return Ok(());
    };
    const N: usize = 1000;
    let mut ns = cluster.namespace().await?;
    let mut op = Operator::start(&cluster, &ns.name).await;
    let idle = op.rss_kib();
    let gsvcs: Api<GostService> = Api::namespaced(cluster.client.clone(), &ns.name);
    let t0 = Instant::now();
    kubectl(
        &cluster,
        &["create", "-n", &ns.name, "-f", "-"],
        Some(&many_gostservices(N, 40000)),
    )?;
    let created = t0.elapsed();
    let took = all_ready(&gsvcs, N, Duration::from_secs(420)).await?;
    let secrets = rendered_secrets(&cluster, &ns.name).await?;
    assert_one_secret_each(&secrets, N);
    let reconciles = op.reconciles("gostservice").await;
    let errors = op
        .metric("kubegost_reconcile_errors_total")
        .await
        .unwrap_or(0.0);
    eprintln!(
        "FIGURE {N} GostServices: created in {:.1} s, all Ready {:.1} s after the first create; {reconciles} reconciles ({errors} errors), mean {:.1} ms; operator RSS idle {idle:?} KiB, after {:?} KiB (now, peak)",
        created.as_secs_f64(),
        took.as_secs_f64(),
        op.mean_reconcile_seconds("gostservice").await.unwrap_or(0.0) * 1e3,
        op.rss_kib()
    );
    assert!(op.running(), "the operator survived:\n{}", op.logs());
    ns.success();
    op.success();
    Ok(())
}
