#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn gsvc(yaml: &str) -> GostService {
    serde_saphyr::from_str(yaml).unwrap()
}

fn web() -> GostService {
    gsvc(
        r#"
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  services: [{name: p, addr: "127.0.0.1:8080", handler: {type: http}}]
"#,
    )
}

fn request(
    ns: &str,
    labels: serde_json::Value,
    annotations: serde_json::Value,
) -> AdmissionRequest<Pod> {
    let review: AdmissionReview<Pod> = serde_json::from_value(serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u-1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": ns,
            "userInfo": {},
            "object": {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"generateName": "web-", "labels": labels, "annotations": annotations},
                "spec": {"containers": [{"name": "app", "image": "app:1"}]},
            },
        },
    }))
    .unwrap();
    review.try_into().unwrap()
}

#[test]
fn a_selected_pod_gets_the_patch_of_the_plan() {
    let req = request(
        "shop",
        serde_json::json!({"app": "web"}),
        serde_json::json!({}),
    );
    let (resp, outcome) = admit(
        &req,
        &[web()],
        &InjectSettings::default(),
        "kubegost-system",
    );
    assert_eq!(
        outcome,
        Outcome::Injected {
            gostservices: vec!["web".into()]
        }
    );
    assert!(resp.allowed);
    let patch: json_patch::Patch = serde_json::from_slice(resp.patch.as_ref().unwrap()).unwrap();
    let mut pod = serde_json::to_value(req.object.as_ref().unwrap()).unwrap();
    json_patch::patch(&mut pod, &patch).unwrap();
    let pod: Pod = serde_json::from_value(pod).unwrap();
    let init = pod.spec.unwrap().init_containers.unwrap();
    assert_eq!(init[0].name, "gost-proxy");
    assert_eq!(init[0].restart_policy.as_deref(), Some("Always"));
    assert!(inject::is_injected(&Pod {
        metadata: pod.metadata,
        ..Default::default()
    }));
}

#[test]
fn pods_that_are_not_for_us_pass_unchanged() {
    let s = InjectSettings::default();
    let cases = [
        (
            request(
                "shop",
                serde_json::json!({"app": "db"}),
                serde_json::json!({}),
            ),
            "no_gostservice",
        ),
        (
            request(
                "other",
                serde_json::json!({"app": "web"}),
                serde_json::json!({}),
            ),
            "no_gostservice",
        ),
        (
            request(
                "shop",
                serde_json::json!({"app": "web", "kubegost.io/inject": "false"}),
                serde_json::json!({}),
            ),
            "opted_out",
        ),
        (
            request(
                "kubegost-system",
                serde_json::json!({"app": "web"}),
                serde_json::json!({}),
            ),
            "operator_namespace",
        ),
        (
            request(
                "shop",
                serde_json::json!({"app": "web"}),
                serde_json::json!({"kubegost.io/status": "{}"}),
            ),
            "already_injected",
        ),
    ];
    for (req, why) in cases {
        let (resp, outcome) = admit(&req, &[web()], &s, "kubegost-system");
        assert_eq!(outcome, Outcome::Skipped(why));
        assert!(resp.allowed && resp.patch.is_none(), "{why}");
    }
}

#[test]
fn a_conflict_is_a_denial_naming_both_gostservices() {
    let other = gsvc(
        r#"
metadata: {name: other, namespace: shop}
spec:
  selector: {}
  services: [{name: q, addr: ":8080", handler: {type: socks5}}]
"#,
    );
    let req = request(
        "shop",
        serde_json::json!({"app": "web"}),
        serde_json::json!({}),
    );
    let (resp, outcome) = admit(
        &req,
        &[web(), other],
        &InjectSettings::default(),
        "kubegost-system",
    );
    assert_eq!(outcome, Outcome::Failed("conflict"));
    assert!(!resp.allowed);
    let m = &resp.result.message;
    assert!(
        m.contains("GostService other/q") && m.contains("GostService web/p"),
        "{m}"
    );
    assert!(m.contains("bind the same address"), "{m}");
}

#[test]
fn a_bad_override_annotation_is_a_denial_naming_it() {
    let req = request(
        "shop",
        serde_json::json!({"app": "web"}),
        serde_json::json!({"kubegost.io/proxy-memory-limit": "lots"}),
    );
    let (resp, outcome) = admit(
        &req,
        &[web()],
        &InjectSettings::default(),
        "kubegost-system",
    );
    assert_eq!(outcome, Outcome::Failed("invalid_annotation"));
    assert!(
        resp.result
            .message
            .contains("kubegost.io/proxy-memory-limit"),
        "{}",
        resp.result.message
    );
}
