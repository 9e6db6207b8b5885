//! OpenAPI v3 documents generated from the resource table and the k8s-openapi types.
//!
//! Each group version's document lists every resource's operations with their
//! parameters — kubectl's field-validation check looks for the `fieldValidation` query
//! parameter on each kind's PATCH operation and then leaves validation to the server —
//! and the schemas of its kinds (from k8s-openapi's schemars impls, tagged with
//! `x-kubernetes-group-version-kind`), which `kubectl explain` reads. Documents are built
//! once per group version, on first request.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
#[cfg(test)]
use rkube_api::resources;
use rkube_api::resources::ResourceInfo;
use serde_json::{json, Map, Value};

use crate::crd::{CustomVersion, Snapshot};
use crate::error::ApiError;

/// Defines `add_kind_schema`, matching a (group, version, kind) to its k8s-openapi type.
macro_rules! kind_schemas {
    ($($ty:path),* $(,)?) => {
        /// Adds the schema of a kind (and what it references) to `generator`; returns its
        /// schema name, or `None` for a kind without a Rust type.
        pub(super) fn add_kind_schema(generator: &mut schemars::SchemaGenerator, group: &str, version: &str, kind: &str) -> Option<String> {
            $(
                if <$ty as k8s_openapi::Resource>::GROUP == group
                    && <$ty as k8s_openapi::Resource>::VERSION == version
                    && <$ty as k8s_openapi::Resource>::KIND == kind
                {
                    generator.subschema_for::<$ty>();
                    return Some(<$ty as schemars::JsonSchema>::schema_name().into_owned());
                }
            )*
            None
        }
    };
}
use kind_schemas;

#[path = "openapi_kinds.rs"]
mod kinds;

/// Built documents by group-version path, for the registry snapshot generation they were
/// built from (a new snapshot — a CRD changed — drops them all).
type Documents = (u64, std::collections::HashMap<String, bytes::Bytes>);
static DOCUMENTS: std::sync::Mutex<Option<Documents>> = std::sync::Mutex::new(None);

fn cached_document(generation: u64, key: &str) -> Option<bytes::Bytes> {
    let guard = DOCUMENTS.lock().unwrap_or_else(|e| e.into_inner());
    match &*guard {
        Some((g, docs)) if *g == generation => docs.get(key).cloned(),
        _ => None,
    }
}

