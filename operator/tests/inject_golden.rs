#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Golden tests of the injection plan: `fixtures/inject/pods/<case>.yaml` + GostServices from
//! `fixtures/inject/gostservices/` → `fixtures/inject/expected/<case>.yaml` (the injected pod)
//! and `<case>.patch.json` (the webhook's JSON patch). `UPDATE_GOLDEN=1` rewrites the expected
//! files.

use std::path::{Path, PathBuf};

use gost_operator::crd::GostService;
use gost_operator::inject::{injection_patch, plan_injection, InjectSettings};
use k8s_openapi::api::core::v1::Pod;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inject")
}

fn gsvc(name: &str) -> GostService {
    let p = dir().join("gostservices").join(format!("{name}.yaml"));
    serde_saphyr::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn settings() -> InjectSettings {
    InjectSettings {
        image: "localhost/kubegost/proxy:test".into(),
        operator_version: "0.0.0-test".into(),
        ..InjectSettings::default()
    }
}

fn golden(case: &str, gostservices: &[&str], settings: InjectSettings) {
    let pod_text =
        std::fs::read_to_string(dir().join("pods").join(format!("{case}.yaml"))).unwrap();
    let pod: Pod = serde_saphyr::from_str(&pod_text).unwrap();
    let matched: Vec<GostService> = gostservices.iter().map(|n| gsvc(n)).collect();
    let refs: Vec<&GostService> = matched.iter().collect();
    let out = plan_injection(&pod, &refs, &settings).unwrap();
    let out_yaml = serde_saphyr::to_string(&out).unwrap();
    let patch = injection_patch(&pod, &out).unwrap();
    let patch_json = serde_json::to_string_pretty(&patch).unwrap() + "\n";

    // the output is a valid pod and the patch turns the input into it
    let mut v = serde_json::to_value(&pod).unwrap();
    json_patch::patch(&mut v, &patch).unwrap();
    assert_eq!(v, serde_json::to_value(&out).unwrap(), "{case}: patch");

    let expected = dir().join("expected");
    let files = [
        (expected.join(format!("{case}.yaml")), out_yaml),
        (expected.join(format!("{case}.patch.json")), patch_json),
    ];
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(&expected).unwrap();
        for (p, text) in &files {
            std::fs::write(p, text).unwrap();
        }
        return;
    }
    for (p, text) in &files {
        let want = std::fs::read_to_string(p)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", p.display()));
        assert!(
            &want == text,
            "{} differs (UPDATE_GOLDEN=1 rewrites it); got:\n{text}",
            p.display()
        );
    }
}

/// The spec example: hooks in every phase → `gost-pre-up`, postStart and preStop.
#[test]
fn basic_native_sidecar_with_hooks() {
    golden("basic", &["web-egress"], settings());
}

/// The sidecar goes before the app's init containers; other webhooks' containers stay.
#[test]
fn sidecar_precedes_app_init_containers() {
    golden("app-init", &["plain"], settings());
}

/// Per-pod annotations override image, log level and resources.
#[test]
fn annotation_overrides() {
    golden("overrides", &["plain"], settings());
}

/// A pod's own `gost-proxy` container keeps the fields it sets.
#[test]
fn user_sidecar_fields_win() {
    golden("user-sidecar", &["plain"], settings());
}

/// Without native sidecars: first app container, postStart waits for the engine.
#[test]
fn legacy_sidecar_without_native_support() {
    golden(
        "legacy",
        &["web-egress"],
        InjectSettings {
            native_sidecars: false,
            ..settings()
        },
    );
}

/// A Dedicated GostService gets its own engine process (`--`) and config file.
#[test]
fn dedicated_process_group() {
    golden("dedicated", &["plain", "dedicated"], settings());
}

/// An already injected pod is unchanged (empty patch).
#[test]
fn already_injected_pod_is_unchanged() {
    golden("injected", &["plain"], settings());
}
