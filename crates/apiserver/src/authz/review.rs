//! The access review APIs of `authorization.k8s.io/v1`: SubjectAccessReview,
//! LocalSubjectAccessReview, SelfSubjectAccessReview and SelfSubjectRulesReview. Each is
//! create-only and computed: the response is the request with a `status` the authorizer
//! fills in; nothing is stored (what `kubectl auth can-i` and `--list` ask).

use rkube_api::field_error::BadValue;
use rkube_api::resources::ResourceInfo;
use rkube_api::FieldError;
use serde_json::{json, Value};

use super::attributes::Attributes;
use super::rbac::PolicyRule;
use super::{Authorizer, Decision};
use crate::auth::UserInfo;
use crate::error::ApiError;

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or("").to_owned()
}

/// The attributes a review's spec asks about, for `user`.
fn attributes_of(spec: &Value, user: UserInfo) -> Attributes {
    if let Some(ra) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
        Attributes {
            user,
            verb: s(&ra["verb"]),
            resource_request: true,
            api_group: s(&ra["group"]),
            api_version: s(&ra["version"]),
            resource: s(&ra["resource"]),
            subresource: s(&ra["subresource"]),
            name: s(&ra["name"]),
            namespace: s(&ra["namespace"]),
            path: String::new(),
        }
    } else {
        let nra = &spec["nonResourceAttributes"];
        Attributes {
            user,
            verb: s(&nra["verb"]),
            path: s(&nra["path"]),
            ..Default::default()
        }
    }
}

/// The checks every access review spec gets.
fn validate_spec(spec: &Value, errors: &mut Vec<FieldError>) {
    let has_resource = spec.get("resourceAttributes").is_some_and(Value::is_object);
    let has_non_resource = spec
        .get("nonResourceAttributes")
        .is_some_and(Value::is_object);
    if has_resource && has_non_resource {
        errors.push(FieldError::invalid(
            "spec.nonResourceAttributes",
            BadValue::Raw(spec["nonResourceAttributes"].to_string()),
            "cannot be specified in combination with resourceAttributes",
        ));
    }
    if !has_resource && !has_non_resource {
        errors.push(FieldError::invalid(
            "spec.resourceAttributes",
            BadValue::Null,
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ));
    }
}

/// The review's metadata may hold nothing (`namespace` excepted where allowed).
fn validate_metadata(obj: &Value, allow_namespace: bool, errors: &mut Vec<FieldError>) {
    let Some(meta) = obj["metadata"].as_object() else {
        return;
    };
    let set = meta.iter().any(|(k, v)| {
        let empty = v.is_null() || v == &json!({}) || v == &json!([]) || v == &json!("");
        let allowed = k == "managedFields" || (allow_namespace && k == "namespace");
        !empty && !allowed
    });
    if set {
        errors.push(FieldError::invalid(
            "metadata",
            BadValue::Raw(obj["metadata"].to_string()),
            "must be empty",
        ));
    }
}

fn decision_status(decision: &Decision) -> Value {
    let mut status = json!({"allowed": decision.allowed()});
    if !decision.reason().is_empty() {
        status["reason"] = json!(decision.reason());
    }
    status
}

