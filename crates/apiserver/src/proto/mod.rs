//! The Kubernetes protobuf encoding (`application/vnd.kubernetes.protobuf`): reading the
//! bodies kubectl's typed commands (`kubectl create namespace`, `create secret`, …) send,
//! and writing responses and watch streams for clients that ask for it ([`encode_object`],
//! [`watch_frame`]).
//!
//! A body is the magic `k8s\0` followed by a `runtime.Unknown` envelope carrying the
//! object's apiVersion and kind and its encoded bytes. The bytes are transcoded to and from
//! the JSON object the rest of the server works with, driven by the type table
//! [`rkube_api::schema`].
//! The well-known types (Time, MicroTime, Duration, Quantity, IntOrString, raw JSON, and the
//! JSON-schema unions of CRDs) get their JSON forms; empty strings and zero times are left
//! out, as upstream's JSON does. Malformed input is an error, never a panic.

use base64::Engine;
use serde_json::{Map, Value};

use rkube_api::schema::{self, Kind, Message};

mod encode;

pub use encode::{encode_object, encode_raw, watch_frame};

/// The media type of protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
/// The media type of protobuf watch streams.
pub const WATCH_MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf;stream=watch";
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
    message_for(api_version, kind).map(|m| m.name)
}

/// The `meta.k8s.io/v1` kinds every group version also carries (`Status` is `v1` `Status`
/// on the wire, whatever the endpoint).
const META_KINDS: &[&str] = &[
    "Status",
    "DeleteOptions",
    "WatchEvent",
    "APIVersions",
    "APIGroup",
    "APIGroupList",
    "APIResourceList",
];

/// The root message of a kind: a built-in kind, or one of the meta kinds ([`META_KINDS`]).
pub fn message_for(api_version: &str, kind: &str) -> Option<&'static Message> {
    schema::for_kind(api_version, kind).or_else(|| {
        if META_KINDS.contains(&kind) {
            schema::message(&format!("apimachinery.pkg.apis.meta.v1.{kind}"))
        } else {
            None
        }
    })
}

/// Whether objects and lists of this kind can be sent as protobuf.
pub fn can_encode(api_version: &str, kind: &str) -> bool {
    message_for(api_version, kind).is_some()
        && message_for(api_version, &format!("{kind}List")).is_some()
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
        // Go writes every non-pointer field on the wire; `generation` is omitted from
        // upstream's JSON when zero, and zero is what a client's new object carries.
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            if meta.get("generation") == Some(&Value::from(0)) {
                meta.remove("generation");
            }
        }
    }
    Ok(obj)
}

