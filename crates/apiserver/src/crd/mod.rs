//! CustomResourceDefinitions: the dynamic resource registry and what a custom resource
//! needs beyond its table row — its schema (pruning, defaulting, validation), version
//! conversion, printer columns and scale paths.
//!
//! The [`Registry`] holds an immutable [`Snapshot`] (built-in rows plus one row per served
//! version of every established CRD) that is swapped whole when CRDs change; requests take
//! the current snapshot once and use it throughout. The [`controller`] keeps the snapshot
//! and the CRDs' status in step with the store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rkube_api::resources::{self, CustomRow, ResourceInfo};
use rkube_api::structural::{self, Schema};
use rkube_api::FieldError;
use serde_json::{json, Value};

pub mod controller;
pub mod jsonpath;

use jsonpath::JsonPath;

/// Snapshot generations, unique in the process (document caches key on them).
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// One `additionalPrinterColumns` entry.
#[derive(Clone, Debug)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub path: Option<JsonPath>,
}

/// The `scale` subresource's paths.
#[derive(Clone, Debug)]
pub struct ScalePaths {
    pub spec_replicas: Vec<String>,
    pub status_replicas: Vec<String>,
    pub label_selector: Option<Vec<String>>,
}

/// One served version of a CRD: everything serving it needs beyond the table row.
#[derive(Debug)]
pub struct CustomVersion {
    pub info: &'static ResourceInfo,
    /// The CRD's name (`<plural>.<group>`).
    pub crd_name: String,
    pub list_kind: String,
    /// The version objects are stored at.
    pub storage_version: String,
    pub schema: Schema,
    /// The schema as written in the CRD (for OpenAPI).
    pub schema_json: Value,
    pub columns: Vec<PrinterColumn>,
    pub scale: Option<ScalePaths>,
    /// The CRD is being deleted: no new objects.
    pub terminating: bool,
    /// A hash of the CRD's spec, for OpenAPI document hashes.
    pub spec_hash: u64,
}

impl CustomVersion {
    /// Prunes and defaults a request's object (upstream does both while decoding);
    /// returns the pruned fields' paths for `fieldValidation`.
    pub fn decode(&self, obj: &mut Value) -> Vec<String> {
        let removed = structural::prune(&self.schema, obj);
        structural::apply_defaults(&self.schema, obj);
        removed
    }

    /// Validates an object against the schema.
    pub fn validate(&self, obj: &Value) -> Vec<FieldError> {
        structural::validate(&self.schema, obj)
    }

    /// Readies an object for storage: stored at the storage version.
    pub fn to_storage(&self, obj: &mut Value) {
        obj["apiVersion"] = json!(format!("{}/{}", self.info.group, self.storage_version));
    }

    /// Converts a stored object to this version (conversion `None`: only `apiVersion`
    /// changes) and applies this version's defaults, as upstream does on every read.
    pub fn from_storage(&self, stored: &[u8]) -> Vec<u8> {
        let Ok(mut obj) = serde_json::from_slice::<Value>(stored) else {
            return stored.to_vec();
        };
        if !obj.is_object() {
            return stored.to_vec();
        }
        obj["apiVersion"] = json!(self.info.api_version());
        structural::apply_defaults(&self.schema, &mut obj);
        crate::codec::encode_for_store(&obj)
    }

    /// The Table of `objects` with this version's printer columns.
    pub fn table(
        &self,
        objects: &[Value],
        resource_version: &str,
        query: &crate::query::Query,
    ) -> Value {
        let include = query.get("includeObject").unwrap_or("Metadata");
        let default_age = [PrinterColumn {
            name: "Age".into(),
            type_: "date".into(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            path: JsonPath::parse(".metadata.creationTimestamp"),
        }];
        let columns: &[PrinterColumn] = if self.columns.is_empty() {
            &default_age
        } else {
            &self.columns
        };
        let mut definitions = vec![
            json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names", "priority": 0}),
        ];
        for c in columns {
            definitions.push(json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority}));
        }
        let rows: Vec<Value> = objects
            .iter()
            .map(|obj| {
                let mut cells = vec![obj["metadata"]["name"].clone()];
                for c in columns {
                    let found = c.path.as_ref().map(|p| p.find(obj)).unwrap_or_default();
                    cells.push(match found.first() {
                        None => Value::Null,
                        Some(v) => cell(&c.type_, v),
                    });
                }
                let mut row = json!({"cells": cells});
                match include {
                    "None" => {}
                    "Object" => row["object"] = obj.clone(),
                    _ => {
                        row["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
                    }
                }
                row
            })
            .collect();
        json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": resource_version}, "columnDefinitions": definitions, "rows": rows})
    }

