//! `socks5` (alias `socks`) handler: RFC 1928 CONNECT, BIND and UDP ASSOCIATE, RFC 1929
//! user/password auth, and GOST's extensions: the TLS methods `0x80` (TLS) / `0x82` (TLS then
//! user/password) when the client offers them, MBIND (`0xF2`: the control connection becomes an
//! smux session in which the server opens one stream per inbound connection; used by `rtcp`),
//! and UDP-over-TCP (`0xF3`: port 0 = relay mode with `udp`, otherwise bind mode with `bind`,
//! used by `rudp`). BIND/MBIND/bind mode listen locally on the requested address.
//!
//! ```yaml
//! services:
//! - name: socks
//!   addr: :1080
//!   handler: {type: socks5, auth: {username: u, password: p}, metadata: {udp: true}}
//! ```
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `readTimeout` | duration | 15s | negotiation + request must arrive within this |
//! | `udp` | bool | false | allow UDP ASSOCIATE and UDP-over-TCP |
//! | `bind` | bool | false | allow BIND, MBIND (`0xF2`, smux-multiplexed reverse streams) and UDP-over-TCP bind mode |
//! | `notls` | bool | false | never select GOST's TLS methods (`0x80`/`0x82`) |
//! | `comp` / `compatibilityMode` | bool | false | MBIND streams start without a SOCKS5 reply |
//! | `udp.bufferSize` / `udpBufferSize` | int | 4096 | largest datagram |
//! | `idleTimeout` | duration | none | per-direction idle timeout while piping |
//! | `hash` | string | client IP | `host`: hash strategy key is the target |

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UdpSocket;

use crate::addr::{encode_socks_addr, read_socks_addr};
use crate::component::{ConnCtx, Handler, HandlerError, HandlerOpts, Inbound};
use crate::error::{BuildError, DialError};
use crate::handler::Common;
use crate::io::{pipe, BoxStream, Outbound, PacketConn};
use crate::socks::*;

/// The SOCKS5 server.
pub struct Socks5Handler {
    o: HandlerOpts,
    common: Common,
    udp: bool,
    bind: bool,
    udp_buf: usize,
    notls: bool,
    comp: bool,
    mux: crate::mux::Config,
}

/// Factory for `socks5` / `socks`.
pub fn new(o: &HandlerOpts) -> Result<Arc<dyn Handler>, BuildError> {
    Ok(Arc::new(build(o)?))
}

/// Builds the handler (also used by `auto`).
pub fn build(o: &HandlerOpts) -> Result<Socks5Handler, BuildError> {
    let common = Common::parse(o)?;
    let udp = o.md.bool_or(&["udp", "enableUDP"], false)?;
    let bind = o.md.bool_or(&["bind", "enableBind"], false)?;
    let udp_buf =
        o.md.int(&["udp.bufferSize", "udpBufferSize"])?
            .unwrap_or(4096)
            .clamp(512, 65535) as usize;
    let notls = o.md.bool_or(&["notls"], false)?;
    let comp = o.md.bool_or(&["comp", "compatibilityMode"], false)?;
    o.md.mark_known(&["publicAddr", "socks.publicAddr", "udp.resolveDomain"]);
    Ok(Socks5Handler {
        o: o.clone(),
        common,
        udp,
        bind,
        udp_buf,
        notls,
        comp,
        mux: crate::mux::Config::from_md(&o.md)?,
    })
}

async fn reply<W: AsyncWrite + Unpin>(w: &mut W, rep: u8, bnd: &str) -> std::io::Result<()> {
    let mut b = vec![5, rep, 0];
    encode_socks_addr(bnd, &mut b)?;
    w.write_all(&b).await?;
    w.flush().await
}

fn dial_rep(e: &DialError) -> u8 {
    match e {
        DialError::Bypassed(_) => REP_NOT_ALLOWED,
        DialError::Config(_) => REP_FAILURE,
        _ => REP_NET_UNREACHABLE,
    }
}

