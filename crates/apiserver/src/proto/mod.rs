//! Reading the Kubernetes protobuf encoding (`application/vnd.kubernetes.protobuf`), which
//! kubectl's typed commands (`kubectl create namespace`, `create secret`, …) send.
//!
//! A body is the magic `k8s\0` followed by a `runtime.Unknown` envelope carrying the
//! object's apiVersion and kind and its encoded bytes. The bytes are transcoded to the JSON
//! object the rest of the server works with, driven by the type table
//! [`rkube_api::schema`].
//! The well-known types (Time, MicroTime, Duration, Quantity, IntOrString, raw JSON) get
//! their JSON forms; empty strings and zero times are left out, as upstream's JSON does.
//! Malformed input is an error, never a panic.

use base64::Engine;
use serde_json::{Map, Value};

use rkube_api::schema::{self, Kind};

/// The protobuf magic prefix of Kubernetes objects.
pub const MAGIC: &[u8; 4] = b"k8s\0";
/// Nesting deeper than this is refused.
const MAX_DEPTH: usize = 100;

/// A wire-format reader over a byte slice.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first().ok_or("truncated varint")?;
            self.buf = rest;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err("varint too long".into())
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err("truncated field".into());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// The next field: (tag, wire type, payload).
    fn field(&mut self) -> Result<(u32, Wire<'a>), String> {
        let key = self.varint()?;
        let tag = u32::try_from(key >> 3).map_err(|_| "bad field number")?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::Fixed64(u64::from_le_bytes(
                self.bytes(8)?.try_into().expect("8 bytes"),
            )),
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| "bad length")?;
                Wire::Bytes(self.bytes(n)?)
            }
            5 => {
                self.bytes(4)?;
                Wire::Fixed32
            }
            other => return Err(format!("unsupported wire type {other}")),
        };
        Ok((tag, wire))
    }
}

enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    /// A 32-bit value (no Kubernetes field uses one; skipped).
    Fixed32,
    Bytes(&'a [u8]),
}

/// The envelope of a protobuf body: (apiVersion, kind, object bytes).
pub fn decode_envelope(body: &[u8]) -> Result<(String, String, &[u8]), String> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or("missing the k8s protobuf prefix")?;
    let mut r = Reader { buf: rest };
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    while !r.buf.is_empty() {
        match r.field()? {
            (1, Wire::Bytes(type_meta)) => {
                let mut t = Reader { buf: type_meta };
                while !t.buf.is_empty() {
                    match t.field()? {
                        (1, Wire::Bytes(b)) => api_version = utf8(b)?,
                        (2, Wire::Bytes(b)) => kind = utf8(b)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(b)) => raw = b,
            (3, Wire::Bytes(b)) if !b.is_empty() => {
                return Err("content encodings are not supported".into())
            }
            _ => {}
        }
    }
    Ok((api_version, kind, raw))
}

fn utf8(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "a string field is not UTF-8".into())
}

/// The message name of a built-in kind, e.g. `apps/v1` `Deployment` → `api.apps.v1.Deployment`.
pub fn message_name(api_version: &str, kind: &str) -> Option<&'static str> {
    schema::for_kind(api_version, kind).map(|m| m.name)
}

/// Decodes a protobuf body into the JSON object it encodes.
pub fn decode_object(body: &[u8]) -> Result<Value, String> {
    let (api_version, kind, raw) = decode_envelope(body)?;
    let name = message_name(&api_version, &kind)
        .ok_or_else(|| format!("no protobuf message is known for {api_version} {kind}"))?;
    let mut obj = to_json(name, raw, 0)?;
    if let Value::Object(map) = &mut obj {
        map.insert("apiVersion".into(), Value::String(api_version));
        map.insert("kind".into(), Value::String(kind));
    }
    Ok(obj)
}

/// Transcodes the bytes of message `name` to JSON.
fn to_json(name: &str, bytes: &[u8], depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("the object is nested too deeply".into());
    }
    if let Some(v) = well_known(name, bytes)? {
        return Ok(v);
    }
    let msg = schema::message(name).ok_or_else(|| format!("unknown protobuf message {name}"))?;
    let mut out = Map::new();
    let mut r = Reader { buf: bytes };
    while !r.buf.is_empty() {
        let (tag, wire) = r.field()?;
        let Some(field) = msg.fields.iter().find(|f| f.tag == tag) else {
            continue;
        };
        match &field.kind {
            Kind::Map(value_kind) => {
                let Wire::Bytes(entry) = wire else {
                    return Err(format!(
                        "{}: a map entry must be length-delimited",
                        field.json
                    ));
                };
                let (key, value) = map_entry(entry, value_kind, depth)?;
                let map = out
                    .entry(field.json)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = map {
                    m.insert(key, value);
                }
            }
            kind => {
                let values = scalar_or_message(kind, wire, field.repeated, depth)?;
                if field.repeated {
                    let list = out
                        .entry(field.json)
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(l) = list {
                        l.extend(values);
                    }
                } else if let Some(v) = values.into_iter().last() {
                    if !is_empty_scalar(&v) {
                        out.insert(field.json.to_owned(), v);
                    }
                }
            }
        }
    }
    Ok(Value::Object(out))
}

