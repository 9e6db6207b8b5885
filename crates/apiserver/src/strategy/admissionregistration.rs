//! Mutating and validating webhook configurations: v1 defaults and validation.

use rkube_api::field_error::BadValue;
use rkube_api::FieldError;
use serde_json::{json, Value};

use super::{list_mut, set_default, KindStrategy};

/// `MutatingWebhookConfiguration` (`mutating`) or `ValidatingWebhookConfiguration`.
pub struct WebhookConfigurations {
    pub mutating: bool,
}

impl WebhookConfigurations {
    fn default_webhooks(&self, obj: &mut Value) {
        for hook in list_mut(obj, "webhooks") {
            set_default(hook, "failurePolicy", json!("Fail"));
            set_default(hook, "matchPolicy", json!("Equivalent"));
            set_default(hook, "namespaceSelector", json!({}));
            set_default(hook, "objectSelector", json!({}));
            set_default(hook, "timeoutSeconds", json!(10));
            if self.mutating {
                set_default(hook, "reinvocationPolicy", json!("Never"));
            }
            for rule in list_mut(hook, "rules") {
                set_default(rule, "scope", json!("*"));
            }
            if let Some(service) = hook
                .get_mut("clientConfig")
                .and_then(|c| c.get_mut("service"))
                .filter(|s| s.is_object())
            {
                set_default(service, "port", json!(443));
            }
        }
    }
}

impl KindStrategy for WebhookConfigurations {
    fn prepare_for_create(&self, obj: &mut Value) {
        self.default_webhooks(obj);
    }

    fn prepare_for_update(&self, obj: &mut Value, _old: &Value) {
        self.default_webhooks(obj);
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        for (i, hook) in obj["webhooks"].as_array().into_iter().flatten().enumerate() {
            let at = |f: &str| format!("webhooks[{i}].{f}");
            let name = hook["name"].as_str().unwrap_or("");
            if name.is_empty() {
                errors.push(FieldError::required(&at("name"), ""));
            } else if name.split('.').filter(|s| !s.is_empty()).count() < 3 {
                errors.push(FieldError::invalid(
                    &at("name"),
                    name,
                    "should be a domain with at least three segments separated by dots",
                ));
            } else if names.contains(&name) {
                errors.push(FieldError::duplicate(&at("name"), name));
            }
            names.push(name);
            let one_of = |field: &str, valid: &[&str], errors: &mut Vec<FieldError>| {
                if let Some(v) = hook[field].as_str() {
                    if !valid.contains(&v) {
                        errors.push(FieldError::not_supported(&at(field), v, valid));
                    }
                }
            };
            one_of("failurePolicy", &["Fail", "Ignore"], &mut errors);
            one_of("matchPolicy", &["Exact", "Equivalent"], &mut errors);
            if self.mutating {
                one_of("reinvocationPolicy", &["Never", "IfNeeded"], &mut errors);
            }
            match hook["sideEffects"].as_str() {
                None => errors.push(FieldError::required(
                    &at("sideEffects"),
                    "must specify one of None, NoneOnDryRun",
                )),
                Some(_) => one_of("sideEffects", &["None", "NoneOnDryRun"], &mut errors),
            }
            let versions: Vec<String> = hook["admissionReviewVersions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            if versions.is_empty() {
                errors.push(FieldError::required(
                    &at("admissionReviewVersions"),
                    "must specify one of v1, v1beta1",
                ));
            } else if !versions.iter().any(|v| v == "v1" || v == "v1beta1") {
                errors.push(FieldError::invalid(
                    &at("admissionReviewVersions"),
                    BadValue::string_slice(Some(&versions)),
                    "must include at least one of v1, v1beta1",
                ));
            }
            if let Some(t) = hook["timeoutSeconds"].as_i64() {
                if !(1..=30).contains(&t) {
                    errors.push(FieldError::invalid(
                        &at("timeoutSeconds"),
                        t,
                        "the timeout value must be between 1 and 30 seconds",
                    ));
                }
            }
            let config = &hook["clientConfig"];
            match (config["url"].as_str(), config["service"].is_object()) {
                (Some(_), true) | (None, false) => errors.push(FieldError::required(
                    &at("clientConfig"),
                    "exactly one of url or service is required",
                )),
                (Some(url), false) if !url.starts_with("https://") => {
                    errors.push(FieldError::invalid(
                        &at("clientConfig.url"),
                        url,
                        "'https' is the only allowed URL scheme",
                    ))
                }
                _ => {}
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        let s = WebhookConfigurations { mutating: true };
        let good = json!({"name": "a.b.c", "clientConfig": {"url": "https://x"}, "sideEffects": "None", "admissionReviewVersions": ["v1"]});
        assert!(s
            .validate(&json!({"webhooks": [good.clone()]}), None)
            .is_empty());
        let mut bad = good.clone();
        bad["name"] = json!("a.b");
        bad["sideEffects"] = json!("Some");
        bad["timeoutSeconds"] = json!(31);
        bad["clientConfig"] = json!({"url": "http://x"});
        bad["reinvocationPolicy"] = json!("Always");
        let errors: Vec<String> = s
            .validate(&json!({"webhooks": [bad, good.clone(), good]}), None)
            .iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect();
        assert_eq!(
            errors,
            vec![
                "webhooks[0].name: Invalid value: \"a.b\": should be a domain with at least three segments separated by dots",
                "webhooks[0].reinvocationPolicy: Unsupported value: \"Always\": supported values: \"Never\", \"IfNeeded\"",
                "webhooks[0].sideEffects: Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\"",
                "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds",
                "webhooks[0].clientConfig.url: Invalid value: \"http://x\": 'https' is the only allowed URL scheme",
                "webhooks[2].name: Duplicate value: \"a.b.c\"",
            ]
        );
        let mut defaulted = json!({"webhooks": [{"name": "a.b.c", "rules": [{}], "clientConfig": {"service": {"name": "s", "namespace": "n"}}}]});
        s.prepare_for_create(&mut defaulted);
        let hook = &defaulted["webhooks"][0];
        assert_eq!(hook["timeoutSeconds"], 10);
        assert_eq!(hook["reinvocationPolicy"], "Never");
        assert_eq!(hook["rules"][0]["scope"], "*");
        assert_eq!(hook["clientConfig"]["service"]["port"], 443);
    }
}
