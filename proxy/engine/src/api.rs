//! GOST-compatible Web API: `/config` CRUD for every object kind the engine supports, reload and
//! save, with GOST's paths, envelope (`{code, msg, data}`) and status codes (engine spec §5),
//! including the quirks tools depend on: an unknown name on GET is `200 {}`, on PUT/DELETE
//! `400` with code 40004. Durations are accepted as nanoseconds or strings and written as
//! nanoseconds. Every write goes through [`Engine::apply`]: validate → diff → apply by name.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use gost_config::{AuthConfig, Config};
use serde_json::{json, Map, Value};

use crate::engine::{ApplyReport, Engine};

/// Re-reads every config source and applies it (the same path as SIGHUP and file changes).
pub type ReloadFn = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<ApplyReport, String>> + Send>> + Send + Sync,
>;

/// What the API needs from the running program.
pub struct ApiContext {
    /// The engine (weak: the API never keeps it alive).
    pub engine: Weak<Engine>,
    /// Reload from the config sources.
    pub reload: ReloadFn,
    /// The file given with `-C`, where `POST /config` saves by default.
    pub save_path: Option<PathBuf>,
    /// Serialises read-modify-apply cycles of API writes with reloads (the reload function
    /// takes it itself).
    pub write: Arc<tokio::sync::Mutex<()>>,
}

/// The Web API context of this process, set once the engine exists; `api` handler services
/// reach it through [`serve_handler`].
pub type Slot = Arc<std::sync::OnceLock<Arc<ApiContext>>>;

/// The `api` handler's way to serve a connection: HTTP/1 with the routes of the context in
/// `slot` (refused while it is empty).
pub fn serve_handler(slot: Slot) -> crate::handler::api::Serve {
    Arc::new(move |stream, settings| {
        let ctx = slot.get().cloned();
        Box::pin(async move {
            let Some(ctx) = ctx else {
                return Err("the Web API is not available in this process".to_string());
            };
            let check = settings.auth.map(|a| {
                Arc::new(move |u: &str, p: &str| a.authenticate(u, p).is_some()) as CredentialCheck
            });
            let app = router(
                ctx,
                ApiSettings {
                    prefix: settings.prefix,
                    check,
                    accesslog: settings.accesslog,
                },
            );
            hyper::server::conn::http1::Builder::new()
                .serve_connection(
                    hyper_util::rt::TokioIo::new(stream),
                    hyper_util::service::TowerToHyperService::new(app),
                )
                .await
                .map_err(|e| e.to_string())
        })
    })
}

/// Checks Basic credentials.
pub type CredentialCheck = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

impl std::fmt::Debug for ApiContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiContext")
            .field("save_path", &self.save_path)
            .finish()
    }
}

/// Per-server settings.
#[derive(Clone, Default)]
pub struct ApiSettings {
    /// Route prefix (`/api`).
    pub prefix: String,
    /// Basic auth; `None` means open.
    pub check: Option<CredentialCheck>,
    /// One info line per request.
    pub accesslog: bool,
}

impl ApiSettings {
    /// Settings of the global `api:` object: `auth` and `auther` are combined (either one
    /// succeeding is enough, as in GOST's code).
    pub fn from_config(c: &gost_config::ApiConfig, engine: Weak<Engine>) -> ApiSettings {
        let inline: Option<AuthConfig> = c.auth.clone().filter(|a| !a.username.is_empty());
        let auther = c.auther.clone().filter(|a| !a.is_empty());
        let check: Option<CredentialCheck> = if inline.is_none() && auther.is_none() {
            None
        } else {
            Some(Arc::new(move |u: &str, p: &str| {
                inline
                    .as_ref()
                    .is_some_and(|a| a.username == u && a.password == p)
                    || auther.as_ref().is_some_and(|name| {
                        engine
                            .upgrade()
                            .and_then(|e| e.store.authers.get(name))
                            .is_some_and(|a| a.authenticate(u, p).is_some())
                    })
            }))
        };
        ApiSettings {
            prefix: c.path_prefix.clone(),
            check,
            accesslog: c.accesslog,
        }
    }
}

