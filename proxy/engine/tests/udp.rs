//! UDP through `udp` port forwarding, through SOCKS5 UDP ASSOCIATE, and through a chain
//! (SOCKS5 UDP-over-TCP to a second `gost-proxy`), against a loopback UDP echo server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// A UDP echo that tags each reply with the source port it came from (`echo:MSG@PORT`), and
/// answers a `twice-…` datagram with two replies.
async fn tagging_echo() -> std::net::SocketAddr {
    udp_responder(|p, from| {
        let msg = String::from_utf8_lossy(p).to_string();
        let r = format!("echo:{msg}@{}", from.port()).into_bytes();
        let times = if msg.starts_with("twice") { 2 } else { 1 };
        vec![r; times]
    })
    .await
}

/// Every reply to `msg` that arrives within 1 s: (payload, upstream source port).
async fn replies(sock: &UdpSocket, to: &str, msg: &str) -> Vec<(String, u16)> {
    sock.send_to(msg.as_bytes(), to).await.unwrap();
    let mut out = Vec::new();
    let mut b = [0u8; 2048];
    for _ in 0..4 {
        let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_secs(1), sock.recv_from(&mut b)).await
        else {
            break;
        };
        let r = String::from_utf8_lossy(&b[..n]).to_string();
        let (body, port) = r.rsplit_once('@').expect("tagged reply");
        out.push((body.to_string(), port.parse().unwrap()));
    }
    out
}

/// Without keepalive a UDP forwarding session is one request, one response: a second reply
/// is dropped and the next request opens a new upstream socket. With keepalive the session
/// stays: both replies arrive and every request leaves from the same upstream socket.
#[tokio::test(flavor = "multi_thread")]
async fn udp_forwarding_with_and_without_keepalive() {
    let echo = tagging_echo().await;
    let (p1, p2) = (free_port(), free_port());
    let l1 = format!("udp://127.0.0.1:{p1}/{echo}");
    let l2 = format!("udp://127.0.0.1:{p2}/{echo}?keepalive=true&ttl=5s");
    let hp = free_port();
    let h = format!("127.0.0.1:{hp}");
    let _p = tokio::task::spawn_blocking(move || {
        Proxy::start(&["-L", &l1, "-L", &l2, "--health", &h], &[hp])
    })
    .await
    .unwrap();
    wait_ready(hp).await;
    let (one, ka) = (format!("127.0.0.1:{p1}"), format!("127.0.0.1:{p2}"));

    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let first = replies(&c, &one, "twice-1").await;
    assert_eq!(
        first.len(),
        1,
        "no keepalive: one response only, got {first:?}"
    );
    assert_eq!(first[0].0, "echo:twice-1");
    let second = replies(&c, &one, "twice-2").await;
    assert_eq!(
        second.len(),
        1,
        "no keepalive: one response only, got {second:?}"
    );
    assert_ne!(
        first[0].1, second[0].1,
        "no keepalive: each request is a new session with its own upstream socket"
    );

    let k = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let both = replies(&k, &ka, "twice-ka").await;
    assert_eq!(
        both.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ["echo:twice-ka", "echo:twice-ka"],
        "keepalive: the session outlives the first reply"
    );
    for i in 0..5 {
        let m = format!("ka-{i}");
        let r = replies(&k, &ka, &m).await;
        assert_eq!(
            r,
            [(format!("echo:{m}"), both[0].1)],
            "keepalive: same upstream socket"
        );
    }
}

