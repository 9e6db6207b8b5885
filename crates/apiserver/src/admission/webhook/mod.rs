//! MutatingAdmissionWebhook and ValidatingAdmissionWebhook: the configurations'
//! webhooks that match a request (rules, namespace and object selectors) are sent an
//! `AdmissionReview` v1 over HTTPS; mutating webhooks answer with JSON patches, run in
//! order (and once more with `reinvocationPolicy: IfNeeded` when a later one changed the
//! object), validating webhooks may only allow or deny.
//!
//! The configurations come from the watch caches of their resources, parsed again only
//! when a configuration changes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use rkube_api::LabelSelector;
use serde_json::{json, Value};

use super::{lookup, resource, Operation, Plugin, Request, Verdict};
use crate::error::ApiError;
use crate::meta::labels;

pub mod client;
mod rules;

use client::Endpoint;
use rules::Rule;

/// `timeoutSeconds` when unset, and its most.
const DEFAULT_TIMEOUT: u64 = 10;
const MAX_TIMEOUT: u64 = 30;

/// One webhook of a configuration.
#[derive(Debug)]
pub struct Webhook {
    pub name: String,
    client_config: Value,
    ca_bundle: Vec<u8>,
    rules: Vec<Rule>,
    fail_open: bool,
    namespace_selector: Option<LabelSelector>,
    object_selector: Option<LabelSelector>,
    side_effects: String,
    timeout: Duration,
    reinvoke_if_needed: bool,
}

impl Webhook {
    fn parse(hook: &Value) -> Option<Webhook> {
        let selector = |field: &str| match &hook[field] {
            Value::Null => Ok(None),
            v => LabelSelector::from_json(v),
        };
        let ca_bundle = hook["clientConfig"]["caBundle"]
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .unwrap_or_default();
        let timeout = hook["timeoutSeconds"]
            .as_u64()
            .unwrap_or(DEFAULT_TIMEOUT)
            .clamp(1, MAX_TIMEOUT);
        Some(Webhook {
            name: hook["name"].as_str()?.to_owned(),
            client_config: hook["clientConfig"].clone(),
            ca_bundle,
            rules: hook["rules"]
                .as_array()
                .map(|r| r.iter().map(Rule::parse).collect())
                .unwrap_or_default(),
            fail_open: hook["failurePolicy"] == "Ignore",
            namespace_selector: selector("namespaceSelector").ok()?,
            object_selector: selector("objectSelector").ok()?,
            side_effects: hook["sideEffects"].as_str().unwrap_or("Unknown").to_owned(),
            timeout: Duration::from_secs(timeout),
            reinvoke_if_needed: hook["reinvocationPolicy"] == "IfNeeded",
        })
    }

    /// Whether this webhook wants the request (rules, then selectors).
    async fn matches(&self, r: &Request) -> Result<bool, ApiError> {
        if !self.rules.iter().any(|rule| rule.matches(r)) {
            return Ok(false);
        }
        if let Some(selector) = &self.object_selector {
            let hit = [r.object.as_ref(), r.old.as_ref()]
                .into_iter()
                .flatten()
                .any(|o| selector.matches(&labels(o)));
            if !hit {
                return Ok(false);
            }
        }
        if let Some(selector) = &self.namespace_selector {
            if r.info.group.is_empty() && r.info.plural == "namespaces" {
                let subject = r.subject().map(labels).unwrap_or_default();
                return Ok(selector.matches(&subject));
            }
            if r.namespace.is_empty() {
                return Ok(true);
            }
            let namespaces = resource("", "v1", "namespaces");
            let ns_labels = lookup(&r.state, namespaces, None, &r.namespace)
                .await?
                .map(|ns| labels(&ns))
                .unwrap_or_default();
            return Ok(selector.matches(&ns_labels));
        }
        Ok(true)
    }

