//! Address matchers shared by `bypasses` and `admissions`: CIDRs, IP ranges, exact hosts/IPs
//! with optional ports or port ranges, `.domain` suffixes and `*`/`?` globs.

use std::net::IpAddr;

use crate::addr::split_host_port;

/// One parsed matcher line.
#[derive(Debug, Clone, PartialEq)]
pub enum Matcher {
    /// `10.0.0.0/8`.
    Cidr(IpAddr, u8),
    /// `172.20.0.1-172.30.0.255`.
    IpRange(IpAddr, IpAddr),
    /// Exact host or IP, optional port range.
    Host(String, Option<(u16, u16)>),
    /// `.example.org`: the domain and every subdomain.
    Domain(String, Option<(u16, u16)>),
    /// `*.example.com`: glob on the host.
    Glob(String, Option<(u16, u16)>),
}

/// Parses `ip/bits` (IPv4 or IPv6).
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (ip, bits) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not a CIDR (expected e.g. 10.0.0.0/8)"))?;
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("{s:?} is not a CIDR (expected e.g. 10.0.0.0/8)"))?;
    let bits: u8 = bits
        .parse()
        .ok()
        .filter(|b| *b <= if ip.is_ipv4() { 32 } else { 128 })
        .ok_or_else(|| format!("{s:?}: bad prefix length"))?;
    Ok((ip, bits))
}

/// Parses one matcher; `None` for blank lines and comments.
pub fn parse_matcher(line: &str) -> Result<Option<Matcher>, String> {
    let s = line.split('#').next().unwrap_or("").trim();
    if s.is_empty() {
        return Ok(None);
    }
    if s.contains('/') {
        let (ip, bits) = parse_cidr(s)?;
        return Ok(Some(Matcher::Cidr(ip, bits)));
    }
    if let Some((a, b)) = s.split_once('-') {
        if let (Ok(a), Ok(b)) = (a.trim().parse::<IpAddr>(), b.trim().parse::<IpAddr>()) {
            return Ok(Some(Matcher::IpRange(a, b)));
        }
    }
    if s.parse::<IpAddr>().is_ok() {
        return Ok(Some(Matcher::Host(s.to_ascii_lowercase(), None)));
    }
    let (host, ports) = split_port_spec(s)?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if host.contains('*') || host.contains('?') {
        Ok(Some(Matcher::Glob(host, ports)))
    } else if let Some(d) = host.strip_prefix('.') {
        Ok(Some(Matcher::Domain(d.to_string(), ports)))
    } else {
        Ok(Some(Matcher::Host(host, ports)))
    }
}

/// An optional inclusive port range.
type PortRange = Option<(u16, u16)>;

fn split_port_spec(s: &str) -> Result<(&str, PortRange), String> {
    let Some(i) = s.rfind(':') else {
        return Ok((s, None));
    };
    if s[..i].contains(':') && !s.starts_with('[') {
        return Ok((s, None));
    }
    let spec = &s[i + 1..];
    let range = if let Some((a, b)) = spec.split_once('-') {
        (a.parse::<u16>(), b.parse::<u16>())
    } else {
        (spec.parse::<u16>(), spec.parse::<u16>())
    };
    match range {
        (Ok(a), Ok(b)) if a <= b => Ok((&s[..i], Some((a, b)))),
        _ => Err(format!("{s:?}: bad port or port range {spec:?}")),
    }
}

/// Whether `ip` is in `net/bits` (an IPv4-mapped IPv6 address matches IPv4 networks).
pub fn ip_in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            (u32::from(a) & mask) == (u32::from(n) & mask)
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            (u128::from(a) & mask) == (u128::from(n) & mask)
        }
        (IpAddr::V6(a), IpAddr::V4(_)) => a
            .to_ipv4_mapped()
            .is_some_and(|v4| ip_in_cidr(IpAddr::V4(v4), net, bits)),
        _ => false,
    }
}

fn ip_in_range(ip: IpAddr, a: IpAddr, b: IpAddr) -> bool {
    match (ip, a, b) {
        (IpAddr::V4(x), IpAddr::V4(a), IpAddr::V4(b)) => (a..=b).contains(&x),
        (IpAddr::V6(x), IpAddr::V6(a), IpAddr::V6(b)) => (a..=b).contains(&x),
        _ => false,
    }
}

