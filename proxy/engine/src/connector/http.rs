//! `http` connector: `CONNECT host:port` to an HTTP proxy node (with Basic auth), and GOST's
//! UDP over HTTP (`X-Gost-Protocol: udp`) for UDP.
//!
//! ```yaml
//! nodes:
//! - name: proxy
//!   addr: 127.0.0.1:3128
//!   connector: {type: http, auth: {username: u, password: p}}
//! ```
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `timeout` | duration | 15s | bounds the CONNECT exchange |
//! | `header` | map | none | extra request headers |

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::component::{Connector, NodeOpts};
use crate::error::{BuildError, DialError};
use crate::io::{BoxStream, Outbound, Rewind};
use crate::socks::StreamPacket;

/// The HTTP CONNECT client.
pub struct HttpConnector {
    auth: Option<String>,
    headers: Vec<(String, String)>,
    timeout: Duration,
}

/// Factory for `http`.
pub fn new(o: &NodeOpts) -> Result<Arc<dyn Connector>, BuildError> {
    let auth = super::credentials(o)?
        .map(|(u, p)| base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")));
    let headers = o.md.map(&["header"])?.unwrap_or_default();
    Ok(Arc::new(HttpConnector {
        auth,
        headers,
        timeout: super::timeout(o)?,
    }))
}

impl HttpConnector {
    async fn exchange(
        &self,
        mut conn: BoxStream,
        addr: &str,
        udp: bool,
    ) -> std::io::Result<BoxStream> {
        let mut req =
            format!("CONNECT {addr} HTTP/1.1\r\nHost: {addr}\r\nProxy-Connection: keep-alive\r\n");
        if let Some(a) = &self.auth {
            req.push_str(&format!("Proxy-Authorization: Basic {a}\r\n"));
        }
        if udp {
            req.push_str("X-Gost-Protocol: udp\r\n");
        }
        for (k, v) in &self.headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        conn.write_all(req.as_bytes()).await?;
        conn.flush().await?;
        let mut buf = Vec::with_capacity(512);
        let mut tmp = [0u8; 1024];
        loop {
            let n = conn.read(&mut tmp).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "proxy closed during CONNECT",
                ));
            }
            buf.extend_from_slice(&tmp[..n]);
            let mut hs = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut hs);
            match resp.parse(&buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let code = resp.code.unwrap_or(0);
                    if code != 200 {
                        return Err(std::io::Error::other(format!(
                            "proxy answered {code} {}",
                            resp.reason.unwrap_or("")
                        )));
                    }
                    let rest = buf[len..].to_vec();
                    return Ok(if rest.is_empty() {
                        conn
                    } else {
                        Box::new(Rewind::new(rest, conn))
                    });
                }
                Ok(httparse::Status::Partial) if buf.len() < 64 * 1024 => continue,
                Ok(httparse::Status::Partial) => {
                    return Err(std::io::Error::other("proxy response head too large"))
                }
                Err(e) => {
                    return Err(std::io::Error::other(format!(
                        "malformed proxy response: {e}"
                    )))
                }
            }
        }
    }
}

#[async_trait]
impl Connector for HttpConnector {
    async fn connect(
        &self,
        conn: BoxStream,
        network: &str,
        addr: &str,
    ) -> Result<Outbound, DialError> {
        let udp = network.starts_with("udp");
        let target = if addr.is_empty() { "0.0.0.0:0" } else { addr };
        let c = super::bounded(
            self.timeout,
            "http connect",
            self.exchange(conn, target, udp),
        )
        .await
        .map_err(|e| DialError::Upstream(format!("http connect {target}: {e}")))?;
        if udp {
            return Ok(Outbound::Packet(Arc::new(StreamPacket::new(c))));
        }
        Ok(Outbound::Stream(c))
    }
}