    /// Where to send the review: the URL, or the Service's cluster IP and port.
    async fn endpoint(&self, r: &Request) -> Result<Endpoint, String> {
        if let Some(url) = self.client_config["url"].as_str() {
            return Endpoint::from_url(url, self.timeout);
        }
        let service = &self.client_config["service"];
        let (Some(ns), Some(name)) = (service["namespace"].as_str(), service["name"].as_str())
        else {
            return Err("neither service nor URL is specified".into());
        };
        let services = resource("", "v1", "services");
        let found = lookup(&r.state, services, Some(ns), name)
            .await
            .map_err(|e| e.0.message)?
            .ok_or_else(|| format!("service \"{name}\" not found"))?;
        let ip = found["spec"]["clusterIP"]
            .as_str()
            .filter(|ip| !ip.is_empty() && *ip != "None")
            .ok_or_else(|| format!("service {ns}/{name} has no cluster IP"))?;
        let port = service["port"].as_u64().unwrap_or(443) as u16;
        Ok(Endpoint::for_service(
            ip,
            port,
            format!("{name}.{ns}.svc"),
            service["path"].as_str().unwrap_or("/"),
            self.timeout,
        ))
    }

    /// Sends the review; returns the webhook's `response`.
    async fn call(&self, r: &Request) -> Result<Value, CallFailed> {
        let endpoint = self.endpoint(r).await.map_err(CallFailed)?;
        let uid = uuid::Uuid::new_v4().to_string();
        let review = review(r, &uid);
        let answer = client::call(&endpoint, &self.ca_bundle, &review, self.timeout)
            .await
            .map_err(|e| {
                CallFailed(format!(
                    "failed to call webhook: Post \"{}\": {}",
                    endpoint.url, e.0
                ))
            })?;
        let response = answer["response"].clone();
        if !response.is_object() {
            return Err(CallFailed("webhook response was absent".into()));
        }
        let got = response["uid"].as_str().unwrap_or("");
        if got != uid {
            return Err(CallFailed(format!(
                "expected response.uid=\"{uid}\", got \"{got}\""
            )));
        }
        Ok(response)
    }

    /// Calls the webhook and applies the failure policy; `Ok(None)`: ignored failure.
    async fn admit(&self, r: &mut Request) -> Result<Option<Value>, ApiError> {
        if r.dry_run && !matches!(self.side_effects.as_str(), "None" | "NoneOnDryRun") {
            return Err(ApiError::bad_request(format!(
                "admission webhook \"{}\" does not support dry run",
                self.name
            )));
        }
        match self.call(r).await {
            Ok(response) => {
                if let Some(warnings) = response["warnings"].as_array() {
                    r.warnings
                        .extend(warnings.iter().filter_map(Value::as_str).map(str::to_owned));
                }
                if response["allowed"] != true {
                    return Err(denied(&self.name, &response["status"]));
                }
                Ok(Some(response))
            }
            Err(CallFailed(why)) if self.fail_open => {
                tracing::warn!(
                    webhook = self.name,
                    error = why,
                    "failed calling webhook, failing open"
                );
                Ok(None)
            }
            Err(CallFailed(why)) => {
                tracing::warn!(
                    webhook = self.name,
                    error = why,
                    "failed calling webhook, failing closed"
                );
                Err(ApiError::internal(format!(
                    "failed calling webhook \"{}\": {why}",
                    self.name
                )))
            }
        }
    }
}

/// A call that failed (subject to the failure policy).
struct CallFailed(String);

/// Upstream's error for a denial: the webhook's Status with a code of at least 400 and
/// the message prefixed with who denied it.
fn denied(name: &str, status: &Value) -> ApiError {
    let text = |field: &str| status[field].as_str().unwrap_or("").to_owned();
    let mut result = rkube_api::Status::failure(
        status["code"].as_u64().unwrap_or(0) as u16,
        &text("reason"),
        text("message"),
        serde_json::from_value(status["details"].clone()).ok(),
    );
    if result.code < 400 {
        result.code = 400;
    }
    let by = format!("admission webhook \"{name}\" denied the request");
    result.message = if !result.message.is_empty() {
        format!("{by}: {}", result.message)
    } else if !result.reason.is_empty() {
        format!("{by}: {}", result.reason)
    } else {
        format!("{by} without explanation")
    };
    result.into()
}

