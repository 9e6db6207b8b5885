//! The rkube API server: the Kubernetes REST API served from the [`Store`].
//!
//! One generic code path serves every built-in resource ([`rest`]); kinds differ only by
//! their row in `rkube_api::resources` and their [`strategy`]. Lists and watches at
//! `resourceVersion=0` and every watch are served by the [`watch_cache`]; other reads go
//! to the store. Discovery ([`discovery`]) is generated from the same table.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rkube_store::Store;
use serde_json::json;

pub mod admission;
pub mod aggregator;
pub mod auth;
pub mod authz;
mod codec;
pub use codec::OMIT_MANAGED_FIELDS;
mod conversion;
pub mod crd;
mod discovery;
pub mod encryption;
pub mod error;
mod eviction;
mod filter;
pub mod kubelet_proxy;
pub mod kubernetes_service;
pub mod meta;
pub mod metrics;
mod negotiate;
mod openapi;
pub mod proto;
mod query;
pub mod request;
mod rest;
pub mod service_alloc;
pub mod spdy;
mod strategy;
mod streamtranslator;
mod table;
pub mod tls;
mod watch;
pub mod watch_cache;

use auth::{StaticTokens, UserInfo};
use error::ApiError;

/// Everything the handlers share.
pub struct ApiState {
    pub store: Arc<dyn Store>,
    pub caches: watch_cache::WatchCaches,
    pub metrics: metrics::Metrics,
    pub tokens: StaticTokens,
    /// Service-account tokens: the signing key, issuer, API audiences.
    pub service_accounts: auth::service_account::ServiceAccounts,
    /// `host:port` clients reach this server at (for legacy `/api` discovery).
    pub server_address: String,
    /// What is served: built-in resources and established CRDs.
    pub registry: crd::Registry,
    /// Who may do what: the privileged group and RBAC.
    pub authz: authz::Authorizer,
    /// Wakes the ClusterRole aggregation controller after RBAC changes.
    pub aggregation: tokio::sync::Notify,
    /// The admission plugins every write passes.
    pub admission: admission::Chain,
    /// APIServices served by other servers (API aggregation).
    pub aggregator: aggregator::Aggregator,
    /// How this server authenticates to kubelets (pods/log), once configured.
    pub kubelet_client: std::sync::OnceLock<kubelet_proxy::KubeletClient>,
    /// The ranges Services get cluster IPs and node ports from, once configured
    /// (unset: Services are stored as given).
    pub service_alloc: std::sync::OnceLock<service_alloc::Allocators>,
}

impl ApiState {
    pub fn new(
        store: Arc<dyn Store>,
        tokens: StaticTokens,
        service_accounts: auth::service_account::ServiceAccounts,
        server_address: String,
        watch_cache_window: usize,
    ) -> Arc<Self> {
        Arc::new(ApiState {
            store,
            caches: watch_cache::WatchCaches::new(watch_cache_window),
            metrics: Default::default(),
            tokens,
            service_accounts,
            server_address,
            registry: Default::default(),
            authz: Default::default(),
            aggregation: tokio::sync::Notify::new(),
            admission: Default::default(),
            aggregator: Default::default(),
            kubelet_client: Default::default(),
            service_alloc: Default::default(),
        })
    }
}

/// The API server's HTTP routes.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

/// The namespaces every cluster has.
pub const DEFAULT_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates the default namespaces that do not exist yet.
pub async fn ensure_default_namespaces(state: &Arc<ApiState>) -> Result<(), ApiError> {
    let info = rkube_api::resources::find("", "v1", "namespaces").expect("namespaces are built in");
    for name in DEFAULT_NAMESPACES {
        let key = info.key(None, name);
        if state
            .store
            .get(&key, None)
            .await
            .map_err(|e| error::from_store(e, info, name))?
            .kv
            .is_some()
        {
            continue;
        }
        let mut obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "uid": meta::new_uid(), "creationTimestamp": meta::now_rfc3339()}});
        strategy::prepare_for_create(info, &mut obj);
        match state
            .store
            .create(&key, codec::encode_for_store(&obj).into())
            .await
        {
            Ok(_) | Err(rkube_store::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(error::from_store(e, info, name)),
        }
    }
    Ok(())
}

/// Upstream's answer to a request whose credentials are not valid.
fn unauthorized(headers: &axum::http::HeaderMap) -> Response {
    let format = match negotiate::response_format(headers) {
        Ok(negotiate::Format::Protobuf) => negotiate::Format::Protobuf,
        _ => negotiate::Format::Json,
    };
    ApiError::from(rkube_api::Status::unauthorized("Unauthorized")).into_response_as(format)
}

/// The user the server's own requests run as (upstream's loopback identity).
pub fn loopback_user() -> UserInfo {
    UserInfo {
        name: "system:apiserver".into(),
        groups: vec![
            authz::PRIVILEGED_GROUP.into(),
            "system:authenticated".into(),
        ],
        ..Default::default()
    }
}