/// Computes the response to creating `obj`, an access review of kind `info`, as `user`;
/// `namespace` is the URL's (LocalSubjectAccessReview).
pub fn create(
    authz: &Authorizer,
    info: &ResourceInfo,
    user: &UserInfo,
    namespace: Option<&str>,
    mut obj: Value,
) -> Result<Value, ApiError> {
    let spec = obj.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut errors = Vec::new();
    let status = match info.plural {
        "subjectaccessreviews" | "localsubjectaccessreviews" => {
            validate_spec(&spec, &mut errors);
            if strings(&spec["groups"]).is_empty() && s(&spec["user"]).is_empty() {
                errors.push(FieldError::invalid(
                    "spec.user",
                    BadValue::String(String::new()),
                    "at least one of user or group must be specified",
                ));
            }
            let local = info.plural == "localsubjectaccessreviews";
            validate_metadata(&obj, local, &mut errors);
            if local
                && spec
                    .get("nonResourceAttributes")
                    .is_some_and(Value::is_object)
            {
                errors.push(FieldError::invalid(
                    "spec.nonResourceAttributes",
                    BadValue::Raw(spec["nonResourceAttributes"].to_string()),
                    "disallowed on this kind of request",
                ));
            }
            if !errors.is_empty() {
                return Err(ApiError::invalid(info, "", &errors));
            }
            let subject = UserInfo {
                name: s(&spec["user"]),
                uid: s(&spec["uid"]),
                groups: strings(&spec["groups"]),
                extra: spec["extra"]
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), strings(v))).collect())
                    .unwrap_or_default(),
            };
            let mut a = attributes_of(&spec, subject);
            if local {
                let ns = namespace.unwrap_or("");
                if a.namespace.is_empty() {
                    a.namespace = ns.to_owned();
                    obj["spec"]["resourceAttributes"]["namespace"] = json!(ns);
                } else if a.namespace != ns {
                    return Err(ApiError::bad_request(format!(
                        "spec.resourceAttributes.namespace must match namespace: {ns}"
                    )));
                }
            }
            decision_status(&authz.explain(&a))
        }
        "selfsubjectaccessreviews" => {
            validate_spec(&spec, &mut errors);
            if !errors.is_empty() {
                return Err(ApiError::invalid(info, "", &errors));
            }
            decision_status(&authz.explain(&attributes_of(&spec, user.clone())))
        }
        "selfsubjectrulesreviews" => {
            let ns = s(&spec["namespace"]);
            if ns.is_empty() {
                return Err(ApiError::bad_request("no namespace on request"));
            }
            rules_status(authz, user, &ns)
        }
        other => {
            return Err(ApiError::not_implemented(format!(
                "{other} are not implemented"
            )))
        }
    };
    obj["status"] = status;
    if obj["metadata"].is_null() {
        obj["metadata"] = json!({});
    }
    Ok(obj)
}

/// A SelfSubjectRulesReview's status: every rule the user holds in `namespace`.
fn rules_status(authz: &Authorizer, user: &UserInfo, namespace: &str) -> Value {
    let (rules, errors) = authz.rules_for(user, namespace);
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for PolicyRule {
        verbs,
        api_groups,
        resources,
        resource_names,
        non_resource_urls,
    } in rules
    {
        if !resources.is_empty() {
            let mut r = json!({"verbs": verbs, "apiGroups": api_groups, "resources": resources});
            if !resource_names.is_empty() {
                r["resourceNames"] = json!(resource_names);
            }
            resource_rules.push(r);
        }
        if !non_resource_urls.is_empty() {
            non_resource_rules.push(json!({"verbs": verbs, "nonResourceURLs": non_resource_urls}));
        }
    }
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": false,
    });
    if !errors.is_empty() {
        status["evaluationError"] = json!(super::rbac::aggregate_errors(&errors));
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(plural: &str) -> &'static ResourceInfo {
        rkube_api::resources::find("authorization.k8s.io", "v1", plural).unwrap()
    }

    #[test]
    fn validates_specs_as_upstream() {
        let authz = Authorizer::default();
        let user = UserInfo {
            name: "alice".into(),
            groups: vec!["system:masters".into()],
            ..Default::default()
        };
        let err = create(
            &authz,
            review("selfsubjectaccessreviews"),
            &user,
            None,
            json!({"spec": {}}),
        )
        .unwrap_err();
        assert_eq!(err.code(), 422);
        assert!(
            err.0.message.contains(
                "exactly one of nonResourceAttributes or resourceAttributes must be specified"
            ),
            "{}",
            err.0.message
        );
        let err = create(
            &authz,
            review("subjectaccessreviews"),
            &user,
            None,
            json!({"spec": {"resourceAttributes": {"verb": "get"}}}),
        )
        .unwrap_err();
        assert!(
            err.0
                .message
                .contains("at least one of user or group must be specified"),
            "{}",
            err.0.message
        );
        let ok = create(
            &authz,
            review("selfsubjectaccessreviews"),
            &user,
            None,
            json!({"spec": {"nonResourceAttributes": {"verb": "get", "path": "/x"}}}),
        )
        .unwrap();
        assert_eq!(ok["status"], json!({"allowed": true}));
        let err = create(&authz, review("localsubjectaccessreviews"), &user, Some("a"), json!({"spec": {"user": "bob", "resourceAttributes": {"verb": "get", "namespace": "b"}}})).unwrap_err();
        assert_eq!(
            err.0.message,
            "spec.resourceAttributes.namespace must match namespace: a"
        );
        let rules = create(
            &authz,
            review("selfsubjectrulesreviews"),
            &user,
            None,
            json!({"spec": {"namespace": "default"}}),
        )
        .unwrap();
        assert_eq!(
            rules["status"]["resourceRules"][0],
            json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})
        );
        assert_eq!(
            rules["status"]["nonResourceRules"][0],
            json!({"verbs": ["*"], "nonResourceURLs": ["*"]})
        );
    }
}
