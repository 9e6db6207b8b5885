//! The HorizontalPodAutoscaler controller (upstream `horizontal-pod-autoscaler-controller`,
//! autoscaling/v2; v1 objects reach it through the API server's conversion). Every
//! `--horizontal-pod-autoscaler-sync-period` each HPA reads its target's `scale`
//! subresource (any kind that has one, resolved through discovery), the pods of the
//! scale's selector (a pod reflector), and its metrics through the API server
//! ([`metrics`]); [`calculator`] turns them into a proposal, [`replicas`] stabilizes
//! and limits it; the controller writes the new scale, the status (current/desired
//! replicas, current metrics, last scale time, `AbleToScale` / `ScalingActive` /
//! `ScalingLimited`) and upstream's Events.
//!
//! Recommendations and scale events live in this controller's memory, per HPA, as
//! upstream keeps them: a restart forgets the stabilization window.

pub mod calculator;
pub mod metrics;
pub mod monitor;
pub mod replicas;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, CrossVersionObjectReference, ExternalMetricStatus,
    HPAScalingRules, HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition,
    HorizontalPodAutoscalerStatus, MetricIdentifier, MetricSpec, MetricStatus, MetricValueStatus,
    ObjectMetricStatus, PodsMetricStatus, ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as MetaSelector;
use kube::api::{DynamicObject, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use rkube_api::labels::LabelSelector;

use self::calculator::Timing;
use self::metrics::MetricsClient;
use self::replicas::{Outcome, Policy, Recommendation, Rules, ScaleEvent, Select, Tolerances};
use crate::Context;

/// Upstream's event source component.
const COMPONENT: &str = "horizontal-pod-autoscaler";
/// How long a metrics request may take.
const METRICS_TIMEOUT: Duration = Duration::from_secs(30);
/// How stale discovery may be before a scale target's kind is looked up again.
const DISCOVERY_TTL: Duration = Duration::from_secs(30);

/// The HPA flags of kube-controller-manager.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--horizontal-pod-autoscaler-sync-period` (15s).
    pub sync_period: Duration,
    /// `--horizontal-pod-autoscaler-downscale-stabilization` (5m).
    pub downscale_stabilization: Duration,
    /// `--horizontal-pod-autoscaler-tolerance` (0.1).
    pub tolerance: f64,
    /// `--horizontal-pod-autoscaler-cpu-initialization-period` (5m).
    pub cpu_initialization_period: Duration,
    /// `--horizontal-pod-autoscaler-initial-readiness-delay` (30s).
    pub initial_readiness_delay: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sync_period: Duration::from_secs(15),
            downscale_stabilization: Duration::from_secs(300),
            tolerance: replicas::TOLERANCE,
            cpu_initialization_period: Duration::from_secs(300),
            initial_readiness_delay: Duration::from_secs(30),
        }
    }
}

/// What the controller remembers of one HPA between syncs.
#[derive(Default)]
struct Memory {
    recommendations: Vec<Recommendation>,
    up_events: Vec<ScaleEvent>,
    down_events: Vec<ScaleEvent>,
    /// The scale selector of the last sync (for `AmbiguousSelector`).
    selector: Option<LabelSelector>,
    last_sync: Option<Instant>,
}

struct Ctx {
    cx: Context,
    settings: Settings,
    hpas: Store<HorizontalPodAutoscaler>,
    pods: Store<Pod>,
    metrics: MetricsClient,
    memory: Mutex<HashMap<String, Memory>>,
    discovery: tokio::sync::Mutex<Option<(Instant, crate::discovery::Discovered)>>,
    /// One recorder per (HPA, type, reason, message), so repeats of one message count up
    /// in one Event series as upstream's correlator does, and new messages get their own.
    recorders: Mutex<HashMap<(String, String, String), Recorder>>,
}

/// Runs the controller until dropped.
pub async fn run(cx: Context) {
    let settings = cx.config.hpa.clone();
    let api: Api<HorizontalPodAutoscaler> = Api::all(cx.watch_client.clone());
    let controller = Controller::new(api, watcher::Config::default());
    let hpas = controller.store();
    let pods = cx.informers.store::<Pod>(watcher::Config::default()).await;
    let ctx = Arc::new(Ctx {
        metrics: MetricsClient::new(cx.client.clone(), METRICS_TIMEOUT),
        cx,
        settings,
        hpas,
        pods,
        memory: Mutex::default(),
        discovery: tokio::sync::Mutex::new(None),
        recorders: Mutex::default(),
    });
    controller
        .run(
            crate::metrics::queue().reconciler(reconcile),
            crate::metrics::queue().error_policy(error_policy),
            ctx,
        )
        .for_each(|_| async {})
        .await;
}

#[derive(Debug, thiserror::Error)]
#[error("horizontal pod autoscaler {key}: {message}")]
struct Error {
    key: String,
    message: String,
}

