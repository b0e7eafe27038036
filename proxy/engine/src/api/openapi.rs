//! The OpenAPI document of the Web API, built from typed values ([`Document`]) over the route
//! table ([`routes`]) and the object kinds ([`super::KINDS`]), and written as YAML. It is
//! committed as `proxy/engine/api/openapi.yaml`; a test fails when that file is stale
//! (`UPDATE_OPENAPI=1 cargo test -p gost-engine --test api` rewrites it).

use std::collections::BTreeMap;

use serde::Serialize;

use super::KINDS;

/// The document (the subset of OpenAPI 3.0 this API needs).
#[derive(Debug, Serialize)]
pub struct Document {
    openapi: &'static str,
    info: Info,
    security: Vec<BTreeMap<&'static str, Vec<String>>>,
    components: Components,
    paths: BTreeMap<String, PathItem>,
}

#[derive(Debug, Serialize)]
struct Info {
    title: &'static str,
    version: &'static str,
    description: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Components {
    security_schemes: BTreeMap<&'static str, SecurityScheme>,
    schemas: BTreeMap<&'static str, Schema>,
    responses: BTreeMap<&'static str, ResponseDef>,
}

#[derive(Debug, Serialize)]
struct SecurityScheme {
    #[serde(rename = "type")]
    kind: &'static str,
    scheme: &'static str,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Schema {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    required: Vec<&'static str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    properties: BTreeMap<&'static str, Schema>,
    #[serde(skip_serializing_if = "Option::is_none")]
    additional_properties: Option<bool>,
}

#[derive(Debug, Serialize)]
struct ResponseDef {
    description: &'static str,
    content: BTreeMap<&'static str, MediaType>,
}

#[derive(Debug, Serialize)]
struct MediaType {
    schema: Ref,
}

#[derive(Debug, Clone, Serialize)]
struct Ref {
    #[serde(rename = "$ref")]
    target: String,
}

/// One path: its operations by method.
#[derive(Debug, Default, Serialize)]
pub struct PathItem {
    #[serde(skip_serializing_if = "Option::is_none")]
    get: Option<Operation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    post: Option<Operation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    put: Option<Operation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delete: Option<Operation>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Operation {
    summary: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    parameters: Vec<Parameter>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_body: Option<RequestBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    security: Option<Vec<BTreeMap<&'static str, Vec<String>>>>,
    responses: BTreeMap<&'static str, Ref>,
}

#[derive(Debug, Serialize)]
struct Parameter {
    name: &'static str,
    #[serde(rename = "in")]
    location: &'static str,
    required: bool,
    schema: Schema,
}

#[derive(Debug, Serialize)]
struct RequestBody {
    required: bool,
    content: BTreeMap<&'static str, MediaType>,
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

fn reference(to: &str) -> Ref {
    Ref {
        target: format!("#/components/{to}"),
    }
}

fn json_of(schema: &str) -> BTreeMap<&'static str, MediaType> {
    BTreeMap::from([(
        "application/json",
        MediaType {
            schema: reference(&format!("schemas/{schema}")),
        },
    )])
}

fn string() -> Schema {
    Schema {
        kind: Some("string"),
        ..Default::default()
    }
}

fn summary(path: &str, method: &str) -> String {
    let kind = path
        .strip_prefix("/config/")
        .and_then(|r| r.split('/').next())
        .and_then(|k| KINDS.iter().find(|(seg, _)| *seg == k))
        .map(|(_, s)| *s);
    match (path, method, kind) {
        ("/config", "get", _) => {
            "the running configuration (?format=json|yaml), services with live status".into()
        }
        ("/config", "post", _) => {
            "save the running configuration (?format=json|yaml&path=file; default: the -C file)"
                .into()
        }
        ("/config/reload", _, _) => "re-read every config source and apply it".into(),
        ("/docs/swagger.yaml", _, _) => "this document (no authentication)".into(),
        (p, "get", Some(k)) if p.ends_with("{name}") => format!("get one {k}"),
        (_, "get", Some(k)) => format!("list {k} objects"),
        (_, "post", Some(k)) => format!("create a {k}"),
        (_, "put", Some(k)) => format!("replace a {k} (its name is the path name)"),
        (_, "delete", Some(k)) => format!("delete a {k}"),
        _ => String::new(),
    }
}

fn operation(path: &str, method: &str) -> Operation {
    let is_doc = path == "/docs/swagger.yaml";
    let has_body = (method == "post" && path.starts_with("/config/") && path != "/config/reload")
        || method == "put";
    let mut responses = BTreeMap::from([("200", reference("responses/OK"))]);
    if !is_doc {
        for code in ["400", "401", "500"] {
            responses.insert(code, reference("responses/Error"));
        }
    }
    Operation {
        summary: summary(path, method),
        parameters: if path.ends_with("{name}") {
            vec![Parameter {
                name: "name",
                location: "path",
                required: true,
                schema: string(),
            }]
        } else {
            Vec::new()
        },
        request_body: has_body.then(|| RequestBody {
            required: true,
            content: json_of("Object"),
        }),
        security: is_doc.then(Vec::new),
        responses,
    }
}

/// The document.
pub fn document() -> Document {
    let mut paths = BTreeMap::new();
    for (path, methods) in routes() {
        let mut item = PathItem::default();
        for m in methods {
            let op = Some(operation(&path, m));
            match m {
                "get" => item.get = op,
                "post" => item.post = op,
                "put" => item.put = op,
                _ => item.delete = op,
            }
        }
        paths.insert(path, item);
    }
    let response = Schema {
        kind: Some("object"),
        properties: BTreeMap::from([
            (
                "code",
                Schema {
                    kind: Some("integer"),
                    ..Default::default()
                },
            ),
            ("msg", string()),
            ("data", Schema::default()),
        ]),
        ..Default::default()
    };
    let object = Schema {
        kind: Some("object"),
        description: Some("a GOST config object (service, chain, hop, ...)"),
        required: vec!["name"],
        properties: BTreeMap::from([("name", string())]),
        additional_properties: Some(true),
    };
    Document {
        openapi: "3.0.3",
        info: Info {
            title: "gost-proxy Web API (GOST v3 compatible)",
            version: "v1",
            description: "Dynamic configuration of gost-proxy. Paths, bodies and status codes \
                follow GOST v3: errors are {code, msg}; an unknown name on GET is 200 {}; on \
                PUT/DELETE it is 400 with code 40004. Durations are integers in nanoseconds \
                (strings such as \"30s\" are accepted too).",
        },
        security: vec![BTreeMap::from([("basic", Vec::new())])],
        components: Components {
            security_schemes: BTreeMap::from([(
                "basic",
                SecurityScheme {
                    kind: "http",
                    scheme: "basic",
                },
            )]),
            schemas: BTreeMap::from([("Response", response), ("Object", object)]),
            responses: BTreeMap::from([
                (
                    "OK",
                    ResponseDef {
                        description: "success",
                        content: json_of("Response"),
                    },
                ),
                (
                    "Error",
                    ResponseDef {
                        description:
                            "error: {code, msg} (40001 name required / reload failed, \
                            40002 exists, 40003 invalid object, 40004 not found, 40005 save failed)",
                        content: json_of("Response"),
                    },
                ),
            ]),
        },
        paths,
    }
}

/// The document as YAML, with a header naming its source.
pub fn openapi_yaml() -> String {
    let body = serde_saphyr::to_string(&document()).unwrap_or_else(|e| format!("# error: {e}\n"));
    format!(
        "# Generated from proxy/engine/src/api/openapi.rs (UPDATE_OPENAPI=1 cargo test -p gost-engine --test api); do not edit.\n{body}"
    )
}
