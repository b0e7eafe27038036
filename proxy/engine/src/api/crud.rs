//! The route handlers: `/config` read, save and reload, and the CRUD of every object kind.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gost_config::Config;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::sync::Arc;

use super::{St, KINDS, UNSUPPORTED_KINDS};
use crate::engine::Engine;

pub(super) fn envelope(status: StatusCode, body: Value) -> Response {
    let mut r = (status, axum::Json(body)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

pub(super) fn ok() -> Response {
    envelope(StatusCode::OK, json!({"msg": "OK"}))
}

pub(super) fn err(status: StatusCode, code: u32, msg: impl Into<String>) -> Response {
    envelope(status, json!({"code": code, "msg": msg.into()}))
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

/// The singular of a kind GOST's API serves that gost-proxy does not implement. Reads of
/// such a kind answer as for an empty list, writes get [`refuse_unsupported`] (GOST's own
/// clients, gost-ui among them, load these cards on every page).
fn unsupported(kind: &str) -> Option<&'static str> {
    UNSUPPORTED_KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, s)| *s)
}

/// The 400 envelope for a write to an unsupported kind, naming it and what is supported.
fn refuse_unsupported(kind: &str, one: &str) -> Response {
    let supported: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
    err(
        StatusCode::BAD_REQUEST,
        40001,
        format!(
            "{one} objects ({kind}) are not supported by gost-proxy; supported: {}",
            supported.join(", ")
        ),
    )
}

/// The field name of serde's "unknown field `x`, expected …" message.
fn unknown_field(msg: &str) -> Option<&str> {
    let rest = msg.strip_prefix("unknown field `")?;
    rest.split_once('`').map(|(f, _)| f)
}

/// Removes `field` from the object at `path` in `v` (or at `path` minus its last segment
/// when that segment is the field itself); whether something was removed.
fn remove_at(v: &mut Value, path: &serde_path_to_error::Path, field: &str) -> bool {
    let segs: Vec<&serde_path_to_error::Segment> = path.iter().collect();
    for n in [segs.len(), segs.len().saturating_sub(1)] {
        if let Some(obj) = navigate(v, &segs[..n]).and_then(Value::as_object_mut) {
            if obj.remove(field).is_some() {
                return true;
            }
        }
    }
    false
}

fn navigate<'a>(
    mut cur: &'a mut Value,
    segs: &[&serde_path_to_error::Segment],
) -> Option<&'a mut Value> {
    use serde_path_to_error::Segment;
    for s in segs {
        cur = match s {
            Segment::Seq { index } => cur.get_mut(*index)?,
            Segment::Map { key } => cur.get_mut(key.as_str())?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Decodes a config as GOST's API does: fields it does not know are dropped (gost-ui posts
/// back its own bookkeeping fields `_id_`, `_key_`, `_type_` with every record) and returned
/// for the log; any other error is returned with its path.
fn decode_lenient(mut v: Value) -> Result<(Config, Vec<String>), String> {
    let mut ignored = Vec::new();
    for _ in 0..1024 {
        let e = match serde_path_to_error::deserialize::<_, Config>(&v) {
            Ok(c) => return Ok((c, ignored)),
            Err(e) => e,
        };
        let path = e.path().clone();
        let msg = e.into_inner().to_string();
        match unknown_field(&msg) {
            Some(f) if remove_at(&mut v, &path, f) => {
                let at = path.to_string();
                ignored.push(if at == "." || at.ends_with(f) {
                    at
                } else {
                    format!("{at}.{f}")
                });
            }
            _ => return Err(format!("{path}: {msg}")),
        }
    }
    Err("too many unknown fields".into())
}

fn not_found() -> Response {
    err(StatusCode::NOT_FOUND, 404, "404 page not found")
}

/// What the GET routes show: [`config_json`] with every password replaced by the placeholder.
async fn shown_config(e: &Engine) -> Value {
    let mut v = config_json(e).await;
    super::redact::redact(&mut v);
    v
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
pub(super) struct FormatQuery {
    format: Option<String>,
    path: Option<String>,
}

pub(super) async fn get_config(State(st): State<St>, Query(q): Query<FormatQuery>) -> Response {
    let Some(e) = engine(&st) else {
        return gone();
    };
    let v = shown_config(&e).await;
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

pub(super) async fn save_config(State(st): State<St>, Query(q): Query<FormatQuery>) -> Response {
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

pub(super) async fn reload(State(st): State<St>) -> Response {
    match (st.ctx.reload)().await {
        Ok(_) => ok(),
        Err(m) => err(StatusCode::BAD_REQUEST, 40001, m),
    }
}

pub(super) async fn list(State(st): State<St>, Path(kind): Path<String>) -> Response {
    if unsupported(&kind).is_some() {
        return envelope(StatusCode::OK, json!({"data": {"count": 0, "list": []}}));
    }
    if singular(&kind).is_none() {
        return not_found();
    }
    let Some(e) = engine(&st) else {
        return gone();
    };
    let v = shown_config(&e).await;
    let list = v.get(&kind).cloned().unwrap_or(Value::Array(vec![]));
    let count = list.as_array().map(Vec::len).unwrap_or(0);
    envelope(
        StatusCode::OK,
        json!({"data": {"count": count, "list": list}}),
    )
}

pub(super) async fn get_one(
    State(st): State<St>,
    Path((kind, name)): Path<(String, String)>,
) -> Response {
    if unsupported(&kind).is_some() {
        return envelope(StatusCode::OK, json!({"data": null}));
    }
    if singular(&kind).is_none() {
        return not_found();
    }
    let Some(e) = engine(&st) else {
        return gone();
    };
    let v = shown_config(&e).await;
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
        // GOST v3.2.6 answers an unknown name with `200 {"data":null}`.
        None => envelope(StatusCode::OK, json!({"data": null})),
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
    if let Some(one) = unsupported(kind) {
        return refuse_unsupported(kind, one);
    }
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
            let mut new = Value::Object(obj);
            if let Err(m) = super::redact::restore(&mut new, None, &format!("{kind}[{name}]")) {
                return err(StatusCode::BAD_REQUEST, 40001, m);
            }
            arr.push(new);
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
            let mut new = Value::Object(obj);
            if let Err(m) =
                super::redact::restore(&mut new, Some(&arr[i]), &format!("{kind}[{name}]"))
            {
                return err(StatusCode::BAD_REQUEST, 40001, m);
            }
            arr[i] = new;
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
    let new: Config = match decode_lenient(v) {
        Ok((c, ignored)) => {
            if !ignored.is_empty() {
                tracing::warn!(kind = "api", object = %format!("{one} {name}"), fields = %ignored.join(", "), "unknown fields in the request body ignored");
            }
            c
        }
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

pub(super) async fn create(
    State(st): State<St>,
    Path(kind): Path<String>,
    body: Bytes,
) -> Response {
    mutate(&st, &kind, None, Some(body), Op::Create).await
}

pub(super) async fn update(
    State(st): State<St>,
    Path((kind, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    mutate(&st, &kind, Some(name), Some(body), Op::Update).await
}

pub(super) async fn delete(
    State(st): State<St>,
    Path((kind, name)): Path<(String, String)>,
) -> Response {
    mutate(&st, &kind, Some(name), None, Op::Delete).await
}
