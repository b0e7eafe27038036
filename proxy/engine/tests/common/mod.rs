//! Shared harness for the engine's integration tests: a loopback HTTP origin, a UDP echo
//! server, the real `gost-proxy` binary as a child process, curl as the client. Every socket
//! is on 127.0.0.1; every wait is bounded.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Body every origin response carries.
pub const ORIGIN_BODY: &str = "hello from the kubegost test origin\n";

/// Ports handed out by [`free_port`] come from below the kernel's ephemeral range
/// (32768–60999 here), so no `bind(0)` and no outgoing connection can take one between the
/// moment a test picks it and the moment the proxy binds it; a process-wide counter makes sure
/// no two tests of one binary get the same port, and each binary starts at an offset derived
/// from its PID so binaries run back to back do not reuse each other's ports at once.
const PORT_BASE: u32 = 20000;
const PORT_SPAN: u32 = 12000;
static NEXT_PORT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A free loopback port, usable for both TCP and UDP, never handed out twice in this process.
pub fn free_port() -> u16 {
    let offset = (std::process::id() % 48) * 250;
    for _ in 0..PORT_SPAN {
        let n = NEXT_PORT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = (PORT_BASE + (offset + n) % PORT_SPAN) as u16;
        let tcp = TcpListener::bind(("127.0.0.1", p)).is_ok();
        if tcp && std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no free port in {PORT_BASE}..{}", PORT_BASE + PORT_SPAN)
}

/// A minimal HTTP/1.1 origin on 127.0.0.1: answers every request with [`ORIGIN_BODY`]
/// (or `/slow`: streams 1 MiB slowly; `/big`: 4 MiB at once).
pub async fn origin() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(serve_heads(s, None));
        }
    });
    addr
}

/// A UDP server on 127.0.0.1 that sends each datagram's `replies(payload, sender)` back to
/// its sender (none: no answer).
pub async fn udp_responder<F>(replies: F) -> SocketAddr
where
    F: Fn(&[u8], SocketAddr) -> Vec<Vec<u8>> + Send + 'static,
{
    let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = s.local_addr().unwrap();
    tokio::spawn(async move {
        let mut b = [0u8; 2048];
        loop {
            let Ok((n, from)) = s.recv_from(&mut b).await else {
                return;
            };
            for r in replies(&b[..n], from) {
                let _ = s.send_to(&r, from).await;
            }
        }
    });
    addr
}

/// `echo:` + the payload.
fn echo_reply(payload: &[u8]) -> Vec<u8> {
    [b"echo:".as_slice(), payload].concat()
}

/// A UDP echo server on 127.0.0.1 (prefixes replies with `echo:`).
pub async fn udp_echo() -> SocketAddr {
    udp_responder(|p, _| vec![echo_reply(p)]).await
}

/// The `gost-proxy` binary built by cargo for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gost-proxy"))
}

/// The reference GOST v3.2.6 binary: `$KUBEGOST_GOST_BIN`, else
/// `../shared/tools/gost-v3.2.6/gost` relative to the project root. Panics naming the path when
/// it is missing: interop tests fail, they never skip.
pub fn gost_bin() -> PathBuf {
    let p = match std::env::var_os("KUBEGOST_GOST_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/gost-v3.2.6/gost")
        }
    };
    assert!(
        p.is_file(),
        "the reference gost binary is missing at {} (the project expects \
         ../shared/tools/gost-v3.2.6/gost beside the repository, or KUBEGOST_GOST_BIN)",
        p.display()
    );
    p
}

/// Socket inodes open in process `pid` (from `/proc/<pid>/fd`).
pub fn socket_inodes(pid: u32) -> std::collections::HashSet<u64> {
    let mut out = std::collections::HashSet::new();
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return out;
    };
    for e in rd.flatten() {
        if let Ok(t) = std::fs::read_link(e.path()) {
            let t = t.to_string_lossy();
            if let Some(n) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                if let Ok(n) = n.parse() {
                    out.insert(n);
                }
            }
        }
    }
    out
}

/// One row of `/proc/net/{tcp,tcp6,udp,udp6}`: local, remote, state, inode.
pub struct SockRow {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: u8,
    pub inode: u64,
}

