//! VolumeRestrictions: a PersistentVolumeClaim with the ReadWriteOncePod access mode is
//! used by one pod at most — while another pod in the cluster uses it, no node fits.

use std::collections::HashSet;
use std::sync::Arc;

use crate::framework::{
    AllNodes, ClusterEvent, CycleState, FilterPlugin, NodeInfo, Plugin, PodInfo, PreFilterPlugin,
    Status,
};
use crate::listers::Listers;

pub const NAME: &str = "VolumeRestrictions";
pub const ERR_REASON_READ_WRITE_ONCE_POD_CONFLICT: &str =
    "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode";

/// The PreFilter and Filter plugin.
pub struct VolumeRestrictions {
    listers: Arc<Listers>,
}

impl VolumeRestrictions {
    pub fn new(listers: Arc<Listers>) -> Self {
        VolumeRestrictions { listers }
    }
}

/// How many pods in the cluster already use one of the pod's ReadWriteOncePod claims.
struct Conflicts(usize);

impl Plugin for VolumeRestrictions {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events_to_register(&self) -> &'static [ClusterEvent] {
        &[
            ClusterEvent::AssignedPodDelete,
            ClusterEvent::PvcChange,
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

fn claim_names(pod: &PodInfo) -> impl Iterator<Item = &str> {
    pod.pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.as_str())
}

impl PreFilterPlugin for VolumeRestrictions {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, nodes: &[Arc<NodeInfo>]) -> Status {
        let ns = pod.pod.metadata.namespace.as_deref().unwrap_or("");
        let mut rwop = HashSet::new();
        for name in claim_names(pod) {
            let Some(pvc) = self.listers.pvcs.get(ns, name) else {
                return Status::unresolvable(format!("persistentvolumeclaim {name:?} not found"));
            };
            let modes = pvc
                .spec
                .as_ref()
                .and_then(|s| s.access_modes.as_deref())
                .unwrap_or_default();
            if modes.iter().any(|m| m == "ReadWriteOncePod") {
                rwop.insert(name.to_owned());
            }
        }
        if rwop.is_empty() {
            return Status::skip();
        }
        let all = state.read::<AllNodes>().map(|a| a.0.clone());
        let nodes = all.as_deref().map(|s| s.nodes()).unwrap_or(nodes);
        let conflicts = nodes
            .iter()
            .flat_map(|n| n.pods.iter())
            .filter(|p| p.uid() != pod.uid())
            .filter(|p| p.pod.metadata.namespace.as_deref().unwrap_or("") == ns)
            .filter(|p| claim_names(p).any(|c| rwop.contains(c)))
            .count();
        state.write(Conflicts(conflicts));
        Status::success()
    }
}

impl FilterPlugin for VolumeRestrictions {
    fn filter(&self, state: &CycleState, _: &PodInfo, _: &NodeInfo) -> Status {
        match state.read::<Conflicts>() {
            Some(Conflicts(n)) if *n > 0 => {
                Status::unschedulable(ERR_REASON_READ_WRITE_ONCE_POD_CONFLICT)
            }
            _ => Status::success(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::framework::Code;
    use crate::plugins::helper::test_util::{plain_node, pod, pod_named};

    fn uses(claim: &str) -> serde_json::Value {
        json!({"containers": [{"name": "c"}],
            "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]})
    }

    #[test]
    fn a_read_write_once_pod_claim_serves_one_pod() {
        let l = Listers::default();
        for (name, mode) in [("solo", "ReadWriteOncePod"), ("shared", "ReadWriteMany")] {
            l.pvcs.upsert(
                serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"},
                    "spec": {"accessModes": [mode]}}))
                .unwrap(),
            );
        }
        let pl = VolumeRestrictions::new(Arc::new(l));
        let mut busy = plain_node("busy");
        busy.add_pod(pod_named("holder", uses("solo")));
        busy.add_pod(pod_named("sharer", uses("shared")));
        let nodes = vec![Arc::new(busy), Arc::new(plain_node("idle"))];
        let run = |p: &PodInfo| {
            let mut st = CycleState::default();
            let pre = pl.pre_filter(&mut st, p, &nodes);
            if !pre.is_success() {
                return vec![pre];
            }
            nodes
                .iter()
                .map(|n| pl.filter(&st, p, n))
                .collect::<Vec<_>>()
        };
        // Every node is rejected while another pod holds the claim.
        let got = run(&pod(uses("solo")));
        assert!(
            got.iter().all(|s| s.code() == Code::Unschedulable
                && s.message() == ERR_REASON_READ_WRITE_ONCE_POD_CONFLICT),
            "{got:?}"
        );
        // Other access modes are not restricted; a pod without claims skips the plugin.
        assert!(run(&pod(uses("shared"))).iter().all(|s| s.is_skip()));
        assert!(run(&pod(json!({"containers": [{"name": "c"}]})))
            .iter()
            .all(|s| s.is_skip()));
        let missing = run(&pod(uses("nope")));
        assert_eq!(
            missing[0].message(),
            "persistentvolumeclaim \"nope\" not found"
        );
        assert_eq!(missing[0].code(), Code::UnschedulableAndUnresolvable);
    }
}
