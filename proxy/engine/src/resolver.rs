//! Named resolvers (GOST `resolvers[]`): plain DNS over UDP or TCP (`udp://h:p`, `tcp://h:p`;
//! port 53 by default) through hickory-resolver. Name servers are tried in order until one
//! returns an address; A and AAAA are queried in preference order (`prefer`, `only`).
//!
//! Per name server: answers are cached for their TTL (`ttl` overrides it), a truncated UDP
//! answer is asked again over TCP, and an error response code (NXDOMAIN, SERVFAIL, …) is an
//! error that moves on to the next name server. `async` (serve stale entries while
//! refreshing) and `clientIP` (EDNS client subnet) are rejected at load with their path;
//! `hostname` (the TLS name of DNS over TLS/HTTPS, which is not supported) is warned about.
//! Queries carry no EDNS record, as GOST's do without `clientIP`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::Duration;

use gost_config::ResolverConfig;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig as Hcfg,
    ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;

use crate::error::BuildError;

/// One name server: its settings, and the hickory resolver built on first use (building needs
/// the runtime; validation does not).
pub struct Nameserver {
    addr: SocketAddr,
    tcp: bool,
    timeout: Duration,
    strategy: LookupIpStrategy,
    ttl: Option<Duration>,
    client: OnceLock<TokioResolver>,
}

/// A built resolver.
#[derive(Debug)]
pub struct Resolver {
    servers: Vec<Nameserver>,
}

// === impl Nameserver ===

impl std::fmt::Debug for Nameserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nameserver")
            .field("addr", &self.addr)
            .field("tcp", &self.tcp)
            .field("timeout", &self.timeout)
            .field("strategy", &self.strategy)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl Nameserver {
    fn client(&self) -> io::Result<&TokioResolver> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let port = |mut c: ConnectionConfig| {
            c.port = self.addr.port();
            c
        };
        let conns = if self.tcp {
            vec![port(ConnectionConfig::tcp())]
        } else {
            // UDP, and TCP for answers that come back truncated
            vec![port(ConnectionConfig::udp()), port(ConnectionConfig::tcp())]
        };
        let cfg = Hcfg::from_parts(
            None,
            Vec::new(),
            vec![NameServerConfig::new(self.addr.ip(), true, conns)],
        );
        let mut o = ResolverOpts::default();
        o.timeout = self.timeout;
        o.attempts = 0;
        o.edns0 = false;
        o.ip_strategy = self.strategy;
        o.use_hosts_file = ResolveHosts::Never;
        o.num_concurrent_reqs = 1;
        if let Some(ttl) = self.ttl {
            o.positive_min_ttl = Some(ttl);
            o.positive_max_ttl = Some(ttl);
        }
        let r =
            hickory_resolver::Resolver::builder_with_config(cfg, TokioRuntimeProvider::default())
                .with_options(o)
                .build()
                .map_err(|e| io::Error::other(format!("resolver for {}: {e}", self.addr)))?;
        Ok(self.client.get_or_init(|| r))
    }

    async fn lookup(&self, host: &str) -> io::Result<IpAddr> {
        let client = self.client()?;
        let found = tokio::time::timeout(self.timeout, client.lookup_ip(host))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("DNS query to {} timed out", self.addr),
                )
            })?
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("resolve {host} via {}: {e}", self.addr),
                )
            })?;
        found.iter().next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("resolve {host} via {}: no address", self.addr),
            )
        })
    }
}

// === impl Resolver ===

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
            if ns.is_async {
                return Err(BuildError::new(
                    format!("{p}.async"),
                    "serving stale cache entries while refreshing is not supported by gost-proxy \
                     (answers are cached for their TTL; leave `async` out)",
                ));
            }
            if !ns.client_ip.is_empty() {
                return Err(BuildError::new(
                    format!("{p}.clientIP"),
                    "EDNS client subnet is not supported by gost-proxy yet",
                ));
            }
            if !ns.hostname.is_empty() {
                tracing::warn!(path = %format!("{p}.hostname"), "hostname is the TLS name of DNS over TLS/HTTPS, which gost-proxy does not support: ignored");
            }
            let strategy = match (ns.only.as_str(), ns.prefer.as_str()) {
                ("ipv4", _) => LookupIpStrategy::Ipv4Only,
                ("ipv6", _) => LookupIpStrategy::Ipv6Only,
                ("", "ipv6") => LookupIpStrategy::Ipv6thenIpv4,
                ("", _) => LookupIpStrategy::Ipv4thenIpv6,
                (o, _) => {
                    return Err(BuildError::new(
                        format!("{p}.only"),
                        format!("invalid value {o:?} (accepted: ipv4, ipv6)"),
                    ))
                }
            };
            servers.push(Nameserver {
                addr,
                tcp,
                timeout: ns
                    .timeout
                    .map(|d| d.get())
                    .filter(|d| !d.is_zero())
                    .unwrap_or(Duration::from_secs(5)),
                strategy,
                ttl: ns.ttl.map(|d| d.get()).filter(|d| !d.is_zero()),
                client: OnceLock::new(),
            });
        }
        Ok(Resolver { servers })
    }

    /// Resolves a host name to one IP: the first name server that returns one wins.
    pub async fn resolve(&self, host: &str) -> io::Result<IpAddr> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(ip);
        }
        let mut last = io::Error::new(
            io::ErrorKind::NotFound,
            format!("no name server answered for {host}"),
        );
        for ns in &self.servers {
            match ns.lookup(host).await {
                Ok(ip) => return Ok(ip),
                Err(e) => {
                    tracing::debug!(host, nameserver = %ns.addr, error = %e, "name server failed");
                    last = e;
                }
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests;
