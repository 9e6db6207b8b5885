//! Writing the Kubernetes protobuf encoding: the JSON objects the server keeps, transcoded
//! to the bytes upstream's gogo-protobuf marshallers write for the same Go values.
//!
//! Fields are written in field-number order; maps as one `{1: key, 2: value}` entry per key,
//! keys sorted; repeated numbers unpacked (k8s.io's messages are proto2, none is `packed`).
//! What the JSON leaves out is left out of the bytes: upstream also writes the zero values
//! of non-pointer fields (`namespace: ""`, an empty `creationTimestamp`), which decode to
//! the same Go value, so clients see no difference. JSON keys the schema does not know are
//! skipped; a value of the wrong JSON type is an error, so the caller can answer in JSON.

use base64::Engine;
use serde_json::Value;

use rkube_api::schema::{self, Field, Kind};

use super::{message_for, WellKnown, MAGIC, MAX_DEPTH};

/// Encodes an object as a protobuf body: `k8s\0` + `runtime.Unknown` {typeMeta, raw, "", ""}.
pub fn encode_object(obj: &Value) -> Result<Vec<u8>, String> {
    let (api_version, kind, raw) = encode_parts(obj)?;
    let mut out = Vec::with_capacity(raw.len() + api_version.len() + kind.len() + 24);
    out.extend_from_slice(MAGIC);
    nested(&mut out, 1, |t| {
        string(t, 1, api_version);
        string(t, 2, kind);
        Ok(())
    })?;
    bytes(&mut out, 2, &raw);
    // contentEncoding and contentType: always written, empty.
    string(&mut out, 3, "");
    string(&mut out, 4, "");
    Ok(out)
}

/// Encodes an object as its bare message, without prefix or envelope (what upstream's raw
/// serializer writes, e.g. the events of a protobuf watch stream).
pub fn encode_raw(obj: &Value) -> Result<Vec<u8>, String> {
    encode_parts(obj).map(|(_, _, raw)| raw)
}

/// (apiVersion, kind, message bytes) of an object.
fn encode_parts(obj: &Value) -> Result<(&str, &str, Vec<u8>), String> {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let msg = message_for(api_version, kind)
        .ok_or_else(|| format!("no protobuf message is known for {api_version} {kind}"))?;
    let mut raw = Vec::with_capacity(256);
    message(&mut raw, msg.name, obj, 0)?;
    Ok((api_version, kind, raw))
}

/// A watch stream frame: the 4-byte big-endian length, then a `meta.v1.WatchEvent`
/// {1: type, 2: RawExtension{1: object}} where `object` is a full protobuf body
/// ([`encode_object`]), as upstream's length-delimited framer and raw serializer write it.
pub fn watch_frame(event_type: &str, object: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(object.len() + event_type.len() + 16);
    out.extend_from_slice(&[0; 4]);
    string(&mut out, 1, event_type);
    nested(&mut out, 2, |r| {
        bytes(r, 1, object);
        Ok(())
    })
    .expect("writing bytes cannot fail");
    let len = u32::try_from(out.len() - 4).unwrap_or(u32::MAX);
    out[..4].copy_from_slice(&len.to_be_bytes());
    out
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, tag: u32, wire: u8) {
    varint(out, u64::from(tag) << 3 | u64::from(wire));
}

