//! Resolver tests: a minimal hand-made answer, then a real DNS server (dnsmasq) on loopback.

use std::net::IpAddr;
use std::process::Stdio;

use gost_config::{GoDuration, NameserverConfig, ResolverConfig};

use super::*;

fn resolver(servers: Vec<NameserverConfig>) -> Result<Resolver, BuildError> {
    Resolver::build(
        "resolvers[r]",
        &ResolverConfig {
            name: "r".into(),
            nameservers: servers,
            plugin: None,
        },
    )
}

fn ns(addr: String) -> NameserverConfig {
    NameserverConfig {
        addr,
        ..Default::default()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn skip_name(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let l = *b.get(i)? as usize;
        if l == 0 {
            return Some(i + 1);
        }
        if l & 0xC0 == 0xC0 {
            return Some(i + 2);
        }
        i += 1 + l;
    }
}

/// A real UDP DNS server on loopback answering one A record.
#[tokio::test]
async fn resolves_through_a_loopback_dns_server() {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut b = [0u8; 512];
        for _ in 0..4 {
            let Ok((n, from)) = sock.recv_from(&mut b).await else {
                return;
            };
            let q = &b[..n];
            let qend = skip_name(q, 12).unwrap() + 4;
            let qtype = u16::from_be_bytes([q[qend - 4], q[qend - 3]]);
            let mut r = q[..qend].to_vec();
            r[2] = 0x81;
            r[3] = 0x80;
            if qtype == 1 {
                r[7] = 1;
                r.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 42]);
            }
            sock.send_to(&r, from).await.unwrap();
        }
    });
    let r = resolver(vec![ns(format!("udp://{addr}"))]).unwrap();
    assert_eq!(r.resolve("svc.test").await.unwrap(), ip("127.0.0.42"));
}

#[test]
fn bad_scheme_is_named() {
    let e = resolver(vec![ns("quic://1.1.1.1".into())]).unwrap_err();
    assert_eq!(e.path, "resolvers[r].nameservers[0].addr");
}

#[test]
fn async_and_client_ip_are_rejected_with_their_path() {
    let e = resolver(vec![NameserverConfig {
        is_async: true,
        ..ns("1.1.1.1".into())
    }])
    .unwrap_err();
    assert_eq!(e.path, "resolvers[r].nameservers[0].async");
    let e = resolver(vec![
        ns("1.1.1.1".into()),
        NameserverConfig {
            client_ip: "10.0.0.1".into(),
            ..ns("1.1.1.1".into())
        },
    ])
    .unwrap_err();
    assert_eq!(e.path, "resolvers[r].nameservers[1].clientIP");
}

/// dnsmasq on 127.0.0.1 with `--host-record`s (killed on drop). Unknown names under `.test`
/// get NXDOMAIN.
struct Dnsmasq {
    _child: tokio::process::Child,
    port: u16,
}

impl Dnsmasq {
    async fn start(records: &[(&str, &str)], local_ttl: u32) -> Dnsmasq {
        // a port free for UDP and TCP right now
        let port = loop {
            let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let p = u.local_addr().unwrap().port();
            if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
                break p;
            }
        };
        let mut cmd = tokio::process::Command::new("dnsmasq");
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--pid-file=",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--local=/test/",
            &format!("--port={port}"),
            &format!("--local-ttl={local_ttl}"),
        ]);
        for (name, addr) in records {
            cmd.arg(format!("--host-record={name},{addr}"));
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run dnsmasq ({e}): install Debian's dnsmasq-base (scripts/testenv/install-deps.sh does)")
            });
        for _ in 0..500 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Dnsmasq {
                    _child: child,
                    port,
                };
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("dnsmasq did not start listening on 127.0.0.1:{port}");
    }

    fn addr(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }
}

#[tokio::test]
async fn dnsmasq_answers_over_udp_and_tcp() {
    let d = Dnsmasq::start(&[("web.test", "10.1.2.3"), ("web.test", "fd00::3")], 60).await;
    let udp = resolver(vec![ns(d.addr("udp"))]).unwrap();
    assert_eq!(udp.resolve("web.test").await.unwrap(), ip("10.1.2.3"));
    let tcp = resolver(vec![ns(d.addr("tcp"))]).unwrap();
    assert_eq!(tcp.resolve("web.test").await.unwrap(), ip("10.1.2.3"));
    let v6 = resolver(vec![NameserverConfig {
        prefer: "ipv6".into(),
        ..ns(d.addr("udp"))
    }])
    .unwrap();
    assert_eq!(v6.resolve("web.test").await.unwrap(), ip("fd00::3"));
    let only4 = resolver(vec![NameserverConfig {
        only: "ipv4".into(),
        prefer: "ipv6".into(),
        ..ns(d.addr("udp"))
    }])
    .unwrap();
    assert_eq!(only4.resolve("web.test").await.unwrap(), ip("10.1.2.3"));
}

/// NXDOMAIN is an error, and the next name server is asked.
#[tokio::test]
async fn error_rcode_moves_on_to_the_next_name_server() {
    let a = Dnsmasq::start(&[("a.test", "10.0.0.1")], 60).await;
    let b = Dnsmasq::start(&[("b.test", "10.0.0.2")], 60).await;
    let r = resolver(vec![ns(a.addr("udp")), ns(b.addr("udp"))]).unwrap();
    assert_eq!(r.resolve("a.test").await.unwrap(), ip("10.0.0.1"));
    assert_eq!(r.resolve("b.test").await.unwrap(), ip("10.0.0.2"));
    let e = r.resolve("nowhere.test").await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
}

/// An answer too large for a plain UDP response comes back truncated and is asked again over
/// TCP.
#[tokio::test]
async fn truncated_udp_answer_is_retried_over_tcp() {
    let addrs: Vec<String> = (1..=60).map(|i| format!("10.9.0.{i}")).collect();
    let records: Vec<(&str, &str)> = addrs.iter().map(|a| ("many.test", a.as_str())).collect();
    let d = Dnsmasq::start(&records, 60).await;
    let r = resolver(vec![ns(d.addr("udp"))]).unwrap();
    let got = r.resolve("many.test").await.unwrap();
    assert!(addrs.contains(&got.to_string()), "{got}");
}

/// Answers are cached for their TTL; `ttl` overrides a TTL of 0 (so the answer outlives the
/// server), and without it a TTL-0 answer is asked again (and fails once the server is gone).
#[tokio::test]
async fn cache_honours_the_ttl_override() {
    let d = Dnsmasq::start(&[("c.test", "10.0.0.7")], 0).await;
    let cached = resolver(vec![NameserverConfig {
        ttl: Some(GoDuration::from(Duration::from_secs(300))),
        timeout: Some(GoDuration::from(Duration::from_secs(1))),
        ..ns(d.addr("udp"))
    }])
    .unwrap();
    let uncached = resolver(vec![NameserverConfig {
        timeout: Some(GoDuration::from(Duration::from_secs(1))),
        ..ns(d.addr("udp"))
    }])
    .unwrap();
    assert_eq!(cached.resolve("c.test").await.unwrap(), ip("10.0.0.7"));
    assert_eq!(uncached.resolve("c.test").await.unwrap(), ip("10.0.0.7"));
    drop(d);
    assert_eq!(cached.resolve("c.test").await.unwrap(), ip("10.0.0.7"));
    assert!(uncached.resolve("c.test").await.is_err());
}
