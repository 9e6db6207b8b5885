//! The computed (never stored) authentication objects: TokenRequest (the `token`
//! subresource of serviceaccounts), TokenReview and SelfSubjectReview.

use rkube_api::resources::{GroupKind, GroupResource};
use rkube_api::{FieldError, Status};
use rkube_pki::service_account::{KubernetesClaims, ObjectRef, TokenClaims};
use serde_json::{json, Value};

use super::service_account::{get_object, uid_of};
use super::UserInfo;
use crate::error::ApiError;
use crate::{meta, ApiState};

/// A TokenRequest's lifetime when it names none (upstream's v1 default).
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime a TokenRequest may ask for.
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest (upstream's `2^32` seconds).
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
const API_VERSION: &str = "authentication.k8s.io/v1";

/// Checks a body's `kind`/`apiVersion` (filling them when absent), as the generic decoder
/// does for stored kinds.
fn of_kind(mut obj: Value, kind: &str) -> Result<Value, ApiError> {
    let got_kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    if !got_kind.is_empty() && got_kind != kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({got_kind}) does not match the expected kind ({kind})"
        )));
    }
    let got_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if !got_version.is_empty() && got_version != API_VERSION {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({got_version}) does not match the expected API version ({API_VERSION})"
        )));
    }
    if !obj.is_object() {
        return Err(ApiError::bad_request("the request body is not an object"));
    }
    obj["kind"] = json!(kind);
    obj["apiVersion"] = json!(API_VERSION);
    Ok(obj)
}

fn invalid_token_request(name: &str, errors: &[FieldError]) -> ApiError {
    Status::invalid(
        &GroupKind::new("authentication.k8s.io", "TokenRequest"),
        name,
        errors,
    )
    .into()
}

fn store_error(e: String) -> ApiError {
    ApiError::internal(e)
}

/// `POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token`: mints a bound token.
pub async fn token_request(
    state: &ApiState,
    namespace: &str,
    name: &str,
    body: Value,
) -> Result<Value, ApiError> {
    let mut req = of_kind(body, "TokenRequest")?;
    let body_name = meta::meta_str(&req, "name").unwrap_or("").to_owned();
    if !body_name.is_empty() && body_name != name {
        return Err(invalid_token_request(
            name,
            &[FieldError::invalid(
                "metadata.name",
                body_name.as_str(),
                "must match the service account name if specified",
            )],
        ));
    }
    let body_ns = meta::meta_str(&req, "namespace").unwrap_or("").to_owned();
    if !body_ns.is_empty() && body_ns != namespace {
        return Err(invalid_token_request(
            name,
            &[FieldError::invalid(
                "metadata.namespace",
                body_ns.as_str(),
                "must match the service account namespace if specified",
            )],
        ));
    }
    let expiration = match req.pointer("/spec/expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| ApiError::bad_request("spec.expirationSeconds must be an integer"))?,
    };
    if expiration < MIN_EXPIRATION_SECONDS {
        return Err(invalid_token_request(
            name,
            &[FieldError::invalid(
                "spec.expirationSeconds",
                expiration,
                "may not specify a duration less than 10 minutes",
            )],
        ));
    }
    if expiration > MAX_EXPIRATION_SECONDS {
        return Err(invalid_token_request(
            name,
            &[FieldError::invalid(
                "spec.expirationSeconds",
                expiration,
                "may not specify a duration larger than 2^32 seconds",
            )],
        ));
    }
    let sa_info = rkube_api::resources::find("", "v1", "serviceaccounts").expect("built in");
    let sa = get_object(&*state.store, "serviceaccounts", Some(namespace), name)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(sa_info, name))?;

    let mut kubernetes = KubernetesClaims {
        namespace: namespace.to_owned(),
        serviceaccount: ObjectRef {
            name: name.to_owned(),
            uid: uid_of(&sa).to_owned(),
        },
        ..Default::default()
    };
    if let Some(bound) = req.pointer("/spec/boundObjectRef").filter(|v| !v.is_null()) {
        bind(state, namespace, name, bound, &mut kubernetes).await?;
    }

    let audiences: Vec<String> = req
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| state.service_accounts.api_audiences.clone());
    let now = meta::now_secs();
    let claims = TokenClaims {
        iss: state.service_accounts.issuer.clone(),
        sub: format!("system:serviceaccount:{namespace}:{name}"),
        aud: audiences.clone(),
        exp: now + expiration,
        iat: now,
        nbf: now,
        jti: meta::new_uid(),
        kubernetes,
    };
    let token = state
        .service_accounts
        .sign(&claims)
        .map_err(|e| ApiError::internal(format!("failed to generate token: {e}")))?;
    let m = meta::metadata_mut(&mut req);
    m.insert("name".into(), json!(name));
    m.insert("namespace".into(), json!(namespace));
    m.insert("creationTimestamp".into(), json!(meta::rfc3339(now)));
    req["spec"]["audiences"] = json!(audiences);
    req["spec"]["expirationSeconds"] = json!(expiration);
    req["status"] = json!({
        "token": token,
        "expirationTimestamp": meta::rfc3339(now + expiration),
    });
    Ok(req)
}

