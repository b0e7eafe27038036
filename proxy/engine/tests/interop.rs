//! Interoperability with the reference GOST v3.2.6 (`../shared/tools/gost-v3.2.6/gost`), both
//! ways: our client chain through a real `gost` node, a real `gost` client chain through a
//! `gost-proxy` node, and `gost` through `gost` as the control that proves each case's
//! configuration is right. Both programs read the same generated files and command lines.
//!
//! Every origin here is *guarded*: it answers only connections (or datagrams) opened by the
//! process that must be the last hop (checked through `/proc`), and HTTP targets are a name
//! that only the node's `hosts` mapper resolves, so a client that skipped the chain fails.
//! Every socket is on 127.0.0.1; every wait is bounded (curl --max-time, port waits ≤10 s,
//! UDP replies ≤2 s per attempt, 3 attempts).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;

const CONNECTORS: &[&str] = &["http", "socks5", "socks4", "socks4a", "relay", "forward"];
const DIALERS: &[&str] = &["tcp", "tls", "mtls", "ws", "wss", "mws", "mwss"];

/// Which program plays a role.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Imp {
    Ours,
    Gost,
}

impl Imp {
    fn program(self) -> PathBuf {
        match self {
            Imp::Ours => bin(),
            Imp::Gost => gost_bin(),
        }
    }
}

/// Directions the matrices run: (client, node).
const DIRECTIONS: &[(Imp, Imp)] = &[(Imp::Ours, Imp::Gost), (Imp::Gost, Imp::Ours)];

/// The `hosts` section every node config carries.
fn hosts_yaml() -> String {
    format!("hosts:\n- name: secret\n  mappings:\n  - ip: 127.0.0.1\n    hostname: {SECRET}\n")
}

/// A node config: one service on `port` with `handler` over `listener`, the secret hosts
/// mapper, handler metadata `md` (YAML flow map) and, for `forward`, a forwarder to `fwd`.
fn node_yaml(handler: &str, listener: &str, port: u16, md: &str, fwd: Option<&str>) -> String {
    let mut y = format!(
        "services:\n- name: node\n  addr: 127.0.0.1:{port}\n  hosts: secret\n  handler:\n    type: {handler}\n    metadata: {md}\n  listener:\n    type: {listener}\n"
    );
    if let Some(f) = fwd {
        y += &format!("  forwarder:\n    nodes:\n    - name: origin\n      addr: {f}\n");
    }
    y + &hosts_yaml()
}

/// Starts `imp` with config text `yaml` (written beside the process) and waits for `ports`.
fn start_with_config(imp: Imp, yaml: &str, ports: &[u16]) -> (Proxy, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("node.yaml");
    std::fs::write(&f, yaml).unwrap();
    let p = Proxy::start_bin(
        &imp.program(),
        Some(dir.path()),
        &["-C", f.to_str().unwrap()],
        ports,
        &[],
    );
    (p, dir)
}

fn start_args(imp: Imp, args: &[String], ports: &[u16]) -> Proxy {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    Proxy::start_bin(&imp.program(), None, &a, ports, &[])
}

fn node_handler_md(connector: &str) -> (&'static str, &'static str) {
    match connector {
        "http" => ("http", "{}"),
        "socks5" => ("socks5", "{udp: true, bind: true}"),
        "socks4" | "socks4a" => ("socks4", "{}"),
        "relay" => ("relay", "{bind: true}"),
        "forward" => ("forward", "{}"),
        other => panic!("no node handler for {other}"),
    }
}

