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

use crate::error::DialError;
use crate::io::{BoxStream, Outbound};
use crate::store::{BypassRef, Store};

/// Socket options for the first dial of a route or a direct dial.
#[derive(Debug, Clone, Default)]
pub struct DialOpts {
    /// Per-attempt timeout.
    pub timeout: Option<Duration>,
}

/// The raw connection a multiplexing dialer builds a new session on: a TCP dial, or the part
/// of the route before the node (GOST's route split). Only polled when a session is needed.
pub type Underlay<'a> = futures::future::BoxFuture<'a, io::Result<BoxStream>>;

/// How bytes reach a node (GOST "dialer"): `tcp`, `tls`, `ws`, ….
#[async_trait]
pub trait Dialer: Send + Sync {
    /// Opens the transport to `addr` (only ever called for the first node of a route).
    async fn dial(&self, addr: &str, opts: &DialOpts) -> io::Result<BoxStream>;
    /// Runs the transport handshake (TLS, WebSocket upgrade, …) over an existing stream.
    async fn handshake(&self, conn: BoxStream, _addr: &str) -> io::Result<BoxStream> {
        Ok(conn)
    }
    /// Multiplexing dialers (`mtls`, `mws`, `mwss`) keep one session per node address; the
    /// route before such a node is carried inside its transport (engine spec §3.2).
    fn multiplex(&self) -> bool {
        false
    }
    /// Multiplexing dialers: a new stream of the session for `addr`, creating the session
    /// (transport handshake + smux) over `underlay` when none is alive.
    async fn dial_mux(&self, addr: &str, _underlay: Underlay<'_>) -> io::Result<BoxStream> {
        Err(io::Error::other(format!(
            "dialer for {addr} does not multiplex"
        )))
    }
}

/// Accepts connections arriving on a port bound by a remote node (reverse forwarding).
#[async_trait]
pub trait Accept: Send + Sync {
    /// The next connection and its peer address.
    async fn accept(&self) -> io::Result<(BoxStream, String)>;
    /// The bound address as reported by the node.
    fn addr(&self) -> String;
}

/// What [`Connector::bind`] returns.
pub enum Bound {
    /// TCP: inbound connections.
    Stream(Box<dyn Accept>),
    /// UDP: datagrams with peer addresses, and the bound address.
    Packet(Arc<dyn crate::io::PacketConn>, String),
}

