//! The engine as a pod's sidecar: the health endpoint (dual-stack, state-changing `POST`s only
//! from loopback), readiness and `hook post-up` covering every `--` process group, hook failure
//! semantics, `preDown` stopping inbound services while egress keeps serving, and `POST
//! /shutdown` with `gost-proxy await --shutdown` for Jobs. Real `gost-proxy` processes; sockets
//! on 127.0.0.1/[::1], or inside a network namespace the test creates.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// GET/POST on 127.0.0.1 (or `host`) with curl: (status, body).
fn http(host: &str, port: u16, method: &str, path: &str) -> (String, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            "-X",
            method,
            "-w",
            "\n%{http_code}",
        ])
        .arg(format!("http://{host}:{port}{path}"))
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = t.rsplit_once('\n').unwrap_or(("", ""));
    (code.to_string(), body.to_string())
}

fn wait_http(port: u16, path: &str, want: &str) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = http("127.0.0.1", port, "GET", path);
        if r.0 == want || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn health_binds_dual_stack_and_answers_on_both_loopbacks() {
    let (svc, hp) = (free_port(), free_port());
    let health = format!("[::]:{hp}");
    // the wildcard is only the health endpoint's own bind; the test connects on loopback only
    let _p = Proxy::start(
        &[
            "-L",
            &format!("tcp://127.0.0.1:{svc}/127.0.0.1:9"),
            "--health",
            &health,
        ],
        &[svc, hp],
    );
    assert_eq!(http("127.0.0.1", hp, "GET", "/ready").0, "200");
    assert_eq!(http("[::1]", hp, "GET", "/ready").0, "200");
    assert_eq!(http("[::1]", hp, "GET", "/live").0, "200");
}

#[test]
fn readiness_and_post_up_cover_every_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hooks.log");
    let (a, b, hp) = (free_port(), free_port(), free_port());
    let ded = dir.path().join("web.dedicated");
    std::fs::write(
        &ded,
        format!(
            "services:\n- name: ded\n  addr: 127.0.0.1:{b}\n  handler: {{type: tcp}}\n  forwarder: {{nodes: [{{name: n, addr: '127.0.0.1:9'}}]}}\n  metadata:\n    postUp: [\"sh -c 'echo ded >> {}'\"]\n",
            out.display()
        ),
    )
    .unwrap();
    let main = dir.path().join("main.yaml");
    std::fs::write(
        &main,
        format!(
            "services:\n- name: shared\n  addr: 127.0.0.1:{a}\n  handler: {{type: http}}\n  metadata:\n    postUp: [\"sh -c 'echo shared >> {}'\", \"false\"]\n",
            out.display()
        ),
    )
    .unwrap();
    let health = format!("127.0.0.1:{hp}");
    let (m, d) = (main.to_str().unwrap(), ded.to_str().unwrap());
    let p = Proxy::start(
        &[
            "-C",
            m,
            "--health",
            &health,
            "--external-hooks",
            "--",
            "-C",
            d,
            "--external-hooks",
        ],
        &[a, b, hp],
    );
    // both groups listen; not ready before postUp ran
    assert_eq!(wait_http(hp, "/listening", "200").0, "200", "{}", p.logs());
    let (code, body) = http("127.0.0.1", hp, "GET", "/ready");
    assert_eq!(code, "503", "{body}");
    assert!(
        body.contains("group 0") && body.contains("group 1"),
        "{body}"
    );
    // the lifecycle step runs postUp of every group and reports to every group; a failing
    // command is logged and shown, never a failed step
    let st = Command::new(bin())
        .args(["hook", "post-up", "-C", m, "-C", d, "--health", &health])
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let (code, body) = http("127.0.0.1", hp, "GET", "/ready");
    assert_eq!(code, "200", "{body}");
    assert!(
        body.contains("group 0: ready\n") && body.contains("group 1: ready\n"),
        "{body}"
    );
    assert!(body.contains("postUp: 1 commands failed"), "{body}");
    let mut ran: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    ran.sort();
    assert_eq!(ran, ["ded", "shared"]);
}

#[test]
fn a_dedicated_group_that_fails_closed_makes_the_pod_unready() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, hp) = (free_port(), free_port(), free_port());
    let ded = dir.path().join("d.dedicated");
    std::fs::write(
        &ded,
        format!("services:\n- name: ded\n  addr: 127.0.0.1:{b}\n  metadata: {{failClosed: 'GostChain \"x\" not found'}}\n"),
    )
    .unwrap();
    let health = format!("127.0.0.1:{hp}");
    let p = Proxy::start(
        &[
            "-L",
            &format!("tcp://127.0.0.1:{a}/127.0.0.1:9"),
            "--health",
            &health,
            "--",
            "-C",
            ded.to_str().unwrap(),
        ],
        &[a, b, hp],
    );
    // the dedicated group needs a moment to bind; its failed-closed service then shows
    let deadline = Instant::now() + Duration::from_secs(20);
    let (code, body) = loop {
        let r = http("127.0.0.1", hp, "GET", "/ready");
        if r.1.contains("service ded") || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, "503", "{body}\n{}", p.logs());
    assert!(
        body.contains("group 1: service ded: GostChain \"x\" not found"),
        "{body}"
    );
}

