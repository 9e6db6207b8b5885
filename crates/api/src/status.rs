//! `metav1.Status` errors, built as upstream's `k8s.io/apimachinery/pkg/api/errors` builds them.
//!
//! Each constructor sets upstream's HTTP code, `reason`, `message` and `details`, so clients
//! (kubectl, client-go, the Python client) classify and print rkube's errors exactly like a
//! real API server's: `pods "x" not found`, `deployments.apps "x" already exists`,
//! `Pod "x" is invalid: [spec.containers: Required value, ...]`.
//!
//! [`Status`] serializes with upstream's field order and omissions; [`Status::to_value`] gives
//! the JSON value.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::field_error::{aggregate, FieldError};
use crate::resources::{GroupKind, GroupResource};

/// Upstream's message for a write that lost an optimistic-concurrency race; pass it to
/// [`Status::conflict`].
pub const OPTIMISTIC_LOCK_ERROR_MSG: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// `status` of a failed request.
pub const STATUS_FAILURE: &str = "Failure";
/// `status` of a successful request (e.g. a delete that returns a Status).
pub const STATUS_SUCCESS: &str = "Success";

/// Machine-readable reasons (upstream `metav1.StatusReason`).
pub mod reason {
    /// The client is not authenticated (401).
    pub const UNAUTHORIZED: &str = "Unauthorized";
    /// The client may not do this (403).
    pub const FORBIDDEN: &str = "Forbidden";
    /// The object does not exist (404).
    pub const NOT_FOUND: &str = "NotFound";
    /// The object already exists (409).
    pub const ALREADY_EXISTS: &str = "AlreadyExists";
    /// The write conflicts with the object's current state (409).
    pub const CONFLICT: &str = "Conflict";
    /// The resource is gone (410, deprecated in favour of `Expired`).
    pub const GONE: &str = "Gone";
    /// The requested resource version has expired (410).
    pub const EXPIRED: &str = "Expired";
    /// The object failed validation (422).
    pub const INVALID: &str = "Invalid";
    /// The server timed out on an operation (500, retryable).
    pub const SERVER_TIMEOUT: &str = "ServerTimeout";
    /// The request timed out (504).
    pub const TIMEOUT: &str = "Timeout";
    /// Too many requests (429).
    pub const TOO_MANY_REQUESTS: &str = "TooManyRequests";
    /// The request is malformed (400).
    pub const BAD_REQUEST: &str = "BadRequest";
    /// The verb is not supported on the resource (405).
    pub const METHOD_NOT_ALLOWED: &str = "MethodNotAllowed";
    /// No acceptable response media type (406).
    pub const NOT_ACCEPTABLE: &str = "NotAcceptable";
    /// The request body is too large (413).
    pub const REQUEST_ENTITY_TOO_LARGE: &str = "RequestEntityTooLarge";
    /// The request body's media type is not supported (415).
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "UnsupportedMediaType";
    /// An internal error (500).
    pub const INTERNAL_ERROR: &str = "InternalError";
    /// The service is unavailable (503).
    pub const SERVICE_UNAVAILABLE: &str = "ServiceUnavailable";
}

/// One cause of an error (upstream `metav1.StatusCause`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCause {
    /// The cause type, e.g. `FieldValueRequired` (JSON `reason`).
    #[serde(rename = "reason", default, skip_serializing_if = "String::is_empty")]
    pub cause_type: String,
    /// A human-readable description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The field path the cause is about, e.g. `spec.containers`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
}

impl From<&FieldError> for StatusCause {
    fn from(e: &FieldError) -> Self {
        Self {
            cause_type: e.error_type.reason().to_string(),
            message: e.body(),
            field: e.field.clone(),
        }
    }
}

/// Extra data about an error (upstream `metav1.StatusDetails`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetails {
    /// The name of the object concerned.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Its API group.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Its resource (plural) or, for `Invalid`, its kind.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Its UID.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The individual causes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
    /// Seconds to wait before retrying.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retry_after_seconds: i32,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

/// The (empty) list metadata of a Status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusMetadata {}

