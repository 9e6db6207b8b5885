//! VolumeBinding (PreFilter): every PersistentVolumeClaim the pod's volumes use must
//! exist, not be lost or being deleted, and be bound — unless its StorageClass delays
//! binding until a consumer is scheduled (`WaitForFirstConsumer`). Matching unbound
//! claims to pre-provisioned volumes by node affinity is not done yet: such claims pass.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};

use crate::framework::{
    ClusterEvent, CycleState, NodeInfo, Plugin, PodInfo, PreFilterPlugin, Status,
};
use crate::listers::Listers;

pub const NAME: &str = "VolumeBinding";
pub const ERR_REASON_UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";

/// The PreFilter plugin.
pub struct VolumeBinding {
    listers: Arc<Listers>,
}

impl VolumeBinding {
    pub fn new(listers: Arc<Listers>) -> Self {
        VolumeBinding { listers }
    }
}

/// A claim a pod's volume uses.
pub struct Claim {
    pub name: String,
    /// A generic ephemeral volume's claim (`<pod>-<volume>`, made by a controller).
    pub ephemeral: bool,
}

/// The claims of the pod's volumes, in volume order.
pub fn pod_claims(pod: &Pod) -> Vec<Claim> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or("");
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| {
            if let Some(c) = &v.persistent_volume_claim {
                Some(Claim {
                    name: c.claim_name.clone(),
                    ephemeral: false,
                })
            } else {
                v.ephemeral.as_ref().map(|_| Claim {
                    name: format!("{pod_name}-{}", v.name),
                    ephemeral: true,
                })
            }
        })
        .collect()
}

/// Upstream's "not found" wording for a claim the lister does not have.
pub fn not_found(claim: &Claim) -> String {
    if claim.ephemeral {
        format!(
            "waiting for ephemeral volume controller to create the persistentvolumeclaim {:?}",
            claim.name
        )
    } else {
        format!("persistentvolumeclaim {:?} not found", claim.name)
    }
}

/// Why a claim that exists cannot be used at all, if it cannot.
fn unusable(pod: &Pod, claim: &Claim, pvc: &PersistentVolumeClaim) -> Option<String> {
    let name = &claim.name;
    if pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Lost") {
        let volume = pvc
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.as_deref())
            .unwrap_or("");
        return Some(format!(
            "persistentvolumeclaim {name:?} bound to non-existent persistentvolume {volume:?}"
        ));
    }
    if pvc.metadata.deletion_timestamp.is_some() {
        return Some(format!("persistentvolumeclaim {name:?} is being deleted"));
    }
    if claim.ephemeral {
        let owned = pvc
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true) && Some(&o.uid) == pod.metadata.uid.as_ref());
        if !owned {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("");
            let pod_name = pod.metadata.name.as_deref().unwrap_or("");
            return Some(format!(
                "PVC {ns}/{name} was not created for pod {ns}/{pod_name} (pod is not owner)"
            ));
        }
    }
    None
}

