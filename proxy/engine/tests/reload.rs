//! Hot reload: while a load client keeps opening connections to service A and a long transfer
//! runs through it, service B is changed by rewriting the config file 5 times (plus one invalid
//! rewrite). A never fails, the transfer completes intact, B serves its new settings, and the
//! invalid version is rejected while the old one keeps serving. The same through a
//! Kubernetes-Secret-style directory whose `..data` symlink is swapped atomically.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn config(pa: u16, pb: u16, origin: std::net::SocketAddr, user: &str) -> String {
    format!(
        "services:\n- name: a\n  addr: 127.0.0.1:{pa}\n  handler: {{type: tcp}}\n  forwarder: {{nodes: [{{name: o, addr: \"{origin}\"}}]}}\n\
- name: b\n  addr: 127.0.0.1:{pb}\n  handler: {{type: http, auth: {{username: {user}, password: pw}}}}\n"
    )
}

fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Waits (≤15 s) until `user` is accepted by B.
fn wait_user(pb: u16, origin: std::net::SocketAddr, user: &str) {
    for _ in 0..300 {
        if curl_status(&[
            "-x",
            &format!("http://127.0.0.1:{pb}"),
            "--proxy-user",
            &format!("{user}:pw"),
            &format!("http://{origin}/"),
        ]) == "200"
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("B never accepted {user}");
}

async fn one_request(pa: u16) -> bool {
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", pa)).await else {
        return false;
    };
    if s.write_all(b"GET / HTTP/1.1\r\nHost: o\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = Vec::new();
    let mut tmp = [0u8; 1024];
    while !buf.ends_with(ORIGIN_BODY.as_bytes()) {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut tmp)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&tmp[..n]),
            _ => return false,
        }
    }
    true
}

async fn reload_under_load(use_dir: bool) {
    let o = origin().await;
    let (pa, pb) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let (source, cfg_path) = if use_dir {
        // Kubernetes Secret volume layout: config.yaml -> ..data/config.yaml, ..data -> ..v0
        let v0 = dir.path().join("..v0");
        std::fs::create_dir(&v0).unwrap();
        std::fs::write(v0.join("config.yaml"), config(pa, pb, o, "user0")).unwrap();
        std::os::unix::fs::symlink("..v0", dir.path().join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/config.yaml", dir.path().join("config.yaml")).unwrap();
        (dir.path().to_path_buf(), dir.path().join("config.yaml"))
    } else {
        let p = dir.path().join("gost.yaml");
        std::fs::write(&p, config(pa, pb, o, "user0")).unwrap();
        (p.clone(), p)
    };
    let src = source.display().to_string();
    let proxy = tokio::task::spawn_blocking(move || Proxy::start(&["-C", &src], &[pa, pb]))
        .await
        .unwrap();

    // Load on A.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, ok, failed) = (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failed));
        tokio::spawn(async move {
            for _ in 0..100_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                // A must serve every request; B (being changed) must never refuse a connection.
                let b_accepts = tokio::net::TcpStream::connect(("127.0.0.1", pb))
                    .await
                    .is_ok();
                if one_request(pa).await && b_accepts {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    // A long transfer through A (1 MiB over ~2.4 s).
    let long = tokio::spawn(async move {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", pa))
            .await
            .unwrap();
        s.write_all(b"GET /slow HTTP/1.1\r\nHost: o\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        let want = 16 * 64 * 1024;
        loop {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                if got.len() >= end + 4 + want {
                    return got[end + 4..].iter().all(|b| *b == b'x');
                }
            }
            match tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => return false,
            }
        }
    });

    let write = |text: String, version: usize| {
        if use_dir {
            let v = dir.path().join(format!("..v{version}"));
            std::fs::create_dir(&v).unwrap();
            std::fs::write(v.join("config.yaml"), text).unwrap();
            let tmp = dir.path().join("..data_tmp");
            std::os::unix::fs::symlink(format!("..v{version}"), &tmp).unwrap();
            std::fs::rename(&tmp, dir.path().join("..data")).unwrap();
        } else {
            write_atomic(&cfg_path, &text);
        }
    };
    for i in 1..=5 {
        let user = format!("user{i}");
        write(config(pa, pb, o, &user), i);
        let u = user.clone();
        tokio::task::spawn_blocking(move || wait_user(pb, o, &u))
            .await
            .unwrap();
        if i == 3 {
            // An invalid rewrite: rejected, version 3 keeps serving.
            write(
                "services:\n- name: a\n  addr: 127.0.0.1:1\n  handler: {type: nosuch}\n".into(),
                100,
            );
            let logs_have_rejection = {
                let mut seen = false;
                for _ in 0..300 {
                    if proxy.logs().contains("config change rejected") {
                        seen = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                seen
            };
            assert!(logs_have_rejection, "{}", proxy.logs());
            let u = user.clone();
            tokio::task::spawn_blocking(move || wait_user(pb, o, &u))
                .await
                .unwrap();
        }
    }
    // B: the last settings apply, the previous ones do not.
    let old = tokio::task::spawn_blocking(move || {
        curl_status(&[
            "-x",
            &format!("http://127.0.0.1:{pb}"),
            "--proxy-user",
            "user4:pw",
            &format!("http://{o}/"),
        ])
    })
    .await
    .unwrap();
    assert_eq!(old, "407");
    assert!(
        long.await.unwrap(),
        "the long transfer through A was cut or corrupted"
    );
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(ok > 10, "load client made {ok} requests");
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests to A failed during reloads: {}",
        ok + failed,
        proxy.logs()
    );
    assert!(
        grep(&proxy.logs(), "reloaded after a config change").len() >= 5,
        "{}",
        proxy.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn file_rewrites_under_load() {
    reload_under_load(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_style_directory_swaps_under_load() {
    reload_under_load(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_and_api_reload_use_the_same_path() {
    let o = origin().await;
    let (pa, pb, papi) = (free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("gost.yaml");
    std::fs::write(&p, config(pa, pb, o, "first")).unwrap();
    let (ps, api) = (p.display().to_string(), format!("127.0.0.1:{papi}"));
    let proxy = tokio::task::spawn_blocking(move || {
        Proxy::start(&["-C", &ps, "--no-watch", "-api", &api], &[pa, pb, papi])
    })
    .await
    .unwrap();
    std::fs::write(&p, config(pa, pb, o, "second")).unwrap();
    proxy.signal("HUP");
    tokio::task::spawn_blocking(move || wait_user(pb, o, "second"))
        .await
        .unwrap();
    std::fs::write(&p, config(pa, pb, o, "third")).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-X",
                "POST",
                &format!("http://127.0.0.1:{papi}/config/reload"),
            ])
            .output()
            .unwrap();
        wait_user(pb, o, "third");
        String::from_utf8_lossy(&out.stdout).to_string()
    })
    .await
    .unwrap();
    assert_eq!(out, r#"{"msg":"OK"}"#);
    std::fs::write(&p, "services: [{name: x, addr: \"bad\"}]").unwrap();
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-w",
            " %{http_code}",
            "-X",
            "POST",
            &format!("http://127.0.0.1:{papi}/config/reload"),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.starts_with(r#"{"code":40001,"msg":"#) && text.ends_with(" 400"),
        "{text}"
    );
    tokio::task::spawn_blocking(move || wait_user(pb, o, "third"))
        .await
        .unwrap();
}