/// A `metav1.Status`: the body of every API error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{message}")]
pub struct Status {
    /// Always `Status`.
    pub kind: String,
    /// Always `v1`.
    pub api_version: String,
    /// Always empty.
    #[serde(default)]
    pub metadata: StatusMetadata,
    /// `Failure` or `Success`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// The human-readable message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The machine-readable reason, see [`reason`].
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Extra data; present (possibly empty) where upstream sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    /// The HTTP status code.
    #[serde(default)]
    pub code: u16,
}

impl Status {
    /// A failure with the given code, reason, message and details.
    pub fn failure(
        code: u16,
        reason: &str,
        message: String,
        details: Option<StatusDetails>,
    ) -> Self {
        Self {
            kind: "Status".to_string(),
            api_version: "v1".to_string(),
            metadata: StatusMetadata {},
            status: STATUS_FAILURE.to_string(),
            message,
            reason: reason.to_string(),
            details,
            code,
        }
    }

    /// A success Status (code 200), as some deletes return.
    pub fn success() -> Self {
        Self {
            kind: "Status".to_string(),
            api_version: "v1".to_string(),
            metadata: StatusMetadata {},
            status: STATUS_SUCCESS.to_string(),
            message: String::new(),
            reason: String::new(),
            details: None,
            code: 200,
        }
    }

    fn resource_details(resource: &GroupResource, name: &str) -> Option<StatusDetails> {
        Some(StatusDetails {
            name: name.to_string(),
            group: resource.group.clone(),
            kind: resource.resource.clone(),
            ..StatusDetails::default()
        })
    }

    /// 404 `NotFound`: `pods "x" not found` / `deployments.apps "x" not found`.
    pub fn not_found(resource: &GroupResource, name: &str) -> Self {
        Self::failure(
            404,
            reason::NOT_FOUND,
            format!("{resource} {} not found", quote(name)),
            Self::resource_details(resource, name),
        )
    }

    /// 409 `AlreadyExists`: `pods "x" already exists`.
    pub fn already_exists(resource: &GroupResource, name: &str) -> Self {
        Self::failure(
            409,
            reason::ALREADY_EXISTS,
            format!("{resource} {} already exists", quote(name)),
            Self::resource_details(resource, name),
        )
    }

    /// 409 `AlreadyExists` for a `generateName` that kept colliding.
    pub fn generate_name_conflict(
        resource: &GroupResource,
        name: &str,
        retry_after_seconds: i32,
    ) -> Self {
        let mut details = Self::resource_details(resource, name);
        if let Some(d) = details.as_mut() {
            d.retry_after_seconds = retry_after_seconds;
        }
        Self::failure(
            409,
            reason::ALREADY_EXISTS,
            format!(
                "{resource} {} already exists, the server was not able to generate a unique name for the object",
                quote(name)
            ),
            details,
        )
    }

    /// 409 `Conflict`: `Operation cannot be fulfilled on pods "x": <error>`.
    pub fn conflict(resource: &GroupResource, name: &str, error: &str) -> Self {
        Self::failure(
            409,
            reason::CONFLICT,
            format!(
                "Operation cannot be fulfilled on {resource} {}: {error}",
                quote(name)
            ),
            Self::resource_details(resource, name),
        )
    }

    /// 409 `Conflict` for an update with a stale `resourceVersion`.
    pub fn conflict_modified(resource: &GroupResource, name: &str) -> Self {
        Self::conflict(resource, name, OPTIMISTIC_LOCK_ERROR_MSG)
    }

    /// 410 `Gone` (deprecated upstream in favour of [`Status::expired`]).
    pub fn gone(message: &str) -> Self {
        Self::failure(410, reason::GONE, message.to_string(), None)
    }

    /// 410 `Expired`: the requested resource version is no longer available.
    pub fn expired(message: &str) -> Self {
        Self::failure(410, reason::EXPIRED, message.to_string(), None)
    }

    /// 410 `Expired` for a list or watch from a compacted revision:
    /// `too old resource version: 5 (10)`.
    pub fn too_old_resource_version(requested: i64, compacted: i64) -> Self {
        Self::expired(&format!(
            "too old resource version: {requested} ({compacted})"
        ))
    }

