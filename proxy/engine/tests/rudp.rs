//! Remote UDP port forwarding (`rudp`): a client `gost-proxy -L rudp://127.0.0.1:R/ECHO -F …`
//! asks a server `gost-proxy` (relay or SOCKS5 with `bind=true`) to bind UDP port R; datagrams
//! sent to R come back through the tunnel to the client, which forwards them to a loopback UDP
//! echo server and returns the echoes to each sender. Also: refused binds are retried, a dead
//! tunnel is re-bound, and without a chain the port is bound locally. Which process holds the
//! remote port is read from `/proc`, so a listener that bound locally instead fails.
//! Every socket is on 127.0.0.1; every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

/// Starts `gost-proxy` processes (each with its args and TCP ports to wait for).
async fn start(procs: Vec<(Vec<String>, Vec<u16>)>) -> Vec<Proxy> {
    tokio::task::spawn_blocking(move || {
        procs
            .into_iter()
            .map(|(args, ports)| {
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                Proxy::start(&a, &ports)
            })
            .collect()
    })
    .await
    .unwrap()
}

fn server(url: String, port: u16) -> (Vec<String>, Vec<u16>) {
    (vec!["-L".into(), url], vec![port])
}

fn client(r: u16, echo: SocketAddr, node: Option<String>) -> (Vec<String>, Vec<u16>) {
    let mut a = vec!["-L".to_string(), format!("rudp://127.0.0.1:{r}/{echo}")];
    if let Some(n) = node {
        a.extend(["-F".to_string(), n]);
    }
    (a, vec![])
}

