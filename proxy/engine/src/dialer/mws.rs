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

use std::sync::Arc;

use crate::component::{Dialer, NodeOpts};
use crate::error::BuildError;

fn build(o: &NodeOpts, secure: bool) -> Result<Arc<dyn Dialer>, BuildError> {
    let ws: Arc<dyn Dialer> = Arc::new(super::ws::build(o, secure)?);
    Ok(Arc::new(super::Multiplexed::new(ws, o)?))
}

/// Factory for `mws`: the `ws` dialer's upgrade under a smux session.
pub fn new_mws(o: &NodeOpts) -> Result<Arc<dyn Dialer>, BuildError> {
    build(o, false)
}

/// Factory for `mwss`: the `wss` dialer's TLS and upgrade under a smux session.
pub fn new_mwss(o: &NodeOpts) -> Result<Arc<dyn Dialer>, BuildError> {
    build(o, true)
}
