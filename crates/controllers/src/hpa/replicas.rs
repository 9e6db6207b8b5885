//! The HorizontalPodAutoscaler's replica arithmetic (upstream's replica calculator and
//! `normalizeDesiredReplicasWithBehaviors`), as pure functions: the replicas a
//! utilization asks for (with the 0.1 tolerance), stabilization over the recommendation
//! windows, and the scale-up/scale-down rate limits of `behavior` policies, with the
//! `ScalingLimited` reasons upstream reports.

/// Upstream's default tolerance (`--horizontal-pod-autoscaler-tolerance`).
pub const TOLERANCE: f64 = 0.1;

/// Replicas for a resource utilization target: unchanged while the usage ratio is
/// within `tolerance` of 1, else the ready pods scaled by the ratio, rounded up.
pub fn utilization_replicas(
    current: i32,
    ready_pods: i32,
    utilization: f64,
    target: f64,
    tolerance: f64,
) -> i32 {
    if target <= 0.0 {
        return current;
    }
    let ratio = utilization / target;
    if (1.0 - ratio).abs() <= tolerance {
        return current;
    }
    (ratio * ready_pods as f64).ceil() as i32
}

/// A `behavior` policy: `Pods` or `Percent` over `period_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Pods(i32),
    Percent(i32),
}

/// `selectPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    Max,
    Min,
    Disabled,
}

/// One direction's scaling rules.
#[derive(Debug, Clone)]
pub struct Rules {
    pub stabilization_window_seconds: i64,
    pub select: Select,
    /// (policy, periodSeconds)
    pub policies: Vec<(Policy, i64)>,
}

impl Rules {
    /// Upstream's default scale-up rules: no window, 4 pods or 100% per 15 s, the larger.
    pub fn default_up() -> Rules {
        Rules {
            stabilization_window_seconds: 0,
            select: Select::Max,
            policies: vec![(Policy::Pods(4), 15), (Policy::Percent(100), 15)],
        }
    }

    /// Upstream's default scale-down rules: a 300 s window, 100% per 15 s.
    pub fn default_down() -> Rules {
        Rules {
            stabilization_window_seconds: 300,
            select: Select::Max,
            policies: vec![(Policy::Percent(100), 15)],
        }
    }
}

/// A past scaling: when (seconds) and by how many replicas (positive).
#[derive(Debug, Clone, Copy)]
pub struct ScaleEvent {
    pub at: i64,
    pub change: i32,
}

fn changed_in(events: &[ScaleEvent], now: i64, period: i64) -> i32 {
    events
        .iter()
        .filter(|e| e.at > now - period)
        .map(|e| e.change)
        .sum()
}

/// The most replicas the scale-up rules allow now.
pub fn scale_up_limit(current: i32, events: &[ScaleEvent], now: i64, rules: &Rules) -> i32 {
    let mut result = match rules.select {
        Select::Max => i32::MIN,
        Select::Min => i32::MAX,
        Select::Disabled => return current,
    };
    for (policy, period) in &rules.policies {
        let start = current - changed_in(events, now, *period);
        let limit = match policy {
            Policy::Pods(n) => start + n,
            Policy::Percent(p) => (start as f64 * (1.0 + *p as f64 / 100.0)).ceil() as i32,
        };
        result = match rules.select {
            Select::Max => result.max(limit),
            _ => result.min(limit),
        };
    }
    result
}

/// The fewest replicas the scale-down rules allow now.
pub fn scale_down_limit(current: i32, events: &[ScaleEvent], now: i64, rules: &Rules) -> i32 {
    let mut result = match rules.select {
        Select::Max => i32::MAX,
        Select::Min => i32::MIN,
        Select::Disabled => return current,
    };
    for (policy, period) in &rules.policies {
        let start = current + changed_in(events, now, *period);
        let limit = match policy {
            Policy::Pods(n) => start - n,
            Policy::Percent(p) => (start as f64 * (1.0 - *p as f64 / 100.0)) as i32,
        };
        result = match rules.select {
            Select::Max => result.min(limit),
            _ => result.max(limit),
        };
    }
    result
}

/// Stabilizes `desired` over past recommendations (time, replicas): scaling up goes
/// no higher than the lowest recommendation in the up window, scaling down no lower
/// than the highest in the down window.
pub fn stabilize(
    current: i32,
    desired: i32,
    history: &[(i64, i32)],
    now: i64,
    up: &Rules,
    down: &Rules,
) -> i32 {
    let mut up_rec = desired;
    let mut down_rec = desired;
    for &(at, r) in history {
        if at > now - up.stabilization_window_seconds {
            up_rec = up_rec.min(r);
        }
        if at > now - down.stabilization_window_seconds {
            down_rec = down_rec.max(r);
        }
    }
    let mut rec = current;
    if rec < up_rec {
        rec = up_rec;
    }
    if rec > down_rec {
        rec = down_rec;
    }
    rec
}

