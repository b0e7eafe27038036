//! `tcp`, `udp` and `forward` handlers: port forwarding to the service's forwarder targets.
//! `forward` is the same handler for non-tcp/udp listeners (e.g. `tls://:8443/host:80`), and
//! `rtcp` / `rudp` for the remote-forwarding listeners of the same names (the connections and
//! UDP sessions arriving on the port bound on a remote node).
//!
//! ```yaml
//! services:
//! - name: web
//!   addr: :8080
//!   handler: {type: tcp}
//!   forwarder:
//!     selector: {strategy: fifo}
//!     nodes: [{name: a, addr: 127.0.0.1:9000}, {name: b, addr: 127.0.0.1:9001}]
//! ```
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `idleTimeout` | duration | none | per-direction idle timeout |
//! | `readTimeout` | duration | 15s | (sniffing; accepted for compatibility) |
//! | `udp.bufferSize` / `bufferSize` | int | 4096 | largest datagram |
//!
//! Per connection one target is selected; a failed dial marks it (so `maxFails` /
//! `failTimeout` fail over) and a success resets it. Targets are dialled through the
//! service's chain when one is set.

use std::sync::Arc;

use async_trait::async_trait;

use crate::component::{ConnCtx, Handler, HandlerError, HandlerOpts, Inbound, Targets};
use crate::error::{BuildError, DialError};
use crate::handler::Common;
use crate::io::{pipe, Outbound};

/// The forwarding handler.
pub struct ForwardHandler {
    o: HandlerOpts,
    common: Common,
    buf: usize,
}

/// Factory for `tcp`, `udp` and `forward`.
pub fn new(o: &HandlerOpts) -> Result<Arc<dyn Handler>, BuildError> {
    let common = Common::parse(o)?;
    let buf =
        o.md.int(&[
            "udp.bufferSize",
            "bufferSize",
            "readBufferSize",
            "udpBufferSize",
        ])?
        .unwrap_or(4096)
        .clamp(512, 65535) as usize;
    o.md.mark_known(&["proxyProtocol", "stateless", "http.keepalive"]);
    Ok(Arc::new(ForwardHandler {
        o: o.clone(),
        common,
        buf,
    }))
}

/// Selects a forwarder target and dials it through the handler's router; a failed dial
/// marks the target, a success resets it. Shared with the `relay` handler's forward mode.
pub async fn dial_target(
    o: &HandlerOpts,
    targets: &dyn Targets,
    network: &str,
    ctx: &ConnCtx,
) -> Result<(Outbound, String), DialError> {
    let hash_key = Some(ctx.src.ip().to_string());
    let node = targets.select(network, hash_key.clone())?;
    let net = node.network().unwrap_or(network).to_string();
    match o.router.dial(&net, node.addr(), hash_key).await {
        Ok(out) => {
            node.mark_ok();
            Ok((out, node.addr().to_string()))
        }
        Err(e) => {
            node.mark_failed();
            Err(e)
        }
    }
}

impl ForwardHandler {
    async fn dial(&self, network: &str, ctx: &ConnCtx) -> Result<(Outbound, String), DialError> {
        let Some(fwd) = &self.o.forwarder else {
            // No targets: only meaningful when the chain ends in a relay in forward mode.
            let o = self.o.router.dial(network, "", None).await?;
            return Ok((o, String::new()));
        };
        dial_target(&self.o, &**fwd, network, ctx).await
    }
}

#[async_trait]
impl Handler for ForwardHandler {
    async fn handle(&self, conn: Inbound, ctx: ConnCtx) -> Result<(), HandlerError> {
        match conn {
            Inbound::Stream(s) => {
                let (up, target) = self.dial("tcp", &ctx).await?;
                tracing::debug!(sid = %ctx.sid, dst = %target, "forward");
                match up {
                    Outbound::Stream(u) => {
                        pipe(s, u, self.common.idle_timeout).await;
                        Ok(())
                    }
                    Outbound::Packet(_) => Err(HandlerError::Unsupported(
                        "stream client but datagram target".into(),
                    )),
                }
            }
            Inbound::Datagram(session) => {
                let (up, target) = self.dial("udp", &ctx).await?;
                let Outbound::Packet(up) = up else {
                    return Err(HandlerError::Unsupported(
                        "datagram client but stream target".into(),
                    ));
                };
                let to_up = async {
                    while let Some(d) = session.recv().await {
                        if let Err(e) = up.send_to(&d, &target).await {
                            tracing::debug!(error = %e, "udp forward send");
                        }
                    }
                };
                let from_up = async {
                    let mut buf = vec![0u8; self.buf];
                    loop {
                        let r = match self.common.idle_timeout {
                            Some(d) => {
                                match tokio::time::timeout(d, up.recv_from(&mut buf)).await {
                                    Ok(r) => r,
                                    Err(_) => break,
                                }
                            }
                            None => up.recv_from(&mut buf).await,
                        };
                        let Ok((n, _)) = r else { break };
                        if session.send(&buf[..n]).await.is_err() || session.is_closed() {
                            break;
                        }
                    }
                };
                tokio::select! {
                    _ = to_up => {},
                    _ = from_up => {},
                }
                Ok(())
            }
        }
    }
}
