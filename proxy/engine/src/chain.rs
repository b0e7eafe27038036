//! Chains, hops, nodes and selectors, and how a route is built and connected hop by hop.
//!
//! A chain is an ordered list of hops; a hop is a group of nodes plus a selector; a node is an
//! address + dialer (how bytes reach it) + connector (which proxy protocol it speaks). One
//! request produces one route: one node per hop, chosen at request time. Only the first node's
//! dialer opens a socket; every later node is reached through the previous node's `connect`,
//! then gets its own dialer handshake and connector handshake (GOST `chainRoute.connect`).

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::component::{Bound, Connector, DialOpts, Dialer, Target, Targets, Underlay};
use crate::error::DialError;
use crate::io::{BoxStream, Outbound};

/// What routes look up by name at use time (implemented by the store), so a replaced object
/// is seen by the next connection.
#[async_trait]
pub trait Lookup: Send + Sync {
    /// The top-level hop `name`.
    fn hop(&self, name: &str) -> Option<Arc<Hop>>;
    /// Whether the bypasses `names` refuse `network`/`addr` (GOST's group rule; a missing
    /// name refuses, fail closed).
    fn bypassed(&self, names: &[String], network: &str, addr: &str) -> bool;
    /// Resolves the host of `addr` with the named hosts mapper and resolver (unchanged
    /// without either); a dangling name is an error.
    async fn resolve(
        &self,
        hosts: Option<&str>,
        resolver: Option<&str>,
        addr: &str,
    ) -> Result<String, DialError>;
}

/// A set of bypass names (service, hop or node level).
#[derive(Debug, Clone, Default)]
pub struct BypassRef(pub Vec<String>);

impl BypassRef {
    /// Whether the named bypasses refuse `network`/`addr` (nothing is refused without names).
    pub fn bypass(&self, names: &dyn Lookup, network: &str, addr: &str) -> bool {
        !self.0.is_empty() && names.bypassed(&self.0, network, addr)
    }
}

/// Failure marker of a node (or chain): a count and the time of the last failure.
#[derive(Debug, Default)]
pub struct Marker {
    state: Mutex<(u32, Option<Instant>)>,
}

impl Marker {
    /// Records a failure.
    pub fn mark(&self) {
        let mut s = self.state.lock();
        s.0 = s.0.saturating_add(1);
        s.1 = Some(Instant::now());
    }
    /// Records a success.
    pub fn reset(&self) {
        self.state.lock().0 = 0;
    }
    /// Failed iff `count >= max_fails` and the last failure is younger than `fail_timeout`.
    pub fn is_failed(&self, max_fails: u32, fail_timeout: Duration) -> bool {
        let s = self.state.lock();
        s.0 >= max_fails && s.1.is_some_and(|t| t.elapsed() < fail_timeout)
    }
}

/// Selector strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Round robin over the filtered list.
    Round,
    /// Weighted random.
    Rand,
    /// First healthy node in configuration order.
    Fifo,
    /// CRC-32 of the client id / client IP / target host.
    Hash,
}

impl Strategy {
    /// Parses GOST's strategy strings; unknown values are round-robin (as in GOST), but we
    /// report them so typos are visible.
    pub fn parse(s: &str) -> Result<Strategy, String> {
        match s.to_ascii_lowercase().as_str() {
            "" | "round" | "rr" => Ok(Strategy::Round),
            "rand" | "random" => Ok(Strategy::Rand),
            "fifo" | "ha" => Ok(Strategy::Fifo),
            "hash" => Ok(Strategy::Hash),
            other => Err(format!(
                "unknown strategy {other:?} (accepted: round, rr, rand, random, fifo, ha, hash)"
            )),
        }
    }
}

/// A hop's node selector.
#[derive(Debug)]
pub struct Selector {
    /// Strategy.
    pub strategy: Strategy,
    /// Failures before a node is skipped (≥1).
    pub max_fails: u32,
    /// How long a failed node is skipped.
    pub fail_timeout: Duration,
    counter: AtomicUsize,
}

