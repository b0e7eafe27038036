//! Address helpers: `host:port` splitting and the SOCKS5 address encoding (`ATYP ADDR PORT`)
//! that GOST uses in SOCKS5, UDP framing and the relay protocol.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt};

/// Splits `host:port` (`[v6]:port`, `:port`) into host and port.
pub fn split_host_port(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let end = rest.find(']')?;
        let port = rest[end + 1..].strip_prefix(':')?;
        (&rest[..end], port)
    } else {
        let i = addr.rfind(':')?;
        let host = &addr[..i];
        if host.contains(':') {
            return None;
        }
        (host, &addr[i + 1..])
    };
    let port: u16 = port.parse().ok()?;
    Some((host, port))
}

/// Joins host and port, bracketing IPv6 literals.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Appends `:default` when `addr` has no port (HTTP targets).
pub fn with_default_port(addr: &str, default: u16) -> String {
    if split_host_port(addr).is_some() {
        return addr.to_string();
    }
    let host = addr.trim_start_matches('[').trim_end_matches(']');
    join_host_port(host, default)
}

/// Parses a listen address; an empty host means all addresses (`[::]`).
pub fn parse_listen_addr(addr: &str) -> Option<SocketAddr> {
    let (host, port) = split_host_port(addr)?;
    let ip: IpAddr = if host.is_empty() {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    } else if host == "localhost" {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse().ok()?
    };
    Some(SocketAddr::new(ip, port))
}

/// Encodes `host:port` as SOCKS5 `ATYP ADDR PORT` (empty host → IPv4 0.0.0.0).
pub fn encode_socks_addr(addr: &str, out: &mut Vec<u8>) -> io::Result<()> {
    let (host, port) = split_host_port(addr).unwrap_or((addr, 0));
    encode_host_port(host, port, out)
}

/// Encodes host and port as SOCKS5 `ATYP ADDR PORT`.
pub fn encode_host_port(host: &str, port: u16, out: &mut Vec<u8>) -> io::Result<()> {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => {
            out.push(1);
            out.extend_from_slice(&v4.octets());
        }
        Ok(IpAddr::V6(v6)) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                out.push(1);
                out.extend_from_slice(&v4.octets());
            } else {
                out.push(4);
                out.extend_from_slice(&v6.octets());
            }
        }
        Err(_) if host.is_empty() => {
            out.push(1);
            out.extend_from_slice(&[0, 0, 0, 0]);
        }
        Err(_) => {
            let len = u8::try_from(host.len()).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "domain name longer than 255")
            })?;
            out.push(3);
            out.push(len);
            out.extend_from_slice(host.as_bytes());
        }
    }
    out.extend_from_slice(&port.to_be_bytes());
    Ok(())
}

/// Reads a SOCKS5 `ATYP ADDR PORT` from a stream and returns `host:port`.
pub async fn read_socks_addr<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<String> {
    let atyp = r.read_u8().await?;
    let host = match atyp {
        1 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b).await?;
            Ipv4Addr::from(b).to_string()
        }
        4 => {
            let mut b = [0u8; 16];
            r.read_exact(&mut b).await?;
            std::net::Ipv6Addr::from(b).to_string()
        }
        3 => {
            let len = r.read_u8().await? as usize;
            let mut b = vec![0u8; len];
            r.read_exact(&mut b).await?;
            String::from_utf8(b)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "domain is not UTF-8"))?
        }
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown address type {other:#x}"),
            ))
        }
    };
    let port = r.read_u16().await?;
    Ok(join_host_port(&host, port))
}

