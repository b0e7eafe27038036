//! `mtls` dialer: TLS + smux client ("multiplexed TLS", not mutual TLS). One session per node
//! address is reused for every connection; a dead session is replaced. When the node is not
//! the first of its route, the nodes before it carry the session's connection (GOST's route
//! split). smux keys are listed in [`crate::mux`].
//!
//! ```yaml
//! nodes:
//! - name: n
//!   addr: 10.0.0.1:8443
//!   connector: {type: relay}
//!   dialer: {type: mtls, metadata: {mux.keepaliveInterval: 10s}}
//! ```
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `handshakeTimeout` | duration | 10s | TLS handshake deadline |
//! | `mux.*` | | | smux settings ([`crate::mux`]) |

use std::io;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::component::{DialOpts, Dialer, NodeOpts, Underlay};
use crate::error::BuildError;
use crate::io::BoxStream;
use crate::mux::{Config, Pool};
use crate::tls::ClientTls;

/// The multiplexed TLS dialer.
pub struct MtlsDialer {
    tls: ClientTls,
    timeout: Duration,
    mux: Config,
    pool: Pool,
}

/// Factory for `mtls`.
pub fn new(o: &NodeOpts) -> Result<Arc<dyn Dialer>, BuildError> {
    let (tls, timeout) = super::tls::client(o)?;
    Ok(Arc::new(MtlsDialer {
        tls,
        timeout,
        mux: Config::from_md(&o.md)?,
        pool: Pool::default(),
    }))
}

#[async_trait]
impl Dialer for MtlsDialer {
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
                crate::tls::connect(&self.tls, underlay.await?, self.timeout).await
            })
            .await?;
        Ok(Box::new(s))
    }
}