fn error_policy(_: Arc<HorizontalPodAutoscaler>, error: &Error, ctx: Arc<Ctx>) -> Action {
    tracing::warn!(%error, "horizontal-pod-autoscaler");
    Action::requeue(ctx.settings.sync_period)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Ctx {
    async fn event(
        &self,
        hpa: &HorizontalPodAutoscaler,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let key = (
            format!(
                "{}/{}/{}",
                hpa.namespace().unwrap_or_default(),
                hpa.name_any(),
                if warning { "Warning" } else { "Normal" }
            ),
            reason.to_owned(),
            note.clone(),
        );
        let recorder = {
            let mut all = lock(&self.recorders);
            if all.len() > 4096 {
                all.clear();
            }
            all.entry(key)
                .or_insert_with(|| {
                    Recorder::new(
                        self.cx.client.clone(),
                        Reporter {
                            controller: COMPONENT.into(),
                            instance: None,
                        },
                    )
                })
                .clone()
        };
        let ev = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note),
            action: reason.into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&ev, &hpa.object_ref(&())).await {
            tracing::debug!(error = %e, reason, "cannot record event");
        }
    }

    /// The resource serving `group`'s `kind`, rediscovering when the kind is unknown.
    async fn resource_for(
        &self,
        group: &str,
        kind: &str,
    ) -> Result<crate::discovery::Resource, String> {
        let find = |d: &crate::discovery::Discovered| {
            d.resources
                .iter()
                .find(|r| r.api.group == group && r.api.kind == kind)
                .cloned()
        };
        let mut cached = self.discovery.lock().await;
        if let Some((at, d)) = cached.as_ref() {
            if at.elapsed() < DISCOVERY_TTL {
                if let Some(r) = find(d) {
                    return Ok(r);
                }
            }
        }
        let fresh = crate::discovery::discover(&self.cx.client)
            .await
            .map_err(|e| crate::discovery::error_message(&e))?;
        let found = find(&fresh);
        *cached = Some((Instant::now(), fresh));
        found.ok_or_else(|| format!("no matches for kind \"{kind}\" in group \"{group}\""))
    }

    fn pods_in(&self, namespace: &str, selector: &LabelSelector) -> Vec<Arc<Pod>> {
        self.pods
            .state()
            .into_iter()
            .filter(|p| {
                p.metadata.namespace.as_deref() == Some(namespace)
                    && selector.matches(&p.metadata.labels.clone().unwrap_or_default())
            })
            .collect()
    }
}

/// Sets a condition as upstream's `setCondition`: the transition time moves only when
/// the status changes.
fn set_condition(
    hpa: &mut HorizontalPodAutoscaler,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
) {
    let status = if status { "True" } else { "False" };
    let conditions = hpa
        .status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new);
    let i = match conditions.iter().position(|c| c.type_ == type_) {
        Some(i) => i,
        None => {
            conditions.push(HorizontalPodAutoscalerCondition {
                type_: type_.into(),
                ..Default::default()
            });
            conditions.len() - 1
        }
    };
    let c = &mut conditions[i];
    if c.status != status {
        c.last_transition_time = Some(crate::podutil::now());
    }
    c.status = status.into();
    c.reason = Some(reason.into());
    c.message = Some(message);
}

fn set_outcome(hpa: &mut HorizontalPodAutoscaler, type_: &str, status: bool, outcome: Outcome) {
    set_condition(hpa, type_, status, outcome.0, outcome.1.to_owned());
}

/// A milli-value as Go's `resource.NewMilliQuantity(v, DecimalSI).String()`.
pub fn milli_quantity(v: i64) -> Quantity {
    if v == 0 {
        return Quantity("0".into());
    }
    let (sign, mut n) = if v < 0 {
        ("-", -(v as i128))
    } else {
        ("", v as i128)
    };
    let suffixes = ["m", "", "k", "M", "G", "T", "P", "E"];
    let mut i = 0;
    while i + 1 < suffixes.len() && n % 1000 == 0 {
        n /= 1000;
        i += 1;
    }
    Quantity(format!("{sign}{n}{}", suffixes[i]))
}

/// Go's `%+v` of a `*metav1.LabelSelector` (how upstream names external metrics).
fn selector_debug(sel: Option<&MetaSelector>) -> String {
    let Some(sel) = sel else {
        return "<nil>".into();
    };
    let labels: String = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}: {v},"))
        .collect();
    let exprs: String = sel
        .match_expressions
        .iter()
        .flatten()
        .map(|e| {
            let values: String = e
                .values
                .iter()
                .flatten()
                .map(|v| format!("{v:?},"))
                .collect();
            format!(
                "LabelSelectorRequirement{{Key:{},Operator:{},Values:[]string{{{values}}},}},",
                e.key, e.operator
            )
        })
        .collect();
    format!(
        "&LabelSelector{{MatchLabels:map[string]string{{{labels}}},MatchExpressions:[]LabelSelectorRequirement{{{exprs}}},}}"
    )
}

/// A metric's selector as a query string (empty selects everything).
fn metric_selector(sel: Option<&MetaSelector>) -> Result<String, String> {
    let v = serde_json::to_value(sel).map_err(|e| e.to_string())?;
    match LabelSelector::from_json(&v) {
        Ok(Some(s)) => Ok(s.to_string()),
        Ok(None) => Ok(String::new()),
        Err(e) => Err(e.to_string()),
    }
}

fn tolerance_of(rules: Option<&HPAScalingRules>) -> Option<f64> {
    rules
        .and_then(|r| r.tolerance.as_ref())
        .and_then(|q| rkube_api::quantity::milli_value(&q.0).ok())
        .map(|m| m as f64 / 1000.0)
}

/// One direction's rules from the spec with upstream's defaults filled in.
fn rules_of(spec: Option<&HPAScalingRules>, defaults: Rules) -> Rules {
    let Some(spec) = spec else {
        return defaults;
    };
    Rules {
        stabilization_window_seconds: spec
            .stabilization_window_seconds
            .map_or(defaults.stabilization_window_seconds, i64::from),
        select: match spec.select_policy.as_deref() {
            Some("Min") => Select::Min,
            Some("Disabled") => Select::Disabled,
            Some(_) => Select::Max,
            None => defaults.select,
        },
        policies: match &spec.policies {
            Some(p) => p
                .iter()
                .map(|p| {
                    let policy = if p.type_ == "Percent" {
                        Policy::Percent(p.value)
                    } else {
                        Policy::Pods(p.value)
                    };
                    (policy, i64::from(p.period_seconds))
                })
                .collect(),
            None => defaults.policies,
        },
        tolerance: tolerance_of(Some(spec)),
    }
}

/// A metric's failure: the `ScalingActive` condition upstream proposes and the error.
struct MetricFailure {
    reason: &'static str,
    condition_message: String,
    error: String,
}

/// What one metric proposes: replicas, its name for messages, and its status.
struct Proposal {
    replicas: i32,
    name: String,
    status: MetricStatus,
}

