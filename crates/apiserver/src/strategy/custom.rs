//! Custom resources (rows made from CustomResourceDefinitions): `metadata.generation`
//! starts at 1 and moves with every change outside `metadata` (and outside `status`
//! when the status subresource splits it off). Schema defaulting, pruning and validation
//! need the CRD's schema and live in `crate::crd`.

use serde_json::{json, Value};

use super::KindStrategy;
use crate::meta::metadata_mut;

pub struct CustomResources;

/// The object without `metadata`, for comparing what a generation covers.
fn content(obj: &Value) -> Value {
    let mut copy = obj.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
    }
    copy
}

impl KindStrategy for CustomResources {
    fn prepare_for_create(&self, obj: &mut Value) {
        metadata_mut(obj).insert("generation".into(), json!(1));
    }

    fn prepare_for_update(&self, obj: &mut Value, old: &Value) {
        let old_generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
        let generation = if content(obj) != content(old) {
            old_generation + 1
        } else {
            old_generation
        };
        metadata_mut(obj).insert("generation".into(), json!(generation));
    }
}
