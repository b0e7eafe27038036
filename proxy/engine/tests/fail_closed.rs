//! Services that fail closed (`failClosed` metadata, what the operator renders for a service
//! whose GostChain or Secret is missing): they listen, refuse every connection and datagram
//! with a logged reason, make `/ready` fail with that reason, and a later config that fixes the
//! service brings it up in place. Real `gost-proxy`, curl and loopback sockets only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Status and body of a GET on the health endpoint.
fn health(port: u16, path: &str) -> (String, String) {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            "-w",
            "\n%{http_code}",
            &format!("http://127.0.0.1:{port}{path}"),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (code.to_string(), body.to_string())
}

fn config(
    web_port: u16,
    udp_port: u16,
    ok_port: u16,
    origin: &str,
    echo: &str,
    broken: bool,
) -> String {
    let web = if broken {
        "  metadata:\n    failClosed: 'GostChain \"corp\" not found (spec.services[web].handler.chain)'\n"
            .to_string()
    } else {
        String::new()
    };
    let udp = if broken {
        "  metadata:\n    failClosed: 'Secret \"creds\" not found'\n".to_string()
    } else {
        String::new()
    };
    format!(
        "services:\n\
         - name: web\n  addr: 127.0.0.1:{web_port}\n  handler: {{type: http, chain: corp}}\n  listener: {{type: tcp}}\n{web}\
         - name: dns\n  addr: 127.0.0.1:{udp_port}\n  handler: {{type: udp}}\n  listener: {{type: udp}}\n  forwarder: {{nodes: [{{name: echo, addr: '{echo}'}}]}}\n{udp}\
         - name: ok\n  addr: 127.0.0.1:{ok_port}\n  handler: {{type: http}}\n  listener: {{type: tcp}}\n\
         - name: rev\n  addr: ':{rev}'\n  handler: {{type: rtcp}}\n  listener: {{type: rtcp}}\n  forwarder: {{nodes: [{{name: o, addr: '{origin}'}}]}}\n  metadata: {{failClosed: 'GostChain \"tunnel\" not found'}}\n{chain}",
        rev = free_port(),
        chain = if broken {
            String::new()
        } else {
            "chains:\n- name: corp\n  hops:\n  - name: h\n    nodes:\n    - {name: n, addr: '127.0.0.1:9', connector: {type: http}}\n".to_string()
        },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_references_fail_closed_with_a_reason_until_fixed() {
    let origin = origin().await;
    let echo = udp_echo().await;
    let (web, udp, ok, hp) = (free_port(), free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let cf = dir.path().join("gost.yaml");
    std::fs::write(
        &cf,
        config(web, udp, ok, &origin.to_string(), &echo.to_string(), true),
    )
    .unwrap();
    let hp_addr = format!("127.0.0.1:{hp}");
    let p = Proxy::start(
        &["-C", cf.to_str().unwrap(), "--strict", "--health", &hp_addr],
        &[web, ok, hp],
    );

    // the healthy service beside them works
    let (code, body) = curl(&[
        "-x",
        &format!("http://127.0.0.1:{ok}"),
        &format!("http://{origin}/"),
    ]);
    assert_eq!((code, body.as_str()), (0, ORIGIN_BODY), "{}", p.logs());

    // the broken TCP service accepts and closes at once, without a byte: no request is relayed
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", web))
        .await
        .unwrap();
    s.write_all(format!("GET http://{origin}/ HTTP/1.1\r\nHost: {origin}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("a fail-closed service must close the connection at once")
        .unwrap_or(0);
    assert_eq!(
        n,
        0,
        "fail-closed service answered {:?}",
        String::from_utf8_lossy(&buf)
    );
    let (code, _) = curl(&[
        "-x",
        &format!("http://127.0.0.1:{web}"),
        &format!("http://{origin}/"),
    ]);
    assert_ne!(code, 0, "curl through a fail-closed service succeeded");

    // the broken UDP service drops datagrams
    let u = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    u.send_to(b"ping", ("127.0.0.1", udp)).await.unwrap();
    let mut b = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_millis(800), u.recv_from(&mut b))
            .await
            .is_err(),
        "a fail-closed UDP service relayed a datagram"
    );

    // readiness names every failed service and its reason; listening is fine
    let (code, body) = health(hp, "/ready");
    assert_eq!(code, "503", "{body}");
    assert!(
        body.contains("service web: GostChain \"corp\" not found"),
        "{body}"
    );
    assert!(
        body.contains("service dns: Secret \"creds\" not found"),
        "{body}"
    );
    assert!(
        body.contains("service rev: GostChain \"tunnel\" not found"),
        "{body}"
    );
    assert_eq!(health(hp, "/listening").0, "200");

    // each refusal is logged with the reason
    let deadline = Instant::now() + Duration::from_secs(5);
    while grep(&p.logs(), "service failed closed").len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logs = p.logs();
    let refused = grep(&logs, "connection refused: service failed closed");
    assert!(
        refused
            .iter()
            .any(|l| l.contains("web") && l.contains("GostChain")),
        "{logs}"
    );
    assert!(
        refused
            .iter()
            .any(|l| l.contains("dns") && l.contains("creds")),
        "{logs}"
    );

    // the fixed config (chain present, no failClosed on web/dns) brings them up in place
    std::fs::write(
        &cf,
        config(web, udp, ok, &origin.to_string(), &echo.to_string(), false),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = (String::new(), String::new());
    while Instant::now() < deadline {
        last = health(hp, "/ready");
        if !last.1.contains("service web") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !last.1.contains("service web"),
        "web still fails closed: {last:?}"
    );
    assert!(last.1.contains("service rev"), "{last:?}");
    // web now goes through its chain (whose node refuses): it answers as a proxy does, 502/503
    let code = curl_status(&[
        "-x",
        &format!("http://127.0.0.1:{web}"),
        &format!("http://{origin}/"),
    ]);
    assert!(
        code.starts_with('5') && code != "000",
        "web after the fix answered {code}"
    );
    u.send_to(b"ping", ("127.0.0.1", udp)).await.unwrap();
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), u.recv_from(&mut b))
        .await
        .expect("the fixed UDP service relays")
        .unwrap();
    assert_eq!(&b[..n], b"echo:ping");
}

#[test]
fn an_empty_fail_closed_reason_is_rejected_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cf = dir.path().join("gost.yaml");
    std::fs::write(
        &cf,
        "services:\n- name: web\n  addr: 127.0.0.1:1\n  metadata: {failClosed: ' '}\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["-C", cf.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("services[web].metadata.failClosed"), "{err}");
}