fn cache_document(generation: u64, key: String, body: bytes::Bytes) {
    let mut guard = DOCUMENTS.lock().unwrap_or_else(|e| e.into_inner());
    match &mut *guard {
        Some((g, docs)) if *g == generation => {
            docs.insert(key, body);
        }
        other => *other = Some((generation, [(key, body)].into_iter().collect())),
    }
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn group_versions(served: &Snapshot) -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in served.rows() {
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
/// kubectl caches documents by this hash, so a custom group version's changes with its
/// CRDs' specs.
pub fn root(served: &Snapshot) -> Response {
    let mut paths = Map::new();
    for (group, version) in group_versions(served) {
        let path = gv_path(group, version);
        let custom: u64 = served
            .custom_versions()
            .iter()
            .filter(|c| c.info.group == group && c.info.version == version)
            .fold(0, |h, c| h.rotate_left(7) ^ c.spec_hash);
        let hash = if custom == 0 {
            env!("CARGO_PKG_VERSION").to_owned()
        } else {
            format!("{:016X}", custom)
        };
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
        );
    }
    json_response(&json!({"paths": paths}))
}

fn parameter(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn operation(
    r: &ResourceInfo,
    action: &str,
    with_field_validation: bool,
    schema: Option<&str>,
) -> Value {
    let mut parameters = vec![parameter(
        "dryRun",
        "When present, indicates that modifications should not be persisted.",
    )];
    if with_field_validation {
        parameters.push(parameter("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields."));
        parameters.push(parameter("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."));
    }
    let mut op = json!({
        "operationId": format!("{action}{}", r.kind),
        "parameters": parameters,
        "responses": {"200": match schema {
            Some(name) => json!({"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}}}),
            None => json!({"description": "OK"}),
        }},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
    });
    // The body media types, as upstream lists them: clients pick a patch type from these.
    let body_schema = match schema {
        Some(name) => json!({"$ref": format!("#/components/schemas/{name}")}),
        None => json!({"type": "object"}),
    };
    let media: &[&str] = match action {
        "patch" => &[
            "application/apply-patch+yaml",
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ],
        "post" | "put" => &["*/*"],
        _ => &[],
    };
    if !media.is_empty() {
        let patch_schema =
            json!({"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"});
        let content: Map<String, Value> = media
            .iter()
            .map(|m| {
                let schema = if action == "patch" {
                    patch_schema.clone()
                } else {
                    body_schema.clone()
                };
                ((*m).to_owned(), json!({"schema": schema}))
            })
            .collect();
        op["requestBody"] = json!({"content": content, "required": true});
    }
    op
}

/// The content type of the protobuf (gnostic) OpenAPI v2 document, as upstream's
/// handler labels it (clients ask for `application/com.github.proto-openapi.spec.v2@v1.0+protobuf`,
/// which Go's media-type parser cannot read back).
const V2_PROTOBUF: &str = "application/octet-stream";

/// `/openapi/v2`: the Swagger 2.0 document, built from the v3 documents (every definition,
/// references rewritten, each path's operations with their response schema).
///
/// In protobuf (gnostic), which kubectl asks for, the document carries only its `swagger`
/// version: kubectl uses v2 solely for client-side validation of `List` objects and skips
/// kinds it finds no model for, so each item is then validated by the server, as every
/// other object is.
pub fn v2(served: &Snapshot, headers: &axum::http::HeaderMap) -> Response {
    let protobuf = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/com.github.proto-openapi.spec.v2"));
    if protobuf {
        // Document { swagger (1): "2.0" }.
        let body: &'static [u8] = b"\x0a\x032.0";
        return (StatusCode::OK, [(header::CONTENT_TYPE, V2_PROTOBUF)], body).into_response();
    }
    let mut definitions = Map::new();
    let mut paths = Map::new();
    for (group, version) in group_versions(served) {
        let key = gv_path(group, version);
        if group_version(served, &key).is_err() {
            continue;
        }
        let Some(bytes) = cached_document(served.generation, &key) else {
            continue;
        };
        let Ok(mut doc) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        v3_refs_to_v2(&mut doc);
        if let Some(Value::Object(schemas)) =
            doc["components"].get_mut("schemas").map(std::mem::take)
        {
            definitions.extend(schemas);
        }
        if let Some(Value::Object(ps)) = doc.get_mut("paths").map(std::mem::take) {
            for (path, mut ops) in ps {
                if let Some(ops) = ops.as_object_mut() {
                    for op in ops.values_mut() {
                        v3_operation_to_v2(op);
                    }
                }
                paths.insert(path, ops);
            }
        }
    }
    json_response(&json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.37.0"},
        "paths": paths,
        "definitions": definitions,
    }))
}

/// Rewrites `#/components/schemas/X` references to `#/definitions/X`.
fn v3_refs_to_v2(v: &mut Value) {
    match v {
        Value::String(s) if s.starts_with("#/components/schemas/") => {
            *s = s.replacen("#/components/schemas/", "#/definitions/", 1);
        }
        Value::Array(items) => items.iter_mut().for_each(v3_refs_to_v2),
        Value::Object(map) => map.values_mut().for_each(v3_refs_to_v2),
        _ => {}
    }
}

/// A v3 operation in v2's shape: response schemas out of `content`, no request bodies.
fn v3_operation_to_v2(op: &mut Value) {
    let Some(op) = op.as_object_mut() else {
        return;
    };
    op.remove("requestBody");
    if let Some(Value::Object(responses)) = op.get_mut("responses") {
        for response in responses.values_mut() {
            if let Some(schema) = response["content"]["application/json"]
                .get("schema")
                .cloned()
            {
                response["schema"] = schema;
            }
            if let Some(r) = response.as_object_mut() {
                r.remove("content");
            }
        }
    }
    if let Some(Value::Array(params)) = op.get_mut("parameters") {
        for p in params {
            if let Some(schema) = p.as_object_mut().and_then(|m| m.remove("schema")) {
                p["type"] = schema["type"].clone();
                p["uniqueItems"] = schema["uniqueItems"].clone();
            }
        }
    }
}

/// `/openapi/v3/api/v1`, `/openapi/v3/apis/<group>/<version>`.
pub fn group_version(served: &Snapshot, path: &str) -> Result<Response, ApiError> {
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
    let rows: Vec<&ResourceInfo> = served
        .rows()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if rows.is_empty() {
        return Err(ApiError::page_not_found());
    }
    let key = gv_path(group, version);
    if let Some(doc) = cached_document(served.generation, &key) {
        return Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            doc.clone(),
        )
            .into_response());
    }
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let mut documented = Vec::new();
    let mut custom_schemas = Vec::new();
    let mut paths = Map::new();
    for r in rows {
        let schema = match served.custom(r) {
            Some(custom) => {
                generator
                    .subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>();
                let (name, schema) = custom_schema(&custom);
                custom_schemas.push((name.clone(), schema));
                Some(name)
            }
            None => kinds::add_kind_schema(&mut generator, r.group, r.version, r.kind),
        };
        if let Some(name) = &schema {
            documented.push((name.clone(), r));
        }
        let base = format!("/{}", gv_path(r.group, r.version));
        let collection = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{base}/{}", r.plural)
        };
        let mut coll_ops = Map::new();
        if r.has_verb("create") {
            coll_ops.insert("post".into(), operation(r, "post", true, schema.as_deref()));
        }
        if r.has_verb("list") {
            coll_ops.insert("get".into(), operation(r, "list", false, schema.as_deref()));
        }
        if !coll_ops.is_empty() {
            paths.insert(collection.clone(), Value::Object(coll_ops));
        }
        let mut item_ops = Map::new();
        if r.has_verb("get") {
            item_ops.insert("get".into(), operation(r, "get", false, schema.as_deref()));
        }
        if r.has_verb("update") {
            item_ops.insert("put".into(), operation(r, "put", true, schema.as_deref()));
        }
        if r.has_verb("patch") {
            item_ops.insert(
                "patch".into(),
                operation(r, "patch", true, schema.as_deref()),
            );
        }
        if r.has_verb("delete") {
            item_ops.insert(
                "delete".into(),
                operation(r, "delete", false, schema.as_deref()),
            );
        }
        if !item_ops.is_empty() {
            paths.insert(format!("{collection}/{{name}}"), Value::Object(item_ops));
        }
    }
    let mut schemas = generator.take_definitions(true);
    schemas.insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(),
        json!({"description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.", "type": "object"}),
    );
    for (name, r) in documented {
        if let Some(Value::Object(schema)) = schemas.get_mut(&name) {
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": r.group, "version": r.version, "kind": r.kind}]),
            );
        }
    }
    for (name, schema) in schemas.iter_mut() {
        add_merge_markers(name, schema);
    }
    for (name, schema) in custom_schemas {
        schemas.insert(name, schema);
    }
    let doc = json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.37.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    });
    let body = bytes::Bytes::from(serde_json::to_vec(&doc).map_err(ApiError::internal)?);
    cache_document(served.generation, key, body.clone());
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// A custom resource's component schema, named as upstream names it
/// (`com.example.v1.Widget`): the CRD's schema with `apiVersion`, `kind` and `metadata`
/// (a reference to ObjectMeta) added, tagged with its group, version and kind.
fn custom_schema(custom: &CustomVersion) -> (String, Value) {
    let r = custom.info;
    let reversed: Vec<&str> = r.group.split('.').rev().collect();
    let name = format!("{}.{}.{}", reversed.join("."), r.version, r.kind);
    let mut schema = custom.schema_json.clone();
    if !schema.is_object() {
        schema = json!({"type": "object"});
    }
    let props = schema
        .as_object_mut()
        .expect("an object")
        .entry("properties")
        .or_insert_with(|| json!({}));
    if let Some(props) = props.as_object_mut() {
        props.insert("apiVersion".into(), json!({"description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources", "type": "string"}));
        props.insert("kind".into(), json!({"description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds", "type": "string"}));
        props.insert("metadata".into(), json!({"description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata", "allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]}));
    }
    schema["x-kubernetes-group-version-kind"] =
        json!([{"group": r.group, "version": r.version, "kind": r.kind}]);
    (name, schema)
}

/// Adds upstream's merge extensions (`x-kubernetes-patch-strategy`, `-patch-merge-key`,
/// `-list-type`, `-list-map-keys`, `-map-type`) to a definition, from the type table.
/// kubectl computes its client-side apply patches from them.
fn add_merge_markers(name: &str, schema: &mut Value) {
    use rkube_api::schema::{ListType, Strategy};
    let message_name = name
        .strip_prefix("io.k8s.")
        .unwrap_or(name)
        .replace("apiextensions-apiserver", "apiextensions_apiserver")
        .replace("kube-aggregator", "kube_aggregator");
    let Some(message) = rkube_api::schema::message(&message_name) else {
        return;
    };
    let Value::Object(schema) = schema else {
        return;
    };
    if message.atomic {
        schema.insert("x-kubernetes-map-type".into(), json!("atomic"));
    }
    let Some(Value::Object(properties)) = schema.get_mut("properties") else {
        return;
    };
    for field in message.fields {
        let Some(Value::Object(property)) = properties.get_mut(field.json) else {
            continue;
        };
        let strategy = match field.strategy {
            Strategy::Default => None,
            Strategy::Merge => Some("merge"),
            Strategy::Replace => Some("replace"),
            Strategy::RetainKeys => Some("retainKeys"),
            Strategy::MergeRetainKeys => Some("merge,retainKeys"),
        };
        if let Some(strategy) = strategy {
            property.insert("x-kubernetes-patch-strategy".into(), json!(strategy));
        }
        if let Some(key) = field.merge_key {
            property.insert("x-kubernetes-patch-merge-key".into(), json!(key));
        }
        let list_type = match field.list_type {
            ListType::Unspecified => None,
            ListType::Atomic => Some("atomic"),
            ListType::Set => Some("set"),
            ListType::Map => Some("map"),
        };
        if let Some(list_type) = list_type {
            property.insert("x-kubernetes-list-type".into(), json!(list_type));
        }
        if !field.map_keys.is_empty() {
            property.insert("x-kubernetes-list-map-keys".into(), json!(field.map_keys));
        }
        if field.atomic {
            property.insert("x-kubernetes-map-type".into(), json!("atomic"));
        }
    }
}

/// Whether a schema is apiextensions' `JSON` (any JSON value, e.g. a schema's `default`),
/// which k8s-openapi describes as an object.
fn is_any_json(schema: &Value) -> bool {
    schema
        .get("description")
        .and_then(Value::as_str)
        .is_some_and(|d| d.starts_with("JSON represents any valid JSON value"))
}

/// A kind's schema and the definitions it references, for field validation.
pub struct KindSchema {
    name: String,
    definitions: Map<String, Value>,
}

/// Built kind schemas, by `group/version/kind`.
static KIND_SCHEMAS: std::sync::Mutex<
    Option<std::collections::HashMap<String, Option<std::sync::Arc<KindSchema>>>>,
> = std::sync::Mutex::new(None);

/// The schema of a built-in kind (`None` for kinds without one).
pub fn kind_schema(info: &ResourceInfo) -> Option<std::sync::Arc<KindSchema>> {
    let key = format!("{}/{}/{}", info.group, info.version, info.kind);
    let mut cache = KIND_SCHEMAS.lock().unwrap_or_else(|e| e.into_inner());
    cache
        .get_or_insert_with(Default::default)
        .entry(key)
        .or_insert_with(|| {
            let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
            let name = kinds::add_kind_schema(&mut generator, info.group, info.version, info.kind)?;
            Some(std::sync::Arc::new(KindSchema {
                name,
                definitions: generator.take_definitions(true),
            }))
        })
        .clone()
}

/// A value of the wrong JSON type: (field path, the type found, the type expected), what
/// upstream's typed decoding refuses with a 400.
pub type TypeError = (String, &'static str, String);

impl KindSchema {
    /// Field validation of `value` in one pass: its first value whose JSON type
    /// contradicts the schema, or else the fields its schema does not know, named as
    /// upstream's strict decoding names them (`spec.template.spec.containers[0].imagee`).
    pub fn check(&self, value: &Value) -> Result<Vec<String>, TypeError> {
        let mut walk = Walk {
            schema: self,
            path: String::new(),
            unknown: Vec::new(),
        };
        if let Some(root) = self.definitions.get(&self.name) {
            walk.visit(root, value, true, 0)?;
        }
        Ok(walk.unknown)
    }

    fn resolve<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        for _ in 0..8 {
            if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
                match r
                    .strip_prefix("#/components/schemas/")
                    .and_then(|n| self.definitions.get(n))
                {
                    Some(s) => schema = s,
                    None => return schema,
                }
            } else if let Some([only]) = schema
                .get("allOf")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
            {
                schema = only;
            } else {
                return schema;
            }
        }
        schema
    }
}

/// One field-validation pass: the path of the value being visited is kept in one buffer
/// and copied out only for what is reported.
struct Walk<'a> {
    schema: &'a KindSchema,
    path: String,
    unknown: Vec<String>,
}

impl Walk<'_> {
    /// Type-checks `value` and what it holds; while `collect`, also records fields the
    /// schema does not know. Below an unknown field or a schema that keeps unknown fields
    /// (`x-kubernetes-preserve-unknown-fields`) nothing more is unknown, but types are
    /// still checked where a schema applies.
    fn visit(
        &mut self,
        schema: &Value,
        value: &Value,
        collect: bool,
        depth: usize,
    ) -> Result<(), TypeError> {
        if depth > 64 || value.is_null() {
            return Ok(());
        }
        let schema = self.schema.resolve(schema);
        if is_any_json(schema) {
            return Ok(());
        }
        let found = match value {
            Value::Object(_) => "object",
            Value::Array(_) => "array",
            Value::String(_) => "string",
            Value::Bool(_) => "bool",
            Value::Number(n) if n.is_i64() || n.is_u64() => "number",
            Value::Number(_) => "float",
            Value::Null => return Ok(()),
        };
        let expected = schema.get("type").and_then(Value::as_str);
        let ok = match expected {
            None => true,
            Some("object") => found == "object",
            Some("array") => found == "array",
            Some("string") => found == "string",
            Some("boolean") => found == "bool",
            Some("integer") => found == "number",
            Some("number") => found == "number" || found == "float",
            Some(_) => true,
        };
        if !ok {
            return Err((self.path.clone(), found, expected.unwrap_or("").to_owned()));
        }
        let collect = collect
            && schema.get("x-kubernetes-preserve-unknown-fields") != Some(&Value::Bool(true));
        let len = self.path.len();
        match value {
            Value::Object(map) => {
                let props = schema.get("properties").and_then(Value::as_object);
                let additional = schema.get("additionalProperties").filter(|a| a.is_object());
                for (k, v) in map {
                    if len > 0 {
                        self.path.push('.');
                    }
                    self.path.push_str(k);
                    let (sub, collect) = match props.map(|p| p.get(k)) {
                        Some(Some(known)) => (Some(known), collect),
                        Some(None) => {
                            if collect {
                                self.unknown.push(self.path.clone());
                            }
                            (additional, false)
                        }
                        None => (additional, collect),
                    };
                    let checked = match sub {
                        Some(s) => self.visit(s, v, collect, depth + 1),
                        None => Ok(()),
                    };
                    self.path.truncate(len);
                    checked?;
                }
            }
            Value::Array(items) => {
                if let Some(item) = schema.get("items") {
                    for (i, v) in items.iter().enumerate() {
                        use std::fmt::Write;
                        let _ = write!(self.path, "[{i}]");
                        let checked = self.visit(item, v, collect, depth + 1);
                        self.path.truncate(len);
                        checked?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_unknown_fields_like_strict_decoding() {
        let info = resources::find("apps", "v1", "deployments").unwrap();
        let schema = kind_schema(info).expect("deployments have a schema");
        let obj = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "x", "labels": {"a": "b"}, "colour": "red"},
            "spec": {"replica": 2, "selector": {"matchLabels": {"app": "x"}},
                     "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i", "imagee": "typo"}]}}},
        });
        assert_eq!(
            schema.check(&obj).unwrap(),
            [
                "metadata.colour",
                "spec.replica",
                "spec.template.spec.containers[0].imagee"
            ]
        );
        let ok = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"any": "key"}});
        let cm = kind_schema(resources::find("", "v1", "configmaps").unwrap()).unwrap();
        assert_eq!(cm.check(&ok), Ok(vec![]));
        let bad = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": ["x"]}, "data": {"k": 1}});
        assert_eq!(
            cm.check(&bad).err(),
            Some(("data.k".to_owned(), "number", "string".to_owned()))
        );
        let ns = kind_schema(resources::find("", "v1", "namespaces").unwrap()).unwrap();
        assert_eq!(
            ns.check(&json!({"spec": "x"})).err(),
            Some(("spec".to_owned(), "string", "object".to_owned()))
        );
        // A wrong type anywhere wins over unknown fields found before it; nothing below an
        // unknown field is reported again.
        let deployment =
            kind_schema(resources::find("apps", "v1", "deployments").unwrap()).unwrap();
        let both =
            json!({"metadata": {"colour": {"deeper": 1}, "name": "x"}, "spec": {"replicas": "2"}});
        assert_eq!(
            deployment.check(&both).err(),
            Some(("spec.replicas".to_owned(), "string", "integer".to_owned()))
        );
        let nested = json!({"metadata": {"colour": {"deeper": 1}}, "spec": {"template": {"spec": {"containers": [{"name": "c"}, {"name": "d", "x": [1]}]}}}});
        assert_eq!(
            deployment.check(&nested),
            Ok(vec![
                "metadata.colour".to_owned(),
                "spec.template.spec.containers[1].x".to_owned()
            ])
        );
        let pod = kind_schema(resources::find("", "v1", "pods").unwrap()).unwrap();
        let quantities = json!({"spec": {"containers": [{"name": "c", "image": "i", "resources": {"limits": {"cpu": 1, "memory": "1Gi"}}}]}});
        assert_eq!(
            pod.check(&quantities).err(),
            None,
            "quantities may be numbers or strings"
        );
        assert_eq!(
            pod.check(&json!({"spec": {"containers": ["c"]}})).err(),
            Some((
                "spec.containers[0]".to_owned(),
                "string",
                "object".to_owned()
            ))
        );
    }
}
