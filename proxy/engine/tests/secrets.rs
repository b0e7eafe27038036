//! Credentials stay secret (issue 10, security posture): with debug logging on, after right
//! and wrong logins, no password is in the log, and no Web API read shows one; a `PUT` that
//! sends the placeholder back keeps the stored password, and a placeholder with nothing stored
//! behind it is refused naming the field. The Web API itself requires its credentials.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

const S5: &str = "s5-Pw-7f3a91";
const HTTP: &str = "http-Pw-4be2c0";
const API: &str = "api-Pw-d81e55";
const WRONG: &str = "wrong-Pw-0c9d17";

fn api(args: &[&str]) -> (i32, String) {
    curl(args)
}

#[test]
fn no_password_reaches_logs_or_api_reads() {
    // the origin's tasks run on this runtime's workers for the whole test
    let rt = tokio::runtime::Runtime::new().unwrap();
    let o = rt.block_on(origin());
    let (p1, p2, pa) = (free_port(), free_port(), free_port());
    let l1 = format!("socks5://alice:{S5}@127.0.0.1:{p1}");
    let l2 = format!("http://bob:{HTTP}@127.0.0.1:{p2}");
    let la = format!("admin:{API}@127.0.0.1:{pa}");
    let proxy = Proxy::start(&["-D", "-L", &l1, "-L", &l2, "-api", &la], &[p1, p2, pa]);
    let url = format!("http://{o}/");
    let good_s5 = format!("alice:{S5}@127.0.0.1:{p1}");
    let bad_s5 = format!("alice:{WRONG}@127.0.0.1:{p1}");
    let good_h = format!("http://bob:{HTTP}@127.0.0.1:{p2}");
    let bad_h = format!("http://bob:{WRONG}@127.0.0.1:{p2}");
    assert!(curl(&["--socks5", &good_s5, &url]).1.contains(ORIGIN_BODY));
    assert!(curl(&["-x", &good_h, &url]).1.contains(ORIGIN_BODY));
    assert_ne!(curl(&["--socks5", &bad_s5, &url]).0, 0);
    assert_eq!(curl_status(&["-x", &bad_h, &url]), "407");

    let base = format!("http://127.0.0.1:{pa}");
    let cred = format!("admin:{API}");
    assert_eq!(
        curl_status(&[&format!("{base}/config")]),
        "401",
        "the API needs its credentials"
    );
    let reads = [
        "/config",
        "/config?format=yaml",
        "/config/services",
        "/config/services/service-0",
        "/config/services/service-1",
    ];
    for path in reads {
        let (code, body) = api(&["-u", &cred, &format!("{base}{path}")]);
        assert_eq!(code, 0, "{path}");
        assert!(
            body.contains("alice") || body.contains("bob"),
            "{path}: {body}"
        );
        for secret in [S5, HTTP, API] {
            assert!(
                !body.contains(secret),
                "GET {path} shows a password: {body}"
            );
        }
    }

    // a UI edits what it read and sends it back: the stored password stays
    let (_, one) = api(&["-u", &cred, &format!("{base}/config/services/service-0")]);
    let v: serde_json::Value = serde_json::from_str(&one).unwrap();
    let mut svc = v["data"].clone();
    assert_eq!(svc["handler"]["auth"]["password"], "******");
    svc["metadata"] = serde_json::json!({"readTimeout": "5s"});
    let body = svc.to_string();
    let put = curl_status(&[
        "-u",
        &cred,
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/json",
        "--data",
        &body,
        &format!("{base}/config/services/service-0"),
    ]);
    assert_eq!(put, "200");
    let mut ok = false;
    for _ in 0..50 {
        if curl(&["--socks5", &good_s5, &url]).1.contains(ORIGIN_BODY) {
            ok = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        ok,
        "the stored password no longer works after the PUT: {}",
        proxy.logs()
    );
    let placeholder = format!("alice:******@127.0.0.1:{p1}");
    assert_ne!(
        curl(&["--socks5", &placeholder, &url]).0,
        0,
        "the placeholder is not a password"
    );

    // a new object cannot borrow a password it does not have
    let fresh = serde_json::json!({"name": "fresh", "addr": "127.0.0.1:0",
        "handler": {"type": "socks5", "auth": {"username": "eve", "password": "******"}},
        "listener": {"type": "tcp"}})
    .to_string();
    let (_, answer) = api(&[
        "-u",
        &cred,
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "--data",
        &fresh,
        &format!("{base}/config/services"),
    ]);
    assert!(
        answer.contains("services[fresh].handler.auth.password"),
        "POST with the placeholder: {answer}"
    );

    let logs = proxy.logs();
    assert!(
        logs.contains("alice") || logs.contains("auth"),
        "debug log is empty: {logs}"
    );
    for secret in [S5, HTTP, API, WRONG] {
        assert!(
            !logs.contains(secret),
            "the log holds a password ({secret}):\n{logs}"
        );
    }
}
