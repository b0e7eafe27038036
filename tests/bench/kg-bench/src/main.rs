//! `kg-bench`: the load client and servers of the side-by-side benchmarks
//! (`tests/bench/compare.sh`). wrk cannot speak SOCKS5 and iperf3 speaks no proxy protocol, so
//! this one tool reaches a target directly, through a SOCKS5 proxy (RFC 1928 CONNECT and UDP
//! ASSOCIATE) or through an HTTP CONNECT proxy, and records latencies in an HDR histogram.
//! Everything binds and dials loopback addresses given on the command line; every run is
//! bounded by `--secs`. Each client command prints one JSON object on stdout.
//!
//! ```text
//! kg-bench serve --tcp 127.0.0.1:P --udp 127.0.0.1:Q     # stream / echo server, UDP echo
//! kg-bench tcp  --target 127.0.0.1:P [--via socks5://H:P|http://H:P] --streams 1 --secs 3
//! kg-bench cps  --target 127.0.0.1:P [--via …] --concurrency 32 --secs 3
//! kg-bench udp  --target 127.0.0.1:Q [--via socks5://H:P] --pps 40000,80000 --secs 3
//! kg-bench hold --target 127.0.0.1:P --via … --count 1000 --secs 30   # idle tunnels
//! kg-bench startup --port P -- gost-proxy -L http://127.0.0.1:P     # exec → accept, RSS
//! kg-bench apiupdate --api 127.0.0.1:A --target 127.0.0.1:P --ports 41000-41099
//! kg-bench report results.jsonl                            # markdown table of ratios
//! kg-bench baseline results.jsonl > baseline.json           # median ratios of a run
//! kg-bench check results.jsonl baseline.json                # fail below 0.75 x baseline
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// Mode byte a client sends first: stream data back for a number of milliseconds.
const MODE_STREAM: u8 = b'D';
/// Mode byte: echo until end of input.
const MODE_ECHO: u8 = b'E';
/// Read/write buffer of the stream mode (what iperf3 uses by default on TCP).
const BUF: usize = 128 * 1024;

fn usage() -> ! {
    eprintln!(
        "usage: kg-bench serve --tcp ADDR [--udp ADDR]\n\
         \x20      kg-bench tcp --target ADDR [--via URL] [--streams N] [--secs S]\n\
         \x20      kg-bench cps --target ADDR [--via URL] [--concurrency N] [--secs S]\n\
         \x20      kg-bench udp --target ADDR [--via socks5://H:P] [--pps N] [--size B] [--secs S]\n\
         \x20      kg-bench hold --target ADDR --via URL [--count N] [--secs S]\n\
         \x20      kg-bench startup --port P [--settle-ms MS] -- COMMAND…\n\
         \x20      kg-bench apiupdate --api ADDR --target ADDR --ports A-B [--service NAME] [--updates N]\n\
         \x20      kg-bench report FILE.jsonl | baseline FILE.jsonl | check FILE.jsonl BASELINE.json"
    );
    std::process::exit(64)
}

/// `--key value` pairs after the subcommand.
struct Flags(BTreeMap<String, String>);

