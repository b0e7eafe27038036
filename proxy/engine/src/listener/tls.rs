//! `tls` listener: TCP + TLS server. The certificate comes from the service's
//! `listener.tls` (with `caFile`: client certificates required and verified = mutual TLS), else
//! the global `tls:` object, else a generated self-signed certificate (see [`crate::tls`]).
//! Handshakes run concurrently, each bounded by `handshakeTimeout`.
//!
//! ```yaml
//! services:
//! - name: https-proxy
//!   addr: :8443
//!   handler: {type: http}
//!   listener:
//!     type: tls
//!     tls: {certFile: cert.pem, keyFile: key.pem}
//! ```
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `backlog` | int | 128 | handshaken connections waiting for the handler |
//! | `handshakeTimeout` | duration | 10s | TLS handshake deadline |

use std::sync::Arc;
use std::time::Duration;

use crate::component::{Listener, ListenerOpts};
use crate::error::BuildError;
use crate::listener::{backlog, server_tls, Queued, Upgrade};

/// Handshake timeout from `handshakeTimeout` (default 10 s).
pub fn handshake_timeout(o: &ListenerOpts) -> Result<Duration, BuildError> {
    Ok(o.md
        .duration(&["handshakeTimeout"])?
        .filter(|d| !d.is_zero())
        .unwrap_or(crate::tls::HANDSHAKE_TIMEOUT))
}

/// Validates `tls` listener options without binding.
pub fn check(o: &ListenerOpts) -> Result<(), BuildError> {
    backlog(o)?;
    handshake_timeout(o)?;
    server_tls(o).map(|_| ())
}

/// Factory for `tls`.
pub fn new(o: &ListenerOpts) -> Result<Arc<dyn Listener>, BuildError> {
    let backlog = backlog(o)?;
    let timeout = handshake_timeout(o)?;
    let cfg = server_tls(o)?;
    let upgrade: Upgrade = Arc::new(move |conn, peer, tx| {
        let cfg = Arc::clone(&cfg);
        Box::pin(async move {
            match crate::tls::accept(&cfg, conn, timeout).await {
                Ok(s) => {
                    let _ = tx.send((s, peer)).await;
                }
                Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
            }
        })
    });
    Ok(Arc::new(Queued::bind(o, backlog, upgrade)?))
}