fn all_logs(procs: &[&[Proxy]]) -> String {
    procs
        .iter()
        .flat_map(|p| p.iter())
        .map(Proxy::logs)
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// Waits (≤5 s) for a reply on `s`; skips late duplicates of the probe echo.
async fn reply(s: &UdpSocket, probe: &[u8]) -> Option<(Vec<u8>, SocketAddr)> {
    let mut b = [0u8; 2048];
    for _ in 0..10 {
        match tokio::time::timeout(Duration::from_secs(5), s.recv_from(&mut b)).await {
            Ok(Ok((n, from))) if &b[..n] != probe => return Some((b[..n].to_vec(), from)),
            Ok(Ok(_)) => continue,
            _ => return None,
        }
    }
    None
}

/// Two client sockets send to remote port `r` until each gets its first echo (the bind on the
/// remote node may still be in progress: ≤ 60 × 250 ms), then 5 more datagrams each,
/// interleaved; every echo must come back to its own sender from port `r`.
async fn exchange(r: u16, logs: impl Fn() -> String) {
    let to = SocketAddr::from(([127, 0, 0, 1], r));
    let socks = [
        ("a", UdpSocket::bind("127.0.0.1:0").await.unwrap()),
        ("b", UdpSocket::bind("127.0.0.1:0").await.unwrap()),
    ];
    let mut b = [0u8; 2048];
    for (name, s) in &socks {
        let probe = format!("{name}-0");
        let mut ok = false;
        for _ in 0..60 {
            s.send_to(probe.as_bytes(), to).await.unwrap();
            if let Ok(Ok((n, from))) =
                tokio::time::timeout(Duration::from_millis(250), s.recv_from(&mut b)).await
            {
                assert_eq!(&b[..n], format!("echo:{probe}").as_bytes());
                assert_eq!(from, to);
                ok = true;
                break;
            }
        }
        assert!(ok, "no echo through remote port {r}:\n{}", logs());
    }
    for i in 1..=5 {
        for (name, s) in &socks {
            s.send_to(format!("{name}-{i}").as_bytes(), to)
                .await
                .unwrap();
        }
        for (name, s) in &socks {
            let probe = format!("echo:{name}-0");
            let got = reply(s, probe.as_bytes()).await;
            assert_eq!(
                got,
                Some((format!("echo:{name}-{i}").into_bytes(), to)),
                "socket {name}, datagram {i}:\n{}",
                logs()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rudp_through_relay_over_tcp_and_mtls() {
    let echo = udp_echo().await;
    let (p1, p2) = (free_port(), free_port());
    let (r1, r2) = (free_port(), free_port());
    let servers = start(vec![
        server(format!("relay://127.0.0.1:{p1}?bind=true"), p1),
        server(format!("relay+mtls://127.0.0.1:{p2}?bind=true"), p2),
    ])
    .await;
    let clients = start(vec![
        client(r1, echo, Some(format!("relay://127.0.0.1:{p1}"))),
        client(r2, echo, Some(format!("relay+mtls://127.0.0.1:{p2}"))),
    ])
    .await;
    let logs = || all_logs(&[&servers, &clients]);
    exchange(r1, logs).await;
    exchange(r2, logs).await;
    for (i, r) in [r1, r2].into_iter().enumerate() {
        assert!(port_held_by(servers[i].pid(), "udp", r), "{}", logs());
        assert!(!port_held_by(clients[i].pid(), "udp", r), "{}", logs());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rudp_through_socks5_udp_tun_bind() {
    let echo = udp_echo().await;
    let (p, r) = (free_port(), free_port());
    let servers = start(vec![server(
        format!("socks5://127.0.0.1:{p}?bind=true&udp=true"),
        p,
    )])
    .await;
    let clients = start(vec![client(
        r,
        echo,
        Some(format!("socks5://127.0.0.1:{p}")),
    )])
    .await;
    exchange(r, || all_logs(&[&servers, &clients])).await;
    assert!(port_held_by(servers[0].pid(), "udp", r));
    assert!(!port_held_by(clients[0].pid(), "udp", r));
}

#[tokio::test(flavor = "multi_thread")]
async fn rudp_without_chain_binds_locally() {
    let echo = udp_echo().await;
    let r = free_port();
    let clients = start(vec![client(r, echo, None)]).await;
    exchange(r, || all_logs(&[&clients])).await;
    assert!(port_held_by(clients[0].pid(), "udp", r));
}

#[tokio::test(flavor = "multi_thread")]
async fn rudp_without_bind_permission_is_refused_and_retried() {
    let echo = udp_echo().await;
    let (p, q, r1, r2) = (free_port(), free_port(), free_port(), free_port());
    let servers = start(vec![
        server(format!("relay://127.0.0.1:{p}"), p),
        server(format!("socks5://127.0.0.1:{q}?udp=true"), q),
    ])
    .await;
    let mut clients = start(vec![
        client(r1, echo, Some(format!("relay://127.0.0.1:{p}"))),
        client(r2, echo, Some(format!("socks5://127.0.0.1:{q}"))),
    ])
    .await;
    // Each listener is refused (relay Forbidden = status 3, SOCKS5 reply 2) at least twice:
    // it keeps retrying with backoff instead of giving up or crashing.
    let refusals = |c: &Proxy, needle: &str| grep(&c.logs(), needle).len();
    let mut seen = false;
    for _ in 0..80 {
        if refusals(&clients[0], "status 3") >= 2 && refusals(&clients[1], "reply 2") >= 2 {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "{}", all_logs(&[&servers, &clients]));
    for c in &mut clients {
        assert!(c.child.try_wait().unwrap().is_none(), "{}", c.logs());
    }
    // Nothing was bound on the server side.
    for r in [r1, r2] {
        assert!(std::net::UdpSocket::bind(("127.0.0.1", r)).is_ok());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rudp_binds_again_after_the_tunnel_dies() {
    let echo = udp_echo().await;
    let (p, r) = (free_port(), free_port());
    let url = format!("relay://127.0.0.1:{p}?bind=true");
    let first = start(vec![server(url.clone(), p)]).await;
    let clients = start(vec![client(
        r,
        echo,
        Some(format!("relay://127.0.0.1:{p}")),
    )])
    .await;
    exchange(r, || all_logs(&[&first, &clients])).await;
    drop(first);
    let second = start(vec![server(url, p)]).await;
    exchange(r, || all_logs(&[&second, &clients])).await;
    assert!(port_held_by(second[0].pid(), "udp", r));
    assert!(
        !grep(&clients[0].logs(), "tunnel to the remote node ended").is_empty(),
        "{}",
        clients[0].logs()
    );
}