impl Flags {
    fn parse(args: &[String]) -> Result<Flags> {
        let mut m = BTreeMap::new();
        let mut it = args.iter();
        while let Some(k) = it.next() {
            let Some(name) = k.strip_prefix("--") else {
                bail!("unexpected argument {k:?} (flags are --name value)");
            };
            let v = it
                .next()
                .with_context(|| format!("--{name} needs a value"))?;
            m.insert(name.to_string(), v.clone());
        }
        Ok(Flags(m))
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
    fn num(&self, k: &str, default: u64) -> Result<u64> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .with_context(|| format!("--{k} {v:?}: expected a whole number")),
        }
    }
    fn addr(&self, k: &str) -> Result<SocketAddr> {
        let v = self.get(k).with_context(|| format!("--{k} is required"))?;
        let a: SocketAddr = v
            .parse()
            .with_context(|| format!("--{k} {v:?}: expected ip:port"))?;
        if !a.ip().is_loopback() {
            bail!("--{k} {a}: only loopback addresses are used by the benchmarks");
        }
        Ok(a)
    }
    fn via(&self) -> Result<Via> {
        match self.get("via") {
            None | Some("direct") => Ok(Via::Direct),
            Some(u) => {
                let (scheme, rest) = u.split_once("://").with_context(|| {
                    format!("--via {u:?}: expected socks5://ip:port or http://ip:port")
                })?;
                let a: SocketAddr = rest
                    .trim_end_matches('/')
                    .parse()
                    .with_context(|| format!("--via {u:?}: expected ip:port after the scheme"))?;
                if !a.ip().is_loopback() {
                    bail!("--via {a}: only loopback proxies are used by the benchmarks");
                }
                match scheme {
                    "socks5" => Ok(Via::Socks5(a)),
                    "http" => Ok(Via::Http(a)),
                    s => bail!("--via scheme {s:?}: accepted socks5, http, direct"),
                }
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Via {
    Direct,
    Socks5(SocketAddr),
    Http(SocketAddr),
}

fn socks_addr(target: SocketAddr, out: &mut Vec<u8>) {
    match target {
        SocketAddr::V4(a) => {
            out.push(1);
            out.extend_from_slice(&a.ip().octets());
        }
        SocketAddr::V6(a) => {
            out.push(4);
            out.extend_from_slice(&a.ip().octets());
        }
    }
    out.extend_from_slice(&target.port().to_be_bytes());
}

/// Reads a SOCKS5 reply (`VER REP RSV ATYP BND.ADDR BND.PORT`); returns the bound address.
async fn socks_reply(s: &mut TcpStream) -> Result<SocketAddr> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h).await?;
    if h[0] != 5 || h[1] != 0 {
        bail!("SOCKS5 reply {h:?}");
    }
    let ip: std::net::IpAddr = match h[3] {
        1 => {
            let mut b = [0u8; 4];
            s.read_exact(&mut b).await?;
            b.into()
        }
        4 => {
            let mut b = [0u8; 16];
            s.read_exact(&mut b).await?;
            b.into()
        }
        3 => {
            let n = s.read_u8().await? as usize;
            let mut b = vec![0u8; n];
            s.read_exact(&mut b).await?;
            "127.0.0.1".parse()?
        }
        t => bail!("SOCKS5 reply address type {t}"),
    };
    let port = s.read_u16().await?;
    Ok(SocketAddr::new(ip, port))
}

async fn socks_greet(s: &mut TcpStream) -> Result<()> {
    s.write_all(&[5, 1, 0]).await?;
    let mut m = [0u8; 2];
    s.read_exact(&mut m).await?;
    if m != [5, 0] {
        bail!("SOCKS5 method reply {m:?}");
    }
    Ok(())
}

/// A TCP stream to `target`, directly or through the proxy.
async fn open(via: Via, target: SocketAddr) -> Result<TcpStream> {
    match via {
        Via::Direct => Ok(TcpStream::connect(target).await?),
        Via::Socks5(p) => {
            let mut s = TcpStream::connect(p).await?;
            s.set_nodelay(true)?;
            socks_greet(&mut s).await?;
            let mut req = vec![5, 1, 0];
            socks_addr(target, &mut req);
            s.write_all(&req).await?;
            socks_reply(&mut s).await?;
            Ok(s)
        }
        Via::Http(p) => {
            let mut s = TcpStream::connect(p).await?;
            s.set_nodelay(true)?;
            s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
                .await?;
            // the head, byte by byte up to the blank line (nothing else is sent before it)
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                if head.len() > 8192 {
                    bail!("HTTP CONNECT reply head over 8 KiB");
                }
                head.push(s.read_u8().await?);
            }
            if !head.starts_with(b"HTTP/1.1 200") && !head.starts_with(b"HTTP/1.0 200") {
                bail!(
                    "HTTP CONNECT answered {:?}",
                    String::from_utf8_lossy(&head).lines().next().unwrap_or("")
                );
            }
            Ok(s)
        }
    }
}

// ---- servers

async fn serve_conn(mut s: TcpStream) -> Result<()> {
    s.set_nodelay(true)?;
    match s.read_u8().await? {
        MODE_STREAM => {
            let ms = s.read_u32().await?;
            let until = Instant::now() + Duration::from_millis(u64::from(ms));
            let buf = vec![0x5a; BUF];
            while Instant::now() < until {
                s.write_all(&buf).await?;
            }
            s.shutdown().await?;
        }
        MODE_ECHO => {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = s.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                s.write_all(&buf[..n]).await?;
            }
        }
        m => bail!("unknown mode byte {m}"),
    }
    Ok(())
}

