//! CronJob schedules as upstream reads them (robfig/cron v3's `ParseStandard`): five fields
//! (minute, hour, day of month, month, day of week) with `*`, `?`, lists, ranges, steps and
//! month/weekday names, the `@hourly`-style descriptors and `@every <duration>`, an optional
//! `TZ=`/`CRON_TZ=` prefix, and the next activation time after an instant, in a time zone.
//!
//! Parse errors carry robfig's wording (`expected exactly 5 fields, found 1: [x]`), which
//! the API server puts into `unparseable schedule` validation errors. Time zones are
//! resolved by a function the caller passes in, so this crate reads no zone database.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};

/// Resolves an IANA zone name as Go's `time.LoadLocation` does; the error is its message
/// (`unknown time zone Mars/Base`).
pub type ZoneResolver<'a> = &'a dyn Fn(&str) -> Result<TimeZone, String>;

const STAR_BIT: u64 = 1 << 63;

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

/// A parsed schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    kind: Kind,
    /// The zone the fields are read in; `None` is the controller's local zone (UTC here).
    zone: Option<TimeZone>,
}

#[derive(Clone, Debug)]
enum Kind {
    Spec {
        minute: u64,
        hour: u64,
        dom: u64,
        month: u64,
        dow: u64,
    },
    /// `@every`: a constant delay, whole seconds, at least one.
    Every(i64),
}

/// Parses a schedule as robfig/cron's `ParseStandard`.
pub fn parse_standard(spec: &str, zones: ZoneResolver<'_>) -> Result<Schedule, String> {
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    let mut spec = spec;
    let mut zone = None;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let eq = spec.find('=').unwrap_or(0);
        let Some(space) = spec.find(' ') else {
            return Err(format!(
                "provided bad location {}: missing schedule",
                &spec[eq + 1..]
            ));
        };
        let name = &spec[eq + 1..space];
        zone = Some(zones(name).map_err(|e| format!("provided bad location {name}: {e}"))?);
        spec = spec[space..].trim();
    }
    if spec.starts_with('@') {
        return descriptor(spec).map(|kind| Schedule { kind, zone });
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    Ok(Schedule {
        kind: Kind::Spec {
            minute: field(fields[0], &MINUTES)?,
            hour: field(fields[1], &HOURS)?,
            dom: field(fields[2], &DOM)?,
            month: field(fields[3], &MONTHS)?,
            dow: field(fields[4], &DOW)?,
        },
        zone,
    })
}

fn descriptor(spec: &str) -> Result<Kind, String> {
    let expr = match spec {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => {
            if let Some(d) = spec.strip_prefix("@every ") {
                let nanos = go_duration(d).ok_or_else(|| {
                    format!(
                        "failed to parse duration {d}: time: invalid duration {}",
                        go_quote(d)
                    )
                })?;
                // robfig rounds down to whole seconds, at least one.
                return Ok(Kind::Every((nanos / 1_000_000_000).max(1) as i64));
            }
            return Err(format!("unrecognized descriptor: {spec}"));
        }
    };
    let f: Vec<&str> = expr.split(' ').collect();
    Ok(Kind::Spec {
        minute: field(f[0], &MINUTES)?,
        hour: field(f[1], &HOURS)?,
        dom: field(f[2], &DOM)?,
        month: field(f[3], &MONTHS)?,
        dow: field(f[4], &DOW)?,
    })
}

fn go_quote(s: &str) -> String {
    format!("{s:?}")
}

/// Go's `time.ParseDuration` for non-negative durations, in nanoseconds.
fn go_duration(s: &str) -> Option<u128> {
    let units: [(&str, f64); 7] = [
        ("ns", 1.0),
        ("us", 1e3),
        ("µs", 1e3),
        ("ms", 1e6),
        ("s", 1e9),
        ("m", 60e9),
        ("h", 3600e9),
    ];
    if s == "0" {
        return Some(0);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let (_, scale) = units.iter().find(|(u, _)| *u == unit)?;
        total += num * scale;
        rest = &rest[unit_len..];
    }
    Some(total as u128)
}

fn field(expr: &str, bounds: &Bounds) -> Result<u64, String> {
    let mut bits = 0;
    for part in expr.split(',') {
        bits |= range(part, bounds)?;
    }
    Ok(bits)
}

fn parse_int(expr: &str) -> Result<u32, String> {
    let n: i64 = expr.parse().map_err(|e: std::num::ParseIntError| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing {}: {why}",
            go_quote(expr)
        )
    })?;
    if n < 0 {
        return Err(format!("negative number ({n}) not allowed: {expr}"));
    }
    u32::try_from(n).map_err(|_| {
        format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing {}: value out of range",
            go_quote(expr)
        )
    })
}

