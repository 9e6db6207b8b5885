//! Discovery: `/api`, `/apis`, `/apis/<group>`, the per-version resource lists, and the
//! aggregated discovery documents (apidiscovery.k8s.io/v2) kubectl asks for first.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rkube_api::resources::ResourceInfo;
use serde_json::{json, Value};

use crate::aggregator::Remote;
use crate::crd::Snapshot;
use crate::error::ApiError;

/// Group/versions served by aggregated API servers, in discovery order.
pub type RemoteGroups = [(String, Vec<std::sync::Arc<Remote>>)];

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
    remote: &RemoteGroups,
) -> Response {
    let local = served.groups();
    let remote = remote
        .iter()
        .filter(|(g, _)| !legacy && !local.iter().any(|(l, _)| l == g));
    if wants_aggregated(headers) {
        let items: Vec<Value> = local
            .iter()
            .filter(|(g, _)| g.is_empty() == legacy)
            .map(|(g, versions)| aggregated_group(served, g, versions))
            .chain(remote.filter_map(|(g, versions)| aggregated_remote_group(g, versions)))
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
    let groups: Vec<Value> = local
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, versions)| api_group(g, versions))
        .chain(remote.map(|(g, versions)| {
            let versions: Vec<&str> = versions.iter().map(|r| r.version.as_str()).collect();
            api_group(g, &versions)
        }))
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
pub fn group(served: &Snapshot, group: &str, remote: &RemoteGroups) -> Result<Response, ApiError> {
    let versions = match served
        .groups()
        .into_iter()
        .find(|(g, _)| *g == group && !g.is_empty())
    {
        Some((_, versions)) => versions.iter().map(|v| v.to_string()).collect(),
        None => remote
            .iter()
            .find(|(g, _)| g == group)
            .map(|(_, versions)| {
                versions
                    .iter()
                    .map(|r| r.version.clone())
                    .collect::<Vec<_>>()
            })
            .ok_or_else(ApiError::page_not_found)?,
    };
    let versions: Vec<&str> = versions.iter().map(String::as_str).collect();
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

/// An aggregated API server's group in aggregated discovery, from the resource lists
/// its versions last served (`Stale` while the APIService is unavailable); `None` until
/// one was fetched.
fn aggregated_remote_group(group: &str, versions: &[std::sync::Arc<Remote>]) -> Option<Value> {
    let versions: Vec<Value> = versions
        .iter()
        .filter_map(|r| {
            let list = r.resources.as_ref()?;
            let mut resources: Vec<Value> = Vec::new();
            for entry in list.iter().filter(|e| !e["name"].as_str().unwrap_or("").contains('/')) {
                let plural = entry["name"].as_str().unwrap_or_default();
                let kind = |e: &Value| {
                    json!({"group": e["group"].as_str().unwrap_or(group), "version": e["version"].as_str().unwrap_or(&r.version), "kind": e["kind"]})
                };
                let mut out = json!({
                    "resource": plural,
                    "responseKind": kind(entry),
                    "scope": if entry["namespaced"] == true { "Namespaced" } else { "Cluster" },
                    "singularResource": entry["singularName"].as_str().unwrap_or_default(),
                    "verbs": entry["verbs"].as_array().cloned().unwrap_or_default(),
                });
                for field in ["shortNames", "categories"] {
                    if entry[field].as_array().is_some_and(|a| !a.is_empty()) {
                        out[field] = entry[field].clone();
                    }
                }
                let subresources: Vec<Value> = list
                    .iter()
                    .filter_map(|e| {
                        let (parent, sub) = e["name"].as_str()?.split_once('/')?;
                        (parent == plural).then(|| json!({"subresource": sub, "responseKind": kind(e), "verbs": e["verbs"].as_array().cloned().unwrap_or_default()}))
                    })
                    .collect();
                if !subresources.is_empty() {
                    out["subresources"] = json!(subresources);
                }
                resources.push(out);
            }
            let freshness = if r.available { "Current" } else { "Stale" };
            Some(json!({"version": r.version, "resources": resources, "freshness": freshness}))
        })
        .collect();
    if versions.is_empty() {
        return None;
    }
    Some(json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions}))
}
