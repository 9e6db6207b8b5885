//! The PodDisruptionBudget side of `pods/eviction` (upstream's eviction REST
//! `checkAndDecrement`): an eviction may proceed only if the pod's budget allows one
//! more disruption, which it then takes (decrementing `status.disruptionsAllowed` and
//! recording the pod in `status.disruptedPods` until the disruption controller sees it
//! gone).

use rkube_api::status::{Status, StatusCause, StatusDetails};
use rkube_api::LabelSelector;
use serde_json::{json, Value};

use crate::codec::{decode_served, encode_for_store};
use crate::error::{from_store, ApiError};
use crate::meta::meta_str;
use crate::ApiState;

/// Upstream's cap on evictions the disruption controller has not confirmed yet.
const MAX_DISRUPTED_PODS: usize = 2000;
const VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

fn too_many(cause: String) -> ApiError {
    let mut status = Status::too_many_requests(VIOLATION, 0);
    status.details = Some(StatusDetails {
        causes: vec![StatusCause {
            cause_type: "DisruptionBudget".into(),
            message: cause,
            field: String::new(),
        }],
        ..StatusDetails::default()
    });
    status.into()
}

fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// What an eviction of `pod` does to the budget `pdb`: `Ok(None)` when the budget need
/// not change (an unhealthy pod the policy lets go), `Ok(Some(updated))` when it takes
/// one disruption, or the error refusing the eviction.
pub fn decide(pdb: &Value, pod: &Value, now: &str) -> Result<Option<Value>, ApiError> {
    let name = meta_str(pdb, "name").unwrap_or("").to_owned();
    let status = &pdb["status"];
    let observed = status["observedGeneration"].as_i64().unwrap_or(0);
    if observed < pdb["metadata"]["generation"].as_i64().unwrap_or(0) {
        return Err(too_many(format!(
            "The disruption budget {name} is still being processed by the server."
        )));
    }
    let current = status["currentHealthy"].as_i64().unwrap_or(0);
    let desired = status["desiredHealthy"].as_i64().unwrap_or(0);
    if !pod_ready(pod) {
        match pdb["spec"]["unhealthyPodEvictionPolicy"].as_str() {
            Some("AlwaysAllow") => return Ok(None),
            _ if current >= desired && desired > 0 => return Ok(None),
            _ => {}
        }
    }
    let allowed = status["disruptionsAllowed"].as_i64().unwrap_or(0);
    let resource = rkube_api::GroupResource::new("policy", "poddisruptionbudget");
    if allowed < 0 {
        return Err(
            Status::forbidden(&resource, &name, "pdb disruptions allowed is negative").into(),
        );
    }
    let disrupted = status["disruptedPods"].as_object().map_or(0, |m| m.len());
    if disrupted > MAX_DISRUPTED_PODS {
        return Err(Status::forbidden(
            &resource,
            &name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        )
        .into());
    }
    if allowed == 0 {
        return Err(too_many(format!(
            "The disruption budget {name} needs {desired} healthy pods and has {current} currently"
        )));
    }
    let mut updated = pdb.clone();
    let st = &mut updated["status"];
    st["disruptionsAllowed"] = json!(allowed - 1);
    if allowed - 1 == 0 {
        let generation = st["observedGeneration"].clone();
        let conditions = st
            .as_object_mut()
            .expect("status is an object")
            .entry("conditions")
            .or_insert_with(|| json!([]));
        if let Some(list) = conditions.as_array_mut() {
            let already = list
                .iter()
                .any(|c| c["type"] == "DisruptionAllowed" && c["status"] == "False");
            if !already {
                list.retain(|c| c["type"] != "DisruptionAllowed");
                list.push(json!({"type": "DisruptionAllowed", "status": "False",
                    "reason": "InsufficientPods", "message": "",
                    "observedGeneration": generation, "lastTransitionTime": now}));
            }
        }
    }
    let pod_name = meta_str(pod, "name").unwrap_or("").to_owned();
    let map = st
        .as_object_mut()
        .expect("status is an object")
        .entry("disruptedPods")
        .or_insert_with(|| json!({}));
    if !map.is_object() {
        *map = json!({});
    }
    map[pod_name] = json!(now);
    Ok(Some(updated))
}