fn proc_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip: std::net::IpAddr = match ip.len() {
        8 => std::net::Ipv4Addr::from(u32::from_str_radix(ip, 16).ok()?.to_ne_bytes()).into(),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                let w = u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).ok()?;
                b[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
            let v6 = std::net::Ipv6Addr::from(b);
            match v6.to_ipv4_mapped() {
                Some(v4) => v4.into(),
                None => v6.into(),
            }
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The sockets of one protocol family (`tcp` or `udp`, v4 and v6).
pub fn proc_sockets(proto: &str) -> Vec<SockRow> {
    let mut out = Vec::new();
    for f in [format!("/proc/net/{proto}"), format!("/proc/net/{proto}6")] {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let c: Vec<&str> = line.split_whitespace().collect();
            if c.len() < 10 {
                continue;
            }
            let (Some(local), Some(remote)) = (proc_addr(c[1]), proc_addr(c[2])) else {
                continue;
            };
            out.push(SockRow {
                local,
                remote,
                state: u8::from_str_radix(c[3], 16).unwrap_or(0),
                inode: c[9].parse().unwrap_or(0),
            });
        }
    }
    out
}

/// Whether the TCP connection whose client end is `peer` (as an origin sees it) and whose
/// server end is `local` was opened by process `pid`.
pub fn tcp_peer_is(pid: u32, peer: SocketAddr, local: SocketAddr) -> bool {
    let mine = socket_inodes(pid);
    proc_sockets("tcp")
        .iter()
        .any(|r| r.local == peer && r.remote == local && mine.contains(&r.inode))
}

/// Whether the UDP socket that sent from `peer` belongs to process `pid` (an unconnected
/// socket may be bound to the wildcard address).
pub fn udp_peer_is(pid: u32, peer: SocketAddr) -> bool {
    let mine = socket_inodes(pid);
    proc_sockets("udp").iter().any(|r| {
        r.local.port() == peer.port()
            && (r.local.ip() == peer.ip() || r.local.ip().is_unspecified())
            && mine.contains(&r.inode)
    })
}

/// Whether process `pid` holds a listening TCP socket (`proto` `tcp`) or a bound UDP socket
/// (`udp`) on `port`.
pub fn port_held_by(pid: u32, proto: &str, port: u16) -> bool {
    let mine = socket_inodes(pid);
    proc_sockets(proto).iter().any(|r| {
        r.local.port() == port && (proto != "tcp" || r.state == 0x0A) && mine.contains(&r.inode)
    })
}

/// Answers every request head on `s` as [`origin`] does (`/slow`, `/big`, else
/// [`ORIGIN_BODY`]), or with `403` and `deny` as the body when given.
async fn serve_heads(mut s: tokio::net::TcpStream, deny: Option<String>) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        let n = match s.read(&mut tmp).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&tmp[..n]);
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            buf.drain(..end + 4);
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            if deny.is_none() && path.ends_with("/slow") {
                let chunk = vec![b'x'; 64 * 1024];
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                    16 * chunk.len()
                );
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for _ in 0..16 {
                    if s.write_all(&chunk).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
                continue;
            }
            let (status, body) = match &deny {
                Some(why) => ("403 Forbidden", why.clone()),
                None if path.ends_with("/big") => ("200 OK", "y".repeat(4 << 20)),
                None => ("200 OK", ORIGIN_BODY.to_string()),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if s.write_all(resp.as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

/// The PID a guarded server admits (0: nobody yet).
pub type PidSlot = std::sync::Arc<std::sync::atomic::AtomicU32>;

/// Accepts on `l` until the runtime ends and spawns `serve(stream, peer, pid, admitted)` for
/// each connection, `admitted` being whether the process in the returned slot opened it.
fn guarded_accept<F, Fut>(l: tokio::net::TcpListener, serve: F) -> PidSlot
where
    F: Fn(tokio::net::TcpStream, SocketAddr, u32, bool) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let addr = l.local_addr().unwrap();
    let slot = PidSlot::default();
    let allowed = slot.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, peer)) = l.accept().await else {
                return;
            };
            let pid = allowed.load(std::sync::atomic::Ordering::SeqCst);
            let admitted = pid != 0 && tcp_peer_is(pid, peer, addr);
            tokio::spawn(serve(s, peer, pid, admitted));
        }
    });
    slot
}

/// An HTTP origin on 127.0.0.1 that serves [`ORIGIN_BODY`] only to connections opened by the
/// process whose PID is in the returned slot (set it once the last chain node runs); anyone
/// else, a client that skipped the chain included, gets `403` naming the PID it came from.
pub async fn guarded_origin() -> (SocketAddr, PidSlot) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let slot = guarded_accept(l, |s, peer, pid, admitted| {
        let deny = (!admitted).then(|| {
            format!("guarded origin: connection from {peer} is not from the last chain node (pid {pid})\n")
        });
        serve_heads(s, deny)
    });
    (addr, slot)
}

/// A UDP echo on 127.0.0.1 that answers (`echo:` + payload) only datagrams sent by the process
/// in the returned PID slot; others get no answer, so a bypassed chain times out.
pub async fn guarded_udp_echo() -> (SocketAddr, PidSlot) {
    let slot = PidSlot::default();
    let allowed = slot.clone();
    let addr = udp_responder(move |p, from| {
        let pid = allowed.load(std::sync::atomic::Ordering::SeqCst);
        if pid != 0 && udp_peer_is(pid, from) {
            vec![echo_reply(p)]
        } else {
            vec![]
        }
    })
    .await;
    (addr, slot)
}

