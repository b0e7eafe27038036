//! Interop matrix, our client ↔ our server (the GOST binary cannot be built here): for every
//! connector × dialer pair a server `gost-proxy -L <connector>+<dialer>://…` and a client
//! `gost-proxy -L http://… -F <connector>+<dialer>://…`, curl through the client to a loopback
//! origin. Plus multi-hop chains mixing transports (the mux route split), UDP through SOCKS5
//! and relay, remote forwarding (rtcp) through a relay node, and mutual TLS.
//! Origins answer only the process that must be the last hop (see `common::guarded_origin`),
//! and names go through the node's hosts mapper, so a chain that went direct fails.
//! Every socket is on 127.0.0.1; every wait is bounded (curl --max-time, port waits ≤10 s).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::sync::atomic::Ordering::SeqCst;

const CONNECTORS: &[&str] = &["http", "socks5", "socks4", "relay"];
const DIALERS: &[&str] = &["tcp", "tls", "ws", "mws", "mtls", "wss", "mwss"];

/// Runs one connector × dialer case; returns an error description instead of panicking so a
/// table run reports every failing pair at once.
async fn case(connector: &str, dialer: &str) -> Result<(), String> {
    let (o, slot) = guarded_origin().await;
    let (ps, pc) = (free_port(), free_port());
    let ls = format!("{connector}+{dialer}://127.0.0.1:{ps}?hosts={SECRET}:127.0.0.1");
    let lc = format!("http://127.0.0.1:{pc}");
    let f = format!("{connector}+{dialer}://127.0.0.1:{ps}");
    let (server, client) = tokio::task::spawn_blocking(move || {
        let s = Proxy::start(&["-L", &ls], &[ps]);
        let c = Proxy::start(&["-L", &lc, "-F", &f], &[pc]);
        (s, c)
    })
    .await
    .unwrap();
    slot.store(server.pid(), SeqCst);
    // SOCKS4 carries an IPv4 address; the others carry the name only the server resolves.
    let url = if connector == "socks4" {
        format!("http://{o}/")
    } else {
        format!("http://{SECRET}:{}/", o.port())
    };
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

/// Starts `gost-proxy` processes (each with its args and ports) off the async runtime.
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

fn args(a: &[String]) -> Vec<String> {
    a.to_vec()
}

async fn curl_async(a: Vec<String>) -> (i32, String) {
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        curl(&a)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn chains_mixing_transports_split_at_mux_nodes() {
    let (o, slot) = guarded_origin().await;
    let (pa, pb, pc, q1, q2) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let servers = start(vec![
        (
            args(&[
                "-L".into(),
                format!("relay+tls://127.0.0.1:{pa}?hosts={SECRET}:127.0.0.1"),
            ]),
            vec![pa],
        ),
        (
            args(&[
                "-L".into(),
                format!("socks5+mws://127.0.0.1:{pb}?hosts={SECRET}:127.0.0.1"),
            ]),
            vec![pb],
        ),
        (
            args(&["-L".into(), format!("http+mtls://127.0.0.1:{pc}")]),
            vec![pc],
        ),
    ])
    .await;
    // q1: relay over TLS, then SOCKS5 over mws (its session is carried through the relay node).
    // q2: two multiplexed hops (mws then mtls: nested split) and a TLS hop last.
    let clients = start(vec![
        (
            args(&[
                "-L".into(),
                format!("http://127.0.0.1:{q1}"),
                "-F".into(),
                format!("relay+tls://127.0.0.1:{pa}"),
                "-F".into(),
                format!("socks5+mws://127.0.0.1:{pb}"),
            ]),
            vec![q1],
        ),
        (
            args(&[
                "-L".into(),
                format!("http://127.0.0.1:{q2}"),
                "-F".into(),
                format!("socks5+mws://127.0.0.1:{pb}"),
                "-F".into(),
                format!("http+mtls://127.0.0.1:{pc}"),
                "-F".into(),
                format!("relay+tls://127.0.0.1:{pa}"),
            ]),
            vec![q2],
        ),
    ])
    .await;
    let url = format!("http://{SECRET}:{}/", o.port());
    // The last hop of q1 is the SOCKS5 node, of q2 the relay node.
    for (q, last) in [(q1, servers[1].pid()), (q2, servers[0].pid())] {
        slot.store(last, SeqCst);
        // Several requests: the second and later reuse the multiplexed sessions.
        for i in 0..3 {
            let r = curl_async(vec![
                "-x".into(),
                format!("http://127.0.0.1:{q}"),
                url.clone(),
            ])
            .await;
            assert_eq!(
                r,
                (0, ORIGIN_BODY.to_string()),
                "client {q} request {i}: {}",
                clients
                    .iter()
                    .map(Proxy::logs)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_mux_and_relay_hops_fail_cleanly() {
    let o = origin().await;
    let dead = free_port();
    let (h, s) = (free_port(), free_port());
    let _c = start(vec![(
        args(&[
            "-L".into(),
            format!("http://127.0.0.1:{h}"),
            "-L".into(),
            format!("socks5://127.0.0.1:{s}"),
            "-F".into(),
            format!("relay+mws://127.0.0.1:{dead}"),
        ]),
        vec![h, s],
    )])
    .await;
    let url = format!("http://{o}/");
    let (status, socks) = tokio::task::spawn_blocking(move || {
        (
            curl_status(&["-x", &format!("http://127.0.0.1:{h}"), &url]),
            curl(&["--socks5", &format!("127.0.0.1:{s}"), &url]),
        )
    })
    .await
    .unwrap();
    assert_eq!(status, "503");
    assert_eq!(socks.0, 97, "{}", socks.1);
}

async fn socks5_udp(proxy: u16, echo: std::net::SocketAddr, msg: &[u8]) -> Vec<u8> {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(("127.0.0.1", proxy))
        .await
        .unwrap();
    c.write_all(&[5, 1, 0]).await.unwrap();
    let mut r = [0u8; 2];
    c.read_exact(&mut r).await.unwrap();
    assert_eq!(r, [5, 0]);
    c.write_all(&[5, 3, 0, 1, 0, 0, 0, 0, 0, 0]).await.unwrap();
    let mut rep = [0u8; 10];
    c.read_exact(&mut rep).await.unwrap();
    assert_eq!(rep[1], 0, "UDP ASSOCIATE refused");
    let relay = std::net::SocketAddr::from((
        [rep[4], rep[5], rep[6], rep[7]],
        u16::from_be_bytes([rep[8], rep[9]]),
    ));
    let u = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut d = vec![0, 0, 0, 1];
    if let std::net::IpAddr::V4(ip) = echo.ip() {
        d.extend_from_slice(&ip.octets());
    }
    d.extend_from_slice(&echo.port().to_be_bytes());
    d.extend_from_slice(msg);
    let mut b = [0u8; 2048];
    // UDP may be lost before the association is fully up: a few bounded attempts.
    for _ in 0..5 {
        u.send_to(&d, relay).await.unwrap();
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), u.recv(&mut b)).await {
            drop(c);
            return b[10..n].to_vec();
        }
    }
    panic!("no UDP reply through the SOCKS5 relay at {relay}");
}

#[tokio::test(flavor = "multi_thread")]
async fn udp_through_socks5_and_relay() {
    let (echo, slot) = guarded_udp_echo().await;
    let (p, p2, q, u) = (free_port(), free_port(), free_port(), free_port());
    let servers = start(vec![
        // A UDP association forwarded into a relay chain is BIND|UDP: needs bind=true.
        (
            args(&["-L".into(), format!("relay://127.0.0.1:{p}?bind=true")]),
            vec![p],
        ),
        (
            args(&["-L".into(), format!("relay+mws://127.0.0.1:{p2}")]),
            vec![p2],
        ),
    ])
    .await;
    let _clients = start(vec![
        (
            args(&[
                "-L".into(),
                format!("socks5://127.0.0.1:{q}?udp=true"),
                "-F".into(),
                format!("relay://127.0.0.1:{p}"),
            ]),
            vec![q],
        ),
        (
            // UDP port forwarding through relay CONNECT|UDP over mws.
            args(&[
                "-L".into(),
                format!("udp://127.0.0.1:{u}/{echo}?keepalive=true"),
                "-F".into(),
                format!("relay+mws://127.0.0.1:{p2}"),
            ]),
            vec![],
        ),
    ])
    .await;
    slot.store(servers[0].pid(), SeqCst);
    assert_eq!(socks5_udp(q, echo, b"via-relay").await, b"echo:via-relay");
    slot.store(servers[1].pid(), SeqCst);
    let c = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut got = None;
    let mut b = [0u8; 2048];
    for _ in 0..10 {
        c.send_to(b"fwd", ("127.0.0.1", u)).await.unwrap();
        if let Ok(Ok(n)) =
            tokio::time::timeout(std::time::Duration::from_secs(1), c.recv(&mut b)).await
        {
            got = Some(b[..n].to_vec());
            break;
        }
    }
    assert_eq!(got.as_deref(), Some(&b"echo:fwd"[..]));
}

/// Polls (≤10 s) until a request through `port` returns the origin body.
async fn eventually_origin(port: u16, logs: impl Fn() -> String) {
    for _ in 0..40 {
        let r = curl_async(vec![
            "--max-time".into(),
            "2".into(),
            format!("http://127.0.0.1:{port}/"),
        ])
        .await;
        if r == (0, ORIGIN_BODY.to_string()) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!("remote port {port} never served the origin: {}", logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn rtcp_through_relay_nodes() {
    let (o, slot) = guarded_origin().await;
    let (p, p2, r1, r2) = (free_port(), free_port(), free_port(), free_port());
    let servers = start(vec![
        (
            args(&["-L".into(), format!("relay://127.0.0.1:{p}?bind=true")]),
            vec![p],
        ),
        (
            args(&[
                "-L".into(),
                format!("relay+mtls://127.0.0.1:{p2}?bind=true"),
            ]),
            vec![p2],
        ),
    ])
    .await;
    let clients = start(vec![
        (
            args(&[
                "-L".into(),
                format!("rtcp://127.0.0.1:{r1}/{o}"),
                "-F".into(),
                format!("relay://127.0.0.1:{p}"),
            ]),
            vec![],
        ),
        (
            args(&[
                "-L".into(),
                format!("rtcp://127.0.0.1:{r2}/{o}"),
                "-F".into(),
                format!("relay+mtls://127.0.0.1:{p2}"),
            ]),
            vec![],
        ),
    ])
    .await;
    let logs = || {
        servers
            .iter()
            .chain(clients.iter())
            .map(Proxy::logs)
            .collect::<Vec<_>>()
            .join("\n")
    };
    // The rtcp client dials the target itself; the reverse ports are the nodes'.
    slot.store(clients[1].pid(), SeqCst);
    eventually_origin(r2, logs).await;
    assert!(port_held_by(servers[1].pid(), "tcp", r2), "{}", logs());
    slot.store(clients[0].pid(), SeqCst);
    eventually_origin(r1, logs).await;
    assert!(port_held_by(servers[0].pid(), "tcp", r1), "{}", logs());
    assert!(!port_held_by(clients[0].pid(), "tcp", r1));
    // Several connections over the same reverse session.
    for _ in 0..3 {
        let r = curl_async(vec![format!("http://127.0.0.1:{r1}/")]).await;
        assert_eq!(r, (0, ORIGIN_BODY.to_string()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rtcp_without_bind_permission_is_refused_and_retried() {
    let o = origin().await;
    let (p, r) = (free_port(), free_port());
    let _s = start(vec![(
        args(&["-L".into(), format!("relay://127.0.0.1:{p}")]),
        vec![p],
    )])
    .await;
    let c = start(vec![(
        args(&[
            "-L".into(),
            format!("rtcp://127.0.0.1:{r}/{o}"),
            "-F".into(),
            format!("relay://127.0.0.1:{p}"),
        ]),
        vec![],
    )])
    .await;
    // The port never opens; the listener keeps retrying with backoff and logs why.
    let mut seen = false;
    for _ in 0..50 {
        if c[0].logs().contains("status 3") {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(seen, "{}", c[0].logs());
    assert!(std::net::TcpStream::connect(("127.0.0.1", r)).is_err());
}

fn write_pki(dir: &std::path::Path) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "kubegost test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    for (name, san) in [("server", "localhost"), ("client", "client")] {
        let key = KeyPair::generate().unwrap();
        let p = CertificateParams::new(vec![san.to_string()]).unwrap();
        let cert = p.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_requires_a_client_certificate() {
    let (o, slot) = guarded_origin().await;
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path());
    let f = |n: &str| dir.path().join(n).display().to_string();
    let (p, good, nocert, insecure) = (free_port(), free_port(), free_port(), free_port());
    let s = start(vec![(
        args(&[
            "-L".into(),
            format!(
                "relay+tls://127.0.0.1:{p}?certFile={}&keyFile={}&caFile={}",
                f("server.pem"),
                f("server.key"),
                f("ca.pem")
            ),
        ]),
        vec![p],
    )])
    .await;
    slot.store(s[0].pid(), SeqCst);
    let _c = start(vec![
        (
            args(&[
                "-L".into(),
                format!("http://127.0.0.1:{good}"),
                "-F".into(),
                format!(
                    "relay+tls://127.0.0.1:{p}?cert={}&key={}&ca={}&secure=true&serverName=localhost",
                    f("client.pem"),
                    f("client.key"),
                    f("ca.pem")
                ),
            ]),
            vec![good],
        ),
        (
            args(&[
                "-L".into(),
                format!("http://127.0.0.1:{nocert}"),
                "-F".into(),
                format!("relay+tls://127.0.0.1:{p}"),
            ]),
            vec![nocert],
        ),
        (
            // Verifies the server against a CA that did not sign it: refused.
            args(&[
                "-L".into(),
                format!("http://127.0.0.1:{insecure}"),
                "-F".into(),
                format!(
                    "relay+tls://127.0.0.1:{p}?cert={}&key={}&ca={}&secure=true&serverName=localhost",
                    f("client.pem"),
                    f("client.key"),
                    f("client.pem")
                ),
            ]),
            vec![insecure],
        ),
    ])
    .await;
    let url = format!("http://{o}/");
    let ok = curl_async(vec![
        "-x".into(),
        format!("http://127.0.0.1:{good}"),
        url.clone(),
    ])
    .await;
    assert_eq!(ok, (0, ORIGIN_BODY.to_string()));
    let (a, b) = tokio::task::spawn_blocking(move || {
        (
            curl_status(&["-x", &format!("http://127.0.0.1:{nocert}"), &url]),
            curl_status(&["-x", &format!("http://127.0.0.1:{insecure}"), &url]),
        )
    })
    .await
    .unwrap();
    assert_eq!((a.as_str(), b.as_str()), ("503", "503"));
}

/// No `tls:` object: `cert.pem` + `key.pem` in the working directory are the default server
/// certificate (a verifying client accepts it), and `ca.pem` next to them makes the default
/// config require client certificates (GOST v3.2.6).
#[tokio::test(flavor = "multi_thread")]
async fn global_tls_defaults_come_from_the_working_directory() {
    let (o, slot) = guarded_origin().await;
    let pki = tempfile::tempdir().unwrap();
    write_pki(pki.path());
    let f = |n: &str| pki.path().join(n).display().to_string();
    let (plain, mutual) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for d in [plain.path(), mutual.path()] {
        std::fs::copy(pki.path().join("server.pem"), d.join("cert.pem")).unwrap();
        std::fs::copy(pki.path().join("server.key"), d.join("key.pem")).unwrap();
    }
    std::fs::copy(pki.path().join("ca.pem"), mutual.path().join("ca.pem")).unwrap();
    let (p1, p2) = (free_port(), free_port());
    let (d1, d2) = (plain.path().to_path_buf(), mutual.path().to_path_buf());
    let servers = tokio::task::spawn_blocking(move || {
        let l1 = format!("relay+tls://127.0.0.1:{p1}");
        let l2 = format!("relay+tls://127.0.0.1:{p2}");
        (
            Proxy::start_in(Some(&d1), &["-L", &l1], &[p1], &[]),
            Proxy::start_in(Some(&d2), &["-L", &l2], &[p2], &[]),
        )
    })
    .await
    .unwrap();
    let verify = format!("secure=true&serverName=localhost&ca={}", f("ca.pem"));
    let with_cert = format!("{verify}&cert={}&key={}", f("client.pem"), f("client.key"));
    let (c1, c2, c3) = (free_port(), free_port(), free_port());
    let _clients = start(vec![
        (
            args(&[
                "-L".into(),
                format!("http://127.0.0.1:{c1}"),
                "-F".into(),
                format!("relay+tls://127.0.0.1:{p1}?{verify}"),
            ]),
            vec![c1],
        ),
        (
            args(&[
                "-L".into(),
                format!("http://127.0.0.1:{c2}"),
                "-F".into(),
                format!("relay+tls://127.0.0.1:{p2}?{with_cert}"),
            ]),
            vec![c2],
        ),
        (
            args(&[
                "-L".into(),
                format!("http://127.0.0.1:{c3}"),
                "-F".into(),
                format!("relay+tls://127.0.0.1:{p2}?{verify}"),
            ]),
            vec![c3],
        ),
    ])
    .await;
    let url = format!("http://{o}/");
    let (s1, s2) = (servers.0.pid(), servers.1.pid());
    let (a, b, c) = tokio::task::spawn_blocking(move || {
        let x = |p: u16| format!("http://127.0.0.1:{p}");
        slot.store(s1, SeqCst);
        let a = curl(&["-x", &x(c1), &url]);
        slot.store(s2, SeqCst);
        (
            a,
            curl(&["-x", &x(c2), &url]),
            curl_status(&["-x", &x(c3), &url]),
        )
    })
    .await
    .unwrap();
    let ok = (0, ORIGIN_BODY.to_string());
    assert_eq!((a, b, c.as_str()), (ok.clone(), ok, "503"));
}

#[tokio::test(flavor = "multi_thread")]
async fn rtcp_through_socks5_mbind() {
    let (o, slot) = guarded_origin().await;
    let (p, r) = (free_port(), free_port());
    let s = start(vec![(
        args(&["-L".into(), format!("socks5+mws://127.0.0.1:{p}?bind=true")]),
        vec![p],
    )])
    .await;
    let c = start(vec![(
        args(&[
            "-L".into(),
            format!("rtcp://127.0.0.1:{r}/{o}"),
            "-F".into(),
            format!("socks5+mws://127.0.0.1:{p}"),
        ]),
        vec![],
    )])
    .await;
    slot.store(c[0].pid(), SeqCst);
    eventually_origin(r, || format!("{}\n{}", s[0].logs(), c[0].logs())).await;
    assert!(
        port_held_by(s[0].pid(), "tcp", r),
        "the node holds the reverse port"
    );
    for _ in 0..3 {
        let got = curl_async(vec![format!("http://127.0.0.1:{r}/")]).await;
        assert_eq!(got, (0, ORIGIN_BODY.to_string()));
    }
}

/// A GOST-style client selecting the private TLS method 0x80: TLS, then CONNECT inside it.
#[tokio::test(flavor = "multi_thread")]
async fn socks5_server_accepts_gost_tls_method() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (o, slot) = guarded_origin().await;
    let p = free_port();
    let s = start(vec![(
        args(&["-L".into(), format!("socks5://127.0.0.1:{p}")]),
        vec![p],
    )])
    .await;
    slot.store(s[0].pid(), SeqCst);
    let mut c = tokio::net::TcpStream::connect(("127.0.0.1", p))
        .await
        .unwrap();
    c.write_all(&[5, 2, 0x00, 0x80]).await.unwrap();
    let mut m = [0u8; 2];
    c.read_exact(&mut m).await.unwrap();
    assert_eq!(m, [5, 0x80]);
    let tls = gost_engine::tls::client_config("test", None, "127.0.0.1:1").unwrap();
    let mut t = gost_engine::tls::connect(&tls, Box::new(c), std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let mut req = vec![5, 1, 0, 1, 127, 0, 0, 1];
    req.extend_from_slice(&o.port().to_be_bytes());
    t.write_all(&req).await.unwrap();
    t.flush().await.unwrap();
    let mut rep = [0u8; 10];
    t.read_exact(&mut rep).await.unwrap();
    assert_eq!(rep[1], 0);
    t.write_all(b"GET / HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    t.flush().await.unwrap();
    let mut resp = Vec::new();
    let mut b = [0u8; 4096];
    // The origin keeps the connection open: read until the body is complete (bounded).
    while !resp.ends_with(ORIGIN_BODY.as_bytes()) {
        match tokio::time::timeout(std::time::Duration::from_secs(5), t.read(&mut b)).await {
            Ok(Ok(n)) if n > 0 => resp.extend_from_slice(&b[..n]),
            _ => break,
        }
    }
    assert!(
        String::from_utf8_lossy(&resp).ends_with(ORIGIN_BODY),
        "{}",
        String::from_utf8_lossy(&resp)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sni_handler_routes_http_by_host() {
    let (o, slot) = guarded_origin().await;
    let p = free_port();
    let s = start(vec![(
        args(&[
            "-L".into(),
            format!("sni://127.0.0.1:{p}?hosts=origin.kubegost.test:127.0.0.1"),
        ]),
        vec![p],
    )])
    .await;
    slot.store(s[0].pid(), SeqCst);
    let got = curl_async(vec![
        "-H".into(),
        format!("Host: origin.kubegost.test:{}", o.port()),
        format!("http://127.0.0.1:{p}/"),
    ])
    .await;
    assert_eq!(got, (0, ORIGIN_BODY.to_string()));
}