/// One TCP case: `client` chain `connector+dialer` through a `node`; curl absolute-form and
/// CONNECT (or plain, for `forward`) to the guarded origin.
fn tcp_case(
    client: Imp,
    node: Imp,
    connector: &str,
    dialer: &str,
    origin: SocketAddr,
    slot: &AtomicU32,
) -> Result<(), String> {
    let (pn, pc) = (free_port(), free_port());
    let (handler, md) = node_handler_md(connector);
    let target = if connector == "socks4" {
        // SOCKS4 carries an IPv4 address: the client would have to resolve the name itself.
        origin.to_string()
    } else {
        format!("{SECRET}:{}", origin.port())
    };
    let fwd = (connector == "forward").then_some(target.as_str());
    let (n, _dir) = start_with_config(node, &node_yaml(handler, dialer, pn, md, fwd), &[pn]);
    slot.store(n.pid(), Ordering::SeqCst);
    // GOST's SOCKS5 client negotiates its TLS method (0x80) by default; inside a multiplexed
    // session that breaks the whole session after the first stream (`tls: bad record MAC`,
    // then `i/o timeout` on the session's TCP connection), against a `gost` node as much as
    // ours: a GOST bug, so GOST clients over mtls/mws/mwss get `notls`.
    let q = if client == Imp::Gost && connector == "socks5" && dialer.starts_with('m') {
        "?notls=true"
    } else {
        ""
    };
    let f = format!("{connector}+{dialer}://127.0.0.1:{pn}{q}");
    let want = (0, ORIGIN_BODY.to_string());
    let (c, results) = if connector == "forward" {
        // The client's own target is ignored: the node's forwarder picks the origin.
        let c = start_args(
            client,
            &[
                "-L".into(),
                format!("tcp://127.0.0.1:{pc}/127.0.0.1:9"),
                "-F".into(),
                f,
            ],
            &[pc],
        );
        let url = format!("http://127.0.0.1:{pc}/");
        (c, vec![("forward", curl(&[&url]))])
    } else {
        let c = start_args(
            client,
            &[
                "-L".into(),
                format!("http://127.0.0.1:{pc}"),
                "-F".into(),
                f,
            ],
            &[pc],
        );
        let proxy = format!("http://127.0.0.1:{pc}");
        let url = format!("http://{target}/");
        (
            c,
            vec![
                ("absolute-form", curl(&["-x", &proxy, &url])),
                ("CONNECT", curl(&["-p", "-x", &proxy, &url])),
            ],
        )
    };
    let bad: Vec<String> = results
        .iter()
        .filter(|(_, r)| *r != want)
        .map(|(what, r)| format!("{what} {r:?}"))
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{client:?} client → {node:?} node, {connector}+{dialer}: {}\n--- node log:\n{}\n--- client log:\n{}",
        bad.join(", "),
        tail(&n.logs()),
        tail(&c.logs())
    ))
}

/// The last lines of a log, enough to see why a case failed.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

async fn tcp_matrix(client: Imp, node: Imp) {
    let (origin, slot) = guarded_origin().await;
    let failures = tokio::task::spawn_blocking(move || {
        let mut failures = Vec::new();
        let mut n = 0;
        for c in CONNECTORS {
            for d in DIALERS {
                n += 1;
                if let Err(e) = tcp_case(client, node, c, d, origin, &slot) {
                    failures.push(e);
                }
            }
        }
        assert_eq!(n, 42);
        failures
    })
    .await
    .unwrap();
    assert!(
        failures.is_empty(),
        "{} of 42 pairs failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn matrix_our_client_through_gost_nodes() {
    tcp_matrix(Imp::Ours, Imp::Gost).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn matrix_gost_client_through_our_nodes() {
    tcp_matrix(Imp::Gost, Imp::Ours).await;
}

/// The control: if a case fails here too, the test's configuration is wrong, not our code.
#[tokio::test(flavor = "multi_thread")]
async fn matrix_gost_through_gost_control() {
    tcp_matrix(Imp::Gost, Imp::Gost).await;
}

/// The guard itself: the same request made by a process that is not the registered last
/// hop is refused, so every matrix case above would fail if its chain were bypassed.
#[tokio::test(flavor = "multi_thread")]
async fn guarded_origin_refuses_everyone_but_the_last_hop() {
    let (origin, slot) = guarded_origin().await;
    let (pn, pc) = (free_port(), free_port());
    let (n, _dir) = start_with_config(Imp::Gost, &node_yaml("http", "tcp", pn, "{}", None), &[pn]);
    let f = format!("http://127.0.0.1:{pn}");
    let c = start_args(
        Imp::Ours,
        &[
            "-L".into(),
            format!("http://127.0.0.1:{pc}"),
            "-F".into(),
            f,
        ],
        &[pc],
    );
    let proxy = format!("http://127.0.0.1:{pc}");
    let url = format!("http://{SECRET}:{}/", origin.port());
    let (direct_url, c_pid, n_pid) = (format!("http://{origin}/"), c.pid(), n.pid());
    let r = tokio::task::spawn_blocking(move || {
        slot.store(c_pid, Ordering::SeqCst);
        let wrong_pid = curl_status(&["-x", &proxy, &url]);
        slot.store(n_pid, Ordering::SeqCst);
        let right = curl(&["-x", &proxy, &url]);
        let direct = curl_status(&[&direct_url]);
        (wrong_pid, right, direct)
    })
    .await
    .unwrap();
    assert_eq!(
        r.0, "403",
        "a connection from the client process must be refused"
    );
    assert_eq!(
        r.1,
        (0, ORIGIN_BODY.to_string()),
        "the node's connection is served"
    );
    assert_eq!(r.2, "403", "curl going direct must be refused");
}

/// A TCP relay in front of a node that counts the connections it accepted.
async fn counting_relay(to: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut u) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut s, &mut u).await;
                }
            });
        }
    });
    (addr, count)
}

