//! `tcp` dialer: a plain TCP connection to the node (TCP_NODELAY on).
//!
//! ```yaml
//! nodes:
//! - name: n
//!   addr: 127.0.0.1:1080
//!   dialer: {type: tcp}
//! ```

use std::io;
use std::sync::Arc;

use async_trait::async_trait;

use crate::chain::{DialOpts, Dialer};
use crate::component::NodeOpts;
use crate::error::BuildError;
use crate::io::BoxStream;

/// The TCP dialer.
pub struct TcpDialer;

/// Factory for `tcp`.
pub fn new(o: &NodeOpts) -> Result<Arc<dyn Dialer>, BuildError> {
    o.md.mark_known(crate::md::TCP_KEYS);
    Ok(Arc::new(TcpDialer))
}

/// Opens a TCP connection honouring the dial timeout.
pub async fn connect(addr: &str, opts: &DialOpts) -> io::Result<tokio::net::TcpStream> {
    let fut = tokio::net::TcpStream::connect(addr);
    let s = match opts.timeout {
        Some(t) => tokio::time::timeout(t, fut).await.map_err(|_| {
            io::Error::new(io::ErrorKind::TimedOut, format!("dial {addr}: timed out"))
        })??,
        None => fut.await?,
    };
    let _ = s.set_nodelay(true);
    Ok(s)
}

#[async_trait]
impl Dialer for TcpDialer {
    async fn dial(&self, addr: &str, opts: &DialOpts) -> io::Result<BoxStream> {
        Ok(Box::new(connect(addr, opts).await?))
    }
}
