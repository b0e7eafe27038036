//! Config parity with the reference GOST v3.2.6: every file in `tests/fixtures/config/valid/`
//! and every example command line of the README's engine section is read by both programs;
//! `-O json` of both must be equal after normalising what GOST prints differently without a
//! difference in meaning (metadata keys lowercased, zero selector limits spelled out). Then
//! both run each fixture (listen addresses moved to free loopback ports) and must pass the
//! same checks: every service listens, and every chain-less proxy service carries curl to an
//! origin that answers only that process.
//! Every socket is on 127.0.0.1 or [::1]; every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::SeqCst;

use serde_json::Value;

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/config/valid");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// `gost-proxy …` example lines of the README's engine section (the fenced block under
/// "## The engine"), without comments; lines that start processes groups or hooks, or read
/// a file, are left to the other tests.
fn readme_command_lines() -> Vec<Vec<String>> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let section = readme
        .split("## The engine")
        .nth(1)
        .expect("README has an engine section");
    let block = section
        .split("```bash")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    block
        .lines()
        .filter_map(|l| l.split(" #").next())
        .map(str::trim)
        .filter(|l| l.starts_with("gost-proxy -L"))
        .filter(|l| !l.contains(" -- ") && !l.contains(" -O "))
        .map(|l| shlex::split(l).unwrap()[1..].to_vec())
        .collect()
}

/// Runs `program args -O json` and parses what it prints.
fn effective(program: &Path, args: &[String]) -> Value {
    let out = std::process::Command::new(program)
        .args(args)
        .args(["-O", "json"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "{} {args:?} -O json: {e}\n{text}\n{}",
            program.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// What GOST prints differently for the same meaning: metadata keys lowercased (both match
/// them case-insensitively), a selector's unset `maxFails`/`failTimeout` printed as 0.
fn normalise(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Object(md)) = m.get_mut("metadata") {
                *md = std::mem::take(md)
                    .into_iter()
                    .map(|(k, v)| (k.to_lowercase(), v))
                    .collect();
            }
            if let Some(Value::Object(sel)) = m.get_mut("selector") {
                for k in ["maxFails", "failTimeout"] {
                    if sel.get(k) == Some(&Value::from(0)) {
                        sel.remove(k);
                    }
                }
            }
            m.values_mut().for_each(normalise);
        }
        Value::Array(a) => a.iter_mut().for_each(normalise),
        _ => {}
    }
}

#[test]
fn effective_config_matches_gost() {
    let mut cases: Vec<Vec<String>> = fixtures()
        .iter()
        .map(|f| vec!["-C".to_string(), f.display().to_string()])
        .collect();
    let lines = readme_command_lines();
    assert!(lines.len() >= 6, "README examples found: {lines:?}");
    cases.extend(lines);
    let mut diffs = Vec::new();
    for args in &cases {
        let (mut g, mut o) = (effective(&gost_bin(), args), effective(&bin(), args));
        normalise(&mut g);
        normalise(&mut o);
        if g != o {
            diffs.push(format!("{args:?}:\n  gost       {g}\n  gost-proxy {o}"));
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

/// A service of a relocated fixture: name, handler type, has a chain, address, UDP listener.
type ServiceAt = (String, String, bool, String, bool);

/// A fixture with its listen addresses (services, api, metrics) moved to free ports.
fn relocate(text: &str, f: &Path) -> (String, Vec<ServiceAt>) {
    let fmt = if f.extension().is_some_and(|e| e == "json") {
        gost_config::Format::Json
    } else {
        gost_config::Format::Yaml
    };
    let cfg = gost_config::Config::parse(text, fmt).unwrap();
    let mut text = text.to_string();
    let mut services = Vec::new();
    let moved = |addr: &str, text: &mut String| -> String {
        let host = match addr.rsplit_once(':') {
            Some((h, _)) if !h.is_empty() => h.to_string(),
            _ => "127.0.0.1".to_string(),
        };
        let new = format!("{host}:{}", free_port());
        // YAML, bare or quoted, and JSON.
        for (from, to) in [
            (format!("addr: {addr}"), format!("addr: {new}")),
            (format!("addr: \"{addr}\""), format!("addr: \"{new}\"")),
            (
                format!("\"addr\": \"{addr}\""),
                format!("\"addr\": \"{new}\""),
            ),
        ] {
            *text = text.replace(&from, &to);
        }
        new
    };
    for s in &cfg.services {
        let new = moved(&s.addr, &mut text);
        let handler = s
            .handler
            .as_ref()
            .map(|h| h.kind.clone())
            .unwrap_or_default();
        let chain = s.handler.as_ref().is_some_and(|h| h.chain.is_some());
        let udp = s.listener.as_ref().is_some_and(|l| l.kind == "udp");
        services.push((s.name.clone(), handler, chain, new, udp));
    }
    if let Some(a) = cfg.api.as_ref() {
        moved(&a.addr, &mut text);
    }
    if let Some(m) = cfg.metrics.as_ref() {
        moved(&m.addr, &mut text);
    }
    (text, services)
}

#[tokio::test(flavor = "multi_thread")]
async fn fixtures_run_alike_in_both() {
    let (origin, slot) = guarded_origin().await;
    let mut failures = Vec::new();
    let mut checks = 0;
    for f in fixtures() {
        for program in [gost_bin(), bin()] {
            let text = std::fs::read_to_string(&f).unwrap();
            let (text, services) = relocate(&text, &f);
            let dir = tempfile::tempdir().unwrap();
            let cf = dir.path().join(f.file_name().unwrap());
            std::fs::write(&cf, &text).unwrap();
            let cfs = cf.display().to_string();
            let prog = program.clone();
            let p = tokio::task::spawn_blocking(move || {
                Proxy::start_bin(&prog, None, &["-C", &cfs], &[], &[])
            })
            .await
            .unwrap();
            slot.store(p.pid(), SeqCst);
            let name = format!(
                "{} with {}",
                p.name,
                f.file_name().unwrap().to_string_lossy()
            );
            for (svc, handler, chain, addr, udp) in services {
                let port: u16 = addr.rsplit_once(':').unwrap().1.parse().unwrap();
                let proto = if udp { "udp" } else { "tcp" };
                let mut held = false;
                for _ in 0..200 {
                    if port_held_by(p.pid(), proto, port) {
                        held = true;
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(25)).await;
                }
                checks += 1;
                if !held {
                    failures.push(format!(
                        "{name}: service {svc} does not listen on {addr}/{proto}\n{}",
                        p.logs()
                    ));
                    continue;
                }
                let via = match handler.as_str() {
                    _ if chain || udp => continue,
                    "http" | "auto" | "" => ["-x".to_string(), format!("http://{addr}")],
                    "socks5" => ["--socks5-hostname".to_string(), addr.clone()],
                    "socks4a" => ["--socks4a".to_string(), addr.clone()],
                    _ => continue,
                };
                let url = format!("http://{origin}/");
                let got = tokio::task::spawn_blocking(move || curl(&[&via[0], &via[1], &url]))
                    .await
                    .unwrap();
                checks += 1;
                if got != (0, ORIGIN_BODY.to_string()) {
                    failures.push(format!(
                        "{name}: curl through {svc} ({handler}): {got:?}\n{}",
                        p.logs()
                    ));
                }
            }
        }
    }
    eprintln!("{checks} checks over {} fixtures", fixtures().len());
    assert!(checks >= 20, "only {checks} checks ran");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
