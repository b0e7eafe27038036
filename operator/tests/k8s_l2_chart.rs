#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Level-2 cluster test of what a platform team installs: `helm install` of charts/kubegost
//! with the locally built operator image (scripts/testenv/images.sh, the Dockerfile's
//! `operator` target), the Deployment becomes Available on the real kubelet, the replicas elect
//! a leader on a Lease, and killing the leader pod hands reconciliation to the other replica.
//! Traffic goes only to the test cluster's API server and pod IPs on its bridge.

mod support;

use std::time::Duration;

use anyhow::{bail, Context, Result};
use gost_operator::crd::GostService;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams};
use kube::Api;
use kubegost_tests::testenv::{self, wait_for, Cluster};
use support::*;

/// `helm uninstall` when dropped (the release's cluster-scoped objects go with it).
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

fn image() -> Option<String> {
    std::env::var("KUBEGOST_TESTENV_IMAGE_OPERATOR")
        .ok()
        .filter(|v| !v.is_empty())
}

/// GET `path` on a pod IP of the test bridge (10.244.0.0/24 only).
async fn pod_get(ip: &str, port: u16, path: &str) -> Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr: std::net::Ipv4Addr = ip.parse()?;
    if addr.octets()[..3] != [10, 244, 0] {
        bail!("pod IP {ip} is outside the test pod network; refusing to connect");
    }
    let fut = async {
        let mut s = tokio::net::TcpStream::connect((addr, port)).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: op\r\n\r\n").as_bytes())
            .await?;
        let mut b = Vec::new();
        (&mut s).take(1 << 20).read_to_end(&mut b).await?;
        let t = String::from_utf8_lossy(&b).into_owned();
        let code = t.split_whitespace().nth(1).context("status")?.parse()?;
        Ok::<_, anyhow::Error>((
            code,
            t.split_once("\r\n\r\n")
                .map(|x| x.1.to_string())
                .unwrap_or_default(),
        ))
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .context("timed out")?
}

#[tokio::test]
async fn k8s_l2_helm_install_runs_the_operator_and_fails_over() -> Result<()> {
    let test = "k8s_l2_helm_install_runs_the_operator_and_fails_over";
    let Some(cluster) = testenv::cluster(2, test).await else {
        return Ok(());
    };
    let Some(image) = image() else {
        if std::env::var("KUBEGOST_TESTENV_REQUIRED").is_ok_and(|v| v == "1") {
            bail!("{test}: KUBEGOST_TESTENV_IMAGE_OPERATOR is not set (scripts/testenv/images.sh operator builds it)");
        }
        eprintln!("SKIPPED {test}: no operator image");
        return Ok(());
    };
    let (repo_name, tag) = image.rsplit_once(':').context("image has no tag")?;
    let mut release_ns = cluster.namespace().await?;
    let mut work = cluster.namespace().await?;
    let name = "kg-l2";
    let chart = repo().join("charts/kubegost");
    helm(
        &cluster,
        &[
            "install",
            name,
            chart.to_str().unwrap(),
            "--namespace",
            &release_ns.name,
            "--set",
            &format!("image.repository={repo_name}"),
            "--set",
            &format!("image.tag={tag}"),
            "--set",
            "image.pullPolicy=Never",
            "--set",
            &format!("watchNamespace={}", work.name),
            "--set",
            "leaderElection.leaseDurationSeconds=6",
            "--set",
            "logLevel=info,kube=warn",
        ],
    )?;
    let _release = Release {
        cluster: &cluster,
        name: name.into(),
        ns: release_ns.name.clone(),
    };

    // the Deployment becomes Available with both replicas ready on the real kubelet
    let deploys: Api<Deployment> = Api::namespaced(cluster.client.clone(), &release_ns.name);
    let dname = "kg-l2-kubegost-operator";
    wait_for(
        "operator Deployment Available, 2/2 ready",
        Duration::from_secs(180),
        || async {
            let d = deploys.get(dname).await?;
            let st = d.status.unwrap_or_default();
            let available = st.conditions.unwrap_or_default().iter().any(|c| {
                c.type_.as_deref() == Some("Available") && c.status.as_deref() == Some("True")
            });
            Ok((available && st.ready_replicas == Some(2)).then_some(()))
        },
    )
    .await?;

    // one replica holds the Lease, and it reconciles
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), &release_ns.name);
    let holder = || async {
        let l = leases.get_opt(dname).await?;
        Ok::<_, anyhow::Error>(l.and_then(|l| l.spec?.holder_identity))
    };
    let leader = wait_for("a Lease holder", Duration::from_secs(60), || async {
        holder().await
    })
    .await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &release_ns.name);
    let list = pods
        .list(&ListParams::default().labels("app.kubernetes.io/component=operator"))
        .await?;
    let names: Vec<String> = list
        .items
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert!(
        names.contains(&leader),
        "holder {leader} is not one of {names:?}"
    );
    for p in &list.items {
        let ip = p
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .context("pod IP")?;
        let (code, _) = pod_get(&ip, 8080, "/readyz").await?;
        assert_eq!(code, 200, "every replica is ready, leader or not");
        let (_, m) = pod_get(&ip, 8080, "/metrics").await?;
        let lead = p.metadata.name.as_deref() == Some(leader.as_str());
        let line = if lead {
            "kubegost_leader 1"
        } else {
            "kubegost_leader 0"
        };
        assert!(m.contains(line), "{:?}: {m}", p.metadata.name);
    }
    // the in-cluster operator reconciles the examples
    for f in ["gostchain.yaml", "gostservice-egress.yaml"] {
        kubectl(
            &cluster,
            &[
                "apply",
                "-n",
                &work.name,
                "-f",
                repo().join("operator/examples").join(f).to_str().unwrap(),
            ],
            None,
        )?;
    }
    let gsvcs: Api<GostService> = Api::namespaced(cluster.client.clone(), &work.name);
    wait_gsvc(&gsvcs, "web-egress", "web-egress Ready", |g| {
        has(g, "Ready", "True", None)
    })
    .await?;

    // kill the leader (no graceful release): the other replica takes over when the Lease expires
    pods.delete(
        &leader,
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await?;
    let next = wait_for("a new Lease holder", Duration::from_secs(90), || async {
        Ok(holder().await?.filter(|h| *h != leader))
    })
    .await?;
    // usually the standby replica; the Deployment's replacement pod may win the race
    eprintln!("{test}: Lease moved from {leader} to {next} (replicas before: {names:?})");
    // and reconciles what is applied afterwards
    kubectl(
        &cluster,
        &[
            "apply",
            "-n",
            &work.name,
            "-f",
            repo()
                .join("operator/examples/gostservice-hooks.yaml")
                .to_str()
                .unwrap(),
        ],
        None,
    )?;
    wait_gsvc(
        &gsvcs,
        "api-hooks",
        "api-hooks Ready after the failover",
        |g| has(g, "Ready", "True", None),
    )
    .await?;
    release_ns.success();
    work.success();
    Ok(())
}