/// Sends a request through the whole API path (authorization, the generic handler,
/// field managers) as the server itself; returns the status and the JSON body.
pub async fn internal_request(
    state: &Arc<ApiState>,
    method: Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    send_internal(state, method, path, "application/json", body).await
}

/// [`internal_request`] behind a box, for callers inside the request path (Service
/// allocation writes IPAddresses while handling a Service write): the handler's future
/// would otherwise contain itself.
pub(crate) fn nested_request<'a>(
    state: &'a Arc<ApiState>,
    method: Method,
    path: &'a str,
    body: Option<&'a serde_json::Value>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = (StatusCode, serde_json::Value)> + Send + 'a>>
{
    Box::pin(internal_request(state, method, path, body))
}

/// A server-side apply as the server itself (`path` carries the field manager).
pub async fn internal_apply(
    state: &Arc<ApiState>,
    path: &str,
    body: &serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    send_internal(
        state,
        Method::PATCH,
        path,
        "application/apply-patch+yaml",
        Some(body),
    )
    .await
}

async fn send_internal(
    state: &Arc<ApiState>,
    method: Method,
    path: &str,
    content_type: &str,
    body: Option<&serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    let bytes = body
        .map(|b| serde_json::to_vec(b).unwrap_or_default())
        .unwrap_or_default();
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::ACCEPT, "application/json")
        .header(
            header::USER_AGENT,
            concat!("kube-apiserver/v1.37.0+rkube.", env!("CARGO_PKG_VERSION")),
        )
        .body(Body::from(bytes))
        .expect("a valid internal request");
    req.extensions_mut().insert(tls::CertUser(loopback_user()));
    let response = handle(State(state.clone()), req).await;
    let code = response.status();
    let body = axum::body::to_bytes(response.into_body(), negotiate::MAX_BODY)
        .await
        .unwrap_or_default();
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into()));
    (code, value)
}

