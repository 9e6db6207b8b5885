//! Discovery: `/api`, `/apis`, `/apis/<group>`, the per-version resource lists, and the
//! aggregated discovery documents (apidiscovery.k8s.io/v2) kubectl asks for first.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rkube_api::resources::ResourceInfo;
use serde_json::{json, Value};

use crate::crd::Snapshot;
use crate::error::ApiError;

const AGGREGATED_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

fn wants_aggregated(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|part| {
            let params: Vec<&str> = part.split(';').map(str::trim).collect();
            params.contains(&"as=APIGroupDiscoveryList")
                && params.contains(&"g=apidiscovery.k8s.io")
                && params.contains(&"v=v2")
        })
}

fn json(content_type: &'static str, body: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        serde_json::to_vec(body).unwrap_or_default(),
    )
        .into_response()
}

/// `/api` (legacy) or `/apis`.
pub fn root(
    served: &Snapshot,
    legacy: bool,
    headers: &HeaderMap,
    server_address: &str,
) -> Response {
    if wants_aggregated(headers) {
        let items: Vec<Value> = served
            .groups()
            .into_iter()
            .filter(|(g, _)| g.is_empty() == legacy)
            .map(|(g, versions)| aggregated_group(served, g, &versions))
            .collect();
        let doc = json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items});
        return json(AGGREGATED_V2, &doc);
    }
    if legacy {
        return json(
            "application/json",
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}),
        );
    }
    let groups: Vec<Value> = served
        .groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, versions)| api_group(g, &versions))
        .collect();
    json(
        "application/json",
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
    )
}

fn api_group(group: &str, versions: &[&str]) -> Value {
    let list: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": group_version(group, v), "version": v}))
        .collect();
    json!({"name": group, "versions": list, "preferredVersion": list[0]})
}

/// `/apis/<group>`.
pub fn group(served: &Snapshot, group: &str) -> Result<Response, ApiError> {
    let (_, versions) = served
        .groups()
        .into_iter()
        .find(|(g, _)| *g == group && !g.is_empty())
        .ok_or_else(ApiError::page_not_found)?;
    let mut doc = api_group(group, &versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Ok(json("application/json", &doc))
}

/// `/api/v1` or `/apis/<group>/<version>`.
pub fn version(served: &Snapshot, group: &str, version: &str) -> Result<Response, ApiError> {
    let rows: Vec<&ResourceInfo> = served
        .rows()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if rows.is_empty() {
        return Err(ApiError::page_not_found());
    }
    let mut list = Vec::new();
    for r in rows {
        let mut entry = json!({"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind, "verbs": r.verbs});
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        list.push(entry);
        for s in r.subresources {
            let mut sub = json!({"name": format!("{}/{}", r.plural, s.name), "singularName": r.singular, "namespaced": r.namespaced, "kind": s.kind, "verbs": s.verbs});
            if s.group != r.group || s.version != r.version {
                sub["group"] = json!(s.group);
                sub["version"] = json!(s.version);
            }
            list.push(sub);
        }
    }
    Ok(json(
        "application/json",
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version(group, version), "resources": list}),
    ))
}

fn aggregated_group(served: &Snapshot, group: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|version| {
            let resources: Vec<Value> = served
                .rows()
                .filter(|r| r.group == group && r.version == *version)
                .map(|r| {
                    let mut entry = json!({
                        "resource": r.plural,
                        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": r.singular,
                        "verbs": r.verbs,
                    });
                    if !r.short_names.is_empty() {
                        entry["shortNames"] = json!(r.short_names);
                    }
                    if !r.categories.is_empty() {
                        entry["categories"] = json!(r.categories);
                    }
                    if !r.subresources.is_empty() {
                        entry["subresources"] = r
                            .subresources
                            .iter()
                            .map(|s| json!({"subresource": s.name, "responseKind": {"group": s.group, "version": s.version, "kind": s.kind}, "verbs": s.verbs}))
                            .collect();
                    }
                    entry
                })
                .collect();
            json!({"version": version, "resources": resources, "freshness": "Current"})
        })
        .collect();
    let mut metadata = json!({"creationTimestamp": null});
    if !group.is_empty() {
        metadata["name"] = json!(group);
    }
    json!({"metadata": metadata, "versions": versions})
}