    /// The `autoscaling/v1` Scale of an object.
    pub fn scale_of(&self, obj: &Value) -> Value {
        let paths = self.scale.as_ref();
        let get =
            |p: &[String]| -> Option<&Value> { p.iter().try_fold(obj, |v, f| v.get(f.as_str())) };
        let spec = paths
            .and_then(|p| get(&p.spec_replicas))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let status = paths
            .and_then(|p| get(&p.status_replicas))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let selector = paths
            .and_then(|p| p.label_selector.as_deref())
            .and_then(get)
            .and_then(Value::as_str)
            .unwrap_or("");
        let meta = &obj["metadata"];
        let mut status_obj = json!({"replicas": status});
        if !selector.is_empty() {
            status_obj["selector"] = json!(selector);
        }
        json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"], "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"]},
            "spec": {"replicas": spec},
            "status": status_obj,
        })
    }

    /// Sets the replicas a Scale asks for.
    pub fn set_replicas(&self, obj: &mut Value, replicas: i64) {
        let Some(paths) = &self.scale else { return };
        let mut v = obj;
        let (last, parents) = match paths.spec_replicas.split_last() {
            Some(x) => x,
            None => return,
        };
        for f in parents {
            if !v[f.as_str()].is_object() {
                v[f.as_str()] = json!({});
            }
            v = &mut v[f.as_str()];
        }
        v[last.as_str()] = json!(replicas);
    }
}

/// A printer column cell, as upstream's CRD table convertor makes it.
fn cell(type_: &str, v: &Value) -> Value {
    match type_ {
        "string" => match v {
            Value::String(s) => json!(s),
            other => json!(other.to_string()),
        },
        "integer" => match v {
            Value::Number(n) => n
                .as_i64()
                .map(|i| json!(i))
                .or_else(|| n.as_f64().map(|f| json!(f as i64)))
                .unwrap_or(Value::Null),
            _ => Value::Null,
        },
        "number" => match v {
            Value::Number(_) => v.clone(),
            _ => Value::Null,
        },
        "boolean" => match v {
            Value::Bool(_) => v.clone(),
            _ => Value::Null,
        },
        "date" => match v.as_str().and_then(crate::meta::parse_rfc3339) {
            Some(t) => json!(crate::table::human_duration(crate::meta::now_secs() - t)),
            None => Value::Null,
        },
        _ => Value::Null,
    }
}

/// What the API serves: built-in rows and established CRDs' served versions.
pub struct Snapshot {
    pub generation: u64,
    custom: Vec<Arc<CustomVersion>>,
    by_path: HashMap<(&'static str, &'static str, &'static str), Arc<CustomVersion>>,
}

impl Snapshot {
    fn new(custom: Vec<Arc<CustomVersion>>) -> Snapshot {
        let by_path = custom
            .iter()
            .map(|c| ((c.info.group, c.info.version, c.info.plural), c.clone()))
            .collect();
        Snapshot {
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            custom,
            by_path,
        }
    }

    /// The resource `plural` in `group`/`version`, with its CRD version if custom.
    pub fn find(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<(&'static ResourceInfo, Option<Arc<CustomVersion>>)> {
        if let Some(info) = resources::find(group, version, plural) {
            return Some((info, None));
        }
        self.by_path
            .get(&(group, version, plural))
            .map(|c| (c.info, Some(c.clone())))
    }

    /// The CRD version behind a row, if it is custom.
    pub fn custom(&self, info: &ResourceInfo) -> Option<Arc<CustomVersion>> {
        self.by_path
            .get(&(info.group, info.version, info.plural))
            .cloned()
    }

    /// Every served row: built-ins first, then custom resources by group and version
    /// priority.
    pub fn rows(&self) -> impl Iterator<Item = &'static ResourceInfo> + '_ {
        resources::builtin()
            .iter()
            .chain(self.custom.iter().map(|c| c.info))
    }

    /// The served custom versions.
    pub fn custom_versions(&self) -> &[Arc<CustomVersion>] {
        &self.custom
    }

    /// Groups in serving order with their versions (preferred first).
    pub fn groups(&self) -> Vec<(&'static str, Vec<&'static str>)> {
        let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
        for r in self.rows() {
            match out.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) => {
                    if !versions.contains(&r.version) {
                        versions.push(r.version);
                    }
                }
                None => out.push((r.group, vec![r.version])),
            }
        }
        out
    }
}

/// The current [`Snapshot`], replaced whole when CRDs change.
pub struct Registry {
    current: RwLock<Arc<Snapshot>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            current: RwLock::new(Arc::new(Snapshot::new(Vec::new()))),
        }
    }
}

impl Registry {
    /// What is served now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Serves the CRDs in `crds` (their established, served versions) from now on.
    pub fn replace(&self, crds: &[Value]) {
        let mut custom = Vec::new();
        for crd in crds {
            custom.extend(versions_of(crd));
        }
        custom.sort_by(|a, b| {
            (a.info.group, version_priority(a.info.version))
                .cmp(&(b.info.group, version_priority(b.info.version)))
                .then(a.info.plural.cmp(b.info.plural))
        });
        let snapshot = Arc::new(Snapshot::new(custom));
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = snapshot;
    }
}

