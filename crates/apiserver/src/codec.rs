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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

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
}