fn int_or_name(expr: &str, bounds: &Bounds) -> Result<u32, String> {
    let lower = expr.to_ascii_lowercase();
    if let Some((_, v)) = bounds.names.iter().find(|(n, _)| *n == lower) {
        return Ok(*v);
    }
    parse_int(expr)
}

fn range(expr: &str, r: &Bounds) -> Result<u64, String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;
    let (start, mut end, mut extra);
    if low_and_high[0] == "*" || low_and_high[0] == "?" {
        start = r.min;
        end = r.max;
        extra = STAR_BIT;
    } else {
        start = int_or_name(low_and_high[0], r)?;
        end = match low_and_high.len() {
            1 => start,
            2 => int_or_name(low_and_high[1], r)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        extra = 0;
    }
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = parse_int(range_and_step[1])?;
            // "N/step" means "N-max/step".
            if single {
                end = r.max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < r.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            r.min
        ));
    }
    if end > r.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            r.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    let mut bits = 0u64;
    let mut i = start;
    while i <= end {
        bits |= 1 << i;
        i += step;
    }
    Ok(bits | extra)
}

fn has(bits: u64, i: i8) -> bool {
    bits & (1u64 << i) != 0
}

impl Schedule {
    /// The schedule's own zone (`TZ=` prefix), if any.
    pub fn zone(&self) -> Option<&TimeZone> {
        self.zone.as_ref()
    }

    /// The first activation strictly after `after` (robfig's `Next`), or `None` when the
    /// schedule never fires within five years (e.g. `0 0 30 2 *`). Fields are read in the
    /// schedule's zone, else in `local`; hours advance on the physical timeline, so a
    /// wall-clock time skipped by a DST jump does not fire that day and one repeated by
    /// the fall-back fires twice, as upstream.
    pub fn next(&self, after: Timestamp, local: &TimeZone) -> Option<Timestamp> {
        let (minute, hour, dom, month, dow) = match self.kind {
            Kind::Every(secs) => {
                let base = Timestamp::new(after.as_second(), 0).ok()?;
                return base.checked_add(secs.seconds()).ok();
            }
            Kind::Spec {
                minute,
                hour,
                dom,
                month,
                dow,
            } => (minute, hour, dom, month, dow),
        };
        let tz = self.zone.clone().unwrap_or_else(|| local.clone());
        let at = |y: i16, mo: i8, d: i8, h: i8, mi: i8| -> Option<Zoned> {
            DateTime::new(y, mo, d, h, mi, 0, 0)
                .ok()?
                .to_zoned(tz.clone())
                .ok()
        };
        // The upcoming whole second.
        let mut t = Timestamp::new(after.as_second() + 1, 0)
            .ok()?
            .to_zoned(tz.clone());
        let mut added = false;
        let year_limit = t.year() + 5;
        let day_matches = |t: &Zoned| {
            let dom_match = has(dom, t.day());
            let dow_match = has(dow, t.weekday().to_sunday_zero_offset());
            if dom & STAR_BIT != 0 || dow & STAR_BIT != 0 {
                dom_match && dow_match
            } else {
                dom_match || dow_match
            }
        };
        'wrap: loop {
            if t.year() > year_limit {
                return None;
            }
            while !has(month, t.month()) {
                if !added {
                    added = true;
                    t = at(t.year(), t.month(), 1, 0, 0)?;
                }
                t = t.checked_add(1.month()).ok()?;
                if t.month() == 1 {
                    continue 'wrap;
                }
            }
            while !day_matches(&t) {
                if !added {
                    added = true;
                    t = at(t.year(), t.month(), t.day(), 0, 0)?;
                }
                t = t.checked_add(1.day()).ok()?;
                // Keep the day at midnight across a DST change.
                if t.hour() != 0 {
                    let fix = if t.hour() > 12 {
                        i64::from(24 - t.hour())
                    } else {
                        -i64::from(t.hour())
                    };
                    t = t
                        .timestamp()
                        .checked_add(fix.hours())
                        .ok()?
                        .to_zoned(tz.clone());
                }
                if t.day() == 1 {
                    continue 'wrap;
                }
            }
            while !has(hour, t.hour()) {
                if !added {
                    added = true;
                    t = at(t.year(), t.month(), t.day(), t.hour(), 0)?;
                }
                t = t
                    .timestamp()
                    .checked_add(1.hour())
                    .ok()?
                    .to_zoned(tz.clone());
                if t.hour() == 0 {
                    continue 'wrap;
                }
            }
            while !has(minute, t.minute()) {
                if !added {
                    added = true;
                    let s = t.timestamp().as_second();
                    t = Timestamp::new(s - s.rem_euclid(60), 0)
                        .ok()?
                        .to_zoned(tz.clone());
                }
                t = t
                    .timestamp()
                    .checked_add(1.minute())
                    .ok()?
                    .to_zoned(tz.clone());
                if t.minute() == 0 {
                    continue 'wrap;
                }
            }
            // Seconds: only second 0 matches.
            while t.second() != 0 {
                added = true;
                t = t
                    .timestamp()
                    .checked_add(1.second())
                    .ok()?
                    .to_zoned(tz.clone());
                if t.second() == 0 {
                    continue 'wrap;
                }
            }
            return Some(t.timestamp());
        }
    }
}

