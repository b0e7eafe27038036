//! Process lifecycle: hooks (order and environment), `--` multi-process supervision,
//! draining shutdown, the health endpoint, `-O` round trips, bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread")]
async fn hooks_run_in_gost_order_with_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hooks.log");
    let port = free_port();
    let line = |phase: &str| {
        format!(
            "sh -c 'echo {phase} $KUBEGOST_PHASE $KUBEGOST_SERVICE $KUBEGOST_ADDR >> {}'",
            out.display()
        )
    };
    let cfg = format!(
        "services:\n- name: web\n  addr: 127.0.0.1:{port}\n  handler: {{type: http}}\n  metadata:\n    preUp: [\"{}\"]\n    postUp: [\"{}\", \"false\", \"/nonexistent/cmd\"]\n    preDown: [\"{}\"]\n    postDown: [\"{}\"]\n",
        line("A").replace('"', "\\\""), line("B").replace('"', "\\\""), line("C").replace('"', "\\\""), line("D").replace('"', "\\\"")
    );
    let cf = dir.path().join("gost.yaml");
    std::fs::write(&cf, cfg).unwrap();
    let cfs = cf.display().to_string();
    let mut p = tokio::task::spawn_blocking(move || Proxy::start(&["-C", &cfs], &[port]))
        .await
        .unwrap();
    p.signal("TERM");
    let st = p.wait_exit(20);
    assert!(st.success(), "{st}: {}", p.logs());
    let got = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = got.lines().collect();
    let addr = format!("127.0.0.1:{port}");
    assert_eq!(
        lines,
        vec![
            format!("A pre-up web {addr}"),
            format!("B post-up web {addr}"),
            format!("C pre-down web {addr}"),
            format!("D post-down web {addr}")
        ],
        "{}",
        p.logs()
    );
    assert!(
        p.logs().contains("hook failed"),
        "failing hooks are logged: {}",
        p.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hook_subcommand_runs_one_phase() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("h.log");
    let cfg = format!(
        "{{\"services\":[{{\"name\":\"a\",\"addr\":\":1\",\"metadata\":{{\"postUp\":[\"sh -c 'echo $KUBEGOST_PHASE $KUBEGOST_SERVICE >> {}'\"]}}}}]}}",
        out.display()
    );
    let st = std::process::Command::new(bin())
        .args(["hook", "post-up", "-C", &cfg])
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "post-up a\n");
    let st = std::process::Command::new(bin())
        .args(["hook", "sideways", "-C", &cfg])
        .output()
        .unwrap();
    assert!(!st.status.success());
}

