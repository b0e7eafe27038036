//! `climiters`: concurrent connections. `$ N` caps the service, `$$ N` each client IP, an IP
//! or CIDR line its clients (each IP of a CIDR counted on its own, as in GOST). A connection
//! over a cap is closed as soon as it is accepted, before any protocol byte.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use gost_config::LimiterConfig;
use parking_lot::Mutex;

use super::Scoped;
use crate::error::BuildError;

/// A built `climiters[]` entry.
#[derive(Debug)]
pub struct ConnLimiter {
    /// The lines it was built from (an unchanged limiter keeps its counts across applies).
    pub source: LimiterConfig,
    limits: Scoped<u64>,
    st: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    total: u64,
    per_ip: HashMap<IpAddr, u64>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Permit {
    lim: Arc<ConnLimiter>,
    ip: Option<IpAddr>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut st = self.lim.st.lock();
        st.total = st.total.saturating_sub(1);
        if let Some(ip) = self.ip {
            if let Some(n) = st.per_ip.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    st.per_ip.remove(&ip);
                }
            }
        }
    }
}

impl ConnLimiter {
    /// Builds from config (`path` names it in errors).
    pub fn build(path: &str, c: &LimiterConfig) -> Result<ConnLimiter, BuildError> {
        let limits = super::parse(path, c, "<connections>", |f| {
            let n: i64 = f[0]
                .parse()
                .map_err(|_| format!("{:?} is not a whole number of connections", f[0]))?;
            Ok(u64::try_from(n).ok().filter(|n| *n > 0))
        })?;
        Ok(ConnLimiter {
            source: c.clone(),
            limits,
            st: Mutex::default(),
        })
    }

    /// Admits one connection from `ip`, or `None` when a cap is reached.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<Permit> {
        let ip = ip.to_canonical();
        let per = self.limits.for_ip(ip).copied();
        let mut st = self.st.lock();
        if self.limits.service.is_some_and(|cap| st.total >= cap) {
            return None;
        }
        if let Some(cap) = per {
            let n = st.per_ip.entry(ip).or_insert(0);
            if *n >= cap {
                if *n == 0 {
                    st.per_ip.remove(&ip);
                }
                return None;
            }
            *n += 1;
        }
        st.total += 1;
        Some(Permit {
            lim: Arc::clone(self),
            ip: per.map(|_| ip),
        })
    }

    /// Connections held now (service total).
    pub fn current(&self) -> u64 {
        self.st.lock().total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim(lines: &[&str]) -> Arc<ConnLimiter> {
        let c = LimiterConfig {
            name: "c".into(),
            limits: lines.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        Arc::new(ConnLimiter::build("climiters[c]", &c).unwrap())
    }

    #[test]
    fn caps_per_client_and_per_service_and_frees_on_drop() {
        let l = lim(&["$ 3", "$$ 2", "10.0.0.9 1"]);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "10.0.0.9".parse().unwrap();
        let a1 = l.acquire(a).unwrap();
        let _a2 = l.acquire(a).unwrap();
        assert!(l.acquire(a).is_none(), "third from one client");
        let _c1 = l.acquire(c).unwrap();
        assert!(l.acquire(b).is_none(), "service total of 3 reached");
        drop(a1);
        let _b1 = l.acquire(b).unwrap();
        assert!(l.acquire(c).is_none(), "its own line caps it at 1");
        assert_eq!(l.current(), 3);
    }

    #[test]
    fn zero_and_negative_are_unlimited_and_bad_numbers_are_errors() {
        let l = lim(&["$ 0", "$$ -1"]);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..100).map(|_| l.acquire(ip).unwrap()).collect();
        assert_eq!(held.len(), 100);
        let c = LimiterConfig {
            name: "c".into(),
            limits: vec!["$ lots".into()],
            ..Default::default()
        };
        let e = ConnLimiter::build("climiters[c]", &c).unwrap_err();
        assert!(
            e.msg.contains("\"lots\"") && e.msg.contains("whole number"),
            "{}",
            e.msg
        );
    }
}
