//! The HorizontalPodAutoscaler's replica normalization (upstream's `normalizeDesiredReplicas`
//! and `normalizeDesiredReplicasWithBehaviors`), as pure functions over explicit time
//! (milliseconds): per-direction tolerances, recommendation stabilization, the
//! `behavior` rate limits (scale events of both directions count against a period), the
//! legacy scale-up cap without `behavior`, and the `AbleToScale` / `ScalingLimited`
//! reasons and messages upstream reports.

/// Upstream's default tolerance (`--horizontal-pod-autoscaler-tolerance`).
pub const TOLERANCE: f64 = 0.1;

/// Usage-ratio tolerances: no change while `1 - down <= ratio <= 1 + up`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerances {
    pub down: f64,
    pub up: f64,
}

impl Tolerances {
    /// The same tolerance both ways.
    pub fn both(t: f64) -> Tolerances {
        Tolerances { down: t, up: t }
    }

    /// Whether a usage ratio is close enough to 1 to leave the replicas alone.
    pub fn is_within(&self, ratio: f64) -> bool {
        (1.0 - self.down) <= ratio && ratio <= (1.0 + self.up)
    }
}

/// A `behavior` policy: `Pods` or `Percent`, with its `periodSeconds`.
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

/// One direction's scaling rules, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub stabilization_window_seconds: i64,
    pub select: Select,
    /// (policy, periodSeconds)
    pub policies: Vec<(Policy, i64)>,
    /// `tolerance`, when the HPA sets one.
    pub tolerance: Option<f64>,
}

impl Rules {
    /// Upstream's default scale-up rules: no window, 4 pods or 100% per 15 s, the larger.
    pub fn default_up() -> Rules {
        Rules {
            stabilization_window_seconds: 0,
            select: Select::Max,
            policies: vec![(Policy::Pods(4), 15), (Policy::Percent(100), 15)],
            tolerance: None,
        }
    }

    /// Upstream's default scale-down rules: 100% per 15 s, with the window of
    /// `--horizontal-pod-autoscaler-downscale-stabilization`.
    pub fn default_down(window_seconds: i64) -> Rules {
        Rules {
            stabilization_window_seconds: window_seconds,
            select: Select::Max,
            policies: vec![(Policy::Percent(100), 15)],
            tolerance: None,
        }
    }

    /// The longest policy period (how long scale events matter).
    pub fn longest_period(&self) -> i64 {
        self.policies.iter().map(|p| p.1).max().unwrap_or(0)
    }
}

/// A past scaling: when (ms), by how many replicas (non-negative), and whether it is
/// older than every policy period (its slot may be reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleEvent {
    pub at: i64,
    pub change: i32,
    pub outdated: bool,
}

/// A recommendation before stabilization: when (ms) and how many replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recommendation {
    pub at: i64,
    pub replicas: i32,
}

/// A condition outcome: (reason, message).
pub type Outcome = (&'static str, &'static str);

pub const READY_FOR_NEW_SCALE: Outcome =
    ("ReadyForNewScale", "recommended size matches current size");
pub const SCALE_DOWN_STABILIZED: Outcome = (
    "ScaleDownStabilized",
    "recent recommendations were higher than current one, applying the highest recent recommendation",
);
pub const SCALE_UP_STABILIZED: Outcome = (
    "ScaleUpStabilized",
    "recent recommendations were lower than current one, applying the lowest recent recommendation",
);
pub const DESIRED_WITHIN_RANGE: Outcome = (
    "DesiredWithinRange",
    "the desired count is within the acceptable range",
);
pub const SCALE_UP_LIMIT: Outcome = (
    "ScaleUpLimit",
    "the desired replica count is increasing faster than the maximum scale rate",
);
pub const SCALE_DOWN_LIMIT: Outcome = (
    "ScaleDownLimit",
    "the desired replica count is decreasing faster than the maximum scale rate",
);
pub const TOO_MANY_REPLICAS: Outcome = (
    "TooManyReplicas",
    "the desired replica count is more than the maximum replica count",
);
pub const TOO_FEW_REPLICAS: Outcome = (
    "TooFewReplicas",
    "the desired replica count is less than the minimum replica count",
);

