//! `rudp` listener: remote UDP port forwarding. With a listener chain, the service address is
//! bound on the chain's last node (relay BIND with the UDP network, or SOCKS5 UDP-over-TCP in
//! bind mode, `0xF3` with a non-zero port; the node needs `bind: true`). Every datagram
//! arriving there comes back through the tunnel tagged with its sender; each sender gets its
//! own session here, handed once to the handler (`rudp`), which forwards it to the forwarder
//! target and sends the replies back through the tunnel to that sender. Without a chain the
//! port is bound locally. When the tunnel dies its sessions end and the next accept binds
//! again; failures are retried by the service with a 1 → 2 → 4 → 5 s backoff.
//!
//! Sessions always live until idle (GOST's `keepalive: true`): the janitor closes a session
//! after between `ttl` and 2×`ttl` without traffic in either direction.
//!
//! ```yaml
//! services:
//! - name: reverse-dns
//!   addr: :5353                 # bound on the remote node
//!   handler: {type: rudp}
//!   listener: {type: rudp, chain: to-relay, metadata: {ttl: 30s}}
//!   forwarder: {nodes: [{name: ns, addr: 127.0.0.1:53}]}
//! ```
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `ttl` / `keepalive.ttl` | duration | 5s | idle sessions die after between ttl and 2×ttl |
//! | `readBufferSize` / `udp.bufferSize` | int | 8192 | largest datagram (longer ones are truncated) |
//! | `readQueueSize` / `recvQueueSize` | int | 1024 | datagrams queued per session (overflow is dropped) |
//! | `backlog` | int | 128 | sessions waiting for the handler (overflow is dropped) |
//! | `maxSessions` | int | 8192 | live sessions; a new client's datagrams are dropped while full |

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::udp::{Demux, SessionOpts, TunnelWire};
use crate::component::{Bound, Inbound, Listener, ListenerOpts, Route, UdpSession};
use crate::error::BuildError;

/// The remote UDP listener.
pub struct RudpListener {
    router: Arc<dyn Route>,
    addr: String,
    local: SocketAddr,
    opts: SessionOpts,
    bound: tokio::sync::Mutex<Option<Demux>>,
}

fn opts(o: &ListenerOpts) -> Result<SessionOpts, BuildError> {
    let defaults = SessionOpts {
        keepalive: true,
        ttl: Duration::from_secs(5),
        buf_size: 8192,
        queue: 1024,
        backlog: 128,
        max_sessions: super::udp::MAX_SESSIONS,
    };
    super::udp::session_opts(o, &defaults)
}

fn addr(o: &ListenerOpts) -> Result<SocketAddr, BuildError> {
    crate::addr::parse_listen_addr(&o.addr).ok_or_else(|| {
        BuildError::new(
            format!("{}.addr", o.path),
            format!("invalid address {:?} (expected host:port)", o.addr),
        )
    })
}

/// Validates `rudp` listener options.
pub fn check(o: &ListenerOpts) -> Result<(), BuildError> {
    opts(o)?;
    addr(o).map(|_| ())
}

/// Factory for `rudp`.
pub fn new(o: &ListenerOpts) -> Result<Arc<dyn Listener>, BuildError> {
    let so = opts(o)?;
    if !o.router.has_chain() {
        return Ok(Arc::new(super::udp::bind(o, &so)?));
    }
    Ok(Arc::new(RudpListener {
        router: Arc::clone(&o.router),
        addr: o.addr.clone(),
        local: addr(o)?,
        opts: so,
        bound: tokio::sync::Mutex::new(None),
    }))
}

// === impl RudpListener ===

impl RudpListener {
    async fn bind(&self) -> io::Result<Demux> {
        match self.router.bind("udp", &self.addr).await {
            Ok(Some(Bound::Packet(pc, a))) => {
                tracing::info!(addr = %self.addr, bound = %a, "rudp: bound on the remote node");
                Ok(Demux::start(Arc::new(TunnelWire(pc)), &self.opts))
            }
            Ok(Some(Bound::Stream(_))) => Err(io::Error::other(
                "rudp: the node bound a TCP port instead of a UDP one",
            )),
            Ok(None) => Err(io::Error::other(
                "rudp: the chain selected no node (nothing to bind on)",
            )),
            Err(e) => Err(io::Error::other(format!("rudp bind {}: {e}", self.addr))),
        }
    }
}

#[async_trait]
impl Listener for RudpListener {
    async fn accept(&self) -> io::Result<(Inbound, SocketAddr)> {
        let mut bound = self.bound.lock().await;
        if bound.is_none() {
            *bound = Some(self.bind().await?);
        }
        let Some(d) = bound.as_ref() else {
            return Err(io::Error::other("rudp: not bound"));
        };
        match d.accept().await {
            Some(s) => {
                let peer = s.peer();
                Ok((Inbound::Datagram(Box::new(s)), peer))
            }
            None => {
                *bound = None;
                // NotConnected: the listener (not one connection) failed, so the service
                // backs off and binds again
                Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "rudp: the tunnel to the remote node ended",
                ))
            }
        }
    }
    fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

#[cfg(test)]
mod tests;