fn children_of(pid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let after = stat.rsplit(')').next().unwrap_or("");
        let ppid: u32 = after
            .split_whitespace()
            .nth(1)
            .and_then(|x| x.parse().ok())
            .unwrap_or(0);
        if ppid == pid {
            v.push(p);
        }
    }
    v
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// Waits (≤10 s per process) until every pid is gone.
fn assert_all_gone(pids: &[u32], what: &str) {
    for &k in pids {
        for _ in 0..500 {
            if !alive(k) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(k), "child {k} outlived {what}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn multi_process_groups_are_supervised() {
    let o = origin().await;
    let (p1, p2) = (free_port(), free_port());
    let l1 = format!("http://127.0.0.1:{p1}");
    let l2 = format!("socks5://127.0.0.1:{p2}");
    let mut p =
        tokio::task::spawn_blocking(move || Proxy::start(&["-L", &l1, "--", "-L", &l2], &[p1, p2]))
            .await
            .unwrap();
    let kids = children_of(p.child.id());
    assert_eq!(kids.len(), 2, "one child per group: {kids:?}");
    let url = format!("http://{o}/");
    let r =
        tokio::task::spawn_blocking(move || curl(&["--socks5", &format!("127.0.0.1:{p2}"), &url]))
            .await
            .unwrap();
    assert_eq!(r, (0, ORIGIN_BODY.to_string()));
    p.signal("TERM");
    let st = p.wait_exit(20);
    assert!(st.success(), "{st}: {}", p.logs());
    assert_all_gone(&kids, "the parent");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_group_fails_the_whole_run() {
    let p1 = free_port();
    let l1 = format!("http://127.0.0.1:{p1}");
    let mut p = tokio::task::spawn_blocking(move || {
        Proxy::start(&["-L", &l1, "--", "-L", "socks5+quic://127.0.0.1:1"], &[])
    })
    .await
    .unwrap();
    let st = p.wait_exit(60);
    assert!(!st.success());
    assert_eq!(
        st.code(),
        Some(64),
        "the failing child's code is the group's code: {}",
        p.logs()
    );
    assert!(p.logs().contains("group 1 exited"), "{}", p.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_a_slow_transfer_and_closes_the_listener_at_once() {
    let o = origin().await;
    let pf = free_port();
    let lf = format!("tcp://127.0.0.1:{pf}/{o}");
    let mut p = tokio::task::spawn_blocking(move || {
        Proxy::start(&["-L", &lf, "--drain-timeout", "30s"], &[pf])
    })
    .await
    .unwrap();
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", pf))
        .await
        .unwrap();
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 1024];
    let n = s.read(&mut first).await.unwrap();
    assert!(n > 0);
    p.signal("TERM");
    // New connections are refused once the listener is closed (bounded poll).
    let mut refused = false;
    for _ in 0..250 {
        if tokio::net::TcpStream::connect(("127.0.0.1", pf))
            .await
            .is_err()
        {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "listener still accepting after SIGTERM");
    // Read the whole body (the origin keeps the connection open, so count bytes).
    let body_len = 16 * 64 * 1024;
    let mut got = first[..n].to_vec();
    let read_all = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                if got.len() >= end + 4 + body_len {
                    return true;
                }
            }
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(k) => got.extend_from_slice(&buf[..k]),
            }
        }
    };
    let complete = tokio::time::timeout(Duration::from_secs(20), read_all)
        .await
        .unwrap_or(false);
    assert!(
        complete,
        "transfer cut short: {} bytes: {}",
        got.len(),
        p.logs()
    );
    drop(s);
    let st = tokio::task::spawn_blocking(move || {
        let st = p.wait_exit(30);
        (st, p)
    })
    .await
    .unwrap();
    assert!(st.0.success(), "{}", st.1.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_closes_one_connection_only() {
    let o = origin().await;
    let (ph, ps, pa, p4) = (free_port(), free_port(), free_port(), free_port());
    let (lh, ls, la, l4) = (
        format!("http://127.0.0.1:{ph}"),
        format!("socks5://127.0.0.1:{ps}"),
        format!("127.0.0.1:{pa}"),
        format!("socks4://127.0.0.1:{p4}"),
    );
    let mut p = tokio::task::spawn_blocking(move || {
        Proxy::start(
            &["-L", &lh, "-L", &ls, "-L", &la, "-L", &l4, "-D"],
            &[ph, ps, pa, p4],
        )
    })
    .await
    .unwrap();
    let garbage: Vec<(u16, Vec<u8>)> = vec![
        (ph, b"\x00\x01\x02garbage\r\n\r\n".to_vec()),
        (ph, b"GET\r\n\r\n".to_vec()),
        (ph, b"CONNECT".to_vec()),
        (ph, vec![b'A'; 70 * 1024]),
        (ps, vec![5, 0]),
        (ps, vec![4, 1, 0]),
        (ps, vec![5, 1, 0, 5, 1, 0, 9, 1, 2, 3]),
        (ps, vec![5, 1, 0, 5, 1, 0, 3, 200, b'a']),
        (ps, vec![5, 2, 2]),
        (pa, vec![5, 255]),
        (pa, vec![4, 1, 0, 80, 0, 0, 0, 1]),
        (pa, vec![0xff; 300]),
        (p4, vec![4, 7, 0, 80, 1, 2, 3, 4, 0]),
        (p4, vec![4, 1, 0, 80, 0, 0, 0, 1, b'u']),
    ];
    for (port, bytes) in garbage {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let _ = s.write_all(&bytes).await;
        let _ = s.shutdown().await;
        let mut sink = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut sink)).await;
        assert!(
            r.is_ok(),
            "connection on {port} with {:?}… was not closed",
            &bytes[..bytes.len().min(8)]
        );
    }
    assert!(
        p.child.try_wait().unwrap().is_none(),
        "process died: {}",
        p.logs()
    );
    let url = format!("http://{o}/");
    let r = tokio::task::spawn_blocking(move || {
        (
            curl(&["-x", &format!("http://127.0.0.1:{ph}"), &url]),
            curl(&["--socks5", &format!("127.0.0.1:{ps}"), &url]),
            curl(&["--socks5", &format!("127.0.0.1:{pa}"), &url]),
            curl(&["--socks4", &format!("127.0.0.1:{p4}"), &url]),
        )
    })
    .await
    .unwrap();
    for x in [r.0, r.1, r.2, r.3] {
        assert_eq!(x, (0, ORIGIN_BODY.to_string()));
    }
}

#[test]
fn output_round_trips_through_c() {
    let dir = tempfile::tempdir().unwrap();
    for fmt in ["yaml", "json"] {
        let out = std::process::Command::new(bin())
            .args([
                "-L",
                "http://u:p@:8080?udp=true&bypass=~.corp.example,10.0.0.0/8",
                "-L",
                "tcp://:9000-9001/10.0.0.1:80,10.0.0.2:80?strategy=fifo&failTimeout=5s",
                "-L",
                "socks5://127.0.0.1:1080?ignoreChain=true&hosts=a.test:127.0.0.1",
                "-F",
                "socks5://u:p@127.0.0.1:1081,127.0.0.1:1082?strategy=rand",
                "-F",
                "http://proxy.example:3128",
                "-api",
                "admin:pw@127.0.0.1:18080?pathPrefix=/api",
                "-metrics",
                ":9100",
                "-O",
                fmt,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let first = String::from_utf8(out.stdout).unwrap();
        let f = dir.path().join(format!("c.{fmt}"));
        std::fs::write(&f, &first).unwrap();
        let again = std::process::Command::new(bin())
            .args(["-C", f.to_str().unwrap(), "-O", fmt])
            .output()
            .unwrap();
        assert!(
            again.status.success(),
            "{}",
            String::from_utf8_lossy(&again.stderr)
        );
        assert_eq!(
            String::from_utf8(again.stdout).unwrap(),
            first,
            "-O {fmt} output fed back with -C changes the config"
        );
        assert!(
            first.contains("chain-0") && first.contains("hop-1") && first.contains("service-3"),
            "{first}"
        );
    }
}

#[test]
fn invalid_config_exits_64_naming_the_path() {
    let out = std::process::Command::new(bin())
        .args([
            "-C",
            "{\"services\":[{\"name\":\"web\",\"addr\":\":1\",\"handler\":{\"type\":\"htp\"}}]}",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("services[web].handler.type") && err.contains("htp") && err.contains("socks5"),
        "{err}"
    );
    let v = std::process::Command::new(bin())
        .arg("-V")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("gost-proxy "));
}

#[test]
fn unknown_metadata_keys_warn_and_strict_rejects() {
    let p = free_port();
    let l = format!("http://127.0.0.1:{p}?udp=true&bogusKey=1");
    let strict = std::process::Command::new(bin())
        .args(["-L", &l, "--strict"])
        .output()
        .unwrap();
    assert_eq!(strict.status.code(), Some(64));
    let err = String::from_utf8_lossy(&strict.stderr);
    assert!(
        err.contains("boguskey") && err.contains("services[service-0]"),
        "{err}"
    );
    let mut lenient = Proxy::start(&["-L", &l], &[p]);
    lenient.signal("TERM");
    assert!(lenient.wait_exit(20).success());
    let logs = lenient.logs();
    assert!(
        logs.contains("unknown metadata key") && logs.contains("boguskey"),
        "{logs}"
    );
    assert!(
        !logs.contains("\\\"udp\\\" ignored"),
        "udp is known to the http handler: {logs}"
    );
}

#[test]
fn config_from_stdin_inline_json_and_inline_yaml() {
    use std::io::Write;
    let yaml = "services:\n- name: a\n  addr: :1\n  handler: {type: socks5}\n";
    let mut child = std::process::Command::new(bin())
        .args(["-C", "-", "-O", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let from_stdin = String::from_utf8(out.stdout).unwrap();
    assert!(from_stdin.contains("\"socks5\""), "{from_stdin}");
    let inline_yaml = std::process::Command::new(bin())
        .args(["-C", yaml, "-O", "json"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(inline_yaml.stdout).unwrap(), from_stdin);
    let json = r#"{"services":[{"name":"a","addr":":1","handler":{"type":"socks5"}}]}"#;
    let inline_json = std::process::Command::new(bin())
        .args(["-C", json, "-O", "json"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(inline_json.stdout).unwrap(), from_stdin);
}

#[tokio::test(flavor = "multi_thread")]
async fn children_die_with_a_killed_parent() {
    let (p1, p2) = (free_port(), free_port());
    let l1 = format!("http://127.0.0.1:{p1}");
    let l2 = format!("socks5://127.0.0.1:{p2}");
    let mut p =
        tokio::task::spawn_blocking(move || Proxy::start(&["-L", &l1, "--", "-L", &l2], &[p1, p2]))
            .await
            .unwrap();
    let kids = children_of(p.child.id());
    assert_eq!(kids.len(), 2);
    p.signal("KILL");
    let _ = p.wait_exit(10);
    assert_all_gone(&kids, "a SIGKILLed parent");
}

fn http_status(port: u16, method: &str, path: &str) -> String {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            method,
            &format!("http://127.0.0.1:{port}{path}"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Sidecar mode: preUp/postUp/preDown are container lifecycle steps; the engine runs only
/// postDown, and readiness waits until `hook post-up` (the postStart step) has run.
#[test]
fn external_hooks_leave_post_up_to_the_lifecycle_step() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hooks.log");
    let (port, hp) = (free_port(), free_port());
    let line = |p: &str| format!("\"sh -c 'echo {p} >> {}'\"", out.display());
    let cfg = format!(
        "services:\n- name: web\n  addr: 127.0.0.1:{port}\n  handler: {{type: http}}\n  metadata:\n    preUp: [{}]\n    postUp: [{}]\n    preDown: [{}]\n    postDown: [{}]\n",
        line("pre-up"),
        line("post-up"),
        line("pre-down"),
        line("post-down")
    );
    let cf = dir.path().join("gost.yaml");
    std::fs::write(&cf, cfg).unwrap();
    let health = format!("127.0.0.1:{hp}");
    let mut p = Proxy::start(
        &[
            "-C",
            cf.to_str().unwrap(),
            "--external-hooks",
            "--health",
            &health,
            "--no-watch",
        ],
        &[port, hp],
    );
    assert_eq!(http_status(hp, "GET", "/listening"), "200");
    assert_eq!(
        http_status(hp, "GET", "/ready"),
        "503",
        "not ready before postUp ran"
    );
    assert!(
        !out.exists(),
        "the engine ran a hook it should leave to the lifecycle steps"
    );
    let hook = std::process::Command::new(bin())
        .args([
            "hook",
            "post-up",
            "-C",
            cf.to_str().unwrap(),
            "--health",
            &health,
        ])
        .output()
        .unwrap();
    assert!(
        hook.status.success(),
        "{}",
        String::from_utf8_lossy(&hook.stderr)
    );
    assert_eq!(http_status(hp, "GET", "/ready"), "200");
    p.signal("TERM");
    assert!(p.wait_exit(20).success());
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "post-up\npost-down\n",
        "{}",
        p.logs()
    );
}
