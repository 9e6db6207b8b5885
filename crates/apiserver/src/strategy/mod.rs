//! Registry strategies: what the generic handlers do differently per kind (upstream's
//! `rest.RESTCreateStrategy`/`RESTUpdateStrategy`/graceful deletion).
//!
//! The rules every kind shares live here; a kind with rules of its own has one module
//! implementing [`KindStrategy`], listed in [`for_kind`].

use rkube_api::resources::ResourceInfo;
use rkube_api::FieldError;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::meta::{meta_str, metadata_mut};
use crate::rest::DeleteOptions;

mod admissionregistration;
mod apiservices;
mod autoscaling;
mod batch;
pub(crate) mod crds;
mod custom;
mod namespaces;
mod pods;
mod secrets;
mod services;
mod workloads;

/// What one kind does beyond the shared rules. Every method has a do-nothing default.
pub trait KindStrategy: Sync {
    /// Defaults and server-owned fields on create (after the shared ones).
    fn prepare_for_create(&self, _obj: &mut Value) {}
    /// Carries over what a (non-status) update may not change (after the shared rules).
    fn prepare_for_update(&self, _obj: &mut Value, _old: &Value) {}
    /// Kind-specific validation; `old` is set on update.
    fn validate(&self, _obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        Vec::new()
    }
    /// Whether deletion waits for finalizers kept in the spec.
    fn has_spec_finalizers(&self, _obj: &Value) -> bool {
        false
    }
    /// Seconds a delete waits for the object's owner to confirm (pods on a node); 0 deletes
    /// at once.
    fn grace_period(&self, _obj: &Value, _options: &DeleteOptions) -> i64 {
        0
    }
    /// Marks an object whose deletion must wait (e.g. a namespace turns Terminating).
    fn mark_deleting(&self, _obj: &mut Value) {}
    /// Finalizers the server adds when an object of this kind is deleted (CRDs wait for
    /// their custom resources to go).
    fn deletion_finalizers(&self) -> &'static [&'static str] {
        &[]
    }
}

/// Sets `field` of `obj` to `value` unless it already holds a non-null value (upstream's
/// defaulting of an unset field).
pub(crate) fn set_default(obj: &mut Value, field: &str, value: Value) {
    if obj.get(field).is_none_or(Value::is_null) {
        obj[field] = value;
    }
}

/// The elements of list `field` of `obj`, if it has one. (Indexing with `obj[field]` on a
/// mutable value would insert a `null` field, which upstream's JSON never has.)
pub(crate) fn list_mut<'a>(obj: &'a mut Value, field: &str) -> impl Iterator<Item = &'a mut Value> {
    obj.get_mut(field)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

struct Generic;
impl KindStrategy for Generic {}

/// The strategy of a kind.
pub fn for_kind(info: &ResourceInfo) -> &'static dyn KindStrategy {
    if info.is_custom() {
        return &custom::CustomResources;
    }
    match (info.group, info.plural) {
        ("apiextensions.k8s.io", "customresourcedefinitions") => &crds::Crds,
        ("", "namespaces") => &namespaces::Namespaces,
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations") => {
            &admissionregistration::WebhookConfigurations { mutating: true }
        }
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations") => {
            &admissionregistration::WebhookConfigurations { mutating: false }
        }
        ("", "pods") => &pods::Pods,
        ("", "secrets") => &secrets::Secrets,
        ("batch", "jobs") => &batch::Jobs,
        ("batch", "cronjobs") => &batch::CronJobs,
        ("", "services") => &services::Services,
        ("apiregistration.k8s.io", "apiservices") => &apiservices::ApiServices,
        ("autoscaling", "horizontalpodautoscalers") => &autoscaling::HorizontalPodAutoscalers,
        ("apps", "deployments") => &workloads::Workload::Deployment,
        ("apps", "replicasets") => &workloads::Workload::ReplicaSet,
        ("apps", "statefulsets") => &workloads::Workload::StatefulSet,
        ("apps", "daemonsets") => &workloads::Workload::DaemonSet,
        _ => &Generic,
    }
}

fn has_status(info: &ResourceInfo) -> bool {
    info.subresources.iter().any(|s| s.name == "status")
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
    for_kind(info).prepare_for_create(obj);
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
    if !status_only {
        for_kind(info).prepare_for_update(obj, old);
    }
}

/// Validates the parts every kind shares (names); kind-specific validation comes with
/// each kind's strategy.
pub fn validate(info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let name = meta_str(obj, "name").unwrap_or("");
    let mut errors = if old.is_none() {
        rkube_api::names::validate_object_name(
            info.name_rule(),
            name,
            meta_str(obj, "generateName").unwrap_or(""),
        )
    } else {
        Vec::new()
    };
    errors.extend(for_kind(info).validate(obj, old));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(info, name, &errors))
    }
}

/// Finalizers a kind keeps in its spec (namespaces' `spec.finalizers`).
pub fn has_spec_finalizers(info: &ResourceInfo, obj: &Value) -> bool {
    for_kind(info).has_spec_finalizers(obj)
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
    let strategy = for_kind(info);
    if !already {
        for f in strategy.deletion_finalizers() {
            if !finalizers.contains(&json!(f)) {
                finalizers.push(json!(f));
            }
        }
    }
    let spec_finalizers = strategy.has_spec_finalizers(obj);
    let grace = strategy.grace_period(obj, options).max(0);
    if finalizers.is_empty() && !spec_finalizers && grace == 0 {
        return Deletion::Now;
    }
    let meta = metadata_mut(obj);
    if !already {
        let at = crate::meta::rfc3339(crate::meta::now_secs() + grace);
        meta.insert("deletionTimestamp".into(), json!(at));
        meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
    }
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), Value::Array(finalizers));
    }
    strategy.mark_deleting(obj);
    Deletion::Pending
}
