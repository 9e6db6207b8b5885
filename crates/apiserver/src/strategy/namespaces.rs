//! Namespaces: the `kubernetes` finalizer in the spec, phase Active/Terminating, and the
//! `kubernetes.io/metadata.name` label.

use serde_json::{json, Value};

use super::KindStrategy;
use crate::meta::{meta_str, metadata_mut};

pub struct Namespaces;

impl KindStrategy for Namespaces {
    fn prepare_for_create(&self, obj: &mut Value) {
        let spec = obj
            .as_object_mut()
            .expect("object")
            .entry("spec")
            .or_insert_with(|| json!({}));
        if spec.get("finalizers").is_none() {
            spec["finalizers"] = json!(["kubernetes"]);
        }
        obj["status"] = json!({"phase": "Active"});
        let name = meta_str(obj, "name").unwrap_or("").to_owned();
        let labels = metadata_mut(obj)
            .entry("labels")
            .or_insert_with(|| json!({}));
        if labels.is_object() {
            labels["kubernetes.io/metadata.name"] = json!(name);
        }
    }

    fn prepare_for_update(&self, obj: &mut Value, old: &Value) {
        if let Some(status) = old.get("status") {
            obj["status"] = status.clone();
        }
    }

    fn has_spec_finalizers(&self, obj: &Value) -> bool {
        obj["spec"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
    }

    fn mark_deleting(&self, obj: &mut Value) {
        obj["status"]["phase"] = json!("Terminating");
    }
}
