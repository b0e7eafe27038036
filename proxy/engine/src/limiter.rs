//! Limiters, GOST's three named kinds, all with the shape `{name, limits: [line], file, reload}`:
//!
//! - [`traffic`]: `limiters`, bytes per second in and out (`<scope> <in> [<out> [<burst>]]`);
//! - [`conn`]: `climiters`, concurrent connections (`<scope> <n>`);
//! - [`rate`]: `rlimiters`, new connections per second (`<scope> <rate>`).
//!
//! A scope is `$` (the whole service), `$$` (each connection for traffic, each client IP for
//! the others), an IP or a CIDR (each client in it). A client's own IP line wins over a CIDR
//! line (the most specific CIDR when several contain it), which wins over `$$`; `$` applies
//! on top of whichever matched. Zero or negative values mean unlimited, as in GOST.
//!
//! ```yaml
//! services:
//! - name: web
//!   addr: :8080
//!   limiter: bw
//!   climiter: cc
//!   rlimiter: rate
//!   handler: {type: http}
//!   listener: {type: tcp}
//! limiters:  [{name: bw, limits: ['$ 100MB 100MB', '$$ 10MB', '10.0.0.0/8 1MB 5MB']}]
//! climiters: [{name: cc, limits: ['$ 1000', '$$ 100']}]
//! rlimiters: [{name: rate, limits: ['$$ 10']}]
//! ```

pub mod conn;
pub mod rate;
pub mod traffic;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use gost_config::LimiterConfig;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::error::BuildError;

/// Parsed limit lines by scope.
#[derive(Debug, Clone)]
pub struct Scoped<T> {
    /// `$`.
    pub service: Option<T>,
    /// `$$`.
    pub each: Option<T>,
    /// Single IPs.
    pub ips: HashMap<IpAddr, T>,
    /// CIDRs, most specific first.
    pub cidrs: Vec<(IpAddr, u8, T)>,
}

impl<T> Default for Scoped<T> {
    fn default() -> Self {
        Scoped {
            service: None,
            each: None,
            ips: HashMap::new(),
            cidrs: Vec::new(),
        }
    }
}

impl<T> Scoped<T> {
    /// The line naming one client: its IP line, else the most specific CIDR containing it.
    pub fn client(&self, ip: IpAddr) -> Option<&T> {
        let ip = ip.to_canonical();
        self.ips.get(&ip).or_else(|| {
            self.cidrs
                .iter()
                .find(|(net, bits, _)| crate::matcher::ip_in_cidr(ip, *net, *bits))
                .map(|(_, _, v)| v)
        })
    }

    /// The limit for one client: [`Scoped::client`], else `$$`.
    pub fn for_ip(&self, ip: IpAddr) -> Option<&T> {
        self.client(ip).or(self.each.as_ref())
    }

    /// Whether no line limits anything.
    pub fn is_empty(&self) -> bool {
        self.service.is_none()
            && self.each.is_none()
            && self.ips.is_empty()
            && self.cidrs.is_empty()
    }
}

/// The limit lines of a limiter: inline `limits`, then the lines of `file` (blank lines and
/// `#` comments skipped), each with the config path errors name.
fn lines(path: &str, c: &LimiterConfig) -> Result<Vec<(String, String)>, BuildError> {
    for (what, v) in [
        ("redis", &c.redis),
        ("http", &c.http),
        ("plugin", &c.plugin),
    ] {
        crate::policy::unsupported_source(path, what, v)?;
    }
    let mut out: Vec<(String, String)> = c
        .limits
        .iter()
        .enumerate()
        .map(|(i, l)| (format!("{path}.limits[{i}]"), l.clone()))
        .collect();
    if let Some(f) = &c.file {
        for (i, l) in crate::policy::read_lines(path, &f.path)?
            .into_iter()
            .enumerate()
        {
            out.push((format!("{path}.file[{}:{}]", f.path, i + 1), l));
        }
    }
    Ok(out)
}

