//! Registry strategies: what the generic handlers do differently per kind (upstream's
//! `rest.RESTCreateStrategy`/`RESTUpdateStrategy`/graceful deletion). Today one generic
//! strategy with the per-kind rules the core needs (namespaces); per-kind defaulting and
//! validation grow here, one module per kind.

use rkube_api::resources::ResourceInfo;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::meta::{meta_str, metadata_mut};
use crate::rest::DeleteOptions;

fn has_status(info: &ResourceInfo) -> bool {
    info.subresources.iter().any(|s| s.name == "status")
}

fn is(info: &ResourceInfo, group: &str, plural: &str) -> bool {
    info.group == group && info.plural == plural
}

/// Fills in what the server owns on create.
pub fn prepare_for_create(info: &ResourceInfo, obj: &mut Value) {
    if obj.get("spec").is_some() {
        metadata_mut(obj).insert("generation".into(), json!(1));
    }
    if has_status(info) {
        // Status is written by controllers through the status subresource.
        if let Some(map) = obj.as_object_mut() {
            map.remove("status");
        }
    }
    if is(info, "", "namespaces") {
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
        let meta = metadata_mut(obj);
        let labels = meta.entry("labels").or_insert_with(|| json!({}));
        if labels.is_object() {
            labels["kubernetes.io/metadata.name"] = json!(name);
        }
    }
}

/// Carries over what an update may not change, and splits spec from status.
pub fn prepare_for_update(info: &ResourceInfo, obj: &mut Value, old: &Value, status_only: bool) {
    if has_status(info) {
        if status_only {
            let status = obj.get("status").cloned();
            let mut merged = old.clone();
            match status {
                Some(s) => merged["status"] = s,
                None => {
                    merged.as_object_mut().expect("object").remove("status");
                }
            }
            *obj = merged;
        } else {
            match old.get("status") {
                Some(s) => obj["status"] = s.clone(),
                None => {
                    obj.as_object_mut().expect("object").remove("status");
                }
            }
        }
    }
    let old_meta = old.get("metadata").cloned().unwrap_or_default();
    let meta = metadata_mut(obj);
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old_meta.get(field) {
            Some(v) => meta.insert(field.into(), v.clone()),
            None => meta.remove(field),
        };
    }
    meta.remove("resourceVersion");
    if obj.get("spec") != old.get("spec") && !status_only {
        let generation = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        metadata_mut(obj).insert("generation".into(), json!(generation));
    }
    if is(info, "", "namespaces") && !status_only {
        if let Some(s) = old.get("status") {
            obj["status"] = s.clone();
        }
    }
}

/// Validates the parts every kind shares (names); kind-specific validation comes with
/// each kind's strategy.
pub fn validate(info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let name = meta_str(obj, "name").unwrap_or("");
    let errors = if old.is_none() {
        rkube_api::names::validate_object_name(
            info.name_rule(),
            name,
            meta_str(obj, "generateName").unwrap_or(""),
        )
    } else {
        Vec::new()
    };
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(info, name, &errors))
    }
}

/// Finalizers a kind keeps in its spec (namespaces' `spec.finalizers`).
pub fn has_spec_finalizers(info: &ResourceInfo, obj: &Value) -> bool {
    is(info, "", "namespaces")
        && obj["spec"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
}

/// How a delete proceeds.
pub enum Deletion {
    /// Remove the object now.
    Now,
    /// The object was marked for deletion (deletionTimestamp) and stays until its
    /// finalizers are removed or its node confirms.
    Pending,
}

/// Decides how a delete proceeds and marks the object when it must wait.
pub fn begin_delete(info: &ResourceInfo, obj: &mut Value, options: &DeleteOptions) -> Deletion {
    let already = meta_str(obj, "deletionTimestamp").is_some();
    let mut finalizers: Vec<Value> = obj["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    match options.propagation_policy.as_deref() {
        Some("Foreground") if !finalizers.contains(&json!("foregroundDeletion")) => {
            finalizers.push(json!("foregroundDeletion"))
        }
        Some("Orphan") if !finalizers.contains(&json!("orphan")) => {
            finalizers.push(json!("orphan"))
        }
        _ => {}
    }
    let spec_finalizers = has_spec_finalizers(info, obj);
    let graceful_pod = is(info, "", "pods")
        && obj["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
        && options
            .grace_period_seconds
            .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30)
            > 0;
    if finalizers.is_empty() && !spec_finalizers && !graceful_pod {
        return Deletion::Now;
    }
    let grace = if graceful_pod {
        options
            .grace_period_seconds
            .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30)
    } else {
        0
    };
    let meta = metadata_mut(obj);
    if !already {
        let at = crate::meta::rfc3339(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
                + grace,
        );
        meta.insert("deletionTimestamp".into(), json!(at));
        meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
    }
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), Value::Array(finalizers));
    }
    if is(info, "", "namespaces") {
        obj["status"]["phase"] = json!("Terminating");
    }
    Deletion::Pending
}
