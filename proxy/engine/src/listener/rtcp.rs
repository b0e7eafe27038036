//! `rtcp` listener: remote TCP port forwarding. With a listener chain, the service address is
//! bound on the chain's last node (relay BIND or SOCKS5 MBIND, the node needs `bind: true`) and
//! the connections arriving there are accepted here, one smux stream each; the handler (`rtcp`)
//! then dials the forwarder target. Without a chain the port is bound locally. When the remote
//! session dies the next accept binds again; failures are retried by the service with a
//! 1 → 2 → 4 → 5 s backoff.
//!
//! ```yaml
//! services:
//! - name: reverse
//!   addr: :8080                 # bound on the remote node
//!   handler: {type: rtcp}
//!   listener: {type: rtcp, chain: to-relay}
//!   forwarder: {nodes: [{name: web, addr: 127.0.0.1:80}]}
//! ```
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `backlog` | int | 128 | accepted for compatibility |

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;

use crate::component::{Accept, Bound, Inbound, Listener, ListenerOpts, Route};
use crate::error::BuildError;

/// The remote TCP listener.
pub struct RtcpListener {
    router: Arc<dyn Route>,
    addr: String,
    local: SocketAddr,
    bound: tokio::sync::Mutex<Option<Box<dyn Accept>>>,
}

/// Validates `rtcp` listener options.
pub fn check(o: &ListenerOpts) -> Result<(), BuildError> {
    super::backlog(o)?;
    addr(o).map(|_| ())
}

fn addr(o: &ListenerOpts) -> Result<SocketAddr, BuildError> {
    crate::addr::parse_listen_addr(&o.addr).ok_or_else(|| {
        BuildError::new(
            format!("{}.addr", o.path),
            format!("invalid address {:?} (expected host:port)", o.addr),
        )
    })
}

/// Factory for `rtcp`.
pub fn new(o: &ListenerOpts) -> Result<Arc<dyn Listener>, BuildError> {
    super::backlog(o)?;
    if !o.router.has_chain() {
        return super::tcp::new(o);
    }
    Ok(Arc::new(RtcpListener {
        router: Arc::clone(&o.router),
        addr: o.addr.clone(),
        local: addr(o)?,
        bound: tokio::sync::Mutex::new(None),
    }))
}

/// Parses a peer address reported by a node (unspecified when it cannot be parsed).
pub fn peer_addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

#[async_trait]
impl Listener for RtcpListener {
    async fn accept(&self) -> io::Result<(Inbound, SocketAddr)> {
        let mut bound = self.bound.lock().await;
        if bound.is_none() {
            match self.router.bind("tcp", &self.addr).await {
                Ok(Some(Bound::Stream(a))) => {
                    tracing::info!(addr = %self.addr, bound = %a.addr(), "rtcp: bound on the remote node");
                    *bound = Some(a);
                }
                Ok(Some(Bound::Packet(..))) => {
                    return Err(io::Error::other("rtcp: the node bound a UDP port"))
                }
                Ok(None) => {
                    return Err(io::Error::other(
                        "rtcp: the chain selected no node (nothing to bind on)",
                    ))
                }
                Err(e) => return Err(io::Error::other(format!("rtcp bind {}: {e}", self.addr))),
            }
        }
        let Some(a) = bound.as_ref() else {
            return Err(io::Error::other("rtcp: not bound"));
        };
        match a.accept().await {
            Ok((s, peer)) => Ok((Inbound::Stream(s), peer_addr(&peer))),
            Err(e) => {
                *bound = None;
                // NotConnected whatever the cause: the listener (not one connection) failed,
                // so the service backs off and binds again
                Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    format!("rtcp: remote session ended: {e}"),
                ))
            }
        }
    }
    fn local_addr(&self) -> SocketAddr {
        self.local
    }
}