impl Selector {
    /// A selector; `max_fails` ≤ 0 → 1, zero `fail_timeout` → 10 s (GOST defaults).
    pub fn new(strategy: Strategy, max_fails: i64, fail_timeout: Option<Duration>) -> Selector {
        Selector {
            strategy,
            max_fails: u32::try_from(max_fails)
                .ok()
                .filter(|m| *m > 0)
                .unwrap_or(1),
            fail_timeout: fail_timeout
                .filter(|d| !d.is_zero())
                .unwrap_or(Duration::from_secs(10)),
            counter: AtomicUsize::new(0),
        }
    }
}

impl Default for Selector {
    fn default() -> Self {
        Selector::new(Strategy::Round, 1, None)
    }
}

/// Request facts used by selection.
#[derive(Debug, Clone, Default)]
pub struct SelectCtx {
    /// `tcp` or `udp`.
    pub network: String,
    /// Target address (after service resolution).
    pub addr: String,
    /// Hash key for the `hash` strategy (client id, client IP or target host).
    pub hash_key: Option<String>,
}

/// A chain node or forwarder target.
pub struct Node {
    /// Node name.
    pub name: String,
    /// `host:port`.
    pub addr: String,
    /// Network override for forward targets.
    pub network: Option<String>,
    /// Transport.
    pub dialer: Arc<dyn Dialer>,
    /// Proxy protocol.
    pub connector: Arc<dyn Connector>,
    /// Node-level bypass.
    pub bypass: BypassRef,
    /// Hosts mapper for the node address.
    pub hosts: Option<String>,
    /// Resolver for the node address.
    pub resolver: Option<String>,
    /// Failure marker.
    pub marker: Marker,
    /// Weight for `rand` (≥1).
    pub weight: u32,
    /// Backup node: used only when no non-backup node is left.
    pub backup: bool,
    /// Per-node override of the selector's `maxFails`.
    pub max_fails: Option<u32>,
    /// Per-node override of the selector's `failTimeout`.
    pub fail_timeout: Option<Duration>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .finish()
    }
}

/// A group of nodes with a selector.
#[derive(Debug)]
pub struct Hop {
    /// Hop name.
    pub name: String,
    /// Node selector.
    pub selector: Selector,
    /// Hop-level bypass (cuts the chain before this hop).
    pub bypass: BypassRef,
    /// Nodes in configuration order.
    pub nodes: Vec<Arc<Node>>,
}

impl Hop {
    fn is_failed(&self, n: &Node) -> bool {
        n.marker.is_failed(
            n.max_fails.unwrap_or(self.selector.max_fails),
            n.fail_timeout.unwrap_or(self.selector.fail_timeout),
        )
    }

    /// Picks one node for the request, or `None` (hop bypassed or no node eligible).
    /// Failed nodes are skipped; when every eligible node is failed the first of them is
    /// returned as a last resort (GOST HEAD behaviour: a hop never goes empty because of
    /// failures, so traffic never silently leaves the chain).
    pub fn select(&self, store: &dyn Lookup, ctx: &SelectCtx) -> Option<Arc<Node>> {
        if self.bypass.bypass(store, &ctx.network, &ctx.addr) {
            return None;
        }
        let eligible: Vec<&Arc<Node>> = self
            .nodes
            .iter()
            .filter(|n| !n.bypass.bypass(store, &ctx.network, &ctx.addr))
            .collect();
        if eligible.is_empty() {
            return None;
        }
        let healthy: Vec<&Arc<Node>> = eligible
            .iter()
            .copied()
            .filter(|n| !self.is_failed(n))
            .collect();
        if healthy.is_empty() {
            return eligible.first().map(|n| Arc::clone(n));
        }
        let primaries: Vec<&Arc<Node>> = healthy.iter().copied().filter(|n| !n.backup).collect();
        let list = if primaries.is_empty() {
            healthy
        } else {
            primaries
        };
        let pick = match self.selector.strategy {
            Strategy::Round => {
                let n = self.selector.counter.fetch_add(1, Ordering::Relaxed);
                list[n % list.len()]
            }
            Strategy::Fifo => list[0],
            Strategy::Rand => {
                let total: u64 = list.iter().map(|n| u64::from(n.weight.max(1))).sum();
                let mut r = rand::random::<u64>() % total.max(1);
                let mut chosen = list[0];
                for n in &list {
                    let w = u64::from(n.weight.max(1));
                    if r < w {
                        chosen = n;
                        break;
                    }
                    r -= w;
                }
                chosen
            }
            Strategy::Hash => match &ctx.hash_key {
                Some(k) => list[(crc32fast::hash(k.as_bytes()) as usize) % list.len()],
                None => list[rand::random::<u32>() as usize % list.len()],
            },
        };
        Some(Arc::clone(pick))
    }
}