/// Everything a sync needs to compute proposals.
struct Inputs {
    namespace: String,
    spec_replicas: i32,
    status_replicas: i32,
    pods: Vec<Arc<Pod>>,
    selector: String,
    tolerances: Tolerances,
    timing: Timing,
}

fn value_status(
    utilization: Option<i32>,
    average: Option<i64>,
    value: Option<i64>,
) -> MetricValueStatus {
    MetricValueStatus {
        average_utilization: utilization,
        average_value: average.map(milli_quantity),
        value: value.map(milli_quantity),
    }
}

impl Ctx {
    /// Upstream's `computeStatusForResourceMetricGeneric`.
    async fn resource_proposal(
        &self,
        inp: &Inputs,
        resource: &str,
        container: &str,
        target: &k8s_openapi::api::autoscaling::v2::MetricTarget,
    ) -> Result<(i32, MetricValueStatus, String), String> {
        let pods: Vec<&Pod> = inp.pods.iter().map(|p| p.as_ref()).collect();
        if let Some(avg) = &target.average_value {
            let target_usage =
                rkube_api::quantity::milli_value(&avg.0).map_err(|e| e.to_string())?;
            let (samples, _) = self
                .metrics
                .resource_metric(resource, &inp.namespace, &inp.selector, container)
                .await
                .map_err(|e| format!("failed to get {resource} usage: unable to get metrics for resource {resource}: {e}"))?;
            let (replicas, usage) = calculator::plain_replicas(
                inp.spec_replicas,
                target_usage,
                resource,
                inp.tolerances,
                &pods,
                samples,
                inp.timing,
            )
            .map_err(|e| format!("failed to get {resource} usage: {e}"))?;
            return Ok((
                replicas,
                value_status(None, Some(usage), None),
                format!("{resource} resource"),
            ));
        }
        let Some(target_utilization) = target.average_utilization else {
            return Err("invalid resource metric source: neither an average utilization target nor an average value (usage) target was set".into());
        };
        let (samples, _) = self
            .metrics
            .resource_metric(resource, &inp.namespace, &inp.selector, container)
            .await
            .map_err(|e| format!("failed to get {resource} utilization: unable to get metrics for resource {resource}: {e}"))?;
        let (replicas, utilization, raw) = calculator::resource_replicas(
            inp.spec_replicas,
            target_utilization,
            resource,
            container,
            inp.tolerances,
            &pods,
            samples,
            inp.timing,
        )
        .map_err(|e| format!("failed to get {resource} utilization: {e}"))?;
        let name = if container.is_empty() {
            format!("{resource} resource utilization (percentage of request)")
        } else {
            format!("{resource} container resource utilization (percentage of request)")
        };
        Ok((
            replicas,
            value_status(Some(utilization), Some(raw), None),
            name,
        ))
    }

    /// The `resource.group` a described object is served as, for the custom metrics API.
    async fn described_resource(
        &self,
        obj: &CrossVersionObjectReference,
    ) -> Result<String, String> {
        let group = obj
            .api_version
            .as_deref()
            .unwrap_or_default()
            .rsplit_once('/')
            .map_or("", |(g, _)| g);
        if group.is_empty() && obj.kind == "Namespace" {
            return Ok("namespaces".into());
        }
        let r = self.resource_for(group, &obj.kind).await?;
        Ok(if group.is_empty() {
            r.api.plural
        } else {
            format!("{}.{group}", r.api.plural)
        })
    }