/// Decodes a SOCKS5 `ATYP ADDR PORT` from a buffer; returns `host:port` and bytes consumed.
pub fn decode_socks_addr(b: &[u8]) -> io::Result<(String, usize)> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "truncated address");
    let atyp = *b.first().ok_or_else(bad)?;
    let (host, n) = match atyp {
        1 => {
            let a: [u8; 4] = b.get(1..5).ok_or_else(bad)?.try_into().map_err(|_| bad())?;
            (Ipv4Addr::from(a).to_string(), 5)
        }
        4 => {
            let a: [u8; 16] = b
                .get(1..17)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?;
            (std::net::Ipv6Addr::from(a).to_string(), 17)
        }
        3 => {
            let len = *b.get(1).ok_or_else(bad)? as usize;
            let s = b.get(2..2 + len).ok_or_else(bad)?;
            (String::from_utf8(s.to_vec()).map_err(|_| bad())?, 2 + len)
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown address type {atyp:#x}"),
            ))
        }
    };
    let p = b.get(n..n + 2).ok_or_else(bad)?;
    let port = u16::from_be_bytes([p[0], p[1]]);
    Ok((join_host_port(&host, port), n + 2))
}

/// The system's resolver, read from `/etc/resolv.conf` and `/etc/hosts` by the engine itself
/// (hickory) rather than through the C library: in the static binary of a `FROM scratch`
/// image, glibc's `getaddrinfo` has no NSS modules and cannot resolve any name, so a
/// sidecar would not find `relay.<ns>.svc.cluster.local`. `None` when no resolv.conf can be
/// read (then the C library is asked).
fn system_resolver() -> Option<&'static hickory_resolver::TokioResolver> {
    static R: std::sync::OnceLock<Option<hickory_resolver::TokioResolver>> =
        std::sync::OnceLock::new();
    R.get_or_init(|| {
        let mut b = match hickory_resolver::TokioResolver::builder_tokio() {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(error = %e, "no system DNS configuration; names go to the C library");
                return None;
            }
        };
        b.options_mut().use_hosts_file = hickory_resolver::config::ResolveHosts::Always;
        b.build()
            .map_err(|e| tracing::warn!(error = %e, "system resolver"))
            .ok()
    })
    .as_ref()
}

/// Resolves `host:port` with the system's DNS configuration (IPv4 first, like GOST's
/// defaults): `/etc/hosts`, then the name servers, search domains and `ndots` of
/// `/etc/resolv.conf`.
pub async fn resolve_system(addr: &str) -> io::Result<SocketAddr> {
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return Ok(sa);
    }
    let not_found = || io::Error::new(io::ErrorKind::NotFound, format!("no address for {addr}"));
    let (host, port) = split_host_port(addr).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{addr}: not host:port"),
        )
    })?;
    if let Some(r) = system_resolver() {
        match r.lookup_ip(host).await {
            Ok(ips) => {
                let mut ips: Vec<std::net::IpAddr> = ips.iter().collect();
                ips.sort_by_key(|ip| !ip.is_ipv4());
                return ips
                    .into_iter()
                    .next()
                    .map(|ip| SocketAddr::new(ip, port))
                    .ok_or_else(not_found);
            }
            Err(e) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("resolve {host}: {e}"),
                ))
            }
        }
    }
    let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host(addr).await?.collect();
    addrs.sort_by_key(|a| !a.is_ipv4());
    addrs.into_iter().next().ok_or_else(not_found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port("a:80"), Some(("a", 80)));
        assert_eq!(split_host_port(":80"), Some(("", 80)));
        assert_eq!(split_host_port("[::1]:80"), Some(("::1", 80)));
        assert_eq!(split_host_port("::1"), None);
        assert_eq!(split_host_port("a"), None);
        assert_eq!(with_default_port("example.com", 80), "example.com:80");
        assert_eq!(with_default_port("[::1]", 80), "[::1]:80");
    }

    #[test]
    fn socks_addr_roundtrip() {
        for a in ["1.2.3.4:80", "[::1]:443", "example.com:8080"] {
            let mut b = Vec::new();
            encode_socks_addr(a, &mut b).unwrap();
            let (back, n) = decode_socks_addr(&b).unwrap();
            assert_eq!(back, a);
            assert_eq!(n, b.len());
        }
        assert!(decode_socks_addr(&[1, 2]).is_err());
        assert!(decode_socks_addr(&[9, 0, 0]).is_err());
    }
}