async fn serve(f: &Flags) -> Result<()> {
    let tcp = TcpListener::bind(f.addr("tcp")?).await?;
    if f.get("udp").is_some() {
        let udp = UdpSocket::bind(f.addr("udp")?).await?;
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
                let _ = udp.send_to(&buf[..n], peer).await;
            }
        });
    }
    loop {
        let (s, _) = tcp.accept().await?;
        tokio::spawn(async move {
            let _ = serve_conn(s).await;
        });
    }
}

// ---- clients

/// Bulk download: `streams` connections, each receiving for `secs`; throughput counted from
/// the first byte to the end of the slowest stream.
async fn tcp(f: &Flags) -> Result<serde_json::Value> {
    let (via, target) = (f.via()?, f.addr("target")?);
    let streams = f.num("streams", 1)?.clamp(1, 256);
    let secs = f.num("secs", 3)?.clamp(1, 60);
    let mut tasks = Vec::new();
    let t0 = Instant::now();
    for _ in 0..streams {
        tasks.push(tokio::spawn(async move {
            let mut s = open(via, target).await?;
            s.write_u8(MODE_STREAM).await?;
            s.write_u32(u32::try_from(secs * 1000)?).await?;
            let mut buf = vec![0u8; BUF];
            let mut n = 0u64;
            loop {
                let k = s.read(&mut buf).await?;
                if k == 0 {
                    break;
                }
                n += k as u64;
            }
            anyhow::Ok(n)
        }));
    }
    let mut bytes = 0;
    for t in tasks {
        bytes += tokio::time::timeout(Duration::from_secs(secs + 30), t)
            .await
            .context("a stream did not end")???;
    }
    let took = t0.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "bytes": bytes, "seconds": took, "streams": streams,
        "gbps": bytes as f64 * 8.0 / took / 1e9,
    }))
}

/// New connections per second: `concurrency` loops, each opening a connection (through the
/// proxy: a tunnel), sending 64 bytes, reading them back and closing, for `secs`.
async fn cps(f: &Flags) -> Result<serde_json::Value> {
    let (via, target) = (f.via()?, f.addr("target")?);
    let conc = f.num("concurrency", 32)?.clamp(1, 1024);
    let secs = f.num("secs", 3)?.clamp(1, 60);
    let until = Instant::now() + Duration::from_secs(secs);
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let t0 = Instant::now();
    for _ in 0..conc {
        let failed = Arc::clone(&failed);
        tasks.push(tokio::spawn(async move {
            let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let msg = [0x42u8; 64];
            while Instant::now() < until {
                let t = Instant::now();
                let one = async {
                    let mut s = open(via, target).await?;
                    s.set_nodelay(true)?;
                    let mut first = vec![MODE_ECHO];
                    first.extend_from_slice(&msg);
                    s.write_all(&first).await?;
                    let mut back = [0u8; 64];
                    s.read_exact(&mut back).await?;
                    anyhow::ensure!(back == msg, "echo differs");
                    anyhow::Ok(())
                };
                match tokio::time::timeout(Duration::from_secs(10), one).await {
                    Ok(Ok(())) => {
                        h.saturating_record(t.elapsed().as_micros().max(1) as u64);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            anyhow::Ok(h)
        }));
    }
    let mut all = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for t in tasks {
        all.add(t.await??)?;
    }
    let took = t0.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "connections": all.len(), "failed": failed.load(Ordering::Relaxed), "seconds": took,
        "cps": all.len() as f64 / took,
        "p50_ms": all.value_at_quantile(0.5) as f64 / 1e3,
        "p99_ms": all.value_at_quantile(0.99) as f64 / 1e3,
    }))
}

