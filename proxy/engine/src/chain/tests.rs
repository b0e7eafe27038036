//! Unit tests of hop selection and route building.

use super::*;
use crate::component::{Connector, DialOpts, Dialer};
use crate::store::Store;

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