/// A hop inside a chain: inline, or a reference to a top-level hop resolved at use time.
#[derive(Debug)]
pub enum HopRef {
    /// Inline hop owned by the chain.
    Inline(Arc<Hop>),
    /// Reference by name to `hops[]`.
    Named(String),
}

/// A service's forwarder targets: its own inline hop, or a top-level hop looked up by name at
/// use time (so a changed hop applies to the next connection).
#[derive(Debug, Clone)]
pub enum Forwarder {
    /// `forwarder.nodes`.
    Inline(Arc<Hop>),
    /// `forwarder.hop`.
    Named(String),
}

impl Forwarder {
    /// The hop to select a target from; a missing named hop is an error (fail closed).
    pub fn hop(&self, store: &dyn Lookup) -> Result<Arc<Hop>, DialError> {
        match self {
            Forwarder::Inline(h) => Ok(Arc::clone(h)),
            Forwarder::Named(n) => store
                .hop(n)
                .ok_or_else(|| DialError::Config(format!("forwarder hop {n} not found"))),
        }
    }
}

/// A forwarder with what it looks up: the handlers' [`Targets`].
pub struct ForwarderTargets {
    /// The forwarder.
    pub forwarder: Forwarder,
    /// Where named hops and bypasses are looked up.
    pub names: Arc<dyn Lookup>,
}

impl Targets for ForwarderTargets {
    fn select(
        &self,
        network: &str,
        hash_key: Option<String>,
    ) -> Result<Arc<dyn Target>, DialError> {
        let hop = self.forwarder.hop(&*self.names)?;
        let sel = SelectCtx {
            network: network.to_string(),
            addr: String::new(),
            hash_key,
        };
        let node = hop.select(&*self.names, &sel).ok_or(DialError::NoNode)?;
        Ok(node)
    }
}

// === impl Node ===

impl Target for Node {
    fn addr(&self) -> &str {
        &self.addr
    }
    fn network(&self) -> Option<&str> {
        self.network.as_deref()
    }
    fn mark_failed(&self) {
        self.marker.mark();
    }
    fn mark_ok(&self) {
        self.marker.reset();
    }
}

/// A named chain.
#[derive(Debug)]
pub struct Chain {
    /// Chain name.
    pub name: String,
    /// Hops in order.
    pub hops: Vec<HopRef>,
}

impl Chain {
    /// Builds a route: one node per hop; a hop that yields nothing cuts the chain there.
    /// A dangling hop reference is an error (fail closed, unlike GOST's direct connection).
    pub fn route(&self, store: &dyn Lookup, ctx: &SelectCtx) -> Result<Vec<Arc<Node>>, DialError> {
        let mut route = Vec::with_capacity(self.hops.len());
        for h in &self.hops {
            let hop = match h {
                HopRef::Inline(h) => Arc::clone(h),
                HopRef::Named(n) => store.hop(n).ok_or_else(|| {
                    DialError::Config(format!(
                        "chain {}: hop {n} not found (refusing to go direct)",
                        self.name
                    ))
                })?,
            };
            match hop.select(store, ctx) {
                Some(node) => route.push(node),
                None => break,
            }
        }
        Ok(route)
    }
}

/// Resolves a node's address with its hosts/resolver (system resolution is left to the dialer).
async fn resolve_node_addr(store: &dyn Lookup, node: &Node) -> Result<String, DialError> {
    store
        .resolve(node.hosts.as_deref(), node.resolver.as_deref(), &node.addr)
        .await
}

/// Connects through a route and asks the last node for `network`/`target`.
pub async fn connect_route(
    store: &dyn Lookup,
    route: &[Arc<Node>],
    network: &str,
    target: &str,
    opts: &DialOpts,
) -> Result<Outbound, DialError> {
    let (conn, last) = establish(store, route, opts).await?;
    last.connector.connect(conn, network, target).await
}

