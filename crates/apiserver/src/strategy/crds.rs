//! CustomResourceDefinitions (`apiextensions.k8s.io/v1`): defaults, validation with
//! upstream's messages, immutable fields, `status.storedVersions`, and deletion through
//! the `customresourcecleanup.apiextensions.k8s.io` finalizer (the cleanup itself is
//! `crate::crd`'s controller).

use rkube_api::field_error::BadValue;
use rkube_api::names::is_dns1035_label;
use rkube_api::structural::{self, Schema};
use rkube_api::FieldError;
use serde_json::{json, Value};

use super::{set_default, KindStrategy};
use crate::meta::meta_str;

/// The finalizer that keeps a CRD until its custom resources are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

pub struct Crds;

/// The version marked `storage: true`, if exactly one is.
pub fn storage_version(obj: &Value) -> Option<String> {
    let versions = obj["spec"]["versions"].as_array()?;
    let mut storage = versions.iter().filter(|v| v["storage"] == true);
    let first = storage.next()?;
    storage
        .next()
        .is_none()
        .then(|| first["name"].as_str().unwrap_or("").to_owned())
}

fn apply_defaults(obj: &mut Value) {
    let spec = &mut obj["spec"];
    if !spec.is_object() {
        return;
    }
    let names = &mut spec["names"];
    if names.is_object() {
        let kind = names["kind"].as_str().unwrap_or("").to_owned();
        if !kind.is_empty() {
            set_default(names, "singular", json!(kind.to_lowercase()));
            set_default(names, "listKind", json!(format!("{kind}List")));
        }
    }
    set_default(spec, "conversion", json!({"strategy": "None"}));
    {
        for v in super::list_mut(spec, "versions") {
            {
                for c in super::list_mut(v, "additionalPrinterColumns") {
                    if c.is_object() {
                        set_default(c, "priority", json!(0));
                    }
                }
            }
        }
    }
}

fn add_stored_version(obj: &mut Value) {
    let Some(storage) = storage_version(obj) else {
        return;
    };
    if !obj["status"].is_object() {
        obj["status"] = json!({});
    }
    let stored = &mut obj["status"]["storedVersions"];
    if !stored.is_array() {
        *stored = json!([]);
    }
    if let Some(list) = stored.as_array_mut() {
        if !list.iter().any(|v| v == storage.as_str()) {
            list.push(json!(storage));
        }
    }
}

impl KindStrategy for Crds {
    fn prepare_for_create(&self, obj: &mut Value) {
        apply_defaults(obj);
        obj["status"] = json!({"conditions": [], "acceptedNames": {"plural": "", "kind": ""}, "storedVersions": []});
        add_stored_version(obj);
    }

    fn prepare_for_update(&self, obj: &mut Value, _old: &Value) {
        apply_defaults(obj);
        add_stored_version(obj);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errors = validate_crd(obj);
        if let Some(old) = old {
            for field in ["group", "scope"] {
                if old["spec"][field] != obj["spec"][field] && !old["spec"][field].is_null() {
                    errors.push(FieldError::invalid(
                        &format!("spec.{field}"),
                        obj["spec"][field].as_str().unwrap_or(""),
                        "field is immutable",
                    ));
                }
            }
        }
        errors
    }

    fn deletion_finalizers(&self) -> &'static [&'static str] {
        &[CLEANUP_FINALIZER]
    }

    fn mark_deleting(&self, obj: &mut Value) {
        let terminating = json!({"type": "Terminating", "status": "True", "lastTransitionTime": crate::meta::now_rfc3339(),
            "reason": "InstanceDeletionPending", "message": "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon"});
        set_condition(obj, terminating);
    }
}

/// Sets a condition of a CRD's status, keeping `lastTransitionTime` when the status is
/// unchanged.
pub fn set_condition(obj: &mut Value, mut condition: Value) {
    if !obj["status"].is_object() {
        obj["status"] = json!({});
    }
    if !obj["status"]["conditions"].is_array() {
        obj["status"]["conditions"] = json!([]);
    }
    let Some(list) = obj["status"]["conditions"].as_array_mut() else {
        return;
    };
    match list.iter_mut().find(|c| c["type"] == condition["type"]) {
        Some(existing) => {
            if existing["status"] == condition["status"] {
                condition["lastTransitionTime"] = existing["lastTransitionTime"].clone();
            }
            *existing = condition;
        }
        None => list.push(condition),
    }
}

fn dns1035(errors: &mut Vec<FieldError>, path: &str, value: &str) {
    let problems = is_dns1035_label(value);
    if !value.is_empty() && !problems.is_empty() {
        errors.push(FieldError::invalid(path, value, &problems.join(",")));
    }
}