/// UDP datagrams of `size` bytes to an echo, directly (or to a forwarding proxy's port) or
/// through SOCKS5 UDP ASSOCIATE, at each rate of `--pps` (a comma-separated ramp) for `secs`;
/// counts the echoes. `pps_ok` is the highest rate whose loss stayed at or below 1 %.
async fn udp(f: &Flags) -> Result<serde_json::Value> {
    let (via, target) = (f.via()?, f.addr("target")?);
    let rates: Vec<u64> = f
        .get("pps")
        .unwrap_or("50000")
        .split(',')
        .map(|r| {
            r.trim()
                .parse::<u64>()
                .map(|r| r.clamp(1, 2_000_000))
                .with_context(|| format!("--pps {r:?}: expected whole numbers, comma-separated"))
        })
        .collect::<Result<_>>()?;
    let size = f.num("size", 64)?.clamp(16, 1400) as usize;
    let secs = f.num("secs", 3)?.clamp(1, 60);
    let mut steps = Vec::new();
    let mut ok = 0.0f64;
    for pps in rates {
        let r = udp_rate(via, target, pps, size, secs).await?;
        let loss = r["loss_pct"].as_f64().unwrap_or(100.0);
        if loss <= 1.0 {
            ok = ok.max(r["pps_sent"].as_f64().unwrap_or(0.0));
        }
        steps.push(r);
    }
    Ok(serde_json::json!({"pps_ok": ok, "size": size, "steps": steps}))
}

