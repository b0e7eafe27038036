//! Level-1 cluster tests (real etcd + kube-apiserver + controller manager from
//! scripts/testenv). They skip loudly without `KUBEGOST_TESTENV_KUBECONFIG`
//! and fail when `KUBEGOST_TESTENV_REQUIRED=1` is set but no cluster is up.
//!
//! Every address used here is 127.0.0.1 (the API server of the test cluster
//! in L1, the webhook server started by the test).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, WebhookClientConfig,
};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::ByteString;
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use kubegost_tests::testenv::{self, wait_for, DeleteOnDrop, TEST_LABEL};
use tokio::net::TcpListener;
use tokio_rustls::rustls;

const INJECTED: &str = "kubegost.io/injected-by-test-webhook";

#[tokio::test]
async fn k8s_l1_namespace_and_configmap() -> Result<()> {
    let Some(cluster) = testenv::cluster(1, "k8s_l1_namespace_and_configmap").await else {
        return Ok(());
    };
    let version = cluster.client.apiserver_version().await?;
    eprintln!("test cluster: Kubernetes {}", version.git_version);

    let mut ns = cluster.namespace().await?;
    let got = Api::<Namespace>::all(cluster.client.clone())
        .get(&ns.name)
        .await?;
    let labels = got.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get(TEST_LABEL), Some(&ns.name));

    let cms: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), &ns.name);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("hello".into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
        ..ConfigMap::default()
    };
    cms.create(&PostParams::default(), &cm).await?;
    let back = cms.get("hello").await?;
    assert_eq!(
        back.data.unwrap_or_default().get("k").map(String::as_str),
        Some("v")
    );
    // the controller manager publishes the cluster CA into every namespace
    let root_ca = wait_for("kube-root-ca.crt", Duration::from_secs(60), || async {
        Ok(cms.get_opt("kube-root-ca.crt").await?)
    })
    .await?;
    assert!(root_ca
        .data
        .unwrap_or_default()
        .get("ca.crt")
        .is_some_and(|c| c.contains("BEGIN CERTIFICATE")));
    ns.success();
    Ok(())
}

#[tokio::test]
async fn k8s_l1_kubectl_apply_and_helm_template() -> Result<()> {
    let Some(cluster) = testenv::cluster(1, "k8s_l1_kubectl_apply_and_helm_template").await else {
        return Ok(());
    };
    let mut ns = cluster.namespace().await?;
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");

    // kubectl apply (real, server-side persisted)
    let manifest = format!("{fixtures}/k8s/apply-basic.yaml");
    let out = cluster
        .kubectl(&["apply", "-n", &ns.name, "-f", &manifest], None)
        .await?
        .success()?;
    assert!(
        out.stdout.contains("configmap/testenv-apply"),
        "{}",
        out.stdout
    );
    let cm = Api::<ConfigMap>::namespaced(cluster.client.clone(), &ns.name)
        .get("testenv-apply")
        .await?;
    assert_eq!(
        cm.data
            .unwrap_or_default()
            .get("greeting")
            .map(String::as_str),
        Some("hello-from-kubectl-apply")
    );
    // applying again is a no-op
    let again = cluster
        .kubectl(&["apply", "-n", &ns.name, "-f", &manifest], None)
        .await?
        .success()?;
    assert!(again.stdout.contains("unchanged"), "{}", again.stdout);

    // helm template | kubectl apply --dry-run=server
    let chart = format!("{fixtures}/chart/testenv-smoke");
    let rendered = cluster
        .helm(&["template", "smoke", &chart, "--namespace", &ns.name])
        .await?
        .success()?;
    assert!(
        rendered.stdout.contains("kind: Deployment"),
        "{}",
        rendered.stdout
    );
    let dry = cluster
        .kubectl(
            &["apply", "--dry-run=server", "-n", &ns.name, "-f", "-"],
            Some(rendered.stdout.as_bytes()),
        )
        .await?
        .success()?;
    for kind in [
        "serviceaccount",
        "configmap",
        "role",
        "rolebinding",
        "deployment",
        "service",
    ] {
        assert!(
            dry.stdout.contains(kind) && dry.stdout.contains("(server dry run)"),
            "{kind} missing in dry-run output:\n{}",
            dry.stdout
        );
    }
    // nothing was persisted by the dry run
    let deployments = cluster
        .kubectl(&["get", "deployments", "-n", &ns.name, "-o", "name"], None)
        .await?
        .success()?;
    assert!(
        deployments.stdout.trim().is_empty(),
        "{}",
        deployments.stdout
    );
    ns.success();
    Ok(())
}