/// Replicas changed by the events strictly within the last `period_seconds`.
fn changed_in(events: &[ScaleEvent], now: i64, period_seconds: i64) -> i32 {
    let cutoff = now - period_seconds * 1000;
    events
        .iter()
        .filter(|e| e.at > cutoff)
        .map(|e| e.change)
        .sum()
}

/// The most replicas the scale-up rules allow now (upstream's
/// `calculateScaleUpLimitWithScalingRules`).
pub fn scale_up_limit(
    current: i32,
    up_events: &[ScaleEvent],
    down_events: &[ScaleEvent],
    now: i64,
    rules: &Rules,
) -> i32 {
    let (mut result, pick): (i32, fn(i32, i32) -> i32) = match rules.select {
        Select::Disabled => return current,
        Select::Min => (i32::MAX, i32::min),
        Select::Max => (i32::MIN, i32::max),
    };
    for &(policy, period) in &rules.policies {
        let start =
            current - changed_in(up_events, now, period) + changed_in(down_events, now, period);
        let proposed = match policy {
            Policy::Pods(n) => start + n,
            Policy::Percent(p) => (start as f64 * (1.0 + p as f64 / 100.0)).ceil() as i32,
        };
        result = pick(result, proposed);
    }
    result
}

/// The fewest replicas the scale-down rules allow now (upstream's
/// `calculateScaleDownLimitWithBehaviors`).
pub fn scale_down_limit(
    current: i32,
    up_events: &[ScaleEvent],
    down_events: &[ScaleEvent],
    now: i64,
    rules: &Rules,
) -> i32 {
    let (mut result, pick): (i32, fn(i32, i32) -> i32) = match rules.select {
        Select::Disabled => return current,
        Select::Min => (i32::MIN, i32::max),
        Select::Max => (i32::MAX, i32::min),
    };
    for &(policy, period) in &rules.policies {
        let start =
            current - changed_in(up_events, now, period) + changed_in(down_events, now, period);
        let proposed = match policy {
            Policy::Pods(n) => start - n,
            Policy::Percent(p) => (start as f64 * (1.0 - p as f64 / 100.0)) as i32,
        };
        result = pick(result, proposed);
    }
    result
}

/// Without `behavior`: records `desired` and returns the highest recommendation of the
/// last `window_ms` (upstream's `stabilizeRecommendation`), with the `AbleToScale`
/// outcome.
pub fn stabilize_down(
    history: &mut Vec<Recommendation>,
    desired: i32,
    now: i64,
    window_ms: i64,
) -> (i32, Outcome) {
    let cutoff = now - window_ms;
    let mut max = desired;
    let mut old = None;
    for (i, rec) in history.iter().enumerate() {
        if rec.at < cutoff {
            old = Some(i);
        } else if rec.replicas > max {
            max = rec.replicas;
        }
    }
    let rec = Recommendation {
        at: now,
        replicas: desired,
    };
    match old {
        Some(i) => history[i] = rec,
        None => history.push(rec),
    }
    let outcome = if max != desired {
        SCALE_DOWN_STABILIZED
    } else {
        READY_FOR_NEW_SCALE
    };
    (max, outcome)
}

/// Without `behavior`: clamps to min/max and to the legacy scale-up cap
/// (max(2 × current, 4)), with the `ScalingLimited` outcome (upstream's
/// `convertDesiredReplicasWithRules`).
pub fn convert_with_rules(current: i32, desired: i32, min: i32, max: i32) -> (i32, Outcome) {
    let scale_up_limit = (2.0 * current as f64).max(4.0) as i32;
    let (maximum, limiting) = if max > scale_up_limit {
        (scale_up_limit, SCALE_UP_LIMIT)
    } else {
        (max, TOO_MANY_REPLICAS)
    };
    if desired < min {
        (min, TOO_FEW_REPLICAS)
    } else if desired > maximum {
        (maximum, limiting)
    } else {
        (desired, DESIRED_WITHIN_RANGE)
    }
}

