//! `ws` / `wss` dialers: TCP (+ TLS for `wss`), then a WebSocket upgrade
//! `GET ws://<host><path>`; the stream is carried in binary messages.
//!
//! ```yaml
//! nodes:
//! - name: n
//!   addr: 10.0.0.1:443
//!   connector: {type: relay}
//!   dialer: {type: wss, metadata: {path: /tunnel, host: cdn.example}}
//! ```
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `path` / `ws.path` | string | `/ws` | request path |
//! | `host` / `ws.host` | string | node address | `Host` of the upgrade request |
//! | `header` | map | none | extra request headers |
//! | `handshakeTimeout` | duration | 10s | TLS and upgrade deadline |

use std::io;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::component::{Dialer, NodeOpts};
use crate::error::BuildError;
use crate::io::BoxStream;
use crate::tls::ClientTls;
use crate::ws::WsOpts;

/// The WebSocket dialer.
pub struct WsDialer {
    tls: Option<(ClientTls, Duration)>,
    ws: WsOpts,
    host: String,
}

/// Builds the shared parts of ws-based dialers.
pub fn build(o: &NodeOpts, secure: bool) -> Result<WsDialer, BuildError> {
    let ws = WsOpts::from_md(&o.md)?;
    let tls = if secure {
        Some(super::tls::client(o)?)
    } else {
        None
    };
    let host = ws.host.clone().unwrap_or_else(|| o.node_addr.clone());
    Ok(WsDialer { tls, ws, host })
}

impl WsDialer {
    /// TLS (for `wss`) then the WebSocket upgrade over `conn`.
    pub async fn upgrade(&self, conn: BoxStream) -> io::Result<BoxStream> {
        let conn = match &self.tls {
            Some((tls, t)) => crate::tls::connect(tls, conn, *t).await?,
            None => conn,
        };
        crate::ws::client(conn, &self.host, &self.ws).await
    }
}

/// Factory for `ws`.
pub fn new_ws(o: &NodeOpts) -> Result<Arc<dyn Dialer>, BuildError> {
    Ok(Arc::new(build(o, false)?))
}

/// Factory for `wss`.
pub fn new_wss(o: &NodeOpts) -> Result<Arc<dyn Dialer>, BuildError> {
    Ok(Arc::new(build(o, true)?))
}

#[async_trait]
impl Dialer for WsDialer {
    async fn handshake(&self, conn: BoxStream, _addr: &str) -> io::Result<BoxStream> {
        self.upgrade(conn).await
    }
}