/// How many activations were missed between the last one and `now`, as upstream counts
/// them (a CronJob's `mostRecentScheduleTime`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missed {
    None,
    Few,
    /// More than 100: upstream's `TooManyMissedTimes`.
    Many,
}

/// Upstream `mostRecentScheduleTime`: the latest activation after `earliest` that is not
/// after `now`, and how many were missed. Errors when two activations are less than a
/// second apart (a schedule that never fires, such as `59 23 31 2 *`).
pub fn most_recent(
    schedule: &Schedule,
    earliest: Timestamp,
    now: Timestamp,
    local: &TimeZone,
) -> Result<(Option<Timestamp>, Missed), String> {
    let next = |t: Timestamp| schedule.next(t, local);
    let Some(t1) = next(earliest) else {
        return Err("time difference between two schedules is less than 1 second".into());
    };
    if now < t1 {
        return Ok((None, Missed::None));
    }
    let Some(t2) = next(t1) else {
        return Err("time difference between two schedules is less than 1 second".into());
    };
    if now < t2 {
        return Ok((Some(t1), Missed::None));
    }
    let between = (t2.as_second() - t1.as_second()).max(0);
    if between < 1 {
        return Err("time difference between two schedules is less than 1 second".into());
    }
    let elapsed = now.as_second() - t1.as_second();
    let missed = elapsed / between + 1;
    // Start one interval earlier than the estimate and let the schedule itself walk
    // forward: exact for irregular schedules such as `30 6-16/4 * * 1-5`.
    let potential =
        Timestamp::new(t1.as_second() + (missed - 2) * between, 0).map_err(|e| e.to_string())?;
    let mut most_recent = None;
    let mut t = next(potential);
    while let Some(x) = t {
        if x > now {
            break;
        }
        most_recent = Some(x);
        t = next(x);
    }
    let kind = if missed > 100 {
        Missed::Many
    } else {
        Missed::Few
    };
    Ok((most_recent, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones(name: &str) -> Result<TimeZone, String> {
        match name {
            "" | "UTC" => Ok(TimeZone::UTC),
            _ => jiff::tz::db()
                .get(name)
                .map_err(|_| format!("unknown time zone {name}")),
        }
    }

    fn parse(s: &str) -> Result<Schedule, String> {
        parse_standard(s, &zones)
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next(s: &str, after: &str) -> Option<String> {
        parse(s)
            .unwrap()
            .next(ts(after), &TimeZone::UTC)
            .map(|t| t.to_string())
    }

    #[test]
    fn parse_errors_read_as_robfig() {
        let cases = [
            ("", "empty spec string"),
            ("invalid", "expected exactly 5 fields, found 1: [invalid]"),
            ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
            ("60 * * * *", "end of range (60) above maximum (59): 60"),
            ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
            (
                "5-1 * * * *",
                "beginning of range (5) beyond end of range (1): 5-1",
            ),
            (
                "*/0 * * * *",
                "step of range should be a positive number: */0",
            ),
            ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
            ("1/2/3 * * * *", "too many slashes: 1/2/3"),
            (
                "x * * * *",
                "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            ("* * * * 7", "end of range (7) above maximum (6): 7"),
            ("@fortnightly", "unrecognized descriptor: @fortnightly"),
            (
                "TZ=Mars/Base * * * * *",
                "provided bad location Mars/Base: unknown time zone Mars/Base",
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(parse(spec).unwrap_err(), want, "{spec:?}");
        }
        for ok in [
            "*/1 * * * *",
            "0 0 * * MON-fri",
            "0 12 1,15 JAN,jul ?",
            "@hourly",
            "@every 90s",
            "CRON_TZ=Europe/Berlin 0 3 * * *",
            "5/15 * * * *",
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn next_activation() {
        let cases = [
            (
                "*/1 * * * *",
                "2026-01-01T10:00:00Z",
                "2026-01-01T10:01:00Z",
            ),
            (
                "*/1 * * * *",
                "2026-01-01T10:00:30.5Z",
                "2026-01-01T10:01:00Z",
            ),
            (
                "*/15 * * * *",
                "2026-01-01T10:14:59Z",
                "2026-01-01T10:15:00Z",
            ),
            (
                "5/20 * * * *",
                "2026-01-01T10:06:00Z",
                "2026-01-01T10:25:00Z",
            ),
            ("@hourly", "2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z"),
            ("@daily", "2026-01-31T10:00:00Z", "2026-02-01T00:00:00Z"),
            ("@weekly", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z"), // a Sunday
            ("@yearly", "2026-03-01T00:00:00Z", "2027-01-01T00:00:00Z"),
            ("0 0 29 2 *", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z"),
            // Day of month OR day of week when neither is `*`.
            ("0 0 13 * 5", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
            // Day of month AND day of week when one is `*` (step 1 keeps the star).
            (
                "0 0 */1 * 5",
                "2026-01-01T00:00:00Z",
                "2026-01-02T00:00:00Z",
            ),
            (
                "@every 90s",
                "2026-01-01T00:00:00.7Z",
                "2026-01-01T00:01:30Z",
            ),
        ];
        for (spec, after, want) in cases {
            assert_eq!(
                next(spec, after).as_deref(),
                Some(want),
                "{spec} after {after}"
            );
        }
        assert_eq!(next("0 0 30 2 *", "2026-01-01T00:00:00Z"), None);
    }

    #[test]
    fn time_zones_and_dst() {
        let ny = zones("America/New_York").unwrap();
        let s = parse("30 2 * * *").unwrap();
        // 2026-03-08: clocks jump 02:00 -> 03:00 in New York; 02:30 does not exist that
        // day, so the next activation is the following day's 02:30 EDT (06:30Z).
        assert_eq!(
            s.next(ts("2026-03-07T08:00:00Z"), &ny).unwrap().to_string(),
            "2026-03-09T06:30:00Z"
        );
        // 2026-11-01: 01:30 happens twice (EDT then EST): both fire.
        let s = parse("30 1 * * *").unwrap();
        let first = s.next(ts("2026-11-01T04:00:00Z"), &ny).unwrap();
        assert_eq!(first.to_string(), "2026-11-01T05:30:00Z");
        assert_eq!(
            s.next(first, &ny).unwrap().to_string(),
            "2026-11-01T06:30:00Z"
        );
        // A TZ= prefix overrides the zone passed in.
        let s = parse("TZ=Asia/Tokyo 0 9 * * *").unwrap();
        assert_eq!(
            s.next(ts("2026-01-01T00:00:00Z"), &TimeZone::UTC)
                .unwrap()
                .to_string(),
            "2026-01-02T00:00:00Z"
        );
        // Midnight daily across the spring-forward day stays at local midnight.
        let s = parse("0 0 * * *").unwrap();
        assert_eq!(
            s.next(ts("2026-03-08T05:00:00Z"), &ny).unwrap().to_string(),
            "2026-03-09T04:00:00Z"
        );
    }

    #[test]
    fn missed_activations() {
        let s = parse("*/1 * * * *").unwrap();
        let utc = TimeZone::UTC;
        // Not yet due.
        assert_eq!(
            most_recent(
                &s,
                ts("2026-01-01T10:00:10Z"),
                ts("2026-01-01T10:00:50Z"),
                &utc
            ),
            Ok((None, Missed::None))
        );
        // One due.
        assert_eq!(
            most_recent(
                &s,
                ts("2026-01-01T10:00:10Z"),
                ts("2026-01-01T10:01:20Z"),
                &utc
            ),
            Ok((Some(ts("2026-01-01T10:01:00Z")), Missed::None))
        );
        // Several: the latest one counts.
        assert_eq!(
            most_recent(
                &s,
                ts("2026-01-01T10:00:10Z"),
                ts("2026-01-01T10:05:20Z"),
                &utc
            ),
            Ok((Some(ts("2026-01-01T10:05:00Z")), Missed::Few))
        );
        // More than 100.
        let (t, m) = most_recent(
            &s,
            ts("2026-01-01T10:00:10Z"),
            ts("2026-01-01T12:00:20Z"),
            &utc,
        )
        .unwrap();
        assert_eq!((t, m), (Some(ts("2026-01-01T12:00:00Z")), Missed::Many));
        // Irregular: weekdays 06:30, 10:30, 14:30; from Friday evening to Monday 11:00.
        let s = parse("30 6-16/4 * * 1-5").unwrap();
        let (t, _) = most_recent(
            &s,
            ts("2026-01-02T18:00:00Z"),
            ts("2026-01-05T11:00:00Z"),
            &utc,
        )
        .unwrap();
        assert_eq!(t, Some(ts("2026-01-05T10:30:00Z")));
        // Never fires.
        let s = parse("59 23 31 2 *").unwrap();
        assert!(most_recent(
            &s,
            ts("2026-01-01T00:00:00Z"),
            ts("2027-01-01T00:00:00Z"),
            &utc
        )
        .is_err());
    }
}
