//! ResourceQuota (the admission side): a create that would take a namespace's usage
//! past a quota's `hard` is refused with upstream's message, and an admitted create is
//! charged to the quota's `status.used`.
//!
//! Usage is counted from the watch caches at admission (rkube has no quota controller
//! yet), so `status` is also (re)computed here: `pods`, `count/<resource>[.<group>]`,
//! the legacy object counts, and the pods' compute resources (`requests.cpu`,
//! `limits.memory`, `cpu` = `requests.cpu`, ...). Quotas with `scopes` or a
//! `scopeSelector` are not enforced yet.

use std::collections::BTreeMap;

use rkube_api::resources::ResourceInfo;
use serde_json::{json, Value};

use super::{list, resource, Operation, Plugin, Request, Verdict};
use crate::codec::encode_for_store;
use crate::error::{from_store, ApiError};
use rkube_api::quantity::milli_value;

/// Core resources whose object count has a legacy quota name.
const LEGACY_COUNTS: [&str; 6] = [
    "pods",
    "services",
    "configmaps",
    "secrets",
    "persistentvolumeclaims",
    "replicationcontrollers",
];
/// How often a charge that loses to another writer is retried.
const CHARGE_ATTEMPTS: usize = 5;

pub struct ResourceQuota;

impl Plugin for ResourceQuota {
    fn name(&self) -> &'static str {
        "ResourceQuota"
    }

    fn validate<'a>(&'a self, r: &'a mut Request) -> Verdict<'a> {
        Box::pin(async move {
            if r.operation != Operation::Create
                || !r.subresource.is_empty()
                || r.namespace.is_empty()
                || r.info.is_virtual()
            {
                return Ok(());
            }
            let quotas_info = resource("", "v1", "resourcequotas");
            let quotas = list(&r.state, quotas_info, Some(&r.namespace)).await?;
            let quotas: Vec<Value> = quotas
                .into_iter()
                .filter(|q| q["spec"]["scopes"].is_null() && q["spec"]["scopeSelector"].is_null())
                .filter(|q| q["spec"]["hard"].as_object().is_some_and(|h| !h.is_empty()))
                .collect();
            if quotas.is_empty() {
                return Ok(());
            }
            let obj = r.object.as_ref().expect("a create has an object");
            for quota in &quotas {
                let hard = quota["spec"]["hard"].as_object().expect("filtered");
                let name = quota["metadata"]["name"].as_str().unwrap_or("");
                if r.info.group.is_empty() && r.info.plural == "pods" {
                    let missing = missing_compute(obj, hard.keys());
                    if !missing.is_empty() {
                        return Err(r.forbidden(format!(
                            "failed quota: {name}: must specify {}",
                            missing.join("; ")
                        )));
                    }
                }
                let mut requested = BTreeMap::new();
                let mut used = BTreeMap::new();
                for (res, _) in hard {
                    let delta = usage_of(r.info, obj, res);
                    if delta == 0 {
                        continue;
                    }
                    requested.insert(res.clone(), delta);
                    used.insert(res.clone(), namespace_usage(r, res).await?);
                }
                let exceeded: Vec<&String> = requested
                    .iter()
                    .filter(|(res, delta)| {
                        let limit = hard[*res].as_str().and_then(|s| milli_value(s).ok());
                        limit.is_some_and(|l| used[*res] + **delta > l)
                    })
                    .map(|(res, _)| res)
                    .collect();
                if !exceeded.is_empty() {
                    let show = |values: &dyn Fn(&String) -> String| {
                        exceeded
                            .iter()
                            .map(|res| format!("{res}={}", values(res)))
                            .collect::<Vec<_>>()
                            .join(",")
                    };
                    return Err(r.forbidden(format!(
                        "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
                        show(&|res| format_quantity(res, requested[res])),
                        show(&|res| format_quantity(res, used[res])),
                        show(&|res| hard[res].as_str().unwrap_or("").to_owned()),
                    )));
                }
            }
            if !r.dry_run {
                for quota in &quotas {
                    charge(r, quotas_info, quota).await?;
                }
            }
            Ok(())
        })
    }
}

/// The compute resources a quota limits that some container does not declare, as
/// upstream lists them (`limits.cpu for: c; requests.memory for: c`).
fn missing_compute<'a>(pod: &Value, hard: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut missing = Vec::new();
    for res in hard {
        let (part, name) = match res.split_once('.') {
            Some(("requests", n)) => ("requests", n),
            Some(("limits", n)) => ("limits", n),
            None if res == "cpu" || res == "memory" => ("requests", res.as_str()),
            _ => continue,
        };
        if name != "cpu" && name != "memory" {
            continue;
        }
        let lacking: Vec<&str> = pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["resources"][part][name].is_null())
            .filter_map(|c| c["name"].as_str())
            .collect();
        if !lacking.is_empty() {
            missing.push(format!("{res} for: {}", lacking.join(",")));
        }
    }
    missing.sort();
    missing
}

/// What `obj` (of resource `info`) counts against quota resource `res`, in milli-units.
fn usage_of(info: &ResourceInfo, obj: &Value, res: &str) -> i64 {
    let is_pod = info.group.is_empty() && info.plural == "pods";
    let count_name = if info.group.is_empty() {
        format!("count/{}", info.plural)
    } else {
        format!("count/{}.{}", info.plural, info.group)
    };
    if res == count_name
        || (info.group.is_empty() && res == info.plural && LEGACY_COUNTS.contains(&res))
    {
        return if is_pod && terminal(obj) { 0 } else { 1000 };
    }
    if !is_pod || terminal(obj) {
        return 0;
    }
    let (part, name) = match res.split_once('.') {
        Some(("requests", n)) => ("requests", n),
        Some(("limits", n)) => ("limits", n),
        None if !res.contains('/') => ("requests", res),
        _ => return 0,
    };
    pod_total(&obj["spec"], part, name)
}