    /// Upstream's `computeReplicasForMetric`: a proposal, or the failure.
    async fn metric_proposal(
        &self,
        inp: &Inputs,
        spec: &MetricSpec,
    ) -> Result<Proposal, MetricFailure> {
        let fail = |reason: &'static str, cond: String, error: String| MetricFailure {
            reason,
            condition_message: cond,
            error,
        };
        match spec.type_.as_str() {
            "Resource" => {
                let Some(src) = &spec.resource else {
                    let e =
                        "invalid resource metric source: the resource field is unset".to_owned();
                    return Err(fail("FailedGetResourceMetric", e.clone(), e));
                };
                match self
                    .resource_proposal(inp, &src.name, "", &src.target)
                    .await
                {
                    Ok((replicas, current, name)) => Ok(Proposal {
                        replicas,
                        name,
                        status: MetricStatus {
                            type_: "Resource".into(),
                            resource: Some(ResourceMetricStatus {
                                name: src.name.clone(),
                                current,
                            }),
                            ..Default::default()
                        },
                    }),
                    Err(e) => Err(fail(
                        "FailedGetResourceMetric",
                        e.clone(),
                        format!("failed to get {} resource metric value: {e}", src.name),
                    )),
                }
            }
            "ContainerResource" => {
                let Some(src) = &spec.container_resource else {
                    let e = "invalid container resource metric source: the containerResource field is unset".to_owned();
                    return Err(fail("FailedGetContainerResourceMetric", e.clone(), e));
                };
                match self
                    .resource_proposal(inp, &src.name, &src.container, &src.target)
                    .await
                {
                    Ok((replicas, current, name)) => Ok(Proposal {
                        replicas,
                        name,
                        status: MetricStatus {
                            type_: "ContainerResource".into(),
                            container_resource: Some(ContainerResourceMetricStatus {
                                name: src.name.clone(),
                                container: src.container.clone(),
                                current,
                            }),
                            ..Default::default()
                        },
                    }),
                    Err(e) => Err(fail(
                        "FailedGetContainerResourceMetric",
                        e.clone(),
                        format!(
                            "failed to get {} container metric value: {e}",
                            src.container
                        ),
                    )),
                }
            }
            "Pods" => {
                let Some(src) = &spec.pods else {
                    let e = "invalid pods metric source: the pods field is unset".to_owned();
                    return Err(fail("FailedGetPodsMetric", e.clone(), e));
                };
                let wrap = |e: String| format!("failed to get pods metric value: {e}");
                let msel = metric_selector(src.metric.selector.as_ref())
                    .map_err(|e| fail("FailedGetPodsMetric", e.clone(), wrap(e)))?;
                let target = src
                    .target
                    .average_value
                    .as_ref()
                    .and_then(|q| rkube_api::quantity::milli_value(&q.0).ok())
                    .unwrap_or(0);
                let result = match self
                    .metrics
                    .raw_metric(&src.metric.name, &inp.namespace, &inp.selector, &msel)
                    .await
                {
                    Ok((samples, _)) => {
                        let pods: Vec<&Pod> = inp.pods.iter().map(|p| p.as_ref()).collect();
                        calculator::plain_replicas(
                            inp.spec_replicas,
                            target,
                            "",
                            inp.tolerances,
                            &pods,
                            samples,
                            inp.timing,
                        )
                    }
                    Err(e) => Err(format!("unable to get metric {}: {e}", src.metric.name)),
                };
                match result {
                    Ok((replicas, usage)) => Ok(Proposal {
                        replicas,
                        name: format!("pods metric {}", src.metric.name),
                        status: MetricStatus {
                            type_: "Pods".into(),
                            pods: Some(PodsMetricStatus {
                                metric: MetricIdentifier {
                                    name: src.metric.name.clone(),
                                    selector: src.metric.selector.clone(),
                                },
                                current: value_status(None, Some(usage), None),
                            }),
                            ..Default::default()
                        },
                    }),
                    Err(e) => Err(fail("FailedGetPodsMetric", e.clone(), wrap(e))),
                }
            }
            "Object" => {
                let Some(src) = &spec.object else {
                    let e = "invalid object metric source: the object field is unset".to_owned();
                    return Err(fail("FailedGetObjectMetric", e.clone(), e));
                };
                let wrap = |e: String| format!("failed to get object metric value: {e}");
                let msel = metric_selector(src.metric.selector.as_ref())
                    .map_err(|e| fail("FailedGetObjectMetric", e.clone(), wrap(e)))?;
                let obj = &src.described_object;
                let fetch = async {
                    let resource = self.described_resource(obj).await?;
                    self.metrics
                        .object_metric(
                            &src.metric.name,
                            &inp.namespace,
                            &resource,
                            &obj.name,
                            &msel,
                        )
                        .await
                };
                // Upstream's message has its arguments in this order.
                let unable = |e: String| {
                    format!(
                        "unable to get metric {}: {} on {} {}/{e}",
                        src.metric.name, obj.kind, inp.namespace, obj.name
                    )
                };
                let milli = |q: &Option<Quantity>| {
                    q.as_ref()
                        .and_then(|q| rkube_api::quantity::milli_value(&q.0).ok())
                };
                if src.target.type_ == "Value" && src.target.value.is_some() {
                    let target = milli(&src.target.value).unwrap_or(0);
                    let (usage, _) = fetch
                        .await
                        .map_err(unable)
                        .map_err(|e| fail("FailedGetObjectMetric", e.clone(), wrap(e)))?;
                    let pods: Vec<&Pod> = inp.pods.iter().map(|p| p.as_ref()).collect();
                    let replicas = calculator::usage_ratio_replicas(
                        inp.spec_replicas,
                        usage as f64 / target as f64,
                        inp.tolerances,
                        &pods,
                    )
                    .map_err(|e| fail("FailedGetObjectMetric", e.clone(), wrap(e)))?;
                    return Ok(Proposal {
                        replicas,
                        name: format!("{} metric {}", obj.kind, src.metric.name),
                        status: MetricStatus {
                            type_: "Object".into(),
                            object: Some(ObjectMetricStatus {
                                described_object: obj.clone(),
                                metric: MetricIdentifier {
                                    name: src.metric.name.clone(),
                                    selector: src.metric.selector.clone(),
                                },
                                current: value_status(None, None, Some(usage)),
                            }),
                            ..Default::default()
                        },
                    });
                }
                if src.target.type_ == "AverageValue" && src.target.average_value.is_some() {
                    let target = milli(&src.target.average_value).unwrap_or(0);
                    let (usage, _) = fetch.await.map_err(unable).map_err(|e| {
                        fail(
                            "FailedGetObjectMetric",
                            e.clone(),
                            wrap(format!(
                                "failed to get {} object metric: {e}",
                                src.metric.name
                            )),
                        )
                    })?;
                    let (replicas, per_pod) = calculator::per_pod_replicas(
                        inp.status_replicas,
                        usage,
                        target,
                        inp.tolerances,
                    );
                    return Ok(Proposal {
                        replicas,
                        name: format!(
                            "external metric {}({})",
                            src.metric.name,
                            selector_debug(src.metric.selector.as_ref())
                        ),
                        status: MetricStatus {
                            type_: "Object".into(),
                            object: Some(ObjectMetricStatus {
                                described_object: Default::default(),
                                metric: MetricIdentifier {
                                    name: src.metric.name.clone(),
                                    selector: src.metric.selector.clone(),
                                },
                                current: value_status(None, Some(per_pod), None),
                            }),
                            ..Default::default()
                        },
                    });
                }
                let e = "invalid object metric source: neither a value target nor an average value target was set".to_owned();
                Err(fail("FailedGetObjectMetric", e.clone(), wrap(e)))
            }
            "External" => {
                let Some(src) = &spec.external else {
                    let e =
                        "invalid external metric source: the external field is unset".to_owned();
                    return Err(fail("FailedGetExternalMetric", e.clone(), e));
                };
                let name = &src.metric.name;
                let wrap = |e: String| format!("failed to get {name} external metric value: {e}");
                let desc = format!(
                    "external metric {name}({})",
                    selector_debug(src.metric.selector.as_ref())
                );
                let fetch = async {
                    let msel = metric_selector(src.metric.selector.as_ref())?;
                    self.metrics
                        .external_metric(name, &inp.namespace, &msel)
                        .await
                        .map_err(|e| {
                            format!(
                                "unable to get external metric {}/{name}/{}: {e}",
                                inp.namespace,
                                selector_debug(src.metric.selector.as_ref())
                            )
                        })
                };
                let milli = |q: &Option<Quantity>| {
                    q.as_ref()
                        .and_then(|q| rkube_api::quantity::milli_value(&q.0).ok())
                };
                let sum = |v: &[i64]| v.iter().fold(0i64, |a, b| a.saturating_add(*b));
                let metric = MetricIdentifier {
                    name: name.clone(),
                    selector: src.metric.selector.clone(),
                };
                if let Some(target) = milli(&src.target.average_value) {
                    let (values, _) = fetch.await.map_err(|e| {
                        fail(
                            "FailedGetExternalMetric",
                            e.clone(),
                            wrap(format!("failed to get {name} external metric: {e}")),
                        )
                    })?;
                    let (replicas, per_pod) = calculator::per_pod_replicas(
                        inp.status_replicas,
                        sum(&values),
                        target,
                        inp.tolerances,
                    );
                    return Ok(Proposal {
                        replicas,
                        name: desc,
                        status: MetricStatus {
                            type_: "External".into(),
                            external: Some(ExternalMetricStatus {
                                metric,
                                current: value_status(None, Some(per_pod), None),
                            }),
                            ..Default::default()
                        },
                    });
                }
                if let Some(target) = milli(&src.target.value) {
                    let (values, _) = fetch.await.map_err(|e| {
                        fail(
                            "FailedGetExternalMetric",
                            e.clone(),
                            wrap(format!("failed to get external metric {name}: {e}")),
                        )
                    })?;
                    let usage = sum(&values);
                    let pods: Vec<&Pod> = inp.pods.iter().map(|p| p.as_ref()).collect();
                    let replicas = calculator::usage_ratio_replicas(
                        inp.spec_replicas,
                        usage as f64 / target as f64,
                        inp.tolerances,
                        &pods,
                    )
                    .map_err(|e| {
                        fail(
                            "FailedGetExternalMetric",
                            e.clone(),
                            wrap(format!("failed to get external metric {name}: {e}")),
                        )
                    })?;
                    return Ok(Proposal {
                        replicas,
                        name: desc,
                        status: MetricStatus {
                            type_: "External".into(),
                            external: Some(ExternalMetricStatus {
                                metric,
                                current: value_status(None, None, Some(usage)),
                            }),
                            ..Default::default()
                        },
                    });
                }
                let e = "invalid external metric source: neither a value target nor an average value target was set".to_owned();
                Err(fail("FailedGetExternalMetric", e.clone(), wrap(e)))
            }
            other => {
                let e = format!("unknown metric source type {other:?}");
                Err(fail("InvalidMetricSourceType", e.clone(), e))
            }
        }
    }
}