/// The replicas to set, within `min..=max` and the rate limits, with the
/// `ScalingLimited` condition's reason and message.
#[allow(clippy::too_many_arguments)]
pub fn limit(
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
    up_events: &[ScaleEvent],
    down_events: &[ScaleEvent],
    now: i64,
    up: &Rules,
    down: &Rules,
) -> (i32, &'static str, &'static str) {
    if desired > current {
        let up_limit = scale_up_limit(current, up_events, now, up).max(current);
        let (possible, reason, message) = if max > up_limit {
            (
                up_limit,
                "ScaleUpLimit",
                "the desired replica count is increasing faster than the maximum scale rate",
            )
        } else {
            (
                max,
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            )
        };
        if desired > possible {
            return (possible, reason, message);
        }
    } else if desired < current {
        let down_limit = scale_down_limit(current, down_events, now, down).min(current);
        let (possible, reason, message) = if min < down_limit {
            (
                down_limit,
                "ScaleDownLimit",
                "the desired replica count is decreasing faster than the maximum scale rate",
            )
        } else {
            (
                min,
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            )
        };
        if desired < possible {
            return (possible, reason, message);
        }
    }
    (
        desired,
        "DesiredWithinRange",
        "the desired count is within the acceptable range",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utilization_with_tolerance() {
        // (current, ready, utilization, target, want)
        let cases = [
            (3, 3, 50.0, 50.0, 3),
            (3, 3, 54.0, 50.0, 3), // within 10%
            (3, 3, 100.0, 50.0, 6),
            (4, 4, 25.0, 50.0, 2),
            (3, 3, 56.0, 50.0, 4), // ratio 1.12 -> ceil(3.36)
            (5, 4, 80.0, 40.0, 8), // only ready pods are scaled
        ];
        for (current, ready, util, target, want) in cases {
            assert_eq!(
                utilization_replicas(current, ready, util, target, TOLERANCE),
                want,
                "{util}/{target}"
            );
        }
    }

    #[test]
    fn default_rate_limits() {
        let up = Rules::default_up();
        let down = Rules::default_down();
        // Up: max(current + 4, 2 * current).
        assert_eq!(scale_up_limit(1, &[], 100, &up), 5);
        assert_eq!(scale_up_limit(10, &[], 100, &up), 20);
        // Replicas added within the period count against it.
        let events = [ScaleEvent { at: 95, change: 5 }];
        assert_eq!(scale_up_limit(10, &events, 100, &up), 10);
        assert_eq!(scale_up_limit(10, &events, 111, &up), 20);
        // Down: 100% per 15 s lets everything go.
        assert_eq!(scale_down_limit(10, &[], 100, &down), 0);
        let slow = Rules {
            policies: vec![(Policy::Pods(1), 60)],
            ..Rules::default_down()
        };
        assert_eq!(scale_down_limit(10, &[], 100, &slow), 9);
        let disabled = Rules {
            select: Select::Disabled,
            ..Rules::default_up()
        };
        assert_eq!(scale_up_limit(3, &[], 100, &disabled), 3);
    }

    #[test]
    fn limits_and_reasons() {
        let (up, down) = (Rules::default_up(), Rules::default_down());
        assert_eq!(
            limit(2, 20, 1, 10, &[], &[], 0, &up, &down),
            (
                6,
                "ScaleUpLimit",
                "the desired replica count is increasing faster than the maximum scale rate"
            )
        );
        assert_eq!(limit(8, 20, 1, 10, &[], &[], 0, &up, &down).0, 10);
        assert_eq!(
            limit(8, 20, 1, 10, &[], &[], 0, &up, &down).1,
            "TooManyReplicas"
        );
        assert_eq!(
            limit(5, 0, 2, 10, &[], &[], 0, &up, &down).1,
            "TooFewReplicas"
        );
        assert_eq!(limit(5, 0, 2, 10, &[], &[], 0, &up, &down).0, 2);
        assert_eq!(
            limit(5, 4, 2, 10, &[], &[], 0, &up, &down),
            (
                4,
                "DesiredWithinRange",
                "the desired count is within the acceptable range"
            )
        );
    }

    #[test]
    fn stabilization_windows() {
        let (up, down) = (Rules::default_up(), Rules::default_down());
        // A recent higher recommendation holds a scale-down back for 300 s.
        let history = [(100, 8), (200, 5)];
        assert_eq!(stabilize(8, 3, &history, 250, &up, &down), 8);
        assert_eq!(stabilize(8, 3, &history, 401, &up, &down), 5);
        assert_eq!(stabilize(8, 3, &history, 501, &up, &down), 3);
        // No up window: scaling up is immediate.
        assert_eq!(stabilize(3, 9, &history, 250, &up, &down), 9);
    }
}