/// With `behavior`: records `desired` and brings it within the lowest recommendation of
/// the scale-up window and the highest of the scale-down window (upstream's
/// `stabilizeRecommendationWithBehaviors`), with the `AbleToScale` outcome.
pub fn stabilize_with_behavior(
    history: &mut Vec<Recommendation>,
    current: i32,
    desired: i32,
    now: i64,
    up: &Rules,
    down: &Rules,
) -> (i32, Outcome) {
    let up_cutoff = now - up.stabilization_window_seconds * 1000;
    let down_cutoff = now - down.stabilization_window_seconds * 1000;
    let (mut up_rec, mut down_rec) = (desired, desired);
    let mut old = None;
    for (i, rec) in history.iter().enumerate() {
        if rec.at > up_cutoff {
            up_rec = up_rec.min(rec.replicas);
        }
        if rec.at > down_cutoff {
            down_rec = down_rec.max(rec.replicas);
        }
        if rec.at < up_cutoff && rec.at < down_cutoff {
            old = Some(i);
        }
    }
    let mut stabilized = current;
    if stabilized < up_rec {
        stabilized = up_rec;
    }
    if stabilized > down_rec {
        stabilized = down_rec;
    }
    let rec = Recommendation {
        at: now,
        replicas: desired,
    };
    match old {
        Some(i) => history[i] = rec,
        None => history.push(rec),
    }
    let outcome = if stabilized == desired {
        READY_FOR_NEW_SCALE
    } else if desired >= current {
        SCALE_UP_STABILIZED
    } else {
        SCALE_DOWN_STABILIZED
    };
    (stabilized, outcome)
}

/// With `behavior`: the replicas to set within min/max and the policies' rate limits,
/// with the `ScalingLimited` outcome (upstream's `convertDesiredReplicasWithBehaviorRate`).
#[allow(clippy::too_many_arguments)]
pub fn convert_with_behavior(
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
    up_events: &[ScaleEvent],
    down_events: &[ScaleEvent],
    now: i64,
    up: &Rules,
    down: &Rules,
) -> (i32, Outcome) {
    if desired > current {
        let limit = scale_up_limit(current, up_events, down_events, now, up).max(current);
        let (maximum, limiting) = if max > limit {
            (limit, SCALE_UP_LIMIT)
        } else {
            (max, TOO_MANY_REPLICAS)
        };
        if desired > maximum {
            return (maximum, limiting);
        }
    } else if desired < current {
        let limit = scale_down_limit(current, up_events, down_events, now, down).min(current);
        let (minimum, limiting) = if min < limit {
            (limit, SCALE_DOWN_LIMIT)
        } else {
            (min, TOO_FEW_REPLICAS)
        };
        if desired < minimum {
            return (minimum, limiting);
        }
    }
    (desired, DESIRED_WITHIN_RANGE)
}