/// The outcome of the metrics pass (upstream's `computeReplicasForMetrics`).
enum Computed {
    /// Scale by these (a partial failure still scales up, with its error logged).
    Replicas {
        replicas: i32,
        metric: String,
        statuses: Vec<MetricStatus>,
        error: Option<String>,
    },
    /// Nothing to do but report.
    Failed {
        statuses: Option<Vec<MetricStatus>>,
        error: String,
    },
}

async fn compute(
    ctx: &Ctx,
    hpa: &mut HorizontalPodAutoscaler,
    key: &str,
    scale: &Scale,
) -> Computed {
    let namespace = hpa.namespace().unwrap_or_default();
    let raw_selector = scale
        .status
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    if raw_selector.is_empty() {
        ctx.event(hpa, true, "SelectorRequired", "selector is required".into())
            .await;
        set_condition(
            hpa,
            "ScalingActive",
            false,
            "InvalidSelector",
            "the HPA target's scale is missing a selector".into(),
        );
        return Computed::Failed {
            statuses: None,
            error: "selector is required".into(),
        };
    }
    let selector = match LabelSelector::parse(&raw_selector) {
        Ok(s) => s,
        Err(e) => {
            let msg = format!(
                "couldn't convert selector into a corresponding internal selector object: {e}"
            );
            ctx.event(hpa, true, "InvalidSelector", msg.clone()).await;
            set_condition(hpa, "ScalingActive", false, "InvalidSelector", msg.clone());
            return Computed::Failed {
                statuses: None,
                error: msg,
            };
        }
    };
    let pods = ctx.pods_in(&namespace, &selector);
    // Pods that more than one HPA's target selects make both ambiguous.
    let selecting: Vec<String> = {
        let mut memory = lock(&ctx.memory);
        memory.entry(key.to_owned()).or_default().selector = Some(selector.clone());
        let mut names: Vec<String> = memory
            .iter()
            .filter(|(k, _)| k.split_once('/').map(|(ns, _)| ns) == Some(namespace.as_str()))
            .filter(|(_, m)| {
                m.selector.as_ref().is_some_and(|s| {
                    pods.iter()
                        .any(|p| s.matches(&p.metadata.labels.clone().unwrap_or_default()))
                })
            })
            .map(|(k, _)| {
                let name = k.split_once('/').map_or(k.as_str(), |(_, n)| n);
                format!("{{{name} {namespace}}}")
            })
            .collect();
        names.sort();
        names
    };
    if selecting.len() > 1 {
        let msg = format!(
            "pods by selector {raw_selector} are controlled by multiple HPAs: [{}]",
            selecting.join(" ")
        );
        ctx.event(hpa, true, "AmbiguousSelector", msg.clone()).await;
        set_condition(
            hpa,
            "ScalingActive",
            false,
            "AmbiguousSelector",
            msg.clone(),
        );
        return Computed::Failed {
            statuses: None,
            error: msg,
        };
    }

    let spec = hpa.spec.clone();
    let behavior = spec.behavior.as_ref();
    let s = &ctx.settings;
    let tolerances = Tolerances {
        down: tolerance_of(behavior.and_then(|b| b.scale_down.as_ref())).unwrap_or(s.tolerance),
        up: tolerance_of(behavior.and_then(|b| b.scale_up.as_ref())).unwrap_or(s.tolerance),
    };
    let spec_replicas = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let inputs = Inputs {
        namespace: namespace.clone(),
        spec_replicas,
        status_replicas: scale.status.as_ref().map_or(0, |s| s.replicas),
        pods,
        selector: selector.to_string(),
        tolerances,
        timing: Timing {
            now: jiff::Timestamp::now().as_millisecond(),
            cpu_initialization_period: s.cpu_initialization_period.as_millis() as i64,
            initial_readiness_delay: s.initial_readiness_delay.as_millis() as i64,
        },
    };
    let metric_specs = spec.metrics.clone().unwrap_or_default();
    let mut statuses = vec![MetricStatus::default(); metric_specs.len()];
    let (mut replicas, mut metric) = (0i32, String::new());
    let mut invalid = 0usize;
    let mut first_failure: Option<MetricFailure> = None;
    let status_current = hpa
        .status
        .as_ref()
        .and_then(|s| s.current_replicas)
        .unwrap_or(0);
    for (i, m) in metric_specs.iter().enumerate() {
        let started = Instant::now();
        let proposal = ctx.metric_proposal(&inputs, m).await;
        let (action, kind) = match &proposal {
            Ok(p) if p.replicas > status_current => {
                (monitor::Action::ScaleUp, monitor::ErrorKind::None)
            }
            Ok(p) if p.replicas < status_current => {
                (monitor::Action::ScaleDown, monitor::ErrorKind::None)
            }
            Ok(_) => (monitor::Action::None, monitor::ErrorKind::None),
            Err(f) if f.reason == "InvalidMetricSourceType" => {
                (monitor::Action::None, monitor::ErrorKind::Spec)
            }
            Err(_) => (monitor::Action::None, monitor::ErrorKind::Internal),
        };
        monitor::computation(action, kind, &m.type_, started.elapsed());
        match proposal {
            Ok(p) => {
                if replicas == 0 || p.replicas > replicas {
                    replicas = p.replicas;
                    metric = p.name;
                }
                statuses[i] = p.status;
            }
            Err(f) => {
                invalid += 1;
                if first_failure.is_none() {
                    first_failure = Some(f);
                } else {
                    // upstream records an Event for every failing metric
                    ctx.event(hpa, true, f.reason, f.condition_message.clone())
                        .await;
                }
            }
        }
    }
    let error = first_failure.as_ref().map(|f| {
        format!(
            "invalid metrics ({invalid} invalid out of {}), first error is: {}",
            metric_specs.len(),
            f.error
        )
    });
    if let Some(f) = &first_failure {
        ctx.event(hpa, true, f.reason, f.condition_message.clone())
            .await;
    }
    if invalid >= metric_specs.len() || (invalid > 0 && replicas < spec_replicas) {
        if let Some(f) = first_failure {
            set_condition(
                hpa,
                "ScalingActive",
                false,
                f.reason,
                format!(
                    "the HPA was unable to compute the replica count: {}",
                    f.condition_message
                ),
            );
        }
        return Computed::Failed {
            statuses: Some(statuses),
            error: error.unwrap_or_else(|| "no metrics to compute replicas from".into()),
        };
    }
    set_condition(
        hpa,
        "ScalingActive",
        true,
        "ValidMetricFound",
        format!("the HPA was able to successfully calculate a replica count from {metric}"),
    );
    Computed::Replicas {
        replicas,
        metric,
        statuses,
        error,
    }
}

