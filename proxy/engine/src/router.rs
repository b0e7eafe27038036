//! The router: how a handler reaches a target. Resolves the target with the service's hosts
//! mapper and resolver, builds a route through the service's chain, connects, and retries
//! (each retry re-runs node selection, so retries fail over).

use std::sync::Arc;
use std::time::Duration;

use crate::addr::{join_host_port, split_host_port};
use crate::chain::{bind_route, connect_route, Bound, DialOpts, SelectCtx};
use crate::error::DialError;
use crate::io::{Outbound, UdpPacket};
use crate::store::Store;

/// Default per-attempt timeout (GOST `dialTimeout`).
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(15);

/// A service's router.
#[derive(Debug, Clone)]
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
}

impl Router {
    /// A direct router with no chain.
    pub fn direct(store: Arc<Store>) -> Router {
        Router {
            store,
            chain: None,
            hosts: None,
            resolver: None,
            retries: 0,
            timeout: DEFAULT_DIAL_TIMEOUT,
        }
    }

    /// Opens `network` (`tcp`, `udp`) to `addr` through the chain, with retries.
    pub async fn dial(
        &self,
        network: &str,
        addr: &str,
        hash_key: Option<String>,
    ) -> Result<Outbound, DialError> {
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
    pub async fn bind(&self, network: &str, addr: &str) -> Result<Option<Bound>, DialError> {
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
        let route = chain.route(&self.store, &ctx)?;
        if route.is_empty() {
            return Ok(None);
        }
        let opts = DialOpts {
            timeout: Some(self.timeout),
        };
        tokio::time::timeout(
            self.timeout,
            bind_route(&self.store, &route, network, addr, &opts),
        )
        .await
        .map_err(|_| DialError::Timeout(addr.to_string()))?
        .map(Some)
    }

    async fn dial_once(
        &self,
        network: &str,
        addr: &str,
        hash_key: Option<String>,
    ) -> Result<Outbound, DialError> {
        let target = if addr.is_empty() {
            String::new()
        } else {
            resolve_with(
                &self.store,
                self.hosts.as_deref(),
                self.resolver.as_deref(),
                addr,
            )
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
                let r = chain.route(&self.store, &ctx);
                match &r {
                    Ok(nodes) if !nodes.is_empty() => chain.marker.reset(),
                    _ => {}
                }
                r?
            }
        };
        if route.is_empty() {
            return dial_direct(network, &target, &opts).await;
        }
        connect_route(&self.store, &route, network, &target, &opts).await
    }
}

/// Resolves the host part of `addr` with a hosts mapper then a resolver (names looked up in
/// `store`); without either, returns `addr` unchanged. A dangling name is an error.
pub async fn resolve_with(
    store: &Store,
    hosts: Option<&str>,
    resolver: Option<&str>,
    addr: &str,
) -> Result<String, DialError> {
    if hosts.is_none() && resolver.is_none() {
        return Ok(addr.to_string());
    }
    let Some((host, port)) = split_host_port(addr) else {
        return Ok(addr.to_string());
    };
    if host.is_empty() || host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(addr.to_string());
    }
    if let Some(h) = hosts {
        let m = store
            .hosts
            .get(h)
            .ok_or_else(|| DialError::Config(format!("hosts {h} not found")))?;
        if let Some(ip) = m.lookup(host) {
            return Ok(join_host_port(&ip.to_string(), port));
        }
    }
    if let Some(r) = resolver {
        let res = store
            .resolvers
            .get(r)
            .ok_or_else(|| DialError::Config(format!("resolver {r} not found")))?;
        let ip = res
            .resolve(host)
            .await
            .map_err(|e| DialError::io(addr, e))?;
        return Ok(join_host_port(&ip.to_string(), port));
    }
    Ok(addr.to_string())
}

/// Direct connection without a proxy.
pub async fn dial_direct(
    network: &str,
    addr: &str,
    opts: &DialOpts,
) -> Result<Outbound, DialError> {
    if network.starts_with("udp") {
        let sock = tokio::net::UdpSocket::bind("[::]:0")
            .await
            .or(tokio::net::UdpSocket::bind("0.0.0.0:0").await)
            .map_err(|e| DialError::io(addr, e))?;
        return Ok(Outbound::Packet(Arc::new(UdpPacket(sock))));
    }
    let fut = tokio::net::TcpStream::connect(addr);
    let s = match opts.timeout {
        Some(t) => tokio::time::timeout(t, fut)
            .await
            .map_err(|_| DialError::Timeout(addr.to_string()))?,
        None => fut.await,
    }
    .map_err(|e| DialError::io(addr, e))?;
    let _ = s.set_nodelay(true);
    Ok(Outbound::Stream(Box::new(s)))
}
