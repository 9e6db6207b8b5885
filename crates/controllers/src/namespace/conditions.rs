//! The namespace deletion conditions upstream's namespace controller keeps on a
//! terminating namespace's status: what one pass found, turned into conditions with
//! upstream's types, reasons and messages (pure; tested here).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::NamespaceCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Condition types, in upstream's order, with their "ok" reason and message.
const OK: [(&str, &str, &str); 5] = [
    (
        "NamespaceDeletionDiscoveryFailure",
        "ResourcesDiscovered",
        "All resources successfully discovered",
    ),
    (
        "NamespaceDeletionGroupVersionParsingFailure",
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed",
    ),
    (
        "NamespaceDeletionContentFailure",
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    (
        "NamespaceContentRemaining",
        "ContentRemoved",
        "All content successfully removed",
    ),
    (
        "NamespaceFinalizersRemaining",
        "ContentHasNoFinalizers",
        "All content-preserving finalizers finished",
    ),
];

/// What one content-deletion pass over a namespace found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    /// Discovery failed for some groups: group version → error message.
    pub discovery_failed: BTreeMap<String, String>,
    /// Group versions that could not be parsed.
    pub group_version_error: Option<String>,
    /// Errors deleting content, one per resource.
    pub content_errors: Vec<String>,
    /// `<resource>.<group>` → instances still present.
    pub remaining: BTreeMap<String, usize>,
    /// Finalizer → instances still held by it.
    pub finalizers: BTreeMap<String, usize>,
}

impl Pass {
    /// The failing conditions this pass produces, as (type, reason, message).
    pub fn failures(&self) -> Vec<(&'static str, &'static str, String)> {
        let mut out = Vec::new();
        if !self.discovery_failed.is_empty() {
            let err = crate::discovery::GroupDiscoveryFailed(self.discovery_failed.clone());
            out.push((
                OK[0].0,
                "DiscoveryFailed",
                format!(
                    "Discovery failed for some groups, {} failing: {err}",
                    self.discovery_failed.len()
                ),
            ));
        }
        if let Some(e) = &self.group_version_error {
            out.push((OK[1].0, "GroupVersionParsingFailed", e.clone()));
        }
        if !self.content_errors.is_empty() {
            let mut msgs = self.content_errors.clone();
            msgs.sort();
            out.push((
                OK[2].0,
                "ContentDeletionFailed",
                format!(
                    "Failed to delete all resource types, {} remaining: {}",
                    msgs.len(),
                    msgs.join(", ")
                ),
            ));
        }
        let remaining: Vec<String> = self
            .remaining
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(r, n)| format!("{r} has {n} resource instances"))
            .collect();
        if !remaining.is_empty() {
            out.push((
                OK[3].0,
                "SomeResourcesRemain",
                format!("Some resources are remaining: {}", sorted(remaining)),
            ));
        }
        let finalizers: Vec<String> = self
            .finalizers
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(f, n)| format!("{f} in {n} resource instances"))
            .collect();
        if !finalizers.is_empty() {
            out.push((
                OK[4].0,
                "SomeFinalizersRemain",
                format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    sorted(finalizers)
                ),
            ));
        }
        out
    }

    /// Whether the pass ended in an error (the namespace must not be finalized).
    pub fn failed(&self) -> bool {
        !self.discovery_failed.is_empty()
            || self.group_version_error.is_some()
            || !self.content_errors.is_empty()
    }
}

fn sorted(mut items: Vec<String>) -> String {
    items.sort();
    items.join(", ")
}

/// Sets every deletion condition on `conditions` from `pass` (failing ones `True`, the
/// others `False` with their ok reason), keeping transition times of unchanged statuses.
/// Returns whether anything changed.
pub fn update(conditions: &mut Vec<NamespaceCondition>, pass: &Pass, now: &Time) -> bool {
    let failures = pass.failures();
    let mut changed = false;
    for (kind, ok_reason, ok_message) in OK {
        let (status, reason, message) = match failures.iter().find(|f| f.0 == kind) {
            Some((_, reason, message)) => ("True", *reason, message.clone()),
            None => ("False", ok_reason, ok_message.to_owned()),
        };
        match conditions.iter_mut().find(|c| c.type_ == kind) {
            None => {
                conditions.push(NamespaceCondition {
                    type_: kind.to_owned(),
                    status: status.to_owned(),
                    reason: Some(reason.to_owned()),
                    message: Some(message),
                    last_transition_time: Some(now.clone()),
                });
                changed = true;
            }
            Some(c) => {
                if c.status != status
                    || c.reason.as_deref() != Some(reason)
                    || c.message.as_deref() != Some(&message)
                {
                    if c.status != status {
                        c.last_transition_time = Some(now.clone());
                    }
                    c.status = status.to_owned();
                    c.reason = Some(reason.to_owned());
                    c.message = Some(message);
                    changed = true;
                }
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap())
    }

    fn find<'a>(c: &'a [NamespaceCondition], t: &str) -> &'a NamespaceCondition {
        c.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn clean_pass_sets_every_condition_false() {
        let mut conds = Vec::new();
        assert!(update(&mut conds, &Pass::default(), &now()));
        assert_eq!(conds.len(), 5);
        assert!(conds.iter().all(|c| c.status == "False"));
        let c = find(&conds, "NamespaceContentRemaining");
        assert_eq!(c.reason.as_deref(), Some("ContentRemoved"));
        assert_eq!(
            c.message.as_deref(),
            Some("All content successfully removed")
        );
        assert!(!update(&mut conds, &Pass::default(), &now()), "no change");
    }

    #[test]
    fn failures_read_like_upstream() {
        let mut pass = Pass::default();
        pass.discovery_failed.insert(
            "metrics.k8s.io/v1beta1".into(),
            "the server is currently unable to handle the request".into(),
        );
        pass.remaining.insert("pods.".into(), 1);
        pass.remaining.insert("widgets.example.com".into(), 0);
        pass.finalizers.insert("example.com/blocker".into(), 1);
        pass.content_errors.push("b".into());
        pass.content_errors.push("a".into());
        let mut conds = Vec::new();
        update(&mut conds, &pass, &now());
        let c = find(&conds, "NamespaceDeletionDiscoveryFailure");
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref()),
            ("True", Some("DiscoveryFailed"))
        );
        assert_eq!(
            c.message.as_deref(),
            Some("Discovery failed for some groups, 1 failing: unable to retrieve the complete list of server APIs: metrics.k8s.io/v1beta1: the server is currently unable to handle the request")
        );
        let c = find(&conds, "NamespaceContentRemaining");
        assert_eq!(c.reason.as_deref(), Some("SomeResourcesRemain"));
        assert_eq!(
            c.message.as_deref(),
            Some("Some resources are remaining: pods. has 1 resource instances")
        );
        let c = find(&conds, "NamespaceFinalizersRemaining");
        assert_eq!(c.reason.as_deref(), Some("SomeFinalizersRemain"));
        assert_eq!(
            c.message.as_deref(),
            Some("Some content in the namespace has finalizers remaining: example.com/blocker in 1 resource instances")
        );
        let c = find(&conds, "NamespaceDeletionContentFailure");
        assert_eq!(
            c.message.as_deref(),
            Some("Failed to delete all resource types, 2 remaining: a, b")
        );
        assert!(pass.failed());
        // Once clean, conditions flip to False with a new transition time.
        let later = Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_100).unwrap());
        assert!(update(&mut conds, &Pass::default(), &later));
        let c = find(&conds, "NamespaceFinalizersRemaining");
        assert_eq!(c.status, "False");
        assert_eq!(c.last_transition_time.as_ref(), Some(&later));
    }
}
