//! Metrics parity with the reference GOST v3.2.6: the same services and the same traffic
//! (successful and failing requests through HTTP, CONNECT and SOCKS5) on both programs; the
//! `gost_*` series must have the same names, label names and types, and the request and
//! handler-error counters the same values.
//! Every socket is on 127.0.0.1; every request has curl's 10 s limit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::collections::{BTreeMap, BTreeSet};

/// A series: metric name and its labels, sorted (`le` normalised as a number).
type Series = (String, Vec<(String, String)>);

/// A scrape: series → value, and family → type.
#[derive(Default)]
struct Scrape {
    series: BTreeMap<Series, f64>,
    types: BTreeMap<String, String>,
}

impl Scrape {
    /// The series of the metrics `names`, with their values.
    fn of(&self, names: &[&str]) -> BTreeMap<Series, f64> {
        self.series
            .iter()
            .filter(|((n, _), _)| names.contains(&n.as_str()))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
}

fn labels_of(s: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = s
        .trim_matches(|c| c == '{' || c == '}')
        .split("\",")
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            let v = v.trim_matches('"').to_string();
            let v = if k == "le" {
                v.parse::<f64>().map(|f| f.to_string()).unwrap_or(v)
            } else {
                v
            };
            (k.to_string(), v)
        })
        .collect();
    v.sort();
    v
}

fn scrape(port: u16) -> Scrape {
    let (code, text) = curl(&[&format!("http://127.0.0.1:{port}/metrics")]);
    assert_eq!(code, 0, "{text}");
    let mut s = Scrape::default();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let (name, kind) = t.split_once(' ').unwrap();
            if name.starts_with("gost_") {
                // OpenMetrics names a counter family without `_total`; the samples have it.
                let name = if kind == "counter" && !name.ends_with("_total") {
                    format!("{name}_total")
                } else {
                    name.to_string()
                };
                s.types.insert(name, kind.to_string());
            }
            continue;
        }
        if !line.starts_with("gost_") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.find('{') {
            Some(i) => (&series[..i], &series[i..]),
            None => (series, ""),
        };
        s.series.insert(
            (name.to_string(), labels_of(labels)),
            value.parse().unwrap(),
        );
    }
    s
}

fn run(program: std::path::PathBuf, origin: std::net::SocketAddr) -> Scrape {
    let (ph, ps, pm) = (free_port(), free_port(), free_port());
    let (lh, ls, lm) = (
        format!("http://127.0.0.1:{ph}"),
        format!("socks5://127.0.0.1:{ps}"),
        format!("127.0.0.1:{pm}"),
    );
    let _p = Proxy::start_bin(
        &program,
        None,
        &["-L", &lh, "-L", &ls, "-metrics", &lm],
        &[ph, ps, pm],
        &[],
    );
    let dead = free_port();
    let (ok, bad) = (
        format!("http://{origin}/"),
        format!("http://127.0.0.1:{dead}/"),
    );
    let proxy = format!("http://127.0.0.1:{ph}");
    let socks = format!("127.0.0.1:{ps}");
    for _ in 0..3 {
        assert_eq!(curl(&["-x", &proxy, &ok]).0, 0);
        assert_eq!(curl(&["-p", "-x", &proxy, &ok]).0, 0);
        assert_eq!(curl(&["--socks5", &socks, &ok]).0, 0);
        assert_eq!(curl_status(&["-x", &proxy, &bad]), "503");
        assert_ne!(curl(&["--socks5", &socks, &bad]).0, 0);
    }
    // The last connections are counted once they end: let them.
    std::thread::sleep(std::time::Duration::from_millis(300));
    scrape(pm)
}

#[tokio::test(flavor = "multi_thread")]
async fn gost_series_match_gost() {
    let origin = origin().await;
    let (g, o) = tokio::task::spawn_blocking(move || (run(gost_bin(), origin), run(bin(), origin)))
        .await
        .unwrap();
    // gost v3.2.6 counts a service into `gost_services` only if its metrics were enabled
    // before the service started serving (the two start concurrently), so on a busy machine
    // the family can be missing from gost altogether; ours is checked on its own below.
    let skip = |name: &str| name == "gost_services" && !g.types.contains_key(name);
    let types = |s: &Scrape| {
        let mut t = s.types.clone();
        t.retain(|name, _| !skip(name));
        t
    };
    assert_eq!(types(&g), types(&o), "families and types");
    // name + label names (values vary: ports, hosts)
    let shape = |s: &Scrape| -> BTreeSet<(String, Vec<String>)> {
        s.series
            .keys()
            .filter(|(name, _)| !skip(name))
            .map(|(name, labels)| {
                (
                    name.clone(),
                    labels.iter().map(|(k, _)| k.clone()).collect(),
                )
            })
            .collect()
    };
    assert_eq!(shape(&g), shape(&o), "series names and label names");
    let counters = |s: &Scrape| {
        s.of(&[
            "gost_service_requests_total",
            "gost_service_handler_errors_total",
            "gost_service_request_duration_seconds_count",
        ])
    };
    assert_eq!(counters(&g), counters(&o), "request and error counts");
    assert!(!counters(&o).is_empty());
    // `gost_services` is compared by shape only: gost v3.2.6 reports 1 for two running
    // services now and then (a start-up race on its side); gost-proxy must report both.
    let up: Vec<f64> = o.of(&["gost_services"]).into_values().collect();
    assert_eq!(up, [2.0], "gost_services counts both services");
}
