//! The APIService controllers: upstream's local APIService registration (built-in and
//! CRD group/versions, `Available=True` reason `Local`) and the remote availability
//! controller, in one level-triggered loop.
//!
//! A pass reads every APIService, Service and EndpointSlice it needs from the store,
//! resolves each remote APIService to a ready endpoint, GETs `/apis/<group>/<version>`
//! there (5 s deadline) as `system:kube-aggregator` in `system:masters`, writes the
//! `Available` condition with upstream's reason and message when it changed, and swaps
//! the [`super::Aggregator`] table the request path reads. Passes run on every change of
//! APIServices, Services, EndpointSlices or CRDs, and every check interval.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use rkube_api::resources::{self, ResourceInfo};
use rkube_store::{ListOptions, Store};
use rustls::pki_types::ServerName;
use serde_json::{json, Value};

use super::proxy::{self, Backend};
use super::Remote;
use crate::auth::UserInfo;
use crate::ApiState;

/// The label upstream puts on the APIServices it registers itself.
const AUTOMANAGED: &str = "kube-aggregator.kubernetes.io/automanaged";
/// The label that names an EndpointSlice's Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Upstream's deadline for one discovery check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
const APISERVICES: &str = "/apis/apiregistration.k8s.io/v1/apiservices";

fn row(group: &str, plural: &str) -> &'static ResourceInfo {
    resources::find(group, "v1", plural).expect("a built-in resource")
}

