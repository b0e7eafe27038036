//! Web API: the committed OpenAPI document matches the routes; CRUD through a running
//! `gost-proxy` with real HTTP (curl) changes what the proxy serves; GOST's status codes and
//! envelope for bad bodies and unknown names.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::sync::Arc;

use gost_engine::api::{self, ApiContext, ApiSettings};
use gost_engine::{Engine, EngineOpts};
use tower::ServiceExt;

#[test]
fn openapi_document_is_fresh() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("api/openapi.yaml");
    let want = api::openapi_yaml();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap();
    assert!(have == want, "proxy/engine/api/openapi.yaml is stale: run UPDATE_OPENAPI=1 cargo test -p gost-engine --test api");
    let doc: serde_json::Value = serde_saphyr::from_str(&have).unwrap();
    assert_eq!(doc["paths"].as_object().unwrap().len(), api::routes().len());
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let engine = Engine::new(EngineOpts::default());
    let ctx = Arc::new(ApiContext {
        engine: Arc::downgrade(&engine),
        reload: Arc::new(|| Box::pin(async { Err("no sources".to_string()) })),
        save_path: None,
        write: Arc::new(tokio::sync::Mutex::new(())),
    });
    let app = api::router(
        ctx,
        ApiSettings {
            prefix: "/api".into(),
            ..Default::default()
        },
    );
    for (path, methods) in api::routes() {
        for m in methods {
            let p = format!("/api{}", path.replace("{name}", "x"));
            let req = axum::http::Request::builder()
                .method(m.to_uppercase().as_str())
                .uri(&p)
                .body(axum::body::Body::from("{}"))
                .unwrap();
            let resp = app.clone().oneshot(req).await.unwrap();
            let code = resp.status().as_u16();
            assert!(code != 404 && code != 405, "{m} {p} -> {code}");
        }
    }
    let req = axum::http::Request::builder()
        .uri("/api/config/ingresses")
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(
        app.clone().oneshot(req).await.unwrap().status().as_u16(),
        200,
        "kinds GOST serves and gost-proxy does not implement list as empty"
    );
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/api/config/ingresses")
        .body(axum::body::Body::from(r#"{"name":"l"}"#))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status().as_u16(), 400, "writes to them are refused");
    let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["code"], 40001);
    assert!(v["msg"].as_str().unwrap().contains("ingresses"), "{v}");
    let req = axum::http::Request::builder()
        .uri("/api/config/bogus")
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(
        app.oneshot(req).await.unwrap().status().as_u16(),
        404,
        "kinds GOST does not have are not routed"
    );
}

