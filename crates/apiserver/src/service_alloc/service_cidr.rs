//! The default ServiceCIDR `kubernetes` (upstream's defaultservicecidr controller): made
//! from `--service-cluster-ip-range`, marked `Ready`, re-created if deleted, and reported
//! with an Event when it no longer matches the flag (it is never changed then).

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::ApiState;

/// The default ServiceCIDR's name.
pub const NAME: &str = "kubernetes";
const CONTROLLER: &str = "kubernetes-service-cidr-controller";
const PATH: &str = "/apis/networking.k8s.io/v1/servicecidrs";

/// One pass: create if missing, then set `Ready=True` unless a condition is already
/// there or the CIDRs disagree with the flag.
pub async fn ensure(state: &Arc<ApiState>, cidr: &str) -> Result<(), String> {
    let path = format!("{PATH}/{NAME}");
    let (code, mut current) = crate::internal_request(state, Method::GET, &path, None).await;
    if code == StatusCode::NOT_FOUND {
        tracing::info!(cidrs = cidr, "creating the default ServiceCIDR");
        let desired = json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "ServiceCIDR",
            "metadata": {"name": NAME},
            "spec": {"cidrs": [cidr]},
        });
        let (code, answer) =
            crate::internal_request(state, Method::POST, PATH, Some(&desired)).await;
        match code {
            c if c.is_success() => current = answer,
            StatusCode::CONFLICT => {
                let (_, again) = crate::internal_request(state, Method::GET, &path, None).await;
                current = again;
            }
            c => {
                return Err(format!(
                    "the default ServiceCIDR can not be created: {c} {}",
                    answer["message"]
                ))
            }
        }
    } else if !code.is_success() {
        return Err(format!(
            "cannot read the default ServiceCIDR: {code} {}",
            current["message"]
        ));
    }
    sync_status(state, &current, cidr).await
}

async fn sync_status(state: &Arc<ApiState>, current: &Value, cidr: &str) -> Result<(), String> {
    if current["metadata"]["deletionTimestamp"].is_string() {
        return Ok(());
    }
    let cidrs = super::strings(&current["spec"]["cidrs"]);
    if cidrs != [cidr] {
        tracing::warn!(
            service_cidr = ?cidrs,
            flag = cidr,
            "Inconsistent ServiceCIDR status for kubernetes: configure the flags to match current ServiceCIDR or manually delete it"
        );
        return Ok(());
    }
    let ready = current["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready");
    if ready.is_some_and(|c| c["status"] == "True" || c["status"] == "False") {
        return Ok(());
    }
    let status = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "ServiceCIDR",
        "metadata": {"name": NAME},
        "status": {"conditions": [{
            "type": "Ready",
            "status": "True",
            "reason": "",
            "message": "Kubernetes default Service CIDR is ready",
            "lastTransitionTime": crate::meta::now_rfc3339(),
        }]},
    });
    let (code, answer) = crate::internal_apply(
        state,
        &format!("{PATH}/{NAME}/status?fieldManager={CONTROLLER}&force=true"),
        &status,
    )
    .await;
    if code.is_success() {
        Ok(())
    } else {
        Err(format!(
            "the default ServiceCIDR Status can not be set to Ready=True: {code} {}",
            answer["message"]
        ))
    }
}
