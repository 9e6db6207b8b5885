//! Objects walked with their types: the field set of an object, the comparison of two
//! objects, merging an applied configuration into a live object, and removing fields.
//!
//! How a value is walked comes from the schema table: structs are granular unless
//! `+structType=atomic`, maps are granular unless `+mapType=atomic`, lists are atomic unless
//! `+listType=map` (elements identified by their `+listMapKey`s) or `+listType=set`
//! (elements identified by value). Scalars and opaque types (quantities, times, raw JSON)
//! are leaves.

use serde_json::{Map, Value};

use super::fieldset::{self, FieldSet};
use crate::schema::{Field, Kind, ListType, Message};

/// The type of a value, as far as merging is concerned.
#[derive(Clone, Copy, Debug)]
pub enum Ty {
    /// A struct whose fields are known.
    Struct(&'static Message),
    /// A map of arbitrary keys to values of one kind.
    Map(&'static Kind),
    /// A map whose fields are unknown (no schema): every key is granular, lists atomic.
    Untyped,
    /// A list merged by element keys.
    MapList(&'static Kind, &'static [&'static str]),
    /// A list merged by element value.
    SetList,
    /// Owned and replaced as a whole.
    Atomic,
}

/// Messages whose JSON form is a scalar or free-form JSON.
fn opaque(name: &str) -> bool {
    name.starts_with("apimachinery.pkg.apis.meta.v1.Time")
        || name.starts_with("apimachinery.pkg.apis.meta.v1.MicroTime")
        || matches!(
            name,
            "apimachinery.pkg.apis.meta.v1.Duration"
                | "apimachinery.pkg.api.resource.Quantity"
                | "apimachinery.pkg.util.intstr.IntOrString"
                | "apimachinery.pkg.runtime.RawExtension"
                | "apimachinery.pkg.apis.meta.v1.FieldsV1"
                | "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSON"
                | "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps"
        )
}

impl Ty {
    /// The root type of an object of this message.
    pub fn of_message(message: &'static Message) -> Ty {
        if message.atomic {
            Ty::Atomic
        } else {
            Ty::Struct(message)
        }
    }

    /// The type of a value of `kind` (a list element or map value).
    fn of_kind(kind: &'static Kind) -> Ty {
        match kind {
            Kind::Message(name) if !opaque(name) => {
                kind.message().map_or(Ty::Atomic, Ty::of_message)
            }
            Kind::Map(value) => Ty::Map(value),
            _ => Ty::Atomic,
        }
    }

    /// The type of a struct field.
    fn of_field(field: &'static Field) -> Ty {
        if field.repeated {
            return match field.list_type {
                ListType::Map if !field.map_keys.is_empty() => {
                    Ty::MapList(&field.kind, field.map_keys)
                }
                ListType::Set => Ty::SetList,
                _ => Ty::Atomic,
            };
        }
        match &field.kind {
            Kind::Map(_) if field.atomic => Ty::Atomic,
            kind => Ty::of_kind(kind),
        }
    }

    /// The type of the value under key `key` of a value of this type.
    pub fn child(self, key: &str) -> Ty {
        match self {
            Ty::Struct(message) => message.field(key).map_or(Ty::Atomic, Ty::of_field),
            Ty::Map(value) => Ty::of_kind(value),
            Ty::Untyped => Ty::Untyped,
            _ => Ty::Atomic,
        }
    }

    /// The type of the elements of a list of this type.
    fn element(self) -> Ty {
        match self {
            Ty::MapList(kind, _) => Ty::of_kind(kind),
            _ => Ty::Atomic,
        }
    }

    fn is_map_like(self) -> bool {
        matches!(self, Ty::Struct(_) | Ty::Map(_) | Ty::Untyped)
    }

    fn is_list_like(self) -> bool {
        matches!(self, Ty::MapList(..) | Ty::SetList)
    }
}

/// The path element of list element `item` of a list of type `ty`.
fn item_element(ty: Ty, item: &Value) -> String {
    match ty {
        Ty::MapList(_, keys) => {
            let mut fields = Map::new();
            for k in keys {
                match item.get(*k) {
                    Some(v) => {
                        fields.insert((*k).to_owned(), v.clone());
                    }
                    // The one key field of the built-in types with a default: an element
                    // applied without it is the one the server defaulted.
                    None if *k == "protocol" => {
                        fields.insert("protocol".into(), Value::from("TCP"));
                    }
                    None => {}
                }
            }
            fieldset::key(&fields)
        }
        _ => fieldset::value(item),
    }
}

/// Adds the fields of `value` (at `path`, of type `ty`) to `out`.
pub fn to_set(value: &Value, ty: Ty, path: &mut Vec<String>, out: &mut FieldSet) {
    match (value, ty) {
        (Value::Object(map), t) if t.is_map_like() => {
            for (k, v) in map {
                if is_managed_fields(path, k) {
                    continue;
                }
                path.push(fieldset::field(k));
                let child = t.child(k);
                to_set(v, child, path, out);
                if !matches!(t, Ty::Struct(_)) && (child.is_map_like() || child.is_list_like()) {
                    // A map entry is itself owned (struct fields are not).
                    out.insert(path);
                }
                path.pop();
            }
            if map.is_empty() && !path.is_empty() {
                out.insert(path);
            }
        }
        (Value::Array(items), t) if t.is_list_like() => {
            for item in items {
                path.push(item_element(t, item));
                out.insert(path);
                if matches!(t, Ty::MapList(..)) {
                    to_set(item, t.element(), path, out);
                }
                path.pop();
            }
            if items.is_empty() && !path.is_empty() {
                out.insert(path);
            }
        }
        _ => {
            if !path.is_empty() {
                out.insert(path);
            }
        }
    }
}

/// The changes from `old` to `new`: (added or modified, removed).
pub fn compare(
    old: Option<&Value>,
    new: Option<&Value>,
    ty: Ty,
    path: &mut Vec<String>,
    changed: &mut FieldSet,
    removed: &mut FieldSet,
) {
    match (old, new) {
        (None, None) => {}
        (Some(o), None) => {
            if !path.is_empty() {
                removed.insert(path);
            }
            let mut all = FieldSet::default();
            to_set(o, ty, path, &mut all);
            *removed = removed.union(&all);
        }
        (None, Some(n)) => {
            if let (Ty::Struct(_), Value::Object(_)) = (ty, n) {
                // A struct is not owned itself; what it holds is added.
                let empty = Value::Object(Map::new());
                compare(Some(&empty), Some(n), ty, path, changed, removed);
                if n.as_object().is_some_and(Map::is_empty) && !path.is_empty() {
                    changed.insert(path);
                }
                return;
            }
            if !path.is_empty() && (ty.is_map_like() || ty.is_list_like()) {
                changed.insert(path);
            }
            to_set(n, ty, path, changed);
        }
        (Some(o), Some(n)) => match (o, n, ty) {
            (Value::Object(om), Value::Object(nm), t) if t.is_map_like() => {
                for (k, nv) in nm {
                    if is_managed_fields(path, k) {
                        continue;
                    }
                    path.push(fieldset::field(k));
                    compare(om.get(k), Some(nv), t.child(k), path, changed, removed);
                    path.pop();
                }
                for (k, ov) in om {
                    if !nm.contains_key(k) && !is_managed_fields(path, k) {
                        path.push(fieldset::field(k));
                        compare(Some(ov), None, t.child(k), path, changed, removed);
                        path.pop();
                    }
                }
            }
            (Value::Array(oi), Value::Array(ni), t) if t.is_list_like() => {
                let old_items: Vec<(String, &Value)> =
                    oi.iter().map(|v| (item_element(t, v), v)).collect();
                let new_items: Vec<(String, &Value)> =
                    ni.iter().map(|v| (item_element(t, v), v)).collect();
                for (pe, nv) in &new_items {
                    path.push(pe.clone());
                    match old_items.iter().find(|(k, _)| k == pe) {
                        Some((_, ov)) if matches!(t, Ty::MapList(..)) => {
                            compare(Some(ov), Some(nv), t.element(), path, changed, removed)
                        }
                        Some(_) => {}
                        None => {
                            changed.insert(path);
                            if matches!(t, Ty::MapList(..)) {
                                to_set(nv, t.element(), path, changed);
                            }
                        }
                    }
                    path.pop();
                }
                for (pe, ov) in &old_items {
                    if !new_items.iter().any(|(k, _)| k == pe) {
                        path.push(pe.clone());
                        removed.insert(path);
                        if matches!(t, Ty::MapList(..)) {
                            to_set(ov, t.element(), path, removed);
                        }
                        path.pop();
                    }
                }
            }
            (o, n, _) => {
                if o != n && !path.is_empty() {
                    changed.insert(path);
                }
            }
        },
    }
}

/// `metadata.managedFields` is bookkeeping, never a field anyone owns.
fn is_managed_fields(path: &[String], key: &str) -> bool {
    key == "managedFields" && path.len() == 1 && path[0] == "f:metadata"
}

/// Merges an applied configuration into a live value (structured merge: granular maps and
/// structs merge by key, map and set lists by element, everything else is replaced).
pub fn merge(live: Option<&Value>, applied: &Value, ty: Ty) -> Value {
    match (live, applied) {
        (Some(Value::Object(lm)), Value::Object(am)) if ty.is_map_like() => {
            let mut out = lm.clone();
            for (k, av) in am {
                if av.is_null() {
                    out.remove(k);
                    continue;
                }
                let merged = merge(lm.get(k), av, ty.child(k));
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Some(Value::Array(li)), Value::Array(ai)) if ty.is_list_like() => {
            Value::Array(merge_list(li, ai, ty))
        }
        _ => applied.clone(),
    }
}

/// Merges two associative lists keeping the live order of live-only elements and the
/// applied order of applied elements, as structured-merge-diff does.
fn merge_list(live: &[Value], applied: &[Value], ty: Ty) -> Vec<Value> {
    let lk: Vec<String> = live.iter().map(|v| item_element(ty, v)).collect();
    let ak: Vec<String> = applied.iter().map(|v| item_element(ty, v)).collect();
    let merge_item = |pe: &str, ai: usize| -> Value {
        match lk.iter().position(|k| k == pe) {
            Some(li) if matches!(ty, Ty::MapList(..)) => {
                merge(Some(&live[li]), &applied[ai], ty.element())
            }
            _ => applied[ai].clone(),
        }
    };
    // The elements in both lists, in applied order.
    let mut shared = ak.iter().filter(|k| lk.contains(k)).peekable();
    let mut merged_applied = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(live.len() + applied.len());
    let (mut li, mut ai) = (0, 0);
    while li < live.len() || ai < applied.len() {
        if li < live.len() && ai < applied.len() {
            if lk[li] == ak[ai] {
                merged_applied.insert(ak[ai].clone());
                out.push(merge_item(&ak[ai], ai));
                if shared.peek() == Some(&&ak[ai]) {
                    shared.next();
                }
                li += 1;
                ai += 1;
                continue;
            }
            if ak.contains(&lk[li]) && shared.peek().is_some_and(|s| **s != lk[li]) {
                li += 1;
                continue;
            }
        }
        if li < live.len() {
            if !ak.contains(&lk[li]) {
                out.push(live[li].clone());
                li += 1;
                continue;
            } else if merged_applied.contains(&lk[li]) {
                li += 1;
                continue;
            }
        }
        if ai < applied.len() {
            merged_applied.insert(ak[ai].clone());
            out.push(merge_item(&ak[ai], ai));
            if shared.peek() == Some(&&ak[ai]) {
                shared.next();
            }
            ai += 1;
        } else {
            // Only shared live elements that were already merged remain.
            li += 1;
        }
    }
    out
}

/// Removes the members of `set` from `value` (of type `ty`); containers left empty by the
/// removal of their last owned child are removed too when they were emptied here.
pub fn remove(value: &mut Value, set: &FieldSet, ty: Ty) {
    match (value, ty) {
        (Value::Object(map), t) if t.is_map_like() => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let element = fieldset::field(&k);
                if let Some(child) = set.child(&element) {
                    if let Some(v) = map.get_mut(&k) {
                        let was_empty = is_empty_container(v);
                        remove(v, child, t.child(&k));
                        if is_empty_container(v) && (!was_empty || set.has_member(&element)) {
                            map.remove(&k);
                        }
                    }
                } else if set.has_member(&element) {
                    map.remove(&k);
                }
            }
        }
        (Value::Array(items), t) if t.is_list_like() => {
            items.retain_mut(|item| {
                let element = item_element(t, item);
                if set.has_member(&element) {
                    return false;
                }
                if let Some(child) = set.child(&element) {
                    remove(item, child, t.element());
                }
                true
            });
        }
        _ => {}
    }
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}