fn is_empty_scalar(v: &Value) -> bool {
    matches!(v, Value::String(s) if s.is_empty()) || v.is_null()
}

/// One value (or, for a packed repeated scalar, several).
fn scalar_or_message(
    kind: &Kind,
    wire: Wire<'_>,
    repeated: bool,
    depth: usize,
) -> Result<Vec<Value>, String> {
    Ok(match (kind, wire) {
        (Kind::String, Wire::Bytes(b)) => vec![Value::String(utf8(b)?)],
        (Kind::Bytes, Wire::Bytes(b)) => vec![Value::String(
            base64::engine::general_purpose::STANDARD.encode(b),
        )],
        (Kind::Bool, Wire::Varint(v)) => vec![Value::Bool(v != 0)],
        (Kind::Int32, Wire::Varint(v)) => vec![Value::from(v as i64 as i32)],
        (Kind::Int64, Wire::Varint(v)) => vec![Value::from(v as i64)],
        (Kind::Double, Wire::Fixed64(v)) => vec![serde_json::Number::from_f64(f64::from_bits(v))
            .map(Value::Number)
            .unwrap_or(Value::Null)],
        (Kind::Message(name), Wire::Bytes(b)) => vec![to_json(name, b, depth + 1)?],
        // Packed repeated integers.
        (Kind::Int32 | Kind::Int64 | Kind::Bool, Wire::Bytes(b)) if repeated => {
            let mut r = Reader { buf: b };
            let mut values = Vec::new();
            while !r.buf.is_empty() {
                let v = r.varint()?;
                values.push(match kind {
                    Kind::Int32 => Value::from(v as i64 as i32),
                    Kind::Bool => Value::Bool(v != 0),
                    _ => Value::from(v as i64),
                });
            }
            values
        }
        _ => return Err("a field has the wrong wire type".into()),
    })
}

fn map_entry(entry: &[u8], value_kind: &Kind, depth: usize) -> Result<(String, Value), String> {
    let mut r = Reader { buf: entry };
    let (mut key, mut value) = (String::new(), None);
    while !r.buf.is_empty() {
        match r.field()? {
            (1, Wire::Bytes(b)) => key = utf8(b)?,
            (2, wire) => {
                value = scalar_or_message(value_kind, wire, false, depth)?
                    .into_iter()
                    .last()
            }
            _ => {}
        }
    }
    let empty = match value_kind {
        Kind::Message(name) => to_json(name, &[], depth + 1)?,
        _ => Value::String(String::new()),
    };
    Ok((key, value.unwrap_or(empty)))
}

