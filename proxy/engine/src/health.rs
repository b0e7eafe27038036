//! The sidecar's health endpoint (`--health addr`): probes and the container lifecycle steps
//! talk to the engine here.
//!
//! | path | who | answer |
//! |---|---|---|
//! | `GET /live`, `/healthz` | liveness probe | 200 while the process serves |
//! | `GET /listening` | `hook post-up` | 200 once every service listens |
//! | `GET /ready`, `/readyz` | startup/readiness probes | 200 once every service listens and `postUp` ran (with `--external-hooks`); 503 naming the services that fail closed |
//! | `POST /post-up-done[?failed=N]` | `hook post-up` | records that `postUp` ran (N commands failed: shown by `/ready`, never fatal) |
//! | `POST /drain-inbound` | `hook pre-down` | inbound services (not bound to loopback) stop accepting and drain; egress keeps serving until SIGTERM |
//! | `POST /shutdown` | `gost-proxy await --shutdown` | graceful shutdown, as SIGTERM (Jobs without native sidecars) |
//!
//! The address binds dual-stack when it is `[::]:port` (falling back to `0.0.0.0` where the
//! pod has no IPv6). The `POST` paths change the sidecar's state, so they answer 403 to any
//! peer that is not on loopback: only the pod's own containers (the kubelet's exec steps run
//! inside the pod) can call them, never another pod.
//!
//! With `--` process groups the supervisor serves this endpoint: each group gets a health
//! address of its own on loopback, `/listening` and `/ready` are green only when every group's
//! is, and the `POST`s are forwarded to every group.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::engine::Engine;

/// Default health address of the sidecar (Istio's 15020/15021 stay free for an Istio sidecar in
/// the same pod).
pub const DEFAULT_ADDR: &str = gost_config::SIDECAR_HEALTH_ADDR;

/// An answer: status code and body.
pub type Reply = (u16, String);
/// A request handler: method, path with query, whether the peer is on loopback.
pub type Handler =
    Arc<dyn Fn(String, String, bool) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

fn text(code: u16, s: &str) -> Reply {
    (code, s.to_string())
}

/// Binds `addr`: `[::]:p` dual-stack (v4-mapped accepted), falling back to `0.0.0.0:p` when the
/// host has no IPv6; anything else as given.
pub fn bind(addr: &str) -> std::io::Result<std::net::TcpListener> {
    let sa = crate::addr::parse_listen_addr(addr).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("--health {addr}: invalid address (expected host:port, e.g. [::]:15300)"),
        )
    })?;
    let mk = |sa: SocketAddr, dual: bool| -> std::io::Result<std::net::TcpListener> {
        let s = socket2::Socket::new(
            socket2::Domain::for_address(sa),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        if dual {
            s.set_only_v6(false)?;
        }
        s.set_reuse_address(true)?;
        s.bind(&sa.into())?;
        s.listen(128)?;
        s.set_nonblocking(true)?;
        Ok(s.into())
    };
    match sa {
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => match mk(sa, true) {
            Ok(l) => Ok(l),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)
                ) =>
            {
                mk(SocketAddr::from(([0, 0, 0, 0], sa.port())), false)
            }
            Err(e) => Err(e),
        },
        _ => mk(sa, false),
    }
}

/// Serves `handler` on `addr` (in the background); returns the bound address.
pub fn serve(addr: &str, handler: Handler) -> std::io::Result<SocketAddr> {
    let l = tokio::net::TcpListener::from_std(bind(addr)?)?;
    let local = l.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((s, peer)) = l.accept().await else {
                continue;
            };
            let ip = peer.ip();
            let loopback = ip.is_loopback()
                || matches!(ip, std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()));
            let handler = Arc::clone(&handler);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let handler = Arc::clone(&handler);
                        async move {
                            let path = req
                                .uri()
                                .path_and_query()
                                .map(|p| p.as_str().to_string())
                                .unwrap_or_else(|| "/".into());
                            let (code, body) =
                                handler(req.method().to_string(), path, loopback).await;
                            let mut r = hyper::Response::new(http_body_util::Full::new(
                                bytes::Bytes::from(body),
                            ));
                            *r.status_mut() = hyper::StatusCode::from_u16(code)
                                .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
                            Ok::<_, std::convert::Infallible>(r)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    Ok(local)
}

/// The loopback address to call a health endpoint bound at `addr` (`[::]:p`, `0.0.0.0:p` and
/// `:p` are called on 127.0.0.1).
pub fn local_target(addr: &str) -> String {
    match crate::addr::parse_listen_addr(addr) {
        Some(sa) if sa.ip().is_unspecified() => format!("127.0.0.1:{}", sa.port()),
        Some(sa) => sa.to_string(),
        None => addr.to_string(),
    }
}

/// One HTTP/1.1 request to a health endpoint (5 s at most): status and body.
pub async fn call(addr: &str, method: &str, path: &str) -> std::io::Result<Reply> {
    let host = local_target(addr);
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(&host).await?;
        s.write_all(
            format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let mut resp = Vec::new();
        (&mut s).take(1 << 20).read_to_end(&mut resp).await?;
        let resp = String::from_utf8_lossy(&resp).into_owned();
        let code = resp
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other("bad health response"))?;
        let body = resp
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((code, body))
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), fut)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "health call timed out"))?
}

