//! `rlimiters`: new connections per second, a token bucket of `rate` a second with a burst of
//! `rate + 1` (GOST's sizes). `$` is one bucket for the service, `$$`, IP and CIDR lines one
//! bucket per client IP. A refused connection is closed before any protocol byte.

use std::collections::HashMap;
use std::net::IpAddr;

use gost_config::LimiterConfig;
use parking_lot::Mutex;

use super::{Bucket, Scoped};
use crate::error::BuildError;

/// Per-client buckets kept before idle (full) ones are dropped.
const PRUNE_AT: usize = 4096;

/// A built `rlimiters[]` entry.
#[derive(Debug)]
pub struct RateLimiter {
    /// The lines it was built from (an unchanged limiter keeps its buckets across applies).
    pub source: LimiterConfig,
    limits: Scoped<f64>,
    service: Option<Bucket>,
    per_ip: Mutex<HashMap<IpAddr, Bucket>>,
}

fn bucket(rate: f64) -> Bucket {
    Bucket::new(rate, rate.floor() + 1.0)
}

impl RateLimiter {
    /// Builds from config (`path` names it in errors).
    pub fn build(path: &str, c: &LimiterConfig) -> Result<RateLimiter, BuildError> {
        let limits = super::parse(path, c, "<connections per second>", |f| {
            let r: f64 = f[0]
                .parse()
                .map_err(|_| format!("{:?} is not a rate (a number, e.g. 10 or 0.5)", f[0]))?;
            if !r.is_finite() {
                return Err(format!("{:?} is not a finite rate", f[0]));
            }
            Ok((r > 0.0).then_some(r))
        })?;
        Ok(RateLimiter {
            source: c.clone(),
            service: limits.service.map(bucket),
            limits,
            per_ip: Mutex::default(),
        })
    }

    /// Whether a new connection from `ip` is allowed now (and counts it when it is).
    pub fn allow(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let rate = self.limits.for_ip(ip).copied();
        let mut per = self.per_ip.lock();
        if let Some(r) = rate {
            if per.len() >= PRUNE_AT && !per.contains_key(&ip) {
                per.retain(|_, b| !b.is_full());
            }
            let b = per.entry(ip).or_insert_with(|| bucket(r));
            if b.wait() > std::time::Duration::ZERO {
                return false;
            }
            if let Some(s) = &self.service {
                if !s.try_take(1.0) {
                    return false;
                }
            }
            b.take(1.0);
            return true;
        }
        drop(per);
        self.service.as_ref().is_none_or(|s| s.try_take(1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim(lines: &[&str]) -> RateLimiter {
        let c = LimiterConfig {
            name: "r".into(),
            limits: lines.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        RateLimiter::build("rlimiters[r]", &c).unwrap()
    }

    #[test]
    fn burst_is_rate_plus_one_per_client() {
        // A rate of 0.001/s refills nothing during the test: only the burst counts.
        let l = lim(&["$$ 0.001", "10.0.0.5 2.001"]);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.5".parse().unwrap();
        assert!(l.allow(a));
        assert!(!l.allow(a));
        assert_eq!((0..5).filter(|_| l.allow(b)).count(), 3);
    }

    #[test]
    fn service_bucket_is_shared() {
        let l = lim(&["$ 1.001"]);
        let n = (0..10)
            .filter(|i| l.allow(IpAddr::from([10, 0, 0, *i as u8])))
            .count();
        assert_eq!(n, 2);
    }

    #[test]
    fn idle_clients_are_pruned() {
        // At 1e9 a second every bucket is full again a nanosecond after its one connection.
        let l = lim(&["$$ 1000000000"]);
        for i in 0..(PRUNE_AT as u32 + 10) {
            assert!(l.allow(IpAddr::from(i.to_be_bytes())));
        }
        let n = l.per_ip.lock().len();
        assert!(n <= 10, "{n} buckets kept");
    }
}
