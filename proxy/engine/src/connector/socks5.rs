//! `socks5` / `socks` connector: method negotiation (+ RFC 1929 auth) as the connector
//! handshake, then CONNECT; UDP via GOST's UDP-over-TCP command (`0xF3`, the default, needs a
//! GOST server with `udp: true`) or, with `relay: udp`, a standard UDP ASSOCIATE.
//! `bind` (rtcp/rudp): MBIND (`0xF2`, the connection becomes an smux session whose streams
//! are the inbound connections) for TCP, UDP-over-TCP in bind mode for UDP; the server needs
//! `bind: true`.
//!
//! Divergence: GOST's client also offers its private TLS methods (0x80/0x82) unless
//! `notls: true`; gost-proxy offers only the standard methods, which every server
//! (GOST included) accepts.
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `timeout` | duration | 15s | bounds each exchange |
//! | `relay` | string | none | `udp`: standard UDP ASSOCIATE instead of UDP-over-TCP |
//! | `notls` | bool | false | accepted (TLS methods are never offered) |
//! | `comp` / `compatibilityMode` | bool | false | MBIND streams start without a SOCKS5 reply |
//! | `mux.*` | | | smux settings for MBIND ([`crate::mux`]) |

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::addr::{encode_socks_addr, read_socks_addr};
use crate::component::{Bound, Connector, NodeOpts};
use crate::error::{BuildError, DialError};
use crate::io::{BoxStream, Outbound, PacketConn};
use crate::socks::{build_udp_datagram, parse_udp_datagram, StreamPacket};

/// The SOCKS5 client.
pub struct Socks5Connector {
    creds: Option<(String, String)>,
    timeout: Duration,
    relay_udp: bool,
    comp: bool,
    mux: crate::mux::Config,
}

/// Factory for `socks5` / `socks`.
pub fn new(o: &NodeOpts) -> Result<Arc<dyn Connector>, BuildError> {
    let relay = o.md.string(&["relay"])?.unwrap_or_default();
    o.md.mark_known(&["notls", "udp.bufferSize", "udp.timeout"]);
    Ok(Arc::new(Socks5Connector {
        creds: super::credentials(o)?,
        timeout: super::timeout(o)?,
        relay_udp: relay == "udp",
        comp: o.md.bool_or(&["comp", "compatibilityMode"], false)?,
        mux: crate::mux::Config::from_md(&o.md)?,
    }))
}

async fn request(conn: &mut BoxStream, cmd: u8, addr: &str) -> std::io::Result<String> {
    let mut req = vec![5u8, cmd, 0];
    encode_socks_addr(if addr.is_empty() { "0.0.0.0:0" } else { addr }, &mut req)?;
    conn.write_all(&req).await?;
    conn.flush().await?;
    let mut h = [0u8; 3];
    conn.read_exact(&mut h).await?;
    let bnd = read_socks_addr(conn).await?;
    if h[0] != 5 || h[1] != 0 {
        return Err(std::io::Error::other(format!(
            "socks5 request refused (reply {})",
            h[1]
        )));
    }
    Ok(bnd)
}

impl Socks5Connector {
    async fn negotiate(&self, mut conn: BoxStream) -> std::io::Result<BoxStream> {
        let methods: &[u8] = if self.creds.is_some() { &[0, 2] } else { &[0] };
        let mut hello = vec![5u8, methods.len() as u8];
        hello.extend_from_slice(methods);
        conn.write_all(&hello).await?;
        conn.flush().await?;
        let mut r = [0u8; 2];
        conn.read_exact(&mut r).await?;
        if r[0] != 5 {
            return Err(std::io::Error::other(format!(
                "bad SOCKS version {} from server",
                r[0]
            )));
        }
        match r[1] {
            0 => {}
            2 => {
                let (u, p) = self.creds.clone().unwrap_or_default();
                let mut a = vec![1u8, u.len().min(255) as u8];
                a.extend_from_slice(&u.as_bytes()[..u.len().min(255)]);
                a.push(p.len().min(255) as u8);
                a.extend_from_slice(&p.as_bytes()[..p.len().min(255)]);
                conn.write_all(&a).await?;
                conn.flush().await?;
                let mut s = [0u8; 2];
                conn.read_exact(&mut s).await?;
                if s[1] != 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::PermissionDenied,
                        "socks5 authentication failed",
                    ));
                }
            }
            m => {
                return Err(std::io::Error::other(format!(
                    "socks5 server selected unsupported method {m:#x}"
                )))
            }
        }
        Ok(conn)
    }
}

