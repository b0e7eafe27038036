//! `tls` dialer: TCP + TLS client handshake. GOST does not verify the server certificate unless
//! `dialer.tls.secure` is true; SNI is `serverName` or the node host (see [`crate::tls`]).
//!
//! ```yaml
//! nodes:
//! - name: n
//!   addr: proxy.example:8443
//!   connector: {type: http}
//!   dialer: {type: tls, tls: {secure: true, caFile: ca.pem}}
//! ```
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `handshakeTimeout` | duration | 10s | TLS handshake deadline |

use std::io;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::component::{Dialer, NodeOpts};
use crate::error::BuildError;
use crate::io::BoxStream;
use crate::tls::ClientTls;

/// The TLS dialer.
pub struct TlsDialer {
    tls: ClientTls,
    timeout: Duration,
}

/// Client TLS and handshake timeout for a TLS-based dialer.
pub fn client(o: &NodeOpts) -> Result<(ClientTls, Duration), BuildError> {
    let timeout =
        o.md.duration(&["handshakeTimeout"])?
            .filter(|d| !d.is_zero())
            .unwrap_or(crate::tls::HANDSHAKE_TIMEOUT);
    o.md.mark_known(crate::md::TCP_KEYS);
    let tls = crate::tls::client_config(&format!("{}.tls", o.path), o.tls.as_ref(), &o.node_addr)?;
    Ok((tls, timeout))
}

/// Factory for `tls`.
pub fn new(o: &NodeOpts) -> Result<Arc<dyn Dialer>, BuildError> {
    let (tls, timeout) = client(o)?;
    Ok(Arc::new(TlsDialer { tls, timeout }))
}

#[async_trait]
impl Dialer for TlsDialer {
    async fn handshake(&self, conn: BoxStream, _addr: &str) -> io::Result<BoxStream> {
        crate::tls::connect(&self.tls, conn, self.timeout).await
    }
}
