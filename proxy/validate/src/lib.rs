//! Validation of a GOST v3 config exactly as `gost-proxy` loads it: raw config (crate
//! `gost-config`) → validated objects, every error named by its config path
//! (`services[web].handler.type`). Nothing is bound, started or read from disk when the files
//! are given in memory.
//!
//! This is the boundary the operator uses instead of the engine: it names only validation.
//! The engine is linked without its program layer (Web API server, command line, file
//! watching, supervision, logging setup).

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use gost_engine::error::{BuildError, BuildErrors};

/// Services that fail closed (service metadata [`fail_closed::KEY`], a kubegost extension):
/// the service binds its address and refuses everything, logging the reason.
pub mod fail_closed {
    pub use gost_engine::fail_closed::{bind_for, Bind, KEY};
}

/// How to validate.
#[derive(Debug, Clone, Copy, Default)]
pub struct Opts {
    /// Unknown metadata keys are errors (the operator is always strict).
    pub strict: bool,
}

/// Validates `cfg` reading its files (TLS material, `auth.file`, …) from disk.
pub fn validate(cfg: &gost_config::Config, opts: Opts) -> Result<(), BuildErrors> {
    engine(opts).validate(cfg)
}

/// Validates `cfg` whose files are given in memory by path: nothing is read from disk, and a
/// path not in `files` does not exist.
pub fn validate_with_files(
    cfg: &gost_config::Config,
    files: BTreeMap<PathBuf, Vec<u8>>,
    opts: Opts,
) -> Result<(), BuildErrors> {
    engine(opts).validate_with_files(cfg, files)
}

fn engine(opts: Opts) -> std::sync::Arc<gost_engine::Engine> {
    gost_engine::Engine::new(gost_engine::EngineOpts {
        strict: opts.strict,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_path_and_files_come_from_memory() {
        let cfg = gost_config::Config::from_yaml(
            "services: [{name: s, addr: ':0', handler: {type: nope}}]",
        )
        .unwrap();
        let e = validate(&cfg, Opts { strict: true }).unwrap_err();
        assert_eq!(e.0[0].path, "services[s].handler.type");
        let cfg = gost_config::Config::from_yaml("authers: [{name: a, file: {path: /mem/users}}]")
            .unwrap();
        assert!(validate_with_files(&cfg, BTreeMap::new(), Opts { strict: true }).is_err());
        let mut files = BTreeMap::new();
        files.insert(PathBuf::from("/mem/users"), b"u p\n".to_vec());
        validate_with_files(&cfg, files, Opts { strict: true }).unwrap();
    }
}
