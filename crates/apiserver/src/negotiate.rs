//! Content negotiation: request body formats, patch types, response formats (JSON, YAML,
//! protobuf, Table, partial metadata).

use axum::http::{header, HeaderMap};
use serde_json::Value;

use crate::error::ApiError;

/// Largest request body accepted (upstream's 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Decodes a request body (JSON or YAML) into a JSON object.
pub fn decode_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    if body.len() > MAX_BODY {
        return Err(ApiError::too_large());
    }
    let ct = content_type(headers);
    let value: Value = match ct.as_str() {
        "" | "application/json" | "*/*" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("error decoding YAML: not UTF-8"))?;
            serde_saphyr::from_str(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
        }
        crate::proto::MEDIA_TYPE => crate::proto::decode_object(body).map_err(|e| {
            ApiError::bad_request(format!("error decoding protobuf request body: {e}"))
        })?,
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    Ok(value)
}

/// The patch formats served here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    /// Server-side apply (`application/apply-patch+yaml`).
    Apply,
}

const JSON_PATCH: &str = "application/json-patch+json";
const MERGE_PATCH: &str = "application/merge-patch+json";
const STRATEGIC_PATCH: &str = "application/strategic-merge-patch+json";
const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// The patch format of a PATCH request. Types without a schema (custom resources) take no
/// strategic merge patch; the 415 lists what the resource accepts, in upstream's order.
pub fn patch_type(
    headers: &HeaderMap,
    root: Option<&'static rkube_api::schema::Message>,
) -> Result<PatchKind, ApiError> {
    match content_type(headers).as_str() {
        JSON_PATCH => Ok(PatchKind::Json),
        MERGE_PATCH => Ok(PatchKind::Merge),
        STRATEGIC_PATCH if root.is_some() => Ok(PatchKind::Strategic),
        APPLY_PATCH => Ok(PatchKind::Apply),
        _ => {
            let accepted: &[&str] = match root {
                Some(_) => &[JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH],
                None => &[JSON_PATCH, MERGE_PATCH, APPLY_PATCH],
            };
            Err(rkube_api::Status::unsupported_media_type(accepted).into())
        }
    }
}

/// Decodes a server-side apply body (YAML, or JSON, which is YAML too) into an object.
pub fn decode_apply(body: &[u8]) -> Result<Value, ApiError> {
    if body.len() > MAX_BODY {
        return Err(ApiError::too_large());
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("error decoding YAML: not UTF-8"))?;
    let value: Value = serde_saphyr::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "error decoding YAML: the apply configuration must be an object",
        ));
    }
    Ok(value)
}

/// A PATCH request's body as JSON (every patch format but apply is JSON), decoded once
/// per request however many times the patch is retried.
pub fn decode_patch(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

/// Applies a patch of this format to `original`, an object of the built-in type `root`
/// (strategic merge patch needs the type's merge markers). Errors are upstream's: 400 for
/// a patch that cannot be decoded, 422 for a JSON patch that does not apply.
pub fn apply_patch(
    kind: PatchKind,
    original: &Value,
    patch: &Value,
    root: Option<&'static rkube_api::schema::Message>,
) -> Result<Value, ApiError> {
    let mut patched = original.clone();
    match kind {
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            json_patch::patch(&mut patched, &ops).map_err(|e| {
                ApiError::from(rkube_api::Status::failure(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                    None,
                ))
            })?;
        }
        PatchKind::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "error decoding patch: a merge patch must be a JSON object",
                ));
            }
            json_patch::merge(&mut patched, patch);
        }
        PatchKind::Apply => {
            return Err(ApiError::internal(
                "server-side apply is not a patch format apply_patch handles",
            ))
        }
        PatchKind::Strategic => {
            let root = root.ok_or_else(|| {
                ApiError::from(rkube_api::Status::unsupported_media_type(&[
                    JSON_PATCH,
                    MERGE_PATCH,
                    APPLY_PATCH,
                ]))
            })?;
            patched = rkube_api::smp::apply(patched, patch.clone(), root).map_err(|e| {
                let status = match e.code {
                    400 => rkube_api::Status::bad_request(&e.message),
                    422 => rkube_api::Status::failure(422, "Invalid", e.message, None),
                    code => rkube_api::Status::failure(code, "", e.message, None),
                };
                ApiError::from(status)
            })?;
        }
    }
    if !patched.is_object() {
        return Err(ApiError::bad_request("the patch did not produce an object"));
    }
    Ok(patched)
}

/// The representation a response is sent in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
    /// `application/vnd.kubernetes.protobuf` (client-go's typed clients, kubectl's typed
    /// commands); watches get length-delimited frames.
    Protobuf,
    /// `meta.k8s.io/v1` Table (what `kubectl get` asks for).
    Table,
    /// `meta.k8s.io/v1` PartialObjectMetadata(List) (metadata-only clients).
    PartialMetadata,
}

impl Format {
    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Yaml => "application/yaml",
            Format::Protobuf => crate::proto::MEDIA_TYPE,
            Format::Json | Format::Table | Format::PartialMetadata => "application/json",
        }
    }
}

