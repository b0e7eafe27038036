//! `relay` connector: GOST relay protocol client (engine spec §6.6).
//!
//! CONNECT carries `[NETWORK (udp only)] [USERAUTH] [ADDR]`. By default (`nodelay: false`)
//! the request is not sent until the first write and goes out in the same write; the response
//! is consumed on the first read. Divergence: if the application reads first (server-speaks-first
//! protocols such as SSH), the request is sent at that moment instead of hanging as GOST does.
//! With `nodelay: true` the request is written and the response checked before returning.
//! UDP: CONNECT with the UDP flag and `LEN(2) | PAYLOAD` datagrams; an empty target (a UDP
//! association) is `BIND|UDP` with the UDP-over-TCP framing, which needs `bind: true` on the
//! server. `bind` (rtcp/rudp): BIND with NETWORK + ADDR; for TCP the connection then becomes an
//! smux session in which this side accepts the streams, each starting with a relay response
//! carrying the peer address.
//!
//! ```yaml
//! nodes:
//! - name: relay
//!   addr: 10.0.0.1:8421
//!   connector: {type: relay, auth: {username: u, password: p}}
//!   dialer: {type: tls}
//! ```
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `nodelay` | bool | false | send the request at once and wait for the response |
//! | `timeout` / `connectTimeout` | duration | 15s | bounds a synchronous request/response |
//! | `mux.*` | | | smux settings for `bind` ([`crate::mux`]) |

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::component::{Accept, Bound, Connector, NodeOpts};
use crate::error::{BuildError, DialError};
use crate::io::{BoxStream, Outbound, PacketConn, PrefixWrite};
use crate::mux::{Config, Session};
use crate::relay::{self, Message};
use crate::socks::StreamPacket;

/// The relay client.
pub struct RelayConnector {
    creds: Option<(String, String)>,
    nodelay: bool,
    timeout: Duration,
    mux: Config,
}

/// Factory for `relay`.
pub fn new(o: &NodeOpts) -> Result<Arc<dyn Connector>, BuildError> {
    Ok(Arc::new(RelayConnector {
        creds: super::credentials(o)?,
        nodelay: o.md.bool_or(&["nodelay", "noDelay"], false)?,
        timeout: super::timeout(o)?,
        mux: Config::from_md(&o.md)?,
    }))
}

fn status_err(what: &str, status: u8) -> io::Error {
    let kind = match status {
        relay::STATUS_UNAUTHORIZED | relay::STATUS_FORBIDDEN => io::ErrorKind::PermissionDenied,
        _ => io::ErrorKind::ConnectionRefused,
    };
    io::Error::new(kind, format!("relay {what} refused (status {status})"))
}

async fn exchange(conn: &mut BoxStream, req: &Message) -> io::Result<Message> {
    conn.write_all(&req.encode()?).await?;
    conn.flush().await?;
    let resp = Message::read(conn).await?;
    if resp.code != relay::STATUS_OK {
        return Err(status_err("request", resp.code));
    }
    Ok(resp)
}

/// Normalises a bind address: a bare port or empty host means all addresses.
fn bind_addr(addr: &str) -> String {
    match crate::addr::split_host_port(addr) {
        Some(("", p)) => format!("0.0.0.0:{p}"),
        Some(_) => addr.to_string(),
        None => format!("0.0.0.0:{}", addr.trim_start_matches(':')),
    }
}

#[async_trait]
impl Connector for RelayConnector {
    async fn connect(
        &self,
        mut conn: BoxStream,
        network: &str,
        addr: &str,
    ) -> Result<Outbound, DialError> {
        let up = |e: io::Error| DialError::Upstream(format!("relay {network} {addr}: {e}"));
        let udp = network.starts_with("udp");
        if udp && addr.is_empty() {
            let req = Message {
                code: relay::CMD_BIND | relay::FLAG_UDP,
                auth: self.creds.clone(),
                addr: Some("0.0.0.0:0".into()),
                network: Some(1),
            };
            super::bounded(
                self.timeout,
                "relay udp association",
                exchange(&mut conn, &req),
            )
            .await
            .map_err(up)?;
            return Ok(Outbound::Packet(Arc::new(StreamPacket::new(conn))));
        }
        let req = Message {
            code: relay::CMD_CONNECT | if udp { relay::FLAG_UDP } else { 0 },
            auth: self.creds.clone(),
            addr: Some(addr.to_string()),
            network: udp.then_some(1),
        };
        let bytes = req.encode().map_err(up)?;
        if udp {
            conn.write_all(&bytes).await.map_err(up)?;
            conn.flush().await.map_err(up)?;
            if self.nodelay {
                let resp = super::bounded(self.timeout, "relay response", Message::read(&mut conn))
                    .await
                    .map_err(up)?;
                if resp.code != relay::STATUS_OK {
                    return Err(up(status_err("connect", resp.code)));
                }
            }
            let (r, w) = tokio::io::split(conn);
            return Ok(Outbound::Packet(Arc::new(UdpConn {
                r: tokio::sync::Mutex::new((r, !self.nodelay)),
                w: tokio::sync::Mutex::new(w),
                target: addr.to_string(),
            })));
        }
        if self.nodelay {
            super::bounded(self.timeout, "relay connect", exchange(&mut conn, &req))
                .await
                .map_err(up)?;
            return Ok(Outbound::Stream(conn));
        }
        Ok(Outbound::Stream(Box::new(LazyConn {
            conn: PrefixWrite::new(conn, bytes),
            head: Vec::new(),
            head_done: false,
        })))
    }