/// The `AdmissionReview` v1 sent for `r`.
fn review(r: &Request, uid: &str) -> Value {
    let info = r.info;
    let (group, version) = match r.subject().and_then(|o| o["apiVersion"].as_str()) {
        Some(av) => match av.split_once('/') {
            Some((g, v)) => (g.to_owned(), v.to_owned()),
            None => (String::new(), av.to_owned()),
        },
        None => (info.group.to_owned(), info.version.to_owned()),
    };
    let kind = r
        .subject()
        .and_then(|o| o["kind"].as_str())
        .unwrap_or(info.kind)
        .to_owned();
    let gvk = json!({"group": group, "version": version, "kind": kind});
    let gvr = json!({"group": info.group, "version": info.version, "resource": info.plural});
    let options = match r.operation {
        Operation::Create => json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}),
        Operation::Update => json!({"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"}),
        Operation::Delete => json!({"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"}),
        Operation::Connect => Value::Null,
    };
    let mut request = json!({
        "uid": uid,
        "kind": gvk,
        "resource": gvr,
        "requestKind": gvk,
        "requestResource": gvr,
        "name": r.name,
        "operation": r.operation.as_str(),
        "userInfo": r.user.to_json(),
        "object": r.object.clone().unwrap_or(Value::Null),
        "oldObject": r.old.clone().unwrap_or(Value::Null),
        "dryRun": r.dry_run,
        "options": options,
    });
    if !r.subresource.is_empty() {
        request["subResource"] = json!(r.subresource);
        request["requestSubResource"] = json!(r.subresource);
    }
    if !r.namespace.is_empty() {
        request["namespace"] = json!(r.namespace);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

/// Applies a mutating webhook's JSON patch to the request's object.
fn apply_patch(name: &str, response: &Value, r: &mut Request) -> Result<bool, ApiError> {
    let Some(patch) = response["patch"].as_str().filter(|p| !p.is_empty()) else {
        return Ok(false);
    };
    let patch_type = response["patchType"].as_str().unwrap_or("");
    if patch_type != "JSONPatch" {
        return Err(ApiError::internal(format!(
            "failed calling webhook \"{name}\": unsupported patch type \"{patch_type}\""
        )));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .map_err(|e| ApiError::internal(format!("failed calling webhook \"{name}\": {e}")))?;
    let patch: json_patch::Patch = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::internal(format!("failed calling webhook \"{name}\": {e}")))?;
    let Some(obj) = r.object.as_mut() else {
        return Ok(false);
    };
    let before = obj.clone();
    json_patch::patch(obj, &patch).map_err(|e| ApiError::internal(e.to_string()))?;
    // A webhook may not change what the object is.
    for field in ["kind", "apiVersion"] {
        obj[field] = before[field].clone();
    }
    Ok(*obj != before)
}

/// The webhooks of every configuration, in order.
type Webhooks = Arc<Vec<Arc<Webhook>>>;

/// The webhooks of one configuration resource, parsed once per change: the key and
/// revision of every configuration they were parsed from, and the webhooks.
#[derive(Default)]
struct Index {
    parsed: Mutex<(Vec<(String, i64)>, Webhooks)>,
}

impl Index {
    /// Every webhook of every configuration, configurations ordered by name.
    async fn webhooks(&self, r: &Request, plural: &str) -> Result<Webhooks, ApiError> {
        let info = resource("admissionregistration.k8s.io", "v1", plural);
        let cache = r
            .state
            .caches
            .get(&r.state.store, info.storage_prefix())
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        let (objects, _) = cache
            .list(info.storage_prefix(), 0)
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        let mut parsed = self.parsed.lock().expect("webhook index lock");
        let unchanged = parsed.0.len() == objects.len()
            && parsed
                .0
                .iter()
                .zip(&objects)
                .all(|((key, revision), o)| *key == o.key && *revision == o.revision);
        if !unchanged {
            let versions = objects
                .iter()
                .map(|o| (o.key.clone(), o.revision))
                .collect();
            let mut hooks = Vec::new();
            for o in &objects {
                let Ok(config) = serde_json::from_slice::<Value>(&o.stored) else {
                    continue;
                };
                for hook in config["webhooks"].as_array().into_iter().flatten() {
                    match Webhook::parse(hook) {
                        Some(h) => hooks.push(Arc::new(h)),
                        None => {
                            tracing::warn!(config = %config["metadata"]["name"], "skipping an invalid webhook")
                        }
                    }
                }
            }
            *parsed = (versions, Arc::new(hooks));
        }
        Ok(parsed.1.clone())
    }
}

/// Requests webhooks never see: their own configurations (so that a broken webhook can
/// always be removed), as upstream exempts them.
fn exempt(r: &Request) -> bool {
    r.info.group == "admissionregistration.k8s.io"
}

#[derive(Default)]
pub struct MutatingWebhook {
    index: Index,
}

impl Plugin for MutatingWebhook {
    fn name(&self) -> &'static str {
        "MutatingAdmissionWebhook"
    }

    fn mutate<'a>(&'a self, r: &'a mut Request) -> Verdict<'a> {
        Box::pin(async move {
            if exempt(r) {
                return Ok(());
            }
            let hooks = self
                .index
                .webhooks(r, "mutatingwebhookconfigurations")
                .await?;
            let mut called = Vec::new();
            let mut last_change = None;
            for (i, hook) in hooks.iter().enumerate() {
                if !hook.matches(r).await? {
                    continue;
                }
                called.push(i);
                if let Some(response) = hook.admit(r).await? {
                    if apply_patch(&hook.name, &response, r)? {
                        last_change = Some(i);
                    }
                }
            }
            // Reinvocation: webhooks that asked for it and ran before the last change see
            // the object once more.
            if let Some(last) = last_change {
                for &i in called.iter().filter(|&&i| i < last) {
                    let hook = &hooks[i];
                    if !hook.reinvoke_if_needed || !hook.matches(r).await? {
                        continue;
                    }
                    if let Some(response) = hook.admit(r).await? {
                        apply_patch(&hook.name, &response, r)?;
                    }
                }
            }
            Ok(())
        })
    }
}

