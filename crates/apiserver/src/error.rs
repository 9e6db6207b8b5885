//! API errors: upstream's `metav1.Status` (built by `rkube_api::status`) as a response.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use rkube_api::resources::ResourceInfo;
use rkube_api::{FieldError, Status};

use crate::negotiate::Format;

/// A failed request, answered as upstream answers it.
#[derive(Debug, Clone)]
pub struct ApiError(pub Box<Status>);

impl From<Status> for ApiError {
    fn from(status: Status) -> Self {
        ApiError(Box::new(status))
    }
}

impl ApiError {
    pub fn code(&self) -> u16 {
        self.0.code()
    }

    pub fn reason(&self) -> &str {
        &self.0.reason
    }

    pub fn not_found(info: &ResourceInfo, name: &str) -> Self {
        Status::not_found(&info.group_resource(), name).into()
    }

    pub fn already_exists(info: &ResourceInfo, name: &str) -> Self {
        Status::already_exists(&info.group_resource(), name).into()
    }

    pub fn conflict(info: &ResourceInfo, name: &str) -> Self {
        Status::conflict_modified(&info.group_resource(), name).into()
    }

    pub fn conflict_message(info: &ResourceInfo, name: &str, message: &str) -> Self {
        Status::conflict(&info.group_resource(), name, message).into()
    }

    pub fn invalid(info: &ResourceInfo, name: &str, errors: &[FieldError]) -> Self {
        Status::invalid(&info.group_kind(), name, errors).into()
    }

    pub fn bad_request(message: impl AsRef<str>) -> Self {
        Status::bad_request(message.as_ref()).into()
    }

    pub fn forbidden(info: &ResourceInfo, name: &str, why: &str) -> Self {
        Status::forbidden(&info.group_resource(), name, why).into()
    }

    /// 403 for a non-resource path, as upstream's authorizer words it.
    pub fn forbidden_path(user: &str, verb: &str, path: &str) -> Self {
        Status::failure(
            403,
            "Forbidden",
            format!("forbidden: User \"{user}\" cannot {verb} path \"{path}\""),
            Some(Default::default()),
        )
        .into()
    }

    pub fn method_not_allowed(info: &ResourceInfo, verb: &str) -> Self {
        Status::method_not_supported(&info.group_resource(), verb).into()
    }

    pub fn expired(message: impl AsRef<str>) -> Self {
        Status::expired(message.as_ref()).into()
    }

    pub fn page_not_found() -> Self {
        Status::failure(
            404,
            "NotFound",
            "the server could not find the requested resource".into(),
            Some(Default::default()),
        )
        .into()
    }

    pub fn not_implemented(message: String) -> Self {
        Status::failure(501, "", message, None).into()
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        let mut s = Status::unsupported_media_type(&[
            "application/json",
            "application/yaml",
            crate::proto::MEDIA_TYPE,
        ]);
        if !content_type.is_empty() {
            s.message = format!("{} (got {content_type})", s.message);
        }
        s.into()
    }

    pub fn too_large() -> Self {
        Status::request_entity_too_large("limit is 3145728").into()
    }

    pub fn timeout(message: impl AsRef<str>) -> Self {
        Status::timeout(message.as_ref(), 1).into()
    }

    pub fn unavailable(message: impl AsRef<str>) -> Self {
        Status::service_unavailable(message.as_ref()).into()
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Status::internal_error(&message.to_string()).into()
    }
}

impl ApiError {
    /// The error as a response in the negotiated format: a protobuf `Status` for protobuf
    /// clients, JSON otherwise.
    pub fn into_response_as(self, format: Format) -> Response {
        if format == Format::Protobuf {
            let encoded = serde_json::to_value(&*self.0)
                .map_err(|e| e.to_string())
                .and_then(|v| crate::proto::encode_object(&v));
            if let Ok(body) = encoded {
                let code =
                    StatusCode::from_u16(self.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return (
                    code,
                    [(header::CONTENT_TYPE, crate::proto::MEDIA_TYPE)],
                    body,
                )
                    .into_response();
            }
        }
        self.into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            code,
            [(header::CONTENT_TYPE, "application/json")],
            self.0.to_json(),
        )
            .into_response()
    }
}

/// Maps a store error on `info`/`name` to upstream's API error.
pub fn from_store(err: rkube_store::Error, info: &ResourceInfo, name: &str) -> ApiError {
    use rkube_store::Error as E;
    match err {
        E::NotFound { .. } => ApiError::not_found(info, name),
        E::AlreadyExists { .. } => ApiError::already_exists(info, name),
        E::Conflict { .. } => ApiError::conflict(info, name),
        E::Compacted {
            requested,
            compacted,
        } => Status::too_old_resource_version(requested, compacted).into(),
        E::FutureRevision { requested, current } => ApiError::timeout(format!(
            "Too large resource version: {requested}, current: {current}"
        )),
        E::ValueTooLarge { .. } => ApiError::too_large(),
        E::InvalidContinue { reason } => {
            ApiError::bad_request(format!("continue key is not valid: {reason}"))
        }
        E::Timeout { .. } => ApiError::timeout(err.to_string()),
        other => ApiError::internal(other),
    }
}