fn terminal(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

/// A pod's effective `part` of resource `name`: the containers' sum, or the largest
/// init container's if more.
fn pod_total(spec: &Value, part: &str, name: &str) -> i64 {
    let of = |c: &Value| {
        c["resources"][part][name]
            .as_str()
            .and_then(|s| milli_value(s).ok())
            .unwrap_or(0)
    };
    let sum: i64 = spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(of)
        .sum();
    let init = spec["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(of)
        .max()
        .unwrap_or(0);
    sum.max(init)
}

/// The namespace's current usage of quota resource `res` (milli-units).
async fn namespace_usage(r: &Request, res: &str) -> Result<i64, ApiError> {
    let info = counted_resource(res).unwrap_or(r.info);
    let objects = list(&r.state, info, Some(&r.namespace)).await?;
    Ok(objects.iter().map(|o| usage_of(info, o, res)).sum())
}

/// The resource a quota resource name counts (`count/deployments.apps` → deployments).
fn counted_resource(res: &str) -> Option<&'static ResourceInfo> {
    let plural_group = res.strip_prefix("count/").unwrap_or(res);
    let (plural, group) = plural_group.split_once('.').unwrap_or((plural_group, ""));
    // Compute resources (`requests.cpu`, `memory`, ...) are the pods'.
    let plural = if !res.starts_with("count/") && !LEGACY_COUNTS.contains(&res) {
        "pods"
    } else {
        plural
    };
    let group = if plural == "pods" { "" } else { group };
    rkube_api::resources::builtin()
        .iter()
        .find(|i| i.group == group && i.plural == plural)
}

/// A usage in milli-units as upstream prints it: counts and cores as plain numbers or
/// milli-units, memory in binary units when whole.
fn format_quantity(res: &str, milli: i64) -> String {
    let memory_like = res.ends_with("memory") || res.ends_with("storage");
    if memory_like && milli % 1000 == 0 {
        let bytes = milli / 1000;
        for (suffix, unit) in [
            ("Ti", 1_i64 << 40),
            ("Gi", 1 << 30),
            ("Mi", 1 << 20),
            ("Ki", 1 << 10),
        ] {
            if bytes != 0 && bytes % unit == 0 {
                return format!("{}{suffix}", bytes / unit);
            }
        }
    }
    super::limit_ranger::format_milli(milli)
}

/// Writes the quota's status: `hard` from the spec and `used` recounted, the new object
/// included (compare-and-swap; retried when another write wins).
async fn charge(r: &Request, info: &'static ResourceInfo, quota: &Value) -> Result<(), ApiError> {
    let name = quota["metadata"]["name"].as_str().unwrap_or("");
    let key = info.key(Some(&r.namespace), name);
    let obj = r.object.as_ref().expect("a create has an object");
    for _ in 0..CHARGE_ATTEMPTS {
        let got = r
            .state
            .store
            .get(&key, None)
            .await
            .map_err(|e| from_store(e, info, name))?;
        let Some(kv) = got.kv else { return Ok(()) };
        let mut current: Value = serde_json::from_slice(&kv.value).map_err(ApiError::internal)?;
        let hard = current["spec"]["hard"].clone();
        let mut used = serde_json::Map::new();
        for res in hard
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.clone())
        {
            let total = namespace_usage(r, &res).await? + usage_of(r.info, obj, &res);
            used.insert(res.clone(), json!(format_quantity(&res, total)));
        }
        current["status"] = json!({"hard": hard, "used": used});
        match r
            .state
            .store
            .update(&key, encode_for_store(&current).into(), kv.mod_revision)
            .await
        {
            Ok(_) => return Ok(()),
            Err(rkube_store::Error::Conflict { .. }) => continue,
            Err(e) => return Err(from_store(e, info, name)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods() -> &'static ResourceInfo {
        resource("", "v1", "pods")
    }

    #[test]
    fn usage() {
        let pod = json!({"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1"}}},
            {"name": "b", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
        ]}});
        let cases = [
            ("pods", 1000),
            ("count/pods", 1000),
            ("requests.cpu", 500),
            ("cpu", 500),
            ("limits.cpu", 1000),
            ("requests.memory", 128 * 1024 * 1024 * 1000),
            ("count/configmaps", 0),
        ];
        for (res, want) in cases {
            assert_eq!(usage_of(pods(), &pod, res), want, "{res}");
        }
        let done = json!({"status": {"phase": "Succeeded"}, "spec": {}});
        assert_eq!(usage_of(pods(), &done, "pods"), 0);
        let deployments = resource("apps", "v1", "deployments");
        assert_eq!(
            usage_of(deployments, &json!({}), "count/deployments.apps"),
            1000
        );
        assert_eq!(
            counted_resource("count/deployments.apps").unwrap().plural,
            "deployments"
        );
        assert_eq!(counted_resource("requests.cpu").unwrap().plural, "pods");
        assert_eq!(counted_resource("configmaps").unwrap().plural, "configmaps");
    }

    #[test]
    fn quantities_and_missing_resources() {
        assert_eq!(format_quantity("pods", 2000), "2");
        assert_eq!(format_quantity("requests.cpu", 1500), "1500m");
        assert_eq!(
            format_quantity("requests.memory", 128 * 1024 * 1024 * 1000),
            "128Mi"
        );
        let pod = json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}});
        let hard = [
            "limits.cpu".to_owned(),
            "requests.cpu".to_owned(),
            "pods".to_owned(),
        ];
        assert_eq!(
            missing_compute(&pod, hard.iter()),
            vec!["limits.cpu for: c"]
        );
    }
}
