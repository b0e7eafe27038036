//! `sni` handler: a TCP proxy that takes the target from the first bytes the client sends.
//! A TLS ClientHello → the SNI host (port 443 unless the name has one); an HTTP request → the
//! `Host` header (port 80 by default); anything else is closed. The bytes read are forwarded
//! to the target, then both directions are piped. The read deadline (`readTimeout`) applies to
//! the first bytes only.
//!
//! Divergence: for HTTP the first request's `Host` decides the whole connection (GOST handles
//! each request of a keep-alive connection separately).
//!
//! ```yaml
//! services:
//! - name: sni
//!   addr: :443
//!   handler: {type: sni}
//! ```
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `readTimeout` | duration | 15s | deadline for the ClientHello / request head |
//! | `idleTimeout` | duration | none | per-direction idle timeout while piping |
//! | `hash` | string | client IP | `host`: hash strategy key is the target |

use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::addr::with_default_port;
use crate::component::{ConnCtx, Handler, HandlerError, HandlerOpts, Inbound};
use crate::error::{BuildError, DialError};
use crate::handler::Common;
use crate::io::{pipe, BoxStream};

/// The SNI proxy.
pub struct SniHandler {
    o: HandlerOpts,
    common: Common,
}

/// Factory for `sni`.
pub fn new(o: &HandlerOpts) -> Result<Arc<dyn Handler>, BuildError> {
    o.md.mark_known(&["mitm.certFile", "mitm.keyFile", "mitm.alpn"]);
    Ok(Arc::new(SniHandler {
        common: Common::parse(o)?,
        o: o.clone(),
    }))
}

/// The server name of a TLS ClientHello record (`buf` holds the whole first record).
pub fn client_hello_sni(buf: &[u8]) -> Option<String> {
    let rec = buf.get(5..)?;
    if *buf.first()? != 0x16 || *rec.first()? != 1 {
        return None;
    }
    // handshake type(1) len(3) version(2) random(32)
    let mut i = 4 + 2 + 32;
    let sid = *rec.get(i)? as usize;
    i += 1 + sid;
    let cs = u16::from_be_bytes([*rec.get(i)?, *rec.get(i + 1)?]) as usize;
    i += 2 + cs;
    let comp = *rec.get(i)? as usize;
    i += 1 + comp;
    let ext_len = u16::from_be_bytes([*rec.get(i)?, *rec.get(i + 1)?]) as usize;
    i += 2;
    let end = (i + ext_len).min(rec.len());
    while i + 4 <= end {
        let kind = u16::from_be_bytes([rec[i], rec[i + 1]]);
        let len = u16::from_be_bytes([rec[i + 2], rec[i + 3]]) as usize;
        let data = rec.get(i + 4..i + 4 + len)?;
        if kind == 0 {
            // server_name_list: len(2), then type(1)=0 len(2) name
            let nl = u16::from_be_bytes([*data.get(3)?, *data.get(4)?]) as usize;
            let name = data.get(5..5 + nl)?;
            return String::from_utf8(name.to_vec()).ok();
        }
        i += 4 + len;
    }
    None
}

/// The `Host` header of an HTTP request head.
fn http_host(head: &[u8]) -> Option<String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(head).ok()?;
    req.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("host"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .map(|s| s.trim().to_string())
}

impl SniHandler {
    /// Reads the first record or request head; returns (bytes read, target).
    async fn sniff(&self, conn: &mut BoxStream) -> Result<(Vec<u8>, String), HandlerError> {
        let first = conn.read_u8().await?;
        let mut buf = vec![first];
        if first == 0x16 {
            let mut h = [0u8; 4];
            conn.read_exact(&mut h).await?;
            buf.extend_from_slice(&h);
            let len = u16::from_be_bytes([h[2], h[3]]) as usize;
            let mut rec = vec![0u8; len];
            conn.read_exact(&mut rec).await?;
            buf.extend_from_slice(&rec);
            let host = client_hello_sni(&buf)
                .ok_or_else(|| HandlerError::Protocol("TLS ClientHello without SNI".into()))?;
            return Ok((buf, with_default_port(&host, 443)));
        }
        if !first.is_ascii_uppercase() {
            return Err(HandlerError::Protocol(
                "neither a TLS ClientHello nor an HTTP request".into(),
            ));
        }
        let mut tmp = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            if buf.len() > 64 * 1024 {
                return Err(HandlerError::Protocol("HTTP request head too large".into()));
            }
            let n = conn.read(&mut tmp).await?;
            if n == 0 {
                return Err(HandlerError::Protocol(
                    "connection closed in the request head".into(),
                ));
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        let host = http_host(&buf)
            .ok_or_else(|| HandlerError::Protocol("HTTP request without Host".into()))?;
        Ok((buf, with_default_port(&host, 80)))
    }

    async fn serve(&self, mut conn: BoxStream, ctx: ConnCtx) -> Result<(), HandlerError> {
        let (head, target) =
            match tokio::time::timeout(self.common.read_timeout, self.sniff(&mut conn)).await {
                Ok(r) => r?,
                Err(_) => return Err(HandlerError::Protocol("no request in time".into())),
            };
        tracing::debug!(sid = %ctx.sid, dst = %target, "sni");
        if self.o.bypass.bypass("tcp", &target) {
            return Err(DialError::Bypassed(target).into());
        }
        let mut up = self
            .o
            .router
            .dial("tcp", &target, self.common.hash_key(&ctx, "", &target))
            .await?
            .into_stream()?;
        up.write_all(&head).await?;
        up.flush().await?;
        pipe(conn, up, self.common.idle_timeout).await;
        Ok(())
    }
}

#[async_trait]
impl Handler for SniHandler {
    async fn handle(&self, conn: Inbound, ctx: ConnCtx) -> Result<(), HandlerError> {
        match conn {
            Inbound::Stream(s) => self.serve(s, ctx).await,
            Inbound::Datagram(_) => Err(HandlerError::Unsupported(
                "sni handler needs a stream listener".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sni_is_read_from_a_real_client_hello() {
        let cfg = crate::tls::client_config("t", None, "origin.kubegost.test:443").unwrap();
        let (a, mut b) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let _ = crate::tls::connect(&cfg, Box::new(a), std::time::Duration::from_secs(5)).await;
        });
        let mut h = [0u8; 5];
        b.read_exact(&mut h).await.unwrap();
        let mut rec = vec![0u8; u16::from_be_bytes([h[3], h[4]]) as usize];
        b.read_exact(&mut rec).await.unwrap();
        let mut all = h.to_vec();
        all.extend_from_slice(&rec);
        assert_eq!(
            client_hello_sni(&all).as_deref(),
            Some("origin.kubegost.test")
        );
        assert_eq!(
            http_host(b"GET / HTTP/1.1\r\nHost: a.test:8080\r\n\r\n").as_deref(),
            Some("a.test:8080")
        );
    }
}