/// The committed OpenAPI document (served at `{prefix}/docs/swagger.yaml`).
pub const OPENAPI: &str = include_str!("../api/openapi.yaml");

/// Object kinds: URL segment → (singular name used in messages, config key).
pub const KINDS: &[(&str, &str)] = &[
    ("services", "service"),
    ("chains", "chain"),
    ("hops", "hop"),
    ("authers", "auther"),
    ("admissions", "admission"),
    ("bypasses", "bypass"),
    ("resolvers", "resolver"),
    ("hosts", "hosts"),
];

#[derive(Clone)]
struct St {
    ctx: Arc<ApiContext>,
    settings: Arc<ApiSettings>,
}

fn envelope(status: StatusCode, body: Value) -> Response {
    let mut r = (status, axum::Json(body)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

fn ok() -> Response {
    envelope(StatusCode::OK, json!({"msg": "OK"}))
}

fn err(status: StatusCode, code: u32, msg: impl Into<String>) -> Response {
    envelope(status, json!({"code": code, "msg": msg.into()}))
}

/// Builds the router for one API server.
pub fn router(ctx: Arc<ApiContext>, settings: ApiSettings) -> Router {
    let prefix = settings.prefix.trim_end_matches('/').to_string();
    let st = St {
        ctx,
        settings: Arc::new(settings),
    };
    let config = Router::new()
        .route("/config", get(get_config).post(save_config))
        .route("/config/reload", post(reload))
        .route("/config/{kind}", get(list).post(create))
        .route(
            "/config/{kind}/{name}",
            get(get_one).put(update).delete(delete),
        )
        .layer(axum::middleware::from_fn_with_state(st.clone(), auth))
        .route(
            "/docs/swagger.yaml",
            get(|| async { ([(header::CONTENT_TYPE, "text/yaml")], OPENAPI) }),
        )
        .with_state(st.clone());
    let app = if prefix.is_empty() || prefix == "/" {
        config
    } else {
        Router::new().nest(&prefix, config)
    };
    app.layer(axum::middleware::from_fn_with_state(st, cors_and_log))
}

async fn cors_and_log(State(st): State<St>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let start = tokio::time::Instant::now();
    let mut resp = if method == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
    );
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("*"),
    );
    h.insert(
        "access-control-allow-private-network",
        HeaderValue::from_static("true"),
    );
    if st.settings.accesslog {
        tracing::info!(kind = "api", method = %method, uri = %uri, status = resp.status().as_u16(), duration = ?start.elapsed(), "api request");
    }
    resp
}

async fn auth(State(st): State<St>, req: Request, next: Next) -> Response {
    let Some(check) = &st.settings.check else {
        return next.run(req).await;
    };
    let creds = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .map(|s| match s.split_once(':') {
            Some((u, p)) => (u.to_string(), p.to_string()),
            None => (s, String::new()),
        });
    if creds.is_some_and(|(u, p)| check(&u, &p)) {
        return next.run(req).await;
    }
    let mut r = err(StatusCode::UNAUTHORIZED, 401, "Unauthorized");
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
    r
}

fn engine(st: &St) -> Option<Arc<Engine>> {
    st.ctx.engine.upgrade()
}

fn gone() -> Response {
    err(
        StatusCode::SERVICE_UNAVAILABLE,
        503,
        "engine is shutting down",
    )
}

fn singular(kind: &str) -> Option<&'static str> {
    KINDS.iter().find(|(k, _)| *k == kind).map(|(_, s)| *s)
}

fn not_found() -> Response {
    err(StatusCode::NOT_FOUND, 404, "404 page not found")
}

/// The running config as GOST's JSON (durations in nanoseconds), services with live status.
async fn config_json(e: &Engine) -> Value {
    let cfg = e.config();
    let mut v = gost_config::json_durations(|| serde_json::to_value(&cfg)).unwrap_or(Value::Null);
    let statuses: Map<String, Value> = e
        .services()
        .await
        .into_iter()
        .map(|s| {
            (
                s.name.clone(),
                serde_json::to_value(s.status()).unwrap_or(Value::Null),
            )
        })
        .collect();
    if let Some(list) = v.get_mut("services").and_then(Value::as_array_mut) {
        for s in list {
            let name = s
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if let (Some(obj), Some(st)) = (s.as_object_mut(), statuses.get(&name)) {
                obj.insert("status".into(), st.clone());
            }
        }
    }
    v
}

