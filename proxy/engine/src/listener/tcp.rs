//! `tcp` listener: plain TCP.
//!
//! ```yaml
//! services:
//! - name: web
//!   addr: :8080
//!   listener: {type: tcp}
//! ```
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `backlog` | int | 1024 | listen backlog |
//! | `reuseport` | bool | false | set SO_REUSEPORT (hot reload binds the new socket before closing the old one) |

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener as TokioTcpListener;

use crate::addr::parse_listen_addr;
use crate::component::{Inbound, Listener, ListenerOpts};
use crate::error::BuildError;

/// A bound TCP listener.
pub struct TcpListener {
    inner: TokioTcpListener,
    local: SocketAddr,
}

/// Binds a TCP socket the way GOST does: an IPv4 literal gives an IPv4 socket, an empty host
/// a dual-stack one.
pub fn bind_tcp(
    path: &str,
    addr: &str,
    backlog: i32,
    reuseport: bool,
) -> Result<TokioTcpListener, BuildError> {
    let sa = parse_listen_addr(addr).ok_or_else(|| {
        BuildError::new(
            format!("{path}.addr"),
            format!("invalid listen address {addr:?} (expected host:port, e.g. 127.0.0.1:8080 or :8080)"),
        )
    })?;
    let bind = || -> io::Result<TokioTcpListener> {
        let sock = Socket::new(Domain::for_address(sa), Type::STREAM, Some(Protocol::TCP))?;
        if sa.is_ipv6() {
            let _ = sock.set_only_v6(false);
        }
        sock.set_reuse_address(true)?;
        if reuseport {
            sock.set_reuse_port(true)?;
        }
        sock.set_nonblocking(true)?;
        sock.bind(&sa.into())?;
        sock.listen(backlog)?;
        TokioTcpListener::from_std(sock.into())
    };
    bind().map_err(|e| {
        BuildError::new(
            format!("{path}.addr"),
            format!("cannot listen on {addr}: {e}"),
        )
    })
}

fn opts(o: &ListenerOpts) -> Result<(i64, bool), BuildError> {
    let backlog = o.md.int(&["backlog"])?.unwrap_or(1024);
    let reuseport = o.md.bool_or(&["reuseport", "reusePort"], false)?;
    o.md.mark_known(crate::md::TCP_KEYS);
    Ok((backlog, reuseport))
}

/// Validates `tcp` listener options without binding.
pub fn check(o: &ListenerOpts) -> Result<(), BuildError> {
    opts(o).map(|_| ())
}

/// Factory for `tcp`.
pub fn new(o: &ListenerOpts) -> Result<Arc<dyn Listener>, BuildError> {
    let (backlog, reuseport) = opts(o)?;
    let inner = bind_tcp(
        &o.path,
        &o.addr,
        i32::try_from(backlog).unwrap_or(1024),
        reuseport,
    )?;
    let local = inner
        .local_addr()
        .map_err(|e| BuildError::new(format!("{}.addr", o.path), e.to_string()))?;
    Ok(Arc::new(TcpListener { inner, local }))
}

#[async_trait]
impl Listener for TcpListener {
    async fn accept(&self) -> io::Result<(Inbound, SocketAddr)> {
        let (s, peer) = self.inner.accept().await?;
        let _ = s.set_nodelay(true);
        Ok((Inbound::Stream(Box::new(s)), peer))
    }
    fn local_addr(&self) -> SocketAddr {
        self.local
    }
}
