//! Config-time file reads: TLS material, `auth.file`, auther/bypass/admission/hosts files and
//! the working-directory `cert.pem`. They all go through here so that a config can be
//! validated against files held in memory ([`with_files`]): the operator validates a rendered
//! config together with the TLS files of its Secret before writing anything, and never reads
//! its own disk for that.
//!
//! The in-memory set is per thread and only for the duration of one synchronous call
//! (validation does not await), so concurrent validations never see each other's files.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

thread_local! {
    static FILES: RefCell<Option<BTreeMap<PathBuf, Vec<u8>>>> = const { RefCell::new(None) };
}

/// Runs `f` with config-time reads served from `files` only: a path that is not in the map
/// does not exist (the real filesystem is not consulted). Restores the previous state after.
pub fn with_files<R>(files: BTreeMap<PathBuf, Vec<u8>>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<BTreeMap<PathBuf, Vec<u8>>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            FILES.with(|c| *c.borrow_mut() = prev);
        }
    }
    let prev = FILES.with(|c| c.borrow_mut().replace(files));
    let _restore = Restore(prev);
    f()
}

/// Reads a whole file.
pub fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let path = path.as_ref();
    let mem = FILES.with(|c| {
        c.borrow().as_ref().map(|m| {
            m.get(path).cloned().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{}: no such file", path.display()),
                )
            })
        })
    });
    match mem {
        Some(r) => r,
        None => std::fs::read(path),
    }
}

/// Reads a whole UTF-8 file.
pub fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    String::from_utf8(read(path)?).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Whether `path` is a regular file.
pub fn is_file(path: impl AsRef<Path>) -> bool {
    let path = path.as_ref();
    FILES
        .with(|c| c.borrow().as_ref().map(|m| m.contains_key(path)))
        .unwrap_or_else(|| path.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_memory_files_replace_the_disk_for_the_call_only() {
        let dir = tempfile::tempdir().unwrap();
        let on_disk = dir.path().join("a.pem");
        std::fs::write(&on_disk, b"disk").unwrap();
        let mem = dir.path().join("b.pem");
        let files = BTreeMap::from([(mem.clone(), b"memory".to_vec())]);
        with_files(files, || {
            assert_eq!(read(&mem).unwrap(), b"memory");
            assert!(is_file(&mem));
            // the disk is not consulted while in-memory files are set
            assert_eq!(read(&on_disk).unwrap_err().kind(), io::ErrorKind::NotFound);
            assert!(!is_file(&on_disk));
        });
        assert_eq!(read(&on_disk).unwrap(), b"disk");
        assert!(read(&mem).is_err());
    }
}
