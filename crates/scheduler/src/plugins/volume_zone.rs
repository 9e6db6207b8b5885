//! VolumeZone: a pod's bound PersistentVolumes carry zone/region labels
//! (`topology.kubernetes.io/*` and the deprecated `failure-domain.beta.kubernetes.io/*`,
//! values joined by `__`); a node labelled with any of these keys fits only if it has
//! every one of the volumes' keys with a listed value. Unbound claims whose class waits
//! for a consumer are skipped (VolumeBinding decides for them).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::framework::{
    ClusterEvent, CycleState, FilterPlugin, NodeInfo, Plugin, PodInfo, PreFilterPlugin, Status,
};
use crate::listers::Listers;
use crate::plugins::volume_binding::pod_claims;

pub const NAME: &str = "VolumeZone";
/// The Filter reason.
pub const ERR_REASON_CONFLICT: &str = "node(s) had no available volume zone";

const BETA_ZONE: &str = "failure-domain.beta.kubernetes.io/zone";
const BETA_REGION: &str = "failure-domain.beta.kubernetes.io/region";
const ZONE: &str = "topology.kubernetes.io/zone";
const REGION: &str = "topology.kubernetes.io/region";
/// The labels compared, in upstream's order.
const TOPOLOGY_LABELS: [&str; 4] = [BETA_ZONE, BETA_REGION, ZONE, REGION];

/// The GA label for a deprecated one (a beta PV label may match a GA node label).
fn to_ga(key: &str) -> &str {
    match key {
        BETA_ZONE => ZONE,
        BETA_REGION => REGION,
        other => other,
    }
}

/// One volume's constraint: a label key and the values it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Topology {
    key: &'static str,
    values: Vec<String>,
}

/// What PreFilter found for the cycle.
struct PvTopologies(Vec<Topology>);

/// The Filter plugin.
pub struct VolumeZone {
    listers: Arc<Listers>,
}

impl VolumeZone {
    pub fn new(listers: Arc<Listers>) -> Self {
        VolumeZone { listers }
    }

    /// The zone constraints of the pod's bound volumes, or why the pod cannot go anywhere.
    fn topologies(&self, pod: &PodInfo) -> Result<Vec<Topology>, Status> {
        let ns = pod.pod.metadata.namespace.as_deref().unwrap_or("");
        let mut out = Vec::new();
        for claim in pod_claims(&pod.pod) {
            let Some(pvc) = self.listers.pvcs.get(ns, &claim.name) else {
                return Err(Status::unresolvable(
                    crate::plugins::volume_binding::not_found(&claim),
                ));
            };
            let spec = pvc.spec.as_ref();
            let pv_name = spec.and_then(|s| s.volume_name.as_deref()).unwrap_or("");
            if pv_name.is_empty() {
                let class = spec
                    .and_then(|s| s.storage_class_name.as_deref())
                    .unwrap_or("");
                if class.is_empty() {
                    return Err(Status::unresolvable(
                        "PersistentVolumeClaim had no pv name and storageClass name",
                    ));
                }
                let Some(sc) = self.listers.storage_classes.get("", class) else {
                    return Err(Status::unresolvable(format!(
                        "storageclass.storage.k8s.io {class:?} not found"
                    )));
                };
                match sc.volume_binding_mode.as_deref() {
                    None => {
                        return Err(Status::unresolvable(format!(
                            "VolumeBindingMode not set for StorageClass {class:?}"
                        )))
                    }
                    Some("WaitForFirstConsumer") => continue,
                    Some(_) => return Err(Status::unresolvable("PersistentVolume had no name")),
                }
            }
            let Some(pv) = self.listers.pvs.get("", pv_name) else {
                return Err(Status::unresolvable(format!(
                    "persistentvolume {pv_name:?} not found"
                )));
            };
            let empty = BTreeMap::new();
            let labels = pv.metadata.labels.as_ref().unwrap_or(&empty);
            for key in TOPOLOGY_LABELS {
                if let Some(v) = labels.get(key) {
                    out.push(Topology {
                        key,
                        values: v.split("__").map(|s| s.trim().to_owned()).collect(),
                    });
                }
            }
        }
        Ok(out)
    }
}