/// Checks the pod's PodDisruptionBudget and takes one disruption from it (retrying on
/// write conflicts); no budget means the eviction may proceed.
pub async fn take_disruption(state: &ApiState, pod: &Value, dry_run: bool) -> Result<(), ApiError> {
    let info = rkube_api::resources::find("policy", "v1", "poddisruptionbudgets")
        .expect("poddisruptionbudgets are a built-in resource");
    let ns = meta_str(pod, "namespace").unwrap_or("");
    let labels = pod["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for _ in 0..5 {
        let listed = state
            .store
            .list(&info.namespace_prefix(ns), Default::default())
            .await
            .map_err(|e| from_store(e, info, ""))?;
        let mut matching = Vec::new();
        for kv in listed.kvs {
            let pdb = decode_served(&kv.value, kv.mod_revision).map_err(ApiError::internal)?;
            let selects = match LabelSelector::from_json(&pdb["spec"]["selector"]) {
                Ok(Some(sel)) => sel.matches(&labels),
                _ => false,
            };
            if selects {
                matching.push((kv, pdb));
            }
        }
        let (kv, pdb) = match matching.len() {
            0 => return Ok(()),
            1 => matching.pop().expect("one budget"),
            _ => {
                return Err(ApiError::internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ))
            }
        };
        let Some(updated) = decide(&pdb, pod, &crate::meta::now_rfc3339())? else {
            return Ok(());
        };
        if dry_run {
            return Ok(());
        }
        match state
            .store
            .update(&kv.key, encode_for_store(&updated).into(), kv.mod_revision)
            .await
        {
            Ok(_) => return Ok(()),
            Err(rkube_store::Error::Conflict { .. }) => continue,
            Err(e) => return Err(from_store(e, info, meta_str(&pdb, "name").unwrap_or(""))),
        }
    }
    Err(too_many(
        "The disruption budget is being updated too often; retry".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdb(allowed: i64, current: i64, desired: i64) -> Value {
        json!({"metadata": {"name": "web", "generation": 1},
            "spec": {"minAvailable": 2},
            "status": {"observedGeneration": 1, "disruptionsAllowed": allowed,
                "currentHealthy": current, "desiredHealthy": desired, "expectedPods": 3}})
    }

    fn pod(ready: bool) -> Value {
        json!({"metadata": {"name": "web-1"}, "status": {"conditions": [
            {"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    #[test]
    fn an_exhausted_budget_refuses_with_429() {
        let err = decide(&pdb(0, 2, 2), &pod(true), "t").unwrap_err();
        assert_eq!(err.0.code, 429);
        assert_eq!(err.0.message, VIOLATION);
        let cause = &err.0.details.as_ref().unwrap().causes[0];
        assert_eq!(cause.cause_type, "DisruptionBudget");
        assert_eq!(
            cause.message,
            "The disruption budget web needs 2 healthy pods and has 2 currently"
        );
    }

    #[test]
    fn an_allowed_eviction_takes_one_disruption() {
        let updated = decide(&pdb(1, 3, 2), &pod(true), "2026-01-01T00:00:00Z")
            .unwrap()
            .unwrap();
        assert_eq!(updated["status"]["disruptionsAllowed"], 0);
        assert_eq!(
            updated["status"]["disruptedPods"]["web-1"],
            "2026-01-01T00:00:00Z"
        );
        let c = &updated["status"]["conditions"][0];
        assert_eq!(
            (
                c["type"].as_str(),
                c["status"].as_str(),
                c["reason"].as_str()
            ),
            (
                Some("DisruptionAllowed"),
                Some("False"),
                Some("InsufficientPods")
            )
        );
    }

    #[test]
    fn unprocessed_budgets_and_unhealthy_pods() {
        let mut stale = pdb(1, 3, 2);
        stale["metadata"]["generation"] = json!(2);
        let err = decide(&stale, &pod(true), "t").unwrap_err();
        assert_eq!(
            err.0.details.unwrap().causes[0].message,
            "The disruption budget web is still being processed by the server."
        );
        // An unready pod of a healthy budget goes without taking a disruption.
        assert!(decide(&pdb(0, 2, 2), &pod(false), "t").unwrap().is_none());
        // Of an unhealthy budget it is refused, unless the policy always allows it.
        assert!(decide(&pdb(0, 1, 2), &pod(false), "t").is_err());
        let mut always = pdb(0, 1, 2);
        always["spec"]["unhealthyPodEvictionPolicy"] = json!("AlwaysAllow");
        assert!(decide(&always, &pod(false), "t").unwrap().is_none());
    }
}
