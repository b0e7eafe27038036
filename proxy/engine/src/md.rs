//! Typed, case-insensitive access to a component's `metadata` map.
//!
//! GOST reads metadata keys case-insensitively with alias lists, and treats durations as Go
//! duration strings or integer seconds. [`Md`] does the same, but a value of the wrong type is
//! an error naming the path and key, and every key read is recorded so that keys nobody read
//! can be reported as unknown ([`Md::unknown_keys`]).

use std::collections::BTreeSet;
use std::time::Duration;

use gost_config::{parse_go_duration, Metadata};
use parking_lot::Mutex;
use serde_json::Value;

use crate::error::BuildError;

/// GOST's TCP socket keys, accepted by every TCP-based listener and dialer (socket options that
/// gost-proxy leaves to the kernel defaults).
pub const TCP_KEYS: &[&str] = &[
    "keepalive",
    "keepalive.idle",
    "keepalive.interval",
    "keepalive.count",
    "mptcp",
];

/// A metadata map with typed getters and used-key tracking.
#[derive(Debug)]
pub struct Md {
    path: String,
    entries: Vec<(String, Value)>,
    used: Mutex<BTreeSet<String>>,
}

impl Md {
    /// Wraps `map`, found at config path `path` (e.g. `services[web].handler.metadata`).
    pub fn new(path: impl Into<String>, map: &Metadata) -> Md {
        Md {
            path: path.into(),
            entries: map
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            used: Mutex::new(BTreeSet::new()),
        }
    }

    /// An empty map.
    pub fn empty(path: impl Into<String>) -> Md {
        Md::new(path, &Metadata::new())
    }