/// Runs the first pass (local APIServices exist before the server serves), then
/// follows changes in the background.
pub async fn start(state: &Arc<ApiState>) {
    pass(state).await;
    for prefix in [
        row("apiregistration.k8s.io", "apiservices").storage_prefix(),
        row("", "services").storage_prefix(),
        row("discovery.k8s.io", "endpointslices").storage_prefix(),
        crate::crd::controller::PREFIX,
    ] {
        tokio::spawn(follow(state.clone(), prefix));
    }
    let st = state.clone();
    tokio::spawn(async move {
        loop {
            let interval = st.aggregator.check_interval();
            tokio::select! {
                () = st.aggregator.wake.notified() => {
                    // Let a burst of changes settle into one pass.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                () = tokio::time::sleep(interval) => {}
            }
            pass(&st).await;
        }
    });
}

/// Wakes the loop on every change under `prefix`.
async fn follow(state: Arc<ApiState>, prefix: &'static str) {
    loop {
        let watch = match state.store.current_revision().await {
            Ok(rev) => state.store.watch(prefix, rev).await,
            Err(e) => Err(e),
        };
        match watch {
            Ok(mut w) => {
                while let Some(Ok(_)) = w.recv().await {
                    state.aggregator.wake.notify_one();
                }
            }
            Err(e) => tracing::debug!(prefix, error = %e, "apiservice controller: watch failed"),
        }
        state.aggregator.wake.notify_one();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn list(store: &dyn Store, prefix: &str) -> Vec<Value> {
    match store.list(prefix, ListOptions::default()).await {
        Ok(page) => page
            .kvs
            .iter()
            .filter_map(|kv| crate::codec::decode_served(&kv.value, kv.mod_revision).ok())
            .collect(),
        Err(e) => {
            tracing::warn!(prefix, error = %e, "apiservice controller: list failed");
            Vec::new()
        }
    }
}

/// The APIService name of a group/version (`v1.` for the core group).
fn apiservice_name(group: &str, version: &str) -> String {
    format!("{version}.{group}")
}

/// One pass over every APIService.
pub async fn pass(state: &Arc<ApiState>) {
    let apiservices_row = row("apiregistration.k8s.io", "apiservices");
    let mut apiservices = list(&*state.store, apiservices_row.storage_prefix()).await;
    register_local(state, &mut apiservices).await;
    let mut remotes = Vec::new();
    for svc in &apiservices {
        let name = svc["metadata"]["name"].as_str().unwrap_or_default();
        let wanted = if svc["spec"]["service"].is_object() {
            let checked = check(state, svc).await;
            remotes.push(Arc::new(Remote {
                name: name.to_owned(),
                group: str_of(&svc["spec"]["group"]),
                version: str_of(&svc["spec"]["version"]),
                group_priority_minimum: svc["spec"]["groupPriorityMinimum"].as_i64().unwrap_or(0),
                version_priority: svc["spec"]["versionPriority"].as_i64().unwrap_or(0),
                available: checked.status == "True",
                backend: checked.backend,
                resources: checked.resources,
            }));
            (checked.status, checked.reason, checked.message)
        } else {
            (
                "True",
                "Local",
                "Local APIServices are always available".to_owned(),
            )
        };
        write_condition(state, svc, wanted).await;
    }
    state.aggregator.replace(remotes);
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// Creates the local APIServices of every served group/version, and deletes the
/// automanaged ones whose group/version is no longer served (a deleted CRD).
async fn register_local(state: &Arc<ApiState>, apiservices: &mut Vec<Value>) {
    let served = state.registry.snapshot();
    let groups = served.groups();
    let mut wanted = Vec::new();
    for (group, versions) in &groups {
        let custom = served.rows().any(|r| r.group == *group && r.is_custom());
        for (i, version) in versions.iter().enumerate() {
            wanted.push((apiservice_name(group, version), *group, *version, custom, i));
        }
    }
    for (name, group, version, custom, index) in &wanted {
        if apiservices
            .iter()
            .any(|a| a["metadata"]["name"] == name.as_str())
        {
            continue;
        }
        let (group_priority, version_priority) = match (group.is_empty(), custom) {
            (true, _) => (18000, 1),
            (false, true) => (1000, 100),
            (false, false) => (17000, 15 - *index as i64),
        };
        let body = json!({
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": name, "labels": {AUTOMANAGED: if *custom { "true" } else { "onstart" }}},
            "spec": {"group": group, "version": version, "groupPriorityMinimum": group_priority, "versionPriority": version_priority},
        });
        let (code, created) =
            crate::internal_request(state, Method::POST, APISERVICES, Some(&body)).await;
        if code.is_success() {
            apiservices.push(created);
        } else if code != StatusCode::CONFLICT {
            tracing::warn!(apiservice = name, code = code.as_u16(), body = %created, "cannot register a local APIService");
        }
    }
    let mut kept = Vec::with_capacity(apiservices.len());
    for a in apiservices.drain(..) {
        let name = a["metadata"]["name"].as_str().unwrap_or_default();
        let automanaged = a["metadata"]["labels"][AUTOMANAGED].is_string();
        if automanaged && a["spec"]["service"].is_null() && !wanted.iter().any(|w| w.0 == name) {
            let path = format!("{APISERVICES}/{name}");
            crate::internal_request(state, Method::DELETE, &path, None).await;
            continue;
        }
        kept.push(a);
    }
    *apiservices = kept;
}

/// Writes the `Available` condition when its status, reason or message changed (the
/// transition time moves only with the status).
async fn write_condition(state: &Arc<ApiState>, apiservice: &Value, wanted: (&str, &str, String)) {
    let (status, reason, message) = wanted;
    let current = apiservice["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Available"));
    if let Some(c) = current {
        if c["status"] == status && c["reason"] == reason && c["message"] == message.as_str() {
            return;
        }
    }
    let name = apiservice["metadata"]["name"].as_str().unwrap_or_default();
    let was = current.map(|c| c["status"].clone()).unwrap_or(Value::Null);
    let since = match current {
        Some(c) if c["status"] == status => c["lastTransitionTime"].clone(),
        _ => json!(crate::meta::now_rfc3339()),
    };
    let mut updated = apiservice.clone();
    let mut conditions: Vec<Value> = updated["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c["type"] != "Available")
        .collect();
    conditions.push(json!({"type": "Available", "status": status, "lastTransitionTime": since, "reason": reason, "message": message}));
    updated["status"] = json!({"conditions": conditions});
    if was != status && reason != "Local" {
        tracing::info!(apiservice = name, old = %was, new = status, reason, message, "changing APIService availability");
    }
    let path = format!("{APISERVICES}/{name}/status");
    let (code, body) = crate::internal_request(state, Method::PUT, &path, Some(&updated)).await;
    if !code.is_success() && code != StatusCode::CONFLICT && code != StatusCode::NOT_FOUND {
        tracing::warn!(apiservice = name, code = code.as_u16(), %body, "cannot update APIService status");
    }
}

/// The outcome of checking one remote APIService.
struct Checked {
    status: &'static str,
    reason: &'static str,
    message: String,
    backend: Option<Backend>,
    resources: Option<Vec<Value>>,
}

impl Checked {
    fn failed(status: &'static str, reason: &'static str, message: String) -> Self {
        Checked {
            status,
            reason,
            message,
            backend: None,
            resources: None,
        }
    }
}

/// Upstream's availability checks, in its order.
async fn check(state: &Arc<ApiState>, apiservice: &Value) -> Checked {
    let spec = &apiservice["spec"];
    let ns = spec["service"]["namespace"].as_str().unwrap_or_default();
    let name = spec["service"]["name"].as_str().unwrap_or_default();
    let port = spec["service"]["port"].as_i64().unwrap_or(443);
    let services = row("", "services");
    let service = match state.store.get(&services.key(Some(ns), name), None).await {
        Ok(got) => got
            .kv
            .and_then(|kv| crate::codec::decode_served(&kv.value, kv.mod_revision).ok()),
        Err(e) => {
            return Checked::failed(
                "Unknown",
                "ServiceAccessError",
                format!("service/{name} in {ns:?} cannot be checked due to: {e}"),
            )
        }
    };
    let Some(service) = service else {
        return Checked::failed(
            "False",
            "ServiceNotFound",
            format!("service/{name} in {ns:?} is not present"),
        );
    };
    let address = if service["spec"]["type"] == "ExternalName" {
        let host = service["spec"]["externalName"].as_str().unwrap_or_default();
        format!("{host}:{port}")
    } else {
        let Some(port_name) = service["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["port"].as_i64() == Some(port))
            .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
        else {
            return Checked::failed(
                "False",
                "ServicePortError",
                format!("service/{name} in {ns:?} is not listening on port {port}"),
            );
        };
        let slices: Vec<Value> = list(
            &*state.store,
            &row("discovery.k8s.io", "endpointslices").namespace_prefix(ns),
        )
        .await
        .into_iter()
        .filter(|s| s["metadata"]["labels"][SERVICE_NAME_LABEL] == name)
        .collect();
        if slices.is_empty() {
            return Checked::failed(
                "False",
                "EndpointsNotFound",
                format!("cannot find endpointslices for service/{name} in {ns:?}"),
            );
        }
        match ready_endpoint(&slices, &port_name) {
            Some(address) => address,
            None => {
                return Checked::failed(
                    "False",
                    "MissingEndpoints",
                    format!(
                        "endpointslices for service/{name} in {ns:?} have no addresses with port name {port_name:?}"
                    ),
                )
            }
        }
    };
    let ca_bundle = spec["caBundle"]
        .as_str()
        .and_then(|b| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(b).ok()
        })
        .unwrap_or_default();
    let insecure = spec["insecureSkipTLSVerify"].as_bool().unwrap_or(false);
    let server_name = format!("{name}.{ns}.svc");
    let url = format!(
        "https://{address}/apis/{}/{}",
        spec["group"].as_str().unwrap_or_default(),
        spec["version"].as_str().unwrap_or_default()
    );
    let backend =
        proxy::client_config(state.aggregator.identity(), &ca_bundle, insecure).and_then(|tls| {
            Ok(Backend {
                address: address.clone(),
                server_name: ServerName::try_from(server_name.clone())
                    .map_err(|e| format!("bad server name {server_name}: {e}"))?,
                tls,
            })
        });
    let backend = match backend {
        Ok(b) => b,
        Err(e) => {
            return Checked::failed(
                "False",
                "FailedDiscoveryCheck",
                format!("failing or missing response from {url}: {e}"),
            )
        }
    };
    match tokio::time::timeout(CHECK_TIMEOUT, discover(&backend, &url)).await {
        Ok(Ok(resources)) => Checked {
            status: "True",
            reason: "Passed",
            message: "all checks passed".into(),
            backend: Some(backend),
            resources,
        },
        Ok(Err(e)) => Checked::failed(
            "False",
            "FailedDiscoveryCheck",
            format!("failing or missing response from {url}: {e}"),
        ),
        Err(_) => Checked::failed(
            "False",
            "FailedDiscoveryCheck",
            format!("timed out waiting for {url}"),
        ),
    }
}

/// `host:port` of the first ready endpoint of `slices` serving `port_name`.
fn ready_endpoint(slices: &[Value], port_name: &str) -> Option<String> {
    slices.iter().find_map(|s| {
        let port = s["ports"]
            .as_array()?
            .iter()
            .find(|p| p["name"].as_str().unwrap_or_default() == port_name)?["port"]
            .as_i64()?;
        let address = s["endpoints"]
            .as_array()?
            .iter()
            .filter(|e| e["conditions"]["ready"] != false)
            .find_map(|e| e["addresses"].as_array()?.first()?.as_str())?;
        Some(if address.contains(':') {
            format!("[{address}]:{port}")
        } else {
            format!("{address}:{port}")
        })
    })
}

/// GETs the backend's discovery document; its resources when it is one.
async fn discover(backend: &Backend, url: &str) -> Result<Option<Vec<Value>>, String> {
    let path = url.find("/apis/").map(|i| &url[i..]).unwrap_or("/apis");
    let mut req = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(header::ACCEPT, "application/json")
        .body(axum::body::Body::empty())
        .map_err(|e| e.to_string())?;
    let checker = UserInfo::new(
        "system:kube-aggregator",
        vec![crate::authz::PRIVILEGED_GROUP.into()],
    );
    proxy::set_user_headers(req.headers_mut(), &checker);
    let response = proxy::send(backend, req)
        .await
        .map_err(|e| format!("Get {url:?}: {e}"))?;
    let status = response.status();
    if !status.is_success() && !status.is_redirection() {
        return Err(format!("bad status from {url}: {}", status.as_u16()));
    }
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .map_err(|e| format!("Get {url:?}: {e}"))?
        .to_bytes();
    Ok(serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|doc| doc["resources"].as_array().cloned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_choice() {
        let slices = vec![
            json!({"ports": [{"name": "https", "port": 8443}], "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": false}}]}),
            json!({"ports": [{"name": "other", "port": 1}], "endpoints": [{"addresses": ["10.0.0.2"]}]}),
            json!({"ports": [{"name": "https", "port": 9443}], "endpoints": [{"addresses": ["fd00::3"], "conditions": {"ready": true}}]}),
        ];
        assert_eq!(
            ready_endpoint(&slices, "https").as_deref(),
            Some("[fd00::3]:9443")
        );
        assert_eq!(
            ready_endpoint(&slices, "other").as_deref(),
            Some("10.0.0.2:1")
        );
        assert_eq!(ready_endpoint(&slices, "nope"), None);
        assert_eq!(ready_endpoint(&slices[..1], "https"), None);
    }
}
