//! `relay` handler: GOST relay protocol server (engine spec §6.6).
//!
//! * **Forward mode** (the service has a `forwarder`): the client's address is ignored; a target
//!   is selected and dialled (none → ServiceUnavailable, dial failure → HostUnreachable).
//! * **CONNECT**: missing ADDR → BadRequest, bypass → Forbidden, dial failure →
//!   NetworkUnreachable. TCP data is raw; UDP (NETWORK udp or the UDP flag) is
//!   `LEN(2) | PAYLOAD` datagrams to the requested address.
//! * **BIND** (needs `bind: true`, else Forbidden): TCP listens locally on ADDR, answers OK with
//!   the bound address, then the connection becomes an smux session in which this server opens
//!   one stream per inbound connection, starting with an OK response carrying the peer
//!   address. UDP binds a socket on ADDR and relays GOST's UDP-over-TCP frames.
//!
//! Without `nodelay` the OK response of CONNECT is held back and sent with the first bytes
//! going to the client (GOST's default); errors are always sent at once. Authentication uses
//! the USERAUTH feature (absent = empty user and password) → Unauthorized.
//!
//! ```yaml
//! services:
//! - name: relay
//!   addr: :8421
//!   handler: {type: relay, auth: {username: u, password: p}, metadata: {bind: true}}
//!   listener: {type: tls}
//! ```
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `readTimeout` | duration | 15s | the request must arrive within this |
//! | `bind` | bool | false | allow BIND (reverse forwarding) |
//! | `nodelay` | bool | false | send CONNECT's OK response right after the dial |
//! | `udp.bufferSize` / `udpBufferSize` | int | 4096 | largest datagram |
//! | `idleTimeout` | duration | none | per-direction idle timeout while piping |
//! | `hash` | string | client IP | `host`: hash strategy key is the target |
//! | `mux.*` | | | smux settings for BIND ([`crate::mux`]) |

use std::io;
use std::sync::Arc;

use async_trait::async_trait;

use crate::component::{ConnCtx, Handler, HandlerError, HandlerOpts, Inbound};
use crate::error::{BuildError, DialError};
use crate::handler::Common;
use crate::io::{pipe, BoxStream, Outbound, PacketConn, PrefixWrite, UdpPacket};
use crate::relay::{self, respond, Message};

/// The relay server.
pub struct RelayHandler {
    o: HandlerOpts,
    common: Common,
    bind: bool,
    nodelay: bool,
    udp_buf: usize,
    mux: crate::mux::Config,
}

/// Factory for `relay`.
pub fn new(o: &HandlerOpts) -> Result<Arc<dyn Handler>, BuildError> {
    let common = Common::parse(o)?;
    let udp_buf =
        o.md.int(&["udp.bufferSize", "udpBufferSize"])?
            .unwrap_or(4096)
            .clamp(512, 65535) as usize;
    Ok(Arc::new(RelayHandler {
        common,
        bind: o.md.bool_or(&["bind", "enableBind"], false)?,
        nodelay: o.md.bool_or(&["nodelay", "noDelay"], false)?,
        udp_buf,
        mux: crate::mux::Config::from_md(&o.md)?,
        o: o.clone(),
    }))
}

fn proto(msg: impl Into<String>) -> HandlerError {
    HandlerError::Protocol(msg.into())
}

impl RelayHandler {
    async fn serve(&self, mut conn: BoxStream, ctx: ConnCtx) -> Result<(), HandlerError> {
        let req =
            match tokio::time::timeout(self.common.read_timeout, Message::read(&mut conn)).await {
                Err(_) => return Err(proto("relay request timed out")),
                Ok(Err(e)) if e.kind() == io::ErrorKind::InvalidData => {
                    respond(&mut conn, relay::STATUS_BAD_REQUEST, None).await?;
                    return Err(proto(e.to_string()));
                }
                Ok(r) => r?,
            };
        let mut client_id = String::new();
        if self.o.auth.enabled() {
            let (u, p) = req.auth.clone().unwrap_or_default();
            match self.o.auth.authenticate(&u, &p) {
                Some(id) => client_id = id,
                None => {
                    respond(&mut conn, relay::STATUS_UNAUTHORIZED, None).await?;
                    return Err(HandlerError::Auth(u));
                }
            }
        }
        let udp = match req.network {
            Some(1) => true,
            Some(0) => false,
            None => req.code & relay::FLAG_UDP != 0,
            Some(other) => {
                respond(&mut conn, relay::STATUS_BAD_REQUEST, None).await?;
                return Err(HandlerError::Unsupported(format!(
                    "relay network {other} is not supported (tcp and udp are)"
                )));
            }
        };
        let network = if udp { "udp" } else { "tcp" };
        let cmd = req.code & 0x0F;
        tracing::debug!(sid = %ctx.sid, cmd, network, dst = ?req.addr, "relay request");
        if let Some(fwd) = self.o.forwarder.clone() {
            let selected =
                crate::handler::forward::dial_target(&self.o, &*fwd, network, &ctx).await;
            let (up, target) = match selected {
                Ok(x) => x,
                Err(e) => {
                    let st = if matches!(e, DialError::NoNode) {
                        relay::STATUS_SERVICE_UNAVAILABLE
                    } else {
                        relay::STATUS_HOST_UNREACHABLE
                    };
                    respond(&mut conn, st, None).await?;
                    return Err(e.into());
                }
            };
            return self.data_phase(conn, up, &target).await;
        }
        match cmd {
            0 | relay::CMD_CONNECT => self.connect(conn, &ctx, &client_id, network, req).await,
            relay::CMD_BIND => self.bind(conn, network, req).await,
            other => {
                respond(&mut conn, relay::STATUS_BAD_REQUEST, None).await?;
                Err(proto(format!("unknown relay command {other:#x}")))
            }
        }
    }