impl Socks5Handler {
    /// Serves one SOCKS5 connection whose first byte (0x05) has not been consumed.
    pub async fn serve(&self, conn: BoxStream, ctx: ConnCtx) -> Result<(), HandlerError> {
        let head = tokio::time::timeout(self.common.read_timeout, self.negotiate(conn)).await;
        let (mut conn, client_id, cmd, target) = match head {
            Ok(r) => r?,
            Err(_) => return Err(HandlerError::Protocol("SOCKS5 handshake timed out".into())),
        };
        tracing::debug!(sid = %ctx.sid, cmd, dst = %target, "socks5 request");
        match cmd {
            1 => self.connect(conn, &ctx, &client_id, &target).await,
            3 if self.udp => self.associate(conn, &ctx, &client_id).await,
            0xF3 if self.udp && target.ends_with(":0") => {
                self.udp_tun(conn, &ctx, &client_id).await
            }
            0xF3 if self.bind && !target.ends_with(":0") => self.udp_bind(conn, &target).await,
            2 | 0xF2 if self.bind => self.tcp_bind(conn, &ctx, cmd == 0xF2, &target).await,
            2 | 3 | 0xF2 | 0xF3 => {
                let rep = if (cmd == 3 || cmd == 0xF3) && !self.udp
                    || (cmd == 2 || cmd == 0xF2 || cmd == 0xF3) && !self.bind
                {
                    REP_NOT_ALLOWED
                } else {
                    REP_CMD_NOT_SUPPORTED
                };
                reply(&mut conn, rep, "0.0.0.0:0").await?;
                Err(HandlerError::Unsupported(format!(
                    "socks5 command {cmd:#x} refused (rep {rep})"
                )))
            }
            _ => {
                reply(&mut conn, REP_CMD_NOT_SUPPORTED, "0.0.0.0:0").await?;
                Err(HandlerError::Protocol(format!(
                    "unknown SOCKS5 command {cmd:#x}"
                )))
            }
        }
    }

    async fn negotiate(
        &self,
        mut c: BoxStream,
    ) -> Result<(BoxStream, String, u8, String), HandlerError> {
        let ver = c.read_u8().await?;
        if ver != 5 {
            return Err(HandlerError::Protocol(format!("bad SOCKS version {ver}")));
        }
        let n = c.read_u8().await? as usize;
        if n == 0 {
            return Err(HandlerError::Protocol("NMETHODS is 0".into()));
        }
        let mut methods = vec![0u8; n];
        c.read_exact(&mut methods).await?;
        let tls = self.o.tls.as_ref().filter(|_| !self.notls);
        let auth = self.o.auth.enabled();
        let method = if auth {
            if tls.is_some() && methods.contains(&METHOD_TLS_AUTH) {
                METHOD_TLS_AUTH
            } else if methods.contains(&2) {
                2
            } else {
                0xFF
            }
        } else if tls.is_some() && methods.contains(&METHOD_TLS) {
            METHOD_TLS
        } else if methods.contains(&0) {
            0
        } else {
            0xFF
        };
        c.write_all(&[5, method]).await?;
        c.flush().await?;
        if method == 0xFF {
            return Err(HandlerError::Protocol(
                "no acceptable authentication method".into(),
            ));
        }
        if let (Some(cfg), METHOD_TLS | METHOD_TLS_AUTH) = (tls, method) {
            c = crate::tls::accept(cfg, c, self.common.read_timeout).await?;
        }
        let mut client_id = String::new();
        if method == 2 || method == METHOD_TLS_AUTH {
            let v = c.read_u8().await?;
            if v != 1 {
                return Err(HandlerError::Protocol(format!(
                    "bad user/password version {v}"
                )));
            }
            let ul = c.read_u8().await? as usize;
            let mut u = vec![0u8; ul];
            c.read_exact(&mut u).await?;
            let pl = c.read_u8().await? as usize;
            let mut p = vec![0u8; pl];
            c.read_exact(&mut p).await?;
            let user = String::from_utf8_lossy(&u).to_string();
            let pass = String::from_utf8_lossy(&p).to_string();
            match self.o.auth.authenticate(&user, &pass) {
                Some(id) => {
                    c.write_all(&[1, 0]).await?;
                    c.flush().await?;
                    client_id = id;
                }
                None => {
                    c.write_all(&[1, 1]).await?;
                    c.flush().await?;
                    return Err(HandlerError::Auth(user));
                }
            }
        }
        let mut h = [0u8; 3];
        c.read_exact(&mut h).await?;
        if h[0] != 5 {
            return Err(HandlerError::Protocol(format!(
                "bad request version {}",
                h[0]
            )));
        }
        let target = read_socks_addr(&mut c).await?;
        Ok((c, client_id, h[1], target))
    }