/// Parses every line of `c` into scopes; `value` reads the fields after the scope and
/// returns `None` for "unlimited".
fn parse<T>(
    path: &str,
    c: &LimiterConfig,
    what: &str,
    value: impl Fn(&[&str]) -> Result<Option<T>, String>,
) -> Result<Scoped<T>, BuildError> {
    let mut s = Scoped::default();
    for (at, line) in lines(path, c)? {
        let body = line.split('#').next().unwrap_or("").trim();
        if body.is_empty() {
            continue;
        }
        let fields: Vec<&str> = body.split_whitespace().collect();
        let (scope, rest) = (fields[0], &fields[1..]);
        if rest.is_empty() {
            return Err(BuildError::new(
                at,
                format!("limit line {line:?} has no value (expected `<scope> {what}`, scope `$`, `$$`, an IP or a CIDR)"),
            ));
        }
        let v = value(rest).map_err(|e| {
            BuildError::new(
                at.clone(),
                format!("limit line {line:?}: {e} (expected `<scope> {what}`)"),
            )
        })?;
        let Some(v) = v else { continue };
        match scope {
            "$" => s.service = Some(v),
            "$$" => s.each = Some(v),
            _ if scope.contains('/') => {
                let (net, bits) = crate::matcher::parse_cidr(scope).map_err(|e| {
                    BuildError::new(at.clone(), format!("limit line {line:?}: scope {e}"))
                })?;
                s.cidrs.push((net.to_canonical(), bits, v));
            }
            _ => {
                let ip: IpAddr = scope.parse().map_err(|_| {
                    BuildError::new(
                        at.clone(),
                        format!("limit line {line:?}: scope {scope:?} is not `$`, `$$`, an IP or a CIDR"),
                    )
                })?;
                s.ips.insert(ip.to_canonical(), v);
            }
        }
    }
    s.cidrs.sort_by_key(|c| std::cmp::Reverse(c.1));
    Ok(s)
}

/// A byte size: a number with an optional unit `B`, `KB`/`KiB`, `MB`/`MiB`, `GB`/`GiB`,
/// `TB`/`TiB` (case-insensitive; every K is 1024 as in GOST). `None` for zero or negative.
pub fn parse_bytes(s: &str) -> Result<Option<u64>, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a byte size (e.g. 512KB, 10MB, 1GB)"))?;
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (accepted: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            ))
        }
    };
    let v = n * mult;
    if !v.is_finite() || v > u64::MAX as f64 {
        return Err(format!("{s:?} is out of range"));
    }
    Ok((v >= 1.0).then_some(v as u64))
}

/// A token bucket: `rate` tokens a second up to `burst`, on tokio's clock. Tokens can go
/// negative when several streams share a bucket and spend the same tokens at once; the debt
/// is paid by the next waits.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    st: Mutex<(f64, Instant)>,
}

