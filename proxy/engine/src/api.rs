//! GOST-compatible Web API: `/config` CRUD for every object kind the engine supports, reload and
//! save, with GOST's paths, envelope (`{code, msg, data}`) and status codes (engine spec §5),
//! including the quirks tools depend on: an unknown name on GET is `200 {}`, on PUT/DELETE
//! `400` with code 40004. Durations are accepted as nanoseconds or strings and written as
//! nanoseconds. Every write goes through [`Engine::apply`]: validate → diff → apply by name.
//!
//! This file holds the context, the routing, Basic authentication and CORS; `api/crud.rs`
//! the handlers of the routes, `api/openapi.rs` the OpenAPI document built from typed values.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use gost_config::AuthConfig;

use crate::engine::{ApplyReport, Engine};

mod crud;
mod openapi;
pub mod redact;

use crud::{create, delete, err, get_config, get_one, list, reload, save_config, update};
pub use openapi::{openapi_yaml, routes};

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
                inline.as_ref().is_some_and(|a| {
                    crate::policy::ct_eq(a.username.as_bytes(), u.as_bytes())
                        & crate::policy::ct_eq(a.password.as_bytes(), p.as_bytes())
                }) || auther.as_ref().is_some_and(|name| {
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
    ("limiters", "limiter"),
    // GOST names all three kinds "limiter" in its messages.
    ("climiters", "limiter"),
    ("rlimiters", "limiter"),
];

/// Kinds GOST's API serves that gost-proxy does not implement: URL segment → singular.
pub const UNSUPPORTED_KINDS: &[(&str, &str)] = &[
    ("ingresses", "ingress"),
    ("routers", "router"),
    ("observers", "observer"),
    ("recorders", "recorder"),
    ("sds", "sd"),
];

/// The state every route handler gets.
#[derive(Clone)]
struct St {
    ctx: Arc<ApiContext>,
    settings: Arc<ApiSettings>,
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