/// Records a scaling by `change` replicas at `now`, reusing the slot of an event older
/// than the direction's longest policy period (upstream's `storeScaleEvent`).
pub fn store_scale_event(events: &mut Vec<ScaleEvent>, longest_period: i64, change: i32, now: i64) {
    let cutoff = now - longest_period * 1000;
    let mut old = None;
    for (i, e) in events.iter_mut().enumerate() {
        if e.at < cutoff {
            e.outdated = true;
        }
        if e.outdated {
            old = Some(i);
        }
    }
    let event = ScaleEvent {
        at: now,
        change,
        outdated: false,
    };
    match old {
        Some(i) => events[i] = event,
        None => events.push(event),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;

    fn ev(at: i64, change: i32) -> ScaleEvent {
        ScaleEvent {
            at,
            change,
            outdated: false,
        }
    }

    #[test]
    fn tolerances_are_inclusive_per_direction() {
        let t = Tolerances::both(TOLERANCE);
        for (ratio, within) in [
            (1.0, true),
            (1.1, true),
            (0.9, true),
            (1.11, false),
            (0.89, false),
        ] {
            assert_eq!(t.is_within(ratio), within, "{ratio}");
        }
        let t = Tolerances { down: 0.5, up: 0.0 };
        assert!(t.is_within(0.6));
        assert!(!t.is_within(1.01));
    }

    #[test]
    fn legacy_rules_as_upstream() {
        // (current, desired, min, max, want, reason): upstream's
        // TestConvertDesiredReplicasWithRules cases and the scale-up cap.
        let cases = [
            (5, 7, 3, 8, 7, "DesiredWithinRange"),
            (3, 1, 2, 8, 2, "TooFewReplicas"),
            (1, 5, 1, 8, 4, "ScaleUpLimit"),
            (2, 5, 1, 3, 3, "TooManyReplicas"),
            (3, 24, 1, 20, 6, "ScaleUpLimit"),
            (10, 24, 1, 20, 20, "TooManyReplicas"),
        ];
        for (current, desired, min, max, want, reason) in cases {
            let (got, outcome) = convert_with_rules(current, desired, min, max);
            assert_eq!((got, outcome.0), (want, reason), "{current}->{desired}");
        }
    }

    #[test]
    fn scale_up_limits_count_both_directions() {
        let up = Rules::default_up();
        // (current, up events, down events, now, want): max(start + 4, 2 × start).
        type Case = (i32, Vec<ScaleEvent>, Vec<ScaleEvent>, i64, i32);
        let cases: Vec<Case> = vec![
            (1, vec![], vec![], 100 * S, 5),
            (10, vec![], vec![], 100 * S, 20),
            (10, vec![ev(95 * S, 5)], vec![], 100 * S, 10),
            (10, vec![ev(95 * S, 5)], vec![], 111 * S, 20),
            // a scale-down within the period raises the period's starting point
            (6, vec![], vec![ev(95 * S, 2)], 100 * S, 16),
            // exactly one period ago no longer counts
            (10, vec![ev(85 * S, 5)], vec![], 100 * S, 20),
        ];
        for (current, ups, downs, now, want) in cases {
            assert_eq!(scale_up_limit(current, &ups, &downs, now, &up), want);
        }
        let min_pods = Rules {
            select: Select::Min,
            ..Rules::default_up()
        };
        assert_eq!(scale_up_limit(10, &[], &[], 0, &min_pods), 14);
        let disabled = Rules {
            select: Select::Disabled,
            ..Rules::default_up()
        };
        assert_eq!(scale_up_limit(3, &[], &[], 0, &disabled), 3);
    }

    #[test]
    fn scale_down_limits() {
        let down = Rules::default_down(300);
        assert_eq!(scale_down_limit(10, &[], &[], 0, &down), 0);
        let slow = Rules {
            policies: vec![(Policy::Pods(1), 60), (Policy::Percent(10), 60)],
            ..Rules::default_down(300)
        };
        // Max picks the larger change: 10% of 80 = 8 pods.
        assert_eq!(scale_down_limit(80, &[], &[], 0, &slow), 72);
        // Those 8 count against the period: 72 may not go lower until it ends.
        assert_eq!(
            scale_down_limit(72, &[], &[ev(10 * S, 8)], 30 * S, &slow),
            72
        );
        assert_eq!(
            scale_down_limit(72, &[], &[ev(10 * S, 8)], 71 * S, &slow),
            64
        );
        let min = Rules {
            select: Select::Min,
            ..slow
        };
        assert_eq!(scale_down_limit(80, &[], &[], 0, &min), 79);
    }

    #[test]
    fn behavior_rate_outcomes() {
        let (up, down) = (Rules::default_up(), Rules::default_down(300));
        let c = |current, desired, min, max| {
            convert_with_behavior(current, desired, min, max, &[], &[], 0, &up, &down)
        };
        assert_eq!(c(2, 20, 1, 10), (6, SCALE_UP_LIMIT));
        assert_eq!(c(8, 20, 1, 10), (10, TOO_MANY_REPLICAS));
        assert_eq!(c(5, 0, 2, 10), (2, TOO_FEW_REPLICAS));
        assert_eq!(c(5, 4, 2, 10), (4, DESIRED_WITHIN_RANGE));
        assert_eq!(c(5, 5, 2, 10), (5, DESIRED_WITHIN_RANGE));
        let slow_down = Rules {
            policies: vec![(Policy::Pods(1), 60)],
            ..Rules::default_down(0)
        };
        assert_eq!(
            convert_with_behavior(5, 1, 1, 10, &[], &[], 0, &up, &slow_down),
            (4, SCALE_DOWN_LIMIT)
        );
        // A limit beyond the current count (events aged out oddly) never reverses.
        let up_events = [ev(-S, 10)];
        assert_eq!(
            convert_with_behavior(5, 9, 1, 10, &up_events, &[], 0, &up, &down),
            (5, SCALE_UP_LIMIT)
        );
    }

    #[test]
    fn legacy_stabilization_keeps_the_highest_recent() {
        let mut history = vec![Recommendation { at: 0, replicas: 5 }];
        // Within the window a lower recommendation is held at 5.
        assert_eq!(
            stabilize_down(&mut history, 2, 100 * S, 300 * S),
            (5, SCALE_DOWN_STABILIZED)
        );
        assert_eq!(history.len(), 2);
        // After the window only the recent 2 counts; the old slot is reused.
        assert_eq!(
            stabilize_down(&mut history, 2, 301 * S, 300 * S),
            (2, READY_FOR_NEW_SCALE)
        );
        assert_eq!(history.len(), 2);
        // Scaling up is never held back.
        assert_eq!(
            stabilize_down(&mut history, 9, 302 * S, 300 * S),
            (9, READY_FOR_NEW_SCALE)
        );
    }

    #[test]
    fn behavior_stabilization_windows() {
        let (up, down) = (Rules::default_up(), Rules::default_down(300));
        let recs = |v: &[(i64, i32)]| -> Vec<Recommendation> {
            v.iter()
                .map(|&(at, replicas)| Recommendation { at, replicas })
                .collect()
        };
        // (history, current, desired, now, want, outcome)
        let cases = [
            (vec![], 5, 5, 0, 5, READY_FOR_NEW_SCALE),
            (
                vec![(100, 8), (200, 5)],
                8,
                3,
                250,
                8,
                SCALE_DOWN_STABILIZED,
            ),
            (
                vec![(100, 8), (200, 5)],
                8,
                3,
                401,
                5,
                SCALE_DOWN_STABILIZED,
            ),
            (vec![(100, 8), (200, 5)], 8, 3, 501, 3, READY_FOR_NEW_SCALE),
            // no up window: scaling up is immediate
            (vec![(100, 8), (200, 5)], 3, 9, 250, 9, READY_FOR_NEW_SCALE),
        ];
        for (h, current, desired, now, want, outcome) in cases {
            let mut history = recs(&h.iter().map(|&(a, r)| (a * S, r)).collect::<Vec<_>>());
            assert_eq!(
                stabilize_with_behavior(&mut history, current, desired, now * S, &up, &down),
                (want, outcome),
                "{h:?} {current}->{desired} at {now}"
            );
        }
        // An up window holds a scale-up at the lowest recent recommendation.
        let slow_up = Rules {
            stabilization_window_seconds: 60,
            ..Rules::default_up()
        };
        let mut history = recs(&[(10 * S, 4), (20 * S, 6)]);
        assert_eq!(
            stabilize_with_behavior(&mut history, 3, 9, 30 * S, &slow_up, &down),
            (4, SCALE_UP_STABILIZED)
        );
    }

    #[test]
    fn scale_events_reuse_outdated_slots() {
        let mut events = vec![ev(0, 3)];
        store_scale_event(&mut events, 15, 2, 10 * S);
        assert_eq!(events.len(), 2);
        store_scale_event(&mut events, 15, 1, 20 * S);
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0], ev(20 * S, 1));
    }
}