fn bytes(out: &mut Vec<u8>, tag: u32, b: &[u8]) {
    key(out, tag, 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn string(out: &mut Vec<u8>, tag: u32, s: &str) {
    bytes(out, tag, s.as_bytes());
}

fn int(out: &mut Vec<u8>, tag: u32, v: i64) {
    key(out, tag, 0);
    // Negative numbers are sign-extended to ten bytes, int32 included.
    varint(out, v as u64);
}

/// A length-delimited field whose bytes `body` writes in place (one byte is reserved for
/// the length and the body moved up only when the length needs more).
fn nested(
    out: &mut Vec<u8>,
    tag: u32,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), String>,
) -> Result<(), String> {
    key(out, tag, 2);
    let at = out.len();
    out.push(0);
    body(out)?;
    let len = out.len() - at - 1;
    if len < 0x80 {
        out[at] = len as u8;
    } else {
        let mut prefix = Vec::with_capacity(5);
        varint(&mut prefix, len as u64);
        out.splice(at..=at, prefix);
    }
    Ok(())
}

/// Writes the fields of message `name` from its JSON form.
fn message(out: &mut Vec<u8>, name: &str, v: &Value, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("the object is nested too deeply".into());
    }
    if let Some(wk) = WellKnown::of(name) {
        return well_known(out, wk, name, v, depth);
    }
    let obj = v
        .as_object()
        .ok_or_else(|| format!("{name}: expected a JSON object, got {}", type_of(v)))?;
    fields(out, name, obj, depth)
}

/// Writes the fields of message `name` found in a JSON object.
fn fields(
    out: &mut Vec<u8>,
    name: &str,
    obj: &serde_json::Map<String, Value>,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("the object is nested too deeply".into());
    }
    let msg = schema::message(name).ok_or_else(|| format!("unknown protobuf message {name}"))?;
    if msg.fields.windows(2).all(|w| w[0].tag < w[1].tag) {
        for field in msg.fields {
            self::field(out, field, obj, depth)?;
        }
    } else {
        let mut fields: Vec<&Field> = msg.fields.iter().collect();
        fields.sort_by_key(|f| f.tag);
        for field in fields {
            self::field(out, field, obj, depth)?;
        }
    }
    Ok(())
}

fn field(
    out: &mut Vec<u8>,
    field: &Field,
    obj: &serde_json::Map<String, Value>,
    depth: usize,
) -> Result<(), String> {
    if let (Kind::Message(inner), true) = (&field.kind, field.inline) {
        // Always written, as upstream writes the embedded struct.
        return nested(out, field.tag, |m| fields(m, inner, obj, depth + 1));
    }
    let name = field.json;
    let Some(v) = obj.get(name).filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let at = |e: String| format!("{name}: {e}");
    match &field.kind {
        Kind::Map(value_kind) => {
            let map = v
                .as_object()
                .ok_or_else(|| at(format!("expected a JSON object, got {}", type_of(v))))?;
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for k in keys {
                nested(out, field.tag, |e| {
                    string(e, 1, k);
                    value(e, 2, value_kind, &map[k], depth)
                })
                .map_err(at)?;
            }
        }
        kind if field.repeated => {
            let list = v
                .as_array()
                .ok_or_else(|| at(format!("expected a JSON array, got {}", type_of(v))))?;
            for item in list {
                value(out, field.tag, kind, item, depth).map_err(at)?;
            }
        }
        kind => value(out, field.tag, kind, v, depth).map_err(at)?,
    }
    Ok(())
}

/// One value; `null` (in a list or map) is the type's zero value.
fn value(out: &mut Vec<u8>, tag: u32, kind: &Kind, v: &Value, depth: usize) -> Result<(), String> {
    let wrong = || format!("a {} cannot be encoded as {kind:?}", type_of(v));
    match kind {
        Kind::String => match v {
            Value::String(s) => string(out, tag, s),
            Value::Null => string(out, tag, ""),
            _ => return Err(wrong()),
        },
        Kind::Bytes => {
            let b = match v {
                Value::String(s) => base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|e| format!("invalid base64: {e}"))?,
                Value::Null => Vec::new(),
                _ => return Err(wrong()),
            };
            bytes(out, tag, &b);
        }
        Kind::Bool => match v {
            Value::Bool(b) => int(out, tag, i64::from(*b)),
            Value::Null => int(out, tag, 0),
            _ => return Err(wrong()),
        },
        Kind::Int32 | Kind::Int64 => match v {
            Value::Null => int(out, tag, 0),
            _ => int(out, tag, integer(v).ok_or_else(wrong)?),
        },
        Kind::Double => {
            let f = match v {
                Value::Null => 0.0,
                _ => v.as_f64().ok_or_else(wrong)?,
            };
            key(out, tag, 1);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Kind::Message(name) => nested(out, tag, |m| match v {
            Value::Null => Ok(()),
            _ => message(m, name, v, depth + 1),
        })?,
        Kind::Map(_) => return Err("a map inside a list or map".into()),
    }
    Ok(())
}

