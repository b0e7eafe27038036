//! `mws` / `mwss` listeners: WebSocket (over TLS for `mwss`) + smux server; each stream is one
//! accepted connection. Keys of [`super::ws`] plus `mux.*` ([`crate::mux`]).
//!
//! ```yaml
//! services:
//! - name: mws
//!   addr: :8080
//!   handler: {type: socks5}
//!   listener: {type: mws, metadata: {path: /ws}}
//! ```
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `path` / `ws.path` | string | `/ws` | upgrade path |
//! | `header` | map | none | extra response headers |
//! | `backlog` | int | 128 | streams waiting for the handler |
//! | `handshakeTimeout` | duration | 10s | TLS and upgrade deadline |
//! | `mux.*` | | | smux settings ([`crate::mux`]) |

use std::sync::Arc;

use crate::component::{Listener, ListenerOpts};
use crate::error::BuildError;
use crate::listener::ws::WsAccept;
use crate::listener::{backlog, Queued, Upgrade};
use crate::mux::Config;

fn check(o: &ListenerOpts, secure: bool) -> Result<(), BuildError> {
    backlog(o)?;
    Config::from_md(&o.md)?;
    WsAccept::build(o, secure).map(|_| ())
}

/// Validates `mws` listener options.
pub fn check_mws(o: &ListenerOpts) -> Result<(), BuildError> {
    check(o, false)
}

/// Validates `mwss` listener options.
pub fn check_mwss(o: &ListenerOpts) -> Result<(), BuildError> {
    check(o, true)
}

fn bind(o: &ListenerOpts, secure: bool) -> Result<Arc<dyn Listener>, BuildError> {
    let backlog = backlog(o)?;
    let mut mux = Config::from_md(&o.md)?;
    mux.backlog = backlog;
    let acc = WsAccept::build(o, secure)?;
    let upgrade: Upgrade = Arc::new(move |conn, peer, tx| {
        let acc = acc.clone();
        let mux = mux.clone();
        Box::pin(async move {
            match acc.upgrade(conn).await {
                Ok(s) => super::mtls::serve_session(s, peer, mux, tx).await,
                Err(e) => tracing::debug!(%peer, error = %e, "websocket upgrade failed"),
            }
        })
    });
    Ok(Arc::new(Queued::bind(o, backlog, upgrade)?))
}

/// Factory for `mws`.
pub fn new_mws(o: &ListenerOpts) -> Result<Arc<dyn Listener>, BuildError> {
    bind(o, false)
}

/// Factory for `mwss`.
pub fn new_mwss(o: &ListenerOpts) -> Result<Arc<dyn Listener>, BuildError> {
    bind(o, true)
}
