//! Dialers: one module per GOST dialer type string, plus [`Multiplexed`], the smux session
//! layer the `mtls`, `mws` and `mwss` dialers put over the `tls`, `ws` and `wss` transports.

pub mod mtls;
pub mod mws;
pub mod tcp;
pub mod tls;
pub mod ws;

use std::io;
use std::sync::Arc;

use async_trait::async_trait;

use crate::component::{DialOpts, Dialer, NodeOpts, Underlay};
use crate::error::BuildError;
use crate::io::BoxStream;
use crate::mux::{Config, Pool};

/// A multiplexing dialer: one smux session per node address, reused for every connection and
/// replaced when dead; the session's connection gets `transport`'s handshake.
pub struct Multiplexed {
    transport: Arc<dyn Dialer>,
    mux: Config,
    pool: Pool,
}

impl Multiplexed {
    /// `transport` under smux, with the `mux.*` keys of `o`.
    pub fn new(transport: Arc<dyn Dialer>, o: &NodeOpts) -> Result<Multiplexed, BuildError> {
        Ok(Multiplexed {
            transport,
            mux: Config::from_md(&o.md)?,
            pool: Pool::default(),
        })
    }
}

#[async_trait]
impl Dialer for Multiplexed {
    async fn dial(&self, addr: &str, opts: &DialOpts) -> io::Result<BoxStream> {
        self.transport.dial(addr, opts).await
    }
    fn multiplex(&self) -> bool {
        true
    }
    async fn dial_mux(&self, addr: &str, underlay: Underlay<'_>) -> io::Result<BoxStream> {
        let s = self
            .pool
            .stream(addr, &self.mux, async {
                self.transport.handshake(underlay.await?, addr).await
            })
            .await?;
        Ok(Box::new(s))
    }
}
