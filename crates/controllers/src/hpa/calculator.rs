//! The HPA's replica calculator (upstream's `ReplicaCalculator`), pure: which pods count
//! (ready, unready, missing a sample, ignored — with the CPU initialization period and
//! the initial readiness delay), pods' requests, utilization and usage ratios, and the
//! replica proposals for resource, pods, object and external metrics, with upstream's
//! conservative handling of missing and unready pods and its error wording.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Pod;

use super::metrics::PodMetrics;
use super::replicas::Tolerances;

/// The clock and the two readiness settings the calculator needs (milliseconds).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub now: i64,
    /// `--horizontal-pod-autoscaler-cpu-initialization-period`.
    pub cpu_initialization_period: i64,
    /// `--horizontal-pod-autoscaler-initial-readiness-delay`.
    pub initial_readiness_delay: i64,
}

/// How the selected pods were sorted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Groups {
    pub ready: usize,
    pub unready: BTreeSet<String>,
    pub missing: BTreeSet<String>,
    pub ignored: BTreeSet<String>,
}

fn millis(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> Option<i64> {
    t.map(|t| t.0.as_millisecond())
}

/// Sorts pods as upstream's `groupPods`: deleted and failed pods are ignored, pending
/// ones unready, pods without a sample missing; for CPU, a pod is also unready while it
/// initializes and its sample predates readiness, or when it has never been ready.
pub fn group_pods(pods: &[&Pod], metrics: &PodMetrics, resource: &str, timing: Timing) -> Groups {
    let mut g = Groups::default();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() || phase == "Failed" {
            g.ignored.insert(name);
            continue;
        }
        if phase == "Pending" {
            g.unready.insert(name);
            continue;
        }
        let Some(metric) = metrics.get(&name) else {
            g.missing.insert(name);
            continue;
        };
        if resource == "cpu" {
            let ready = status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
            let start = status.and_then(|s| millis(s.start_time.as_ref()));
            let unready = match (ready, start) {
                (Some(cond), Some(start)) => {
                    // Go's zero time for a missing transition time.
                    let transition =
                        millis(cond.last_transition_time.as_ref()).unwrap_or(i64::MIN / 2);
                    if start + timing.cpu_initialization_period > timing.now {
                        cond.status == "False" || metric.timestamp < transition + metric.window
                    } else {
                        cond.status == "False"
                            && start + timing.initial_readiness_delay > transition
                    }
                }
                _ => true,
            };
            if unready {
                g.unready.insert(name);
                continue;
            }
        }
        g.ready += 1;
    }
    g
}

/// Each pod's request of `resource` in milli-units: one container's; else the pod-level
/// request when the pod sets pod-level requests; else the sum over its containers and
/// restartable init containers (upstream's `calculateRequests`).
pub fn requests(
    pods: &[&Pod],
    container: &str,
    resource: &str,
) -> Result<BTreeMap<String, i64>, String> {
    let mut out = BTreeMap::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let spec = pod.spec.as_ref();
        let pod_level = spec
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .filter(|r| r.keys().any(|k| k == "cpu" || k == "memory"));
        if let (Some(pod_level), true) = (pod_level, container.is_empty()) {
            let q = pod_level
                .get(resource)
                .ok_or_else(|| format!("missing pod-level request for {resource} in Pod {name}"))?;
            let request = rkube_api::quantity::milli_value(&q.0).map_err(|e| e.to_string())?;
            out.insert(name, request);
            continue;
        }
        let mut containers: Vec<&k8s_openapi::api::core::v1::Container> = spec
            .map(|s| s.containers.iter().collect())
            .unwrap_or_default();
        for c in spec
            .and_then(|s| s.init_containers.as_ref())
            .into_iter()
            .flatten()
        {
            if c.restart_policy.as_deref() == Some("Always") {
                containers.push(c);
            }
        }
        let mut request = 0i64;
        let mut found = false;
        for c in containers {
            if container.is_empty() || container == c.name {
                let q = c
                    .resources
                    .as_ref()
                    .and_then(|r| r.requests.as_ref())
                    .and_then(|r| r.get(resource))
                    .ok_or_else(|| {
                        format!(
                            "missing request for {resource} in container {} of Pod {name}",
                            c.name
                        )
                    })?;
                request += rkube_api::quantity::milli_value(&q.0).map_err(|e| e.to_string())?;
            }
            if container == c.name {
                found = true;
                break;
            }
        }
        if !container.is_empty() && !found {
            return Err(format!("container {container} not found in Pod {name}"));
        }
        out.insert(name, request);
    }
    Ok(out)
}

