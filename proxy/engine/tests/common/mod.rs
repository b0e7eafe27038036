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
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
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
                        if path.ends_with("/slow") {
                            let chunk = vec![b'x'; 64 * 1024];
                            let _ = s
                                .write_all(
                                    format!(
                                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                                        16 * chunk.len()
                                    )
                                    .as_bytes(),
                                )
                                .await;
                            for _ in 0..16 {
                                if s.write_all(&chunk).await.is_err() {
                                    return;
                                }
                                tokio::time::sleep(Duration::from_millis(150)).await;
                            }
                            continue;
                        }
                        let body = if path.ends_with("/big") {
                            "y".repeat(4 << 20)
                        } else {
                            ORIGIN_BODY.to_string()
                        };
                        let resp = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{}", body.len(), body);
                        if s.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// A UDP echo server on 127.0.0.1 (prefixes replies with `echo:`).
pub async fn udp_echo() -> SocketAddr {
    let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = s.local_addr().unwrap();
    tokio::spawn(async move {
        let mut b = [0u8; 2048];
        loop {
            let Ok((n, from)) = s.recv_from(&mut b).await else {
                return;
            };
            let mut r = b"echo:".to_vec();
            r.extend_from_slice(&b[..n]);
            let _ = s.send_to(&r, from).await;
        }
    });
    addr
}

/// The `gost-proxy` binary built by cargo for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gost-proxy"))
}

/// A running `gost-proxy`, killed on drop.
pub struct Proxy {
    pub child: Child,
    pub log: PathBuf,
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
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("proxy.log");
        let f = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(bin());
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
                panic!("gost-proxy exited with {st}: {}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("port {port} not listening after 10s: {}", self.logs());
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
