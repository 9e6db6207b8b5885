//! DynamicResources: upstream's DRA plugin, which is in the default profile. rkube does
//! not allocate ResourceClaims yet: pods that use them are rejected at PreFilter, every
//! other pod skips the plugin, and its PostFilter reports that it has no claims to
//! deallocate — the first part of upstream's preemption message.

use std::sync::Arc;

use crate::framework::{
    ClusterEvent, CycleState, NodeInfo, Nomination, Plugin, PodInfo, PostFilterInput,
    PostFilterPlugin, PreFilterPlugin, Status,
};

pub const NAME: &str = "DynamicResources";

/// The PreFilter and PostFilter plugin.
#[derive(Default)]
pub struct DynamicResources;

impl DynamicResources {
    pub fn new() -> Self {
        DynamicResources
    }
}

impl Plugin for DynamicResources {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events_to_register(&self) -> &'static [ClusterEvent] {
        &[ClusterEvent::UnscheduledPodUpdate]
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_post_filter(&self) -> Option<&dyn PostFilterPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for DynamicResources {
    fn pre_filter(&self, _: &mut CycleState, pod: &PodInfo, _: &[Arc<NodeInfo>]) -> Status {
        let claims = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.resource_claims.as_ref())
            .is_some_and(|c| !c.is_empty());
        if claims {
            Status::unresolvable("resource claims are not supported by this scheduler yet")
        } else {
            Status::skip()
        }
    }
}

impl PostFilterPlugin for DynamicResources {
    fn post_filter(&self, _: &PostFilterInput<'_>) -> (Status, Option<Nomination>) {
        (Status::unschedulable("no new claims to deallocate"), None)
    }
}