/// Standard UDP ASSOCIATE: datagrams to the relay address; the control stream is kept open.
struct AssociatePacket {
    sock: tokio::net::UdpSocket,
    _control: tokio::sync::Mutex<BoxStream>,
}

#[async_trait]
impl PacketConn for AssociatePacket {
    async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, String)> {
        let mut tmp = vec![0u8; buf.len() + 262];
        loop {
            let n = self.sock.recv(&mut tmp).await?;
            if let Ok((addr, off)) = parse_udp_datagram(&tmp[..n]) {
                let len = (n - off).min(buf.len());
                buf[..len].copy_from_slice(&tmp[off..off + len]);
                return Ok((len, addr));
            }
        }
    }
    async fn send_to(&self, buf: &[u8], addr: &str) -> std::io::Result<usize> {
        self.sock.send(&build_udp_datagram(addr, buf)?).await?;
        Ok(buf.len())
    }
}

#[async_trait]
impl Connector for Socks5Connector {
    async fn bind(
        &self,
        mut conn: BoxStream,
        network: &str,
        addr: &str,
    ) -> Result<Bound, DialError> {
        let up =
            |e: std::io::Error| DialError::Upstream(format!("socks5 bind {network} {addr}: {e}"));
        let target = match crate::addr::split_host_port(addr) {
            Some(("", p)) => format!("0.0.0.0:{p}"),
            _ => addr.to_string(),
        };
        if network.starts_with("udp") {
            let bnd = super::bounded(
                self.timeout,
                "socks5 udp bind",
                request(&mut conn, 0xF3, &target),
            )
            .await
            .map_err(up)?;
            return Ok(Bound::Packet(Arc::new(StreamPacket::new(conn)), bnd));
        }
        let bnd = super::bounded(
            self.timeout,
            "socks5 mbind",
            request(&mut conn, 0xF2, &target),
        )
        .await
        .map_err(up)?;
        Ok(Bound::Stream(Box::new(super::relay::MuxAccept {
            session: crate::mux::Session::new(conn, self.mux.clone(), false),
            addr: bnd,
            preamble: if self.comp {
                super::relay::Preamble::None
            } else {
                super::relay::Preamble::Socks5
            },
        })))
    }

    async fn handshake(&self, conn: BoxStream) -> std::io::Result<BoxStream> {
        super::bounded(self.timeout, "socks5 handshake", self.negotiate(conn)).await
    }

    async fn connect(
        &self,
        mut conn: BoxStream,
        network: &str,
        addr: &str,
    ) -> Result<Outbound, DialError> {
        let up = |e: std::io::Error| DialError::Upstream(format!("socks5 {network} {addr}: {e}"));
        if !network.starts_with("udp") {
            super::bounded(self.timeout, "socks5 connect", request(&mut conn, 1, addr))
                .await
                .map_err(up)?;
            return Ok(Outbound::Stream(conn));
        }
        if self.relay_udp {
            let bnd = super::bounded(
                self.timeout,
                "socks5 associate",
                request(&mut conn, 3, "0.0.0.0:0"),
            )
            .await
            .map_err(up)?;
            let relay = crate::addr::resolve_system(&bnd).await.map_err(up)?;
            let bind = if relay.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            let sock = tokio::net::UdpSocket::bind(bind).await.map_err(up)?;
            sock.connect(relay).await.map_err(up)?;
            return Ok(Outbound::Packet(Arc::new(AssociatePacket {
                sock,
                _control: tokio::sync::Mutex::new(conn),
            })));
        }
        super::bounded(
            self.timeout,
            "socks5 udp-tun",
            request(&mut conn, 0xF3, "0.0.0.0:0"),
        )
        .await
        .map_err(up)?;
        Ok(Outbound::Packet(Arc::new(StreamPacket::new(conn))))
    }
}
