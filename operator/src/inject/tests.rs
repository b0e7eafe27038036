#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn mk_pod(yaml: &str) -> Pod {
    serde_saphyr::from_str(yaml).unwrap()
}

fn mk_gsvc(yaml: &str) -> GostService {
    serde_saphyr::from_str(yaml).unwrap()
}

fn web() -> GostService {
    mk_gsvc(
        r#"
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  services: [{name: p, addr: "127.0.0.1:8080", handler: {type: http}}]
"#,
    )
}

fn app_pod() -> Pod {
    mk_pod(
        r#"
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec:
  containers: [{name: app, image: nginx}]
"#,
    )
}

#[test]
fn no_matching_gostservice_leaves_the_pod_alone() {
    let pod = app_pod();
    assert_eq!(
        plan_injection(&pod, &[], &InjectSettings::default()).unwrap(),
        pod
    );
}

#[test]
fn injection_is_idempotent() {
    let g = web();
    let once = plan_injection(&app_pod(), &[&g], &InjectSettings::default()).unwrap();
    assert!(is_injected(&once));
    let twice = plan_injection(&once, &[&g], &InjectSettings::default()).unwrap();
    assert_eq!(once, twice);
    assert!(injection_patch(&once, &twice).unwrap().0.is_empty());
}

#[test]
fn the_patch_turns_the_pod_into_the_plan() {
    let g = web();
    let pod = app_pod();
    let planned = plan_injection(&pod, &[&g], &InjectSettings::default()).unwrap();
    let patch = injection_patch(&pod, &planned).unwrap();
    let mut v = serde_json::to_value(&pod).unwrap();
    json_patch::patch(&mut v, &patch).unwrap();
    assert_eq!(v, serde_json::to_value(&planned).unwrap());
}

#[test]
fn conflicting_gostservices_refuse_injection_naming_both() {
    let a = web();
    let mut b = web();
    b.metadata.name = Some("other".into());
    let err = plan_injection(&app_pod(), &[&a, &b], &InjectSettings::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("GostService other/p") && msg.contains("GostService web/p"),
        "{msg}"
    );
}

#[test]
fn invalid_override_annotations_are_refused_by_name() {
    let mut pod = app_pod();
    pod.annotations_mut()
        .insert("kubegost.io/proxy-memory-limit".into(), "lots".into());
    let err = plan_injection(&pod, &[&web()], &InjectSettings::default()).unwrap_err();
    assert!(
        err.to_string().contains("kubegost.io/proxy-memory-limit"),
        "{err}"
    );
    let mut pod = app_pod();
    pod.annotations_mut()
        .insert(LOG_LEVEL_ANNOTATION.into(), "loud".into());
    assert!(plan_injection(&pod, &[&web()], &InjectSettings::default()).is_err());
}

#[test]
fn quantities() {
    for ok in ["100m", "0.5", "1", "64Mi", "1Gi", ".5", "2k", "+1"] {
        assert!(is_quantity(ok), "{ok}");
    }
    for bad in ["", "lots", "1.2.3", "Mi", "1 Gi", "-1", "."] {
        assert!(!is_quantity(bad), "{bad}");
    }
}

#[test]
fn existing_default_container_annotation_is_kept() {
    let mut pod = app_pod();
    pod.annotations_mut()
        .insert(DEFAULT_CONTAINER_ANNOTATION.into(), "other".into());
    let out = plan_injection(&pod, &[&web()], &InjectSettings::default()).unwrap();
    assert_eq!(out.annotations()[DEFAULT_CONTAINER_ANNOTATION], "other");
}