/// A running `gost-proxy` (or `gost`), killed on drop.
pub struct Proxy {
    pub child: Child,
    pub log: PathBuf,
    /// The program's file name (`gost-proxy` or `gost`), for messages.
    pub name: String,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// Starts `gost-proxy` with `args` and waits until every `ports` accepts TCP.
    pub fn start(args: &[&str], ports: &[u16]) -> Proxy {
        Proxy::start_env(args, ports, &[])
    }

    /// Like [`Proxy::start`] with extra environment variables.
    pub fn start_env(args: &[&str], ports: &[u16], env: &[(&str, &str)]) -> Proxy {
        Proxy::start_in(None, args, ports, env)
    }

    /// Like [`Proxy::start_env`], run in working directory `cwd` when given.
    pub fn start_in(
        cwd: Option<&std::path::Path>,
        args: &[&str],
        ports: &[u16],
        env: &[(&str, &str)],
    ) -> Proxy {
        Proxy::start_bin(&bin(), cwd, args, ports, env)
    }

    /// Starts the reference `gost` (see [`gost_bin`]) with `args`, waiting for `ports`.
    pub fn start_gost(args: &[&str], ports: &[u16]) -> Proxy {
        Proxy::start_bin(&gost_bin(), None, args, ports, &[])
    }

    /// Starts any `program` (ours or the reference `gost`) like [`Proxy::start_in`].
    pub fn start_bin(
        program: &std::path::Path,
        cwd: Option<&std::path::Path>,
        args: &[&str],
        ports: &[u16],
        env: &[(&str, &str)],
    ) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("proxy.log");
        let f = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(program);
        if let Some(d) = cwd {
            cmd.current_dir(d);
        }
        let child = cmd
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(f))
            .spawn()
            .unwrap();
        let mut p = Proxy {
            child,
            log,
            name: program
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
            _dir: dir,
        };
        for port in ports {
            p.wait_port(*port);
        }
        p
    }

    /// Waits (≤10 s) until a TCP connect to the port succeeds.
    pub fn wait_port(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("{} exited with {st}: {}", self.name, self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{}: port {port} not listening after 10s: {}",
            self.name,
            self.logs()
        );
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal.
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Waits (≤`secs`) for exit.
    pub fn wait_exit(&mut self, secs: u64) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "gost-proxy did not exit in {secs}s: {}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs curl (10 s max) and returns (exit code, body).
pub fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// curl's HTTP status for a request.
pub fn curl_status(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The status of curl's CONNECT to the proxy (`-p`).
pub fn curl_connect_status(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "10",
            "-p",
            "-o",
            "/dev/null",
            "-w",
            "%{http_connect}",
        ])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Lines of the proxy log containing `needle`.
pub fn grep(text: &str, needle: &str) -> Vec<String> {
    BufReader::new(text.as_bytes())
        .lines()
        .map_while(Result::ok)
        .filter(|l| l.contains(needle))
        .collect()
}

/// Like [`guarded_origin`] behind TLS with a self-signed certificate for `name`, bound to
/// `bind` (the `sni` handler's TLS targets are port 443).
pub async fn guarded_tls_origin(bind: SocketAddr, name: &str) -> (SocketAddr, PidSlot) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(cfg));
    let l = tokio::net::TcpListener::bind(bind)
        .await
        .unwrap_or_else(|e| panic!("the guarded TLS origin cannot bind {bind}: {e}"));
    let addr = l.local_addr().unwrap();
    let slot = guarded_accept(l, move |s, peer, pid, ok| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(mut t) = acceptor.accept(s).await else {
                return;
            };
            let (status, body) = if ok {
                ("200 OK", ORIGIN_BODY.to_string())
            } else {
                (
                    "403 Forbidden",
                    format!("guarded origin: {peer} is not pid {pid}\n"),
                )
            };
            let mut b = [0u8; 4096];
            let _ = t.read(&mut b).await;
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = t.write_all(resp.as_bytes()).await;
            let _ = t.shutdown().await;
        }
    });
    (addr, slot)
}

/// A name only the test nodes' hosts mapper resolves (to 127.0.0.1): a client that goes
/// direct cannot reach it.
pub const SECRET: &str = "secret.kubegost.test";