/// smux session reuse, asserted: 6 requests through a client whose node dialer is `mtls`,
/// `mws` or `mwss` reach the node over exactly one TCP connection, both ways; with `tls` (no
/// multiplexing) the same 6 requests take 6 connections, which proves the count is real.
#[tokio::test(flavor = "multi_thread")]
async fn smux_sessions_are_reused_both_ways() {
    const STREAMS: usize = 6;
    let (origin, slot) = guarded_origin().await;
    let mut failures = Vec::new();
    for &(client, node) in DIRECTIONS {
        for (dialer, want) in [("mtls", 1), ("mws", 1), ("mwss", 1), ("tls", STREAMS)] {
            let (pn, pc) = (free_port(), free_port());
            let (n, _dir) =
                start_with_config(node, &node_yaml("relay", dialer, pn, "{}", None), &[pn]);
            slot.store(n.pid(), Ordering::SeqCst);
            let (front, count) = counting_relay(SocketAddr::from(([127, 0, 0, 1], pn))).await;
            let f = format!("relay+{dialer}://{front}");
            let c = tokio::task::spawn_blocking(move || {
                start_args(
                    client,
                    &[
                        "-L".into(),
                        format!("http://127.0.0.1:{pc}"),
                        "-F".into(),
                        f,
                    ],
                    &[pc],
                )
            })
            .await
            .unwrap();
            let proxy = format!("http://127.0.0.1:{pc}");
            let url = format!("http://{SECRET}:{}/", origin.port());
            let rs = tokio::task::spawn_blocking(move || {
                (0..STREAMS)
                    .map(|_| curl(&["-x", &proxy, &url]))
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap();
            let ok = rs.iter().filter(|r| r.1 == ORIGIN_BODY).count();
            let got = count.load(Ordering::SeqCst);
            if ok != STREAMS || got != want {
                failures.push(format!(
                    "{client:?} → {node:?} relay+{dialer}: {ok}/{STREAMS} answered, {got} TCP connections (want {want})\n{}\n{}",
                    tail(&c.logs()),
                    tail(&n.logs())
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Sends `msg` from `sock` to `to` and waits for the echo (3 attempts, 2 s each): the first
/// datagram of a session may race the chain's set-up.
async fn udp_roundtrip(sock: &UdpSocket, to: SocketAddr, msg: &str) -> Result<(), String> {
    let want = format!("echo:{msg}");
    let mut b = [0u8; 2048];
    for _ in 0..3 {
        sock.send_to(msg.as_bytes(), to)
            .await
            .map_err(|e| e.to_string())?;
        if let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut b)).await
        {
            let got = String::from_utf8_lossy(&b[..n]).to_string();
            return if got == want {
                Ok(())
            } else {
                Err(format!("reply {got:?}, want {want:?}"))
            };
        }
    }
    Err(format!("no reply to {msg:?}"))
}

/// UDP port forwarding through one node: `client -L udp://…/target -F <node>`, 3 datagrams.
async fn udp_case(
    client: Imp,
    node: Imp,
    connector: &str,
    dialer: &str,
    client_md: &str,
    echo: SocketAddr,
    slot: &AtomicU32,
) -> Result<(), String> {
    let (pn, pc) = (free_port(), free_port());
    let (handler, md) = node_handler_md(connector);
    let yaml = node_yaml(handler, dialer, pn, md, None);
    let (n, _dir) = tokio::task::spawn_blocking(move || start_with_config(node, &yaml, &[pn]))
        .await
        .unwrap();
    slot.store(n.pid(), Ordering::SeqCst);
    // GOST's SOCKS5 UDP client resolves the target itself; relay carries the name.
    let target = if connector == "socks5" {
        echo.to_string()
    } else {
        format!("{SECRET}:{}", echo.port())
    };
    let f = format!("{connector}+{dialer}://127.0.0.1:{pn}{client_md}");
    let l = format!("udp://127.0.0.1:{pc}/{target}");
    let c = tokio::task::spawn_blocking(move || {
        let c = start_args(client, &["-L".into(), l, "-F".into(), f], &[]);
        std::thread::sleep(Duration::from_millis(300));
        c
    })
    .await
    .unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = SocketAddr::from(([127, 0, 0, 1], pc));
    for i in 0..3 {
        if let Err(e) = udp_roundtrip(&sock, to, &format!("{connector}-{i}")).await {
            return Err(format!(
                "{client:?} client → {node:?} node, UDP {connector}+{dialer}{client_md}: {e}\n--- node log:\n{}\n--- client log:\n{}",
                tail(&n.logs()),
                tail(&c.logs())
            ));
        }
    }
    Ok(())
}

/// UDP through SOCKS5 (GOST's UDP-over-TCP by default, standard UDP ASSOCIATE with
/// `relay=udp`) and relay, over plain and multiplexed transports, both ways and the control.
#[tokio::test(flavor = "multi_thread")]
async fn udp_through_chains_both_ways() {
    let (echo, slot) = guarded_udp_echo().await;
    let cases = [
        ("socks5", "tcp", ""),
        ("socks5", "tls", ""),
        ("socks5", "tcp", "?relay=udp"),
        ("relay", "tcp", ""),
        ("relay", "mws", ""),
    ];
    let mut failures = Vec::new();
    let mut n = 0;
    for &(client, node) in DIRECTIONS.iter().chain(&[(Imp::Gost, Imp::Gost)]) {
        for (c, d, md) in cases {
            n += 1;
            if let Err(e) = udp_case(client, node, c, d, md, echo, &slot).await {
                failures.push(e);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} UDP cases failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Waits (≤10 s) until `pid` holds `port` (`tcp` listening or `udp` bound).
async fn wait_held(pid: u32, proto: &str, port: u16) -> bool {
    for _ in 0..200 {
        if port_held_by(pid, proto, port) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A reverse tunnel: the client asks the node to listen on `R` (`rtcp` or `rudp`) and
/// carries what arrives there back to a target that only the client may reach (the guard
/// is the client's PID). The reverse port must be held by the node's process, not the
/// client's.
#[allow(clippy::too_many_arguments)]
async fn reverse_case(
    client: Imp,
    node: Imp,
    kind: &str,
    connector: &str,
    dialer: &str,
    origin: SocketAddr,
    echo: SocketAddr,
    slots: (&AtomicU32, &AtomicU32),
) -> Result<(), String> {
    let (pn, r) = (free_port(), free_port());
    let (handler, md) = node_handler_md(connector);
    let yaml = node_yaml(handler, dialer, pn, md, None);
    let (n, _dir) = tokio::task::spawn_blocking(move || start_with_config(node, &yaml, &[pn]))
        .await
        .unwrap();
    let target = if kind == "rtcp" { origin } else { echo };
    let l = format!("{kind}://127.0.0.1:{r}/{target}");
    let f = format!("{connector}+{dialer}://127.0.0.1:{pn}");
    let c = tokio::task::spawn_blocking(move || {
        start_args(client, &["-L".into(), l, "-F".into(), f], &[])
    })
    .await
    .unwrap();
    slots.0.store(c.pid(), Ordering::SeqCst);
    slots.1.store(c.pid(), Ordering::SeqCst);
    let what = format!("{client:?} client → {node:?} node, {kind} over {connector}+{dialer}");
    let fail = |e: String| {
        format!(
            "{what}: {e}\n--- node log:\n{}\n--- client log:\n{}",
            tail(&n.logs()),
            tail(&c.logs())
        )
    };
    let proto = if kind == "rtcp" { "tcp" } else { "udp" };
    if !wait_held(n.pid(), proto, r).await {
        return Err(fail(format!(
            "the node does not hold {proto} port {r} after 10 s"
        )));
    }
    if port_held_by(c.pid(), proto, r) {
        return Err(fail(format!("the client itself holds {proto} port {r}")));
    }
    if kind == "rtcp" {
        let url = format!("http://127.0.0.1:{r}/");
        let got = tokio::task::spawn_blocking(move || curl(&[&url]))
            .await
            .unwrap();
        if got != (0, ORIGIN_BODY.to_string()) {
            return Err(fail(format!("curl through the reverse port: {got:?}")));
        }
    } else {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for i in 0..3 {
            udp_roundtrip(
                &sock,
                SocketAddr::from(([127, 0, 0, 1], r)),
                &format!("{kind}-{i}"),
            )
            .await
            .map_err(fail)?;
        }
    }
    Ok(())
}

/// rtcp and rudp with GOST on the other end: relay BIND and SOCKS5 BIND (GOST's multiplexed
/// BIND for TCP, its UDP-over-TCP bind for UDP), over tcp, tls and mws, both ways and the
/// control.
#[tokio::test(flavor = "multi_thread")]
async fn reverse_tunnels_both_ways() {
    let (origin, os) = guarded_origin().await;
    let (echo, es) = guarded_udp_echo().await;
    let mut failures = Vec::new();
    let mut n = 0;
    for &(client, node) in DIRECTIONS.iter().chain(&[(Imp::Gost, Imp::Gost)]) {
        for kind in ["rtcp", "rudp"] {
            for connector in ["relay", "socks5"] {
                for dialer in ["tcp", "tls", "mws"] {
                    n += 1;
                    if let Err(e) = reverse_case(
                        client,
                        node,
                        kind,
                        connector,
                        dialer,
                        origin,
                        echo,
                        (&os, &es),
                    )
                    .await
                    {
                        failures.push(e);
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} reverse-tunnel cases failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Two-hop chains mixing the implementations: the client's chain crosses a first node of
/// one program into a second node of the other; only the second node resolves the target,
/// only its process is served by the origin, and only the first node's process may reach it.
#[tokio::test(flavor = "multi_thread")]
async fn two_hop_chains_mixing_implementations() {
    let (origin, slot) = guarded_origin().await;
    let hops = [
        (("relay", "tls"), ("socks5", "mws")),
        (("http", "mtls"), ("relay", "ws")),
        (("socks5", "tcp"), ("http", "tls")),
    ];
    let mut failures = Vec::new();
    let mut n = 0;
    for (client, first, second) in [
        (Imp::Ours, Imp::Gost, Imp::Ours),
        (Imp::Gost, Imp::Ours, Imp::Gost),
        (Imp::Ours, Imp::Ours, Imp::Gost),
        (Imp::Gost, Imp::Gost, Imp::Ours),
    ] {
        for ((c1, d1), (c2, d2)) in hops {
            n += 1;
            let (p1, p2, pc) = (free_port(), free_port(), free_port());
            let (h1, md1) = node_handler_md(c1);
            let (h2, md2) = node_handler_md(c2);
            // The first node has no hosts mapper: it could not resolve the target itself.
            let y1 = format!(
                "services:\n- name: first\n  addr: 127.0.0.1:{p1}\n  handler:\n    type: {h1}\n    metadata: {md1}\n  listener:\n    type: {d1}\n"
            );
            let y2 = node_yaml(h2, d2, p2, md2, None);
            let q1 = if client == Imp::Gost && c1 == "socks5" {
                "?notls=true"
            } else {
                ""
            };
            let q2 = if client == Imp::Gost && c2 == "socks5" {
                "?notls=true"
            } else {
                ""
            };
            // The second node is reachable only through a relay that admits the first
            // node's process: a client that skipped the first hop is cut off there.
            let (front, first_only) = guarded_relay(SocketAddr::from(([127, 0, 0, 1], p2))).await;
            let args = vec![
                "-L".to_string(),
                format!("http://127.0.0.1:{pc}"),
                "-F".into(),
                format!("{c1}+{d1}://127.0.0.1:{p1}{q1}"),
                "-F".into(),
                format!("{c2}+{d2}://{front}{q2}"),
            ];
            let (a, b, c) = tokio::task::spawn_blocking(move || {
                let (a, da) = start_with_config(first, &y1, &[p1]);
                let (b, db) = start_with_config(second, &y2, &[p2]);
                let c = start_args(client, &args, &[pc]);
                ((a, da), (b, db), c)
            })
            .await
            .unwrap();
            first_only.store(a.0.pid(), Ordering::SeqCst);
            slot.store(b.0.pid(), Ordering::SeqCst);
            let proxy = format!("http://127.0.0.1:{pc}");
            let url = format!("http://{SECRET}:{}/", origin.port());
            let got = tokio::task::spawn_blocking(move || {
                (
                    curl(&["-x", &proxy, &url]),
                    curl(&["-p", "-x", &proxy, &url]),
                )
            })
            .await
            .unwrap();
            let want = (0, ORIGIN_BODY.to_string());
            if got.0 != want || got.1 != want {
                failures.push(format!(
                    "{client:?} → {first:?} {c1}+{d1} → {second:?} {c2}+{d2}: {got:?}\n--- first:\n{}\n--- second:\n{}\n--- client:\n{}",
                    tail(&a.0.logs()),
                    tail(&b.0.logs()),
                    tail(&c.logs())
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} two-hop chains failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The `sni` handler of both programs, with curl as the client: an HTTP request is routed by
/// its `Host`, a TLS connection by its ClientHello's server name (port 443, the only port a
/// ClientHello implies), each to a name only the node's hosts mapper resolves.
#[tokio::test(flavor = "multi_thread")]
async fn sni_nodes_route_by_host_and_server_name() {
    let (origin, slot) = guarded_origin().await;
    let (tls_origin, tls_slot) =
        guarded_tls_origin(SocketAddr::from(([127, 0, 0, 1], 443)), SECRET).await;
    assert_eq!(tls_origin.port(), 443);
    let mut failures = Vec::new();
    for node in [Imp::Ours, Imp::Gost] {
        let pn = free_port();
        let yaml = node_yaml("sni", "tcp", pn, "{}", None);
        let (n, _dir) = tokio::task::spawn_blocking(move || start_with_config(node, &yaml, &[pn]))
            .await
            .unwrap();
        slot.store(n.pid(), Ordering::SeqCst);
        tls_slot.store(n.pid(), Ordering::SeqCst);
        let op = origin.port();
        let got = tokio::task::spawn_blocking(move || {
            (
                curl(&[
                    "--connect-to",
                    &format!("{SECRET}:{op}:127.0.0.1:{pn}"),
                    &format!("http://{SECRET}:{op}/"),
                ]),
                curl(&[
                    "-k",
                    "--connect-to",
                    &format!("{SECRET}:443:127.0.0.1:{pn}"),
                    &format!("https://{SECRET}/"),
                ]),
            )
        })
        .await
        .unwrap();
        let want = (0, ORIGIN_BODY.to_string());
        if got.0 != want || got.1 != want {
            failures.push(format!(
                "{node:?} sni node: HTTP {:?}, TLS {:?}\n{}",
                got.0,
                got.1,
                tail(&n.logs())
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
