//! The HPA controller's own Prometheus series, with upstream's names and labels
//! (`pkg/controller/podautoscaler/monitor`): reconciliations and metric computations by
//! action (`scale_up`, `scale_down`, `none`) and error (`spec`, `internal`, `none`),
//! counted and timed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

const SUBSYSTEM: &str = "horizontal_pod_autoscaler_controller";

/// Upstream's buckets: 0.001 s doubling, 15 of them.
fn buckets() -> [f64; 15] {
    let mut b = [0.0; 15];
    let mut v = 0.001;
    for x in &mut b {
        *x = v;
        v *= 2.0;
    }
    b
}

/// What a reconciliation or computation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    ScaleUp,
    ScaleDown,
    None,
}

impl Action {
    fn label(self) -> &'static str {
        match self {
            Action::ScaleUp => "scale_up",
            Action::ScaleDown => "scale_down",
            Action::None => "none",
        }
    }
}

/// How it failed: in the HPA's spec, inside the controller, or not at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    Spec,
    Internal,
    None,
}

impl ErrorKind {
    fn label(self) -> &'static str {
        match self {
            ErrorKind::Spec => "spec",
            ErrorKind::Internal => "internal",
            ErrorKind::None => "none",
        }
    }
}

#[derive(Default, Clone)]
struct Series {
    count: u64,
    sum: f64,
    le: [u64; 15],
}

impl Series {
    fn observe(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        self.count += 1;
        self.sum += secs;
        for (i, b) in buckets().iter().enumerate() {
            if secs <= *b {
                self.le[i] += 1;
            }
        }
    }
}

type Key = (Action, ErrorKind, String);

#[derive(Default)]
struct State {
    reconciliations: BTreeMap<Key, Series>,
    computations: BTreeMap<Key, Series>,
}

fn state() -> std::sync::MutexGuard<'static, State> {
    static STATE: OnceLock<Mutex<State>> = OnceLock::new();
    STATE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Records one reconciliation.
pub fn reconciliation(action: Action, error: ErrorKind, took: Duration) {
    state()
        .reconciliations
        .entry((action, error, String::new()))
        .or_default()
        .observe(took);
}

/// Records one metric's computation (`metric_type` as in the spec: `Resource`, `Pods`…).
pub fn computation(action: Action, error: ErrorKind, metric_type: &str, took: Duration) {
    state()
        .computations
        .entry((action, error, metric_type.to_owned()))
        .or_default()
        .observe(took);
}

fn family(
    out: &mut String,
    total: &str,
    duration: &str,
    help_total: &str,
    help_duration: &str,
    series: &BTreeMap<Key, Series>,
) {
    let labels = |(a, e, m): &Key| {
        let mut l = format!("action=\"{}\",error=\"{}\"", a.label(), e.label());
        if !m.is_empty() {
            let _ = write!(l, ",metric_type=\"{m}\"");
        }
        l
    };
    let _ = writeln!(out, "# HELP {SUBSYSTEM}_{total}_total {help_total}");
    let _ = writeln!(out, "# TYPE {SUBSYSTEM}_{total}_total counter");
    for (k, s) in series {
        let _ = writeln!(
            out,
            "{SUBSYSTEM}_{total}_total{{{}}} {}",
            labels(k),
            s.count
        );
    }
    let _ = writeln!(
        out,
        "# HELP {SUBSYSTEM}_{duration}_duration_seconds {help_duration}"
    );
    let _ = writeln!(
        out,
        "# TYPE {SUBSYSTEM}_{duration}_duration_seconds histogram"
    );
    for (k, s) in series {
        let l = labels(k);
        for (i, b) in buckets().iter().enumerate() {
            let _ = writeln!(
                out,
                "{SUBSYSTEM}_{duration}_duration_seconds_bucket{{{l},le=\"{b}\"}} {}",
                s.le[i]
            );
        }
        let _ = writeln!(
            out,
            "{SUBSYSTEM}_{duration}_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}",
            s.count
        );
        let _ = writeln!(
            out,
            "{SUBSYSTEM}_{duration}_duration_seconds_sum{{{l}}} {}",
            s.sum
        );
        let _ = writeln!(
            out,
            "{SUBSYSTEM}_{duration}_duration_seconds_count{{{l}}} {}",
            s.count
        );
    }
}

/// The series as Prometheus text (nothing before the first reconciliation).
pub fn render() -> String {
    let s = state();
    let mut out = String::new();
    if s.reconciliations.is_empty() && s.computations.is_empty() {
        return out;
    }
    family(
        &mut out,
        "reconciliations",
        "reconciliation",
        "Number of reconciliations of HPA controller. The label 'action' should be either 'scale_down', 'scale_up', or 'none'. Also, the label 'error' should be either 'spec', 'internal', or 'none'. Note that if both spec and internal errors happen during a reconciliation, the first one to occur is reported in `error` label.",
        "The time(seconds) that the HPA controller takes to reconcile once. The label 'action' should be either 'scale_down', 'scale_up', or 'none'. Also, the label 'error' should be either 'spec', 'internal', or 'none'. Note that if both spec and internal errors happen during a reconciliation, the first one to occur is reported in `error` label.",
        &s.reconciliations,
    );
    family(
        &mut out,
        "metric_computation",
        "metric_computation",
        "Number of metric computations. The label 'action' should be either 'scale_down', 'scale_up', or 'none'. Also, the label 'error' should be either 'spec', 'internal', or 'none'. The label 'metric_type' corresponds to HPA.spec.metrics[*].type",
        "The time(seconds) that the HPA controller takes to calculate one metric. The label 'action' should be either 'scale_down', 'scale_up', or 'none'. The label 'error' should be either 'spec', 'internal', or 'none'. The label 'metric_type' corresponds to HPA.spec.metrics[*].type",
        &s.computations,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_render_with_upstreams_names() {
        reconciliation(Action::ScaleUp, ErrorKind::None, Duration::from_millis(3));
        computation(
            Action::None,
            ErrorKind::Internal,
            "Resource",
            Duration::from_millis(1),
        );
        let text = render();
        assert!(text.contains(
            "horizontal_pod_autoscaler_controller_reconciliations_total{action=\"scale_up\",error=\"none\"} 1"
        ));
        assert!(text.contains(
            "horizontal_pod_autoscaler_controller_reconciliation_duration_seconds_count{action=\"scale_up\",error=\"none\"} 1"
        ));
        assert!(text.contains(
            "horizontal_pod_autoscaler_controller_metric_computation_total{action=\"none\",error=\"internal\",metric_type=\"Resource\"} 1"
        ));
    }
}