#[derive(Default)]
pub struct ValidatingWebhook {
    index: Index,
}

impl Plugin for ValidatingWebhook {
    fn name(&self) -> &'static str {
        "ValidatingAdmissionWebhook"
    }

    fn validate<'a>(&'a self, r: &'a mut Request) -> Verdict<'a> {
        Box::pin(async move {
            if exempt(r) {
                return Ok(());
            }
            let hooks = self
                .index
                .webhooks(r, "validatingwebhookconfigurations")
                .await?;
            for hook in hooks.iter() {
                if hook.matches(r).await? {
                    hook.admit(r).await?;
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_as_upstream_words_them() {
        let cases = [
            (
                json!({"code": 403, "message": "no"}),
                403,
                "admission webhook \"w\" denied the request: no",
            ),
            (
                json!({"reason": "Because"}),
                400,
                "admission webhook \"w\" denied the request: Because",
            ),
            (
                Value::Null,
                400,
                "admission webhook \"w\" denied the request without explanation",
            ),
            (
                json!({"code": 200, "message": "m"}),
                400,
                "admission webhook \"w\" denied the request: m",
            ),
        ];
        for (status, code, message) in cases {
            let e = denied("w", &status);
            assert_eq!(e.code(), code, "{status}");
            assert_eq!(e.0.message, message);
            assert_eq!(e.0.status, "Failure");
        }
    }
}
