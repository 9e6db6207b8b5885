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
use crate::structural::{Additional, Schema};

/// The type of a value, as far as merging is concerned.
#[derive(Clone, Copy, Debug)]
pub enum Ty<'a> {
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
    /// A granular object, or a `map`/`set` list, described by a custom resource's structural
    /// schema (`x-kubernetes-list-type`, `-list-map-keys`, `-map-type`).
    Schema(&'a Schema),
}

fn is_object_schema(s: &Schema) -> bool {
    s.type_ == "object"
        || (s.type_.is_empty() && (!s.properties.is_empty() || s.additional_properties.is_some()))
}

impl<'a> Ty<'a> {
    /// The root type of an object of this message.
    pub fn of_message(message: &'static Message) -> Ty<'static> {
        if message.atomic {
            Ty::Atomic
        } else {
            Ty::Struct(message)
        }
    }

    /// The type of a value a structural schema describes (a custom resource's).
    pub fn of_schema(s: &'a Schema) -> Ty<'a> {
        if s.type_ == "array" {
            return match s.list_type.as_str() {
                "map" if !s.list_map_keys.is_empty() => Ty::Schema(s),
                "set" => Ty::Schema(s),
                _ => Ty::Atomic,
            };
        }
        if is_object_schema(s) {
            return if s.map_type == "atomic" {
                Ty::Atomic
            } else {
                Ty::Schema(s)
            };
        }
        if s.preserve_unknown_fields && s.type_.is_empty() {
            return Ty::Untyped;
        }
        Ty::Atomic
    }

    /// The type of a value of `kind` (a list element or map value).
    fn of_kind(kind: &'static Kind) -> Ty<'a> {
        match kind {
            Kind::Message(name) if !crate::schema::is_opaque(name) => {
                kind.message().map_or(Ty::Atomic, Ty::of_message)
            }
            Kind::Map(value) => Ty::Map(value),
            _ => Ty::Atomic,
        }
    }

    /// The type of a struct field.
    fn of_field(field: &'static Field) -> Ty<'a> {
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
    pub fn child(self, key: &str) -> Ty<'a> {
        match self {
            Ty::Struct(message) => message.field(key).map_or(Ty::Atomic, Ty::of_field),
            Ty::Map(value) => Ty::of_kind(value),
            Ty::Untyped => Ty::Untyped,
            // An object's metadata is ObjectMeta, whatever the schema says of it.
            Ty::Schema(_) if key == "metadata" => {
                crate::schema::message("apimachinery.pkg.apis.meta.v1.ObjectMeta")
                    .map_or(Ty::Untyped, Ty::of_message)
            }
            Ty::Schema(s) => {
                if let Some(p) = s.properties.get(key) {
                    Ty::of_schema(p)
                } else if let Some(Additional::Schema(a)) = &s.additional_properties {
                    Ty::of_schema(a)
                } else if s.preserve_unknown_fields {
                    Ty::Untyped
                } else {
                    Ty::Atomic
                }
            }
            _ => Ty::Atomic,
        }
    }

    /// The type of the elements of a list of this type.
    fn element(self) -> Ty<'a> {
        match self {
            Ty::MapList(kind, _) => Ty::of_kind(kind),
            Ty::Schema(s) => s.items.as_deref().map_or(Ty::Atomic, Ty::of_schema),
            _ => Ty::Atomic,
        }
    }

    fn is_map_like(self) -> bool {
        match self {
            Ty::Struct(_) | Ty::Map(_) | Ty::Untyped => true,
            Ty::Schema(s) => is_object_schema(s),
            _ => false,
        }
    }

    fn is_list_like(self) -> bool {
        match self {
            Ty::MapList(..) | Ty::SetList => true,
            Ty::Schema(s) => s.type_ == "array",
            _ => false,
        }
    }

    /// A list whose elements are identified by key fields (and merged field by field).
    fn is_keyed_list(self) -> bool {
        match self {
            Ty::MapList(..) => true,
            Ty::Schema(s) => s.type_ == "array" && s.list_type == "map",
            _ => false,
        }
    }

    /// A struct: its fields are not owned themselves (map entries are).
    fn is_struct(self) -> bool {
        match self {
            Ty::Struct(_) => true,
            Ty::Schema(s) => is_object_schema(s) && !s.properties.is_empty(),
            _ => false,
        }
    }
}

/// The path element of list element `item` of a list of type `ty`.
fn item_element(ty: Ty<'_>, item: &Value) -> String {
    let keys: Vec<&str> = match ty {
        Ty::MapList(_, keys) => keys.to_vec(),
        Ty::Schema(s) if s.list_type == "map" => {
            s.list_map_keys.iter().map(String::as_str).collect()
        }
        _ => return fieldset::value(item),
    };
    let mut fields = Map::new();
    for k in keys {
        match item.get(k) {
            Some(v) => {
                fields.insert(k.to_owned(), v.clone());
            }
            // The one key field of the built-in types with a default: an element applied
            // without it is the one the server defaulted.
            None if k == "protocol" && matches!(ty, Ty::MapList(..)) => {
                fields.insert("protocol".into(), Value::from("TCP"));
            }
            None => {}
        }
    }
    fieldset::key(&fields)
}

/// Adds the fields of `value` (at `path`, of type `ty`) to `out`.
pub fn to_set(value: &Value, ty: Ty<'_>, path: &mut Vec<String>, out: &mut FieldSet) {
    match (value, ty) {
        (Value::Object(map), t) if t.is_map_like() => {
            for (k, v) in map {
                if is_managed_fields(path, k) {
                    continue;
                }
                path.push(fieldset::field(k));
                let child = t.child(k);
                to_set(v, child, path, out);
                if !t.is_struct() && (child.is_map_like() || child.is_list_like()) {
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
                if t.is_keyed_list() {
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
    ty: Ty<'_>,
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
            if let (true, Value::Object(_)) = (ty.is_struct(), n) {
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
                        Some((_, ov)) if t.is_keyed_list() => {
                            compare(Some(ov), Some(nv), t.element(), path, changed, removed)
                        }
                        Some(_) => {}
                        None => {
                            changed.insert(path);
                            if t.is_keyed_list() {
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
                        if t.is_keyed_list() {
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
pub fn merge(live: Option<&Value>, applied: &Value, ty: Ty<'_>) -> Value {
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
fn merge_list(live: &[Value], applied: &[Value], ty: Ty<'_>) -> Vec<Value> {
    let lk: Vec<String> = live.iter().map(|v| item_element(ty, v)).collect();
    let ak: Vec<String> = applied.iter().map(|v| item_element(ty, v)).collect();
    let merge_item = |pe: &str, ai: usize| -> Value {
        match lk.iter().position(|k| k == pe) {
            Some(li) if ty.is_keyed_list() => merge(Some(&live[li]), &applied[ai], ty.element()),
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

/// Removes the members of `set` from `value` (of type `ty`), except what `keep` (the fields
/// someone still owns) holds: a removed container keeps its owned parts, as upstream's
/// prune removes the stale fields and adds back every owned one. Containers emptied by the
/// removal go too.
pub fn remove(value: &mut Value, set: &FieldSet, keep: &FieldSet, ty: Ty<'_>) {
    let empty = FieldSet::default();
    match (value, ty) {
        (Value::Object(map), t) if t.is_map_like() => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let element = fieldset::field(&k);
                let kept = keep.child(&element).unwrap_or(&empty);
                let Some(v) = map.get_mut(&k) else { continue };
                let was_empty = is_empty_container(v);
                if set.has_member(&element) && !keep.has_member(&element) {
                    if kept.is_empty() {
                        map.remove(&k);
                        continue;
                    }
                    retain_only(v, kept, t.child(&k));
                } else if let Some(child) = set.child(&element) {
                    remove(v, child, kept, t.child(&k));
                } else {
                    continue;
                }
                if is_empty_container(v) && !was_empty {
                    map.remove(&k);
                }
            }
        }
        (Value::Array(items), t) if t.is_list_like() => {
            items.retain_mut(|item| {
                let element = item_element(t, item);
                let kept = keep.child(&element).unwrap_or(&empty);
                if set.has_member(&element) && !keep.has_member(&element) {
                    if kept.is_empty() {
                        return false;
                    }
                    retain_only(item, kept, t.element());
                } else if let Some(child) = set.child(&element) {
                    remove(item, child, kept, t.element());
                }
                true
            });
        }
        _ => {}
    }
}

/// Keeps only the parts of a container that `keep` holds (an owned element with owned
/// fields keeps only those fields; an owned leaf is kept whole).
fn retain_only(value: &mut Value, keep: &FieldSet, ty: Ty<'_>) {
    match (value, ty) {
        (Value::Object(map), t) if t.is_map_like() => {
            map.retain(|k, v| {
                let element = fieldset::field(k);
                match keep.child(&element) {
                    Some(child) => {
                        retain_only(v, child, t.child(k));
                        true
                    }
                    None => keep.has_member(&element),
                }
            });
        }
        (Value::Array(items), t) if t.is_list_like() => {
            items.retain_mut(|item| {
                let element = item_element(t, item);
                match keep.child(&element) {
                    Some(child) => {
                        retain_only(item, child, t.element());
                        true
                    }
                    None => keep.has_member(&element),
                }
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