async fn udp_rate(
    via: Via,
    target: SocketAddr,
    pps: u64,
    size: usize,
    secs: u64,
) -> Result<serde_json::Value> {
    let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
    // SOCKS5: the control connection must stay open for the association's lifetime
    let (_ctl, dest, header) = match via {
        Via::Direct => (None, target, Vec::new()),
        Via::Socks5(p) => {
            let mut s = TcpStream::connect(p).await?;
            socks_greet(&mut s).await?;
            let mut req = vec![5, 3, 0];
            socks_addr(sock.local_addr()?, &mut req);
            s.write_all(&req).await?;
            let mut relay = socks_reply(&mut s).await?;
            if relay.ip().is_unspecified() {
                relay.set_ip(p.ip());
            }
            let mut h = vec![0, 0, 0];
            socks_addr(target, &mut h);
            (Some(s), relay, h)
        }
        Via::Http(_) => bail!("--via http: UDP goes direct or through socks5"),
    };
    let received = Arc::new(AtomicU64::new(0));
    let rx = {
        let (sock, received) = (Arc::clone(&sock), Arc::clone(&received));
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = sock.recv(&mut buf).await {
                if n >= size {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    sock.connect(dest).await?;
    // the path is set up first (a proxy's session, a SOCKS5 association): one datagram
    // echoed, tried every 100 ms for up to 3 s; the timed run starts after it
    let mut probe = header.clone();
    probe.resize(header.len() + size, 0x11);
    let t = Instant::now();
    while received.load(Ordering::Relaxed) == 0 {
        if t.elapsed() > Duration::from_secs(3) {
            bail!("no echo from {target} within 3 s");
        }
        sock.send(&probe).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    received.store(0, Ordering::Relaxed);
    let total = pps * secs;
    let mut pkt = header.clone();
    pkt.resize(header.len() + size, 0x33);
    let t0 = Instant::now();
    let mut sent = 0u64;
    // paced: every millisecond, what is due by then
    while sent < total {
        let due = (t0.elapsed().as_secs_f64() * pps as f64) as u64;
        while sent < due.min(total) {
            pkt[header.len()..header.len() + 8].copy_from_slice(&sent.to_be_bytes());
            if sock.send(&pkt).await.is_err() {
                break;
            }
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let send_secs = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    rx.abort();
    let got = received.load(Ordering::Relaxed);
    Ok(serde_json::json!({
        "pps": pps, "sent": sent, "received": got, "seconds": send_secs,
        "pps_sent": sent as f64 / send_secs,
        "loss_pct": if sent == 0 { 100.0 } else { sent.saturating_sub(got) as f64 * 100.0 / sent as f64 },
    }))
}

/// Opens `--count` tunnels (echo mode, one byte through each so it is established end to end)
/// and holds them idle; prints `{"open": N}` once all are open, then holds for `--secs`.
async fn hold(f: &Flags) -> Result<serde_json::Value> {
    let (via, target) = (f.via()?, f.addr("target")?);
    let count = f.num("count", 1000)?.clamp(1, 9500);
    let secs = f.num("secs", 10)?.clamp(1, 600);
    let mut held = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let mut s = open(via, target).await?;
        s.write_all(&[MODE_ECHO, 1]).await?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await?;
        held.push(s);
    }
    println!("{}", serde_json::json!({"open": held.len()}));
    tokio::time::sleep(Duration::from_secs(secs)).await;
    Ok(serde_json::json!({"held": held.len()}))
}

/// Resident set size of `pid` in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// A KiB figure of `/proc/<pid>/status` (`VmRSS:`, `RssAnon:`, …).
fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Starts the command after `--` and measures the time from exec to the first connection it
/// accepts on `--port` (one connect attempt every 100 µs), then its RSS after `--settle-ms`.
async fn startup(args: &[String]) -> Result<serde_json::Value> {
    let split = args
        .iter()
        .position(|a| a == "--")
        .context("startup needs -- COMMAND…")?;
    let f = Flags::parse(&args[..split])?;
    let cmd = &args[split + 1..];
    let port = u16::try_from(f.num("port", 0)?)?;
    let settle = f.num("settle-ms", 1000)?;
    let first = cmd.first().context("empty command")?;
    let t0 = Instant::now();
    let mut child = std::process::Command::new(first)
        .args(&cmd[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {first}"))?;
    let ms = loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break t0.elapsed().as_secs_f64() * 1e3;
        }
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            bail!("{first} accepted nothing on port {port} within 10 s");
        }
        std::thread::sleep(Duration::from_micros(100));
    };
    tokio::time::sleep(Duration::from_millis(settle)).await;
    let rss = rss_kib(child.id());
    // the anonymous part (heap, stacks): what each further process adds; the rest of the RSS
    // is the program's file pages, shared by every process that runs the same file
    let anon = status_kib(child.id(), "RssAnon:");
    let _ = child.kill();
    let _ = child.wait();
    Ok(serde_json::json!({"ms": ms, "rss_kib": rss, "anon_kib": anon}))
}

/// One HTTP/1.1 request to the Web API at `api`; returns the status code.
async fn api_call(api: SocketAddr, method: &str, path: &str, body: &str) -> Result<u16> {
    let mut s = TcpStream::connect(api).await?;
    s.write_all(
        format!(
            "{method} {path} HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await?;
    let mut r = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut r)).await??;
    let text = String::from_utf8_lossy(&r);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no status in {text:?}"))
}

/// `--updates` times: PUT `/config/services/{--service}` moving the service to the next port of
/// `--ports A-B` (a tcp forwarder to `--target`), then time until a connection to the new port
/// is accepted and forwarded (echo of one byte); p50/p99 of those times.
async fn apiupdate(f: &Flags) -> Result<serde_json::Value> {
    let api = f.addr("api")?;
    let target = f.addr("target")?;
    let service = f.get("service").unwrap_or("bench").to_string();
    let updates = f.num("updates", 100)?.clamp(1, 1000);
    let (lo, hi) = f
        .get("ports")
        .and_then(|p| p.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<u16>().ok()?, b.parse::<u16>().ok()?)))
        .context("--ports A-B is required")?;
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut failed = 0u64;
    for i in 0..updates {
        let port = lo + (i % u64::from(hi - lo + 1)) as u16;
        let body = serde_json::json!({
            "name": service, "addr": format!("127.0.0.1:{port}"),
            "handler": {"type": "tcp"}, "listener": {"type": "tcp"},
            "forwarder": {"nodes": [{"name": "t", "addr": target.to_string()}]},
        })
        .to_string();
        let t = Instant::now();
        let code = api_call(api, "PUT", &format!("/config/services/{service}"), &body).await?;
        if code != 200 {
            bail!("PUT /config/services/{service} answered {code}");
        }
        let served = loop {
            let one = async {
                let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
                s.write_all(&[MODE_ECHO, 7]).await?;
                let mut b = [0u8; 1];
                s.read_exact(&mut b).await?;
                anyhow::ensure!(b == [7], "echo differs");
                anyhow::Ok(())
            };
            if let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(1), one).await {
                break true;
            }
            if t.elapsed() > Duration::from_secs(10) {
                break false;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        if served {
            h.saturating_record(t.elapsed().as_micros().max(1) as u64);
        } else {
            failed += 1;
        }
    }
    Ok(serde_json::json!({
        "updates": updates, "failed": failed,
        "p50_ms": h.value_at_quantile(0.5) as f64 / 1e3,
        "ms": h.value_at_quantile(0.99) as f64 / 1e3,
    }))
}

// ---- report

/// The figures a case is compared by, in table order, and whether bigger is better.
const METRICS: &[(&str, bool)] = &[
    ("gbps", true),
    ("cps", true),
    ("p50_ms", false),
    ("p99_ms", false),
    ("pps_ok", true),
    ("kib_per_tunnel", false),
    ("rss_kib", false),
    ("anon_kib", false),
    ("ms", false),
];

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One figure's values by round: (value, proxy cores).
type Rounds = BTreeMap<u64, (f64, Option<f64>)>;

/// One row of the table: a case's figure, by variant.
struct Row {
    case: String,
    metric: &'static str,
    up: bool,
    vars: BTreeMap<String, Rounds>,
}

impl Row {
    fn values(&self, variant: &str) -> Vec<f64> {
        self.vars
            .get(variant)
            .map(|r| r.values().map(|x| x.0).collect())
            .unwrap_or_default()
    }
    /// Same-round ratios `a`/`b`, inverted where lower is better (> 1: `a` is ahead).
    fn ratio(&self, a: &str, b: &str) -> Vec<f64> {
        ratios(self.vars.get(a), self.vars.get(b), self.up)
    }
    fn cores(&self, variant: &str) -> Option<f64> {
        let mut c: Vec<f64> = self
            .vars
            .get(variant)
            .map(|r| r.values().filter_map(|x| x.1).collect())
            .unwrap_or_default();
        (!c.is_empty()).then(|| median(&mut c))
    }
    fn key(&self) -> String {
        format!("{}/{}", self.case, self.metric)
    }
}

fn ratios(a: Option<&Rounds>, b: Option<&Rounds>, up: bool) -> Vec<f64> {
    let (Some(ra), Some(rb)) = (a, b) else {
        return Vec::new();
    };
    ra.iter()
        .filter_map(|(round, x)| {
            let y = rb.get(round)?.0;
            let r = if up { x.0 / y } else { y / x.0 };
            r.is_finite().then_some(r)
        })
        .collect()
}

/// Reads a run's JSON lines into rows, in the order the cases first appear.
fn table(path: &str) -> Result<Vec<Row>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let mut rows: Vec<Row> = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{path}:{}", i + 1))?;
        let case = v["case"].as_str().context("case")?.to_string();
        let variant = v["variant"].as_str().context("variant")?.to_string();
        let round = v["round"].as_u64().context("round")?;
        for (metric, up) in METRICS {
            let Some(val) = v["result"][*metric].as_f64() else {
                continue;
            };
            let at = match rows
                .iter()
                .position(|r| r.case == case && r.metric == *metric)
            {
                Some(at) => at,
                None => {
                    rows.push(Row {
                        case: case.clone(),
                        metric,
                        up: *up,
                        vars: BTreeMap::new(),
                    });
                    rows.len() - 1
                }
            };
            rows[at]
                .vars
                .entry(variant.clone())
                .or_default()
                .insert(round, (val, v["cores"].as_f64()));
        }
    }
    Ok(rows)
}

fn fmt(mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return "—".into();
    }
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let m = median(&mut v);
    if lo == hi {
        format!("{m:.3}")
    } else {
        format!("{m:.3} ({lo:.3}–{hi:.3})")
    }
}