    /// 422 `Invalid`: `Pod "x" is invalid: [spec.containers: Required value, ...]`, with one
    /// cause per field error.
    pub fn invalid(kind: &GroupKind, name: &str, errors: &[FieldError]) -> Self {
        let message = if errors.is_empty() {
            format!("{kind} {} is invalid", quote(name))
        } else {
            format!("{kind} {} is invalid: {}", quote(name), aggregate(errors))
        };
        Self::failure(
            422,
            reason::INVALID,
            message,
            Some(StatusDetails {
                name: name.to_string(),
                group: kind.group.clone(),
                kind: kind.kind.clone(),
                causes: errors.iter().map(StatusCause::from).collect(),
                ..StatusDetails::default()
            }),
        )
    }

    /// 400 `BadRequest` with `message`.
    pub fn bad_request(message: &str) -> Self {
        Self::failure(400, reason::BAD_REQUEST, message.to_string(), None)
    }

    /// 401 `Unauthorized`; an empty message reads `not authorized`. (The API server's
    /// authentication failure uses the message `Unauthorized`.)
    pub fn unauthorized(message: &str) -> Self {
        let message = if message.is_empty() {
            "not authorized"
        } else {
            message
        };
        Self::failure(401, reason::UNAUTHORIZED, message.to_string(), None)
    }

    /// 403 `Forbidden`: `pods "x" is forbidden: <reason>` (`pods is forbidden: ...` without a
    /// name, `forbidden: ...` without a resource).
    pub fn forbidden(resource: &GroupResource, name: &str, why: &str) -> Self {
        let message = if resource.is_empty() {
            format!("forbidden: {why}")
        } else if name.is_empty() {
            format!("{resource} is forbidden: {why}")
        } else {
            format!("{resource} {} is forbidden: {why}", quote(name))
        };
        Self::failure(
            403,
            reason::FORBIDDEN,
            message,
            Self::resource_details(resource, name),
        )
    }

    /// 405 `MethodNotAllowed`: `<action> is not supported on resources of kind "pods"`.
    pub fn method_not_supported(resource: &GroupResource, action: &str) -> Self {
        Self::failure(
            405,
            reason::METHOD_NOT_ALLOWED,
            format!(
                "{action} is not supported on resources of kind {}",
                quote(&resource.to_string())
            ),
            Self::resource_details(resource, ""),
        )
    }

    /// 406 `NotAcceptable`: `only the following media types are accepted: a, b`.
    pub fn not_acceptable(accepted: &[&str]) -> Self {
        Self::failure(
            406,
            reason::NOT_ACCEPTABLE,
            format!(
                "only the following media types are accepted: {}",
                accepted.join(", ")
            ),
            None,
        )
    }

    /// 413 `RequestEntityTooLarge`: `Request entity too large: <message>`.
    pub fn request_entity_too_large(message: &str) -> Self {
        Self::failure(
            413,
            reason::REQUEST_ENTITY_TOO_LARGE,
            format!("Request entity too large: {message}"),
            None,
        )
    }

    /// 415 `UnsupportedMediaType`: `the body of the request was in an unknown format - accepted
    /// media types include: a, b`.
    pub fn unsupported_media_type(accepted: &[&str]) -> Self {
        Self::failure(
            415,
            reason::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
            None,
        )
    }

    /// 500 `InternalError`: `Internal error occurred: <error>`, with the error as the cause.
    pub fn internal_error(error: &str) -> Self {
        Self::failure(
            500,
            reason::INTERNAL_ERROR,
            format!("Internal error occurred: {error}"),
            Some(StatusDetails {
                causes: vec![StatusCause {
                    message: error.to_string(),
                    ..StatusCause::default()
                }],
                ..StatusDetails::default()
            }),
        )
    }

    /// 500 `ServerTimeout`: `The <operation> operation against <resource> could not be
    /// completed at this time, please try again.`
    pub fn server_timeout(
        resource: &GroupResource,
        operation: &str,
        retry_after_seconds: i32,
    ) -> Self {
        Self::failure(
            500,
            reason::SERVER_TIMEOUT,
            format!(
                "The {operation} operation against {resource} could not be completed at this time, please try again."
            ),
            Some(StatusDetails {
                name: operation.to_string(),
                group: resource.group.clone(),
                kind: resource.resource.clone(),
                retry_after_seconds,
                ..StatusDetails::default()
            }),
        )
    }

