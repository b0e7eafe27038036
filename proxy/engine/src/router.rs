//! The router: how a handler reaches a target. Resolves the target with the service's hosts
//! mapper and resolver, builds a route through the service's chain, connects, and retries
//! (each retry re-runs node selection, so retries fail over). Without a chain (or when the
//! route is empty) the target is reached through the direct transport, a dialer and a
//! connector taken from the registry like any chain node's.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::chain::{bind_route, connect_route, Lookup, SelectCtx};
use crate::component::{Bound, Connector, DialOpts, Dialer, Route};
use crate::error::DialError;
use crate::io::{Outbound, UdpPacket};
use crate::store::Store;

/// Default per-attempt timeout (GOST `dialTimeout`).
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(15);

/// How a target is reached without a proxy: TCP through a dialer and a connector (the
/// registry's `tcp` and `forward`), UDP through a local socket.
#[derive(Clone)]
pub struct Direct {
    /// Opens the connection.
    pub dialer: Arc<dyn Dialer>,
    /// Passes it on.
    pub connector: Arc<dyn Connector>,
}

/// A service's router.
#[derive(Clone)]
pub struct Router {
    /// Named instances.
    pub store: Arc<Store>,
    /// Chain name (`None`: direct, also when `ignoreChain` is set).
    pub chain: Option<String>,
    /// Hosts mapper name for targets.
    pub hosts: Option<String>,
    /// Resolver name for targets.
    pub resolver: Option<String>,
    /// Extra attempts.
    pub retries: u32,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// The direct transport.
    pub direct: Direct,
}

// === impl Router ===

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("chain", &self.chain)
            .field("hosts", &self.hosts)
            .field("resolver", &self.resolver)
            .field("retries", &self.retries)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[async_trait]
impl Route for Router {
    /// Opens `network` (`tcp`, `udp`) to `addr` through the chain, with retries.
    async fn dial(
        &self,
        network: &str,
        addr: &str,
        hash_key: Option<String>,
    ) -> Result<Outbound, DialError> {
        let span = tracing::Span::current();
        span.record("dst", addr);
        span.record("route", self.chain.as_deref().unwrap_or("direct"));
        let attempts = self.retries.saturating_add(1);
        let mut last = DialError::NoNode;
        for i in 0..attempts {
            match tokio::time::timeout(
                self.timeout,
                self.dial_once(network, addr, hash_key.clone()),
            )
            .await
            {
                Ok(Ok(c)) => return Ok(c),
                Ok(Err(e @ (DialError::Bypassed(_) | DialError::Config(_)))) => return Err(e),
                Ok(Err(e)) => {
                    tracing::debug!(retry = i, target = %addr, error = %e, "route failed");
                    last = e;
                }
                Err(_) => {
                    tracing::debug!(retry = i, target = %addr, "route timed out");
                    last = DialError::Timeout(addr.to_string());
                }
            }
        }
        Err(last)
    }

    /// Asks the chain's last node to bind `addr` for `network` (`rtcp`/`rudp`). `Ok(None)`
    /// when there is no chain or the route is empty: the caller binds locally.
    async fn bind(&self, network: &str, addr: &str) -> Result<Option<Bound>, DialError> {
        let Some(name) = &self.chain else {
            return Ok(None);
        };
        let chain = self.store.chains.get(name).ok_or_else(|| {
            DialError::Config(format!("chain {name} not found (refusing to bind locally)"))
        })?;
        let ctx = SelectCtx {
            network: network.to_string(),
            addr: addr.to_string(),
            hash_key: None,
        };
        let route = chain.route(&*self.store, &ctx)?;
        if route.is_empty() {
            return Ok(None);
        }
        let opts = DialOpts {
            timeout: Some(self.timeout),
        };
        tokio::time::timeout(
            self.timeout,
            bind_route(&*self.store, &route, network, addr, &opts),
        )
        .await
        .map_err(|_| DialError::Timeout(addr.to_string()))?
        .map(Some)
    }

    fn has_chain(&self) -> bool {
        self.chain.is_some()
    }
}

impl Router {
    async fn dial_once(
        &self,
        network: &str,
        addr: &str,
        hash_key: Option<String>,
    ) -> Result<Outbound, DialError> {
        let target = if addr.is_empty() {
            String::new()
        } else {
            self.store
                .resolve(self.hosts.as_deref(), self.resolver.as_deref(), addr)
                .await?
        };
        let opts = DialOpts {
            timeout: Some(self.timeout),
        };
        let route = match &self.chain {
            None => Vec::new(),
            Some(name) => {
                let chain = self.store.chains.get(name).ok_or_else(|| {
                    DialError::Config(format!("chain {name} not found (refusing to go direct)"))
                })?;
                let ctx = SelectCtx {
                    network: network.to_string(),
                    addr: target.clone(),
                    hash_key,
                };
                chain.route(&*self.store, &ctx)?
            }
        };
        if route.is_empty() {
            return self.dial_direct(network, &target, &opts).await;
        }
        connect_route(&*self.store, &route, network, &target, &opts).await
    }

    /// Direct connection without a proxy.
    async fn dial_direct(
        &self,
        network: &str,
        addr: &str,
        opts: &DialOpts,
    ) -> Result<Outbound, DialError> {
        if network.starts_with("udp") {
            let sock = crate::io::bind_udp_any()
                .await
                .map_err(|e| DialError::io(addr, e))?;
            if self.hosts.is_none() && self.resolver.is_none() {
                return Ok(Outbound::Packet(Arc::new(UdpPacket(sock))));
            }
            // Handlers send to the names their clients gave (the dialled one, or any for a
            // UDP association): each datagram's target goes through the same hosts mapper
            // and resolver as the dial itself.
            return Ok(Outbound::Packet(Arc::new(ResolvingPacket {
                inner: UdpPacket(sock),
                router: self.clone(),
            })));
        }
        let conn = self.direct.dialer.dial(addr, opts).await.map_err(|e| {
            // the dial's own deadline (an OS-level ETIMEDOUT stays an I/O error)
            if e.kind() == std::io::ErrorKind::TimedOut && e.get_ref().is_some() {
                DialError::Timeout(addr.to_string())
            } else {
                DialError::io(addr, e)
            }
        })?;
        self.direct.connector.connect(conn, network, addr).await
    }
}

/// A direct UDP socket whose datagram targets are resolved with the service's hosts mapper
/// and resolver, like every TCP target (a name only the hosts mapper knows must work for UDP
/// too).
struct ResolvingPacket {
    inner: UdpPacket,
    router: Router,
}

#[async_trait]
impl crate::io::PacketConn for ResolvingPacket {
    async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, String)> {
        self.inner.recv_from(buf).await
    }

    async fn send_to(&self, buf: &[u8], addr: &str) -> std::io::Result<usize> {
        let r = &self.router;
        let target = r
            .store
            .resolve(r.hosts.as_deref(), r.resolver.as_deref(), addr)
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        self.inner.send_to(buf, &target).await
    }
}
