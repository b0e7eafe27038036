//! Named resolvers: plain DNS over UDP or TCP (`udp://h:p`, `tcp://h:p`; port 53 by default),
//! name servers tried in order, A and AAAA in preference order.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use gost_config::ResolverConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::BuildError;

/// One name server.
#[derive(Debug, Clone)]
pub struct Nameserver {
    tcp: bool,
    addr: SocketAddr,
    timeout: Duration,
    prefer_v6: bool,
    only: Option<bool>,
}

/// A built resolver.
#[derive(Debug, Clone)]
pub struct Resolver {
    servers: Vec<Nameserver>,
}

impl Resolver {
    /// Builds from raw config; errors name the name server entry.
    pub fn build(path: &str, c: &ResolverConfig) -> Result<Resolver, BuildError> {
        if c.plugin.is_some() {
            return Err(BuildError::new(
                format!("{path}.plugin"),
                "resolver plugins are not supported by gost-proxy",
            ));
        }
        let mut servers = Vec::new();
        for (i, ns) in c.nameservers.iter().enumerate() {
            let p = format!("{path}.nameservers[{i}]");
            let (scheme, rest) = match ns.addr.split_once("://") {
                Some((s, r)) => (s.to_ascii_lowercase(), r),
                None => ("udp".to_string(), ns.addr.as_str()),
            };
            let tcp = match scheme.as_str() {
                "udp" => false,
                "tcp" => true,
                other => {
                    return Err(BuildError::new(
                        format!("{p}.addr"),
                        format!(
                            "name server scheme {other:?} is not supported (accepted: udp, tcp)"
                        ),
                    ))
                }
            };
            let hostport = if crate::addr::split_host_port(rest).is_some() {
                rest.to_string()
            } else {
                crate::addr::with_default_port(rest, 53)
            };
            let addr: SocketAddr = hostport.parse().map_err(|_| {
                BuildError::new(
                    format!("{p}.addr"),
                    format!(
                        "invalid name server address {:?} (expected an IP with optional port)",
                        ns.addr
                    ),
                )
            })?;
            if ns.chain.is_some() {
                return Err(BuildError::new(
                    format!("{p}.chain"),
                    "DNS through a chain is not supported by gost-proxy yet",
                ));
            }
            let only = match ns.only.as_str() {
                "" => None,
                "ipv4" => Some(false),
                "ipv6" => Some(true),
                o => {
                    return Err(BuildError::new(
                        format!("{p}.only"),
                        format!("invalid value {o:?} (accepted: ipv4, ipv6)"),
                    ))
                }
            };
            servers.push(Nameserver {
                tcp,
                addr,
                timeout: ns
                    .timeout
                    .map(|d| d.get())
                    .unwrap_or(Duration::from_secs(5)),
                prefer_v6: ns.prefer == "ipv6",
                only,
            });
        }
        Ok(Resolver { servers })
    }

    /// Resolves a host name to one IP.
    pub async fn resolve(&self, host: &str) -> io::Result<IpAddr> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(ip);
        }
        let mut last = io::Error::new(
            io::ErrorKind::NotFound,
            format!("no name server answered for {host}"),
        );
        for ns in &self.servers {
            let order: Vec<bool> = match ns.only {
                Some(v6) => vec![v6],
                None if ns.prefer_v6 => vec![true, false],
                None => vec![false, true],
            };
            for v6 in order {
                match tokio::time::timeout(ns.timeout, query(ns, host, v6)).await {
                    Ok(Ok(Some(ip))) => return Ok(ip),
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => last = e,
                    Err(_) => {
                        last = io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("DNS query to {} timed out", ns.addr),
                        )
                    }
                }
            }
        }
        Err(last)
    }
}

fn build_query(id: u16, host: &str, v6: bool) -> io::Result<Vec<u8>> {
    let mut q = Vec::with_capacity(32 + host.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in host.trim_end_matches('.').split('.') {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|l| *l > 0 && *l < 64)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("invalid host name {host:?}"),
                )
            })?;
        q.push(len);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&(if v6 { 28u16 } else { 1u16 }).to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    Ok(q)
}

