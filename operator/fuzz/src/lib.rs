//! Fuzz harness for the CRD → config path, shared by `fuzz_targets/render.rs` (nightly,
//! `cargo fuzz`) and `operator/tests/fuzz_corpus.rs`, which replays the committed corpus on
//! stable.
//!
//! The input is JSON: `{"spec": <GostService spec>, "chains": [<GostChain spec>…]}`, the
//! shape a user writes in YAML. What deserializes is rendered with `render_checked`, whose
//! contract is checked: the config it returns always passes the engine's validation (services
//! it cannot make valid become fail-closed placeholders), and it serializes to YAML and back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gost_operator::crd::{GostChain, GostChainSpec, GostService, GostServiceSpec};
use gost_operator::render::{render_checked, validate, RenderSettings};

#[derive(serde::Deserialize)]
struct Input {
    spec: GostServiceSpec,
    #[serde(default)]
    chains: Vec<GostChainSpec>,
}

/// One input through `render_checked`.
pub fn render(data: &[u8]) {
    let Ok(input) = serde_json::from_slice::<Input>(data) else {
        return;
    };
    let mut svc = GostService::new("fuzz", input.spec);
    svc.metadata.namespace = Some("default".into());
    let chains: Vec<GostChain> = input
        .chains
        .into_iter()
        .enumerate()
        .map(|(i, spec)| {
            let mut c = GostChain::new(&format!("chain-{i}"), spec);
            c.metadata.namespace = Some("default".into());
            c
        })
        .collect();
    let settings = RenderSettings::default();
    let r = render_checked(&svc, &chains, &[], &settings);
    if let Err(e) = validate(&r, &settings) {
        panic!("render_checked returned a config the engine rejects: {e}");
    }
    let yaml = r.config.to_yaml().expect("a rendered config serializes");
    gost_config::Config::from_yaml(&yaml).expect("a rendered config reads back");
}

/// A target's entry point.
pub type Target = fn(&[u8]);

/// Every target by name.
pub const TARGETS: &[(&str, Target)] = &[("render", render)];
