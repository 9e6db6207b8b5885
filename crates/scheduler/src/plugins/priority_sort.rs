//! PrioritySort: the active queue's order — higher `spec.priority` first, then the pod
//! that entered the queue earlier.

use crate::framework::{Plugin, PodInfo, QueueSortPlugin};

pub const NAME: &str = "PrioritySort";

/// The QueueSort plugin.
pub struct PrioritySort;

impl PrioritySort {
    pub fn new() -> Self {
        PrioritySort
    }
}

impl Default for PrioritySort {
    fn default() -> Self {
        Self::new()
    }
}

impl Plugin for PrioritySort {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_queue_sort(&self) -> Option<&dyn QueueSortPlugin> {
        Some(self)
    }
}

impl QueueSortPlugin for PrioritySort {
    fn less(&self, a: &PodInfo, a_at: u64, b: &PodInfo, b_at: u64) -> bool {
        let (pa, pb) = (a.priority(), b.priority());
        pa > pb || (pa == pb && a_at < b_at)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plugins::helper::test_util::pod;

    #[test]
    fn higher_priority_first_then_earlier() {
        let high = pod(json!({"priority": 10}));
        let low = pod(json!({"priority": 1}));
        let s = PrioritySort::new();
        assert!(s.less(&high, 5, &low, 1));
        assert!(!s.less(&low, 1, &high, 5));
        assert!(s.less(&low, 1, &low, 2));
        assert!(!s.less(&low, 2, &low, 1));
    }
}
