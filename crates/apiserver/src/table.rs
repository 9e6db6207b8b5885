//! `meta.k8s.io/v1` Table responses (what `kubectl get` prints).
//!
//! Every kind gets upstream's default columns (Name, Created At) for now; per-kind
//! columns (pods' READY/STATUS/RESTARTS, …) belong to each kind's strategy.

use rkube_api::resources::ResourceInfo;
use serde_json::{json, Value};

use crate::query::Query;

/// Builds a Table of `objects`.
pub fn for_objects(
    _info: &ResourceInfo,
    objects: &[Value],
    resource_version: &str,
    query: &Query,
) -> Value {
    let include = query.get("includeObject").unwrap_or("Metadata");
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let cells = json!([obj["metadata"]["name"], obj["metadata"]["creationTimestamp"]]);
            let object = match include {
                "None" => Value::Null,
                "Object" => obj.clone(),
                _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}),
            };
            let mut row = json!({"cells": cells});
            if !object.is_null() {
                row["object"] = object;
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names", "priority": 0},
            {"name": "Created At", "type": "date", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata", "priority": 0}
        ],
        "rows": rows,
    })
}
