//! Named policy objects: authenticators, admission controllers, bypasses and host mappers,
//! built from their raw config, plus the fail-closed lookups services use.

use std::collections::HashMap;
use std::net::IpAddr;

use gost_config::{AuthConfig, AutherConfig, HostsConfig, MatcherListConfig};

use crate::error::BuildError;
use crate::matcher::{Matcher, MatcherSet};

pub(crate) fn unsupported_source(
    path: &str,
    what: &str,
    v: &Option<serde_json::Value>,
) -> Result<(), BuildError> {
    if v.is_some() {
        return Err(BuildError::new(
            format!("{path}.{what}"),
            format!("the `{what}` source is not supported by gost-proxy (supported: inline entries and `file`)"),
        ));
    }
    Ok(())
}

pub(crate) fn read_lines(path: &str, file: &str) -> Result<Vec<String>, BuildError> {
    crate::files::read_to_string(file)
        .map(|t| t.lines().map(str::to_string).collect())
        .map_err(|e| {
            BuildError::new(
                format!("{path}.file.path"),
                format!("cannot read {file:?}: {e}"),
            )
        })
}

// === Auther ===

/// A user database: username → password (empty password = any password).
#[derive(Debug, Clone, Default)]
pub struct Auther {
    users: HashMap<String, String>,
}

impl Auther {
    /// Builds a named auther (inline `auths` plus optional `file`).
    pub fn build(path: &str, c: &AutherConfig) -> Result<Auther, BuildError> {
        unsupported_source(path, "redis", &c.redis)?;
        unsupported_source(path, "http", &c.http)?;
        unsupported_source(path, "plugin", &c.plugin)?;
        let mut users = HashMap::new();
        for a in &c.auths {
            if !a.username.is_empty() {
                users.insert(a.username.clone(), a.password.clone());
            }
        }
        if let Some(f) = &c.file {
            for line in read_lines(path, &f.path)? {
                let l = line.trim();
                if l.is_empty() || l.starts_with('#') {
                    continue;
                }
                let mut it = l.split_whitespace();
                if let Some(u) = it.next() {
                    users.insert(u.to_string(), it.next().unwrap_or("").to_string());
                }
            }
        }
        Ok(Auther { users })
    }

    /// A one-user auther from an inline `auth:`.
    pub fn single(a: &AuthConfig) -> Auther {
        let mut users = HashMap::new();
        users.insert(a.username.clone(), a.password.clone());
        Auther { users }
    }

    /// Checks credentials; returns the client id (the user name) on success.
    pub fn authenticate(&self, user: &str, pass: &str) -> Option<String> {
        match self.users.get(user) {
            Some(p) if p.is_empty() || ct_eq(p.as_bytes(), pass.as_bytes()) => {
                Some(user.to_string())
            }
            _ => None,
        }
    }
}

/// Compares secrets in time that depends only on their lengths, not on where they differ
/// (the bytes are folded through `black_box`, so the compiler cannot stop at the first
/// difference).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| std::hint::black_box(acc | (x ^ y)));
    diff == 0
}

// === MatcherList (admission / bypass) ===

/// A built bypass or admission list.
#[derive(Debug, Clone, Default)]
pub struct MatcherList {
    /// Whitelist mode.
    pub whitelist: bool,
    /// Network pre-filter (bypass only): empty, `tcp` or `udp`.
    pub network: String,
    /// The matchers.
    pub set: MatcherSet,
}

impl MatcherList {
    /// Builds from raw config. `resolve_names` (admissions) turns host names into IPs once.
    pub fn build(
        path: &str,
        c: &MatcherListConfig,
        resolve_names: bool,
    ) -> Result<MatcherList, BuildError> {
        unsupported_source(path, "redis", &c.redis)?;
        unsupported_source(path, "http", &c.http)?;
        unsupported_source(path, "plugin", &c.plugin)?;
        let mut lines: Vec<String> = c.matchers.clone();
        if let Some(f) = &c.file {
            lines.extend(read_lines(path, &f.path)?);
        }
        let mut set = MatcherSet::default();
        for (i, l) in lines.iter().enumerate() {
            let m = crate::matcher::parse_matcher(l)
                .map_err(|e| BuildError::new(format!("{path}.matchers[{i}]"), e))?;
            let Some(m) = m else { continue };
            let m = match m {
                Matcher::Host(h, None) | Matcher::Domain(h, None)
                    if resolve_names && h.parse::<IpAddr>().is_err() =>
                {
                    use std::net::ToSocketAddrs;
                    match (h.as_str(), 0).to_socket_addrs() {
                        Ok(mut it) => match it.next() {
                            Some(sa) => Matcher::Host(sa.ip().to_string(), None),
                            None => continue,
                        },
                        Err(e) => {
                            tracing::warn!(path, entry = %h, error = %e, "admission matcher does not resolve; ignored");
                            continue;
                        }
                    }
                }
                other => other,
            };
            set.matchers.push(m);
        }
        let network = c.network.to_ascii_lowercase();
        if !matches!(network.as_str(), "" | "tcp" | "udp") {
            return Err(BuildError::new(
                format!("{path}.network"),
                format!("unknown network {:?} (accepted: tcp, udp)", c.network),
            ));
        }
        Ok(MatcherList {
            whitelist: c.whitelist || c.reverse,
            network,
            set,
        })
    }