/// Serving cert signed by a throwaway CA, for a webhook on 127.0.0.1.
struct WebhookTls {
    ca_pem: String,
    config: rustls::ServerConfig,
}

fn webhook_tls() -> Result<WebhookTls> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, SanType,
    };
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "kubegost-test-webhook-ca");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    params
        .distinguished_name
        .push(DnType::CommonName, "kubegost-test-webhook");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(WebhookTls {
        ca_pem: ca_cert.pem(),
        config,
    })
}

/// What the test webhook saw.
#[derive(Default)]
struct Seen {
    calls: AtomicUsize,
    pods: Mutex<Vec<String>>,
}

/// A mutating admission webhook on 127.0.0.1: adds the annotation
/// `INJECTED=true` to every Pod it is asked about. Stops when dropped.
struct TestWebhook {
    addr: SocketAddr,
    ca_pem: String,
    seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestWebhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_webhook() -> Result<TestWebhook> {
    let tls = webhook_tls()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls.config));
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let seen = Arc::new(Seen::default());
    let seen2 = seen.clone();
    let task = tokio::spawn(async move {
        // the task is aborted when the TestWebhook is dropped
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let seen = seen2.clone();
            tokio::spawn(async move {
                let Ok(Ok(tls)) =
                    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                else {
                    return;
                };
                let svc = service_fn(move |req| review(req, seen.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    Ok(TestWebhook {
        addr,
        ca_pem: tls.ca_pem,
        seen,
        task,
    })
}

async fn review(
    req: Request<hyper::body::Incoming>,
    seen: Arc<Seen>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let body = req.into_body().collect().await?.to_bytes();
    let reply = match admission_response(&body, &seen) {
        Ok(r) => Response::new(Full::new(Bytes::from(r))),
        Err(e) => {
            let mut r = Response::new(Full::new(Bytes::from(format!("{e:#}"))));
            *r.status_mut() = http::StatusCode::BAD_REQUEST;
            r
        }
    };
    Ok(reply)
}

fn admission_response(body: &[u8], seen: &Seen) -> Result<Vec<u8>> {
    let review: serde_json::Value = serde_json::from_slice(body).context("AdmissionReview JSON")?;
    let request = &review["request"];
    let uid = request["uid"].as_str().context("request.uid")?;
    seen.calls.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut pods) = seen.pods.lock() {
        pods.push(format!(
            "{}/{}",
            request["namespace"].as_str().unwrap_or("?"),
            request["name"].as_str().unwrap_or("?")
        ));
    }
    let has_annotations = request["object"]["metadata"]["annotations"].is_object();
    let key = INJECTED.replace('~', "~0").replace('/', "~1");
    let patch = if has_annotations {
        serde_json::json!([{"op": "add", "path": format!("/metadata/annotations/{key}"), "value": "true"}])
    } else {
        serde_json::json!([{"op": "add", "path": "/metadata/annotations", "value": {INJECTED: "true"}}])
    };
    let patch = base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&patch)?);
    Ok(serde_json::to_vec(&serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": uid, "allowed": true, "patchType": "JSONPatch", "patch": patch}
    }))?)
}