/// (ratio to the target, utilization %, average raw value) over the pods with both a
/// sample and a request (upstream's `GetResourceUtilizationRatio`).
pub fn utilization_ratio(
    metrics: &PodMetrics,
    requests: &BTreeMap<String, i64>,
    target: i32,
) -> Result<(f64, i32, i64), String> {
    let (mut total, mut requested, mut n) = (0i128, 0i128, 0i128);
    for (pod, m) in metrics {
        if let Some(r) = requests.get(pod) {
            total += m.value as i128;
            requested += *r as i128;
            n += 1;
        }
    }
    if requested == 0 {
        return Err("no metrics returned matched known pods".into());
    }
    let utilization = (total * 100 / requested).clamp(i32::MIN as i128, i32::MAX as i128) as i32;
    Ok((
        utilization as f64 / target as f64,
        utilization,
        (total / n) as i64,
    ))
}

/// (ratio to the target, average usage) of plain samples (upstream's `GetMetricUsageRatio`).
pub fn usage_ratio(metrics: &PodMetrics, target: i64) -> (f64, i64) {
    let total: i128 = metrics.values().map(|m| m.value as i128).sum();
    let usage = (total / metrics.len().max(1) as i128) as i64;
    (usage as f64 / target as f64, usage)
}

/// What the pods' samples ask for, given a way to compute the ratio: the shared part of
/// upstream's `GetResourceReplicas` and `calcPlainMetricReplicas`. `fill_missing_down`
/// is the value a missing pod is assumed to use on a scale-down.
fn replicas_from_samples(
    current: i32,
    tolerances: Tolerances,
    mut metrics: PodMetrics,
    groups: &Groups,
    ratio: &dyn Fn(&PodMetrics) -> Result<f64, String>,
    fill_missing_down: &dyn Fn(&str) -> i64,
) -> Result<i32, String> {
    for p in groups.ignored.iter().chain(&groups.unready) {
        metrics.remove(p);
    }
    if metrics.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let usage_ratio = ratio(&metrics)?;
    let scale_up_with_unready = !groups.unready.is_empty() && usage_ratio > 1.0;
    if !scale_up_with_unready && groups.missing.is_empty() {
        if tolerances.is_within(usage_ratio) {
            return Ok(current);
        }
        return Ok((usage_ratio * groups.ready as f64).ceil() as i32);
    }
    let sample = |value| super::metrics::PodMetric {
        value,
        timestamp: 0,
        window: 0,
    };
    if !groups.missing.is_empty() {
        for p in &groups.missing {
            if usage_ratio < 1.0 {
                metrics.insert(p.clone(), sample(fill_missing_down(p)));
            } else if usage_ratio > 1.0 {
                metrics.insert(p.clone(), sample(0));
            }
        }
    }
    if scale_up_with_unready {
        for p in &groups.unready {
            metrics.insert(p.clone(), sample(0));
        }
    }
    let new_ratio = ratio(&metrics)?;
    if tolerances.is_within(new_ratio)
        || (usage_ratio < 1.0 && new_ratio > 1.0)
        || (usage_ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok(current);
    }
    let new_replicas = (new_ratio * metrics.len() as f64).ceil() as i32;
    if (new_ratio < 1.0 && new_replicas > current) || (new_ratio > 1.0 && new_replicas < current) {
        return Ok(current);
    }
    Ok(new_replicas)
}

