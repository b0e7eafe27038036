//! UDP through `udp` port forwarding, through SOCKS5 UDP ASSOCIATE, and through a chain
//! (SOCKS5 UDP-over-TCP to a second `gost-proxy`), against a loopback UDP echo server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

async fn roundtrip(sock: &UdpSocket, to: &str, msg: &[u8]) -> Vec<u8> {
    sock.send_to(msg, to).await.unwrap();
    let mut b = [0u8; 2048];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut b))
        .await
        .expect("udp reply")
        .unwrap();
    b[..n].to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn udp_forwarding_with_and_without_keepalive() {
    let echo = udp_echo().await;
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
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(
        roundtrip(&c, &format!("127.0.0.1:{p1}"), b"one").await,
        b"echo:one"
    );
    // Without keepalive each request is its own session: a second one works too.
    assert_eq!(
        roundtrip(&c, &format!("127.0.0.1:{p1}"), b"two").await,
        b"echo:two"
    );
    for i in 0..5 {
        let m = format!("ka-{i}");
        assert_eq!(
            roundtrip(&c, &format!("127.0.0.1:{p2}"), m.as_bytes()).await,
            format!("echo:{m}").as_bytes()
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
    let echo = udp_echo().await;
    let (pb, pa, pn) = (free_port(), free_port(), free_port());
    // B: the chain node, a SOCKS5 server accepting GOST's UDP-over-TCP.
    let lb = format!("socks5://127.0.0.1:{pb}?udp=true");
    let _b = tokio::task::spawn_blocking(move || Proxy::start(&["-L", &lb], &[pb]))
        .await
        .unwrap();
    // A: SOCKS5 with UDP, chained through B. N: SOCKS5 with UDP, no chain.
    let la = format!("socks5://127.0.0.1:{pa}?udp=true");
    let ln = format!("socks5://127.0.0.1:{pn}?udp=true&ignoreChain=true");
    let f = format!("socks5://127.0.0.1:{pb}");
    let _a = tokio::task::spawn_blocking(move || {
        Proxy::start(&["-L", &la, "-L", &ln, "-F", &f], &[pa, pn])
    })
    .await
    .unwrap();
    for (port, what) in [(pn, "direct"), (pa, "through chain")] {
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
