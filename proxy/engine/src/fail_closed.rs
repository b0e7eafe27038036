//! Services that fail closed: service metadata `failClosed: <reason>` (a kubegost extension).
//!
//! The operator renders a service whose references cannot be resolved (a GostChain or Secret
//! that does not exist) this way instead of leaving it out or rendering it without its chain:
//! the service keeps its name and address, binds a plain socket of its network (TCP, or UDP for
//! UDP listeners) and refuses every connection and datagram with a logged reason, so traffic
//! never goes around the missing chain and the client fails at once instead of timing out.
//! Reverse listeners (`rtcp`, `rudp`) bind on the far side of a chain, so nothing is bound for
//! them. The handler, listener, chain and TLS settings of such a service are not built at all
//! (they may name what is missing); `/ready` reports the service and its reason.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use crate::component::{ConnCtx, Handler, HandlerError, Inbound, Listener};

/// Service metadata key carrying the reason.
pub const KEY: &str = "failClosed";

/// Listener types whose address is bound on the far side of a chain.
const REMOTE_LISTENERS: &[&str] = &["rtcp", "rudp"];
/// Listener types that receive datagrams.
const UDP_LISTENERS: &[&str] = &["udp"];

/// How a fail-closed service is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bind {
    /// A plain TCP listener on the service address.
    Tcp,
    /// A plain UDP listener on the service address.
    Udp,
    /// Nothing (reverse listeners).
    Nothing,
}

/// The bind of a fail-closed service with listener type `ltype` (empty: `tcp`).
pub fn bind_for(ltype: &str) -> Bind {
    if REMOTE_LISTENERS.contains(&ltype) {
        Bind::Nothing
    } else if UDP_LISTENERS.contains(&ltype) {
        Bind::Udp
    } else {
        Bind::Tcp
    }
}

/// Refuses every connection, logging the reason (at most once a second per service, with the
/// number refused since the last line, so a flood of datagrams cannot flood the log).
pub struct Refuse {
    reason: Arc<str>,
    refused: AtomicU64,
    last_log: AtomicU64,
}

impl Refuse {
    /// A handler refusing with `reason`.
    pub fn new(reason: &str) -> Arc<Refuse> {
        Arc::new(Refuse {
            reason: Arc::from(reason),
            refused: AtomicU64::new(0),
            last_log: AtomicU64::new(0),
        })
    }
}

#[async_trait]
impl Handler for Refuse {
    async fn handle(&self, conn: Inbound, ctx: ConnCtx) -> Result<(), HandlerError> {
        drop(conn);
        self.refused.fetch_add(1, Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let last = self.last_log.load(Ordering::Relaxed);
        if now > last
            && self
                .last_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let n = self.refused.swap(0, Ordering::Relaxed).max(1);
            tracing::warn!(service = %ctx.service, client = %ctx.src, refused = n, reason = %self.reason, "connection refused: service failed closed");
        }
        Err(HandlerError::Unsupported(format!(
            "service failed closed: {}",
            self.reason
        )))
    }
}

/// A listener that never accepts (the "bound" form of a reverse listener that failed closed).
pub struct Parked;

#[async_trait]
impl Listener for Parked {
    async fn accept(&self) -> io::Result<(Inbound, SocketAddr)> {
        std::future::pending().await
    }

    fn local_addr(&self) -> SocketAddr {
        SocketAddr::from(([0, 0, 0, 0], 0))
    }
}