impl Plugin for VolumeZone {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events_to_register(&self) -> &'static [ClusterEvent] {
        &[
            ClusterEvent::PvcChange,
            ClusterEvent::PvChange,
            ClusterEvent::StorageClassChange,
            ClusterEvent::NodeAdd,
            ClusterEvent::NodeUpdate,
            ClusterEvent::UnscheduledPodUpdate,
        ]
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for VolumeZone {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, _: &[Arc<NodeInfo>]) -> Status {
        match self.topologies(pod) {
            Ok(t) if t.is_empty() => Status::skip(),
            Ok(t) => {
                state.write(PvTopologies(t));
                Status::success()
            }
            Err(s) => s,
        }
    }
}

impl FilterPlugin for VolumeZone {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let computed;
        let topologies = match state.read::<PvTopologies>() {
            Some(t) => &t.0,
            None => {
                computed = match self.topologies(pod) {
                    Ok(t) => t,
                    Err(s) => return s,
                };
                &computed
            }
        };
        if topologies.is_empty() {
            return Status::success();
        }
        let empty = BTreeMap::new();
        let labels = node.node.metadata.labels.as_ref().unwrap_or(&empty);
        // A node without any zone or region label is not constrained.
        if !TOPOLOGY_LABELS.iter().any(|k| labels.contains_key(*k)) {
            return Status::success();
        }
        for t in topologies {
            let value = labels.get(t.key).or_else(|| labels.get(to_ga(t.key)));
            if !value.is_some_and(|v| t.values.iter().any(|x| x == v)) {
                return Status::unresolvable(ERR_REASON_CONFLICT);
            }
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    use k8s_openapi::api::storage::v1::StorageClass;
    use serde_json::json;

    use super::*;
    use crate::framework::Code;
    use crate::plugins::helper::test_util::{node, pod};

    fn listers() -> Arc<Listers> {
        let l = Listers::default();
        let pv = |name: &str, labels: serde_json::Value| -> PersistentVolume {
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
        };
        l.pvs.replace(vec![
            pv("pv-a", json!({ZONE: "zone-a", REGION: "r1"})),
            pv("pv-ab", json!({ZONE: "zone-a__zone-b"})),
            pv("pv-beta", json!({BETA_ZONE: "zone-b"})),
            pv("pv-none", json!({})),
        ]);
        let pvc = |name: &str, spec: serde_json::Value| -> PersistentVolumeClaim {
            serde_json::from_value(
                json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec}),
            )
            .unwrap()
        };
        l.pvcs.replace(vec![
            pvc("c-a", json!({"volumeName": "pv-a"})),
            pvc("c-ab", json!({"volumeName": "pv-ab"})),
            pvc("c-beta", json!({"volumeName": "pv-beta"})),
            pvc("c-none", json!({"volumeName": "pv-none"})),
            pvc("c-wait", json!({"storageClassName": "wait"})),
            pvc("c-now", json!({"storageClassName": "now"})),
            pvc("c-noclass", json!({})),
            pvc("c-gone", json!({"volumeName": "pv-gone"})),
        ]);
        let sc = |name: &str, mode: &str| -> StorageClass {
            serde_json::from_value(json!({"metadata": {"name": name}, "provisioner": "x",
                "volumeBindingMode": mode}))
            .unwrap()
        };
        l.storage_classes.replace(vec![
            sc("wait", "WaitForFirstConsumer"),
            sc("now", "Immediate"),
        ]);
        Arc::new(l)
    }

    fn with_claims(claims: &[&str]) -> PodInfo {
        let volumes: Vec<_> = claims
            .iter()
            .map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": c}}))
            .collect();
        pod(json!({"containers": [{"name": "c"}], "volumes": volumes}))
    }

    /// PreFilter then Filter, as a cycle runs them: the verdict's code and reasons.
    fn run(pl: &VolumeZone, p: &PodInfo, labels: serde_json::Value) -> (Code, Vec<String>) {
        let n = Arc::new(node("n", labels, json!({}), json!({})));
        let mut st = CycleState::default();
        let pre = pl.pre_filter(&mut st, p, std::slice::from_ref(&n));
        if !pre.is_success() {
            return (pre.code(), pre.reasons().to_vec());
        }
        let s = pl.filter(&st, p, &n);
        (s.code(), s.reasons().to_vec())
    }

    #[test]
    fn volume_zones_against_node_labels() {
        let pl = VolumeZone::new(listers());
        let ok = (Code::Success, vec![]);
        let conflict = (
            Code::UnschedulableAndUnresolvable,
            vec![ERR_REASON_CONFLICT.to_owned()],
        );
        let skip = (Code::Skip, vec![]);
        // (case, claims, node labels, verdict)
        let cases = [
            ("no claims", vec![], json!({ZONE: "zone-a"}), skip.clone()),
            (
                "unlabelled pv",
                vec!["c-none"],
                json!({ZONE: "zone-a"}),
                skip.clone(),
            ),
            (
                "same zone and region",
                vec!["c-a"],
                json!({ZONE: "zone-a", REGION: "r1"}),
                ok.clone(),
            ),
            (
                "other zone",
                vec!["c-a"],
                json!({ZONE: "zone-b", REGION: "r1"}),
                conflict.clone(),
            ),
            (
                "other region",
                vec!["c-a"],
                json!({ZONE: "zone-a", REGION: "r2"}),
                conflict.clone(),
            ),
            (
                "node lacks the region key",
                vec!["c-a"],
                json!({ZONE: "zone-a"}),
                conflict.clone(),
            ),
            (
                "node without zone labels",
                vec!["c-a"],
                json!({"other": "x"}),
                ok.clone(),
            ),
            (
                "one of several zones",
                vec!["c-ab"],
                json!({ZONE: "zone-b"}),
                ok.clone(),
            ),
            (
                "beta pv label, ga node label",
                vec!["c-beta"],
                json!({ZONE: "zone-b"}),
                ok.clone(),
            ),
            (
                "beta pv label, other zone",
                vec!["c-beta"],
                json!({ZONE: "zone-a"}),
                conflict.clone(),
            ),
            (
                "beta on both",
                vec!["c-beta"],
                json!({BETA_ZONE: "zone-b"}),
                ok.clone(),
            ),
            (
                "unbound, waits for consumer",
                vec!["c-wait"],
                json!({ZONE: "zone-a"}),
                skip.clone(),
            ),
            (
                "every volume must match",
                vec!["c-a", "c-ab"],
                json!({ZONE: "zone-b", REGION: "r1"}),
                conflict.clone(),
            ),
            (
                "unbound, immediate",
                vec!["c-now"],
                json!({ZONE: "zone-a"}),
                (
                    Code::UnschedulableAndUnresolvable,
                    vec!["PersistentVolume had no name".to_owned()],
                ),
            ),
            (
                "unbound, no class",
                vec!["c-noclass"],
                json!({}),
                (
                    Code::UnschedulableAndUnresolvable,
                    vec!["PersistentVolumeClaim had no pv name and storageClass name".to_owned()],
                ),
            ),
            (
                "missing pv",
                vec!["c-gone"],
                json!({}),
                (
                    Code::UnschedulableAndUnresolvable,
                    vec!["persistentvolume \"pv-gone\" not found".to_owned()],
                ),
            ),
        ];
        for (case, claims, labels, want) in cases {
            assert_eq!(run(&pl, &with_claims(&claims), labels), want, "{case}");
        }
    }
}
