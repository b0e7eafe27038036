//! `socks4` / `socks4a` handler: SOCKS4 and SOCKS4a CONNECT.
//!
//! ```yaml
//! services:
//! - name: s4
//!   addr: :1080
//!   handler: {type: socks4}
//! ```
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `readTimeout` | duration | 15s | the request must arrive within this |
//! | `idleTimeout` | duration | none | per-direction idle timeout while piping |
//!
//! With an authenticator the USERID is checked as a user name with an empty password.
//! Replies: 90 granted, 91 failed (dial), 92 rejected (bypass), 93 rejected (userid).

use std::net::Ipv4Addr;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::addr::join_host_port;
use crate::component::{ConnCtx, Handler, HandlerError, HandlerOpts, Inbound};
use crate::error::{BuildError, DialError};
use crate::handler::Common;
use crate::io::{pipe, BoxStream};

/// The SOCKS4(a) server.
pub struct Socks4Handler {
    o: HandlerOpts,
    common: Common,
}

/// Factory for `socks4` / `socks4a`.
pub fn new(o: &HandlerOpts) -> Result<Arc<dyn Handler>, BuildError> {
    Ok(Arc::new(build(o)?))
}

/// Builds the handler (also used by `auto`).
pub fn build(o: &HandlerOpts) -> Result<Socks4Handler, BuildError> {
    Ok(Socks4Handler {
        o: o.clone(),
        common: Common::parse(o)?,
    })
}

async fn read_cstr<R: AsyncRead + Unpin>(r: &mut R) -> Result<String, HandlerError> {
    let mut v = Vec::new();
    loop {
        let b = r.read_u8().await?;
        if b == 0 {
            break;
        }
        if v.len() >= 255 {
            return Err(HandlerError::Protocol(
                "SOCKS4 field longer than 255 bytes".into(),
            ));
        }
        v.push(b);
    }
    Ok(String::from_utf8_lossy(&v).to_string())
}

async fn read_request<R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<(u8, String, String), HandlerError> {
    let mut h = [0u8; 8];
    r.read_exact(&mut h).await?;
    if h[0] != 4 {
        return Err(HandlerError::Protocol(format!(
            "bad SOCKS4 version {}",
            h[0]
        )));
    }
    let cd = h[1];
    if cd != 1 && cd != 2 {
        return Err(HandlerError::Protocol(format!("bad SOCKS4 command {cd}")));
    }
    let port = u16::from_be_bytes([h[2], h[3]]);
    let ip = Ipv4Addr::new(h[4], h[5], h[6], h[7]);
    let user = read_cstr(r).await?;
    let o = ip.octets();
    let host = if o[0] == 0 && o[1] == 0 && o[2] == 0 && o[3] != 0 {
        read_cstr(r).await?
    } else {
        ip.to_string()
    };
    Ok((cd, user, join_host_port(&host, port)))
}

impl Socks4Handler {
    /// Serves one SOCKS4 connection whose first byte (0x04) has not been consumed.
    pub async fn serve(&self, mut conn: BoxStream, ctx: ConnCtx) -> Result<(), HandlerError> {
        let (cd, user, target) =
            tokio::time::timeout(self.common.read_timeout, read_request(&mut conn))
                .await
                .map_err(|_| HandlerError::Protocol("SOCKS4 request timed out".into()))??;
        let send = |code: u8| [0u8, code, 0, 0, 0, 0, 0, 0];
        let mut client_id = String::new();
        if self.o.auth.enabled() {
            match self.o.auth.authenticate(&user, "") {
                Some(id) => client_id = id,
                None => {
                    conn.write_all(&send(93)).await?;
                    conn.flush().await?;
                    return Err(HandlerError::Auth(user));
                }
            }
        }
        if cd == 2 {
            return Err(HandlerError::Unsupported(
                "SOCKS4 BIND is not supported".into(),
            ));
        }
        let up = match self
            .common
            .connect(&self.o, &ctx, &client_id, &target)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                // 92: rejected by the bypass; 91: the target could not be reached.
                let code = if matches!(e, DialError::Bypassed(_)) {
                    92
                } else {
                    91
                };
                conn.write_all(&send(code)).await?;
                conn.flush().await?;
                return Err(e.into());
            }
        };
        conn.write_all(&send(90)).await?;
        conn.flush().await?;
        pipe(conn, up, self.common.idle_timeout).await;
        Ok(())
    }
}

#[async_trait]
impl Handler for Socks4Handler {
    async fn handle(&self, conn: Inbound, ctx: ConnCtx) -> Result<(), HandlerError> {
        match conn {
            Inbound::Stream(s) => self.serve(s, ctx).await,
            Inbound::Datagram(_) => Err(HandlerError::Unsupported(
                "socks4 handler needs a stream listener".into(),
            )),
        }
    }
}