    /// 504 `Timeout`: `Timeout: <message>`.
    pub fn timeout(message: &str, retry_after_seconds: i32) -> Self {
        Self::failure(
            504,
            reason::TIMEOUT,
            format!("Timeout: {message}"),
            Some(StatusDetails {
                retry_after_seconds,
                ..StatusDetails::default()
            }),
        )
    }

    /// 429 `TooManyRequests` with `message` and a retry hint (upstream `NewTooManyRequests`,
    /// used by priority and fairness).
    pub fn too_many_requests(message: &str, retry_after_seconds: i32) -> Self {
        Self::failure(
            429,
            reason::TOO_MANY_REQUESTS,
            message.to_string(),
            Some(StatusDetails {
                retry_after_seconds,
                ..StatusDetails::default()
            }),
        )
    }

    /// 429 `TooManyRequests`: `Too many requests: <message>` (upstream
    /// `NewTooManyRequestsError`, used by eviction).
    pub fn too_many_requests_error(message: &str) -> Self {
        Self::failure(
            429,
            reason::TOO_MANY_REQUESTS,
            format!("Too many requests: {message}"),
            None,
        )
    }

    /// 503 `ServiceUnavailable` with `message`.
    pub fn service_unavailable(message: &str) -> Self {
        Self::failure(503, reason::SERVICE_UNAVAILABLE, message.to_string(), None)
    }

    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The Status as a JSON value.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The Status as JSON bytes, fields in upstream's order.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

fn quote(s: &str) -> String {
    crate::field_error::go_quote(s)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pods() -> GroupResource {
        GroupResource::new("", "pods")
    }

    fn deployments() -> GroupResource {
        GroupResource::new("apps", "deployments")
    }

    #[test]
    fn not_found() {
        let s = Status::not_found(&pods(), "x");
        assert_eq!(s.code(), 404);
        assert_eq!(
            s.to_value(),
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "pods \"x\" not found", "reason": "NotFound",
                "details": {"name": "x", "kind": "pods"}, "code": 404
            })
        );
        // Upstream's field order on the wire.
        assert_eq!(
            String::from_utf8(s.to_json()).unwrap(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \"x\" not found","reason":"NotFound","details":{"name":"x","kind":"pods"},"code":404}"#
        );
        let s = Status::not_found(&deployments(), "web");
        assert_eq!(s.message, r#"deployments.apps "web" not found"#);
        assert_eq!(
            s.to_value()["details"],
            json!({"name": "web", "group": "apps", "kind": "deployments"})
        );
    }

