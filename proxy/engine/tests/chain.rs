//! A chain whose node is a second `gost-proxy`: a host name only the node's hosts mapper can
//! resolve and an origin that serves only the node's process prove the chain is used; the
//! same origin refuses the `ignoreChain` service's request, which comes from the client's own
//! process, proving that service goes direct. Also: a dead hop yields a clean error, never a
//! hang.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::SeqCst;

#[tokio::test(flavor = "multi_thread")]
async fn chain_is_used_and_ignore_chain_is_honoured() {
    let (o, slot) = guarded_origin().await;
    let (pb, pa, pc, p5) = (free_port(), free_port(), free_port(), free_port());
    let lb = format!("socks5://127.0.0.1:{pb}?hosts=secret.kubegost.test:127.0.0.1");
    let b = tokio::task::spawn_blocking(move || Proxy::start(&["-L", &lb], &[pb]))
        .await
        .unwrap();
    slot.store(b.pid(), SeqCst);
    let la = format!("http://127.0.0.1:{pa}");
    let lc = format!("http://127.0.0.1:{pc}?ignoreChain=true");
    let l5 = format!("socks5://127.0.0.1:{p5}");
    let f = format!("socks5://127.0.0.1:{pb}");
    let a = tokio::task::spawn_blocking(move || {
        Proxy::start(&["-L", &la, "-L", &lc, "-L", &l5, "-F", &f], &[pa, pc, p5])
    })
    .await
    .unwrap();
    let url = format!("http://secret.kubegost.test:{}/", o.port());
    // By address (no name to resolve, so no DNS query leaves the machine): the origin refuses
    // a connection that A opened itself instead of the node B.
    let by_ip = format!("http://{o}/");
    let (via_chain, via_connect, via_socks, direct) = tokio::task::spawn_blocking(move || {
        (
            curl(&["-x", &format!("http://127.0.0.1:{pa}"), &url]),
            curl(&["-p", "-x", &format!("http://127.0.0.1:{pa}"), &url]),
            curl(&["--socks5-hostname", &format!("127.0.0.1:{p5}"), &url]),
            curl_status(&["-x", &format!("http://127.0.0.1:{pc}"), &by_ip]),
        )
    })
    .await
    .unwrap();
    assert_eq!(
        via_chain,
        (0, ORIGIN_BODY.to_string()),
        "absolute-form through the chain"
    );
    assert_eq!(
        via_connect,
        (0, ORIGIN_BODY.to_string()),
        "CONNECT through the chain"
    );
    assert_eq!(
        via_socks,
        (0, ORIGIN_BODY.to_string()),
        "socks5 through the chain"
    );
    assert_eq!(
        direct,
        "403",
        "ignoreChain service must dial directly, from its own process: {}",
        a.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_hop_gives_a_clean_error() {
    let o = origin().await;
    let dead = free_port();
    let (pa, p5) = (free_port(), free_port());
    let la = format!("http://127.0.0.1:{pa}");
    let l5 = format!("socks5://127.0.0.1:{p5}");
    let f = format!("socks5://127.0.0.1:{dead}");
    let _a = tokio::task::spawn_blocking(move || {
        Proxy::start(&["-L", &la, "-L", &l5, "-F", &f], &[pa, p5])
    })
    .await
    .unwrap();
    let url = format!("http://{o}/");
    let (h, s) = tokio::task::spawn_blocking(move || {
        (
            curl_status(&["-x", &format!("http://127.0.0.1:{pa}"), &url]),
            curl(&["--socks5", &format!("127.0.0.1:{p5}"), &url]),
        )
    })
    .await
    .unwrap();
    assert_eq!(h, "503");
    assert_eq!(s.0, 97, "{}", s.1);
}

/// Two hops in two processes: the origin serves only the second node's process, and the
/// second node is reachable only through a relay that admits the first node's process.
#[tokio::test(flavor = "multi_thread")]
async fn two_hop_chain_http_then_socks4() {
    let (o, slot) = guarded_origin().await;
    let (p1, p2, pa) = (free_port(), free_port(), free_port());
    let (front, first_only) = guarded_relay(SocketAddr::from(([127, 0, 0, 1], p2))).await;
    let l1 = format!("http://u:p@127.0.0.1:{p1}");
    let l2 = format!("socks4://127.0.0.1:{p2}");
    let (n1, n2) = tokio::task::spawn_blocking(move || {
        (
            Proxy::start(&["-L", &l1], &[p1]),
            Proxy::start(&["-L", &l2], &[p2]),
        )
    })
    .await
    .unwrap();
    first_only.store(n1.pid(), SeqCst);
    slot.store(n2.pid(), SeqCst);
    let la = format!("socks5://127.0.0.1:{pa}");
    let f1 = format!("http://u:p@127.0.0.1:{p1}");
    let f2 = format!("socks4://{front}");
    let _a = tokio::task::spawn_blocking(move || {
        Proxy::start(&["-L", &la, "-F", &f1, "-F", &f2], &[pa])
    })
    .await
    .unwrap();
    let url = format!("http://{o}/");
    let r =
        tokio::task::spawn_blocking(move || curl(&["--socks5", &format!("127.0.0.1:{pa}"), &url]))
            .await
            .unwrap();
    assert_eq!(r, (0, ORIGIN_BODY.to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn forward_connector_reaches_the_remote_forwarder_target() {
    let (o, slot) = guarded_origin().await;
    let (pb, pa) = (free_port(), free_port());
    let lb = format!("tcp://127.0.0.1:{pb}/{o}");
    let b = tokio::task::spawn_blocking(move || Proxy::start(&["-L", &lb], &[pb]))
        .await
        .unwrap();
    slot.store(b.pid(), SeqCst);
    let la = format!("tcp://127.0.0.1:{pa}");
    let f = format!("forward://127.0.0.1:{pb}");
    let _a = tokio::task::spawn_blocking(move || Proxy::start(&["-L", &la, "-F", &f], &[pa]))
        .await
        .unwrap();
    let r = tokio::task::spawn_blocking(move || curl(&[&format!("http://127.0.0.1:{pa}/")]))
        .await
        .unwrap();
    assert_eq!(r, (0, ORIGIN_BODY.to_string()));
}
