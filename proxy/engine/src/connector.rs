//! Connectors: one module per GOST connector type string.

pub mod forward;
pub mod http;
pub mod relay;
pub mod socks4;
pub mod socks5;

use std::time::Duration;

use crate::component::NodeOpts;
use crate::error::BuildError;

/// Credentials from `auth` (inline or the first line of `auth.file`).
pub fn credentials(o: &NodeOpts) -> Result<Option<(String, String)>, BuildError> {
    let Some(a) = &o.auth else { return Ok(None) };
    if let Some(f) = &a.file {
        let text = crate::files::read_to_string(f).map_err(|e| {
            BuildError::new(
                format!("{}.auth.file", o.path),
                format!("cannot read {f:?}: {e}"),
            )
        })?;
        for l in text.lines() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let mut it = l.split_whitespace();
            let u = it.next().unwrap_or("").to_string();
            return Ok(Some((u, it.next().unwrap_or("").to_string())));
        }
        return Ok(None);
    }
    if a.username.is_empty() {
        return Ok(None);
    }
    Ok(Some((a.username.clone(), a.password.clone())))
}

/// The exchange timeout (`timeout` metadata), default 15 s.
pub fn timeout(o: &NodeOpts) -> Result<Duration, BuildError> {
    Ok(o.md
        .duration(&["timeout", "connectTimeout"])?
        .filter(|d| !d.is_zero())
        .unwrap_or(Duration::from_secs(15)))
}

/// Runs `f` under `t`, turning expiry into a timed-out I/O error.
pub async fn bounded<T>(
    t: Duration,
    what: &str,
    f: impl std::future::Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    tokio::time::timeout(t, f).await.map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{what}: timed out"))
    })?
}