    #[test]
    fn already_exists_and_conflict() {
        let s = Status::already_exists(&pods(), "x");
        assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"));
        assert_eq!(s.message, r#"pods "x" already exists"#);
        let s = Status::conflict_modified(&deployments(), "web");
        assert_eq!(
            s.to_value(),
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again",
                "reason": "Conflict",
                "details": {"name": "web", "group": "apps", "kind": "deployments"}, "code": 409
            })
        );
        let s = Status::generate_name_conflict(&pods(), "web-abcde", 1);
        assert_eq!(s.to_value()["details"]["retryAfterSeconds"], json!(1));
    }

    #[test]
    fn invalid() {
        let errors = vec![
            FieldError::required("spec.containers", ""),
            FieldError::invalid("metadata.name", "Foo", "bad name"),
        ];
        let s = Status::invalid(&GroupKind::new("", "Pod"), "Foo", &errors);
        assert_eq!(
            s.to_value(),
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Pod \"Foo\" is invalid: [spec.containers: Required value, metadata.name: Invalid value: \"Foo\": bad name]",
                "reason": "Invalid",
                "details": {
                    "name": "Foo", "kind": "Pod",
                    "causes": [
                        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers"},
                        {"reason": "FieldValueInvalid", "message": "Invalid value: \"Foo\": bad name", "field": "metadata.name"}
                    ]
                },
                "code": 422
            })
        );
        let s = Status::invalid(&GroupKind::new("apps", "Deployment"), "web", &errors[..1]);
        assert_eq!(
            s.message,
            r#"Deployment.apps "web" is invalid: spec.containers: Required value"#
        );
        assert_eq!(s.to_value()["details"]["group"], json!("apps"));
    }

    #[test]
    fn expired_and_gone() {
        let s = Status::too_old_resource_version(5, 10);
        assert_eq!(
            s.to_value(),
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "too old resource version: 5 (10)", "reason": "Expired", "code": 410
            })
        );
        assert_eq!(Status::gone("x").reason, "Gone");
    }

    #[test]
    fn request_errors() {
        let s = Status::bad_request("bad");
        assert_eq!(
            s.to_value(),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "bad", "reason": "BadRequest", "code": 400})
        );
        let s = Status::method_not_supported(&pods(), "deletecollection");
        assert_eq!(
            s.to_value(),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "deletecollection is not supported on resources of kind \"pods\"",
                   "reason": "MethodNotAllowed", "details": {"kind": "pods"}, "code": 405})
        );
        let s = Status::not_acceptable(&["application/json", "application/yaml"]);
        assert_eq!(s.code, 406);
        assert_eq!(
            s.message,
            "only the following media types are accepted: application/json, application/yaml"
        );
        let s = Status::unsupported_media_type(&["application/json"]);
        assert_eq!((s.code, s.reason.as_str()), (415, "UnsupportedMediaType"));
        assert_eq!(
            s.message,
            "the body of the request was in an unknown format - accepted media types include: application/json"
        );
        let s = Status::request_entity_too_large("limit is 3145728");
        assert_eq!(
            (s.code, s.message.as_str()),
            (413, "Request entity too large: limit is 3145728")
        );
    }

    #[test]
    fn auth_errors() {
        let s = Status::unauthorized("Unauthorized");
        assert_eq!(
            s.to_value(),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
        );
        assert_eq!(Status::unauthorized("").message, "not authorized");
        let why =
            r#"User "bob" cannot list resource "pods" in API group "" in the namespace "default""#;
        let s = Status::forbidden(&pods(), "", why);
        assert_eq!(
            s.to_value(),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": format!("pods is forbidden: {why}"),
                   "reason": "Forbidden", "details": {"kind": "pods"}, "code": 403})
        );
        assert_eq!(
            Status::forbidden(&deployments(), "web", "no").message,
            r#"deployments.apps "web" is forbidden: no"#
        );
        assert_eq!(
            Status::forbidden(&GroupResource::default(), "", "no").message,
            "forbidden: no"
        );
    }

    #[test]
    fn server_errors() {
        let s = Status::internal_error("boom");
        assert_eq!(
            s.to_value(),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "Internal error occurred: boom", "reason": "InternalError",
                   "details": {"causes": [{"message": "boom"}]}, "code": 500})
        );
        let s = Status::timeout("request did not complete within 60s", 0);
        assert_eq!(
            s.to_value(),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "Timeout: request did not complete within 60s", "reason": "Timeout",
                   "details": {}, "code": 504})
        );
        let s = Status::too_many_requests("too many requests, please try again later", 1);
        assert_eq!(
            s.to_value(),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "too many requests, please try again later", "reason": "TooManyRequests",
                   "details": {"retryAfterSeconds": 1}, "code": 429})
        );
        assert_eq!(
            Status::too_many_requests_error("budget").message,
            "Too many requests: budget"
        );
        let s = Status::service_unavailable("store unavailable");
        assert_eq!((s.code, s.reason.as_str()), (503, "ServiceUnavailable"));
        let s = Status::server_timeout(&pods(), "create", 2);
        assert_eq!(
            s.message,
            "The create operation against pods could not be completed at this time, please try again."
        );
        assert_eq!(s.code, 500);
    }

    #[test]
    fn round_trips_through_json() {
        let s = Status::invalid(
            &GroupKind::new("", "Pod"),
            "x",
            &[FieldError::required("spec", "")],
        );
        let back: Status = serde_json::from_slice(&s.to_json()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.to_string(), s.message);
        assert_eq!(Status::success().to_value()["status"], json!("Success"));
    }
}
