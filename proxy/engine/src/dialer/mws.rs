//! `mws` / `mwss` dialers: WebSocket (over TLS for `mwss`) + smux client, one session per node
//! address reused for every connection (see [`super::ws`] and [`crate::mux`] for the keys).
//!
//! ```yaml
//! nodes:
//! - name: n
//!   addr: 10.0.0.1:443
//!   connector: {type: socks5}
//!   dialer: {type: mwss, metadata: {path: /ws}}
//! ```
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `path` / `ws.path` | string | `/ws` | request path |
//! | `host` / `ws.host` | string | node address | `Host` of the upgrade request |
//! | `header` | map | none | extra request headers |
//! | `handshakeTimeout` | duration | 10s | TLS and upgrade deadline |
//! | `mux.*` | | | smux settings ([`crate::mux`]) |

use std::io;
use std::sync::Arc;

use async_trait::async_trait;

use crate::component::{DialOpts, Dialer, NodeOpts, Underlay};
use crate::error::BuildError;
use crate::io::BoxStream;
use crate::mux::{Config, Pool};

/// The multiplexed WebSocket dialer.
pub struct MwsDialer {
    ws: super::ws::WsDialer,
    mux: Config,
    pool: Pool,
}

fn build(o: &NodeOpts, secure: bool) -> Result<Arc<dyn Dialer>, BuildError> {
    Ok(Arc::new(MwsDialer {
        ws: super::ws::build(o, secure)?,
        mux: Config::from_md(&o.md)?,
        pool: Pool::default(),
    }))
}

/// Factory for `mws`.
pub fn new_mws(o: &NodeOpts) -> Result<Arc<dyn Dialer>, BuildError> {
    build(o, false)
}

/// Factory for `mwss`.
pub fn new_mwss(o: &NodeOpts) -> Result<Arc<dyn Dialer>, BuildError> {
    build(o, true)
}

#[async_trait]
impl Dialer for MwsDialer {
    async fn dial(&self, addr: &str, opts: &DialOpts) -> io::Result<BoxStream> {
        Ok(Box::new(crate::io::connect_tcp(addr, opts.timeout).await?))
    }
    fn multiplex(&self) -> bool {
        true
    }
    async fn dial_mux(&self, addr: &str, underlay: Underlay<'_>) -> io::Result<BoxStream> {
        let s = self
            .pool
            .stream(addr, &self.mux, async {
                self.ws.upgrade(underlay.await?).await
            })
            .await?;
        Ok(Box::new(s))
    }
}
