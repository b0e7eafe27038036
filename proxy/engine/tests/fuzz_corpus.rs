//! Replays the fuzz corpora on stable: every file under `proxy/engine/fuzz/corpus/<target>/`
//! (seeds, what `cargo fuzz cmin` kept, and `crash-*` regression inputs) goes through the same
//! harness the libFuzzer targets use, so a parser regression fails `cargo test` without
//! nightly. The harness panics when the engine panics or a handler hangs after end of input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::path::Path;

#[test]
fn every_corpus_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut total = 0;
    for (name, target) in harness::TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{}: empty corpus", dir.display());
        for f in &files {
            let data = std::fs::read(f).unwrap();
            let run = std::panic::catch_unwind(|| target(&data));
            assert!(run.is_ok(), "{name}: {} fails", f.display());
        }
        total += files.len();
    }
    eprintln!(
        "replayed {total} corpus inputs over {} targets",
        harness::TARGETS.len()
    );
}

#[test]
fn every_target_has_a_fuzz_binary() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    for (name, _) in harness::TARGETS {
        assert!(
            dir.join(format!("{name}.rs")).is_file(),
            "fuzz/fuzz_targets/{name}.rs is missing"
        );
    }
}