/// Replicas for a utilization target, with (utilization %, average raw value)
/// (upstream's `GetResourceReplicas` after the metrics are fetched).
#[allow(clippy::too_many_arguments)]
pub fn resource_replicas(
    current: i32,
    target_utilization: i32,
    resource: &str,
    container: &str,
    tolerances: Tolerances,
    pods: &[&Pod],
    metrics: PodMetrics,
    timing: Timing,
) -> Result<(i32, i32, i64), String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let groups = group_pods(pods, &metrics, resource, timing);
    let mut kept = metrics.clone();
    for p in groups.ignored.iter().chain(&groups.unready) {
        kept.remove(p);
    }
    if kept.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let requests = requests(pods, container, resource)?;
    let (_, utilization, raw) = utilization_ratio(&kept, &requests, target_utilization)?;
    let fallback = i64::from(target_utilization.max(100));
    let replicas = replicas_from_samples(
        current,
        tolerances,
        metrics,
        &groups,
        &|m| utilization_ratio(m, &requests, target_utilization).map(|r| r.0),
        &|p| requests.get(p).copied().unwrap_or(0) * fallback / 100,
    )?;
    Ok((replicas, utilization, raw))
}

/// Replicas for an average-value target of per-pod samples, with the average usage
/// (upstream's `calcPlainMetricReplicas`; `resource` is empty for custom pod metrics).
pub fn plain_replicas(
    current: i32,
    target_usage: i64,
    resource: &str,
    tolerances: Tolerances,
    pods: &[&Pod],
    metrics: PodMetrics,
    timing: Timing,
) -> Result<(i32, i64), String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let groups = group_pods(pods, &metrics, resource, timing);
    let mut kept = metrics.clone();
    for p in groups.ignored.iter().chain(&groups.unready) {
        kept.remove(p);
    }
    if kept.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let (_, usage) = usage_ratio(&kept, target_usage);
    let replicas = replicas_from_samples(
        current,
        tolerances,
        metrics,
        &groups,
        &|m| Ok(usage_ratio(m, target_usage).0),
        &|_| target_usage,
    )?;
    Ok((replicas, usage))
}

/// Running and Ready pods (upstream's `getReadyPodsCount`).
pub fn ready_pods(pods: &[&Pod]) -> Result<i64, String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    Ok(pods
        .iter()
        .filter(|p| {
            p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                && crate::podutil::is_ready(p)
        })
        .count() as i64)
}

/// Replicas for a total-value target (object `Value`, external `Value`): the ready pods
/// scaled by the ratio, or from zero the ratio itself (upstream's
/// `getUsageRatioReplicaCount`).
pub fn usage_ratio_replicas(
    current: i32,
    ratio: f64,
    tolerances: Tolerances,
    pods: &[&Pod],
) -> Result<i32, String> {
    if current == 0 {
        return Ok(ratio.ceil() as i32);
    }
    if tolerances.is_within(ratio) {
        return Ok(current);
    }
    let ready = ready_pods(pods).map_err(|e| format!("unable to calculate ready pods: {e}"))?;
    let r = ratio * ready as f64;
    Ok(if r > i32::MAX as f64 {
        i32::MAX
    } else {
        r.ceil() as i32
    })
}

