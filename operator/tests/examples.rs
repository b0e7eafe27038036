#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The files under `operator/examples/` (the ones the README quotes) parse as their kinds and
//! render cleanly: every GostService is accepted by the engine in strict mode with the
//! GostChains and Secrets of the examples, and no two of them conflict.

use std::path::Path;

use gost_operator::crd::{GostChain, GostService};
use gost_operator::reconcile::conflicts_of;
use gost_operator::render::{render_checked, RenderSettings};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;

fn docs() -> Vec<(String, serde_json::Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for doc in text.split("\n---\n") {
            let v: serde_json::Value =
                serde_saphyr::from_str(doc).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            out.push((f.display().to_string(), v));
        }
    }
    out
}

#[test]
fn examples_render_cleanly_and_do_not_conflict() {
    let (mut gsvcs, mut chains, mut secrets) = (Vec::new(), Vec::new(), Vec::new());
    for (file, mut v) in docs() {
        v["metadata"]["namespace"] = "shop".into();
        match v["kind"].as_str().unwrap() {
            "GostService" => gsvcs.push(serde_json::from_value::<GostService>(v).unwrap()),
            "GostChain" => chains.push(serde_json::from_value::<GostChain>(v).unwrap()),
            "Secret" => {
                // stringData is what the API server turns into data
                let mut s: Secret = serde_json::from_value(v).unwrap();
                let sd = s.string_data.take().unwrap_or_default();
                s.data = Some(
                    sd.into_iter()
                        .map(|(k, v)| (k, ByteString(v.into_bytes())))
                        .collect(),
                );
                secrets.push(s);
            }
            k => panic!("{file}: unexpected kind {k}"),
        }
    }
    assert_eq!(gsvcs.len(), 4, "egress, ignoreChain, hooks, rtcp");
    for g in &gsvcs {
        let r = render_checked(g, &chains, &secrets, &RenderSettings::default());
        assert!(
            r.errors.is_empty(),
            "{}: {:?}",
            g.metadata.name.as_deref().unwrap_or(""),
            r.errors
        );
        // the Web API (dynamic config) is never on in a sidecar: config arrives as Secrets
        assert!(
            r.config.api.is_none(),
            "rendered config turns the Web API on"
        );
        let c = conflicts_of(g, &gsvcs, &[]);
        assert!(c.is_empty(), "{c:?}");
    }
}
