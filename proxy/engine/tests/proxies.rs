//! Real clients (curl) through real `gost-proxy` services on loopback: HTTP (CONNECT and
//! absolute-form, Basic auth), SOCKS4, SOCKS4a, SOCKS5 (with and without remote DNS, auth),
//! the `auto` handler, and TCP port forwarding.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn curl_through_every_proxy_protocol() {
    let o = origin().await;
    let (ph, pa, ps, pf, p4) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let lh = format!("http://127.0.0.1:{ph}");
    let la = format!("http://alice:s3cret@127.0.0.1:{pa}");
    let ls = format!("socks5://bob:pw@127.0.0.1:{ps}");
    let lf = format!("tcp://127.0.0.1:{pf}/{o}");
    let l4 = format!("127.0.0.1:{p4}");
    let _p = tokio::task::spawn_blocking(move || {
        Proxy::start(
            &["-L", &lh, "-L", &la, "-L", &ls, "-L", &lf, "-L", &l4],
            &[ph, pa, ps, pf, p4],
        )
    })
    .await
    .unwrap();
    let url = format!("http://{o}/");
    let host_url = format!("http://localhost:{}/", o.port());
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["-x".into(), format!("http://127.0.0.1:{ph}"), url.clone()],
            "http absolute-form",
        ),
        (
            vec![
                "-p".into(),
                "-x".into(),
                format!("http://127.0.0.1:{ph}"),
                url.clone(),
            ],
            "http CONNECT",
        ),
        (
            vec![
                "-x".into(),
                format!("http://127.0.0.1:{pa}"),
                "--proxy-user".into(),
                "alice:s3cret".into(),
                url.clone(),
            ],
            "http basic auth",
        ),
        (
            vec![
                "-p".into(),
                "-x".into(),
                format!("http://127.0.0.1:{pa}"),
                "--proxy-user".into(),
                "alice:s3cret".into(),
                url.clone(),
            ],
            "http CONNECT auth",
        ),
        (
            vec![
                "--socks5".into(),
                format!("bob:pw@127.0.0.1:{ps}"),
                url.clone(),
            ],
            "socks5",
        ),
        (
            vec![
                "--socks5-hostname".into(),
                format!("bob:pw@127.0.0.1:{ps}"),
                host_url.clone(),
            ],
            "socks5 remote dns",
        ),
        (vec![format!("http://127.0.0.1:{pf}/")], "tcp forward"),
        (
            vec!["--socks4".into(), format!("127.0.0.1:{p4}"), url.clone()],
            "auto socks4",
        ),
        (
            vec![
                "--socks4a".into(),
                format!("127.0.0.1:{p4}"),
                host_url.clone(),
            ],
            "auto socks4a",
        ),
        (
            vec![
                "--socks5-hostname".into(),
                format!("127.0.0.1:{p4}"),
                host_url.clone(),
            ],
            "auto socks5",
        ),
        (
            vec!["-x".into(), format!("http://127.0.0.1:{p4}"), url.clone()],
            "auto http",
        ),
    ];
    for (args, what) in cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, body) = tokio::task::spawn_blocking({
            let a: Vec<String> = a.iter().map(|s| s.to_string()).collect();
            move || curl(&a.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap();
        assert_eq!(
            (code, body.as_str()),
            (0, ORIGIN_BODY),
            "{what}: curl {a:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_are_refused_with_gost_codes() {
    let o = origin().await;
    let (pa, ps) = (free_port(), free_port());
    let la = format!("http://alice:s3cret@127.0.0.1:{pa}");
    let ls = format!("socks5://bob:pw@127.0.0.1:{ps}");
    let _p = tokio::task::spawn_blocking(move || Proxy::start(&["-L", &la, "-L", &ls], &[pa, ps]))
        .await
        .unwrap();
    let url = format!("http://{o}/");
    let proxy = format!("http://127.0.0.1:{pa}");
    let s = tokio::task::spawn_blocking({
        let (proxy, url) = (proxy.clone(), url.clone());
        move || {
            (
                curl_status(&["-x", &proxy, &url]),
                curl_status(&["-x", &proxy, "--proxy-user", "alice:wrong", &url]),
                curl_connect_status(&["-x", &proxy, &url]),
                curl(&["--socks5", &format!("bob:bad@127.0.0.1:{ps}"), &url]).0,
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(s.0, "407", "no credentials");
    assert_eq!(s.1, "407", "wrong password");
    assert_eq!(s.2, "407", "CONNECT without credentials");
    assert_ne!(s.3, 0, "socks5 with a wrong password must fail");
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_target_yields_503_and_socks_failure() {
    // A port nobody listens on (bound then released).
    let dead = free_port();
    let (ph, ps) = (free_port(), free_port());
    let lh = format!("http://127.0.0.1:{ph}");
    let ls = format!("socks5://127.0.0.1:{ps}");
    let _p = tokio::task::spawn_blocking(move || Proxy::start(&["-L", &lh, "-L", &ls], &[ph, ps]))
        .await
        .unwrap();
    let url = format!("http://127.0.0.1:{dead}/");
    let (a, b, c) = tokio::task::spawn_blocking(move || {
        (
            curl_status(&["-x", &format!("http://127.0.0.1:{ph}"), &url]),
            curl_connect_status(&["-x", &format!("http://127.0.0.1:{ph}"), &url]),
            curl(&["--socks5", &format!("127.0.0.1:{ps}"), &url]),
        )
    })
    .await
    .unwrap();
    assert_eq!(a, "503");
    assert_eq!(b, "503");
    assert_eq!(c.0, 97, "curl reports a SOCKS connection failure: {}", c.1);
}