impl Plugin for VolumeBinding {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events_to_register(&self) -> &'static [ClusterEvent] {
        &[
            ClusterEvent::PvcChange,
            ClusterEvent::StorageClassChange,
            ClusterEvent::NodeAdd,
            ClusterEvent::NodeUpdate,
            ClusterEvent::UnscheduledPodUpdate,
        ]
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for VolumeBinding {
    fn pre_filter(&self, _: &mut CycleState, pod: &PodInfo, _: &[Arc<NodeInfo>]) -> Status {
        let claims = pod_claims(&pod.pod);
        if claims.is_empty() {
            return Status::skip();
        }
        let ns = pod.pod.metadata.namespace.as_deref().unwrap_or("");
        let mut pvcs = Vec::with_capacity(claims.len());
        for claim in &claims {
            let Some(pvc) = self.listers.pvcs.get(ns, &claim.name) else {
                return Status::unresolvable(not_found(claim));
            };
            if let Some(why) = unusable(&pod.pod, claim, &pvc) {
                return Status::unresolvable(why);
            }
            pvcs.push(pvc);
        }
        let unbound_immediate = pvcs.iter().any(|pvc| {
            let spec = pvc.spec.as_ref();
            let bound = spec
                .and_then(|s| s.volume_name.as_deref())
                .is_some_and(|v| !v.is_empty());
            if bound {
                return false;
            }
            let delayed = spec
                .and_then(|s| s.storage_class_name.as_deref())
                .filter(|c| !c.is_empty())
                .and_then(|c| self.listers.storage_classes.get("", c))
                .is_some_and(|sc| {
                    sc.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer")
                });
            !delayed
        });
        if unbound_immediate {
            return Status::unresolvable(ERR_REASON_UNBOUND_IMMEDIATE);
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::framework::Code;
    use crate::plugins::helper::test_util::pod;

    fn listers(pvcs: serde_json::Value, classes: serde_json::Value) -> Arc<Listers> {
        let l = Listers::default();
        for p in pvcs.as_array().unwrap() {
            l.pvcs.upsert(serde_json::from_value(p.clone()).unwrap());
        }
        for c in classes.as_array().unwrap() {
            l.storage_classes
                .upsert(serde_json::from_value(c.clone()).unwrap());
        }
        Arc::new(l)
    }

    fn pvc(name: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut p = json!({"metadata": {"name": name, "namespace": "default"}, "spec": {}});
        if let Some(spec) = extra.get("spec") {
            p["spec"] = spec.clone();
        }
        if let Some(status) = extra.get("status") {
            p["status"] = status.clone();
        }
        if let Some(ts) = extra.get("deletionTimestamp") {
            p["metadata"]["deletionTimestamp"] = ts.clone();
        }
        p
    }

    #[test]
    fn claims_must_exist_and_be_bound_unless_binding_waits_for_a_consumer() {
        let l = listers(
            json!([
                pvc("bound", json!({"spec": {"volumeName": "pv-1"}})),
                pvc("pending", json!({"spec": {"storageClassName": "fast"}})),
                pvc("no-class", json!({})),
                pvc("delayed", json!({"spec": {"storageClassName": "local"}})),
                pvc(
                    "lost",
                    json!({"spec": {"volumeName": "gone"}, "status": {"phase": "Lost"}})
                ),
                pvc(
                    "deleting",
                    json!({"spec": {"volumeName": "pv-2"}, "deletionTimestamp": "2026-01-01T00:00:00Z"})
                ),
            ]),
            json!([
                {"metadata": {"name": "fast"}, "provisioner": "x", "volumeBindingMode": "Immediate"},
                {"metadata": {"name": "local"}, "provisioner": "x", "volumeBindingMode": "WaitForFirstConsumer"},
            ]),
        );
        let pl = VolumeBinding::new(l);
        let cases = [
            ("bound", Code::Success, ""),
            ("delayed", Code::Success, ""),
            (
                "missing",
                Code::UnschedulableAndUnresolvable,
                "persistentvolumeclaim \"missing\" not found",
            ),
            (
                "pending",
                Code::UnschedulableAndUnresolvable,
                ERR_REASON_UNBOUND_IMMEDIATE,
            ),
            (
                "no-class",
                Code::UnschedulableAndUnresolvable,
                ERR_REASON_UNBOUND_IMMEDIATE,
            ),
            (
                "lost",
                Code::UnschedulableAndUnresolvable,
                "persistentvolumeclaim \"lost\" bound to non-existent persistentvolume \"gone\"",
            ),
            (
                "deleting",
                Code::UnschedulableAndUnresolvable,
                "persistentvolumeclaim \"deleting\" is being deleted",
            ),
        ];
        for (claim, code, message) in cases {
            let p = pod(json!({"containers": [{"name": "c"}],
                "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]}));
            let s = pl.pre_filter(&mut CycleState::default(), &p, &[]);
            assert_eq!((s.code(), s.message().as_str()), (code, message), "{claim}");
        }
        let none = pod(json!({"containers": [{"name": "c"}]}));
        assert!(pl
            .pre_filter(&mut CycleState::default(), &none, &[])
            .is_skip());
        let eph = pod(json!({"containers": [{"name": "c"}],
            "volumes": [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]}));
        assert_eq!(
            pl.pre_filter(&mut CycleState::default(), &eph, &[]).message(),
            "waiting for ephemeral volume controller to create the persistentvolumeclaim \"p-scratch\""
        );
    }
}
