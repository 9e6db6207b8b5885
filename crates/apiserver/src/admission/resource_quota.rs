//! ResourceQuota (the admission side), as upstream: a create is checked against every
//! quota of its namespace whose `status.hard` (written by the resourcequota controller)
//! limits something the object is charged for and whose scopes select it; it is refused
//! with upstream's message (`exceeded quota: …`, `failed quota: …: must specify …`,
//! `status unknown for quota: …`) or charged to the quota's `status.used` with a
//! compare-and-swap, re-checked against the fresh quota when another write wins. The
//! controller recounts usage from the namespace's objects afterwards; the rules of what
//! each object charges are [`rkube_api::quota`], shared with it.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, ResourceQuota as Quota, Service};
use rkube_api::quota::{admit, Admitted, Verdict as QuotaVerdict};
use rkube_api::resources::ResourceInfo;
use serde_json::Value;

use super::{list, resource, Operation, Plugin, Request, Verdict};
use crate::codec::encode_for_store;
use crate::error::{from_store, ApiError};

/// How often a charge that loses to another writer is re-checked and retried.
const CHARGE_ATTEMPTS: usize = 10;

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
            let quotas: Vec<_> = quotas
                .into_iter()
                .filter(|q| {
                    q["status"]["hard"]
                        .as_object()
                        .is_some_and(|h| !h.is_empty())
                })
                .collect();
            if quotas.is_empty() {
                return Ok(());
            }
            let obj = r.object.as_ref().expect("a create has an object");
            let typed = Typed::of(r.info, obj)?;
            let admitted = typed.admitted(r.info);
            for quota in &quotas {
                let name = quota["metadata"]["name"].as_str().unwrap_or("");
                charge(r, quotas_info, name, &admitted).await?;
            }
            Ok(())
        })
    }
}

/// The admitted object decoded for the evaluator that charges it.
enum Typed {
    Pod(Box<Pod>),
    Service(Box<Service>),
    Claim(Box<PersistentVolumeClaim>),
    Other,
}

impl Typed {
    fn of(info: &ResourceInfo, obj: &Value) -> Result<Typed, ApiError> {
        let decode = |e: serde_json::Error| ApiError::internal(e);
        Ok(match (info.group, info.plural) {
            ("", "pods") => Typed::Pod(serde_json::from_value(obj.clone()).map_err(decode)?),
            ("", "services") => {
                Typed::Service(serde_json::from_value(obj.clone()).map_err(decode)?)
            }
            ("", "persistentvolumeclaims") => {
                Typed::Claim(serde_json::from_value(obj.clone()).map_err(decode)?)
            }
            _ => Typed::Other,
        })
    }

    fn admitted<'a>(&'a self, info: &'a ResourceInfo) -> Admitted<'a> {
        match self {
            Typed::Pod(p) => Admitted::Pod(p),
            Typed::Service(s) => Admitted::Service(s),
            Typed::Claim(c) => Admitted::Claim(c),
            Typed::Other => Admitted::Other {
                plural: info.plural,
                group: info.group,
            },
        }
    }
}

/// Checks the create against quota `name` as stored now and, unless it is a dry run,
/// writes the quota's new `status.used` (compare-and-swap; re-checked on conflict).
async fn charge(
    r: &Request,
    info: &'static ResourceInfo,
    name: &str,
    obj: &Admitted<'_>,
) -> Result<(), ApiError> {
    let key = info.key(Some(&r.namespace), name);
    for _ in 0..CHARGE_ATTEMPTS {
        let got = r
            .state
            .store
            .get(&key, None)
            .await
            .map_err(|e| from_store(e, info, name))?;
        let Some(kv) = got.kv else { return Ok(()) };
        let mut current: Value = serde_json::from_slice(&kv.value).map_err(ApiError::internal)?;
        let quota: Quota = serde_json::from_value(current.clone()).map_err(ApiError::internal)?;
        let spec = quota.spec.unwrap_or_default();
        let used = match admit(name, &spec, quota.status.as_ref(), obj) {
            QuotaVerdict::NotApplicable => return Ok(()),
            QuotaVerdict::Refused(message) => return Err(r.forbidden(message)),
            QuotaVerdict::Charge(used) => used,
        };
        if r.dry_run {
            return Ok(());
        }
        current["status"]["used"] = serde_json::to_value(used).map_err(ApiError::internal)?;
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
    Err(r.forbidden(format!(
        "failed quota: {name}: the quota changed too often while being charged; try again"
    )))
}
