//! `ws` / `wss` listeners: an HTTP server that upgrades `GET <path>` to WebSocket (any Origin);
//! message payloads form the byte stream. `wss` runs TLS underneath (certificate as for the
//! `tls` listener). Other paths get 404.
//!
//! ```yaml
//! services:
//! - name: ws
//!   addr: :8080
//!   handler: {type: relay}
//!   listener: {type: ws, metadata: {path: /tunnel}}
//! ```
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `path` / `ws.path` | string | `/ws` | upgrade path |
//! | `header` | map | none | extra response headers |
//! | `backlog` | int | 128 | upgraded connections waiting for the handler |
//! | `handshakeTimeout` | duration | 10s | TLS and upgrade deadline |
//!
//! Divergence: the client address used for logs and admission is the TCP peer;
//! `X-Forwarded-For`-style headers are not consulted.

use std::sync::Arc;

use crate::component::{Listener, ListenerOpts};
use crate::error::BuildError;
use crate::io::BoxStream;
use crate::listener::{backlog, server_tls, Queued, Upgrade};
use crate::ws::WsOpts;

/// The transport part of ws-based listeners: TLS (for `wss`) then the WebSocket upgrade.
#[derive(Clone)]
pub struct WsAccept {
    tls: Option<Arc<rustls::ServerConfig>>,
    ws: WsOpts,
}

impl WsAccept {
    /// Reads the options of a ws-based listener.
    pub fn build(o: &ListenerOpts, secure: bool) -> Result<WsAccept, BuildError> {
        let ws = WsOpts::listener(o)?;
        let tls = if secure { Some(server_tls(o)?) } else { None };
        Ok(WsAccept { tls, ws })
    }

    /// Runs the server side of the transport.
    pub async fn upgrade(&self, conn: BoxStream) -> std::io::Result<BoxStream> {
        let conn = match &self.tls {
            Some(cfg) => crate::tls::accept(cfg, conn, self.ws.timeout).await?,
            None => conn,
        };
        crate::ws::server(conn, &self.ws).await
    }
}

/// Validates `ws` listener options.
pub fn check_ws(o: &ListenerOpts) -> Result<(), BuildError> {
    backlog(o)?;
    WsAccept::build(o, false).map(|_| ())
}

/// Validates `wss` listener options.
pub fn check_wss(o: &ListenerOpts) -> Result<(), BuildError> {
    backlog(o)?;
    WsAccept::build(o, true).map(|_| ())
}

fn bind(o: &ListenerOpts, secure: bool) -> Result<Arc<dyn Listener>, BuildError> {
    let backlog = backlog(o)?;
    let acc = WsAccept::build(o, secure)?;
    let upgrade: Upgrade = Arc::new(move |conn, peer, tx| {
        let acc = acc.clone();
        Box::pin(async move {
            match acc.upgrade(conn).await {
                Ok(s) => {
                    let _ = tx.send((s, peer)).await;
                }
                Err(e) => tracing::debug!(%peer, error = %e, "websocket upgrade failed"),
            }
        })
    });
    Ok(Arc::new(Queued::bind(o, backlog, upgrade)?))
}

/// Factory for `ws`.
pub fn new_ws(o: &ListenerOpts) -> Result<Arc<dyn Listener>, BuildError> {
    bind(o, false)
}

/// Factory for `wss`.
pub fn new_wss(o: &ListenerOpts) -> Result<Arc<dyn Listener>, BuildError> {
    bind(o, true)
}