/// Upstream's `setStatus`: a fresh status keeping the last scale time and conditions.
fn set_status(
    hpa: &mut HorizontalPodAutoscaler,
    current: i32,
    desired: i32,
    metrics: Option<Vec<MetricStatus>>,
    rescaled: bool,
) {
    let old = hpa.status.take().unwrap_or_default();
    hpa.status = Some(HorizontalPodAutoscalerStatus {
        current_replicas: Some(current),
        desired_replicas: desired,
        last_scale_time: if rescaled {
            Some(crate::podutil::now())
        } else {
            old.last_scale_time
        },
        current_metrics: metrics.filter(|m| !m.is_empty()),
        conditions: old.conditions,
        observed_generation: hpa.metadata.generation,
    });
}

/// Writes the status when it changed (upstream's `updateStatusIfNeeded`).
async fn update_status(
    ctx: &Ctx,
    original: &Option<HorizontalPodAutoscalerStatus>,
    hpa: &HorizontalPodAutoscaler,
) -> Result<(), String> {
    if original == &hpa.status {
        return Ok(());
    }
    let api: Api<HorizontalPodAutoscaler> =
        Api::namespaced(ctx.cx.client.clone(), &hpa.namespace().unwrap_or_default());
    match api
        .replace_status(&hpa.name_any(), &PostParams::default(), hpa)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => {
            let msg = metrics::error_message(&e, "horizontalpodautoscalers.autoscaling");
            ctx.event(hpa, true, "FailedUpdateStatus", msg.clone())
                .await;
            Err(format!(
                "failed to update status for {}: {msg}",
                hpa.name_any()
            ))
        }
    }
}