#[derive(serde::Deserialize, Default)]
struct FormatQuery {
    format: Option<String>,
    path: Option<String>,
}

async fn get_config(State(st): State<St>, Query(q): Query<FormatQuery>) -> Response {
    let Some(e) = engine(&st) else {
        return gone();
    };
    let v = config_json(&e).await;
    if q.format.as_deref() == Some("yaml") {
        let cfg: Result<Config, _> = serde_json::from_value(v);
        return match cfg
            .map_err(|e| e.to_string())
            .and_then(|c| c.to_yaml().map_err(|e| e.to_string()))
        {
            Ok(y) => ([(header::CONTENT_TYPE, "text/x-yaml")], y).into_response(),
            Err(m) => err(StatusCode::INTERNAL_SERVER_ERROR, 500, m),
        };
    }
    envelope(StatusCode::OK, v)
}

async fn save_config(State(st): State<St>, Query(q): Query<FormatQuery>) -> Response {
    let Some(e) = engine(&st) else {
        return gone();
    };
    let cfg = e.config();
    let path = q
        .path
        .map(PathBuf::from)
        .or_else(|| st.ctx.save_path.clone())
        .unwrap_or_else(|| {
            PathBuf::from(if q.format.as_deref() == Some("json") {
                "gost.json"
            } else {
                "gost.yaml"
            })
        });
    let json = match q.format.as_deref() {
        Some(f) => f == "json",
        None => path.extension().is_some_and(|x| x == "json"),
    };
    let text = if json {
        cfg.to_json_pretty().map_err(|e| e.to_string())
    } else {
        cfg.to_yaml().map_err(|e| e.to_string())
    };
    let text = match text {
        Ok(t) => t,
        Err(m) => {
            return err(
                StatusCode::INTERNAL_SERVER_ERROR,
                40005,
                format!("save config: {m}"),
            )
        }
    };
    // Write atomically so a watcher never sees half a file.
    let tmp = path.with_extension("tmp-kubegost");
    if let Err(e) = std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, &path)) {
        return err(
            StatusCode::INTERNAL_SERVER_ERROR,
            40005,
            format!("create file: {e}"),
        );
    }
    ok()
}

async fn reload(State(st): State<St>) -> Response {
    match (st.ctx.reload)().await {
        Ok(_) => ok(),
        Err(m) => err(StatusCode::BAD_REQUEST, 40001, m),
    }
}

async fn list(State(st): State<St>, Path(kind): Path<String>) -> Response {
    if singular(&kind).is_none() {
        return not_found();
    }
    let Some(e) = engine(&st) else {
        return gone();
    };
    let v = config_json(&e).await;
    let list = v.get(&kind).cloned().unwrap_or(Value::Array(vec![]));
    let count = list.as_array().map(Vec::len).unwrap_or(0);
    envelope(
        StatusCode::OK,
        json!({"data": {"count": count, "list": list}}),
    )
}

async fn get_one(State(st): State<St>, Path((kind, name)): Path<(String, String)>) -> Response {
    if singular(&kind).is_none() {
        return not_found();
    }
    let Some(e) = engine(&st) else {
        return gone();
    };
    let v = config_json(&e).await;
    let found = v
        .get(&kind)
        .and_then(Value::as_array)
        .and_then(|l| {
            l.iter()
                .find(|o| o.get("name").and_then(Value::as_str) == Some(name.as_str()))
        })
        .cloned();
    match found {
        Some(o) => envelope(StatusCode::OK, json!({"data": o})),
        None => envelope(StatusCode::OK, json!({})),
    }
}