impl Bucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: f64) -> Bucket {
        let burst = burst.max(1.0);
        Bucket {
            rate,
            burst,
            st: Mutex::new((burst, Instant::now())),
        }
    }

    /// The rate, tokens per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The burst (largest amount taken at once).
    pub fn burst(&self) -> f64 {
        self.burst
    }

    fn refill(&self, st: &mut (f64, Instant)) {
        let now = Instant::now();
        let dt = now.saturating_duration_since(st.1).as_secs_f64();
        st.0 = (st.0 + dt * self.rate).min(self.burst);
        st.1 = now;
    }

    /// Takes `n` tokens if there are that many.
    pub fn try_take(&self, n: f64) -> bool {
        let mut st = self.st.lock();
        self.refill(&mut st);
        if st.0 >= n {
            st.0 -= n;
            true
        } else {
            false
        }
    }

    /// Takes `n` tokens, going into debt if needed.
    pub fn take(&self, n: f64) {
        let mut st = self.st.lock();
        self.refill(&mut st);
        st.0 -= n;
    }

    /// How long until the bucket holds at least one token (zero when it does).
    pub fn wait(&self) -> Duration {
        self.wait_for(1.0)
    }

    /// How long until the bucket holds `want` tokens (capped at the burst; zero when it does).
    pub fn wait_for(&self, want: f64) -> Duration {
        let want = want.min(self.burst);
        let mut st = self.st.lock();
        self.refill(&mut st);
        if st.0 >= want || self.rate <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(((want - st.0) / self.rate).min(3600.0))
        }
    }

    /// The tokens held now.
    pub fn available(&self) -> f64 {
        let mut st = self.st.lock();
        self.refill(&mut st);
        st.0
    }

    /// Whether the bucket is full (an idle client's entry can be dropped).
    pub fn is_full(&self) -> bool {
        let mut st = self.st.lock();
        self.refill(&mut st);
        st.0 >= self.burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(lines: &[&str]) -> LimiterConfig {
        LimiterConfig {
            name: "l".into(),
            limits: lines.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn byte_sizes_are_base_two() {
        assert_eq!(parse_bytes("512KB").unwrap(), Some(512 * 1024));
        assert_eq!(parse_bytes("1MiB").unwrap(), Some(1 << 20));
        assert_eq!(parse_bytes("1.5mb").unwrap(), Some(3 << 19));
        assert_eq!(parse_bytes("100").unwrap(), Some(100));
        assert_eq!(parse_bytes("0").unwrap(), None);
        assert_eq!(parse_bytes("-1MB").unwrap(), None);
        let e = parse_bytes("10XB").unwrap_err();
        assert!(e.contains("unknown unit") && e.contains("MB"), "{e}");
        assert!(parse_bytes("MB").is_err());
    }

    #[test]
    fn scopes_resolve_ip_then_cidr_then_each() {
        let c = cfg(&[
            "$ 100",
            "$$ 10",
            "10.0.0.0/8 20",
            "10.1.0.0/16 30",
            "10.1.2.3 40",
            "# a comment",
            "",
        ]);
        let s = parse("l", &c, "<n>", |f| Ok(f[0].parse::<u64>().ok())).unwrap();
        assert_eq!(s.service, Some(100));
        let at = |ip: &str| s.for_ip(ip.parse().unwrap()).copied();
        assert_eq!(at("10.1.2.3"), Some(40));
        assert_eq!(at("10.1.9.9"), Some(30));
        assert_eq!(at("10.9.9.9"), Some(20));
        assert_eq!(at("::ffff:10.9.9.9"), Some(20));
        assert_eq!(at("192.168.0.1"), Some(10));
    }

    #[test]
    fn bad_lines_name_the_line_and_the_accepted_forms() {
        let e = parse("climiters[c]", &cfg(&["$ 1", "nowhere 5"]), "<n>", |f| {
            Ok(f[0].parse::<u64>().ok())
        })
        .unwrap_err();
        assert_eq!(e.path, "climiters[c].limits[1]");
        assert!(
            e.msg.contains("\"nowhere\"") && e.msg.contains("CIDR"),
            "{}",
            e.msg
        );
        let e = parse("climiters[c]", &cfg(&["$"]), "<n>", |_| Ok(Some(1))).unwrap_err();
        assert!(e.msg.contains("no value"), "{}", e.msg);
        let mut c = cfg(&[]);
        c.redis = Some(serde_json::json!({"addr": "x"}));
        let e = parse("climiters[c]", &c, "<n>", |_| Ok(Some(1))).unwrap_err();
        assert_eq!(e.path, "climiters[c].redis");
    }

    #[test]
    fn bucket_debt_is_paid_by_waiting() {
        let b = Bucket::new(1000.0, 100.0);
        assert!(b.try_take(100.0));
        assert!(!b.try_take(50.0));
        b.take(400.0);
        let w = b.wait();
        assert!(
            w > Duration::ZERO && w <= Duration::from_millis(402),
            "{w:?}"
        );
    }
}