async fn reconcile(obj: Arc<HorizontalPodAutoscaler>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let namespace = obj.namespace().unwrap_or_default();
    let key = format!("{namespace}/{}", obj.name_any());
    let period = ctx.settings.sync_period;
    {
        // Forget HPAs that are gone; sync each at most once a period (upstream's queue
        // delays every add by the period), however often its object changes.
        let live: std::collections::HashSet<String> = ctx
            .hpas
            .state()
            .iter()
            .map(|h| format!("{}/{}", h.namespace().unwrap_or_default(), h.name_any()))
            .collect();
        let mut memory = lock(&ctx.memory);
        memory.retain(|k, _| live.contains(k) || k == &key);
        let m = memory.entry(key.clone()).or_default();
        if let Some(last) = m.last_sync {
            if last.elapsed() < period {
                return Ok(Action::requeue(period - last.elapsed()));
            }
        }
        m.last_sync = Some(Instant::now());
    }
    ctx.pods.wait_until_ready().await.ok();
    let started = Instant::now();
    let mut action = monitor::Action::None;
    let mut kind = monitor::ErrorKind::Internal;
    let result = sync(&ctx, &obj, &key, &mut action, &mut kind).await;
    let kind = if result.is_ok() {
        monitor::ErrorKind::None
    } else {
        kind
    };
    monitor::reconciliation(action, kind, started.elapsed());
    result.map_err(|message| Error { key, message })?;
    Ok(Action::requeue(period))
}

