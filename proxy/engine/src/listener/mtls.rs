//! `mtls` listener: TCP + TLS + smux server ("multiplexed TLS", not mutual TLS; for client
//! certificates set `tls.caFile`). Each smux stream is one accepted connection.
//!
//! ```yaml
//! services:
//! - name: mtls
//!   addr: :8443
//!   handler: {type: relay}
//!   listener: {type: mtls}
//! ```
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `backlog` | int | 128 | streams waiting for the handler |
//! | `handshakeTimeout` | duration | 10s | TLS handshake deadline |
//! | `mux.*` | | | smux settings ([`crate::mux`]) |

use std::sync::Arc;

use crate::component::{Listener, ListenerOpts};
use crate::error::BuildError;
use crate::io::BoxStream;
use crate::listener::{backlog, server_tls, Accepted, Queued, Upgrade};
use crate::mux::{Config, Session};

/// Runs an smux server session over `conn`, delivering every stream to `tx`.
pub async fn serve_session(conn: BoxStream, peer: std::net::SocketAddr, cfg: Config, tx: Accepted) {
    let session = Session::new(conn, cfg, false);
    loop {
        let s = tokio::select! {
            s = session.accept() => s,
            _ = tx.closed() => return,
        };
        match s {
            Ok(s) => {
                if tx.send((Box::new(s), peer)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "smux session ended");
                return;
            }
        }
    }
}

/// Validates `mtls` listener options.
pub fn check(o: &ListenerOpts) -> Result<(), BuildError> {
    backlog(o)?;
    super::tls::handshake_timeout(o)?;
    Config::from_md(&o.md)?;
    server_tls(o).map(|_| ())
}

/// Factory for `mtls`.
pub fn new(o: &ListenerOpts) -> Result<Arc<dyn Listener>, BuildError> {
    let backlog = backlog(o)?;
    let timeout = super::tls::handshake_timeout(o)?;
    let mut mux = Config::from_md(&o.md)?;
    mux.backlog = backlog;
    let tls = server_tls(o)?;
    let upgrade: Upgrade = Arc::new(move |conn, peer, tx| {
        let tls = Arc::clone(&tls);
        let mux = mux.clone();
        Box::pin(async move {
            match crate::tls::accept(&tls, conn, timeout).await {
                Ok(s) => serve_session(s, peer, mux, tx).await,
                Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
            }
        })
    });
    Ok(Arc::new(Queued::bind(o, backlog, upgrade)?))
}