/// `*` matches any run, `?` one character.
pub fn glob_match(pat: &str, s: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let t: Vec<char> = s.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0usize, 0usize, None, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(sp) = star {
            pi = sp + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn port_ok(ports: &Option<(u16, u16)>, port: Option<u16>) -> bool {
    match (ports, port) {
        (None, _) => true,
        (Some((a, b)), Some(p)) => (*a..=*b).contains(&p),
        (Some(_), None) => false,
    }
}

impl Matcher {
    /// Whether `addr` (`host`, `host:port`, IP) matches.
    pub fn matches(&self, addr: &str) -> bool {
        let (host, port) = match split_host_port(addr) {
            Some((h, p)) => (h, Some(p)),
            None => (addr.trim_start_matches('[').trim_end_matches(']'), None),
        };
        let host_l = host.to_ascii_lowercase();
        let ip = host.parse::<IpAddr>().ok();
        match self {
            Matcher::Cidr(net, bits) => ip.is_some_and(|ip| ip_in_cidr(ip, *net, *bits)),
            Matcher::IpRange(a, b) => ip.is_some_and(|ip| ip_in_range(ip, *a, *b)),
            Matcher::Host(h, ports) => {
                let same = match (ip, h.parse::<IpAddr>().ok()) {
                    (Some(x), Some(y)) => x == y,
                    _ => *h == host_l,
                };
                same && port_ok(ports, port)
            }
            Matcher::Domain(d, ports) => {
                (host_l == *d || host_l.ends_with(&format!(".{d}"))) && port_ok(ports, port)
            }
            Matcher::Glob(g, ports) => glob_match(g, &host_l) && port_ok(ports, port),
        }
    }
}

/// A list of matchers with GOST's whitelist/blacklist decision.
#[derive(Debug, Clone, Default)]
pub struct MatcherSet {
    /// The matchers.
    pub matchers: Vec<Matcher>,
}

impl MatcherSet {
    /// Parses every line; errors name the bad entry.
    pub fn parse<'a>(lines: impl IntoIterator<Item = &'a str>) -> Result<MatcherSet, String> {
        let mut matchers = Vec::new();
        for l in lines {
            if let Some(m) = parse_matcher(l)? {
                matchers.push(m);
            }
        }
        Ok(MatcherSet { matchers })
    }

    /// Whether any matcher matches.
    pub fn any(&self, addr: &str) -> bool {
        self.matchers.iter().any(|m| m.matches(addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[&str]) -> MatcherSet {
        MatcherSet::parse(v.iter().copied()).unwrap()
    }

    #[test]
    fn cidr_ip_domain_glob_port() {
        let s = set(&[
            "10.0.0.0/8",
            ".example.org",
            "*.test.com",
            "host.local:80",
            "::1",
        ]);
        assert!(s.any("10.1.2.3:443"));
        assert!(!s.any("11.1.2.3:443"));
        assert!(s.any("example.org:80"));
        assert!(s.any("a.b.example.org:80"));
        assert!(!s.any("badexample.org:80"));
        assert!(s.any("x.test.com"));
        assert!(s.any("HOST.local:80"));
        assert!(!s.any("host.local:81"));
        assert!(s.any("[::1]:22"));
        assert!(set(&["127.0.0.1-127.0.0.9"]).any("127.0.0.5:1"));
        assert!(set(&["example.com:0-1024"]).any("example.com:443"));
    }

    #[test]
    fn bad_entries_are_named() {
        assert!(parse_matcher("10.0.0.0/99")
            .unwrap_err()
            .contains("10.0.0.0/99"));
        assert!(parse_matcher("a.com:http").unwrap_err().contains("http"));
        assert_eq!(parse_matcher("  # comment").unwrap(), None);
    }

    #[test]
    fn glob() {
        assert!(glob_match("*.a.com", "x.a.com"));
        assert!(!glob_match("*.a.com", "a.com"));
        assert!(glob_match("h?st", "host"));
    }
}
