//! The stored JSON form of objects and the cheap splice that adds `resourceVersion`.
//!
//! Objects are stored without `metadata.resourceVersion` (the store revision is the
//! resource version). We write the stored form with `metadata` as the first key, so that
//! serving an object is a byte splice — `{"metadata":{"resourceVersion":"N",` + the rest
//! — instead of a parse and re-serialisation. Stored values in any other shape (written
//! by another tool) still work through a slower full parse.

use serde_json::{Map, Value};

const HEAD: &[u8] = b"{\"metadata\":{";

/// Serialises an object for the store: `metadata` first, without `resourceVersion`.
pub fn encode_for_store(obj: &Value) -> Vec<u8> {
    let map = obj.as_object().expect("objects are JSON objects");
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"{\"metadata\":{");
    let mut first = true;
    for (k, v) in map
        .get("metadata")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if k == "resourceVersion" {
            continue;
        }
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, k).expect("strings serialise");
        out.push(b':');
        serde_json::to_writer(&mut out, v).expect("JSON values serialise");
    }
    out.push(b'}');
    for (k, v) in map {
        if k == "metadata" {
            continue;
        }
        out.push(b',');
        serde_json::to_writer(&mut out, k).expect("strings serialise");
        out.push(b':');
        serde_json::to_writer(&mut out, v).expect("JSON values serialise");
    }
    out.push(b'}');
    out
}

/// Appends the served form of a stored object (with `resourceVersion` = `revision`).
pub fn write_served(out: &mut Vec<u8>, stored: &[u8], revision: i64) {
    if let Some(rest) = stored.strip_prefix(HEAD) {
        out.extend_from_slice(HEAD);
        out.extend_from_slice(b"\"resourceVersion\":\"");
        out.extend_from_slice(revision.to_string().as_bytes());
        out.push(b'"');
        if !rest.starts_with(b"}") {
            out.push(b',');
        }
        out.extend_from_slice(rest);
        return;
    }
    match serde_json::from_slice::<Value>(stored) {
        Ok(mut obj) if obj.is_object() => {
            crate::meta::set_resource_version(&mut obj, revision);
            serde_json::to_writer(out, &obj).expect("JSON values serialise");
        }
        _ => out.extend_from_slice(stored),
    }
}

/// The served form of a stored object as a JSON value.
pub fn decode_served(stored: &[u8], revision: i64) -> Result<Value, serde_json::Error> {
    let mut obj: Value = serde_json::from_slice(stored)?;
    if !obj.is_object() {
        obj = Value::Object(Map::new());
    }
    crate::meta::set_resource_version(&mut obj, revision);
    Ok(obj)
}

/// The request header with which a client asks list and watch responses to leave out
/// `metadata.managedFields`. rkube's own components send it (their caches drop the field
/// anyway, as upstream's informer transform does), so the field is neither sent to nor
/// decoded by them: decoding it was most of the cost of every watched object. Clients
/// that do not send it get upstream's responses unchanged.
pub const OMIT_MANAGED_FIELDS: &str = "x-rkube-omit-managed-fields";

/// A served object without `metadata.managedFields`; `None` when it has none (or is
/// not a JSON object with an object `metadata`), so the caller keeps what it has. The
/// rest of the object is copied as raw bytes; only `metadata` is parsed.
pub fn without_managed_fields(served: &[u8]) -> Option<Vec<u8>> {
    use serde::Deserialize;
    use serde_json::value::RawValue;
    use std::collections::BTreeMap;
    const KEY: &[u8] = b"{\"metadata\":";
    let raw: &RawValue = match served.strip_prefix(KEY) {
        // Our served form: `metadata` is the first key, so only it is read.
        Some(rest) => {
            <&RawValue>::deserialize(&mut serde_json::Deserializer::from_slice(rest)).ok()?
        }
        None => {
            #[derive(serde::Deserialize)]
            struct Top<'a> {
                #[serde(borrow)]
                metadata: Option<&'a RawValue>,
            }
            serde_json::from_slice::<Top>(served).ok()?.metadata?
        }
    };
    let start = (raw.get().as_ptr() as usize).checked_sub(served.as_ptr() as usize)?;
    let end = start + raw.get().len();
    if end > served.len() {
        return None;
    }
    if let Some(cut) = managed_fields_cut(raw.get()) {
        // Cut out of the bytes, the rest in its own order: nothing is re-encoded.
        let cut = cut?;
        let mut out = Vec::with_capacity(served.len() - cut.len());
        out.extend_from_slice(&served[..start + cut.start]);
        out.extend_from_slice(&served[start + cut.end..]);
        return Some(out);
    }
    // A metadata key with escapes: parsed and encoded again.
    let mut metadata: BTreeMap<String, &RawValue> = serde_json::from_str(raw.get()).ok()?;
    metadata.remove("managedFields")?;
    let mut out = Vec::with_capacity(served.len());
    out.extend_from_slice(&served[..start]);
    serde_json::to_writer(&mut out, &metadata).ok()?;
    out.extend_from_slice(&served[end..]);
    Some(out)
}

