//! The config corpus: every file in `tests/fixtures/config/valid` loads and validates; every
//! file in `invalid/` fails with each message its `# expect:` header lines name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use gost_engine::{Engine, EngineOpts};

fn corpus(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/config")
        .join(kind);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn load(p: &Path) -> Result<gost_config::Config, String> {
    let text = std::fs::read_to_string(p).unwrap();
    let fmt = if p.extension().is_some_and(|e| e == "json") {
        gost_config::Format::Json
    } else {
        gost_config::Format::Yaml
    };
    gost_config::Config::parse(&text, fmt).map_err(|e| e.to_string())
}

#[tokio::test]
async fn valid_configs_load() {
    let engine = Engine::new(EngineOpts::default());
    let files = corpus("valid");
    assert!(files.len() >= 5);
    for f in files {
        let cfg = load(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        engine
            .validate(&cfg)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
}

#[tokio::test]
async fn invalid_configs_fail_with_their_message() {
    let engine = Engine::new(EngineOpts::default());
    let files = corpus("invalid");
    assert!(files.len() >= 20, "at least 20 invalid cases");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let expects: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expects.is_empty(),
            "{}: no `# expect:` header",
            f.display()
        );
        let err = match load(&f) {
            Err(e) => e,
            Ok(cfg) => match engine.validate(&cfg) {
                Ok(()) => panic!("{}: expected an error, config was accepted", f.display()),
                Err(e) => e.to_string(),
            },
        };
        for x in expects {
            assert!(
                err.contains(x),
                "{}: error does not mention {x:?}:\n{err}",
                f.display()
            );
        }
    }
}
