//! `auto` handler: sniffs the first byte: `0x04` → SOCKS4, `0x05` → SOCKS5, anything else →
//! HTTP. The sub-handlers share the same options (auth, chain, bypass, metadata).
//!
//! ```yaml
//! services:
//! - name: any
//!   addr: :8080
//!   handler: {type: auto}
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::AsyncReadExt;

use crate::component::{ConnCtx, Handler, HandlerError, HandlerOpts, Inbound};
use crate::error::BuildError;
use crate::handler::{http, socks4, socks5};
use crate::io::Rewind;

/// The sniffing handler.
pub struct AutoHandler {
    http: http::HttpHandler,
    socks4: socks4::Socks4Handler,
    socks5: socks5::Socks5Handler,
    read_timeout: std::time::Duration,
}

/// Factory for `auto`.
pub fn new(o: &HandlerOpts) -> Result<Arc<dyn Handler>, BuildError> {
    let http = http::build(o)?;
    let socks4 = socks4::build(o)?;
    let socks5 = socks5::build(o)?;
    let read_timeout =
        o.md.duration(&["readTimeout"])?
            .unwrap_or(std::time::Duration::from_secs(15));
    Ok(Arc::new(AutoHandler {
        http,
        socks4,
        socks5,
        read_timeout,
    }))
}

#[async_trait]
impl Handler for AutoHandler {
    async fn handle(&self, conn: Inbound, ctx: ConnCtx) -> Result<(), HandlerError> {
        let Inbound::Stream(mut s) = conn else {
            return Err(HandlerError::Unsupported(
                "auto handler needs a stream listener".into(),
            ));
        };
        let first = tokio::time::timeout(self.read_timeout, s.read_u8())
            .await
            .map_err(|_| HandlerError::Protocol("no data from client".into()))??;
        let s: crate::io::BoxStream = Box::new(Rewind::new(vec![first], s));
        match first {
            4 => self.socks4.serve(s, ctx).await,
            5 => self.socks5.serve(s, ctx).await,
            _ => self.http.serve(s, ctx).await,
        }
    }
}