/// Polls `/ready` on the health port (≤10 s).
pub async fn wait_ready(port: u16) {
    for _ in 0..500 {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await {
            let _ = s
                .write_all(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await;
            let mut r = String::new();
            let _ = s.read_to_string(&mut r).await;
            if r.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not ready");
}

async fn socks5_associate(proxy: u16) -> (TcpStream, std::net::SocketAddr) {
    let mut c = TcpStream::connect(("127.0.0.1", proxy)).await.unwrap();
    c.write_all(&[5, 1, 0]).await.unwrap();
    let mut r = [0u8; 2];
    c.read_exact(&mut r).await.unwrap();
    assert_eq!(r, [5, 0]);
    c.write_all(&[5, 3, 0, 1, 0, 0, 0, 0, 0, 0]).await.unwrap();
    let mut h = [0u8; 4];
    c.read_exact(&mut h).await.unwrap();
    assert_eq!(h[1], 0, "UDP ASSOCIATE refused (rep {})", h[1]);
    assert_eq!(h[3], 1);
    let mut a = [0u8; 6];
    c.read_exact(&mut a).await.unwrap();
    let relay = std::net::SocketAddr::new(
        std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).into(),
        u16::from_be_bytes([a[4], a[5]]),
    );
    (c, relay)
}

fn socks_udp(dst: std::net::SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 0, 1];
    if let std::net::IpAddr::V4(v4) = dst.ip() {
        b.extend_from_slice(&v4.octets());
    }
    b.extend_from_slice(&dst.port().to_be_bytes());
    b.extend_from_slice(data);
    b
}

#[tokio::test(flavor = "multi_thread")]
async fn socks5_udp_associate_and_udp_through_a_chain() {
    // The echo answers only the process registered for each case: A itself for its direct
    // service, the node B for the chained one.
    let (echo, slot) = guarded_udp_echo().await;
    let (pb, pa, pn) = (free_port(), free_port(), free_port());
    // B: the chain node, a SOCKS5 server accepting GOST's UDP-over-TCP.
    let lb = format!("socks5://127.0.0.1:{pb}?udp=true");
    let b = tokio::task::spawn_blocking(move || Proxy::start(&["-L", &lb], &[pb]))
        .await
        .unwrap();
    // A: SOCKS5 with UDP, chained through B. N: SOCKS5 with UDP, no chain.
    let la = format!("socks5://127.0.0.1:{pa}?udp=true");
    let ln = format!("socks5://127.0.0.1:{pn}?udp=true&ignoreChain=true");
    let f = format!("socks5://127.0.0.1:{pb}");
    let a = tokio::task::spawn_blocking(move || {
        Proxy::start(&["-L", &la, "-L", &ln, "-F", &f], &[pa, pn])
    })
    .await
    .unwrap();
    for (port, what, pid) in [(pn, "direct", a.pid()), (pa, "through chain", b.pid())] {
        slot.store(pid, std::sync::atomic::Ordering::SeqCst);
        let (_ctl, relay) = socks5_associate(port).await;
        let u = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for i in 0..3 {
            let msg = format!("{what}-{i}");
            u.send_to(&socks_udp(echo, msg.as_bytes()), relay)
                .await
                .unwrap();
            let mut b = [0u8; 2048];
            let (n, _) = tokio::time::timeout(Duration::from_secs(5), u.recv_from(&mut b))
                .await
                .expect(what)
                .unwrap();
            assert_eq!(&b[..4], &[0, 0, 0, 1], "{what}");
            assert_eq!(&b[10..n], format!("echo:{msg}").as_bytes(), "{what}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn udp_associate_is_refused_without_udp_enabled() {
    let p = free_port();
    let l = format!("socks5://127.0.0.1:{p}");
    let _a = tokio::task::spawn_blocking(move || Proxy::start(&["-L", &l], &[p]))
        .await
        .unwrap();
    let mut c = TcpStream::connect(("127.0.0.1", p)).await.unwrap();
    c.write_all(&[5, 1, 0]).await.unwrap();
    let mut r = [0u8; 2];
    c.read_exact(&mut r).await.unwrap();
    c.write_all(&[5, 3, 0, 1, 0, 0, 0, 0, 0, 0]).await.unwrap();
    let mut h = [0u8; 10];
    c.read_exact(&mut h).await.unwrap();
    assert_eq!(h[1], 2, "REP 2: not allowed");
}