/// Picks the first servable media type of the `Accept` header, as upstream negotiates;
/// 406 when none is.
pub fn response_format(headers: &HeaderMap) -> Result<Format, ApiError> {
    negotiate(headers, true)
}

/// [`response_format`] for an object that has no protobuf form: the next type the client
/// accepts, or 406 listing the JSON types (as upstream answers for custom resources).
pub fn response_format_without_protobuf(headers: &HeaderMap) -> Result<Format, ApiError> {
    negotiate(headers, false)
}

fn negotiate(headers: &HeaderMap, protobuf: bool) -> Result<Format, ApiError> {
    let mut any = false;
    for part in headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        let Some(media) = params.first().map(|m| m.to_ascii_lowercase()) else {
            continue;
        };
        if media.is_empty() {
            continue;
        }
        any = true;
        let meta_v1 = params.contains(&"g=meta.k8s.io") && params.contains(&"v=v1");
        let converts = params.iter().any(|p| p.starts_with("as="));
        match media.as_str() {
            "application/json" | "application/*" | "*/*" => {
                if params.contains(&"as=Table") {
                    if meta_v1 {
                        return Ok(Format::Table);
                    }
                } else if params.contains(&"as=PartialObjectMetadata")
                    || params.contains(&"as=PartialObjectMetadataList")
                {
                    if meta_v1 {
                        return Ok(Format::PartialMetadata);
                    }
                } else if !converts {
                    return Ok(Format::Json);
                }
            }
            "application/yaml" => return Ok(Format::Yaml),
            // Tables and partial metadata are served as JSON only.
            crate::proto::MEDIA_TYPE if protobuf && !converts => return Ok(Format::Protobuf),
            _ => {}
        }
    }
    if any {
        let mut served = vec!["application/json", "application/yaml"];
        if protobuf {
            served.push(crate::proto::MEDIA_TYPE);
        }
        return Err(ApiError::from(rkube_api::Status::not_acceptable(&served)));
    }
    Ok(Format::Json)
}

/// An object as `meta.k8s.io/v1` PartialObjectMetadata.
pub fn partial_metadata(obj: &Value) -> Value {
    serde_json::json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
}

/// [`partial_metadata`] of a served JSON object, as JSON, without parsing more than its
/// `metadata` (the garbage collector's metadata watches see every object of every kind).
/// `None` when the object is not JSON with an object `metadata`.
pub fn partial_metadata_json(served: &[u8]) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct Object<'a> {
        #[serde(borrow)]
        metadata: Option<&'a serde_json::value::RawValue>,
    }
    let metadata = serde_json::from_slice::<Object>(served).ok()?.metadata?;
    if !metadata.get().starts_with('{') {
        return None;
    }
    const HEAD: &[u8] =
        b"{\"apiVersion\":\"meta.k8s.io/v1\",\"kind\":\"PartialObjectMetadata\",\"metadata\":";
    let mut out = Vec::with_capacity(HEAD.len() + metadata.get().len() + 1);
    out.extend_from_slice(HEAD);
    out.extend_from_slice(metadata.get().as_bytes());
    out.push(b'}');
    Some(out)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn format(accept: &str, protobuf: bool) -> Result<Format, u16> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
        negotiate(&headers, protobuf).map_err(|e| e.code())
    }

    #[test]
    fn partial_metadata_from_bytes_matches_the_parsed_form() {
        for obj in [
            serde_json::json!({"metadata": {"name": "a", "labels": {"x": "y"}, "resourceVersion": "3"}, "spec": {"k": [1, 2]}}),
            serde_json::json!({"kind": "X", "apiVersion": "v1", "metadata": {}}),
            serde_json::json!({"spec": {}, "metadata": {"name": "late", "annotations": {"a\"b": "c\\d"}}}),
        ] {
            let bytes = serde_json::to_vec(&obj).unwrap();
            let fast: Value =
                serde_json::from_slice(&partial_metadata_json(&bytes).unwrap()).unwrap();
            assert_eq!(fast, partial_metadata(&obj));
        }
        for odd in [&b"{\"metadata\": 3}"[..], b"{}", b"not json", b"[1]"] {
            assert_eq!(partial_metadata_json(odd), None);
        }
    }

    #[test]
    fn protobuf_in_the_clients_order() {
        let pb = crate::proto::MEDIA_TYPE;
        assert_eq!(format(pb, true), Ok(Format::Protobuf));
        assert_eq!(
            format(&format!("{pb},application/json"), true),
            Ok(Format::Protobuf)
        );
        assert_eq!(
            format(&format!("{pb};stream=watch"), true),
            Ok(Format::Protobuf)
        );
        assert_eq!(
            format(&format!("application/json, {pb}"), true),
            Ok(Format::Json)
        );
        // No protobuf form: the next type, else 406.
        assert_eq!(
            format(&format!("{pb}, application/yaml"), false),
            Ok(Format::Yaml)
        );
        assert_eq!(format(pb, false), Err(406));
        // Conversions are JSON only.
        let table = "as=Table;v=v1;g=meta.k8s.io";
        assert_eq!(
            format(&format!("{pb};{table},application/json;{table}"), true),
            Ok(Format::Table)
        );
        assert_eq!(format(&format!("{pb};{table}"), true), Err(406));
    }
}
