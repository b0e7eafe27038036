//! Listen addresses of the operator's endpoints.

use std::net::SocketAddr;

/// `host:port`, `[v6]:port` or `:port` (every address).
pub fn parse_addr(a: &str) -> Option<SocketAddr> {
    match a.strip_prefix(':') {
        Some(port) => port
            .parse()
            .ok()
            .map(|p: u16| SocketAddr::from(([0, 0, 0, 0], p))),
        None => a.parse().ok(),
    }
}

/// Binds `addr`; `[::]:p` binds dual-stack (v4-mapped accepted), falling back to `0.0.0.0:p`
/// where the pod has no IPv6.
pub fn bind_dual_stack(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let mk = |sa: SocketAddr, dual: bool| -> std::io::Result<std::net::TcpListener> {
        let s = socket2::Socket::new(
            socket2::Domain::for_address(sa),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        if dual {
            s.set_only_v6(false)?;
        }
        s.set_reuse_address(true)?;
        s.bind(&sa.into())?;
        s.listen(128)?;
        s.set_nonblocking(true)?;
        Ok(s.into())
    };
    match addr {
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => match mk(addr, true) {
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)
                ) =>
            {
                mk(SocketAddr::from(([0, 0, 0, 0], addr.port())), false)
            }
            r => r,
        },
        _ => mk(addr, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_like_the_engine_s() {
        assert_eq!(
            parse_addr(":9443"),
            Some(SocketAddr::from(([0, 0, 0, 0], 9443)))
        );
        assert_eq!(parse_addr("[::]:9443").map(|a| a.is_ipv6()), Some(true));
        assert_eq!(
            parse_addr("127.0.0.1:1"),
            Some(SocketAddr::from(([127, 0, 0, 1], 1)))
        );
        assert_eq!(parse_addr("nope"), None);
    }
}
