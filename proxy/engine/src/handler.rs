//! Handlers: one module per GOST handler type string.

pub mod api;
pub mod auto;
pub mod forward;
pub mod http;
pub mod relay;
pub mod sni;
pub mod socks4;
pub mod socks5;

use std::sync::Arc;
use std::time::Duration;

use crate::component::{ConnCtx, HandlerOpts};
use crate::error::{BuildError, DialError};
use crate::io::{BoxStream, PacketConn};

/// Options most proxy handlers share.
#[derive(Debug, Clone)]
pub struct Common {
    /// Handshake read deadline (`readTimeout`, default 15 s).
    pub read_timeout: Duration,
    /// Idle timeout per direction while piping (`idleTimeout`, none by default).
    pub idle_timeout: Option<Duration>,
    /// `hash: host` hashes by target instead of client IP.
    pub hash_by_host: bool,
}

impl Common {
    /// Reads the shared keys from handler metadata.
    pub fn parse(o: &HandlerOpts) -> Result<Common, BuildError> {
        let read_timeout =
            o.md.duration(&["readTimeout"])?
                .filter(|d| !d.is_zero())
                .unwrap_or(Duration::from_secs(15));
        let idle_timeout = o.md.duration(&["idleTimeout"])?.filter(|d| !d.is_zero());
        let hash_by_host = o.md.string(&["hash"])?.is_some_and(|h| h == "host");
        o.md.mark_known(&[
            "retries",
            "sniffing",
            "sniffing.timeout",
            "observer.period",
            "observer.resetTraffic",
            "limiter.refreshInterval",
            "limiter.cleanupInterval",
            "skipauth",
            "bypass",
            "admission",
            "resolver",
            "hosts",
        ]);
        Ok(Common {
            read_timeout,
            idle_timeout,
            hash_by_host,
        })
    }

    /// Opens a TCP stream to `target` for a proxy request: a target the service bypass refuses
    /// is `DialError::Bypassed`, otherwise it is dialled through the router (chain, retries).
    pub async fn connect(
        &self,
        o: &HandlerOpts,
        ctx: &ConnCtx,
        client_id: &str,
        target: &str,
    ) -> Result<BoxStream, DialError> {
        if o.bypass.bypass("tcp", target) {
            return Err(DialError::Bypassed(target.to_string()));
        }
        o.router
            .dial("tcp", target, self.hash_key(ctx, client_id, target))
            .await?
            .into_stream()
            .map_err(|e| DialError::io(target, e))
    }

    /// Key for the `hash` selector strategy: client id, target host or client IP.
    pub fn hash_key(&self, ctx: &ConnCtx, client_id: &str, target: &str) -> Option<String> {
        if !client_id.is_empty() {
            Some(client_id.to_string())
        } else if self.hash_by_host {
            Some(target.to_string())
        } else {
            Some(ctx.src.ip().to_string())
        }
    }
}

/// Relays between a stream carrying GOST UDP frames and an upstream datagram channel.
pub async fn relay_stream_packets(
    conn: BoxStream,
    up: Arc<dyn PacketConn>,
    buf_size: usize,
    o: &HandlerOpts,
) {
    let (mut r, mut w) = tokio::io::split(conn);
    let to_up = async {
        let mut buf = vec![0u8; buf_size];
        loop {
            let Ok((n, dst)) = crate::socks::read_udp_frame(&mut r, &mut buf).await else {
                break;
            };
            if o.bypass.bypass("udp", &dst) {
                tracing::warn!(dst = %dst, "udp datagram refused by bypass");
                continue;
            }
            if let Err(e) = up.send_to(&buf[..n], &dst).await {
                tracing::debug!(error = %e, dst = %dst, "udp relay send");
            }
        }
    };
    let from_up = async {
        let mut buf = vec![0u8; buf_size];
        loop {
            let Ok((n, src)) = up.recv_from(&mut buf).await else {
                break;
            };
            if crate::socks::write_udp_frame(&mut w, &src, &buf[..n])
                .await
                .is_err()
            {
                break;
            }
        }
    };
    tokio::select! {
        _ = to_up => {},
        _ = from_up => {},
    }
}

/// Serves a reverse bind: for every connection accepted on `l`, opens a stream of `session`,
/// writes `preamble(peer)` on it and pipes. Ends when the session dies.
pub async fn serve_reverse<F, Fut>(
    session: &crate::mux::Session,
    l: &tokio::net::TcpListener,
    idle: Option<std::time::Duration>,
    preamble: F,
) where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<Vec<u8>>>,
{
    use tokio::io::AsyncWriteExt;
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = session.closed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            r = l.accept() => {
                let (c, peer) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::debug!(error = %e, "reverse bind accept");
                        continue;
                    }
                };
                let _ = c.set_nodelay(true);
                let mut s = match session.open().await {
                    Ok(s) => s,
                    Err(_) => break,
                };
                let head = match preamble(peer.to_string()).await {
                    Ok(h) => h,
                    Err(_) => continue,
                };
                conns.spawn(async move {
                    if s.write_all(&head).await.is_ok() {
                        crate::io::pipe(s, c, idle).await;
                    }
                });
            }
        }
    }
}
