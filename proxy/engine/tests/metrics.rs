//! `/metrics` is Prometheus text with GOST's `gost_*` series, and its counters move with
//! traffic; `--metrics-no-client-label` empties the unbounded `client` label.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::collections::BTreeMap;

/// Parses the text exposition strictly enough to catch malformed output.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            assert!(
                line.is_empty()
                    || line.starts_with("# HELP ")
                    || line.starts_with("# TYPE ")
                    || line == "# EOF",
                "bad comment line {line:?}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name {name:?}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(
                    labels.starts_with('{') && labels.ends_with('}'),
                    "bad labels in {line:?}"
                );
            }
        }
        m.insert(series.to_string(), v);
    }
    m
}

fn sum(m: &BTreeMap<String, f64>, prefix: &str) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_move_with_traffic() {
    let o = origin().await;
    let (pm, ph, pm2, ph2) = (free_port(), free_port(), free_port(), free_port());
    let (m, l) = (format!("127.0.0.1:{pm}"), format!("http://127.0.0.1:{ph}"));
    let (m2, l2) = (
        format!("127.0.0.1:{pm2}"),
        format!("http://127.0.0.1:{ph2}"),
    );
    let _p =
        tokio::task::spawn_blocking(move || Proxy::start(&["-metrics", &m, "-L", &l], &[pm, ph]))
            .await
            .unwrap();
    let _q = tokio::task::spawn_blocking(move || {
        Proxy::start(
            &["-metrics", &m2, "-L", &l2, "--metrics-no-client-label"],
            &[pm2, ph2],
        )
    })
    .await
    .unwrap();
    tokio::task::spawn_blocking(move || {
        let scrape = |p: u16| parse(&curl(&[&format!("http://127.0.0.1:{p}/metrics")]).1);
        let before = scrape(pm);
        assert_eq!(sum(&before, "gost_services{"), 1.0);
        for _ in 0..3 {
            assert_eq!(curl(&["-x", &format!("http://127.0.0.1:{ph}"), &format!("http://{o}/big")]).0, 0);
        }
        let after = scrape(pm);
        let req = sum(&after, "gost_service_requests_total{") - sum(&before, "gost_service_requests_total{");
        assert_eq!(req, 3.0, "{after:?}");
        let out = sum(&after, "gost_service_transfer_output_bytes_total{");
        assert!(out >= 3.0 * 4.0 * 1024.0 * 1024.0, "output bytes {out}");
        assert!(sum(&after, "gost_service_transfer_input_bytes_total{") > 0.0);
        assert!(after.keys().any(|k| k.starts_with("gost_service_requests_total{") && k.contains("client=\"127.0.0.1\"")));
        assert!(sum(&after, "gost_service_request_duration_seconds_count{") >= 3.0);
        assert!(after.get("process_resident_memory_bytes").is_some_and(|v| *v > 0.0), "{after:?}");
        assert!(after.get("process_open_fds").is_some_and(|v| *v > 0.0));
        assert!(after.contains_key("process_cpu_seconds_total"));
        assert_eq!(curl(&["-x", &format!("http://127.0.0.1:{ph2}"), &format!("http://{o}/")]).0, 0);
        let other = scrape(pm2);
        assert!(other.keys().any(|k| k.starts_with("gost_service_requests_total{") && k.contains("client=\"\"")), "{other:?}");
    })
    .await
    .unwrap();
}
