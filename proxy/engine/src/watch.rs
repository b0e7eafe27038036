//! Config file/directory watching: inotify events plus a slow poll, debounced. A change in the
//! content of any watched source triggers the same reload as SIGHUP and `/config/reload`.
//!
//! In a pod the config arrives as a mounted Secret whose files are swapped atomically through a
//! `..data` symlink; watching the directory (not the file inode) and comparing content makes
//! that swap one reload.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::api::ReloadFn;

/// A content fingerprint of every source (files of directories in name order).
pub fn fingerprint(paths: &[PathBuf]) -> u64 {
    let mut h = DefaultHasher::new();
    for p in paths {
        p.hash(&mut h);
        if p.is_dir() {
            for f in dir_files(p).unwrap_or_default() {
                f.hash(&mut h);
                std::fs::read(&f).unwrap_or_default().hash(&mut h);
            }
        } else {
            std::fs::read(p).unwrap_or_default().hash(&mut h);
        }
    }
    h.finish()
}

/// Watches `paths` until the returned task is aborted.
pub fn spawn(
    paths: Vec<PathBuf>,
    reload: ReloadFn,
    poll: Duration,
    debounce: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(16);
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if res.is_ok() {
                let _ = tx.try_send(());
            }
        });
        let mut watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "inotify unavailable; polling config sources only");
                None
            }
        };
        if let Some(w) = watcher.as_mut() {
            for p in &paths {
                let dir: &Path = if p.is_dir() {
                    p
                } else {
                    p.parent()
                        .filter(|d| !d.as_os_str().is_empty())
                        .unwrap_or(Path::new("."))
                };
                if let Err(e) = w.watch(dir, RecursiveMode::NonRecursive) {
                    tracing::warn!(path = %dir.display(), error = %e, "cannot watch; polling only");
                }
            }
        }
        let mut last = fingerprint(&paths);
        let mut tick = tokio::time::interval(poll);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                ev = rx.recv() => {
                    if ev.is_none() {
                        tick.tick().await;
                    }
                    tokio::time::sleep(debounce).await;
                    while rx.try_recv().is_ok() {}
                }
            }
            let now = fingerprint(&paths);
            if now == last {
                continue;
            }
            last = now;
            tracing::info!("config source changed; reloading");
            match reload().await {
                Ok(r) => {
                    tracing::info!(added = ?r.added, changed = ?r.changed, removed = ?r.removed, "reloaded after a config change")
                }
                Err(e) => {
                    tracing::error!(error = %e, "config change rejected; the running config keeps serving")
                }
            }
        }
    })
}

/// Files of a config directory in name order (`*.yaml`, `*.yml`, `*.json`; hidden entries such
/// as Kubernetes' `..data` are skipped).
pub fn dir_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.starts_with('.')
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                )
        })
        .collect();
    v.sort();
    Ok(v)
}