/// Upstream's `ValidateCustomResourceDefinition` for the parts rkube serves.
fn validate_crd(obj: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let spec = &obj["spec"];
    let name = meta_str(obj, "name").unwrap_or("");
    let group = spec["group"].as_str().unwrap_or("");
    let plural = spec["names"]["plural"].as_str().unwrap_or("");
    if name != format!("{plural}.{group}") {
        errors.push(FieldError::invalid(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if group.is_empty() {
        errors.push(FieldError::required("spec.group", ""));
    } else {
        let problems = rkube_api::names::is_dns1123_subdomain(group);
        if !problems.is_empty() {
            errors.push(FieldError::invalid(
                "spec.group",
                group,
                &problems.join(","),
            ));
        }
        if group.split('.').count() < 2 {
            errors.push(FieldError::invalid(
                "spec.group",
                group,
                "should be a domain with at least one dot",
            ));
        }
    }
    match spec["scope"].as_str().unwrap_or("") {
        "" => errors.push(FieldError::required("spec.scope", "")),
        "Cluster" | "Namespaced" => {}
        other => errors.push(FieldError::not_supported(
            "spec.scope",
            other,
            &["Cluster", "Namespaced"],
        )),
    }
    let names = &spec["names"];
    for field in ["plural", "singular", "kind", "listKind"] {
        let value = names[field].as_str().unwrap_or("");
        let path = format!("spec.names.{field}");
        if value.is_empty() {
            errors.push(FieldError::required(&path, ""));
            continue;
        }
        let check = if field.ends_with("ind") {
            value.to_lowercase()
        } else {
            value.to_owned()
        };
        let problems = is_dns1035_label(&check);
        if !problems.is_empty() {
            errors.push(FieldError::invalid(&path, value, &problems.join(",")));
        }
    }
    if names["kind"].is_string() && names["kind"] == names["listKind"] {
        errors.push(FieldError::invalid(
            "spec.names.listKind",
            names["listKind"].as_str().unwrap_or(""),
            "kind and listKind may not be the same",
        ));
    }
    for (i, s) in names["shortNames"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        dns1035(
            &mut errors,
            &format!("spec.names.shortNames[{i}]"),
            s.as_str().unwrap_or(""),
        );
    }
    for (i, s) in names["categories"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        dns1035(
            &mut errors,
            &format!("spec.names.categories[{i}]"),
            s.as_str().unwrap_or(""),
        );
    }
    if spec["preserveUnknownFields"] == true {
        errors.push(FieldError::invalid(
            "spec.preserveUnknownFields",
            true,
            "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead",
        ));
    }
    match spec["conversion"]["strategy"].as_str().unwrap_or("None") {
        "None" => {}
        "Webhook" => {
            if !spec["conversion"]["webhook"]["clientConfig"].is_object() {
                errors.push(FieldError::required(
                    "spec.conversion.webhook",
                    "required when strategy is set to Webhook",
                ));
            }
        }
        other => errors.push(FieldError::not_supported(
            "spec.conversion.strategy",
            other,
            &["None", "Webhook"],
        )),
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        errors.push(FieldError::invalid(
            "spec.versions",
            BadValue::Raw("[]apiextensions.CustomResourceDefinitionVersion(nil)".into()),
            "must have exactly one version marked as storage version",
        ));
    } else {
        let storage = versions.iter().filter(|v| v["storage"] == true).count();
        if storage != 1 {
            errors.push(FieldError::invalid(
                "spec.versions",
                BadValue::Omitted,
                "must have exactly one version marked as storage version",
            ));
        }
        if !versions.iter().any(|v| v["served"] == true) {
            errors.push(FieldError::invalid(
                "spec.versions",
                BadValue::Omitted,
                "must have at least one version marked as served",
            ));
        }
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let base = format!("spec.versions[{i}]");
        let vname = v["name"].as_str().unwrap_or("");
        if vname.is_empty() {
            errors.push(FieldError::required(&format!("{base}.name"), ""));
        } else {
            dns1035(&mut errors, &format!("{base}.name"), vname);
            if seen.contains(&vname) {
                errors.push(FieldError::invalid(
                    &format!("{base}.name"),
                    vname,
                    "must be unique",
                ));
            }
            seen.push(vname);
        }
        let schema_path = format!("{base}.schema.openAPIV3Schema");
        match v["schema"]["openAPIV3Schema"].as_object() {
            None => errors.push(FieldError::required(&schema_path, "schemas are required")),
            Some(_) => {
                let schema = Schema::parse(&v["schema"]["openAPIV3Schema"]);
                errors.extend(structural::structural_errors(&schema, &schema_path));
            }
        }
        let scale = &v["subresources"]["scale"];
        if scale.is_object() {
            let sp = format!("{base}.subresources.scale");
            for (field, under) in [
                ("specReplicasPath", ".spec."),
                ("statusReplicasPath", ".status."),
            ] {
                let p = scale[field].as_str().unwrap_or("");
                if p.is_empty() {
                    errors.push(FieldError::required(&format!("{sp}.{field}"), ""));
                } else if !p.starts_with(under) {
                    errors.push(FieldError::invalid(
                        &format!("{sp}.{field}"),
                        p,
                        &format!(
                            "should be a json path under {}",
                            under.trim_end_matches('.')
                        ),
                    ));
                }
            }
            if let Some(p) = scale["labelSelectorPath"].as_str() {
                if !p.starts_with(".spec.") && !p.starts_with(".status.") {
                    errors.push(FieldError::invalid(
                        &format!("{sp}.labelSelectorPath"),
                        p,
                        "should be a json path under either .spec or .status",
                    ));
                }
            }
        }
        for (j, c) in v["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let cp = format!("{base}.additionalPrinterColumns[{j}]");
            if c["name"].as_str().unwrap_or("").is_empty() {
                errors.push(FieldError::required(&format!("{cp}.name"), ""));
            }
            match c["type"].as_str().unwrap_or("") {
                "" => errors.push(FieldError::required(&format!("{cp}.type"), "")),
                "integer" | "number" | "string" | "boolean" | "date" => {}
                other => errors.push(FieldError::not_supported(
                    &format!("{cp}.type"),
                    other,
                    &["integer", "number", "string", "boolean", "date"],
                )),
            }
            if let Some(f) = c["format"].as_str().filter(|f| !f.is_empty()) {
                const FORMATS: [&str; 9] = [
                    "int32",
                    "int64",
                    "float",
                    "double",
                    "byte",
                    "date",
                    "date-time",
                    "password",
                    "name",
                ];
                if !FORMATS.contains(&f) {
                    errors.push(FieldError::not_supported(
                        &format!("{cp}.format"),
                        f,
                        &FORMATS,
                    ));
                }
            }
            if c["jsonPath"].as_str().unwrap_or("").is_empty() {
                errors.push(FieldError::required(&format!("{cp}.jsonPath"), ""));
            }
        }
    }
    for (i, s) in obj["status"]["storedVersions"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let s = s.as_str().unwrap_or("");
        if !versions.iter().any(|v| v["name"] == s) && !versions.is_empty() {
            errors.push(FieldError::invalid(
                &format!("status.storedVersions[{i}]"),
                s,
                "must appear in spec.versions",
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object"}}}]},
        })
    }

    fn errors(obj: &Value) -> Vec<String> {
        let mut obj = obj.clone();
        Crds.prepare_for_create(&mut obj);
        Crds.validate(&obj, None)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn defaults_names_and_status() {
        let mut obj = crd();
        Crds.prepare_for_create(&mut obj);
        assert_eq!(obj["spec"]["names"]["singular"], "widget");
        assert_eq!(obj["spec"]["names"]["listKind"], "WidgetList");
        assert_eq!(obj["spec"]["conversion"]["strategy"], "None");
        assert_eq!(obj["status"]["storedVersions"], json!(["v1"]));
        assert!(errors(&crd()).is_empty());
    }

    #[test]
    fn validation_messages() {
        let mut bad = crd();
        bad["metadata"]["name"] = json!("widget.example.com");
        assert_eq!(
            errors(&bad),
            [
                r#"metadata.name: Invalid value: "widget.example.com": must be spec.names.plural+"."+spec.group"#
            ]
        );
        let mut bad = crd();
        bad["spec"]["versions"][0]["schema"] = json!({});
        assert_eq!(
            errors(&bad),
            ["spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"]
        );
        let mut bad = crd();
        bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"] =
            json!({"type": "object", "properties": {"spec": {"properties": {}}}});
        assert_eq!(
            errors(&bad),
            ["spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"]
        );
        let mut bad = crd();
        bad["spec"]["versions"][0]["storage"] = json!(false);
        assert_eq!(
            errors(&bad),
            ["spec.versions: Invalid value: must have exactly one version marked as storage version"]
        );
        let mut bad = crd();
        bad["spec"]["scope"] = json!("Global");
        assert_eq!(
            errors(&bad),
            [
                r#"spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced""#
            ]
        );
    }
}