fn body_object(body: &Bytes) -> Map<String, Value> {
    // GOST decodes leniently: a body that is not a JSON object counts as empty.
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

enum Op {
    Create,
    Update,
    Delete,
}

async fn mutate(
    st: &St,
    kind: &str,
    name: Option<String>,
    body: Option<Bytes>,
    op: Op,
) -> Response {
    let Some(one) = singular(kind) else {
        return not_found();
    };
    let Some(e) = engine(st) else {
        return gone();
    };
    let _w = st.ctx.write.lock().await;
    let cfg = e.config();
    let mut v = match gost_config::json_durations(|| serde_json::to_value(&cfg)) {
        Ok(v) => v,
        Err(x) => return err(StatusCode::INTERNAL_SERVER_ERROR, 500, x.to_string()),
    };
    let mut obj = body.as_ref().map(body_object).unwrap_or_default();
    let name = match &op {
        Op::Create => obj
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_string(),
        _ => name.unwrap_or_default(),
    };
    if matches!(op, Op::Create) && name.is_empty() {
        return err(
            StatusCode::BAD_REQUEST,
            40001,
            format!("{one} name is required"),
        );
    }
    obj.insert("name".into(), Value::String(name.clone()));
    obj.remove("status");
    let Some(root) = v.as_object_mut() else {
        return err(StatusCode::INTERNAL_SERVER_ERROR, 500, "bad config");
    };
    let list = root
        .entry(kind.to_string())
        .or_insert_with(|| Value::Array(vec![]));
    let Some(arr) = list.as_array_mut() else {
        return err(StatusCode::INTERNAL_SERVER_ERROR, 500, "bad config");
    };
    let pos = arr
        .iter()
        .position(|o| o.get("name").and_then(Value::as_str) == Some(name.as_str()));
    let verb = match op {
        Op::Create => {
            if pos.is_some() {
                return err(
                    StatusCode::BAD_REQUEST,
                    40002,
                    format!("{one} {name} already exists"),
                );
            }
            arr.push(Value::Object(obj));
            "create"
        }
        Op::Update => {
            let Some(i) = pos else {
                return err(
                    StatusCode::BAD_REQUEST,
                    40004,
                    format!("{one} {name} not found"),
                );
            };
            arr[i] = Value::Object(obj);
            "update"
        }
        Op::Delete => {
            let Some(i) = pos else {
                return err(
                    StatusCode::BAD_REQUEST,
                    40004,
                    format!("{one} {name} not found"),
                );
            };
            arr.remove(i);
            "delete"
        }
    };
    let new: Config = match serde_json::from_value(v) {
        Ok(c) => c,
        Err(x) => {
            return err(
                StatusCode::INTERNAL_SERVER_ERROR,
                40003,
                format!("{verb} {one} {name} failed: {x}"),
            )
        }
    };
    match e.apply(new).await {
        Ok(r) if r.failed.is_empty() => ok(),
        Ok(r) => err(
            StatusCode::INTERNAL_SERVER_ERROR,
            40003,
            format!(
                "{verb} {one} {name} failed: {}",
                r.failed
                    .iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
        Err(x) => err(
            StatusCode::INTERNAL_SERVER_ERROR,
            40003,
            format!("{verb} {one} {name} failed: {x}"),
        ),
    }
}

async fn create(State(st): State<St>, Path(kind): Path<String>, body: Bytes) -> Response {
    mutate(&st, &kind, None, Some(body), Op::Create).await
}

async fn update(
    State(st): State<St>,
    Path((kind, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    mutate(&st, &kind, Some(name), Some(body), Op::Update).await
}

async fn delete(State(st): State<St>, Path((kind, name)): Path<(String, String)>) -> Response {
    mutate(&st, &kind, Some(name), None, Op::Delete).await
}

/// Serves the API on `addr` (`host:port` or `unix:///path`) until the task is dropped.
pub async fn serve(addr: &str, app: Router) -> std::io::Result<tokio::task::JoinHandle<()>> {
    if let Some(path) = addr.strip_prefix("unix://") {
        let _ = std::fs::remove_file(path);
        let l = tokio::net::UnixListener::bind(path)?;
        return Ok(tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        }));
    }
    let sa = crate::addr::parse_listen_addr(addr).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("invalid API address {addr:?} (expected host:port or unix:///path)"),
        )
    })?;
    let l = tokio::net::TcpListener::bind(sa).await?;
    Ok(tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    }))
}