/// The types whose JSON form is not the plain object of their fields.
#[derive(Clone, Copy, Debug)]
enum WellKnown {
    /// `meta.v1.Time`: RFC 3339 seconds ↔ {1: seconds, 2: nanos}.
    Time,
    /// `meta.v1.MicroTime`: RFC 3339 microseconds ↔ {1: seconds, 2: nanos}.
    MicroTime,
    /// `meta.v1.Duration`: Go duration string ↔ {1: nanoseconds}.
    Duration,
    /// `resource.Quantity`: string ↔ {1: string}.
    Quantity,
    /// `intstr.IntOrString`: number or string ↔ {1: type, 2: intVal, 3: strVal}.
    IntOrString,
    /// `runtime.RawExtension`, `meta.v1.FieldsV1`, apiextensions `JSON`: any JSON ↔ {1: its bytes}.
    RawJson,
    /// `meta.v1.Verbs` and the `ExtraValue`s: a list of strings ↔ {1: repeated string}.
    StringList,
    /// apiextensions `JSONSchemaPropsOrArray`: a schema {1} or a list of schemas {2}.
    SchemaOrArray(&'static str),
    /// apiextensions `JSONSchemaPropsOrBool`: a bool {1} or a schema {1: true, 2}.
    SchemaOrBool(&'static str),
    /// apiextensions `JSONSchemaPropsOrStringArray`: a schema {1} or a list of strings {2}.
    SchemaOrStringArray(&'static str),
}

impl WellKnown {
    fn of(name: &str) -> Option<WellKnown> {
        const V1_SCHEMA: &str = "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaProps";
        const V1BETA1_SCHEMA: &str =
            "apiextensions_apiserver.pkg.apis.apiextensions.v1beta1.JsonSchemaProps";
        let schema = || {
            if name.contains(".v1beta1.") {
                V1BETA1_SCHEMA
            } else {
                V1_SCHEMA
            }
        };
        Some(match name {
            "apimachinery.pkg.apis.meta.v1.Time" => WellKnown::Time,
            "apimachinery.pkg.apis.meta.v1.MicroTime" => WellKnown::MicroTime,
            "apimachinery.pkg.apis.meta.v1.Duration" => WellKnown::Duration,
            "apimachinery.pkg.api.resource.Quantity"
            | "apimachinery.pkg.api.resource.QuantityValue" => WellKnown::Quantity,
            "apimachinery.pkg.util.intstr.IntOrString" => WellKnown::IntOrString,
            "apimachinery.pkg.runtime.RawExtension"
            | "apimachinery.pkg.apis.meta.v1.FieldsV1"
            | "apiextensions_apiserver.pkg.apis.apiextensions.v1.Json"
            | "apiextensions_apiserver.pkg.apis.apiextensions.v1beta1.Json" => WellKnown::RawJson,
            "apimachinery.pkg.apis.meta.v1.Verbs" => WellKnown::StringList,
            n if n.ends_with(".ExtraValue") => WellKnown::StringList,
            n if n.ends_with(".JsonSchemaPropsOrArray") => WellKnown::SchemaOrArray(schema()),
            n if n.ends_with(".JsonSchemaPropsOrBool") => WellKnown::SchemaOrBool(schema()),
            n if n.ends_with(".JsonSchemaPropsOrStringArray") => {
                WellKnown::SchemaOrStringArray(schema())
            }
            _ => return None,
        })
    }
}

/// Transcodes the bytes of message `name` to JSON.
fn to_json(name: &str, bytes: &[u8], depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("the object is nested too deeply".into());
    }
    if let Some(wk) = WellKnown::of(name) {
        return well_known(wk, name, bytes, depth);
    }
    let msg = schema::message(name).ok_or_else(|| format!("unknown protobuf message {name}"))?;
    let mut out = Map::new();
    let mut r = Reader { buf: bytes };
    while !r.buf.is_empty() {
        let (tag, wire) = r.field()?;
        let Some(field) = msg.fields.iter().find(|f| f.tag == tag) else {
            continue;
        };
        let json = field.json;
        match &field.kind {
            Kind::Message(inner) if field.inline => {
                let Wire::Bytes(b) = wire else {
                    return Err(format!(
                        "{json}: an embedded message must be length-delimited"
                    ));
                };
                if let Value::Object(fields) = to_json(inner, b, depth + 1)? {
                    out.extend(fields);
                }
            }
            Kind::Map(value_kind) => {
                let Wire::Bytes(entry) = wire else {
                    return Err(format!("{json}: a map entry must be length-delimited"));
                };
                let (key, value) = map_entry(entry, value_kind, depth)?;
                let map = out.entry(json).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = map {
                    m.insert(key, value);
                }
            }
            kind => {
                let values = scalar_or_message(kind, wire, field.repeated, depth)?;
                if field.repeated {
                    let list = out.entry(json).or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(l) = list {
                        l.extend(values);
                    }
                } else if let Some(v) = values.into_iter().last() {
                    if !is_empty_scalar(&v) {
                        out.insert(json.to_owned(), v);
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

/// The JSON forms of the well-known types.
fn well_known(wk: WellKnown, name: &str, bytes: &[u8], depth: usize) -> Result<Value, String> {
    let mut fields = Vec::new();
    let mut r = Reader { buf: bytes };
    while !r.buf.is_empty() {
        fields.push(r.field()?);
    }
    let value = match wk {
        WellKnown::Time | WellKnown::MicroTime => {
            let (mut secs, mut nanos) = (0i64, 0i64);
            for (tag, wire) in fields {
                match (tag, wire) {
                    (1, Wire::Varint(v)) => secs = v as i64,
                    (2, Wire::Varint(v)) => nanos = i64::from(v as i64 as i32),
                    _ => {}
                }
            }
            if secs == 0 && nanos == 0 {
                Value::Null
            } else if matches!(wk, WellKnown::MicroTime) {
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
        WellKnown::Duration => {
            let mut ns = 0i64;
            for (tag, wire) in fields {
                if let (1, Wire::Varint(v)) = (tag, wire) {
                    ns = v as i64;
                }
            }
            Value::String(go_duration(ns))
        }
        WellKnown::Quantity => {
            let mut s = String::new();
            for (tag, wire) in fields {
                if let (1, Wire::Bytes(b)) = (tag, wire) {
                    s = utf8(b)?;
                }
            }
            Value::String(s)
        }
        WellKnown::IntOrString => {
            let (mut kind, mut int_val, mut str_val) = (0u64, 0i64, String::new());
            for (tag, wire) in fields {
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
        WellKnown::RawJson => {
            let mut raw = &[][..];
            for (tag, wire) in fields {
                if let (1, Wire::Bytes(b)) = (tag, wire) {
                    raw = b;
                }
            }
            if raw.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(raw)
                    .map_err(|e| format!("{name}: embedded JSON is malformed: {e}"))?
            }
        }
        WellKnown::StringList => {
            let mut items = Vec::new();
            for (tag, wire) in fields {
                if let (1, Wire::Bytes(b)) = (tag, wire) {
                    items.push(Value::String(utf8(b)?));
                }
            }
            Value::Array(items)
        }
        WellKnown::SchemaOrArray(schema) => {
            let (mut one, mut many) = (None, Vec::new());
            for (tag, wire) in fields {
                match (tag, wire) {
                    (1, Wire::Bytes(b)) => one = Some(to_json(schema, b, depth + 1)?),
                    (2, Wire::Bytes(b)) => many.push(to_json(schema, b, depth + 1)?),
                    _ => {}
                }
            }
            match one {
                Some(schema) if many.is_empty() => schema,
                _ => Value::Array(many),
            }
        }
        WellKnown::SchemaOrBool(schema) => {
            let (mut allows, mut one) = (false, None);
            for (tag, wire) in fields {
                match (tag, wire) {
                    (1, Wire::Varint(v)) => allows = v != 0,
                    (2, Wire::Bytes(b)) => one = Some(to_json(schema, b, depth + 1)?),
                    _ => {}
                }
            }
            one.unwrap_or(Value::Bool(allows))
        }
        WellKnown::SchemaOrStringArray(schema) => {
            let (mut one, mut strings) = (None, Vec::new());
            for (tag, wire) in fields {
                match (tag, wire) {
                    (1, Wire::Bytes(b)) => one = Some(to_json(schema, b, depth + 1)?),
                    (2, Wire::Bytes(b)) => strings.push(Value::String(utf8(b)?)),
                    _ => {}
                }
            }
            match one {
                Some(schema) if strings.is_empty() => schema,
                _ => Value::Array(strings),
            }
        }
    };
    Ok(value)
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

    /// JSON → protobuf → JSON gives the object back.
    fn round_trip(obj: Value) {
        let body = encode_object(&obj).unwrap();
        assert!(body.starts_with(MAGIC));
        assert_eq!(decode_object(&body).unwrap(), obj);
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "web", "namespace": "default", "uid": "0b6c3c9e-0000-4000-8000-000000000001",
                "resourceVersion": "42", "generation": 3,
                "creationTimestamp": "2024-05-06T07:08:09Z",
                "labels": {"app": "web", "tier": "front"},
                "annotations": {"a": "b"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u", "controller": true}],
                "finalizers": ["x/y"],
                "managedFields": [{"manager": "kubectl", "operation": "Update", "time": "2024-05-06T07:08:09Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {}}}}]
            },
            "spec": {
                "containers": [{
                    "name": "c", "image": "nginx:1.27", "command": ["nginx", "-g"],
                    "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}, {"containerPort": 443, "protocol": "TCP"}],
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}, {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k", "optional": true}}}],
                    "volumeMounts": [{"name": "conf", "mountPath": "/etc/conf", "readOnly": true}],
                    "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "250m"}},
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10},
                    "readinessProbe": {"tcpSocket": {"port": "http"}},
                    "securityContext": {"runAsUser": -1, "privileged": false}
                }],
                "securityContext": {"supplementalGroups": [1000, 2000]},
                "volumes": [
                    {"name": "conf", "configMap": {"name": "cm", "defaultMode": 420, "items": [{"key": "k", "path": "p"}]}},
                    {"name": "api", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                    {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}
                ],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "nodeSelector": {"disk": "ssd"},
                "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5}]
            },
            "status": {
                "phase": "Running", "podIP": "10.0.0.5",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2024-05-06T07:08:10Z"}]
            }
        })
    }

    #[test]
    fn round_trips_a_pod() {
        round_trip(pod());
    }

    #[test]
    fn round_trips_workloads_services_secrets_and_configmaps() {
        round_trip(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "ns", "labels": {"app": "d"}},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "d"}, "matchExpressions": [{"key": "k", "operator": "In", "values": ["a", "b"]}]},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
                "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600
            },
            "status": {"replicas": 2, "conditions": [{"type": "Available", "status": "True", "lastUpdateTime": "2024-01-01T00:00:00Z"}]}
        }));
        round_trip(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "s", "namespace": "ns"},
            "spec": {
                "type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                "ports": [{"name": "dns", "port": 53, "targetPort": 53, "protocol": "UDP"}, {"name": "web", "port": 80, "targetPort": "http"}],
                "selector": {"k8s-app": "dns"}, "sessionAffinity": "None", "ipFamilies": ["IPv4"]
            }
        }));
        round_trip(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "ns"},
            "type": "Opaque",
            "data": {"password": "AAEC/w==", "empty": ""},
            "immutable": true
        }));
        round_trip(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm", "namespace": "ns"},
            "data": {"a": "1", "b": "two\nlines"},
            "binaryData": {"bin": "3q2+7w=="}
        }));
        round_trip(json!({
            "apiVersion": "v1", "kind": "ConfigMapList",
            "metadata": {"resourceVersion": "7", "continue": "abc", "remainingItemCount": 3},
            "items": [{"metadata": {"name": "a"}, "data": {"k": "v"}}, {"metadata": {"name": "b"}}]
        }));
        round_trip(json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "c"},
            "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}], "restartPolicy": "Never"}}}}},
            "status": {"lastScheduleTime": "2024-01-01T00:01:00Z"}
        }));
    }

    #[test]
    fn round_trips_the_json_schema_unions_of_crds() {
        round_trip(json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "crontabs.example.com"},
            "spec": {
                "group": "example.com", "scope": "Namespaced",
                "names": {"plural": "crontabs", "kind": "CronTab"},
                "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true,
                    "properties": {
                        "spec": {"type": "object", "properties": {
                            "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                            "pairs": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]},
                            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                            "open": {"type": "object", "additionalProperties": false},
                            "size": {"type": "integer", "default": 3, "minimum": 1.5, "enum": [1, 2, 3]},
                            "port": {"x-kubernetes-int-or-string": true, "$ref": "#/x"}
                        }, "required": ["tags"], "dependencies": {"a": ["b"], "c": {"type": "object"}}}
                    }
                }}}]
            }
        }));
    }

    #[test]
    fn the_envelope_is_upstreams() {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "b"}});
        let body = encode_object(&obj).unwrap();
        let mut want = MAGIC.to_vec();
        // typeMeta{apiVersion: "v1", kind: "ConfigMap"}
        want.extend_from_slice(b"\x0a\x0f\x0a\x02v1\x12\x09ConfigMap");
        // raw: ConfigMap{metadata{name: "cm"}, data{"a": "b"}}
        want.extend_from_slice(b"\x12\x0e\x0a\x04\x0a\x02cm\x12\x06\x0a\x01a\x12\x01b");
        // contentEncoding and contentType, empty
        want.extend_from_slice(b"\x1a\x00\x22\x00");
        assert_eq!(body, want);
        assert_eq!(
            encode_raw(&obj).unwrap(),
            b"\x0a\x04\x0a\x02cm\x12\x06\x0a\x01a\x12\x01b"
        );
    }

    #[test]
    fn writes_fields_in_number_order_and_map_keys_sorted() {
        // AdmissionRequest declares tag 13 before tag 5; map keys come out sorted.
        let raw = encode_raw(&json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"labels": {"z": "1", "a": "2"}, "name": "n"}
        }))
        .unwrap();
        let meta = &raw[2..];
        assert_eq!(meta[0], 0x0a, "name (1) first");
        let a = meta.windows(1).position(|w| w == b"a").unwrap();
        let z = meta.windows(1).position(|w| w == b"z").unwrap();
        assert!(a < z);
    }

    #[test]
    fn unknown_fields_are_skipped_and_wrong_types_refused() {
        let with_extra = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "bogus": 1}, "nope": [1]});
        assert_eq!(
            decode_object(&encode_object(&with_extra).unwrap()).unwrap(),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
        );
        let wrong = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": 5}});
        assert!(encode_object(&wrong).unwrap_err().contains("name"));
        let custom =
            json!({"apiVersion": "example.com/v1", "kind": "CronTab", "metadata": {"name": "x"}});
        assert!(encode_object(&custom).is_err());
    }

    #[test]
    fn status_is_a_meta_v1_status() {
        let status = json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure", "message": "configmaps \"x\" not found", "reason": "NotFound", "details": {"name": "x", "kind": "configmaps"}, "code": 404});
        let body = encode_object(&status).unwrap();
        let (api_version, kind, _) = decode_envelope(&body).unwrap();
        assert_eq!((api_version.as_str(), kind.as_str()), ("v1", "Status"));
        let mut back = decode_object(&body).unwrap();
        back["metadata"] = json!({});
        assert_eq!(back, status);
    }

    #[test]
    fn watch_frames_are_length_prefixed_watch_events() {
        let object = encode_object(
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
        )
        .unwrap();
        let frame = watch_frame("ADDED", &object);
        let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4);
        // WatchEvent{1: type, 2: RawExtension{1: the object as a full body, prefix and envelope}}
        let mut r = Reader { buf: &frame[4..] };
        let (mut event_type, mut raw) = (None, None);
        while !r.buf.is_empty() {
            match r.field().unwrap() {
                (1, Wire::Bytes(t)) => event_type = Some(t.to_vec()),
                (2, Wire::Bytes(b)) => {
                    let mut inner = Reader { buf: b };
                    if let (1, Wire::Bytes(obj)) = inner.field().unwrap() {
                        raw = Some(obj.to_vec());
                    }
                }
                _ => panic!("unexpected field"),
            }
        }
        assert_eq!(event_type.unwrap(), b"ADDED");
        assert_eq!(raw.unwrap(), object);
    }

    #[test]
    fn go_durations_parse_back() {
        for ns in [
            0,
            1,
            1_500,
            2_000_000,
            1_000_000_000,
            90_000_000_000,
            3_600_000_000_000,
            1_500_000_000,
            -4_000_000_000,
        ] {
            assert_eq!(
                encode::parse_go_duration(&go_duration(ns)),
                Some(ns),
                "{ns}"
            );
        }
        assert_eq!(encode::parse_go_duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(encode::parse_go_duration("2x"), None);
        assert_eq!(encode::parse_go_duration(""), None);
    }

    #[test]
    fn times_keep_their_fraction_when_micro() {
        let raw = encode_raw(&json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"}, "spec": {"renewTime": "2024-05-06T07:08:09.123456Z", "leaseDurationSeconds": 15}})).unwrap();
        let back = to_json("api.coordination.v1.Lease", &raw, 0).unwrap();
        assert_eq!(back["spec"]["renewTime"], "2024-05-06T07:08:09.123456Z");
    }

    /// Checks against an independent implementation: k8s-pb's prost types.
    mod k8s_pb_agrees {
        use k8s_pb::api::core::v1 as core;
        use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
        use prost::Message as _;
        use serde_json::json;

        use super::super::*;
        use super::pod;

        #[test]
        fn prost_reads_what_we_write() {
            let raw = encode_raw(&pod()).unwrap();
            let p = core::Pod::decode(raw.as_slice()).unwrap();
            let m = p.metadata.as_ref().unwrap();
            assert_eq!(m.name.as_deref(), Some("web"));
            assert_eq!(m.generation, Some(3));
            assert_eq!(
                m.creation_timestamp.as_ref().unwrap().seconds,
                Some(1_714_979_289)
            );
            assert_eq!(m.labels.get("tier").map(String::as_str), Some("front"));
            assert_eq!(m.owner_references[0].controller, Some(true));
            let fields = m.managed_fields[0].fields_v1.as_ref().unwrap();
            let fields: serde_json::Value =
                serde_json::from_slice(fields.raw.as_ref().unwrap()).unwrap();
            assert_eq!(fields, json!({"f:metadata": {"f:labels": {}}}));
            let spec = p.spec.as_ref().unwrap();
            let c = &spec.containers[0];
            assert_eq!(c.image.as_deref(), Some("nginx:1.27"));
            assert_eq!(c.ports[1].container_port, Some(443));
            assert_eq!(
                c.env[1]
                    .value_from
                    .as_ref()
                    .unwrap()
                    .field_ref
                    .as_ref()
                    .unwrap()
                    .field_path
                    .as_deref(),
                Some("metadata.name")
            );
            let limits = &c.resources.as_ref().unwrap().limits;
            assert_eq!(limits["memory"].string.as_deref(), Some("128Mi"));
            let live = c.liveness_probe.as_ref().unwrap().handler.as_ref().unwrap();
            let port = live.http_get.as_ref().unwrap().port.as_ref().unwrap();
            assert_eq!((port.r#type, port.int_val), (Some(0), Some(8080)));
            let ready = c
                .readiness_probe
                .as_ref()
                .unwrap()
                .handler
                .as_ref()
                .unwrap();
            let port = ready.tcp_socket.as_ref().unwrap().port.as_ref().unwrap();
            assert_eq!(
                (port.r#type, port.str_val.as_deref()),
                (Some(1), Some("http"))
            );
            assert_eq!(c.security_context.as_ref().unwrap().run_as_user, Some(-1));
            let cm_ref = c.env[2]
                .value_from
                .as_ref()
                .unwrap()
                .config_map_key_ref
                .as_ref()
                .unwrap();
            assert_eq!(
                cm_ref
                    .local_object_reference
                    .as_ref()
                    .unwrap()
                    .name
                    .as_deref(),
                Some("cm")
            );
            let volume = spec.volumes[0]
                .volume_source
                .as_ref()
                .unwrap()
                .config_map
                .as_ref()
                .unwrap();
            assert_eq!(volume.default_mode, Some(420));
            assert_eq!(
                volume
                    .local_object_reference
                    .as_ref()
                    .unwrap()
                    .name
                    .as_deref(),
                Some("cm")
            );
            assert!(spec.volumes[1]
                .volume_source
                .as_ref()
                .unwrap()
                .downward_api
                .is_some());
            assert_eq!(
                spec.security_context.as_ref().unwrap().supplemental_groups,
                vec![1000, 2000]
            );
            assert_eq!(spec.tolerations[0].toleration_seconds, Some(5));
            assert_eq!(
                p.status.as_ref().unwrap().conditions[0].status.as_deref(),
                Some("True")
            );

            let secret = encode_raw(&json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "AAEC/w=="}})).unwrap();
            let secret = core::Secret::decode(secret.as_slice()).unwrap();
            assert_eq!(secret.data["k"], vec![0, 1, 2, 255]);
        }

        #[test]
        fn we_read_what_prost_writes() {
            let cm = core::ConfigMap {
                metadata: Some(meta::ObjectMeta {
                    name: Some("cm".into()),
                    namespace: Some("ns".into()),
                    creation_timestamp: Some(meta::Time {
                        seconds: Some(1_700_000_000),
                        nanos: Some(0),
                    }),
                    labels: [("a".to_owned(), "b".to_owned())].into(),
                    ..Default::default()
                }),
                data: [("k".to_owned(), "v".to_owned())].into(),
                binary_data: [("b".to_owned(), vec![1, 2, 3])].into(),
                immutable: Some(false),
            };
            let mut body = MAGIC.to_vec();
            k8s_pb::apimachinery::pkg::runtime::Unknown {
                type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
                    api_version: Some("v1".into()),
                    kind: Some("ConfigMap".into()),
                }),
                raw: Some(cm.encode_to_vec()),
                content_encoding: Some(String::new()),
                content_type: Some(String::new()),
            }
            .encode(&mut body)
            .unwrap();
            assert_eq!(
                decode_object(&body).unwrap(),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "ns", "creationTimestamp": "2023-11-14T22:13:20Z", "labels": {"a": "b"}}, "data": {"k": "v"}, "binaryData": {"b": "AQID"}, "immutable": false})
            );
            // And the bytes we write for it are prost's (same field order, same map layout).
            let ours = decode_object(&body).unwrap();
            assert_eq!(encode_raw(&ours).unwrap(), cm.encode_to_vec());

            let event = meta::WatchEvent {
                r#type: Some("DELETED".into()),
                object: Some(k8s_pb::apimachinery::pkg::runtime::RawExtension {
                    raw: Some(body.clone()),
                }),
            };
            let mut frame = (event.encoded_len() as u32).to_be_bytes().to_vec();
            event.encode(&mut frame).unwrap();
            assert_eq!(watch_frame("DELETED", &body), frame);
        }
    }

    /// Arbitrary JSON whose keys are often real field names, so values of every type reach
    /// the typed fields.
    fn arbitrary_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        const KEYS: &[&str] = &[
            "metadata",
            "spec",
            "status",
            "name",
            "labels",
            "creationTimestamp",
            "containers",
            "ports",
            "containerPort",
            "resources",
            "limits",
            "livenessProbe",
            "httpGet",
            "port",
            "data",
            "binaryData",
            "env",
            "value",
            "replicas",
            "template",
            "selector",
            "matchLabels",
            "managedFields",
            "fieldsV1",
            "supplementalGroups",
            "items",
            "x",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[a-zA-Z0-9+/=:.-]{0,12}".prop_map(Value::String),
            Just(json!("2024-01-01T00:00:00Z")),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..6).prop_map(
                    |kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                ),
            ]
        })
    }

    proptest::proptest! {
        /// Stored objects are only JSON: any value encodes or errors, never panics.
        #[test]
        fn encode_never_panics(
            body in arbitrary_json(),
            kind in proptest::sample::select(&[("v1", "Pod"), ("v1", "ConfigMap"), ("apps/v1", "Deployment"), ("v1", "Secret"), ("v1", "Status"), ("v1", "Nope")][..]),
        ) {
            let mut obj = body;
            if let Value::Object(m) = &mut obj {
                m.insert("apiVersion".into(), json!(kind.0));
                m.insert("kind".into(), json!(kind.1));
            }
            if let Ok(bytes) = encode_object(&obj) {
                // What we write, we read.
                decode_object(&bytes).unwrap();
            }
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
