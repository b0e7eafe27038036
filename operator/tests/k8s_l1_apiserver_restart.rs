#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The test cluster's kube-apiserver is stopped and started again (`scripts/testenv/restart.sh`)
//! while the operator works through 60 new GostServices: its watches, its Lease and its writes
//! fail for the outage, and afterwards everything converges, changes made after the restart
//! included, with one Secret per GostService and the same operator process. A binary of its
//! own with a single test: cargo runs test binaries one after another, so no other test sees
//! the outage.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use gost_operator::crd::GostService;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams};
use kube::Api;
use kubegost_tests::testenv;
use support::*;

#[tokio::test]
async fn k8s_l1_operator_converges_across_an_api_server_restart() -> Result<()> {
    let test = "k8s_l1_operator_converges_across_an_api_server_restart";
    let Some(cluster) = testenv::cluster(1, test).await else {
        return Ok(());
    };
    const N: usize = 60;
    let mut ns = cluster.namespace().await?;
    let gsvcs: Api<GostService> = Api::namespaced(cluster.client.clone(), &ns.name);
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), &ns.name);
    let mut op = Operator::start(&cluster, &ns.name).await;
    let pid = op.pid();
    kubectl(
        &cluster,
        &["create", "-n", &ns.name, "-f", "-"],
        Some(&many_gostservices(N, 20000)),
    )?;
    // the outage begins while those are being reconciled and lasts 3 s plus the API server's
    // start (longer than the operator's 6 s Lease)
    let t0 = Instant::now();
    let out = Command::new("bash")
        .arg(repo().join("scripts/testenv/restart.sh"))
        .args(["kube-apiserver", "3"])
        .output()
        .context("running scripts/testenv/restart.sh")?;
    anyhow::ensure!(
        out.status.success(),
        "restart.sh failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let outage = t0.elapsed();
    // changes made after the restart reach the Secrets: the watches came back
    for i in (0..N).step_by(6) {
        let patch = Patch::Merge(serde_json::json!({"spec": {"services": [
            {"name": "p", "addr": format!("127.0.0.1:{}", 25000 + i), "handler": {"type": "http"}}]}}));
        testenv::wait_for("a patch after the restart", Duration::from_secs(30), || {
            let (gsvcs, patch) = (gsvcs.clone(), patch.clone());
            async move {
                Ok(gsvcs
                    .patch(&format!("g-{i}"), &PatchParams::default(), &patch)
                    .await
                    .ok()
                    .map(|_| ()))
            }
        })
        .await?;
    }
    let t1 = Instant::now();
    let took = testenv::wait_for(
        "every GostService Ready at its generation",
        Duration::from_secs(120),
        || async {
            let all = gsvcs.list(&ListParams::default()).await?.items;
            let ready = all.iter().filter(|g| has(g, "Ready", "True", None)).count();
            Ok((all.len() == N && ready == N).then(|| t1.elapsed()))
        },
    )
    .await?;
    for i in 0..N {
        let name = format!("g-{i}");
        let s = secrets.get(&format!("kubegost-{name}")).await?;
        let text = String::from_utf8_lossy(&s.data.as_ref().unwrap()[&format!("{name}.yaml")].0)
            .into_owned();
        let port = if i % 6 == 0 { 25000 + i } else { 20000 + i };
        assert!(
            text.contains(&format!("127.0.0.1:{port}")),
            "{name}: {port} not in\n{text}"
        );
        assert_eq!(s.metadata.owner_references.unwrap_or_default().len(), 1);
    }
    let all = secrets
        .list(&ListParams::default().labels("kubegost.io/gostservice"))
        .await?
        .items;
    assert_eq!(all.len(), N, "one Secret per GostService");
    assert!(
        op.running() && op.pid() == pid,
        "the same operator process rode out the outage:\n{}",
        op.logs()
    );
    assert_eq!(
        op.metric("kubegost_leader").await,
        Some(1.0),
        "it leads again"
    );
    eprintln!(
        "FIGURE API server restart: outage (stop, 3 s down, start to /readyz) {:.1} s; {N} GostServices Ready {:.1} s after the last patch",
        outage.as_secs_f64(),
        took.as_secs_f64()
    );
    ns.success();
    op.success();
    Ok(())
}