/// Which proxy protocol a node speaks (GOST "connector"): `http`, `socks5`, `forward`, ….
#[async_trait]
pub trait Connector: Send + Sync {
    /// Per-connection protocol handshake (e.g. SOCKS5 method negotiation).
    async fn handshake(&self, conn: BoxStream) -> io::Result<BoxStream> {
        Ok(conn)
    }
    /// Asks the node to open `network` (`tcp`/`udp`) to `addr`.
    async fn connect(
        &self,
        conn: BoxStream,
        network: &str,
        addr: &str,
    ) -> Result<Outbound, DialError>;
    /// Asks the node to listen on `addr` for `network` and hand over what arrives there
    /// (`rtcp`/`rudp`). Only some connectors support it (`relay`, `socks5`).
    async fn bind(&self, _conn: BoxStream, network: &str, addr: &str) -> Result<Bound, DialError> {
        Err(DialError::Upstream(format!(
            "bind {network} {addr}: this connector does not support binding"
        )))
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
    pub fn select(&self, store: &Store, ctx: &SelectCtx) -> Option<Arc<Node>> {
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
    pub fn hop(&self, store: &Store) -> Result<Arc<Hop>, DialError> {
        match self {
            Forwarder::Inline(h) => Ok(Arc::clone(h)),
            Forwarder::Named(n) => store
                .hops
                .get(n)
                .ok_or_else(|| DialError::Config(format!("forwarder hop {n} not found"))),
        }
    }
}

/// A named chain.
#[derive(Debug)]
pub struct Chain {
    /// Chain name.
    pub name: String,
    /// Hops in order.
    pub hops: Vec<HopRef>,
    /// Chain-level marker (for chain groups).
    pub marker: Marker,
}

impl Chain {
    /// Builds a route: one node per hop; a hop that yields nothing cuts the chain there.
    /// A dangling hop reference is an error (fail closed, unlike GOST's direct connection).
    pub fn route(&self, store: &Store, ctx: &SelectCtx) -> Result<Vec<Arc<Node>>, DialError> {
        let mut route = Vec::with_capacity(self.hops.len());
        for h in &self.hops {
            let hop = match h {
                HopRef::Inline(h) => Arc::clone(h),
                HopRef::Named(n) => store.hops.get(n).ok_or_else(|| {
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
async fn resolve_node_addr(store: &Store, node: &Node) -> Result<String, DialError> {
    crate::router::resolve_with(
        store,
        node.hosts.as_deref(),
        node.resolver.as_deref(),
        &node.addr,
    )
    .await
}

/// Connects through a route and asks the last node for `network`/`target`.
pub async fn connect_route(
    store: &Store,
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
    store: &Store,
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
    store: &Store,
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
            let s = crate::dialer::tcp::connect(addr, opts).await?;
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
    store: &'a Store,
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
    store: &Store,
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
mod tests {
    use super::*;

    struct Nop;
    #[async_trait]
    impl Dialer for Nop {
        async fn dial(&self, _: &str, _: &DialOpts) -> io::Result<BoxStream> {
            Err(io::Error::other("nop"))
        }
    }
    #[async_trait]
    impl Connector for Nop {
        async fn connect(&self, _: BoxStream, _: &str, _: &str) -> Result<Outbound, DialError> {
            Err(DialError::NoNode)
        }
    }

    fn node(name: &str, backup: bool) -> Arc<Node> {
        Arc::new(Node {
            name: name.into(),
            addr: format!("{name}:1"),
            network: None,
            dialer: Arc::new(Nop),
            connector: Arc::new(Nop),
            bypass: BypassRef::default(),
            hosts: None,
            resolver: None,
            marker: Marker::default(),
            weight: 1,
            backup,
            max_fails: None,
            fail_timeout: None,
        })
    }

    fn hop(strategy: Strategy, nodes: Vec<Arc<Node>>) -> Hop {
        Hop {
            name: "h".into(),
            selector: Selector::new(strategy, 1, Some(Duration::from_secs(10))),
            bypass: BypassRef::default(),
            nodes,
        }
    }

    #[test]
    fn round_robin_distributes_evenly() {
        let store = Store::default();
        let h = hop(
            Strategy::Round,
            vec![node("a", false), node("b", false), node("c", false)],
        );
        let mut counts = std::collections::HashMap::new();
        for _ in 0..300 {
            let n = h.select(&store, &SelectCtx::default()).unwrap();
            *counts.entry(n.name.clone()).or_insert(0) += 1;
        }
        assert_eq!(
            counts.values().copied().collect::<Vec<_>>(),
            vec![100, 100, 100]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn fifo_fails_over_and_recovers_after_fail_timeout() {
        let store = Store::default();
        let h = hop(Strategy::Fifo, vec![node("a", false), node("b", false)]);
        let ctx = SelectCtx::default();
        assert_eq!(h.select(&store, &ctx).unwrap().name, "a");
        h.nodes[0].marker.mark();
        assert_eq!(h.select(&store, &ctx).unwrap().name, "b");
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(h.select(&store, &ctx).unwrap().name, "a");
    }

    #[tokio::test(start_paused = true)]
    async fn all_failed_returns_last_resort_node() {
        let store = Store::default();
        let h = hop(Strategy::Round, vec![node("a", false), node("b", false)]);
        h.nodes[0].marker.mark();
        h.nodes[1].marker.mark();
        assert_eq!(h.select(&store, &SelectCtx::default()).unwrap().name, "a");
    }

    #[test]
    fn hash_is_sticky_per_key_and_backup_only_as_fallback() {
        let store = Store::default();
        let h = hop(
            Strategy::Hash,
            vec![node("a", false), node("b", false), node("c", false)],
        );
        let ctx = SelectCtx {
            hash_key: Some("10.0.0.7".into()),
            ..Default::default()
        };
        let first = h.select(&store, &ctx).unwrap().name.clone();
        for _ in 0..20 {
            assert_eq!(h.select(&store, &ctx).unwrap().name, first);
        }
        let hb = hop(Strategy::Round, vec![node("p", false), node("bk", true)]);
        for _ in 0..5 {
            assert_eq!(hb.select(&store, &SelectCtx::default()).unwrap().name, "p");
        }
    }

    fn store_with_bypass(name: &str, matchers: &[&str]) -> Store {
        let store = Store::default();
        let c = gost_config::MatcherListConfig {
            name: name.into(),
            matchers: matchers.iter().map(|m| m.to_string()).collect(),
            ..Default::default()
        };
        store.bypasses.set(
            name,
            Arc::new(crate::policy::MatcherList::build("b", &c, false).unwrap()),
        );
        store
    }

    fn ctx(addr: &str) -> SelectCtx {
        SelectCtx {
            network: "tcp".into(),
            addr: addr.into(),
            hash_key: None,
        }
    }

    #[test]
    fn hop_bypass_cuts_the_chain_before_that_hop() {
        let store = store_with_bypass("intranet", &["*.corp.test"]);
        let mut h1 = hop(Strategy::Round, vec![node("second", false)]);
        h1.bypass = BypassRef(vec!["intranet".into()]);
        let chain = Chain {
            name: "c".into(),
            hops: vec![
                HopRef::Inline(Arc::new(hop(Strategy::Round, vec![node("first", false)]))),
                HopRef::Inline(Arc::new(h1)),
            ],
            marker: Marker::default(),
        };
        let names = |addr: &str| -> Vec<String> {
            chain
                .route(&store, &ctx(addr))
                .unwrap()
                .iter()
                .map(|n| n.name.clone())
                .collect()
        };
        assert_eq!(names("www.example.test:80"), vec!["first", "second"]);
        assert_eq!(names("db.corp.test:5432"), vec!["first"]);
    }

    #[test]
    fn node_bypass_excludes_only_that_node() {
        let store = store_with_bypass("no-a", &["*.a.test"]);
        let a = Arc::new(Node {
            bypass: BypassRef(vec!["no-a".into()]),
            ..Arc::try_unwrap(node("a", false)).unwrap()
        });
        let h = hop(Strategy::Fifo, vec![a, node("b", false)]);
        assert_eq!(h.select(&store, &ctx("x.a.test:1")).unwrap().name, "b");
        assert_eq!(h.select(&store, &ctx("x.b.test:1")).unwrap().name, "a");
        // Every node bypassed: the hop yields nothing (chain cut, never a failed node).
        let only = hop(
            Strategy::Fifo,
            vec![Arc::new(Node {
                bypass: BypassRef(vec!["no-a".into()]),
                ..Arc::try_unwrap(node("a", false)).unwrap()
            })],
        );
        assert!(only.select(&store, &ctx("x.a.test:1")).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn per_node_max_fails_and_weights() {
        let store = Store::default();
        let tolerant = Arc::new(Node {
            max_fails: Some(3),
            ..Arc::try_unwrap(node("t", false)).unwrap()
        });
        let h = hop(Strategy::Fifo, vec![tolerant, node("b", false)]);
        h.nodes[0].marker.mark();
        h.nodes[0].marker.mark();
        assert_eq!(h.select(&store, &SelectCtx::default()).unwrap().name, "t");
        h.nodes[0].marker.mark();
        assert_eq!(h.select(&store, &SelectCtx::default()).unwrap().name, "b");
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(h.select(&store, &SelectCtx::default()).unwrap().name, "t");
        // Weighted random: a weight-0 node counts as 1; a 9:1 split picks the heavy node often.
        let heavy = Arc::new(Node {
            weight: 9,
            ..Arc::try_unwrap(node("heavy", false)).unwrap()
        });
        let hr = hop(Strategy::Rand, vec![heavy, node("light", false)]);
        let picks = (0..1000)
            .filter(|_| hr.select(&store, &SelectCtx::default()).unwrap().name == "heavy")
            .count();
        assert!(picks > 700, "{picks}");
    }
}