/// A JSON number as an integer (`3.0` included, as Go's decoder takes it).
fn integer(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
            .map(|f| f as i64)
    })
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The well-known types, from their JSON forms.
fn well_known(
    out: &mut Vec<u8>,
    wk: WellKnown,
    name: &str,
    v: &Value,
    depth: usize,
) -> Result<(), String> {
    let wrong = || format!("{name}: a {} is not a valid value", type_of(v));
    match wk {
        WellKnown::Time | WellKnown::MicroTime => {
            let s = v.as_str().ok_or_else(wrong)?;
            if s.is_empty() {
                // The zero time: upstream writes an empty message.
                return Ok(());
            }
            let (secs, nanos) = parse_time(s).ok_or_else(|| format!("invalid time {s:?}"))?;
            int(out, 1, secs);
            int(out, 2, nanos);
        }
        WellKnown::Duration => {
            let s = v.as_str().ok_or_else(wrong)?;
            int(
                out,
                1,
                parse_go_duration(s).ok_or_else(|| format!("invalid duration {s:?}"))?,
            );
        }
        WellKnown::Quantity => match v {
            Value::String(s) => string(out, 1, s),
            Value::Number(n) => string(out, 1, &n.to_string()),
            _ => return Err(wrong()),
        },
        WellKnown::IntOrString => {
            let (kind, int_val, str_val) = match v {
                Value::String(s) => (1, 0, s.as_str()),
                Value::Number(_) => (0, integer(v).ok_or_else(wrong)?, ""),
                _ => return Err(wrong()),
            };
            int(out, 1, kind);
            int(out, 2, int_val);
            string(out, 3, str_val);
        }
        WellKnown::RawJson => {
            let raw = serde_json::to_vec(v).map_err(|e| e.to_string())?;
            bytes(out, 1, &raw);
        }
        WellKnown::StringList => {
            for item in v.as_array().ok_or_else(wrong)? {
                value(out, 1, &Kind::String, item, depth)?;
            }
        }
        WellKnown::SchemaOrArray(schema) => match v {
            Value::Array(items) => {
                for item in items {
                    value(out, 2, &Kind::Message(schema), item, depth)?;
                }
            }
            _ => value(out, 1, &Kind::Message(schema), v, depth)?,
        },
        WellKnown::SchemaOrBool(schema) => match v {
            Value::Bool(b) => int(out, 1, i64::from(*b)),
            _ => {
                int(out, 1, 1);
                value(out, 2, &Kind::Message(schema), v, depth)?;
            }
        },
        WellKnown::SchemaOrStringArray(schema) => match v {
            Value::Array(items) => {
                for item in items {
                    value(out, 2, &Kind::String, item, depth)?;
                }
            }
            _ => value(out, 1, &Kind::Message(schema), v, depth)?,
        },
    }
    Ok(())
}

/// RFC 3339 time → (seconds, nanoseconds) since the epoch.
fn parse_time(s: &str) -> Option<(i64, i64)> {
    let secs = crate::meta::parse_rfc3339(s)?;
    let nanos = match s.get(19..).and_then(|r| r.strip_prefix('.')) {
        Some(frac) => {
            let digits: String = frac
                .chars()
                .take_while(char::is_ascii_digit)
                .take(9)
                .collect();
            format!("{digits:0<9}").parse().ok()?
        }
        None => 0,
    };
    Some((secs, nanos))
}

/// Parses Go's `time.Duration` syntax (`1h2m3.5s`, `300ms`, `-1.5h`) into nanoseconds.
pub(super) fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let n = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        if n == 0 {
            return None;
        }
        let number: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(i, _)| i);
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    if total > i64::MAX as f64 {
        return None;
    }
    let ns = total.round() as i64;
    Some(if neg { -ns } else { ns })
}