/// The engine's side: what one engine process reports.
#[derive(Clone)]
pub struct EngineHealth {
    /// The engine.
    pub engine: Arc<Engine>,
    /// With `--external-hooks`, `postUp` runs in the container's postStart and reports here.
    pub external_hooks: bool,
    /// `postUp` reported done.
    pub post_up_done: Arc<AtomicBool>,
    /// `postUp` commands that failed (reported by `hook post-up`).
    pub post_up_failed: Arc<AtomicU32>,
    /// Cancelled by `POST /shutdown`.
    pub shutdown: tokio_util::sync::CancellationToken,
}

fn query_u32(path: &str, key: &str) -> Option<u32> {
    let q = path.split_once('?')?.1;
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

impl EngineHealth {
    /// Answers one request.
    pub async fn reply(&self, method: &str, path: &str, loopback: bool) -> Reply {
        let route = path.split('?').next().unwrap_or(path);
        match (method, route) {
            (_, "/live" | "/healthz") => text(200, "ok\n"),
            ("GET", "/listening") => match self.engine.ready().await {
                true => text(200, "listening\n"),
                false => text(503, "not listening\n"),
            },
            ("POST", "/post-up-done" | "/drain-inbound" | "/shutdown") if !loopback => {
                text(403, "only from the pod's own containers (loopback)\n")
            }
            ("POST", "/post-up-done") => {
                if let Some(n) = query_u32(path, "failed") {
                    self.post_up_failed.store(n, Ordering::Relaxed);
                }
                self.post_up_done.store(true, Ordering::Relaxed);
                text(200, "ok\n")
            }
            ("POST", "/drain-inbound") => {
                let stopped = self.engine.drain_inbound().await;
                (
                    200,
                    format!(
                        "inbound services stopped accepting: {}\n",
                        stopped.join(", ")
                    ),
                )
            }
            ("POST", "/shutdown") => {
                self.shutdown.cancel();
                text(200, "shutting down\n")
            }
            (_, "/ready" | "/readyz") => {
                let hooks_done = !self.external_hooks || self.post_up_done.load(Ordering::Relaxed);
                // a service that fails closed listens (and refuses), but is not ready
                let failed = self.engine.failed_closed().await;
                if !failed.is_empty() {
                    let mut body = String::from("not ready: services fail closed\n");
                    for (name, why) in failed {
                        body.push_str(&format!("service {name}: {why}\n"));
                    }
                    (503, body)
                } else if hooks_done && self.engine.ready().await {
                    match self.post_up_failed.load(Ordering::Relaxed) {
                        0 => text(200, "ready\n"),
                        n => (
                            200,
                            format!("ready (postUp: {n} commands failed; see the sidecar log)\n"),
                        ),
                    }
                } else if !hooks_done {
                    text(503, "not ready: postUp has not run yet\n")
                } else {
                    text(503, "not ready: services not listening yet\n")
                }
            }
            _ => text(404, "not found\n"),
        }
    }

    /// As a [`Handler`].
    pub fn handler(self) -> Handler {
        let this = Arc::new(self);
        Arc::new(move |m, p, lo| {
            let this = Arc::clone(&this);
            Box::pin(async move { this.reply(&m, &p, lo).await })
        })
    }
}

/// The supervisor's side with `--` groups: every group's endpoint behind one address. The
/// `postUp` failure count is the pod's (one `hook post-up` runs the commands of every group), so
/// the supervisor keeps it and forwards only "done" to the groups.
pub fn aggregate(groups: Vec<String>) -> Handler {
    let groups = Arc::new(groups);
    let failed = Arc::new(AtomicU32::new(0));
    Arc::new(move |method: String, path: String, loopback: bool| {
        let groups = Arc::clone(&groups);
        let failed = Arc::clone(&failed);
        Box::pin(async move {
            let route = path.split('?').next().unwrap_or(&path).to_string();
            if method == "POST" && !loopback {
                return text(403, "only from the pod's own containers (loopback)\n");
            }
            if route == "/live" || route == "/healthz" {
                return text(200, "ok\n");
            }
            let forward = if method == "POST" && route == "/post-up-done" {
                if let Some(n) = query_u32(&path, "failed") {
                    failed.store(n, Ordering::Relaxed);
                }
                route.clone()
            } else {
                path.clone()
            };
            let mut worst = 200;
            let mut body = String::new();
            for (i, g) in groups.iter().enumerate() {
                let (code, b) = match call(g, &method, &forward).await {
                    Ok(r) => r,
                    Err(e) => (503, format!("group {i} unreachable: {e}\n")),
                };
                if code != 200 {
                    worst = worst.max(code);
                }
                for l in b.lines() {
                    body.push_str(&format!("group {i}: {l}\n"));
                }
            }
            let n = failed.load(Ordering::Relaxed);
            if worst == 200 && (route == "/ready" || route == "/readyz") && n > 0 {
                body.push_str(&format!(
                    "postUp: {n} commands failed; see the sidecar log\n"
                ));
            }
            (worst, body)
        })
    })
}