    /// The config path of this map.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn raw<'a>(&'a self, keys: &[&'a str]) -> Option<(&'a str, &'a Value)> {
        let mut used = self.used.lock();
        for k in keys {
            used.insert(k.to_ascii_lowercase());
        }
        drop(used);
        for k in keys {
            let lk = k.to_ascii_lowercase();
            if let Some((_, v)) = self.entries.iter().find(|(ek, _)| *ek == lk) {
                if !v.is_null() {
                    return Some((k, v));
                }
            }
        }
        None
    }

    fn err(&self, key: &str, v: &Value, accepted: &str) -> BuildError {
        BuildError::new(
            format!("{}.{}", self.path, key),
            format!("invalid value {v}: expected {accepted}"),
        )
    }

    /// Marks keys as known without reading them (keys handled elsewhere).
    pub fn mark_known(&self, keys: &[&str]) {
        let mut used = self.used.lock();
        for k in keys {
            used.insert(k.to_ascii_lowercase());
        }
    }

    /// Whether any of the keys is present.
    pub fn contains(&self, keys: &[&str]) -> bool {
        self.raw(keys).is_some()
    }

    /// A string value (numbers and booleans are stringified).
    pub fn string(&self, keys: &[&str]) -> Result<Option<String>, BuildError> {
        match self.raw(keys) {
            None => Ok(None),
            Some((_, Value::String(s))) => Ok(Some(s.clone())),
            Some((_, Value::Number(n))) => Ok(Some(n.to_string())),
            Some((_, Value::Bool(b))) => Ok(Some(b.to_string())),
            Some((k, v)) => Err(self.err(k, v, "a string")),
        }
    }

    /// A boolean: bool, non-zero number, or a string accepted by Go's `ParseBool`.
    pub fn bool(&self, keys: &[&str]) -> Result<Option<bool>, BuildError> {
        match self.raw(keys) {
            None => Ok(None),
            Some((_, Value::Bool(b))) => Ok(Some(*b)),
            Some((_, Value::Number(n))) => Ok(Some(n.as_f64().unwrap_or(0.0) != 0.0)),
            Some((k, v @ Value::String(s))) => match s.as_str() {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Some(true)),
                "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Some(false)),
                _ => Err(self.err(k, v, "a boolean (true/false/1/0)")),
            },
            Some((k, v)) => Err(self.err(k, v, "a boolean (true/false/1/0)")),
        }
    }

    /// A boolean with a default.
    pub fn bool_or(&self, keys: &[&str], default: bool) -> Result<bool, BuildError> {
        Ok(self.bool(keys)?.unwrap_or(default))
    }

    /// An integer: number, bool (true=1) or decimal string.
    pub fn int(&self, keys: &[&str]) -> Result<Option<i64>, BuildError> {
        match self.raw(keys) {
            None => Ok(None),
            Some((_, Value::Bool(b))) => Ok(Some(i64::from(*b))),
            Some((k, v @ Value::Number(n))) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .map(Some)
                .ok_or_else(|| self.err(k, v, "an integer")),
            Some((k, v @ Value::String(s))) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| self.err(k, v, "an integer")),
            Some((k, v)) => Err(self.err(k, v, "an integer")),
        }
    }

    /// A duration: Go duration string, or a number of **seconds** (GOST's metadata rule).
    pub fn duration(&self, keys: &[&str]) -> Result<Option<Duration>, BuildError> {
        match self.raw(keys) {
            None => Ok(None),
            Some((k, v @ Value::Number(n))) => match n.as_f64() {
                Some(f) if f >= 0.0 && f.is_finite() => Ok(Some(Duration::from_secs_f64(f))),
                _ => Err(self.err(k, v, "a duration such as \"30s\" or a number of seconds")),
            },
            Some((k, v @ Value::String(s))) => {
                let t = s.trim();
                if let Ok(secs) = t.parse::<u64>() {
                    return Ok(Some(Duration::from_secs(secs)));
                }
                parse_go_duration(t).map(Some).map_err(|_| {
                    self.err(
                        k,
                        v,
                        "a duration such as \"30s\", \"1m30s\" or a number of seconds",
                    )
                })
            }
            Some((k, v)) => {
                Err(self.err(k, v, "a duration such as \"30s\" or a number of seconds"))
            }
        }
    }

    /// A list of strings: must be a real list (GOST ignores a scalar; we reject it).
    pub fn strings(&self, keys: &[&str]) -> Result<Option<Vec<String>>, BuildError> {
        match self.raw(keys) {
            None => Ok(None),
            Some((k, v @ Value::Array(a))) => a
                .iter()
                .map(|x| match x {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    Value::Bool(b) => Ok(b.to_string()),
                    _ => Err(self.err(k, v, "a list of strings")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some((k, v)) => Err(self.err(k, v, "a list of strings, e.g. [\"cmd arg\"]")),
        }
    }

    /// A list of strings given either as a list or as a comma-separated string.
    pub fn string_list(&self, keys: &[&str]) -> Result<Option<Vec<String>>, BuildError> {
        match self.raw(keys) {
            Some((_, Value::String(s))) => Ok(Some(
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect(),
            )),
            _ => self.strings(keys),
        }
    }

    /// A map of strings (values stringified).
    pub fn map(&self, keys: &[&str]) -> Result<Option<Vec<(String, String)>>, BuildError> {
        match self.raw(keys) {
            None => Ok(None),
            Some((_, Value::Object(m))) => Ok(Some(
                m.iter()
                    .map(|(k, v)| {
                        let s = match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (k.clone(), s)
                    })
                    .collect(),
            )),
            Some((k, v)) => Err(self.err(k, v, "a map of strings")),
        }
    }

    /// Keys present in the map that some getter asked for.
    pub fn used_present_keys(&self) -> BTreeSet<String> {
        let used = self.used.lock();
        self.entries
            .iter()
            .filter(|(k, _)| used.contains(k))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Keys present in the map that no getter asked for.
    pub fn unknown_keys(&self) -> Vec<String> {
        let used = self.used.lock();
        self.entries
            .iter()
            .filter(|(k, _)| !used.contains(k))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn md(v: Value) -> Md {
        Md::new("x.metadata", v.as_object().unwrap())
    }

    #[test]
    fn case_insensitive_with_aliases() {
        let m = md(json!({"ReadTimeout": "10s", "udp": "true", "n": 3}));
        assert_eq!(
            m.duration(&["readTimeout"]).unwrap(),
            Some(Duration::from_secs(10))
        );
        assert_eq!(m.bool(&["udp"]).unwrap(), Some(true));
        assert_eq!(m.int(&["x", "n"]).unwrap(), Some(3));
        assert!(m.unknown_keys().is_empty());
    }

    #[test]
    fn durations_in_seconds_and_errors_name_the_key() {
        let m = md(json!({"ttl": 30, "bad": "soon", "s": "45"}));
        assert_eq!(m.duration(&["ttl"]).unwrap(), Some(Duration::from_secs(30)));
        assert_eq!(m.duration(&["s"]).unwrap(), Some(Duration::from_secs(45)));
        let e = m.duration(&["bad"]).unwrap_err();
        assert_eq!(e.path, "x.metadata.bad");
        assert!(e.msg.contains("soon"));
    }

    #[test]
    fn unknown_keys_are_reported() {
        let m = md(json!({"udp": true, "typo": 1}));
        let _ = m.bool(&["udp"]);
        assert_eq!(m.unknown_keys(), vec!["typo".to_string()]);
    }

    #[test]
    fn scalar_hook_list_is_an_error() {
        let m = md(json!({"preUp": "echo hi"}));
        assert!(m.strings(&["preUp"]).is_err());
    }
}