/// The JSON forms of the well-known apimachinery types; `None` for ordinary messages.
fn well_known(name: &str, bytes: &[u8]) -> Result<Option<Value>, String> {
    let fields = || -> Result<Vec<(u32, Wire<'_>)>, String> {
        let mut r = Reader { buf: bytes };
        let mut out = Vec::new();
        while !r.buf.is_empty() {
            out.push(r.field()?);
        }
        Ok(out)
    };
    let value = match name {
        "apimachinery.pkg.apis.meta.v1.Time" | "apimachinery.pkg.apis.meta.v1.MicroTime" => {
            let (mut secs, mut nanos) = (0i64, 0i64);
            for (tag, wire) in fields()? {
                match (tag, wire) {
                    (1, Wire::Varint(v)) => secs = v as i64,
                    (2, Wire::Varint(v)) => nanos = i64::from(v as i64 as i32),
                    _ => {}
                }
            }
            if secs == 0 && nanos == 0 {
                Value::Null
            } else if name.ends_with("MicroTime") {
                let base = crate::meta::rfc3339(secs);
                Value::String(format!(
                    "{}.{:06}Z",
                    base.trim_end_matches('Z'),
                    nanos / 1000
                ))
            } else {
                Value::String(crate::meta::rfc3339(secs))
            }
        }
        "apimachinery.pkg.apis.meta.v1.Duration" => {
            let mut ns = 0i64;
            for (tag, wire) in fields()? {
                if let (1, Wire::Varint(v)) = (tag, wire) {
                    ns = v as i64;
                }
            }
            Value::String(go_duration(ns))
        }
        "apimachinery.pkg.api.resource.Quantity" => {
            let mut s = String::new();
            for (tag, wire) in fields()? {
                if let (1, Wire::Bytes(b)) = (tag, wire) {
                    s = utf8(b)?;
                }
            }
            Value::String(s)
        }
        "apimachinery.pkg.util.intstr.IntOrString" => {
            let (mut kind, mut int_val, mut str_val) = (0u64, 0i64, String::new());
            for (tag, wire) in fields()? {
                match (tag, wire) {
                    (1, Wire::Varint(v)) => kind = v,
                    (2, Wire::Varint(v)) => int_val = i64::from(v as i64 as i32),
                    (3, Wire::Bytes(b)) => str_val = utf8(b)?,
                    _ => {}
                }
            }
            if kind == 1 {
                Value::String(str_val)
            } else {
                Value::from(int_val)
            }
        }
        "apimachinery.pkg.runtime.RawExtension"
        | "apimachinery.pkg.apis.meta.v1.FieldsV1"
        | "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSON" => {
            let mut raw = &[][..];
            for (tag, wire) in fields()? {
                if let (1, Wire::Bytes(b)) = (tag, wire) {
                    raw = b;
                }
            }
            if raw.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(raw)
                    .map_err(|e| format!("embedded JSON is malformed: {e}"))?
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(value))
}

/// Go's `time.Duration.String()`.
fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let ns = ns.unsigned_abs();
    if ns < 1_000_000_000 {
        return match ns {
            n if n < 1_000 => format!("{sign}{n}ns"),
            n if n < 1_000_000 => format!("{sign}{}µs", trim_frac(n as f64 / 1e3)),
            n => format!("{sign}{}ms", trim_frac(n as f64 / 1e6)),
        };
    }
    let total_secs = ns / 1_000_000_000;
    let frac = ns % 1_000_000_000;
    let (h, m, s) = (total_secs / 3600, total_secs % 3600 / 60, total_secs % 60);
    let secs = if frac == 0 {
        format!("{s}")
    } else {
        trim_frac(s as f64 + frac as f64 / 1e9)
    };
    match (h, m) {
        (0, 0) => format!("{sign}{secs}s"),
        (0, m) => format!("{sign}{m}m{secs}s"),
        (h, m) => format!("{sign}{h}h{m}m{secs}s"),
    }
}

fn trim_frac(v: f64) -> String {
    let s = format!("{v:.9}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn bytes_field(tag: u32, b: &[u8], out: &mut Vec<u8>) {
        varint(u64::from(tag) << 3 | 2, out);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut type_meta = Vec::new();
        bytes_field(1, api_version.as_bytes(), &mut type_meta);
        bytes_field(2, kind.as_bytes(), &mut type_meta);
        let mut body = MAGIC.to_vec();
        bytes_field(1, &type_meta, &mut body);
        bytes_field(2, raw, &mut body);
        body
    }

    #[test]
    fn decodes_a_configmap() {
        // ConfigMap{metadata{name: "cm", namespace: "", creationTimestamp: {}}, data{"a": "b"}}
        let mut meta = Vec::new();
        bytes_field(1, b"cm", &mut meta);
        bytes_field(3, b"", &mut meta);
        bytes_field(8, b"", &mut meta);
        let mut entry = Vec::new();
        bytes_field(1, b"a", &mut entry);
        bytes_field(2, b"b", &mut entry);
        let mut raw = Vec::new();
        bytes_field(1, &meta, &mut raw);
        bytes_field(2, &entry, &mut raw);
        let obj = decode_object(&envelope("v1", "ConfigMap", &raw)).unwrap();
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "b"}})
        );
    }

    #[test]
    fn knows_the_builtin_kinds() {
        assert_eq!(
            message_name("v1", "Namespace"),
            Some("api.core.v1.Namespace")
        );
        assert_eq!(
            message_name("apps/v1", "Deployment"),
            Some("api.apps.v1.Deployment")
        );
        assert_eq!(
            message_name("rbac.authorization.k8s.io/v1", "ClusterRole"),
            Some("api.rbac.v1.ClusterRole")
        );
        assert_eq!(
            message_name("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
            Some("apiextensions_apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition")
        );
        assert_eq!(message_name("v1", "Nope"), None);
    }

    #[test]
    fn go_durations() {
        for (ns, want) in [
            (0, "0s"),
            (1_500, "1.5µs"),
            (2_000_000, "2ms"),
            (1_000_000_000, "1s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (1_500_000_000, "1.5s"),
        ] {
            assert_eq!(go_duration(ns), want);
        }
    }

    proptest::proptest! {
        /// Bodies come from the network: any input decodes or errors, never panics.
        #[test]
        fn never_panics(body in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let mut with_magic = MAGIC.to_vec();
            with_magic.extend_from_slice(&body);
            let _ = decode_object(&with_magic);
            let _ = to_json("api.core.v1.Pod", &body, 0);
        }
    }
}
