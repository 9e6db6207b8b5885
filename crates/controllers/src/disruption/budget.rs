//! A PodDisruptionBudget's status from its pods (pure; tested here): expected pods and
//! desired healthy from `minAvailable`/`maxUnavailable` (an int, or a percentage of the
//! owning controllers' scale, rounded up), current healthy, disruptions allowed,
//! disrupted pods still pending, and the `DisruptionAllowed` condition with upstream's
//! reasons.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

/// How long an eviction recorded in `disruptedPods` waits for the pod to go before it
/// is dropped (upstream's `DeletionTimeout`).
pub const DELETION_TIMEOUT_SECS: i64 = 120;

/// `value` of `total`: an int, or a percentage rounded up.
pub fn scaled(value: &IntOrString, total: i32) -> Result<i32, String> {
    match value {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            Ok(((pct * total as i64 + 99) / 100) as i32)
        }
    }
}

/// Whether the budget needs the owning controllers' scale to be computed.
pub fn needs_scale(pdb: &PodDisruptionBudget) -> bool {
    let spec = pdb.spec.as_ref();
    spec.and_then(|s| s.max_unavailable.as_ref()).is_some()
        || matches!(
            spec.and_then(|s| s.min_available.as_ref()),
            Some(IntOrString::String(_))
        )
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn condition(
    pdb: &PodDisruptionBudget,
    status: &str,
    reason: &str,
    message: &str,
    now: &Time,
) -> Condition {
    let old = pdb
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "DisruptionAllowed"));
    Condition {
        type_: "DisruptionAllowed".into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: pdb.metadata.generation,
        last_transition_time: match old {
            Some(c) if c.status == status => c.last_transition_time.clone(),
            _ => now.clone(),
        },
    }
}