#[test]
fn hook_failures_follow_the_phase() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "services:\n- name: s\n  addr: 127.0.0.1:1\n  metadata:\n    preUp: ['false']\n    postUp: ['false']\n    preDown: ['false', '/nonexistent/hook-cmd']\n    postDown: ['false']\n",
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let code = |phase: &str| {
        let o = Command::new(bin())
            .args(["hook", phase, "-C", c])
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    // pre-up fails the pod start (the init container exits 1), like a failed bind
    assert_eq!(code("pre-up").0, Some(1));
    // post-up and pre-down never fail the step: the kubelet would kill the sidecar
    assert_eq!(code("post-up").0, Some(0));
    let (rc, err) = code("pre-down");
    assert_eq!(rc, Some(0));
    assert!(
        err.contains("/nonexistent/hook-cmd"),
        "a missing command is named: {err}"
    );
    assert_eq!(code("post-down").0, Some(1));
}

#[test]
fn pre_down_stops_inbound_services_and_egress_keeps_serving() {
    let Some(ns) = Netns::new() else {
        eprintln!("SKIPPED pre_down_stops_inbound_services_and_egress_keeps_serving: cannot create a network namespace (needs root)");
        return;
    };
    let (inb, egr, hp) = (free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(dir.path().join("p.log")).unwrap();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(bin())
        .args([
            "-L",
            &format!("tcp://10.123.0.1:{inb}/127.0.0.1:9"),
            "-L",
            &format!("http://127.0.0.1:{egr}"),
            "--health",
            &format!("127.0.0.1:{hp}"),
        ])
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(connects(&ns.0, "10.123.0.1", inb) && connects(&ns.0, "127.0.0.1", egr)) {
        assert!(Instant::now() < deadline, "services did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // what the preStop step does after the preDown commands
    let cfg = r#"{"services":[{"name":"x","addr":"127.0.0.1:1"}]}"#;
    let o = in_ns(
        &ns.0,
        &[
            bin().to_str().unwrap(),
            "hook",
            "pre-down",
            "-C",
            cfg,
            "--health",
            &format!("127.0.0.1:{hp}"),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        !connects(&ns.0, "10.123.0.1", inb),
        "the inbound service still accepts after preDown"
    );
    assert!(
        connects(&ns.0, "127.0.0.1", egr),
        "egress must keep serving until SIGTERM"
    );
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
}

#[test]
fn await_runs_the_command_then_shuts_the_sidecar_down() {
    let (svc, hp) = (free_port(), free_port());
    let health = format!("127.0.0.1:{hp}");
    let mut p = Proxy::start(
        &[
            "-L",
            &format!("tcp://127.0.0.1:{svc}/127.0.0.1:9"),
            "--health",
            &health,
        ],
        &[svc, hp],
    );
    let o = Command::new(bin())
        .args([
            "await",
            "--health",
            &health,
            "--shutdown",
            "--",
            "sh",
            "-c",
            "echo job-ran; exit 3",
        ])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "await exits with the command's code"
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "job-ran\n");
    // the sidecar stops by itself (a Job's pod completes)
    let st = p.wait_exit(20);
    assert!(st.success(), "{st}: {}", p.logs());
}

#[test]
fn state_changing_health_calls_are_refused_from_outside_the_pod() {
    let Some(ns) = Netns::new() else {
        eprintln!(
            "SKIPPED state_changing_health_calls_are_refused_from_outside_the_pod: needs root"
        );
        return;
    };
    let (svc, hp) = (free_port(), free_port());
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(bin())
        .args([
            "-L",
            &format!("tcp://127.0.0.1:{svc}/127.0.0.1:9"),
            "--health",
            &format!("[::]:{hp}"),
        ])
        .spawn()
        .unwrap();
    let curl = |host: &str, method: &str, path: &str| {
        let o = in_ns(
            &ns.0,
            &[
                "curl",
                "-s",
                "--max-time",
                "5",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                method,
                &format!("http://{host}:{hp}{path}"),
            ],
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while curl("10.123.0.1", "GET", "/live") != "200" {
        assert!(Instant::now() < deadline, "health endpoint did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // the pod network (here the namespace's 10.123.0.1) may probe, not change state
    assert_eq!(curl("10.123.0.1", "GET", "/ready"), "200");
    for path in ["/post-up-done", "/drain-inbound", "/shutdown"] {
        assert_eq!(
            curl("10.123.0.1", "POST", path),
            "403",
            "{path} from the pod network"
        );
    }
    // loopback (the pod's own containers) may
    assert_eq!(curl("127.0.0.1", "POST", "/post-up-done"), "200");
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_gets_directly_and_through_a_proxy_with_curl_s_exit_codes() {
    let origin = origin().await;
    let p = free_port();
    let _proxy = tokio::task::spawn_blocking(move || {
        Proxy::start(&["-L", &format!("http://127.0.0.1:{p}")], &[p])
    })
    .await
    .unwrap();
    let run = |args: Vec<String>| {
        let o = Command::new(bin())
            .arg("fetch")
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).to_string(),
        )
    };
    let url = format!("http://{origin}/");
    let (code, body) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || run(vec![url])
    })
    .await
    .unwrap();
    assert_eq!((code, body.as_str()), (Some(0), ORIGIN_BODY));
    let (code, body) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || run(vec!["-x".into(), format!("http://127.0.0.1:{p}"), url])
    })
    .await
    .unwrap();
    assert_eq!((code, body.as_str()), (Some(0), ORIGIN_BODY));
    // nothing listens: curl's 7; a bad URL: 2
    let dead = free_port();
    let (code, _) =
        tokio::task::spawn_blocking(move || run(vec![format!("http://127.0.0.1:{dead}/")]))
            .await
            .unwrap();
    assert_eq!(code, Some(7));
    let (code, _) = tokio::task::spawn_blocking(move || run(vec!["ftp://x/".into()]))
        .await
        .unwrap();
    assert_eq!(code, Some(2));
}
