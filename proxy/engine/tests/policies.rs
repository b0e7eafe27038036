//! Bypasses, admissions and authers from config files, end to end with curl.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn bypass_admission_and_file_authers() {
    let o = origin().await;
    let (p1, p2, p3, p4) = (free_port(), free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.txt");
    std::fs::write(&users, "# user password\nalice pw1\ncarol\n").unwrap();
    let cfg = format!(
        r#"services:
- name: bypassed
  addr: 127.0.0.1:{p1}
  bypass: no-loopback-ip
  handler: {{type: http}}
- name: denied
  addr: 127.0.0.1:{p2}
  admission: only-ten
  handler: {{type: http}}
- name: users
  addr: 127.0.0.1:{p3}
  handler: {{type: http, auther: from-file}}
- name: socks-bypassed
  addr: 127.0.0.1:{p4}
  bypass: no-loopback-ip
  handler: {{type: socks5}}
bypasses:
- name: no-loopback-ip
  matchers: ["127.0.0.1"]
admissions:
- name: only-ten
  whitelist: true
  matchers: [10.0.0.0/8]
authers:
- name: from-file
  file: {{path: "{}"}}
"#,
        users.display()
    );
    let f = dir.path().join("gost.yaml");
    std::fs::write(&f, cfg).unwrap();
    let fs = f.display().to_string();
    let _p = tokio::task::spawn_blocking(move || Proxy::start(&["-C", &fs], &[p1, p3, p4]))
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || {
        let ip_url = format!("http://{o}/");
        let name_url = format!("http://localhost:{}/", o.port());
        let x1 = format!("http://127.0.0.1:{p1}");
        assert_eq!(
            curl_status(&["-x", &x1, &ip_url]),
            "403",
            "bypassed target is refused"
        );
        assert_eq!(
            curl_status(&["-x", &x1, &name_url]),
            "200",
            "only the literal address string is matched"
        );
        assert_eq!(
            curl(&["--socks5", &format!("127.0.0.1:{p4}"), &ip_url]).0,
            97,
            "SOCKS5 reply 2 for a bypassed target"
        );
        let denied = curl(&["-x", &format!("http://127.0.0.1:{p2}"), &ip_url]);
        assert_ne!(
            denied.0, 0,
            "a client outside the admission whitelist is dropped"
        );
        assert!(!denied.1.contains(ORIGIN_BODY));
        let x3 = format!("http://127.0.0.1:{p3}");
        assert_eq!(
            curl_status(&["-x", &x3, "--proxy-user", "alice:pw1", &ip_url]),
            "200"
        );
        assert_eq!(
            curl_status(&["-x", &x3, "--proxy-user", "alice:nope", &ip_url]),
            "407"
        );
        assert_eq!(
            curl_status(&["-x", &x3, "--proxy-user", "carol:anything", &ip_url]),
            "200",
            "a user without password accepts any"
        );
        assert_eq!(
            curl_status(&["-x", &x3, "--proxy-user", "mallory:x", &ip_url]),
            "407"
        );
    })
    .await
    .unwrap();
}