    /// BIND (one inbound connection) and MBIND (smux: one stream per inbound connection),
    /// listening locally on `target`.
    async fn tcp_bind(
        &self,
        mut conn: BoxStream,
        ctx: &ConnCtx,
        mux: bool,
        target: &str,
    ) -> Result<(), HandlerError> {
        let l = match tokio::net::TcpListener::bind(target).await {
            Ok(l) => l,
            Err(e) => {
                reply(&mut conn, REP_FAILURE, "0.0.0.0:0").await?;
                return Err(e.into());
            }
        };
        let bound = l.local_addr()?;
        let host = if bound.ip().is_unspecified() {
            ctx.local.ip()
        } else {
            bound.ip()
        };
        reply(
            &mut conn,
            REP_OK,
            &SocketAddr::new(host, bound.port()).to_string(),
        )
        .await?;
        tracing::debug!(addr = %bound, mux, "socks5 bind");
        if mux {
            let session = crate::mux::Session::new(conn, self.mux.clone(), true);
            let comp = self.comp;
            crate::handler::serve_reverse(
                &session,
                &l,
                self.common.idle_timeout,
                |peer| async move {
                    let mut b = Vec::new();
                    if !comp {
                        b.extend_from_slice(&[5, REP_OK, 0]);
                        encode_socks_addr(&peer, &mut b)?;
                    }
                    Ok(b)
                },
            )
            .await;
            return Ok(());
        }
        let accepted = tokio::select! {
            r = l.accept() => r,
            _ = async { let mut b = [0u8; 1]; let _ = conn.read(&mut b).await; } => {
                return Ok(());
            }
        };
        let (peer_conn, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                reply(&mut conn, REP_FAILURE, "0.0.0.0:0").await?;
                return Err(e.into());
            }
        };
        reply(&mut conn, REP_OK, &peer.to_string()).await?;
        pipe(conn, peer_conn, self.common.idle_timeout).await;
        Ok(())
    }

    /// UDP-over-TCP bind mode: a UDP socket bound locally on `target`.
    async fn udp_bind(&self, mut conn: BoxStream, target: &str) -> Result<(), HandlerError> {
        let sock = match UdpSocket::bind(target).await {
            Ok(s) => s,
            Err(e) => {
                reply(&mut conn, REP_FAILURE, "0.0.0.0:0").await?;
                return Err(e.into());
            }
        };
        reply(&mut conn, REP_OK, &sock.local_addr()?.to_string()).await?;
        crate::handler::relay_stream_packets(
            conn,
            Arc::new(crate::io::UdpPacket(sock)),
            self.udp_buf,
            &self.o,
        )
        .await;
        Ok(())
    }

    async fn connect(
        &self,
        mut conn: BoxStream,
        ctx: &ConnCtx,
        client_id: &str,
        target: &str,
    ) -> Result<(), HandlerError> {
        let up = match self.common.connect(&self.o, ctx, client_id, target).await {
            Ok(s) => s,
            Err(e) => {
                reply(&mut conn, dial_rep(&e), "0.0.0.0:0").await?;
                return Err(e.into());
            }
        };
        reply(&mut conn, REP_OK, "0.0.0.0:0").await?;
        pipe(conn, up, self.common.idle_timeout).await;
        Ok(())
    }

    async fn upstream_udp(
        &self,
        ctx: &ConnCtx,
        client_id: &str,
    ) -> Result<Arc<dyn PacketConn>, DialError> {
        match self
            .o
            .router
            .dial("udp", "", self.common.hash_key(ctx, client_id, ""))
            .await?
        {
            Outbound::Packet(p) => Ok(p),
            Outbound::Stream(_) => Err(DialError::Upstream(
                "chain returned a stream for UDP".into(),
            )),
        }
    }

    async fn associate(
        &self,
        mut conn: BoxStream,
        ctx: &ConnCtx,
        client_id: &str,
    ) -> Result<(), HandlerError> {
        let relay = match UdpSocket::bind(SocketAddr::new(ctx.local.ip(), 0)).await {
            Ok(s) => s,
            Err(e) => {
                reply(&mut conn, REP_FAILURE, "0.0.0.0:0").await?;
                return Err(e.into());
            }
        };
        let up = match self.upstream_udp(ctx, client_id).await {
            Ok(p) => p,
            Err(e) => {
                reply(&mut conn, dial_rep(&e), "0.0.0.0:0").await?;
                return Err(e.into());
            }
        };
        let bnd = relay.local_addr()?;
        let mut bnd_ip = bnd.ip();
        if let IpAddr::V6(v6) = bnd_ip {
            if let Some(v4) = v6.to_ipv4_mapped() {
                bnd_ip = IpAddr::V4(v4);
            }
        }
        reply(
            &mut conn,
            REP_OK,
            &SocketAddr::new(bnd_ip, bnd.port()).to_string(),
        )
        .await?;
        let client_ip = ctx.src.ip();
        let relay = Arc::new(relay);
        let client_addr: Arc<parking_lot::Mutex<Option<SocketAddr>>> =
            Arc::new(parking_lot::Mutex::new(None));
        let buf_size = self.udp_buf;
        let to_up = {
            let relay = Arc::clone(&relay);
            let up = Arc::clone(&up);
            let client_addr = Arc::clone(&client_addr);
            let o = self.o.clone();
            async move {
                let mut buf = vec![0u8; buf_size + 262];
                loop {
                    let Ok((n, from)) = relay.recv_from(&mut buf).await else {
                        break;
                    };
                    if !same_ip(from.ip(), client_ip) {
                        continue;
                    }
                    *client_addr.lock() = Some(from);
                    let Ok((dst, off)) = parse_udp_datagram(&buf[..n]) else {
                        continue;
                    };
                    if o.bypass.bypass("udp", &dst) {
                        tracing::warn!(dst = %dst, "udp datagram refused by bypass");
                        continue;
                    }
                    if let Err(e) = up.send_to(&buf[off..n], &dst).await {
                        tracing::debug!(error = %e, dst = %dst, "udp relay send");
                    }
                }
            }
        };
        let from_up = {
            let relay = Arc::clone(&relay);
            let up = Arc::clone(&up);
            let client_addr = Arc::clone(&client_addr);
            async move {
                let mut buf = vec![0u8; buf_size];
                loop {
                    let Ok((n, src)) = up.recv_from(&mut buf).await else {
                        break;
                    };
                    let Some(to) = *client_addr.lock() else {
                        continue;
                    };
                    let Ok(d) = build_udp_datagram(&src, &buf[..n]) else {
                        continue;
                    };
                    let _ = relay.send_to(&d, to).await;
                }
            }
        };
        let control = async {
            let mut b = [0u8; 256];
            while let Ok(n) = conn.read(&mut b).await {
                if n == 0 {
                    break;
                }
            }
        };
        tokio::select! {
            _ = control => {},
            _ = to_up => {},
            _ = from_up => {},
        }
        Ok(())
    }

    async fn udp_tun(
        &self,
        mut conn: BoxStream,
        ctx: &ConnCtx,
        client_id: &str,
    ) -> Result<(), HandlerError> {
        let up = match self.upstream_udp(ctx, client_id).await {
            Ok(p) => p,
            Err(e) => {
                reply(&mut conn, dial_rep(&e), "0.0.0.0:0").await?;
                return Err(e.into());
            }
        };
        reply(&mut conn, REP_OK, &ctx.local.to_string()).await?;
        crate::handler::relay_stream_packets(conn, up, self.udp_buf, &self.o).await;
        Ok(())
    }
}

fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    let norm = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    norm(a) == norm(b)
}

#[async_trait]
impl Handler for Socks5Handler {
    async fn handle(&self, conn: Inbound, ctx: ConnCtx) -> Result<(), HandlerError> {
        match conn {
            Inbound::Stream(s) => self.serve(s, ctx).await,
            Inbound::Datagram(_) => Err(HandlerError::Unsupported(
                "socks5 handler needs a stream listener".into(),
            )),
        }
    }
}