    async fn connect(
        &self,
        mut conn: BoxStream,
        ctx: &ConnCtx,
        client_id: &str,
        network: &str,
        req: Message,
    ) -> Result<(), HandlerError> {
        let Some(target) = req.addr.filter(|a| !a.starts_with(':')) else {
            respond(&mut conn, relay::STATUS_BAD_REQUEST, None).await?;
            return Err(proto("relay CONNECT without an address"));
        };
        if self.o.bypass.bypass(network, &target) {
            respond(&mut conn, relay::STATUS_FORBIDDEN, None).await?;
            return Err(DialError::Bypassed(target).into());
        }
        let up = match self
            .o
            .router
            .dial(
                network,
                &target,
                self.common.hash_key(ctx, client_id, &target),
            )
            .await
        {
            Ok(o) => o,
            Err(e) => {
                respond(&mut conn, relay::STATUS_NETWORK_UNREACHABLE, None).await?;
                return Err(e.into());
            }
        };
        self.data_phase(conn, up, &target).await
    }

    async fn data_phase(
        &self,
        mut conn: BoxStream,
        up: Outbound,
        target: &str,
    ) -> Result<(), HandlerError> {
        let ok = Message {
            code: relay::STATUS_OK,
            ..Default::default()
        }
        .encode()?;
        let conn: BoxStream = if self.nodelay {
            use tokio::io::AsyncWriteExt;
            conn.write_all(&ok).await?;
            conn.flush().await?;
            conn
        } else {
            Box::new(PrefixWrite::new(conn, ok))
        };
        match up {
            Outbound::Stream(u) => {
                pipe(conn, u, self.common.idle_timeout).await;
            }
            Outbound::Packet(p) => self.udp_connect(conn, p, target).await,
        }
        Ok(())
    }

    async fn udp_connect(&self, conn: BoxStream, up: Arc<dyn PacketConn>, target: &str) {
        let (mut r, mut w) = tokio::io::split(conn);
        let to_up = async {
            let mut buf = vec![0u8; self.udp_buf];
            while let Ok(n) = relay::read_datagram(&mut r, &mut buf).await {
                if let Err(e) = up.send_to(&buf[..n], target).await {
                    tracing::debug!(error = %e, "relay udp send");
                }
            }
        };
        let from_up = async {
            let mut buf = vec![0u8; self.udp_buf];
            loop {
                let r = match self.common.idle_timeout {
                    Some(d) => match tokio::time::timeout(d, up.recv_from(&mut buf)).await {
                        Ok(r) => r,
                        Err(_) => break,
                    },
                    None => up.recv_from(&mut buf).await,
                };
                let Ok((n, _)) = r else { break };
                if relay::write_datagram(&mut w, &buf[..n]).await.is_err() {
                    break;
                }
            }
        };
        tokio::select! {
            _ = to_up => {},
            _ = from_up => {},
        }
    }

    async fn bind(
        &self,
        mut conn: BoxStream,
        network: &str,
        req: Message,
    ) -> Result<(), HandlerError> {
        if !self.bind {
            respond(&mut conn, relay::STATUS_FORBIDDEN, None).await?;
            return Err(HandlerError::Unsupported(
                "relay BIND refused (handler metadata bind: true enables it)".into(),
            ));
        }
        let addr = req.addr.unwrap_or_else(|| "0.0.0.0:0".into());
        let addr = match crate::addr::split_host_port(&addr) {
            Some(("", p)) => format!("0.0.0.0:{p}"),
            _ => addr,
        };
        if network == "udp" {
            let sock = match tokio::net::UdpSocket::bind(&addr).await {
                Ok(s) => s,
                Err(e) => {
                    respond(&mut conn, relay::STATUS_SERVICE_UNAVAILABLE, None).await?;
                    return Err(e.into());
                }
            };
            let bound = sock.local_addr()?.to_string();
            respond(&mut conn, relay::STATUS_OK, Some(&bound)).await?;
            tracing::debug!(addr = %bound, "relay udp bind");
            crate::handler::relay_stream_packets(
                conn,
                Arc::new(UdpPacket(sock)),
                self.udp_buf,
                &self.o,
            )
            .await;
            return Ok(());
        }
        let l = match tokio::net::TcpListener::bind(&addr).await {
            Ok(l) => l,
            Err(e) => {
                respond(&mut conn, relay::STATUS_SERVICE_UNAVAILABLE, None).await?;
                return Err(e.into());
            }
        };
        let bound = l.local_addr()?.to_string();
        respond(&mut conn, relay::STATUS_OK, Some(&bound)).await?;
        tracing::debug!(addr = %bound, "relay tcp bind");
        let session = crate::mux::Session::new(conn, self.mux.clone(), true);
        crate::handler::serve_reverse(&session, &l, self.common.idle_timeout, |peer| async move {
            let m = Message {
                code: relay::STATUS_OK,
                addr: Some(peer),
                ..Default::default()
            };
            m.encode()
        })
        .await;
        Ok(())
    }
}

#[async_trait]
impl Handler for RelayHandler {
    async fn handle(&self, conn: Inbound, ctx: ConnCtx) -> Result<(), HandlerError> {
        match conn {
            Inbound::Stream(s) => self.serve(s, ctx).await,
            Inbound::Datagram(_) => Err(HandlerError::Unsupported(
                "relay handler needs a stream listener".into(),
            )),
        }
    }
}