/// Connects through a route and asks the last node to bind `addr` (reverse forwarding).
pub async fn bind_route(
    store: &dyn Lookup,
    route: &[Arc<Node>],
    network: &str,
    addr: &str,
    opts: &DialOpts,
) -> Result<Bound, DialError> {
    let (conn, last) = establish(store, route, opts).await?;
    last.connector.bind(conn, network, addr).await
}

/// Opens the first node's transport: plain dial + handshake, or for a multiplexing dialer a
/// stream of its session, whose raw connection is a TCP dial or, when `prefix` is not empty,
/// a connection through the nodes before it (GOST's route split).
async fn first_transport(
    store: &dyn Lookup,
    prefix: &[Arc<Node>],
    node: &Node,
    addr: &str,
    opts: &DialOpts,
) -> io::Result<BoxStream> {
    if !node.dialer.multiplex() {
        let c = node.dialer.dial(addr, opts).await?;
        return node.dialer.handshake(c, addr).await;
    }
    let underlay: Underlay<'_> = if prefix.is_empty() {
        Box::pin(async move {
            let s = crate::io::connect_tcp(addr, opts.timeout).await?;
            Ok(Box::new(s) as BoxStream)
        })
    } else {
        let inner = connect_prefix(store, prefix, addr, opts);
        Box::pin(async move { inner.await?.into_stream() })
    };
    node.dialer.dial_mux(addr, underlay).await
}

/// `connect_route(prefix, "tcp", addr)` with an explicit boxed type (breaks the recursion).
fn connect_prefix<'a>(
    store: &'a dyn Lookup,
    prefix: &'a [Arc<Node>],
    addr: &'a str,
    opts: &'a DialOpts,
) -> futures::future::BoxFuture<'a, Result<Outbound, DialError>> {
    Box::pin(async move {
        let (conn, last) = establish(store, prefix, opts).await?;
        last.connector.connect(conn, "tcp", addr).await
    })
}

/// Connects hop by hop up to the last node (its connector handshake done).
async fn establish<'r>(
    store: &dyn Lookup,
    route: &'r [Arc<Node>],
    opts: &DialOpts,
) -> Result<(BoxStream, &'r Arc<Node>), DialError> {
    let (prefix, route) = match route.iter().rposition(|n| n.dialer.multiplex()) {
        Some(k) => route.split_at(k),
        None => (&route[..0], route),
    };
    let Some((first, rest)) = route.split_first() else {
        return Err(DialError::Config("empty route".into()));
    };
    let a0 = resolve_node_addr(store, first)
        .await
        .inspect_err(|_| first.marker.mark())?;
    let step = async {
        let c = first_transport(store, prefix, first, &a0, opts).await?;
        first.connector.handshake(c).await
    };
    let mut conn = match step.await {
        Ok(c) => {
            first.marker.reset();
            c
        }
        Err(e) => {
            first.marker.mark();
            return Err(DialError::io(
                format!("node {} ({})", first.name, first.addr),
                e,
            ));
        }
    };
    let mut prev = first;
    for node in rest {
        let ak = resolve_node_addr(store, node)
            .await
            .inspect_err(|_| node.marker.mark())?;
        let next = match prev.connector.connect(conn, "tcp", &ak).await {
            Ok(o) => o.into_stream().map_err(|e| DialError::io(&ak, e)),
            Err(e) => Err(e),
        };
        let c = match next {
            Ok(c) => c,
            Err(e) => {
                node.marker.mark();
                return Err(e);
            }
        };
        let step = async {
            let c = node.dialer.handshake(c, &ak).await?;
            node.connector.handshake(c).await
        };
        conn = match step.await {
            Ok(c) => {
                node.marker.reset();
                c
            }
            Err(e) => {
                node.marker.mark();
                return Err(DialError::io(
                    format!("node {} ({})", node.name, node.addr),
                    e,
                ));
            }
        };
        prev = node;
    }
    Ok((conn, prev))
}

#[cfg(test)]
mod tests;