/// The bytes of `metadata` (a JSON object) to cut to drop its `managedFields` entry
/// with one separating comma: `Some(None)` when it has none, `None` when a key has
/// escapes (so it cannot be read in place) or it does not parse.
fn managed_fields_cut(metadata: &str) -> Option<Option<std::ops::Range<usize>>> {
    use serde::de::{Deserializer, MapAccess, Visitor};
    use serde_json::value::RawValue;

    struct Entries;
    impl<'de> Visitor<'de> for Entries {
        type Value = Vec<(&'de str, &'de RawValue)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut entries = Vec::new();
            while let Some(key) = map.next_key::<&'de str>()? {
                entries.push((key, map.next_value::<&'de RawValue>()?));
            }
            Ok(entries)
        }
    }
    let entries = serde_json::Deserializer::from_str(metadata)
        .deserialize_map(Entries)
        .ok()?;
    let base = metadata.as_ptr() as usize;
    // A key's opening quote, and the end of a value, as offsets into `metadata`.
    let key_at = |k: &str| (k.as_ptr() as usize - base).checked_sub(1);
    let value_end = |v: &RawValue| v.get().as_ptr() as usize - base + v.get().len();
    let Some(i) = entries.iter().position(|(k, _)| *k == "managedFields") else {
        return Some(None);
    };
    let cut = if i > 0 {
        // `,"managedFields":…` from the end of the entry before it.
        value_end(entries[i - 1].1)..value_end(entries[i].1)
    } else if let Some(next) = entries.get(1) {
        // `"managedFields":…,` up to the next key.
        key_at(entries[0].0)?..key_at(next.0)?
    } else {
        key_at(entries[0].0)?..value_end(entries[0].1)
    };
    Some(Some(cut))
}

/// What binding a stored pod to a node found ([`bind_stored_pod`]).
#[derive(Debug, PartialEq)]
pub enum PodBinding {
    /// The stored form with `spec.nodeName` set and a `PodScheduled` condition.
    Bound(Vec<u8>),
    /// The pod has a deletion timestamp.
    Deleting,
    /// The pod already names a node.
    Assigned(String),
}

/// Binds a decoded pod to `node` as upstream's binding does: refused when it is being
/// deleted or already names a node; else `spec.nodeName` is set and, when `status` is an
/// object, `PodScheduled=True` replaces any earlier one. The general path, for stored
/// forms [`bind_stored_pod`] does not take.
pub fn bind_decoded_pod(mut pod: Value, node: &str, now: &str) -> PodBinding {
    if pod["metadata"]["deletionTimestamp"].is_string() {
        return PodBinding::Deleting;
    }
    if let Some(assigned) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        return PodBinding::Assigned(assigned.to_owned());
    }
    pod["spec"]["nodeName"] = Value::String(node.to_owned());
    if let Some(status) = pod.get_mut("status").and_then(Value::as_object_mut) {
        set_pod_scheduled(status, now);
    }
    PodBinding::Bound(encode_for_store(&pod))
}

/// A bound pod's status: `PodScheduled=True` replaces any earlier PodScheduled condition.
fn set_pod_scheduled(status: &mut Map<String, Value>, now: &str) {
    if let Value::Array(conditions) = status
        .entry("conditions")
        .or_insert_with(|| Value::Array(Vec::new()))
    {
        conditions.retain(|c| c["type"] != "PodScheduled");
        conditions.push(serde_json::json!({"type": "PodScheduled", "status": "True",
            "lastProbeTime": null, "lastTransitionTime": now}));
    }
}