/// The status for `pdb` over `pods` (those its selector matches), with `scale` the
/// summed replicas of their controllers when [`needs_scale`] (an error when it could
/// not be found: the budget then allows no disruption, reason `SyncFailed`).
pub fn status(
    pdb: &PodDisruptionBudget,
    pods: &[&Pod],
    scale: Option<Result<i32, String>>,
    now: &Time,
) -> PodDisruptionBudgetStatus {
    let old = pdb.status.clone().unwrap_or_default();
    let fail = |message: String| PodDisruptionBudgetStatus {
        disruptions_allowed: Some(0),
        observed_generation: pdb.metadata.generation,
        conditions: Some(vec![condition(pdb, "False", "SyncFailed", &message, now)]),
        ..old.clone()
    };
    let spec = pdb.spec.clone().unwrap_or_default();
    let (expected, desired) = if let Some(max) = &spec.max_unavailable {
        let expected = match scale {
            Some(Ok(n)) => n,
            Some(Err(e)) => return fail(e),
            None => pods.len() as i32,
        };
        match scaled(max, expected) {
            Ok(m) => (expected, (expected - m).max(0)),
            Err(e) => return fail(e),
        }
    } else if let Some(min) = &spec.min_available {
        match min {
            IntOrString::Int(i) => (pods.len() as i32, *i),
            IntOrString::String(_) => {
                let expected = match scale {
                    Some(Ok(n)) => n,
                    Some(Err(e)) => return fail(e),
                    None => pods.len() as i32,
                };
                match scaled(min, expected) {
                    Ok(m) => (expected, m),
                    Err(e) => return fail(e),
                }
            }
        }
    } else {
        (pods.len() as i32, 0)
    };
    // Evictions not yet seen through: kept while the pod exists, is not being
    // deleted, and the record is recent.
    let now_s = now.0.as_second();
    let mut disrupted: BTreeMap<String, Time> = BTreeMap::new();
    for (name, at) in old.disrupted_pods.clone().unwrap_or_default() {
        let live = pods
            .iter()
            .any(|p| p.name_any() == name && p.metadata.deletion_timestamp.is_none());
        if live && at.0.as_second() + DELETION_TIMEOUT_SECS > now_s {
            disrupted.insert(name, at);
        }
    }
    let healthy = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !disrupted.contains_key(&p.name_any()))
        .filter(|p| ready(p))
        .count() as i32;
    let allowed = (healthy - desired).max(0);
    let cond = if allowed > 0 {
        condition(pdb, "True", "SufficientPods", "", now)
    } else {
        condition(pdb, "False", "InsufficientPods", "", now)
    };
    PodDisruptionBudgetStatus {
        current_healthy: Some(healthy),
        desired_healthy: Some(desired),
        disruptions_allowed: Some(allowed),
        expected_pods: Some(expected),
        observed_generation: pdb.metadata.generation,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        conditions: Some(vec![cond]),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;
    use kube::api::ObjectMeta;

    use super::*;

    fn t(s: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(s).unwrap())
    }

    fn pod(name: &str, is_ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if is_ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pdb(min: Option<IntOrString>, max: Option<IntOrString>) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: ObjectMeta {
                name: Some("web".into()),
                generation: Some(3),
                ..Default::default()
            },
            spec: Some(PodDisruptionBudgetSpec {
                min_available: min,
                max_unavailable: max,
                ..Default::default()
            }),
            status: None,
        }
    }

    fn row(s: &PodDisruptionBudgetStatus) -> (i32, i32, i32, i32, String) {
        let c = &s.conditions.as_ref().unwrap()[0];
        let n = |v: Option<i32>| v.unwrap_or(0);
        (
            n(s.expected_pods),
            n(s.desired_healthy),
            n(s.current_healthy),
            n(s.disruptions_allowed),
            format!("{}/{}", c.status, c.reason),
        )
    }

    #[test]
    fn budgets_like_upstream() {
        let pods = [pod("a", true), pod("b", true), pod("c", false)];
        let refs: Vec<&Pod> = pods.iter().collect();
        let cases = [
            (
                pdb(Some(IntOrString::Int(1)), None),
                None,
                (3, 1, 2, 1, "True/SufficientPods"),
            ),
            (
                pdb(Some(IntOrString::Int(2)), None),
                None,
                (3, 2, 2, 0, "False/InsufficientPods"),
            ),
            (
                pdb(Some(IntOrString::String("50%".into())), None),
                Some(Ok(3)),
                (3, 2, 2, 0, "False/InsufficientPods"),
            ),
            (
                pdb(None, Some(IntOrString::Int(1))),
                Some(Ok(4)),
                (4, 3, 2, 0, "False/InsufficientPods"),
            ),
            (
                pdb(None, Some(IntOrString::String("50%".into()))),
                Some(Ok(3)),
                (3, 1, 2, 1, "True/SufficientPods"),
            ),
            (
                pdb(None, Some(IntOrString::Int(1))),
                Some(Err("found no controllers for pod \"a\"".to_string())),
                (0, 0, 0, 0, "False/SyncFailed"),
            ),
        ];
        for (budget, scale, want) in cases {
            let got = status(&budget, &refs, scale, &t(1000));
            let (e, d, h, a, c) = row(&got);
            assert_eq!((e, d, h, a, c.as_str()), want, "{:?}", budget.spec);
            assert_eq!(got.observed_generation, Some(3));
        }
    }

    #[test]
    fn disrupted_pods_do_not_count_until_they_expire() {
        let pods = [pod("a", true), pod("b", true)];
        let refs: Vec<&Pod> = pods.iter().collect();
        let mut budget = pdb(Some(IntOrString::Int(1)), None);
        budget.status = Some(PodDisruptionBudgetStatus {
            disrupted_pods: Some(
                [("a".to_string(), t(1000)), ("gone".to_string(), t(1000))].into(),
            ),
            ..Default::default()
        });
        let s = status(&budget, &refs, None, &t(1010));
        assert_eq!(
            (s.current_healthy, s.disruptions_allowed),
            (Some(1), Some(0))
        );
        assert_eq!(
            s.disrupted_pods
                .as_ref()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["a"]
        );
        let s = status(&budget, &refs, None, &t(1000 + DELETION_TIMEOUT_SECS));
        assert_eq!(
            (s.current_healthy, s.disruptions_allowed, s.disrupted_pods),
            (Some(2), Some(1), None)
        );
    }

    #[test]
    fn percentages_round_up() {
        assert_eq!(scaled(&IntOrString::String("50%".into()), 3), Ok(2));
        assert_eq!(scaled(&IntOrString::String("10%".into()), 5), Ok(1));
        assert_eq!(scaled(&IntOrString::Int(4), 10), Ok(4));
        assert!(scaled(&IntOrString::String("x".into()), 3).is_err());
    }
}