fn condition_true(crd: &Value, kind: &str) -> bool {
    crd["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == kind && c["status"] == "True")
}

/// Upstream's kube-aware version order: GA before beta before alpha, higher numbers
/// first, anything else last alphabetically.
pub fn version_priority(v: &str) -> (u8, i64, i64, String) {
    let parse = || -> Option<(u8, i64, i64)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: i64 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((0, -major, 0));
        }
        for (tier, word) in [(1u8, "beta"), (2u8, "alpha")] {
            if let Some(n) = tail.strip_prefix(word) {
                let minor: i64 = n.parse().ok()?;
                return Some((tier, -major, -minor));
            }
        }
        None
    };
    match parse() {
        Some((tier, major, minor)) => (tier, major, minor, String::new()),
        None => (3, 0, 0, v.to_owned()),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

fn field_path(p: &str) -> Option<Vec<String>> {
    JsonPath::parse(p)?
        .fields()
        .map(|f| f.into_iter().map(str::to_owned).collect())
}

/// The served versions of an established CRD.
fn versions_of(crd: &Value) -> Vec<Arc<CustomVersion>> {
    if !condition_true(crd, "Established") {
        return Vec::new();
    }
    let spec = &crd["spec"];
    let names = &crd["status"]["acceptedNames"];
    let group = spec["group"].as_str().unwrap_or("");
    let Some(storage_version) = crate::strategy::crds::storage_version(crd) else {
        return Vec::new();
    };
    let spec_hash = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        spec.to_string().hash(&mut h);
        h.finish()
    };
    let short_names = strings(&names["shortNames"]);
    let categories = strings(&names["categories"]);
    let mut out = Vec::new();
    for v in spec["versions"].as_array().into_iter().flatten() {
        if v["served"] != true {
            continue;
        }
        let version = v["name"].as_str().unwrap_or("");
        let scale = &v["subresources"]["scale"];
        let info = resources::custom_row(&CustomRow {
            group,
            version,
            kind: names["kind"].as_str().unwrap_or(""),
            plural: names["plural"].as_str().unwrap_or(""),
            singular: names["singular"].as_str().unwrap_or(""),
            namespaced: spec["scope"] == "Namespaced",
            short_names: &short_names,
            categories: &categories,
            status: v["subresources"]["status"].is_object(),
            scale: scale.is_object(),
        });
        let schema_json = v["schema"]["openAPIV3Schema"].clone();
        let columns = v["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| PrinterColumn {
                name: c["name"].as_str().unwrap_or("").to_owned(),
                type_: c["type"].as_str().unwrap_or("").to_owned(),
                format: c["format"].as_str().unwrap_or("").to_owned(),
                description: c["description"].as_str().unwrap_or("").to_owned(),
                priority: c["priority"].as_i64().unwrap_or(0),
                path: JsonPath::parse(c["jsonPath"].as_str().unwrap_or("")),
            })
            .collect();
        let scale = scale.is_object().then(|| ScalePaths {
            spec_replicas: field_path(scale["specReplicasPath"].as_str().unwrap_or(""))
                .unwrap_or_default(),
            status_replicas: field_path(scale["statusReplicasPath"].as_str().unwrap_or(""))
                .unwrap_or_default(),
            label_selector: scale["labelSelectorPath"].as_str().and_then(field_path),
        });
        out.push(Arc::new(CustomVersion {
            info,
            crd_name: crd["metadata"]["name"].as_str().unwrap_or("").to_owned(),
            list_kind: names["listKind"].as_str().unwrap_or("").to_owned(),
            storage_version: storage_version.clone(),
            schema: Schema::parse(&schema_json),
            schema_json,
            columns,
            scale,
            terminating: crd["metadata"]["deletionTimestamp"].is_string(),
            spec_hash,
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_as_upstream() {
        let mut v = vec!["v1alpha1", "v2", "foo", "v1beta2", "v1", "v1beta1", "v10"];
        v.sort_by_key(|v| version_priority(v));
        assert_eq!(
            v,
            ["v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]
        );
    }

    #[test]
    fn registry_serves_established_crds_only() {
        let crd = json!({
            "metadata": {"name": "gadgets.example.org"},
            "spec": {"group": "example.org", "scope": "Cluster", "names": {"plural": "gadgets", "kind": "Gadget"},
                "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}},
                    "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]},
                    {"name": "v2", "served": false, "storage": false}]},
            "status": {"acceptedNames": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
                "conditions": [{"type": "Established", "status": "True"}]},
        });
        let registry = Registry::default();
        let before = registry.snapshot().generation;
        registry.replace(std::slice::from_ref(&crd));
        let snap = registry.snapshot();
        assert!(snap.generation > before);
        let (info, custom) = snap.find("example.org", "v1", "gadgets").unwrap();
        assert!(!info.namespaced);
        assert!(snap.find("example.org", "v2", "gadgets").is_none());
        let custom = custom.unwrap();
        let table = custom.table(
            &[json!({"metadata": {"name": "g"}, "spec": {"size": 2.0}})],
            "1",
            &crate::query::Query::parse(None),
        );
        assert_eq!(table["rows"][0]["cells"], json!(["g", 2]));
        assert_eq!(table["columnDefinitions"][1]["name"], "Size");
        let mut unestablished = crd.clone();
        unestablished["status"]["conditions"] = json!([]);
        registry.replace(&[unestablished]);
        assert!(registry
            .snapshot()
            .find("example.org", "v1", "gadgets")
            .is_none());
    }
}