/// A TCP relay on 127.0.0.1 in front of `to` that carries only connections opened by the
/// process in the returned PID slot and closes any other at once: put it in front of a
/// chain's second node, with the first node's PID, to prove the first hop was taken.
pub async fn guarded_relay(to: SocketAddr) -> (SocketAddr, PidSlot) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let slot = guarded_accept(l, move |mut s, _, _, admitted| async move {
        if !admitted {
            return;
        }
        if let Ok(mut u) = tokio::net::TcpStream::connect(to).await {
            let _ = tokio::io::copy_bidirectional(&mut s, &mut u).await;
        }
    });
    (addr, slot)
}

/// Open file descriptors of process `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Resident memory of process `pid`, KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_string))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// TCP sockets of process `pid` in CLOSE_WAIT (the peer closed, the process did not).
pub fn close_wait_of(pid: u32) -> usize {
    let mine = socket_inodes(pid);
    proc_sockets("tcp")
        .iter()
        .filter(|r| r.state == 0x08 && mine.contains(&r.inode))
        .count()
}

/// Polls (every 100 ms, at most `secs`) until the process's open descriptors are within
/// `slack` of `baseline`; returns the last count.
pub fn fds_settle(pid: u32, baseline: usize, slack: usize, secs: u64) -> usize {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let n = fd_count(pid);
        if n <= baseline + slack || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads a SOCKS5 reply (any address type) and returns its REP field.
pub async fn socks5_reply(s: &mut tokio::net::TcpStream) -> std::io::Result<u8> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h).await?;
    let rest = match h[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => s.read_u8().await? as usize + 2,
        t => {
            return Err(std::io::Error::other(format!(
                "SOCKS5 reply address type {t}"
            )))
        }
    };
    let mut b = vec![0u8; rest];
    s.read_exact(&mut b).await?;
    Ok(h[1])
}

/// A SOCKS5 CONNECT tunnel to the IPv4 `to` through the proxy on 127.0.0.1:`port`, with
/// RFC 1929 user/pass when `auth` is given; an error unless the greeting, the authentication
/// and the CONNECT all succeed.
pub async fn socks5_tunnel(
    port: u16,
    to: SocketAddr,
    auth: Option<(&str, &str)>,
) -> std::io::Result<tokio::net::TcpStream> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let std::net::IpAddr::V4(ip) = to.ip() else {
        return Err(std::io::Error::other(format!("{to}: IPv4 only")));
    };
    let mut req = match auth {
        Some((u, p)) => {
            let mut m = vec![5, 1, 2, 1, u.len() as u8];
            m.extend_from_slice(u.as_bytes());
            m.push(p.len() as u8);
            m.extend_from_slice(p.as_bytes());
            m
        }
        None => vec![5, 1, 0],
    };
    req.extend_from_slice(&[5, 1, 0, 1]);
    req.extend_from_slice(&ip.octets());
    req.extend_from_slice(&to.port().to_be_bytes());
    s.write_all(&req).await?;
    let want: &[u8] = if auth.is_some() {
        &[5, 2, 1, 0]
    } else {
        &[5, 0]
    };
    let mut got = vec![0u8; want.len()];
    s.read_exact(&mut got).await?;
    let rep = socks5_reply(&mut s).await?;
    if got != want || rep != 0 {
        return Err(std::io::Error::other(format!(
            "SOCKS5 greeting/authentication {got:?} (want {want:?}), CONNECT reply {rep}"
        )));
    }
    Ok(s)
}

/// Runs `cmd` inside network namespace `ns`.
pub fn in_ns(ns: &str, cmd: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(cmd)
        .output()
        .unwrap()
}

pub struct Netns(pub String);

impl Netns {
    /// A namespace with `lo` and a veth pair (10.123.0.1/24 and 10.123.0.2/24, both ends
    /// inside it, so the addresses exist only there).
    pub fn new() -> Option<Netns> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "kgtest-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let ok = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .status()
                .is_ok_and(|s| s.success())
        };
        if !ok(&["netns", "add", &name]) {
            return None;
        }
        let ns = Netns(name.clone());
        for args in [
            vec!["-n", &name, "link", "set", "lo", "up"],
            vec![
                "-n", &name, "link", "add", "v0", "type", "veth", "peer", "name", "v1",
            ],
            vec!["-n", &name, "addr", "add", "10.123.0.1/24", "dev", "v0"],
            vec!["-n", &name, "addr", "add", "10.123.0.2/24", "dev", "v1"],
            vec!["-n", &name, "link", "set", "v0", "up"],
            vec!["-n", &name, "link", "set", "v1", "up"],
        ] {
            assert!(ok(&args), "ip {args:?}");
        }
        Some(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Whether a TCP connection to `host:port` succeeds from inside network namespace `ns`.
pub fn connects(ns: &str, host: &str, port: u16) -> bool {
    in_ns(
        ns,
        &["bash", "-c", &format!("exec 3<>/dev/tcp/{host}/{port}")],
    )
    .status
    .success()
}
