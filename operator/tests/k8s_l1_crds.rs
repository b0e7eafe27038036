#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Level-1 cluster tests of the CRDs against a real kube-apiserver (scripts/testenv): the
//! generated CRDs apply and become Established, valid objects are stored, and the schema and
//! CEL rules reject invalid ones with messages naming the field. They skip loudly without
//! `KUBEGOST_TESTENV_KUBECONFIG` and fail when `KUBEGOST_TESTENV_REQUIRED=1` is set but no
//! cluster is up.

use std::time::Duration;

use anyhow::{Context, Result};
use gost_operator::crd::{GostChain, GostService};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, CustomResourceExt};
use kubegost_tests::testenv::{self, wait_for, Cluster};

/// Server-side applies both CRDs and waits until they are Established.
async fn install_crds(cluster: &Cluster) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    let pp = PatchParams::apply("gost-operator-tests").force();
    for crd in [GostService::crd(), GostChain::crd()] {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(&name, &pp, &Patch::Apply(&crd))
            .await
            .with_context(|| format!("applying CRD {name}"))?;
        wait_for(
            &format!("CRD {name} Established"),
            Duration::from_secs(30),
            || {
                let crds = crds.clone();
                let name = name.clone();
                async move {
                    let c = crds.get(&name).await?;
                    let established = c
                        .status
                        .and_then(|s| s.conditions)
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True");
                    Ok(established.then_some(()))
                }
            },
        )
        .await?;
    }
    Ok(())
}

fn from_yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_saphyr::from_str(text).unwrap()
}