/// Replicas for an `AverageValue` target of one total (object or external metric), with
/// the per-replica usage (upstream's `GetObjectPerPodMetricReplicas` /
/// `GetExternalPerPodMetricReplicas`).
pub fn per_pod_replicas(
    status_replicas: i32,
    usage: i64,
    target_average: i64,
    tolerances: Tolerances,
) -> (i32, i64) {
    let mut replicas = status_replicas;
    let ratio = usage as f64 / (target_average as f64 * status_replicas as f64);
    if !tolerances.is_within(ratio) {
        let r = (usage as f64 / target_average as f64).ceil();
        replicas = if r > i32::MAX as f64 {
            i32::MAX
        } else {
            r as i32
        };
    }
    let per_replica = (usage as f64 / status_replicas as f64).ceil();
    let per_replica = if per_replica.is_finite() && per_replica < i64::MAX as f64 {
        per_replica as i64
    } else {
        i64::MAX
    };
    (replicas, per_replica)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        Container, PodCondition, PodSpec, PodStatus, ResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::super::metrics::PodMetric;
    use super::*;

    const MIN: i64 = 60_000;
    const NOW: i64 = 1_000 * MIN;

    fn time(ms: i64) -> Time {
        Time(jiff::Timestamp::from_millisecond(ms).unwrap())
    }

    /// A Running, Ready pod started long ago with one container requesting `request`
    /// milli-CPU.
    fn pod(name: &str, request: i64) -> Pod {
        let mut requests = BTreeMap::new();
        requests.insert("cpu".to_owned(), Quantity(format!("{request}m")));
        Pod {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    resources: Some(ResourceRequirements {
                        requests: Some(requests),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                start_time: Some(time(NOW - 100 * MIN)),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(time(NOW - 99 * MIN)),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn samples(v: &[(&str, i64)]) -> PodMetrics {
        v.iter()
            .map(|&(n, value)| {
                (
                    n.to_owned(),
                    PodMetric {
                        value,
                        timestamp: NOW - 10_000,
                        window: 30_000,
                    },
                )
            })
            .collect()
    }

    const TIMING: Timing = Timing {
        now: NOW,
        cpu_initialization_period: 5 * MIN,
        initial_readiness_delay: 30_000,
    };
    const TOL: Tolerances = Tolerances { down: 0.1, up: 0.1 };

    /// Upstream's replica_calculator_test cases for CPU utilization: (pods' requests,
    /// samples, current, target %, want replicas, want utilization).
    #[test]
    fn resource_replicas_as_upstream() {
        type Case = (Vec<i64>, Vec<(&'static str, i64)>, i32, i32, i32, i32);
        let cases: Vec<Case> = vec![
            // TestReplicaCalcScaleUp
            (
                vec![1000; 3],
                vec![("p0", 300), ("p1", 500), ("p2", 700)],
                3,
                30,
                5,
                50,
            ),
            // TestReplicaCalcScaleDown
            (
                vec![1000; 5],
                vec![
                    ("p0", 100),
                    ("p1", 300),
                    ("p2", 500),
                    ("p3", 250),
                    ("p4", 250),
                ],
                5,
                50,
                3,
                28,
            ),
            // TestReplicaCalcTolerance
            (
                vec![900, 1000, 1100],
                vec![("p0", 1010), ("p1", 1030), ("p2", 1020)],
                3,
                100,
                3,
                102,
            ),
            // a pod missing its sample counts as using nothing on a scale-up
            (vec![1000; 3], vec![("p0", 500), ("p1", 700)], 3, 30, 4, 60),
            // missing pod on a scale-down counts as using its whole request
            (vec![1000; 3], vec![("p0", 100), ("p1", 100)], 3, 50, 3, 10),
        ];
        for (reqs, s, current, target, want, util) in cases {
            let pods: Vec<Pod> = reqs
                .iter()
                .enumerate()
                .map(|(i, r)| pod(&format!("p{i}"), *r))
                .collect();
            let refs: Vec<&Pod> = pods.iter().collect();
            let (replicas, utilization, _) =
                resource_replicas(current, target, "cpu", "", TOL, &refs, samples(&s), TIMING)
                    .unwrap();
            assert_eq!((replicas, utilization), (want, util), "{s:?}");
        }
    }

    #[test]
    fn unready_pods_do_not_push_a_scale_up() {
        // TestReplicaCalcScaleUpUnreadyLessScale: one pod unready (Ready=False, still
        // initializing) is treated as using 0 on a scale-up.
        let mut pods: Vec<Pod> = (0..3).map(|i| pod(&format!("p{i}"), 1000)).collect();
        let st = pods[0].status.as_mut().unwrap();
        st.start_time = Some(time(NOW - MIN));
        st.conditions.as_mut().unwrap()[0].status = "False".into();
        let refs: Vec<&Pod> = pods.iter().collect();
        let (replicas, utilization, _) = resource_replicas(
            3,
            30,
            "cpu",
            "",
            TOL,
            &refs,
            samples(&[("p0", 400), ("p1", 500), ("p2", 700)]),
            TIMING,
        )
        .unwrap();
        assert_eq!((replicas, utilization), (4, 60));
        // Without a sample the same pod is missing rather than unready.
        let g = group_pods(&refs, &samples(&[("p1", 1), ("p2", 1)]), "cpu", TIMING);
        assert_eq!((g.ready, g.unready.len(), g.missing.len()), (2, 0, 1));
        // Pending pods are unready; failed and deleted ones ignored.
        let mut more = pods.clone();
        more[1].status.as_mut().unwrap().phase = Some("Pending".into());
        more[2].status.as_mut().unwrap().phase = Some("Failed".into());
        let refs: Vec<&Pod> = more.iter().collect();
        let g = group_pods(
            &refs,
            &samples(&[("p0", 1), ("p1", 1), ("p2", 1)]),
            "cpu",
            TIMING,
        );
        assert_eq!(
            (g.ready, g.unready.len(), g.ignored.len()),
            (0, 2, 1),
            "{g:?}"
        );
    }

    #[test]
    fn errors_read_like_upstream() {
        let pods = [pod("p0", 1000)];
        let refs: Vec<&Pod> = pods.iter().collect();
        assert_eq!(
            resource_replicas(1, 50, "cpu", "", TOL, &[], PodMetrics::new(), TIMING).unwrap_err(),
            "no pods returned by selector while calculating replica count"
        );
        assert_eq!(
            resource_replicas(
                1,
                50,
                "cpu",
                "",
                TOL,
                &refs,
                samples(&[("other", 5)]),
                TIMING
            )
            .unwrap_err(),
            "no metrics returned matched known pods"
        );
        let mut pending = pod("p0", 1000);
        pending.status.as_mut().unwrap().phase = Some("Pending".into());
        assert_eq!(
            resource_replicas(
                1,
                50,
                "cpu",
                "",
                TOL,
                &[&pending],
                samples(&[("p0", 5)]),
                TIMING
            )
            .unwrap_err(),
            "did not receive metrics for targeted pods (pods might be unready)"
        );
        let mut bare = pod("p0", 1000);
        bare.spec.as_mut().unwrap().containers[0].resources = None;
        assert_eq!(
            resource_replicas(
                1,
                50,
                "cpu",
                "",
                TOL,
                &[&bare],
                samples(&[("p0", 5)]),
                TIMING
            )
            .unwrap_err(),
            "missing request for cpu in container c of Pod p0"
        );
        assert_eq!(
            requests(&refs, "nope", "cpu").unwrap_err(),
            "container nope not found in Pod p0"
        );
        // Pod-level requests win unless a container is named.
        let mut pod_level = pod("p0", 1000);
        let mut reqs = BTreeMap::new();
        reqs.insert("cpu".to_owned(), Quantity("2".into()));
        pod_level.spec.as_mut().unwrap().resources = Some(ResourceRequirements {
            requests: Some(reqs),
            ..Default::default()
        });
        assert_eq!(requests(&[&pod_level], "", "cpu").unwrap()["p0"], 2000);
        assert_eq!(requests(&[&pod_level], "c", "cpu").unwrap()["p0"], 1000);
        assert_eq!(
            requests(&[&pod_level], "", "memory").unwrap_err(),
            "missing pod-level request for memory in Pod p0"
        );
    }

    #[test]
    fn plain_and_total_metrics() {
        let pods: Vec<Pod> = (0..3).map(|i| pod(&format!("p{i}"), 1000)).collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        // TestReplicaCalcScaleUpCM: pods metric qps 20/10/30 against 15 → 4.
        let (r, usage) = plain_replicas(
            3,
            15_000,
            "",
            TOL,
            &refs,
            samples(&[("p0", 20_000), ("p1", 10_000), ("p2", 30_000)]),
            TIMING,
        )
        .unwrap();
        assert_eq!((r, usage), (4, 20_000));
        // Object Value: ratio 2 on 3 ready pods → 6; from zero replicas the ratio itself.
        assert_eq!(usage_ratio_replicas(3, 2.0, TOL, &refs).unwrap(), 6);
        assert_eq!(usage_ratio_replicas(0, 2.5, TOL, &refs).unwrap(), 3);
        assert_eq!(usage_ratio_replicas(3, 1.05, TOL, &refs).unwrap(), 3);
        // AverageValue of one total: 8500 / 1000 per pod → 9 replicas, 2834 each of 3.
        assert_eq!(per_pod_replicas(3, 8500, 1000, TOL), (9, 2834));
        assert_eq!(per_pod_replicas(3, 3100, 1000, TOL), (3, 1034));
    }
}
