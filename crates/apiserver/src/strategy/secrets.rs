//! Secrets: upstream's default type (`Opaque`), `stringData` merged into `data` (it is
//! write-only, as upstream's conversion makes it), and the type may not change.

use base64::Engine as _;
use rkube_api::FieldError;
use serde_json::{json, Value};

use super::KindStrategy;

pub struct Secrets;

impl KindStrategy for Secrets {
    fn prepare_for_create(&self, obj: &mut Value) {
        if obj["type"].as_str().is_none_or(str::is_empty) {
            obj["type"] = json!("Opaque");
        }
        merge_string_data(obj);
    }

    fn prepare_for_update(&self, obj: &mut Value, _old: &Value) {
        self.prepare_for_create(obj);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        match old {
            Some(old) if old["type"] != obj["type"] => vec![FieldError::invalid(
                "type",
                obj["type"].as_str().unwrap_or(""),
                "field is immutable",
            )],
            _ => Vec::new(),
        }
    }
}

/// Moves `stringData` into `data`, base64-encoded; its keys win over `data`'s.
fn merge_string_data(obj: &mut Value) {
    let Some(Value::Object(string_data)) = obj.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    if !obj["data"].is_object() {
        obj["data"] = json!({});
    }
    for (key, value) in string_data {
        if let Some(text) = value.as_str() {
            obj["data"][key] = json!(base64::engine::general_purpose::STANDARD.encode(text));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_data_is_merged_into_data() {
        let mut s =
            json!({"data": {"a": "eA==", "b": "eA=="}, "stringData": {"b": "hi", "c": "there"}});
        Secrets.prepare_for_create(&mut s);
        assert_eq!(
            s["data"],
            json!({"a": "eA==", "b": "aGk=", "c": "dGhlcmU="})
        );
        assert!(s.get("stringData").is_none());
        assert_eq!(s["type"], "Opaque");
    }
}