/// Creates `obj`, retrying while the API server does not serve the new resource yet.
async fn create_gsvc(
    api: &Api<GostService>,
    obj: &GostService,
) -> Result<GostService, kube::Error> {
    let mut last = None;
    for _ in 0..20 {
        match api.create(&PostParams::default(), obj).await {
            Err(kube::Error::Api(e)) if e.code == 404 => {
                last = Some(kube::Error::Api(e));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            r => return r,
        }
    }
    Err(last.unwrap())
}

const VALID: &str = r#"
apiVersion: kubegost.io/v1alpha1
kind: GostService
metadata: {name: web-egress}
spec:
  selector: {matchLabels: {app: web}}
  chain: corp-egress
  process: Shared
  services:
  - name: http-proxy
    addr: "127.0.0.1:8080"
    handler: {type: http, auth: {secretRef: {name: proxy-users}}, metadata: {readTimeout: 10s}}
    listener: {type: tcp}
  - name: metrics-forward
    addr: ":9100"
    ignoreChain: true
    handler: {type: tcp}
    listener: {type: tcp}
    forwarder: {nodes: [{name: local, addr: "127.0.0.1:9090"}]}
    hooks:
      preUp: ["sh -c 'echo starting > /run/kubegost/state'"]
      timeoutSeconds: 30
"#;

#[tokio::test]
async fn k8s_l1_crds_apply_and_store_valid_objects() -> Result<()> {
    let Some(cluster) = testenv::cluster(1, "k8s_l1_crds_apply_and_store_valid_objects").await
    else {
        return Ok(());
    };
    install_crds(&cluster).await?;
    let mut ns = cluster.namespace().await?;
    let gsvcs: Api<GostService> = Api::namespaced(cluster.client.clone(), &ns.name);
    let want: GostService = from_yaml(VALID);
    let created = create_gsvc(&gsvcs, &want).await?;
    let back = gsvcs.get("web-egress").await?;
    assert_eq!(back.spec, want.spec, "stored spec round-trips");
    assert_eq!(created.spec, want.spec);
    // defaults from the schema
    let raw: Api<DynamicObject> = Api::namespaced_with(
        cluster.client.clone(),
        &ns.name,
        &ApiResource::erase::<GostService>(&()),
    );
    let obj = raw.get("web-egress").await?;
    assert_eq!(obj.data["spec"]["rollout"], "Manual");
    // the metadata maps keep unknown keys
    assert_eq!(
        obj.data["spec"]["services"][0]["handler"]["metadata"]["readTimeout"],
        "10s"
    );

    let chains: Api<GostChain> = Api::namespaced(cluster.client.clone(), &ns.name);
    let chain: GostChain = from_yaml(
        r#"
apiVersion: kubegost.io/v1alpha1
kind: GostChain
metadata: {name: corp-egress}
spec:
  selector: {strategy: round, maxFails: 1, failTimeout: 10s}
  hops:
  - name: hop-0
    selector: {strategy: fifo}
    nodes:
    - name: corp-proxy
      addr: proxy.corp.example:3128
      connector: {type: http, auth: {secretRef: {name: corp-proxy-creds}}}
      dialer: {type: tls, tls: {serverName: proxy.corp.example, secretRef: {name: corp-ca}}}
"#,
    );
    chains.create(&PostParams::default(), &chain).await?;
    assert_eq!(chains.get("corp-egress").await?.spec, chain.spec);

    // descriptions reach `kubectl explain` (the OpenAPI publication lags the CRD a little)
    wait_for("kubectl explain", Duration::from_secs(30), || async {
        let out = cluster
            .kubectl(
                &["explain", "gostservices.spec.services.hooks.timeoutSeconds"],
                None,
            )
            .await?;
        Ok(out
            .stdout
            .contains("Time limit of each command")
            .then_some(()))
    })
    .await?;
    ns.success();
    Ok(())
}

/// The API server's message for creating `yaml` (sent as is, not through the Rust types),
/// which must be rejected as invalid.
async fn rejection(api: &Api<DynamicObject>, yaml: &str) -> String {
    let value: serde_json::Value = from_yaml(yaml);
    let obj: DynamicObject = serde_json::from_value(value).unwrap();
    let mut last = None;
    for _ in 0..20 {
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => panic!("accepted, expected a rejection:\n{yaml}"),
            Err(kube::Error::Api(e)) if e.code == 404 => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 422, "{e:?}");
                return e.message;
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    panic!("resource not served: {last:?}")
}

#[tokio::test]
async fn k8s_l1_invalid_gostservices_are_rejected_naming_the_field() -> Result<()> {
    let Some(cluster) = testenv::cluster(
        1,
        "k8s_l1_invalid_gostservices_are_rejected_naming_the_field",
    )
    .await
    else {
        return Ok(());
    };
    install_crds(&cluster).await?;
    let mut ns = cluster.namespace().await?;
    let api: Api<DynamicObject> = Api::namespaced_with(
        cluster.client.clone(),
        &ns.name,
        &ApiResource::erase::<GostService>(&()),
    );

    let msg = rejection(
        &api,
        r#"
apiVersion: kubegost.io/v1alpha1
kind: GostService
metadata: {name: dup}
spec:
  selector: {}
  services:
  - {name: a, addr: ":1"}
  - {name: a, addr: ":2"}
"#,
    )
    .await;
    assert!(
        msg.contains("spec.services") && msg.contains("service names must be unique"),
        "{msg}"
    );

    let msg = rejection(
        &api,
        r#"
apiVersion: kubegost.io/v1alpha1
kind: GostService
metadata: {name: slow}
spec:
  selector: {}
  services:
  - {name: a, addr: ":1", hooks: {preUp: ["true"], timeoutSeconds: 0}}
"#,
    )
    .await;
    assert!(
        msg.contains("spec.services[0].hooks.timeoutSeconds") && msg.contains("between 1 and 3600"),
        "{msg}"
    );

    let msg = rejection(
        &api,
        r#"
apiVersion: kubegost.io/v1alpha1
kind: GostService
metadata: {name: badname}
spec:
  selector: {}
  services:
  - {name: Not_A_Label, addr: ":1"}
"#,
    )
    .await;
    assert!(msg.contains("spec.services[0].name"), "{msg}");

    let msg = rejection(
        &api,
        "apiVersion: kubegost.io/v1alpha1\nkind: GostService\nmetadata: {name: nosel}\nspec: {services: [{name: a, addr: ':1'}]}\n",
    )
    .await;
    assert!(msg.contains("spec.selector"), "{msg}");

    let msg = rejection(
        &api,
        r#"
apiVersion: kubegost.io/v1alpha1
kind: GostService
metadata: {name: badproc}
spec:
  selector: {}
  process: Separate
  services: [{name: a, addr: ":1"}]
"#,
    )
    .await;
    assert!(msg.contains("spec.process"), "{msg}");
    ns.success();
    Ok(())
}