/// Checks `spec.boundObjectRef` and records the bound object (and a pod's node) in the
/// claims.
async fn bind(
    state: &ApiState,
    namespace: &str,
    sa_name: &str,
    bound: &Value,
    claims: &mut KubernetesClaims,
) -> Result<(), ApiError> {
    let field = |f: &str| {
        bound
            .get(f)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let (kind, api_version, name, want_uid) = (
        field("kind"),
        field("apiVersion"),
        field("name"),
        field("uid"),
    );
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (String::new(), api_version.clone()),
    };
    let plural = match (group.as_str(), kind.as_str()) {
        ("", "Pod") => "pods",
        ("", "Secret") => "secrets",
        ("", "Node") => "nodes",
        _ => {
            return Err(ApiError::bad_request(format!(
                "cannot bind token to object of type {group}/{version}, Kind={kind}"
            )))
        }
    };
    let info = rkube_api::resources::find("", "v1", plural).expect("built in");
    let scope = (plural != "nodes").then_some(namespace);
    let obj = get_object(&*state.store, plural, scope, &name)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(info, &name))?;
    let uid = uid_of(&obj).to_owned();
    if !want_uid.is_empty() && want_uid != uid {
        return Err(Status::conflict(
            &GroupResource::new(&group, &kind),
            &name,
            &format!(
                "the UID in the bound object reference ({want_uid}) does not match the UID in record. The object might have been deleted and then recreated"
            ),
        )
        .into());
    }
    let object_ref = ObjectRef {
        name: name.clone(),
        uid,
    };
    match plural {
        "pods" => {
            let pod_sa = obj
                .pointer("/spec/serviceAccountName")
                .and_then(Value::as_str)
                .unwrap_or("default");
            if pod_sa != sa_name {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token for serviceaccount {sa_name:?} to pod running with serviceaccount {pod_sa:?}"
                )));
            }
            if let Some(node_name) = obj
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                if let Some(node) = get_object(&*state.store, "nodes", None, node_name)
                    .await
                    .map_err(store_error)?
                {
                    claims.node = Some(ObjectRef {
                        name: node_name.to_owned(),
                        uid: uid_of(&node).to_owned(),
                    });
                }
            }
            claims.pod = Some(object_ref);
        }
        "secrets" => claims.secret = Some(object_ref),
        _ => claims.node = Some(object_ref),
    }
    Ok(())
}

/// `POST /apis/authentication.k8s.io/v1/tokenreviews`.
pub async fn token_review(state: &ApiState, body: Value) -> Result<Value, ApiError> {
    let mut review = of_kind(body, "TokenReview")?;
    let token = review
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "token is required for TokenReview in authentication",
        ));
    }
    let audiences: Option<Vec<String>> = review
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .filter(|a: &Vec<String>| !a.is_empty());
    let status = match super::authenticate_token(state, &token, audiences.as_deref()).await {
        Ok(ok) => json!({
            "authenticated": true,
            "user": ok.user.to_json(),
            "audiences": ok.audiences,
        }),
        Err(rejected) => json!({"user": {}, "error": rejected.0}),
    };
    meta::metadata_mut(&mut review).insert("creationTimestamp".into(), json!(meta::now_rfc3339()));
    review["status"] = status;
    Ok(review)
}

/// `POST /apis/authentication.k8s.io/v1/selfsubjectreviews`: who the requester is.
pub fn self_subject_review(user: &UserInfo, body: Value) -> Result<Value, ApiError> {
    let mut review = of_kind(body, "SelfSubjectReview")?;
    meta::metadata_mut(&mut review).insert("creationTimestamp".into(), json!(meta::now_rfc3339()));
    review["status"] = json!({ "userInfo": user.to_json() });
    Ok(review)
}