/// Binds a stored pod (our stored form: `metadata` first, no `resourceVersion`) to
/// `node` as upstream's binding does (`spec.nodeName`, and `PodScheduled=True`
/// replacing any earlier one when `status` is an object), without decoding the parts a
/// binding leaves alone: `metadata`, the rest of `spec` and every other field are copied
/// as raw JSON. `None` for anything not in our stored form; the caller then takes the
/// general path. Binding is one of the three writes of every scheduled pod, and a full
/// decode and re-encode of the pod was most of its cost.
pub fn bind_stored_pod(stored: &[u8], node: &str, now: &str) -> Option<PodBinding> {
    use serde_json::value::{to_raw_value, RawValue};
    use std::collections::BTreeMap;
    if !stored.starts_with(HEAD) {
        return None;
    }
    let mut top: BTreeMap<String, &RawValue> = serde_json::from_slice(stored).ok()?;
    let metadata = *top.get("metadata")?;
    #[derive(serde::Deserialize)]
    struct Meta {
        #[serde(rename = "deletionTimestamp", default)]
        deletion: Option<Value>,
    }
    let meta: Meta = serde_json::from_str(metadata.get()).ok()?;
    if meta.deletion.as_ref().is_some_and(Value::is_string) {
        return Some(PodBinding::Deleting);
    }
    let mut spec: BTreeMap<String, &RawValue> = match top.get("spec") {
        Some(raw) => serde_json::from_str(raw.get()).ok()?,
        None => BTreeMap::new(),
    };
    if let Some(raw) = spec.get("nodeName") {
        if let Ok(Value::String(assigned)) = serde_json::from_str::<Value>(raw.get()) {
            if !assigned.is_empty() {
                return Some(PodBinding::Assigned(assigned));
            }
        }
    }
    let node_name = to_raw_value(node).ok()?;
    spec.insert("nodeName".into(), &node_name);
    let spec = to_raw_value(&spec).ok()?;
    top.insert("spec".into(), &spec);
    let status = match top
        .get("status")
        .map(|raw| serde_json::from_str::<Value>(raw.get()))
    {
        Some(Ok(Value::Object(mut status))) => {
            set_pod_scheduled(&mut status, now);
            Some(to_raw_value(&status).ok()?)
        }
        Some(Err(_)) => return None,
        _ => None,
    };
    if let Some(status) = &status {
        top.insert("status".into(), status);
    }
    let mut out = Vec::with_capacity(stored.len() + 160);
    out.extend_from_slice(b"{\"metadata\":");
    out.extend_from_slice(metadata.get().as_bytes());
    for (k, v) in &top {
        if k == "metadata" {
            continue;
        }
        out.push(b',');
        serde_json::to_writer(&mut out, k).ok()?;
        out.push(b':');
        out.extend_from_slice(v.get().as_bytes());
    }
    out.push(b'}');
    Some(PodBinding::Bound(out))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn managed_fields_are_cut_and_nothing_else_changes() {
        let with = json!({"metadata": {"name": "p", "labels": {"a": "b"},
            "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {"f:x": {}}}}],
            "uid": "u"}, "spec": {"metadata": {"managedFields": []}}, "status": {}});
        let mut expected = with.clone();
        expected["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        let mut served = Vec::new();
        write_served(&mut served, &encode_for_store(&with), 7);
        let cut = without_managed_fields(&served).expect("has managedFields");
        let mut want = expected.clone();
        want["metadata"]["resourceVersion"] = json!("7");
        assert_eq!(serde_json::from_slice::<Value>(&cut).unwrap(), want);
        // The same for an object in another key order (the slower path).
        let other =
            serde_json::to_vec(&json!({"kind": "Pod", "metadata": with["metadata"].clone()}))
                .unwrap();
        let cut = without_managed_fields(&other).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&cut).unwrap(),
            json!({"kind": "Pod", "metadata": expected["metadata"].clone()})
        );
        // Nothing to cut, or not an object with metadata: the caller keeps its bytes.
        assert_eq!(
            without_managed_fields(&serde_json::to_vec(&expected).unwrap()),
            None
        );
        for bad in [
            &b"[1]"[..],
            b"{\"metadata\":3}",
            b"{\"metadata\":{\"managedFields\":",
            b"",
            b"{",
        ] {
            assert_eq!(without_managed_fields(bad), None);
        }
    }

    #[test]
    fn managed_fields_are_cut_in_place_wherever_they_stand() {
        let cases = [
            (
                r#"{"metadata":{"a":1,"managedFields":[{"m":"x"}],"b":{"c":2}},"spec":{}}"#,
                r#"{"metadata":{"a":1,"b":{"c":2}},"spec":{}}"#,
            ),
            (
                r#"{"metadata":{"managedFields":[],"z":"1","a":"2"}}"#,
                r#"{"metadata":{"z":"1","a":"2"}}"#,
            ),
            (
                r#"{"metadata":{"z":"1","managedFields":{}}}"#,
                r#"{"metadata":{"z":"1"}}"#,
            ),
            (r#"{"metadata":{"managedFields":[]}}"#, r#"{"metadata":{}}"#),
            (
                r#"{"metadata": { "a" : 1 , "managedFields" : [ ] , "b" : 2 } }"#,
                r#"{"metadata": { "a" : 1 , "b" : 2 } }"#,
            ),
            // A key with an escape: parsed and encoded again (keys sorted).
            (
                r#"{"metadata":{"\u0061":1,"managedFields":[],"0":2}}"#,
                r#"{"metadata":{"0":2,"a":1}}"#,
            ),
        ];
        for (with, want) in cases {
            let cut = without_managed_fields(with.as_bytes()).expect(with);
            assert_eq!(std::str::from_utf8(&cut).unwrap(), want, "{with}");
        }
    }

    #[test]
    fn splice_matches_a_full_parse() {
        for obj in [
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "resourceVersion": "3"}, "data": {"k": "v"}}),
            json!({"kind": "X", "metadata": {}}),
            json!({"kind": "X"}),
        ] {
            let stored = encode_for_store(&obj);
            assert!(!String::from_utf8_lossy(&stored).contains("\"3\""));
            let mut served = Vec::new();
            write_served(&mut served, &stored, 42);
            let served: Value = serde_json::from_slice(&served).unwrap();
            assert_eq!(served, decode_served(&stored, 42).unwrap());
            assert_eq!(served["metadata"]["resourceVersion"], "42");
            assert_eq!(served["kind"], obj["kind"]);
        }
    }

    #[test]
    fn foreign_layouts_still_work() {
        let stored = br#"{"kind":"X","metadata":{"name":"a"}}"#;
        let mut served = Vec::new();
        write_served(&mut served, stored, 7);
        let v: Value = serde_json::from_slice(&served).unwrap();
        assert_eq!(v["metadata"]["resourceVersion"], "7");
        assert_eq!(v["metadata"]["name"], "a");
    }

    #[test]
    fn binding_a_stored_pod_edits_only_node_name_and_the_condition() {
        let now = "2026-11-28T09:00:00Z";
        let pods = [
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "a", "namespace": "d", "uid": "u", "labels": {"x\"y": "é"},
                    "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {}}}]},
                "spec": {"containers": [{"name": "c", "image": "i"}], "schedulerName": "s"},
                "status": {"phase": "Pending", "qosClass": "BestEffort",
                    "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"},
                                   {"type": "Other", "status": "True"}]}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"},
                "spec": {"containers": [], "nodeName": ""}, "status": {}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "c"}, "spec": {"containers": []}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "d"}, "status": {"conditions": null}}),
        ];
        for pod in &pods {
            let stored = encode_for_store(pod);
            let Some(PodBinding::Bound(bound)) = bind_stored_pod(&stored, "node-1", now) else {
                panic!("not bound: {pod}");
            };
            assert!(bound.starts_with(HEAD), "stays in the stored form");
            assert_eq!(
                PodBinding::Bound(bound),
                bind_decoded_pod(pod.clone(), "node-1", now),
                "same bytes as the general path: {pod}"
            );
        }
        let assigned =
            encode_for_store(&json!({"metadata": {"name": "e"}, "spec": {"nodeName": "n9"}}));
        assert_eq!(
            bind_stored_pod(&assigned, "node-1", now),
            Some(PodBinding::Assigned("n9".into()))
        );
        assert_eq!(
            bind_decoded_pod(serde_json::from_slice(&assigned).unwrap(), "node-1", now),
            PodBinding::Assigned("n9".into())
        );
        let deleting = encode_for_store(
            &json!({"metadata": {"name": "f", "deletionTimestamp": now}, "spec": {}}),
        );
        assert_eq!(
            bind_stored_pod(&deleting, "node-1", now),
            Some(PodBinding::Deleting)
        );
        assert_eq!(
            bind_decoded_pod(serde_json::from_slice(&deleting).unwrap(), "node-1", now),
            PodBinding::Deleting
        );
        // Not our stored form, or not JSON: the caller takes the general path.
        assert_eq!(
            bind_stored_pod(br#"{"spec":{},"metadata":{}}"#, "n", now),
            None
        );
        assert_eq!(bind_stored_pod(b"{\"metadata\":{", "n", now), None);
        assert_eq!(
            bind_stored_pod(b"{\"metadata\":{}}", "n", now),
            Some(PodBinding::Bound(
                b"{\"metadata\":{},\"spec\":{\"nodeName\":\"n\"}}".to_vec()
            ))
        );
    }
}
