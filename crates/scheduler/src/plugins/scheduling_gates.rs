//! SchedulingGates: a pod with `spec.schedulingGates` waits outside the active queue
//! until every gate is removed.

use k8s_openapi::api::core::v1::Pod;

use crate::framework::{ClusterEvent, Plugin, PreEnqueuePlugin, Status};

pub const NAME: &str = "SchedulingGates";

/// The PreEnqueue plugin.
#[derive(Default)]
pub struct SchedulingGates;

impl SchedulingGates {
    pub fn new() -> Self {
        SchedulingGates
    }
}

impl Plugin for SchedulingGates {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events_to_register(&self) -> &'static [ClusterEvent] {
        &[ClusterEvent::UnscheduledPodUpdate]
    }
    fn as_pre_enqueue(&self) -> Option<&dyn PreEnqueuePlugin> {
        Some(self)
    }
}

impl PreEnqueuePlugin for SchedulingGates {
    fn pre_enqueue(&self, pod: &Pod) -> Status {
        let gates: Vec<&str> = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduling_gates.as_ref())
            .into_iter()
            .flatten()
            .map(|g| g.name.as_str())
            .collect();
        if gates.is_empty() {
            return Status::success();
        }
        Status::unresolvable(format!(
            "waiting for scheduling gates: [{}]",
            gates.join(" ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::framework::Code;
    use crate::plugins::helper::test_util::pod;

    #[test]
    fn gated_pods_wait() {
        let p = SchedulingGates::new();
        assert!(p.pre_enqueue(&pod(json!({})).pod).is_success());
        let s = p.pre_enqueue(&pod(json!({"schedulingGates": [{"name": "a"}, {"name": "b"}]})).pod);
        assert_eq!(s.code(), Code::UnschedulableAndUnresolvable);
        assert_eq!(s.message(), "waiting for scheduling gates: [a b]");
    }
}
