//! Writes the CRD YAML generated from the Rust types into `crds/` and `charts/kubegost/crds/`.

use std::path::PathBuf;

use anyhow::Context;
use gost_operator::crdgen::{generate, CRD_DIRS};

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("operator crate has no parent directory")?
        .to_path_buf();
    for (file, text) in generate()? {
        for dir in CRD_DIRS {
            let path = root.join(dir).join(&file);
            std::fs::create_dir_all(root.join(dir))
                .with_context(|| format!("cannot create {dir}"))?;
            std::fs::write(&path, &text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}