/// One sync of one HPA (upstream's `reconcileAutoscaler`); errors are reported after the
/// status is written.
async fn sync(
    ctx: &Ctx,
    obj: &HorizontalPodAutoscaler,
    key: &str,
    action: &mut monitor::Action,
    error_kind: &mut monitor::ErrorKind,
) -> Result<(), String> {
    let mut hpa = obj.clone();
    let original = hpa.status.clone();
    let namespace = hpa.namespace().unwrap_or_default();
    let spec = hpa.spec.clone();
    let target = &spec.scale_target_ref;
    let reference = format!("{}/{namespace}/{}", target.kind, target.name);

    let api_version = target.api_version.clone().unwrap_or_default();
    let group: Result<String, String> = match api_version.split('/').collect::<Vec<_>>().as_slice()
    {
        [_] => Ok(String::new()),
        [g, _] => Ok((*g).to_owned()),
        _ => Err(format!("unexpected GroupVersion string: {api_version}")),
    };
    let bad_api_version = group.is_err();
    let scale_target = match group {
        Ok(group) => ctx.resource_for(&group, &target.kind).await,
        Err(e) => Err(e),
    };
    let target_scale = match scale_target {
        Ok(r) => {
            let api: Api<DynamicObject> =
                Api::namespaced_with(ctx.cx.client.clone(), &namespace, &r.api);
            let resource = if r.api.group.is_empty() {
                r.api.plural.clone()
            } else {
                format!("{}.{}", r.api.plural, r.api.group)
            };
            let got = api
                .get_subresource("scale", &target.name)
                .await
                .map_err(|e| metrics::error_message(&e, &resource))
                .and_then(|o| {
                    serde_json::to_value(o)
                        .and_then(serde_json::from_value::<Scale>)
                        .map_err(|e| e.to_string())
                });
            got.map(|scale| (api, scale))
        }
        Err(e) => Err(e),
    };
    let (api, mut scale) = match target_scale {
        Ok(found) => found,
        Err(e) => {
            ctx.event(&hpa, true, "FailedGetScale", e.clone()).await;
            set_condition(
                &mut hpa,
                "AbleToScale",
                false,
                "FailedGetScale",
                format!("the HPA controller was unable to get the target's current scale: {e}"),
            );
            if let Err(e) = update_status(ctx, &original, &hpa).await {
                tracing::warn!(hpa = key, error = %e, "cannot update status");
            }
            if bad_api_version {
                *error_kind = monitor::ErrorKind::Spec;
                return Err(format!(
                    "invalid API version in scale target reference: {e}"
                ));
            }
            return Err(format!(
                "failed to query scale subresource for {reference}: {e}"
            ));
        }
    };
    set_condition(
        &mut hpa,
        "AbleToScale",
        true,
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale".into(),
    );
    let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let now = jiff::Timestamp::now().as_millisecond();
    {
        let mut memory = lock(&ctx.memory);
        let m = memory.entry(key.to_owned()).or_default();
        if m.recommendations.is_empty() {
            m.recommendations.push(Recommendation {
                at: now,
                replicas: current,
            });
        }
    }
    let min = spec.min_replicas.unwrap_or(1);
    let max = spec.max_replicas;
    let mut statuses = None;
    let mut desired = 0;
    let mut reason = String::new();
    let mut deferred_error = None;
    let rescale;
    if current == 0 && min != 0 {
        rescale = false;
        set_condition(
            &mut hpa,
            "ScalingActive",
            false,
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero".into(),
        );
    } else if current > max {
        reason = "Current number of replicas above Spec.MaxReplicas".into();
        desired = max;
        rescale = true;
    } else if current < min {
        reason = "Current number of replicas below Spec.MinReplicas".into();
        desired = min;
        rescale = true;
    } else {
        match compute(ctx, &mut hpa, key, &scale).await {
            Computed::Failed { statuses, error } => {
                let desired_before = hpa.status.as_ref().map_or(0, |s| s.desired_replicas);
                set_status(&mut hpa, current, desired_before, statuses, false);
                if let Err(e) = update_status(ctx, &original, &hpa).await {
                    tracing::warn!(hpa = key, error = %e, "cannot update status");
                }
                ctx.event(&hpa, true, "FailedComputeMetricsReplicas", error.clone())
                    .await;
                return Err(format!(
                    "failed to compute desired number of replicas based on listed metrics for {reference}: {error}"
                ));
            }
            Computed::Replicas {
                replicas,
                metric,
                statuses: s,
                error,
            } => {
                statuses = Some(s);
                deferred_error = error;
                desired = replicas.max(0);
                if desired > current {
                    reason = format!("{metric} above target");
                }
                if desired < current {
                    reason = "All metrics below target".into();
                }
                desired = normalize(ctx, &mut hpa, key, current, desired, min, now);
                rescale = desired != current;
            }
        }
    }

    if rescale {
        if let Some(s) = scale.spec.as_mut() {
            s.replicas = Some(desired);
        } else {
            scale.spec = Some(k8s_openapi::api::autoscaling::v1::ScaleSpec {
                replicas: Some(desired),
            });
        }
        let body = serde_json::to_value(&scale).map_err(|e| e.to_string())?;
        let body = {
            let mut b = body;
            b["apiVersion"] = "autoscaling/v1".into();
            b["kind"] = "Scale".into();
            b
        };
        if let Err(e) = api
            .replace_subresource("scale", &target.name, &PostParams::default(), &body)
            .await
        {
            let msg = metrics::error_message(&e, "scale");
            ctx.event(
                &hpa,
                true,
                "FailedRescale",
                format!("New size: {desired}; reason: {reason}; error: {msg}"),
            )
            .await;
            set_condition(
                &mut hpa,
                "AbleToScale",
                false,
                "FailedUpdateScale",
                format!("the HPA controller was unable to update the target scale: {msg}"),
            );
            let desired_before = hpa.status.as_ref().map_or(0, |s| s.desired_replicas);
            set_status(&mut hpa, current, desired_before, statuses, false);
            if let Err(e) = update_status(ctx, &original, &hpa).await {
                tracing::warn!(hpa = key, error = %e, "cannot update status");
            }
            return Err(format!("failed to rescale {reference}: {msg}"));
        }
        set_condition(
            &mut hpa,
            "AbleToScale",
            true,
            "SucceededRescale",
            format!("the HPA controller was able to update the target scale to {desired}"),
        );
        ctx.event(
            &hpa,
            false,
            "SuccessfulRescale",
            format!("New size: {desired}; reason: {reason}"),
        )
        .await;
        if let Some(b) = spec.behavior.as_ref() {
            let (up, down) = behavior_rules(ctx, b);
            let mut memory = lock(&ctx.memory);
            let m = memory.entry(key.to_owned()).or_default();
            if desired > current {
                replicas::store_scale_event(
                    &mut m.up_events,
                    up.longest_period(),
                    desired - current,
                    now,
                );
            } else {
                replicas::store_scale_event(
                    &mut m.down_events,
                    down.longest_period(),
                    current - desired,
                    now,
                );
            }
        }
        *action = if desired > current {
            monitor::Action::ScaleUp
        } else {
            monitor::Action::ScaleDown
        };
        tracing::info!(hpa = key, current, desired, reason = %reason, "successfully rescaled");
    } else {
        desired = current;
    }
    set_status(&mut hpa, current, desired, statuses, rescale);
    update_status(ctx, &original, &hpa).await?;
    match deferred_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn behavior_rules(
    ctx: &Ctx,
    b: &k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior,
) -> (Rules, Rules) {
    let window = ctx.settings.downscale_stabilization.as_secs() as i64;
    (
        rules_of(b.scale_up.as_ref(), Rules::default_up()),
        rules_of(b.scale_down.as_ref(), Rules::default_down(window)),
    )
}

/// Stabilizes and limits a proposal, setting `AbleToScale` and `ScalingLimited`
/// (upstream's `normalizeDesiredReplicas` / `normalizeDesiredReplicasWithBehaviors`).
fn normalize(
    ctx: &Ctx,
    hpa: &mut HorizontalPodAutoscaler,
    key: &str,
    current: i32,
    desired: i32,
    min: i32,
    now: i64,
) -> i32 {
    let spec = hpa.spec.clone();
    let max = spec.max_replicas;
    let mut memory = lock(&ctx.memory);
    let m = memory.entry(key.to_owned()).or_default();
    let (stabilized, able, (limited, limit_outcome)) = match spec.behavior.as_ref() {
        None => {
            let window = ctx.settings.downscale_stabilization.as_millis() as i64;
            let (stabilized, able) =
                replicas::stabilize_down(&mut m.recommendations, desired, now, window);
            (
                stabilized,
                able,
                replicas::convert_with_rules(current, stabilized, min, max),
            )
        }
        Some(b) => {
            let (up, down) = behavior_rules(ctx, b);
            let (stabilized, able) = replicas::stabilize_with_behavior(
                &mut m.recommendations,
                current,
                desired,
                now,
                &up,
                &down,
            );
            let limited = replicas::convert_with_behavior(
                current,
                stabilized,
                min,
                max,
                &m.up_events,
                &m.down_events,
                now,
                &up,
                &down,
            );
            (stabilized, able, limited)
        }
    };
    drop(memory);
    set_outcome(hpa, "AbleToScale", true, able);
    set_outcome(hpa, "ScalingLimited", limited != stabilized, limit_outcome);
    limited
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn quantities_print_as_go_does() {
        for (milli, want) in [
            (0, "0"),
            (800, "800m"),
            (1000, "1"),
            (1500, "1500m"),
            (2_000_000, "2k"),
            (1_500_000, "1500"),
            (-250, "-250m"),
        ] {
            assert_eq!(milli_quantity(milli).0, want);
        }
    }

    #[test]
    fn behavior_defaults_fill_unset_fields() {
        let spec = HPAScalingRules {
            select_policy: Some("Min".into()),
            tolerance: Some(Quantity("50m".into())),
            ..Default::default()
        };
        let r = rules_of(Some(&spec), Rules::default_down(120));
        assert_eq!(r.select, Select::Min);
        assert_eq!(r.stabilization_window_seconds, 120);
        assert_eq!(r.policies, vec![(Policy::Percent(100), 15)]);
        assert_eq!(r.tolerance, Some(0.05));
        assert_eq!(rules_of(None, Rules::default_up()), Rules::default_up());
    }

    #[test]
    fn external_metric_names_as_upstream() {
        assert_eq!(selector_debug(None), "<nil>");
        let mut labels = BTreeMap::new();
        labels.insert("queue".to_owned(), "jobs".to_owned());
        let sel = MetaSelector {
            match_labels: Some(labels),
            match_expressions: None,
        };
        assert_eq!(
            selector_debug(Some(&sel)),
            "&LabelSelector{MatchLabels:map[string]string{queue: jobs,},MatchExpressions:[]LabelSelectorRequirement{},}"
        );
    }
}
