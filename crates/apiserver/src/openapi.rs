//! OpenAPI v3 documents generated from the resource table.
//!
//! Today they carry the operations and parameters of every resource but no schemas.
//! That is what kubectl's field-validation check reads (it looks for the
//! `fieldValidation` query parameter on each kind's PATCH operation, and when it finds it
//! leaves validation to the server instead of downloading schemas). Schemas, which
//! `kubectl explain` needs, come next.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use rkube_api::resources::{self, ResourceInfo};
use serde_json::{json, Map, Value};

use crate::error::ApiError;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in resources::builtin() {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

fn json_response(body: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(body).unwrap_or_default(),
    )
        .into_response()
}

/// `/openapi/v3`: where each group version's document is.
pub fn root() -> Response {
    let mut paths = Map::new();
    for (group, version) in group_versions() {
        let path = gv_path(group, version);
        paths.insert(path.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", env!("CARGO_PKG_VERSION"))}));
    }
    json_response(&json!({"paths": paths}))
}

fn parameter(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn operation(r: &ResourceInfo, action: &str, with_field_validation: bool) -> Value {
    let mut parameters = vec![parameter(
        "dryRun",
        "When present, indicates that modifications should not be persisted.",
    )];
    if with_field_validation {
        parameters.push(parameter("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields."));
        parameters.push(parameter("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."));
    }
    json!({
        "operationId": format!("{action}{}", r.kind),
        "parameters": parameters,
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
    })
}

/// `/openapi/v3/api/v1`, `/openapi/v3/apis/<group>/<version>`.
pub fn group_version(path: &str) -> Result<Response, ApiError> {
    let (group, version) = match path
        .trim_matches('/')
        .split('/')
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["api", version] => ("", *version),
        ["apis", group, version] => (*group, *version),
        _ => return Err(ApiError::page_not_found()),
    };
    let rows: Vec<&ResourceInfo> = resources::builtin()
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if rows.is_empty() {
        return Err(ApiError::page_not_found());
    }
    let mut paths = Map::new();
    for r in rows {
        let base = format!("/{}", gv_path(r.group, r.version));
        let collection = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{base}/{}", r.plural)
        };
        let mut coll_ops = Map::new();
        if r.has_verb("create") {
            coll_ops.insert("post".into(), operation(r, "post", true));
        }
        if r.has_verb("list") {
            coll_ops.insert("get".into(), operation(r, "list", false));
        }
        if !coll_ops.is_empty() {
            paths.insert(collection.clone(), Value::Object(coll_ops));
        }
        let mut item_ops = Map::new();
        if r.has_verb("get") {
            item_ops.insert("get".into(), operation(r, "get", false));
        }
        if r.has_verb("update") {
            item_ops.insert("put".into(), operation(r, "put", true));
        }
        if r.has_verb("patch") {
            item_ops.insert("patch".into(), operation(r, "patch", true));
        }
        if r.has_verb("delete") {
            item_ops.insert("delete".into(), operation(r, "delete", false));
        }
        if !item_ops.is_empty() {
            paths.insert(format!("{collection}/{{name}}"), Value::Object(item_ops));
        }
    }
    Ok(json_response(&json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.37.0"},
        "paths": paths,
        "components": {"schemas": {}},
    })))
}