fn skip_name(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let l = *b.get(i)? as usize;
        if l == 0 {
            return Some(i + 1);
        }
        if l & 0xC0 == 0xC0 {
            return Some(i + 2);
        }
        i += 1 + l;
    }
}

fn parse_answer(b: &[u8], id: u16, v6: bool) -> Option<IpAddr> {
    if b.len() < 12 || u16::from_be_bytes([b[0], b[1]]) != id {
        return None;
    }
    let qd = u16::from_be_bytes([b[4], b[5]]) as usize;
    let an = u16::from_be_bytes([b[6], b[7]]) as usize;
    let mut i = 12;
    for _ in 0..qd {
        i = skip_name(b, i)? + 4;
    }
    for _ in 0..an {
        i = skip_name(b, i)?;
        let ty = u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]);
        let rdlen = u16::from_be_bytes([*b.get(i + 8)?, *b.get(i + 9)?]) as usize;
        let data = b.get(i + 10..i + 10 + rdlen)?;
        match (ty, v6) {
            (1, false) if rdlen == 4 => {
                return Some(IpAddr::V4(Ipv4Addr::new(
                    data[0], data[1], data[2], data[3],
                )))
            }
            (28, true) if rdlen == 16 => {
                let a: [u8; 16] = data.try_into().ok()?;
                return Some(IpAddr::V6(Ipv6Addr::from(a)));
            }
            _ => {}
        }
        i += 10 + rdlen;
    }
    None
}

async fn query(ns: &Nameserver, host: &str, v6: bool) -> io::Result<Option<IpAddr>> {
    let id: u16 = rand::random();
    let q = build_query(id, host, v6)?;
    let resp = if ns.tcp {
        let mut s = tokio::net::TcpStream::connect(ns.addr).await?;
        let len = u16::try_from(q.len()).map_err(|_| io::Error::other("query too long"))?;
        s.write_all(&len.to_be_bytes()).await?;
        s.write_all(&q).await?;
        let n = s.read_u16().await? as usize;
        let mut b = vec![0u8; n];
        s.read_exact(&mut b).await?;
        b
    } else {
        let bind: SocketAddr = if ns.addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()
        .map_err(io::Error::other)?;
        let s = tokio::net::UdpSocket::bind(bind).await?;
        s.connect(ns.addr).await?;
        s.send(&q).await?;
        let mut b = vec![0u8; 1500];
        let n = s.recv(&mut b).await?;
        b.truncate(n);
        b
    };
    Ok(parse_answer(&resp, id, v6))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gost_config::NameserverConfig;

    /// A real UDP DNS server on loopback answering one A record.
    #[tokio::test]
    async fn resolves_through_a_loopback_dns_server() {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        tokio::spawn(async move {
            let mut b = [0u8; 512];
            for _ in 0..4 {
                let Ok((n, from)) = sock.recv_from(&mut b).await else {
                    return;
                };
                let q = &b[..n];
                let qend = skip_name(q, 12).unwrap() + 4;
                let qtype = u16::from_be_bytes([q[qend - 4], q[qend - 3]]);
                let mut r = q[..qend].to_vec();
                r[2] = 0x81;
                r[3] = 0x80;
                if qtype == 1 {
                    r[7] = 1;
                    r.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 42]);
                }
                sock.send_to(&r, from).await.unwrap();
            }
        });
        let r = Resolver::build(
            "resolvers[r]",
            &ResolverConfig {
                name: "r".into(),
                nameservers: vec![NameserverConfig {
                    addr: format!("udp://{addr}"),
                    ..Default::default()
                }],
                plugin: None,
            },
        )
        .unwrap();
        assert_eq!(
            r.resolve("svc.test").await.unwrap(),
            "127.0.0.42".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn bad_scheme_is_named() {
        let e = Resolver::build(
            "resolvers[r]",
            &ResolverConfig {
                name: "r".into(),
                nameservers: vec![NameserverConfig {
                    addr: "quic://1.1.1.1".into(),
                    ..Default::default()
                }],
                plugin: None,
            },
        )
        .unwrap_err();
        assert_eq!(e.path, "resolvers[r].nameservers[0].addr");
    }
}
