//! Object metadata on JSON objects: reading and setting the fields the generic
//! registry owns (name, namespace, uid, timestamps, resourceVersion, generation).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// `metadata` of an object, created if absent (and replacing a non-object).
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    let map = obj.as_object_mut().expect("objects are JSON objects");
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut().expect("just made an object")
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// Sets `metadata.resourceVersion`.
pub fn set_resource_version(obj: &mut Value, revision: i64) {
    metadata_mut(obj).insert(
        "resourceVersion".into(),
        Value::String(revision.to_string()),
    );
}

/// The labels of an object as pairs (missing or malformed labels: none).
pub fn labels(obj: &Value) -> std::collections::BTreeMap<String, String> {
    string_entries(obj.get("metadata").and_then(|m| m.get("labels")))
}

/// The string-valued entries of a JSON object (anything else: none).
fn string_entries(map: Option<&Value>) -> std::collections::BTreeMap<String, String> {
    map.and_then(Value::as_object)
        .map(|l| {
            l.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// The labels of a stored (JSON) object, read without building the whole object: only
/// `metadata.labels` is materialised, the rest is skipped. Same answer as [`labels`] on
/// the parsed object (unparsable input, malformed labels and non-string values: left out).
pub fn labels_of_stored(stored: &[u8]) -> std::collections::BTreeMap<String, String> {
    #[derive(serde::Deserialize)]
    struct Object {
        #[serde(default)]
        metadata: Option<Metadata>,
    }
    #[derive(serde::Deserialize)]
    struct Metadata {
        #[serde(default)]
        labels: Option<Value>,
    }
    // serde refuses only what has no labels either way: invalid JSON, or a `metadata`
    // that is not an object.
    let object = serde_json::from_slice::<Object>(stored).ok();
    string_entries(object.and_then(|o| o.metadata?.labels).as_ref())
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Now as an RFC 3339 timestamp with second precision, as Kubernetes writes them.
pub fn now_rfc3339() -> String {
    rfc3339(now_secs())
}

/// Formats seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` into seconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || (b[10] != b'T' && b[10] != b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset)
}

// Howard Hinnant's civil calendar algorithms.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A random version-4 UUID, as object uids are.
pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_of_stored_bytes_match_the_parsed_object() {
        for stored in [
            &br#"{"metadata":{"name":"a","labels":{"app":"web","tier":"db"}},"spec":{"x":[1]}}"#[..],
            br#"{"spec":{},"metadata":{"labels":{"n":3,"s":"ok"}}}"#,
            br#"{"metadata":{"labels":null}}"#,
            br#"{"metadata":{"labels":"odd"}}"#,
            br#"{"metadata":7}"#,
            br#"{}"#,
            b"not json",
        ] {
            let parsed = serde_json::from_slice::<Value>(stored)
                .map(|v| labels(&v))
                .unwrap_or_default();
            assert_eq!(
                labels_of_stored(stored),
                parsed,
                "{}",
                String::from_utf8_lossy(stored)
            );
        }
        assert_eq!(
            labels_of_stored(br#"{"metadata":{"labels":{"app":"web"}}}"#)
                .get("app")
                .map(String::as_str),
            Some("web")
        );
    }

    #[test]
    fn formats_and_parses_timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(parse_rfc3339("2026-11-18T11:06:40Z"), Some(1_795_000_000));
        assert_eq!(
            parse_rfc3339("2026-11-18T12:06:40.123+01:00"),
            Some(1_795_000_000)
        );
        assert_eq!(
            parse_rfc3339("2000-02-29T00:00:00Z")
                .map(rfc3339)
                .as_deref(),
            Some("2000-02-29T00:00:00Z")
        );
        assert_eq!(parse_rfc3339("nonsense"), None);
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
    }

    proptest::proptest! {
        #[test]
        fn timestamps_round_trip(secs in 0i64..10_000_000_000) {
            proptest::prop_assert_eq!(parse_rfc3339(&rfc3339(secs)), Some(secs));
        }

        #[test]
        fn parsing_never_panics(s in ".{0,40}") {
            let _ = parse_rfc3339(&s);
        }
    }
}
