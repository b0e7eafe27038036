//! Oversized and deeply nested config documents (`../shared/bench.md` §8.3 and issue 10):
//! each is refused with exit 64 and a message naming the source and the limit, and the
//! largest resident set of any of these runs stays under 128 MiB. Its own test binary so that
//! `getrusage(RUSAGE_CHILDREN)` sees only these `gost-proxy` runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::io::Write as _;
use std::process::{Command, Stdio};

/// A service whose handler metadata (free-form, so any value shape parses) holds `value`.
fn yaml_with_metadata(value: &str) -> String {
    format!("services:\n- name: s\n  addr: 127.0.0.1:1\n  handler:\n    type: http\n    metadata:\n{value}\n")
}

fn run(args: &[&str], stdin: Option<&[u8]>) -> (i32, String) {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(data) = stdin {
        let mut w = child.stdin.take().unwrap();
        // the program may stop reading at its limit: a broken pipe is expected then
        let _ = w.write_all(data);
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Largest resident set of any waited-for child so far, KiB.
fn children_max_rss_kib() -> i64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_CHILDREN).unwrap().max_rss()
}

#[test]
fn oversized_and_nested_documents_are_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let depth = 100_000;
    let deep_yaml = yaml_with_metadata(&format!(
        "      x: {}{}",
        "[".repeat(depth),
        "]".repeat(depth)
    ));
    let deep_json = format!(
        r#"{{"services":[{{"name":"s","addr":"127.0.0.1:1","handler":{{"type":"http","metadata":{{"x":{}{}}}}}}}]}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    // ten anchors of ten aliases each: 10^10 nodes once expanded
    let mut bomb = vec![format!(
        "      a0: &a0 [{}]",
        ["\"xxxxxxxxxxxxxxxx\""; 10].join(",")
    )];
    for i in 1..10 {
        bomb.push(format!(
            "      a{i}: &a{i} [{}]",
            vec![format!("*a{}", i - 1); 10].join(",")
        ));
    }
    let bomb = yaml_with_metadata(&bomb.join("\n"));
    let big = format!("# {}\n", "x".repeat(gost_config::MAX_CONFIG_BYTES));
    let cases: Vec<(&str, &str, String, &str)> = vec![
        ("deep.yaml", "file", deep_yaml, "recursion limit exceeded"),
        ("deep.json", "file", deep_json, "recursion limit exceeded"),
        ("bomb.yaml", "file", bomb, "budget"),
        (
            "big.yaml",
            "file",
            big.clone(),
            "the largest config document accepted",
        ),
        (
            "stdin",
            "stdin",
            big,
            "the largest config document accepted",
        ),
    ];
    for (name, how, text, want) in &cases {
        let (code, err) = if *how == "stdin" {
            run(&["-C", "-"], Some(text.as_bytes()))
        } else {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            run(&["-C", p.to_str().unwrap()], None)
        };
        let rss = children_max_rss_kib();
        let first = err
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect::<String>();
        eprintln!(
            "{name} ({} bytes): exit {code}, max RSS so far {rss} KiB: {first}",
            text.len()
        );
        assert_eq!(code, 64, "{name}: {err}");
        assert!(err.contains(want), "{name}: want {want:?} in {err}");
        let source = if *how == "stdin" { "-C -" } else { "-C " };
        assert!(
            first.contains(source),
            "{name}: the message names the source: {first}"
        );
        assert!(
            rss < 128 * 1024,
            "{name}: {rss} KiB resident (accepted: under 128 MiB)"
        );
    }
}
