//! `socks4` / `socks4a` connector. Sends the 4a form (`0.0.0.1` + host name) by default, even
//! for IP literals, like GOST; `disable4a: true` sends IPv4 literals only.
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `timeout` | duration | 15s | bounds the exchange |
//! | `disable4a` | bool | false | send IPv4 addresses instead of host names |

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::addr::split_host_port;
use crate::component::{Connector, NodeOpts};
use crate::error::{BuildError, DialError};
use crate::io::{BoxStream, Outbound};

/// The SOCKS4(a) client.
pub struct Socks4Connector {
    user: String,
    disable4a: bool,
    timeout: Duration,
}

/// Factory for `socks4` / `socks4a`.
pub fn new(o: &NodeOpts) -> Result<Arc<dyn Connector>, BuildError> {
    let user = super::credentials(o)?.map(|c| c.0).unwrap_or_default();
    Ok(Arc::new(Socks4Connector {
        user,
        disable4a: o.md.bool_or(&["disable4a"], false)?,
        timeout: super::timeout(o)?,
    }))
}

impl Socks4Connector {
    async fn exchange(&self, mut conn: BoxStream, addr: &str) -> std::io::Result<BoxStream> {
        let (host, port) = split_host_port(addr).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("bad address {addr}"),
            )
        })?;
        let mut req = vec![4u8, 1];
        req.extend_from_slice(&port.to_be_bytes());
        if self.disable4a {
            let ip: Ipv4Addr = match host.parse() {
                Ok(ip) => ip,
                Err(_) => match crate::addr::resolve_system(addr).await?.ip() {
                    std::net::IpAddr::V4(v4) => v4,
                    std::net::IpAddr::V6(_) => {
                        return Err(std::io::Error::other("SOCKS4 cannot carry IPv6"))
                    }
                },
            };
            req.extend_from_slice(&ip.octets());
            req.extend_from_slice(self.user.as_bytes());
            req.push(0);
        } else {
            req.extend_from_slice(&[0, 0, 0, 1]);
            req.extend_from_slice(self.user.as_bytes());
            req.push(0);
            req.extend_from_slice(host.as_bytes());
            req.push(0);
        }
        conn.write_all(&req).await?;
        conn.flush().await?;
        let mut rep = [0u8; 8];
        conn.read_exact(&mut rep).await?;
        if rep[0] != 0 || rep[1] != 90 {
            return Err(std::io::Error::other(format!(
                "socks4 request rejected (code {})",
                rep[1]
            )));
        }
        Ok(conn)
    }
}

#[async_trait]
impl Connector for Socks4Connector {
    async fn connect(
        &self,
        conn: BoxStream,
        network: &str,
        addr: &str,
    ) -> Result<Outbound, DialError> {
        if network.starts_with("udp") {
            return Err(DialError::Upstream("socks4 cannot carry UDP".into()));
        }
        let c = super::bounded(self.timeout, "socks4 connect", self.exchange(conn, addr))
            .await
            .map_err(|e| DialError::Upstream(format!("socks4 connect {addr}: {e}")))?;
        Ok(Outbound::Stream(c))
    }
}