    async fn bind(
        &self,
        mut conn: BoxStream,
        network: &str,
        addr: &str,
    ) -> Result<Bound, DialError> {
        let up = |e: io::Error| DialError::Upstream(format!("relay bind {network} {addr}: {e}"));
        let udp = network.starts_with("udp");
        let req = Message {
            code: relay::CMD_BIND | if udp { relay::FLAG_UDP } else { 0 },
            auth: self.creds.clone(),
            addr: Some(bind_addr(addr)),
            network: Some(u16::from(udp)),
        };
        let resp = super::bounded(self.timeout, "relay bind", exchange(&mut conn, &req))
            .await
            .map_err(up)?;
        let bound = resp.addr.unwrap_or_else(|| addr.to_string());
        if udp {
            return Ok(Bound::Packet(Arc::new(StreamPacket::new(conn)), bound));
        }
        Ok(Bound::Stream(Box::new(MuxAccept {
            session: Session::new(conn, self.mux.clone(), false),
            addr: bound,
            preamble: Preamble::Relay,
        })))
    }
}

/// What each reverse stream starts with.
#[derive(Debug, Clone, Copy)]
pub enum Preamble {
    /// A relay response with ADDR = peer.
    Relay,
    /// A SOCKS5 reply with BND = peer.
    Socks5,
    /// Nothing (SOCKS5 `comp` mode).
    None,
}

/// Streams of a reverse-bind smux session (the remote node opens one per inbound connection).
pub struct MuxAccept {
    /// The session (this side accepts).
    pub session: Session,
    /// Bound address reported by the node.
    pub addr: String,
    /// Stream preamble.
    pub preamble: Preamble,
}

#[async_trait]
impl Accept for MuxAccept {
    async fn accept(&self) -> io::Result<(BoxStream, String)> {
        let mut s = self.session.accept().await?;
        let peer = match self.preamble {
            Preamble::Relay => {
                let m = tokio::time::timeout(Duration::from_secs(15), Message::read(&mut s))
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "relay preamble"))??;
                if m.code != relay::STATUS_OK {
                    return Err(status_err("bind stream", m.code));
                }
                m.addr.unwrap_or_default()
            }
            Preamble::Socks5 => {
                use tokio::io::AsyncReadExt;
                let mut h = [0u8; 3];
                s.read_exact(&mut h).await?;
                crate::addr::read_socks_addr(&mut s).await?
            }
            Preamble::None => String::new(),
        };
        Ok((Box::new(s), peer))
    }
    fn addr(&self) -> String {
        self.addr.clone()
    }
}

/// UDP through a relay CONNECT: `LEN(2) | PAYLOAD` datagrams to a fixed target.
struct UdpConn {
    /// Read half and whether the response is still to be read.
    r: tokio::sync::Mutex<(tokio::io::ReadHalf<BoxStream>, bool)>,
    w: tokio::sync::Mutex<tokio::io::WriteHalf<BoxStream>>,
    target: String,
}

#[async_trait]
impl PacketConn for UdpConn {
    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, String)> {
        let mut g = self.r.lock().await;
        let (r, pending) = &mut *g;
        if *pending {
            let resp = Message::read(r).await?;
            if resp.code != relay::STATUS_OK {
                return Err(status_err("udp connect", resp.code));
            }
            *pending = false;
        }
        let n = relay::read_datagram(r, buf).await?;
        Ok((n, self.target.clone()))
    }
    async fn send_to(&self, buf: &[u8], _addr: &str) -> io::Result<usize> {
        let mut w = self.w.lock().await;
        relay::write_datagram(&mut *w, buf).await?;
        Ok(buf.len())
    }
}

/// A TCP relay connection whose request is sent with the first write (or before the first
/// read) and whose response is consumed before the first byte is returned.
struct LazyConn {
    conn: PrefixWrite<BoxStream>,
    head: Vec<u8>,
    head_done: bool,
}

impl LazyConn {
    fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.head_done {
            let need = if self.head.len() < 4 {
                4
            } else {
                4 + u16::from_be_bytes([self.head[2], self.head[3]]) as usize
            };
            if self.head.len() >= 4 && self.head.len() == need {
                if self.head[0] != relay::VERSION {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("relay: bad version {}", self.head[0]),
                    )));
                }
                if self.head[1] != relay::STATUS_OK {
                    return Poll::Ready(Err(status_err("connect", self.head[1])));
                }
                self.head_done = true;
                self.head = Vec::new();
                break;
            }
            let mut tmp = [0u8; 512];
            let want = (need - self.head.len()).min(tmp.len());
            let mut rb = ReadBuf::new(&mut tmp[..want]);
            std::task::ready!(Pin::new(self.conn.get_mut()).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "relay: connection closed before the response",
                )));
            }
            self.head.extend_from_slice(rb.filled());
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for LazyConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.head_done {
            std::task::ready!(self.conn.poll_send_prefix(cx))?;
            std::task::ready!(Pin::new(self.conn.get_mut()).poll_flush(cx))?;
            std::task::ready!(self.poll_head(cx))?;
        }
        Pin::new(&mut self.conn).poll_read(cx, out)
    }
}

impl AsyncWrite for LazyConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.conn).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.conn).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.conn).poll_shutdown(cx)
    }
}