/// Every documented route: (path relative to the prefix, methods).
pub fn routes() -> Vec<(String, Vec<&'static str>)> {
    let mut v = vec![
        ("/config".to_string(), vec!["get", "post"]),
        ("/config/reload".to_string(), vec!["post"]),
        ("/docs/swagger.yaml".to_string(), vec!["get"]),
    ];
    for (kind, _) in KINDS {
        v.push((format!("/config/{kind}"), vec!["get", "post"]));
        v.push((
            format!("/config/{kind}/{{name}}"),
            vec!["get", "put", "delete"],
        ));
    }
    v
}

/// The OpenAPI document, generated from [`routes`] and [`KINDS`] (committed as
/// `proxy/engine/api/openapi.yaml`; a test fails when the file is stale).
pub fn openapi_yaml() -> String {
    let mut o = String::from(
        "# Generated from proxy/engine/src/api.rs (UPDATE_OPENAPI=1 cargo test -p gost-engine --test api); do not edit.\n\
openapi: 3.0.3\n\
info:\n  title: gost-proxy Web API (GOST v3 compatible)\n  version: v1\n  description: >-\n    Dynamic configuration of gost-proxy. Paths, bodies and status codes follow GOST v3:\n    errors are {code, msg}; an unknown name on GET is 200 {}; on PUT/DELETE it is 400 with code 40004.\n    Durations are integers in nanoseconds (strings such as \"30s\" are accepted too).\n\
security:\n  - basic: []\n\
components:\n  securitySchemes:\n    basic: {type: http, scheme: basic}\n  schemas:\n\
    Response:\n      type: object\n      properties:\n        code: {type: integer}\n        msg: {type: string}\n        data: {}\n\
    Object:\n      type: object\n      description: a GOST config object (service, chain, hop, ...)\n      required: [name]\n      properties:\n        name: {type: string}\n      additionalProperties: true\n\
  responses:\n    OK:\n      description: success\n      content:\n        application/json:\n          schema: {$ref: '#/components/schemas/Response'}\n\
    Error:\n      description: 'error: {code, msg} (40001 name required / reload failed, 40002 exists, 40003 invalid object, 40004 not found, 40005 save failed)'\n      content:\n        application/json:\n          schema: {$ref: '#/components/schemas/Response'}\n\
paths:\n",
    );
    for (path, methods) in routes() {
        o.push_str(&format!("  {path}:\n"));
        let kind = path
            .strip_prefix("/config/")
            .and_then(|r| r.split('/').next())
            .and_then(singular);
        for m in methods {
            let summary = match (path.as_str(), m, kind) {
                ("/config", "get", _) => "the running configuration (?format=json|yaml), services with live status".to_string(),
                ("/config", "post", _) => "save the running configuration (?format=json|yaml&path=file; default: the -C file)".to_string(),
                ("/config/reload", _, _) => "re-read every config source and apply it".to_string(),
                ("/docs/swagger.yaml", _, _) => "this document (no authentication)".to_string(),
                (p, "get", Some(k)) if p.ends_with("{name}") => format!("get one {k}"),
                (_, "get", Some(k)) => format!("list {k} objects"),
                (_, "post", Some(k)) => format!("create a {k}"),
                (_, "put", Some(k)) => format!("replace a {k} (its name is the path name)"),
                (_, "delete", Some(k)) => format!("delete a {k}"),
                _ => String::new(),
            };
            o.push_str(&format!("    {m}:\n      summary: {summary:?}\n"));
            if path.ends_with("{name}") {
                o.push_str("      parameters:\n        - {name: name, in: path, required: true, schema: {type: string}}\n");
            }
            if m == "post" && kind.is_some() || m == "put" {
                o.push_str("      requestBody:\n        required: true\n        content:\n          application/json:\n            schema: {$ref: '#/components/schemas/Object'}\n");
            }
            if path == "/docs/swagger.yaml" {
                o.push_str("      security: []\n");
            }
            o.push_str("      responses:\n        '200': {$ref: '#/components/responses/OK'}\n");
            if path != "/docs/swagger.yaml" {
                o.push_str("        '400': {$ref: '#/components/responses/Error'}\n        '401': {$ref: '#/components/responses/Error'}\n        '500': {$ref: '#/components/responses/Error'}\n");
            }
        }
    }
    o
}
