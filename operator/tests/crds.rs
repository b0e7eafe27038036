#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The committed CRD YAML (`crds/`, `charts/kubegost/crds/`) is what the Rust types generate.
//! `UPDATE_CRDS=1 cargo test -p gost-operator --test crds` rewrites both copies.

use std::path::PathBuf;

use gost_operator::crdgen::{generate, CRD_DIRS};

#[test]
fn committed_crds_are_fresh() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let update = std::env::var_os("UPDATE_CRDS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (file, text) in generate().unwrap() {
        for dir in CRD_DIRS {
            let path = root.join(dir).join(&file);
            if update {
                std::fs::create_dir_all(root.join(dir)).unwrap();
                std::fs::write(&path, &text).unwrap();
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(committed) if committed == text => {}
                Ok(_) => stale.push(format!("{dir}/{file} differs")),
                Err(e) => stale.push(format!("{dir}/{file}: {e}")),
            }
        }
    }
    assert!(
        stale.is_empty(),
        "CRD YAML is stale ({}); run `cargo run -p gost-operator --bin crdgen`",
        stale.join(", ")
    );
}

#[test]
fn crds_have_descriptions_short_names_and_status() {
    for (file, text) in generate().unwrap() {
        assert!(text.contains("shortNames:"), "{file}");
        assert!(text.contains("status: {}"), "{file}: status subresource");
        assert!(text.contains("x-kubernetes-validations"), "{file}");
        assert!(text.contains("additionalPrinterColumns"), "{file}");
    }
}

/// Every property of the schema carries a description, so `kubectl explain` is useful.
#[test]
fn every_field_has_a_description() {
    use kube::CustomResourceExt;
    fn walk(path: &str, v: &serde_json::Value, missing: &mut Vec<String>) {
        let Some(props) = v.get("properties").and_then(|p| p.as_object()) else {
            if let Some(items) = v.get("items") {
                walk(&format!("{path}[]"), items, missing);
            }
            return;
        };
        for (k, p) in props {
            let here = format!("{path}.{k}");
            if p.get("description").is_none()
                && !matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
            {
                missing.push(here.clone());
            }
            walk(&here, p, missing);
        }
    }
    for crd in [
        gost_operator::crd::GostService::crd(),
        gost_operator::crd::GostChain::crd(),
    ] {
        let v = serde_json::to_value(&crd).unwrap();
        let schema = &v["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let mut missing = Vec::new();
        walk("", schema, &mut missing);
        assert!(
            missing.is_empty(),
            "fields without description: {missing:?}"
        );
    }
}
