//! Go-style durations as GOST writes them in typed config fields.
//!
//! Accepted on input: a Go duration string (`"10s"`, `"1m30s"`, `"250ms"`, `"1h"`), or an
//! integer, which GOST (mapstructure / `encoding/json`) takes as **nanoseconds**. Output is a
//! Go duration string, or an integer number of nanoseconds inside [`json_durations`] (the
//! form GOST's Web API and `-O json` use).

use std::cell::Cell;
use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

thread_local! {
    static AS_NANOS: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with durations serialised as integer nanoseconds (GOST's JSON form).
pub fn json_durations<T>(f: impl FnOnce() -> T) -> T {
    let prev = AS_NANOS.with(|c| c.replace(true));
    let out = f();
    AS_NANOS.with(|c| c.set(prev));
    out
}

/// A duration in a typed config field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord, Hash)]
pub struct GoDuration(pub Duration);

/// Error from [`parse_go_duration`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (accepted: a number with a unit ns, us, ms, s, m, h, e.g. \"30s\", \"1m30s\", \"250ms\")")]
pub struct DurationError {
    /// The rejected text.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Parses a Go duration string (`time.ParseDuration` grammar, non-negative only).
pub fn parse_go_duration(s: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError {
        input: s.to_string(),
        reason,
    };
    let t = s.trim();
    if t.is_empty() {
        return Err(err("empty"));
    }
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    if t.starts_with('-') {
        return Err(err("negative durations are not accepted"));
    }
    let bytes = t.as_bytes();
    let mut i = 0;
    let mut total: f64 = 0.0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        if start == i {
            return Err(err("expected a number"));
        }
        let num: f64 = t[start..i].parse().map_err(|_| err("bad number"))?;
        let ustart = i;
        while i < bytes.len() && !(bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let unit = &t[ustart..i];
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(err("missing unit")),
            _ => return Err(err("unknown unit")),
        };
        total += num * scale;
    }
    if !total.is_finite() || total > 1e12 {
        return Err(err("out of range"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Formats like Go's `time.Duration.String()` (`1m30s`, `250ms`, `0s`).
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", trim_frac(nanos as f64 / 1e3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", trim_frac(nanos as f64 / 1e6));
    }
    let total_secs = d.as_secs();
    let h = total_secs / 3600;
    let m = (total_secs % 3600) / 60;
    let s = (total_secs % 60) as f64 + f64::from(d.subsec_nanos()) / 1e9;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{}s", trim_frac(s)));
    out
}

fn trim_frac(v: f64) -> String {
    let s = format!("{v:.9}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

// === impl GoDuration ===

impl GoDuration {
    /// The wrapped duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl From<Duration> for GoDuration {
    fn from(d: Duration) -> Self {
        GoDuration(d)
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_go_duration(self.0))
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if AS_NANOS.with(|c| c.get()) {
            s.serialize_u64(u64::try_from(self.0.as_nanos()).unwrap_or(u64::MAX))
        } else {
            s.serialize_str(&format_go_duration(self.0))
        }
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = GoDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"30s\" or an integer number of nanoseconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<GoDuration, E> {
                Ok(GoDuration(Duration::from_nanos(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<GoDuration, E> {
                u64::try_from(v)
                    .map(|n| GoDuration(Duration::from_nanos(n)))
                    .map_err(|_| E::custom(format!("invalid duration {v}: negative")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<GoDuration, E> {
                if v >= 0.0 && v.is_finite() {
                    Ok(GoDuration(Duration::from_nanos(v as u64)))
                } else {
                    Err(E::custom(format!("invalid duration {v}")))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<GoDuration, E> {
                // An all-digit string is nanoseconds, like an integer.
                if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
                    return v
                        .parse::<u64>()
                        .map(|n| GoDuration(Duration::from_nanos(n)))
                        .map_err(E::custom);
                }
                parse_go_duration(v).map(GoDuration).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_forms() {
        assert_eq!(parse_go_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_go_duration("250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(
            parse_go_duration("1.5h").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("10x").is_err());
        assert!(parse_go_duration("-1s").is_err());
        assert!(parse_go_duration("").is_err());
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(format_go_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format_go_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn json_form_is_nanos() {
        let d = GoDuration(Duration::from_secs(30));
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"30s\"");
        let n = json_durations(|| serde_json::to_string(&d).unwrap());
        assert_eq!(n, "30000000000");
        let back: GoDuration = serde_json::from_str("30000000000").unwrap();
        assert_eq!(back, d);
        let back: GoDuration = serde_json::from_str("\"30s\"").unwrap();
        assert_eq!(back, d);
    }
}
