//! Secrets: upstream's default type (`Opaque`), and the type may not change.

use rkube_api::FieldError;
use serde_json::{json, Value};

use super::KindStrategy;

pub struct Secrets;

impl KindStrategy for Secrets {
    fn prepare_for_create(&self, obj: &mut Value) {
        if obj["type"].as_str().is_none_or(str::is_empty) {
            obj["type"] = json!("Opaque");
        }
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