fn call(method: &str, url: &str, body: Option<&str>) -> (String, String) {
    let mut args = vec![
        "-s",
        "--max-time",
        "10",
        "-u",
        "admin:pw",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ];
    if let Some(b) = body {
        args.extend(["-H", "Content-Type: application/json", "-d", b]);
    }
    args.push(url);
    let out = std::process::Command::new("curl")
        .args(&args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (b, code) = text.rsplit_once('\n').unwrap();
    (code.to_string(), b.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn crud_changes_what_the_proxy_serves() {
    let o = origin().await;
    let (pa, ps, pc) = (free_port(), free_port(), free_port());
    let api_arg = format!("admin:pw@127.0.0.1:{pa}?pathPrefix=/api");
    let l = format!("http://127.0.0.1:{pc}");
    let _p =
        tokio::task::spawn_blocking(move || Proxy::start(&["-api", &api_arg, "-L", &l], &[pa, pc]))
            .await
            .unwrap();
    let base = format!("http://127.0.0.1:{pa}/api");
    tokio::task::spawn_blocking(move || {
        let url = format!("http://{o}/");
        // 401 without credentials, GOST's body.
        let out = std::process::Command::new("curl").args(["-s", &format!("{base}/config")]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), r#"{"code":401,"msg":"Unauthorized"}"#);
        // Create a SOCKS5 service and use it.
        let svc = format!(r#"{{"name":"s5","addr":"127.0.0.1:{ps}","handler":{{"type":"socks5","auth":{{"username":"u","password":"p"}}}}}}"#);
        assert_eq!(call("POST", &format!("{base}/config/services"), Some(&svc)), ("200".into(), r#"{"msg":"OK"}"#.into()));
        assert_eq!(curl(&["--socks5", &format!("u:p@127.0.0.1:{ps}"), &url]), (0, ORIGIN_BODY.to_string()));
        // Duplicate, missing name, unknown handler.
        assert_eq!(call("POST", &format!("{base}/config/services"), Some(&svc)), ("400".into(), r#"{"code":40002,"msg":"service s5 already exists"}"#.into()));
        assert_eq!(call("POST", &format!("{base}/config/services"), Some(r#"{"addr":":1"}"#)), ("400".into(), r#"{"code":40001,"msg":"service name is required"}"#.into()));
        assert_eq!(call("POST", &format!("{base}/config/services"), Some("not json")).0, "400");
        let (code, body) = call("POST", &format!("{base}/config/services"), Some(r#"{"name":"x","addr":"127.0.0.1:1","handler":{"type":"nope"}}"#));
        assert_eq!(code, "500");
        assert!(body.starts_with(r#"{"code":40003,"msg":"create service x failed: "#) && body.contains("nope"), "{body}");
        // Unknown names: GET 200 {"data":null} (as GOST v3.2.6), PUT/DELETE 400 40004.
        assert_eq!(call("GET", &format!("{base}/config/services/ghost"), None), ("200".into(), r#"{"data":null}"#.into()));
        assert_eq!(call("PUT", &format!("{base}/config/services/ghost"), Some("{}")), ("400".into(), r#"{"code":40004,"msg":"service ghost not found"}"#.into()));
        assert_eq!(call("DELETE", &format!("{base}/config/chains/ghost"), None), ("400".into(), r#"{"code":40004,"msg":"chain ghost not found"}"#.into()));
        // Update: the new credentials apply, the old ones stop working.
        let svc2 = format!(r#"{{"addr":"127.0.0.1:{ps}","handler":{{"type":"socks5","auth":{{"username":"u2","password":"p2"}}}}}}"#);
        assert_eq!(call("PUT", &format!("{base}/config/services/s5"), Some(&svc2)).0, "200");
        assert_eq!(curl(&["--socks5", &format!("u2:p2@127.0.0.1:{ps}"), &url]), (0, ORIGIN_BODY.to_string()));
        assert_ne!(curl(&["--socks5", &format!("u:p@127.0.0.1:{ps}"), &url]).0, 0);
        // GET one shows the object with status.
        let (code, one) = call("GET", &format!("{base}/config/services/s5"), None);
        assert_eq!(code, "200");
        let v: serde_json::Value = serde_json::from_str(&one).unwrap();
        assert_eq!(v["data"]["handler"]["auth"]["username"], "u2");
        assert_eq!(v["data"]["status"]["state"], "ready");
        // A chain used by a running service: create, point the service at it, then break it.
        let chain = r#"{"name":"c1","hops":[{"name":"h0","nodes":[{"name":"n0","addr":"127.0.0.1:9","connector":{"type":"socks5"}}]}]}"#;
        assert_eq!(call("POST", &format!("{base}/config/chains"), Some(chain)).0, "200");
        let svc3 = format!(r#"{{"addr":"127.0.0.1:{ps}","handler":{{"type":"socks5","chain":"c1"}}}}"#);
        assert_eq!(call("PUT", &format!("{base}/config/services/s5"), Some(&svc3)).0, "200");
        assert_ne!(curl(&["--socks5", &format!("127.0.0.1:{ps}"), &url]).0, 0, "chain node 127.0.0.1:9 is dead: request fails");
        let good = format!(r#"{{"hops":[{{"name":"h0","nodes":[{{"name":"n0","addr":"127.0.0.1:{pc}","connector":{{"type":"http"}}}}]}}]}}"#);
        assert_eq!(call("PUT", &format!("{base}/config/chains/c1"), Some(&good)).0, "200");
        assert_eq!(curl(&["--socks5", &format!("127.0.0.1:{ps}"), &url]), (0, ORIGIN_BODY.to_string()), "chain update applies to new connections");
        // Delete: the port closes.
        assert_eq!(call("DELETE", &format!("{base}/config/services/s5"), None).0, "200");
        assert!(std::net::TcpStream::connect(("127.0.0.1", ps)).is_err(), "deleted service still listening");
        let (code, list) = call("GET", &format!("{base}/config/services"), None);
        assert_eq!(code, "200");
        let v: serde_json::Value = serde_json::from_str(&list).unwrap();
        assert_eq!(v["data"]["count"], 1);
        // Durations: strings and nanoseconds both accepted.
        let hop = r#"{"name":"hx","selector":{"strategy":"fifo","maxFails":2,"failTimeout":"30s"},"nodes":[{"name":"a","addr":"127.0.0.1:1"}]}"#;
        assert_eq!(call("POST", &format!("{base}/config/hops"), Some(hop)).0, "200");
        let (_, h) = call("GET", &format!("{base}/config/hops/hx"), None);
        assert!(h.contains("30000000000"), "{h}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn api_handler_service_and_save_to_the_c_file() {
    let (pa, ph) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gost.yaml");
    std::fs::write(
        &file,
        format!("services:\n- name: web\n  addr: 127.0.0.1:{ph}\n  handler: {{type: http}}\n"),
    )
    .unwrap();
    let l = format!("api://127.0.0.1:{pa}?pathPrefix=/x");
    let f = file.display().to_string();
    let _p = tokio::task::spawn_blocking(move || {
        Proxy::start(&["-C", &f, "-L", &l, "--no-watch"], &[pa, ph])
    })
    .await
    .unwrap();
    let base = format!("http://127.0.0.1:{pa}/x");
    let file2 = file.clone();
    tokio::task::spawn_blocking(move || {
        let (code, body) = call("GET", &format!("{base}/config/services"), None);
        assert_eq!(code, "200");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["data"]["count"], 2, "{body}");
        let hosts = r#"{"name":"h1","mappings":[{"ip":"127.0.0.1","hostname":"a.test"}]}"#;
        assert_eq!(
            call("POST", &format!("{base}/config/hosts"), Some(hosts)).0,
            "200"
        );
        assert_eq!(
            call("POST", &format!("{base}/config"), None),
            ("200".into(), r#"{"msg":"OK"}"#.into())
        );
        let saved = std::fs::read_to_string(&file2).unwrap();
        let cfg = gost_config::Config::from_yaml(&saved).unwrap();
        assert_eq!(cfg.hosts[0].name, "h1");
        assert_eq!(cfg.services.len(), 2, "{saved}");
        let (code, y) = call("GET", &format!("{base}/config?format=yaml"), None);
        assert_eq!(code, "200");
        assert!(y.contains("name: h1"), "{y}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_named_forwarder_hop_change_applies_to_the_next_connection() {
    let o = origin().await;
    let (pa, pf, dead) = (free_port(), free_port(), free_port());
    let cfg = format!(
        r#"{{"services":[{{"name":"fw","addr":"127.0.0.1:{pf}","handler":{{"type":"tcp"}},"forwarder":{{"hop":"targets"}}}}],
"hops":[{{"name":"targets","nodes":[{{"name":"t","addr":"127.0.0.1:{dead}"}}]}}]}}"#
    );
    let api_arg = format!("admin:pw@127.0.0.1:{pa}");
    let _p = tokio::task::spawn_blocking(move || {
        Proxy::start(&["-C", &cfg, "-api", &api_arg], &[pa, pf])
    })
    .await
    .unwrap();
    tokio::task::spawn_blocking(move || {
        let url = format!("http://127.0.0.1:{pf}/");
        assert_ne!(curl(&[&url]).0, 0, "the target is dead at first");
        let hop = format!(r#"{{"nodes":[{{"name":"t","addr":"{o}"}}]}}"#);
        assert_eq!(
            call(
                "PUT",
                &format!("http://127.0.0.1:{pa}/config/hops/targets"),
                Some(&hop)
            )
            .0,
            "200"
        );
        assert_eq!(
            curl(&[&url]),
            (0, ORIGIN_BODY.to_string()),
            "the new hop applies without restarting the service"
        );
    })
    .await
    .unwrap();
}
