//! APIServices: upstream's defaulting (`spec.service.port` 443) and validation (the
//! name is `<version>.<group>`, priorities in range, a service reference that names a
//! Service, and `caBundle` with `insecureSkipTLSVerify` refused).

use rkube_api::FieldError;
use serde_json::{json, Value};

use super::KindStrategy;

pub struct ApiServices;

impl KindStrategy for ApiServices {
    fn prepare_for_create(&self, obj: &mut Value) {
        if obj["spec"]["service"].is_object() && obj["spec"]["service"]["port"].is_null() {
            obj["spec"]["service"]["port"] = json!(443);
        }
    }

    fn prepare_for_update(&self, obj: &mut Value, _old: &Value) {
        self.prepare_for_create(obj);
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let spec = &obj["spec"];
        let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let (group, version) = (s(&spec["group"]), s(&spec["version"]));
        let mut errors = Vec::new();
        let required = format!("{version}.{group}");
        let name = s(&obj["metadata"]["name"]);
        if name != required {
            errors.push(FieldError::invalid(
                "metadata.name",
                name.as_str(),
                &format!("must be `spec.version+\".\"+spec.group`: {required:?}"),
            ));
        }
        if version.is_empty() {
            errors.push(FieldError::required("spec.version", ""));
        }
        let local = spec["service"].is_null();
        let group_priority = spec["groupPriorityMinimum"].as_i64().unwrap_or(0);
        let unset_local = local && group_priority == 0;
        if !unset_local && !(1..=20000).contains(&group_priority) {
            errors.push(FieldError::invalid(
                "spec.groupPriorityMinimum",
                group_priority,
                "must be positive and less than 20000",
            ));
        }
        let version_priority = spec["versionPriority"].as_i64().unwrap_or(0);
        if version_priority <= 0 && !local {
            errors.push(FieldError::invalid(
                "spec.versionPriority",
                version_priority,
                "must be positive",
            ));
        }
        if local {
            if spec["caBundle"].as_str().is_some_and(|b| !b.is_empty()) {
                errors.push(FieldError::invalid(
                    "spec.caBundle",
                    "",
                    "local APIServices may not have a caBundle",
                ));
            }
        } else {
            let service = &spec["service"];
            if s(&service["namespace"]).is_empty() {
                errors.push(FieldError::required("spec.service.namespace", ""));
            }
            if s(&service["name"]).is_empty() {
                errors.push(FieldError::required("spec.service.name", ""));
            }
            let port = service["port"].as_i64().unwrap_or(443);
            if !(1..=65535).contains(&port) {
                errors.push(FieldError::invalid(
                    "spec.service.port",
                    port,
                    "port is not valid: must be between 1 and 65535, inclusive",
                ));
            }
            if spec["insecureSkipTLSVerify"] == true
                && spec["caBundle"].as_str().is_some_and(|b| !b.is_empty())
            {
                errors.push(FieldError::invalid(
                    "spec.insecureSkipTLSVerify",
                    true,
                    "may not be true if caBundle is present",
                ));
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(obj: Value) -> Vec<String> {
        ApiServices
            .validate(&obj, None)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn validation() {
        let ok = json!({"metadata": {"name": "v1.w.example.com"}, "spec": {"group": "w.example.com", "version": "v1", "groupPriorityMinimum": 1000, "versionPriority": 15, "service": {"namespace": "ns", "name": "svc", "port": 443}, "caBundle": "QQ=="}});
        assert!(messages(ok.clone()).is_empty());
        let mut bad = ok.clone();
        bad["metadata"]["name"] = json!("v1.other");
        bad["spec"]["insecureSkipTLSVerify"] = json!(true);
        bad["spec"]["versionPriority"] = json!(0);
        let m = messages(bad).join("; ");
        assert!(m.contains("metadata.name: Invalid value: \"v1.other\": must be `spec.version+\".\"+spec.group`: \"v1.w.example.com\""), "{m}");
        assert!(m.contains("spec.insecureSkipTLSVerify: Invalid value: true: may not be true if caBundle is present"), "{m}");
        assert!(
            m.contains("spec.versionPriority: Invalid value: 0: must be positive"),
            "{m}"
        );
        let local = json!({"metadata": {"name": "v1."}, "spec": {"group": "", "version": "v1", "groupPriorityMinimum": 18000, "versionPriority": 1}});
        assert!(messages(local).is_empty());
        let mut defaulted = ok;
        defaulted["spec"]["service"] = json!({"namespace": "ns", "name": "svc"});
        ApiServices.prepare_for_create(&mut defaulted);
        assert_eq!(defaulted["spec"]["service"]["port"], 443);
    }
}