    /// Bypass decision for `addr` on `network`: true means "bypass".
    pub fn bypass(&self, network: &str, addr: &str) -> bool {
        if !self.network.is_empty() && !network.starts_with(self.network.as_str()) {
            return false;
        }
        if self.set.matchers.is_empty() && !self.network.is_empty() {
            return !self.whitelist;
        }
        let m = self.set.any(addr);
        if self.whitelist {
            !m
        } else {
            m
        }
    }

    /// Admission decision for a client IP: true means "admit".
    pub fn admit(&self, ip: &str) -> bool {
        let m = self.set.any(ip);
        if self.whitelist {
            m
        } else {
            !m
        }
    }
}

// === Hosts ===

/// A static host mapper.
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    map: HashMap<String, Vec<IpAddr>>,
}

impl Hosts {
    /// Builds from raw config (inline `mappings` plus an `/etc/hosts`-style `file`).
    pub fn build(path: &str, c: &HostsConfig) -> Result<Hosts, BuildError> {
        unsupported_source(path, "redis", &c.redis)?;
        unsupported_source(path, "http", &c.http)?;
        unsupported_source(path, "plugin", &c.plugin)?;
        let mut h = Hosts::default();
        for (i, m) in c.mappings.iter().enumerate() {
            let ip: IpAddr = m.ip.parse().map_err(|_| {
                BuildError::new(
                    format!("{path}.mappings[{i}].ip"),
                    format!("invalid IP address {:?}", m.ip),
                )
            })?;
            if m.hostname.is_empty() {
                return Err(BuildError::new(
                    format!("{path}.mappings[{i}].hostname"),
                    "hostname is required",
                ));
            }
            h.add(&m.hostname, ip);
            for a in &m.aliases {
                h.add(a, ip);
            }
        }
        if let Some(f) = &c.file {
            for line in read_lines(path, &f.path)? {
                let l = line.split('#').next().unwrap_or("");
                let mut it = l.split_whitespace();
                let (Some(ip), names) = (it.next(), it) else {
                    continue;
                };
                let Ok(ip) = ip.parse::<IpAddr>() else {
                    continue;
                };
                for n in names {
                    h.add(n, ip);
                }
            }
        }
        Ok(h)
    }

    fn add(&mut self, name: &str, ip: IpAddr) {
        self.map
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(ip);
    }

    /// Looks a name up: exact, `.name`, each parent suffix with a leading dot, then `.`.
    pub fn lookup(&self, host: &str) -> Option<IpAddr> {
        let h = host.to_ascii_lowercase();
        if let Some(v) = self.map.get(&h).or_else(|| self.map.get(&format!(".{h}"))) {
            return v.first().copied();
        }
        let mut rest = h.as_str();
        while let Some(i) = rest.find('.') {
            rest = &rest[i + 1..];
            if let Some(v) = self.map.get(&format!(".{rest}")) {
                return v.first().copied();
            }
        }
        self.map.get(".").and_then(|v| v.first().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gost_config::HostMappingConfig;

    #[test]
    fn auther_accepts_only_known_users() {
        let a = Auther::build(
            "authers[a]",
            &AutherConfig {
                name: "a".into(),
                auths: vec![
                    AuthConfig {
                        username: "u".into(),
                        password: "p".into(),
                        file: None,
                    },
                    AuthConfig {
                        username: "any".into(),
                        password: "".into(),
                        file: None,
                    },
                ],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(a.authenticate("u", "p").as_deref(), Some("u"));
        assert!(a.authenticate("u", "x").is_none());
        assert!(a.authenticate("any", "whatever").is_some());
        assert!(a.authenticate("nobody", "").is_none());
    }

    #[test]
    fn bypass_and_admission_modes() {
        let c = MatcherListConfig {
            name: "b".into(),
            matchers: vec!["10.0.0.0/8".into()],
            ..Default::default()
        };
        let b = MatcherList::build("bypasses[b]", &c, false).unwrap();
        assert!(b.bypass("tcp", "10.0.0.1:80"));
        assert!(!b.bypass("tcp", "1.1.1.1:80"));
        assert!(!b.admit("10.0.0.1"));
        let w = MatcherList::build(
            "x",
            &MatcherListConfig {
                whitelist: true,
                ..c
            },
            false,
        )
        .unwrap();
        assert!(!w.bypass("tcp", "10.0.0.1:80"));
        assert!(w.bypass("tcp", "1.1.1.1:80"));
        assert!(w.admit("10.0.0.1"));
    }

    #[test]
    fn hosts_lookup_order() {
        let h = Hosts::build(
            "hosts[h]",
            &HostsConfig {
                name: "h".into(),
                mappings: vec![
                    HostMappingConfig {
                        ip: "127.0.0.2".into(),
                        hostname: "a.test".into(),
                        aliases: vec!["b.test".into()],
                    },
                    HostMappingConfig {
                        ip: "127.0.0.3".into(),
                        hostname: ".wild.test".into(),
                        aliases: vec![],
                    },
                ],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(h.lookup("A.test"), Some("127.0.0.2".parse().unwrap()));
        assert_eq!(h.lookup("b.test"), Some("127.0.0.2".parse().unwrap()));
        assert_eq!(
            h.lookup("x.y.wild.test"),
            Some("127.0.0.3".parse().unwrap())
        );
        assert_eq!(h.lookup("wild.test"), Some("127.0.0.3".parse().unwrap()));
        assert_eq!(h.lookup("other"), None);
        assert!(Hosts::build(
            "h",
            &HostsConfig {
                name: "h".into(),
                mappings: vec![HostMappingConfig {
                    ip: "x".into(),
                    hostname: "a".into(),
                    aliases: vec![]
                }],
                ..Default::default()
            }
        )
        .is_err());
    }
}