/// Markdown: per case and figure, each variant's median (min–max over rounds), the same-round
/// ratios ours/direct and ours/gost (inverted where lower is better, so > 1 always means ours
/// is ahead) and the proxies' CPU use in cores; then 2-hop / 1-hop per program.
fn report(path: &str) -> Result<String> {
    let rows = table(path)?;
    let cores = |c: Option<f64>| c.map_or("—".to_string(), |c| format!("{c:.2}"));
    let mut out = String::from(
        "| case | figure | direct | gost-proxy | gost | ours/direct | ours/gost | cores ours / gost |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in &rows {
        out.push_str(&format!(
            "| {} | {}{} | {} | {} | {} | {} | {} | {} / {} |\n",
            r.case,
            r.metric,
            if r.up { "" } else { " ↓" },
            fmt(r.values("direct")),
            fmt(r.values("ours")),
            fmt(r.values("gost")),
            fmt(r.ratio("ours", "direct")),
            fmt(r.ratio("ours", "gost")),
            cores(r.cores("ours")),
            cores(r.cores("gost")),
        ));
    }
    let find = |case: &str| rows.iter().find(|r| r.case == case && r.metric == "gbps");
    if let (Some(one), Some(two)) = (find("chain-relay"), find("chain-relay-2hop")) {
        out.push_str("\n| 2-hop / 1-hop relay throughput | gost-proxy | gost |\n|---|---|---|\n");
        out.push_str(&format!(
            "| same-round ratio | {} | {} |\n",
            fmt(ratios(two.vars.get("ours"), one.vars.get("ours"), true)),
            fmt(ratios(two.vars.get("gost"), one.vars.get("gost"), true)),
        ));
    }
    out.push_str("\n↓: lower is better; its ratios are inverted, so a ratio above 1 always means gost-proxy is ahead.\n");
    Ok(out)
}