fn probe_pod(name: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([(
                "app".to_string(),
                "webhook-probe".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            // never scheduled (L2 has a node; this pod must not run)
            node_selector: Some(BTreeMap::from([(
                "kubegost.io/no-such-node".to_string(),
                "true".to_string(),
            )])),
            containers: vec![Container {
                name: "c".into(),
                image: Some("localhost/kubegost-testenv/none:1".into()),
                image_pull_policy: Some("Never".into()),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

fn injected(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(INJECTED))
        .is_some_and(|v| v == "true")
}

#[tokio::test]
async fn k8s_l1_mutating_webhook_called_on_pod_create() -> Result<()> {
    let Some(cluster) = testenv::cluster(1, "k8s_l1_mutating_webhook_called_on_pod_create").await
    else {
        return Ok(());
    };
    let mut ns = cluster.namespace().await?;
    let hook = start_webhook().await?;
    let url = format!("https://{}/mutate-pods", hook.addr);
    eprintln!("test webhook at {url}");

    let mwc_name = ns.name.clone();
    let mwc = MutatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(mwc_name.clone()),
            labels: Some(ns.selector()),
            ..ObjectMeta::default()
        },
        webhooks: Some(vec![MutatingWebhook {
            name: "inject.test.kubegost.io".into(),
            client_config: WebhookClientConfig {
                url: Some(url),
                ca_bundle: Some(ByteString(hook.ca_pem.clone().into_bytes())),
                service: None,
            },
            rules: Some(vec![RuleWithOperations {
                operations: Some(vec!["CREATE".into()]),
                api_groups: Some(vec!["".into()]),
                api_versions: Some(vec!["v1".into()]),
                resources: Some(vec!["pods".into()]),
                scope: Some("Namespaced".into()),
            }]),
            // only this test's namespace
            namespace_selector: Some(LabelSelector {
                match_labels: Some(ns.selector()),
                ..LabelSelector::default()
            }),
            admission_review_versions: vec!["v1".into()],
            side_effects: "None".into(),
            failure_policy: Some("Fail".into()),
            timeout_seconds: Some(10),
            ..MutatingWebhook::default()
        }]),
    };
    let mwcs: Api<MutatingWebhookConfiguration> = Api::all(cluster.client.clone());
    mwcs.create(&PostParams::default(), &mwc).await?;
    let _mwc_guard = DeleteOnDrop::of::<MutatingWebhookConfiguration>(&cluster, None, &mwc_name);

    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns.name);
    // The API server picks the configuration up through an informer: probe with
    // server-side dry-run creates until one comes back mutated.
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    wait_for(
        "the webhook configuration to take effect",
        Duration::from_secs(60),
        || async {
            let p = pods.create(&dry, &probe_pod("probe")).await?;
            Ok(injected(&p).then_some(()))
        },
    )
    .await?;

    // A real create is mutated, and the stored object carries the patch.
    let created = pods
        .create(&PostParams::default(), &probe_pod("app"))
        .await?;
    assert!(
        injected(&created),
        "created pod not mutated: {:?}",
        created.metadata
    );
    let stored = pods.get("app").await?;
    assert!(
        injected(&stored),
        "stored pod not mutated: {:?}",
        stored.metadata
    );
    assert!(hook.seen.calls.load(Ordering::SeqCst) >= 2);
    let seen_pods = hook.seen.pods.lock().map(|p| p.clone()).unwrap_or_default();
    assert!(
        seen_pods.contains(&format!("{}/app", ns.name)),
        "webhook did not see {}/app: {seen_pods:?}",
        ns.name
    );

    // Pods in other namespaces are not sent to this webhook.
    let other = cluster.namespace().await?;
    let before = hook.seen.calls.load(Ordering::SeqCst);
    let p = Api::<Pod>::namespaced(cluster.client.clone(), &other.name)
        .create(&dry, &probe_pod("elsewhere"))
        .await?;
    assert!(!injected(&p));
    assert_eq!(hook.seen.calls.load(Ordering::SeqCst), before);
    ns.success();
    let mut other = other;
    other.success();
    Ok(())
}