/// Whether a request changes RBAC objects (after which the authorizer is caught up
/// before answering, so the change is in force when the client hears back).
fn writes_rbac(a: &authz::Attributes) -> bool {
    a.resource_request
        && a.api_group == "rbac.authorization.k8s.io"
        && matches!(
            a.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
}

async fn handle(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let mut cert_user = req.extensions().get::<tls::CertUser>().map(|c| c.0.clone());
    let mut cert_rejected = req.extensions().get::<tls::CertRejected>().cloned();
    if let Some(peer) = req.extensions().get::<tls::PeerCertificate>() {
        // A front-proxy certificate names no user of its own: the request-header
        // headers do (upstream's requestheader authenticator, tried before x509).
        match state.aggregator.request_header_user(peer, req.headers()) {
            aggregator::request_header::Outcome::NotFrontProxy => {}
            aggregator::request_header::Outcome::NoUser => {
                (cert_user, cert_rejected) = (None, None);
            }
            aggregator::request_header::Outcome::User(user) => {
                (cert_user, cert_rejected) = (Some(user), None);
            }
        }
    }
    let authenticated = match cert_rejected {
        // A client certificate that does not verify fails authentication unless a bearer
        // token succeeds (upstream's union authenticator).
        Some(rejected) if auth::bearer_token(req.headers()).is_none() => {
            Err(auth::TokenRejected(rejected.0))
        }
        _ => auth::authenticate_request(&state, req.headers(), cert_user.as_ref()).await,
    };
    let mut user_name = String::new();
    let response = match authenticated {
        Err(rejected) => {
            tracing::info!(
                path,
                error = rejected.0,
                "Unable to authenticate the request"
            );
            unauthorized(req.headers())
        }
        Ok(authenticated) => {
            user_name.clone_from(&authenticated.name);
            match authz::impersonation::resolve(&state.authz, authenticated, req.headers(), &path) {
                Err(refused) => *refused,
                Ok(user) => {
                    let attrs = authz::Attributes::from_request(
                        user.clone(),
                        method.as_str(),
                        &path,
                        query.as_deref(),
                    );
                    let decision = state.authz.authorize(&attrs);
                    if decision.allowed() {
                        let rbac_write = writes_rbac(&attrs);
                        let response = route(state.clone(), req, user)
                            .await
                            .unwrap_or_else(IntoResponse::into_response);
                        if rbac_write && response.status().is_success() {
                            state.authz.sync(&*state.store).await;
                        }
                        response
                    } else {
                        tracing::debug!(
                            user = attrs.user.name,
                            verb = attrs.verb,
                            path,
                            reason = decision.reason(),
                            "forbidden"
                        );
                        let format = match negotiate::response_format(req.headers()) {
                            Ok(negotiate::Format::Protobuf) => negotiate::Format::Protobuf,
                            _ => negotiate::Format::Json,
                        };
                        authz::forbidden(&attrs, decision.reason()).into_response_as(format)
                    }
                }
            }
        }
    };
    state.metrics.observe(
        &method,
        &path,
        query.as_deref(),
        response.status().as_u16(),
        started.elapsed(),
    );
    tracing::debug!(method = %method, path, user = user_name, code = response.status().as_u16(), elapsed = ?started.elapsed(), "request");
    response
}

async fn route(state: Arc<ApiState>, req: Request, user: UserInfo) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    match path.trim_end_matches('/') {
        "/healthz" | "/livez" | "/readyz" => return Ok(health(&state, parts.uri.query()).await),
        p if ["/healthz/", "/livez/", "/readyz/"].iter().any(|prefix| {
            p.strip_prefix(prefix)
                .is_some_and(|c| c == "ping" || c == "etcd")
        }) =>
        {
            // One check: `ok`, or the failure.
            return Ok(health(&state, None).await);
        }
        "/version" => return Ok(version()),
        "/metrics" => {
            let text = state.metrics.render();
            return Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                text,
            )
                .into_response());
        }
        "/.well-known/openid-configuration" => {
            return Ok(openid_document(
                "application/json",
                &state.service_accounts.openid_configuration(),
            ))
        }
        "/openid/v1/jwks" => {
            return Ok(openid_document(
                "application/jwk-set+json",
                &state.service_accounts.jwks(),
            ))
        }
        "/openapi/v2" => return Ok(openapi::v2(&state.registry.snapshot(), &parts.headers)),
        "/openapi/v3" => return Ok(openapi::root(&state.registry.snapshot())),
        p if p.starts_with("/openapi/v3/") => {
            return openapi::group_version(&state.registry.snapshot(), &p["/openapi/v3".len()..])
        }
        _ => {}
    }
    if let Some(remote) = state.aggregator.remote_for(&path) {
        let req = Request::from_parts(parts, body);
        return Ok(aggregator::proxy::forward(&remote, req, &user).await);
    }
    if let Some(target) = kubelet_proxy::Connect::parse(&path) {
        if let kubelet_proxy::Connect::Pod { .. } = &target {
            // A WebSocket upgrade is a GET, authorized as `get`: it must be allowed
            // `create` too (upstream's AuthorizePodWebsocketUpgradeCreatePermission).
            if parts.method == axum::http::Method::GET {
                let attrs =
                    authz::Attributes::from_request(user.clone(), "POST", &path, parts.uri.query());
                let decision = state.authz.authorize(&attrs);
                if !decision.allowed() {
                    return Err(authz::forbidden(&attrs, decision.reason()));
                }
            }
        }
        let req = Request::from_parts(parts, body);
        return kubelet_proxy::connect(&state, target, req).await;
    }
    let is_ns_sub = |s: &str| s == "status" || s == "finalize";
    let target = request::parse(&path, is_ns_sub).ok_or_else(ApiError::page_not_found)?;
    let served = state.registry.snapshot();
    match target {
        request::Target::Root { legacy } => Ok(discovery::root(
            &served,
            legacy,
            &parts.headers,
            &state.server_address,
            &state.aggregator.groups(),
        )),
        request::Target::Group { group } => {
            discovery::group(&served, &group, &state.aggregator.groups())
        }
        request::Target::Version { group, version } => {
            discovery::version(&served, &group, &version)
        }
        request::Target::Resource(rp) => {
            let body = read_body(body).await?;
            rest::serve(
                state,
                &served,
                user,
                parts.method,
                rp,
                query::Query::parse(parts.uri.query()),
                parts.headers,
                body,
            )
            .await
        }
    }
}

/// The service-account issuer discovery documents, cacheable for an hour as upstream's.
fn openid_document(content_type: &'static str, body: &serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        serde_json::to_vec(body).unwrap_or_default(),
    )
        .into_response()
}

async fn read_body(body: Body) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, negotiate::MAX_BODY)
        .await
        .map_err(|_| ApiError::too_large())
}

/// `/healthz`, `/livez`, `/readyz`: `ok`, or 500 naming the failed check; `?verbose`
/// lists the checks as upstream does.
async fn health(state: &ApiState, query: Option<&str>) -> Response {
    let store = match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        state.store.current_revision(),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the store did not answer within 5s".to_owned()),
    };
    let verbose = query::Query::parse(query).has("verbose");
    match store {
        Ok(()) if verbose => (
            StatusCode::OK,
            "[+]ping ok\n[+]etcd ok\nhealthz check passed\n",
        )
            .into_response(),
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(reason) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("[+]ping ok\n[-]etcd failed: {reason}\nhealthz check failed\n"),
        )
            .into_response(),
    }
}

fn version() -> Response {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let body = json!({
        "major": "1",
        "minor": "37",
        "emulationMajor": "1",
        "emulationMinor": "37",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "36",
        "gitVersion": concat!("v1.37.0+rkube.", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{arch}", std::env::consts::OS),
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(&body).unwrap_or_default(),
    )
        .into_response()
}