/// The median same-round ratios of a run, as the baseline `check` compares against.
fn baseline(path: &str) -> Result<serde_json::Value> {
    let mut m = serde_json::Map::new();
    for r in table(path)? {
        let mut e = serde_json::Map::new();
        for (name, other) in [("ours_direct", "direct"), ("ours_gost", "gost")] {
            let mut v = r.ratio("ours", other);
            if !v.is_empty() {
                e.insert(
                    name.into(),
                    serde_json::json!((median(&mut v) * 1e3).round() / 1e3),
                );
            }
        }
        if !e.is_empty() {
            m.insert(r.key(), e.into());
        }
    }
    Ok(m.into())
}

/// Fails when a ratio of the run is below `factor` × its baseline (a gross regression); lists
/// every comparison.
fn check(path: &str, base: &str, factor: f64) -> Result<()> {
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(base).with_context(|| format!("reading {base}"))?,
    )
    .with_context(|| format!("parsing {base}"))?;
    let now = baseline(path)?;
    let mut bad = Vec::new();
    let mut compared = 0;
    for (key, e) in now.as_object().into_iter().flatten() {
        for (name, v) in e.as_object().into_iter().flatten() {
            let (Some(got), Some(base_v)) = (v.as_f64(), want[key][name].as_f64()) else {
                continue;
            };
            compared += 1;
            let ok = got >= base_v * factor;
            eprintln!(
                "{} {key} {name}: {got:.3} (baseline {base_v:.3}, floor {:.3})",
                if ok { "ok  " } else { "FAIL" },
                base_v * factor
            );
            if !ok {
                bad.push(key.clone());
            }
        }
    }
    if compared == 0 {
        bail!("no figure of {path} has a baseline in {base}");
    }
    if !bad.is_empty() {
        bail!("gross regression (below {factor} x baseline): {bad:?}");
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else { usage() };
    match (cmd.as_str(), args.get(1), args.get(2)) {
        ("report", Some(path), _) => {
            print!("{}", report(path)?);
            return Ok(());
        }
        ("baseline", Some(path), _) => {
            println!("{}", serde_json::to_string_pretty(&baseline(path)?)?);
            return Ok(());
        }
        ("check", Some(path), Some(base)) => return check(path, base, 0.75),
        ("report" | "baseline" | "check", _, _) => usage(),
        _ => {}
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if cmd == "startup" {
        println!("{}", rt.block_on(startup(&args[1..]))?);
        return Ok(());
    }
    let flags = Flags::parse(&args[1..])?;
    let out = rt.block_on(async {
        match cmd.as_str() {
            "hold" => hold(&flags).await,
            "apiupdate" => apiupdate(&flags).await,
            "serve" => serve(&flags).await.map(|_| serde_json::Value::Null),
            "tcp" => tcp(&flags).await,
            "cps" => cps(&flags).await,
            "udp" => udp(&flags).await,
            _ => usage(),
        }
    })?;
    println!("{out}");
    Ok(())
}
