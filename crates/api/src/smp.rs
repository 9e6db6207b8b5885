//! Strategic merge patch (`application/strategic-merge-patch+json`), applied as upstream's
//! `strategicpatch` package applies it on the server.
//!
//! A strategic merge patch is a JSON merge patch whose lists can merge instead of being
//! replaced. How each field merges comes from the type table ([`crate::schema`]):
//! `patchStrategy` (`merge`, `replace`, `retainKeys`) and `patchMergeKey`. Directives in the
//! patch:
//!
//! - `$patch: replace` in a map replaces the map; `$patch: delete` removes it. In a merging
//!   list of maps, an element `{mergeKey: v, $patch: delete}` removes the elements with that
//!   key, and an element `{$patch: replace}` makes the rest of the patch list the new list.
//! - `$retainKeys: [..]` clears the fields of a map that it does not name.
//! - `$deleteFromPrimitiveList/<field>: [..]` removes values from a merging list of scalars.
//! - `$setElementOrder/<field>: [..]` gives the order of a merged list.
//!
//! Merged lists are ordered as upstream orders them: elements named by the patch in the
//! patch's (or `$setElementOrder`'s) order, interleaved with the other elements in their
//! order on the server. Errors carry upstream's messages.

use serde_json::{Map, Value};

use crate::schema::{Field, Kind, Message, Strategy};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// Why a patch could not be applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PatchError {
    /// The HTTP status upstream answers with: 400 for a malformed patch, 422 for content
    /// the type cannot hold, 500 for merge failures upstream does not classify.
    pub code: u16,
    pub message: String,
}

impl PatchError {
    fn bad_request(message: impl Into<String>) -> Self {
        PatchError {
            code: 400,
            message: message.into(),
        }
    }

    fn unprocessable(message: impl Into<String>) -> Self {
        PatchError {
            code: 422,
            message: message.into(),
        }
    }

    fn other(message: impl Into<String>) -> Self {
        PatchError {
            code: 500,
            message: message.into(),
        }
    }

    fn bad_retain_keys() -> Self {
        Self::bad_request("invalid patch format of retainKeys")
    }

    fn bad_primitive_list() -> Self {
        Self::bad_request("invalid patch format of primitive list")
    }

    fn bad_element_order() -> Self {
        Self::bad_request("invalid patch format of setElementOrder list")
    }

    fn no_merge_key(map: &Map<String, Value>, key: &str) -> Self {
        Self::other(format!(
            "map: {} does not contain declared merge key: {key}",
            go_format(&Value::Object(map.clone()))
        ))
    }
}

/// What is known about the type of a value while merging.
#[derive(Clone, Copy)]
enum Shape {
    /// A struct: its fields have names and merge metadata.
    Struct(&'static Message),
    /// A map with string keys; values have this shape.
    Map(&'static Kind),
    /// Nothing is known (raw JSON, or a value without a schema): merged as JSON merge patch.
    Opaque,
}

fn shape_of_kind(kind: &'static Kind) -> Shape {
    match kind {
        Kind::Map(value) => Shape::Map(value),
        Kind::Message(name) if !crate::schema::is_opaque(name) => {
            kind.message().map_or(Shape::Opaque, Shape::Struct)
        }
        _ => Shape::Opaque,
    }
}

/// The merge metadata of one field of a map being merged.
struct FieldMeta {
    /// The shape of the field's value (of a list's elements for lists).
    shape: Shape,
    strategy: Strategy,
    merge_key: Option<&'static str>,
}

impl FieldMeta {
    const OPAQUE: FieldMeta = FieldMeta {
        shape: Shape::Opaque,
        strategy: Strategy::Default,
        merge_key: None,
    };

    fn of(field: &'static Field) -> FieldMeta {
        FieldMeta {
            shape: shape_of_kind(&field.kind),
            strategy: field.strategy,
            merge_key: field.merge_key,
        }
    }
}

impl Shape {
    /// The metadata of field `key`; a struct without that field is upstream's error.
    fn lookup(self, key: &str) -> Result<FieldMeta, PatchError> {
        match self {
            // TypeMeta is inlined into every Go struct but is no protobuf field.
            Shape::Struct(_) if key == "apiVersion" || key == "kind" => Ok(FieldMeta::OPAQUE),
            Shape::Struct(message) => match message.field(key) {
                Some(field) => Ok(FieldMeta::of(field)),
                None => Err(PatchError::other(format!(
                    "unable to find api field in struct {} for the json field {key:?}",
                    message.name.rsplit('.').next().unwrap_or(message.name)
                ))),
            },
            Shape::Map(value) => Ok(FieldMeta {
                shape: shape_of_kind(value),
                ..FieldMeta::OPAQUE
            }),
            Shape::Opaque => Ok(FieldMeta::OPAQUE),
        }
    }
}

/// Applies a strategic merge patch to `original`, an object of the type `root` (from
/// [`crate::schema::for_kind`]). The patch must be a JSON object.
pub fn apply(original: Value, patch: Value, root: &'static Message) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::bad_request("invalid JSON document"));
    };
    let original = match original {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    merge_map(original, patch, Shape::Struct(root)).map(Value::Object)
}

/// Merges `patch` into `original` (upstream's `mergeMap`).
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    shape: Shape,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE);
                Ok(patch)
            }
            Some("delete") => Ok(Map::new()),
            _ => Err(PatchError::other(format!(
                "unknown patch type: {} in map: {}",
                go_format(directive),
                go_format(&Value::Object(patch.clone()))
            ))),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    apply_element_order(&mut original, &mut patch, shape)?;
    for (key, patch_value) in patch {
        let (key, delete_list) = match key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            Some(rest) => match rest.strip_prefix('/') {
                Some(field) => (field.to_owned(), true),
                None => return Err(PatchError::bad_primitive_list()),
            },
            None => (key, false),
        };
        if patch_value.is_null() {
            original.remove(&key);
            continue;
        }
        let Some(current) = original.remove(&key) else {
            if delete_list {
                // Nothing to delete from.
                continue;
            }
            let value = merge_new(patch_value, shape, &key)?;
            original.insert(key, value);
            continue;
        };
        let merged = match (current, patch_value) {
            (Value::Object(current), Value::Object(patch_value)) => {
                let meta = shape.lookup(&key)?;
                if meta.strategy == Strategy::Replace {
                    Value::Object(patch_value)
                } else {
                    Value::Object(merge_map(current, patch_value, meta.shape)?)
                }
            }
            (Value::Array(current), Value::Array(patch_value)) => {
                let meta = shape.lookup(&key)?;
                if meta.strategy.merges() {
                    Value::Array(merge_list(current, patch_value, &meta, delete_list)?)
                } else if delete_list {
                    return Err(PatchError::bad_primitive_list());
                } else {
                    Value::Array(patch_value)
                }
            }
            (Value::Array(_), _) | (_, Value::Array(_)) if delete_list => {
                return Err(PatchError::bad_primitive_list())
            }
            (current, patch_value) => {
                if std::mem::discriminant(&current) == std::mem::discriminant(&patch_value) {
                    // Same scalar type: the field must exist in the type.
                    shape.lookup(&key)?;
                }
                patch_value
            }
        };
        original.insert(key, merged);
    }
    Ok(original)
}

/// A value for a field the original does not have: the patch value, with its directives
/// applied to nothing.
fn merge_new(patch_value: Value, shape: Shape, key: &str) -> Result<Value, PatchError> {
    let meta = shape.lookup(key).unwrap_or(FieldMeta::OPAQUE);
    Ok(match patch_value {
        Value::Object(m) if meta.strategy != Strategy::Replace => {
            Value::Object(merge_map(Map::new(), m, meta.shape)?)
        }
        Value::Array(list) if meta.strategy.merges() => {
            Value::Array(merge_list(Vec::new(), list, &meta, false)?)
        }
        other => other,
    })
}

/// `$retainKeys`: validates it against the patch and clears the fields it does not name.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(PatchError::bad_retain_keys());
    };
    let names: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
    for (key, value) in patch.iter() {
        if value.is_null()
            || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || key.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !names.contains(&key.as_str()) {
            return Err(PatchError::bad_retain_keys());
        }
    }
    original.retain(|key, _| names.contains(&key.as_str()));
    Ok(())
}

/// `$setElementOrder/<field>`: merges each named list with its patch list and orders it.
fn apply_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    shape: Shape,
) -> Result<(), PatchError> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for directive in keys {
        let order = patch.remove(&directive).unwrap_or_default();
        let field = directive
            .strip_prefix(SET_ELEMENT_ORDER)
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or_else(PatchError::bad_element_order)?
            .to_owned();
        let Value::Array(order) = order else {
            return Err(PatchError::bad_element_order());
        };
        let current = match original.get(&field) {
            None => None,
            Some(Value::Array(list)) => Some(list.clone()),
            Some(other) => return Err(bad_arg_type("slice", other)),
        };
        let patch_list = match patch.get(&field) {
            None => None,
            Some(Value::Array(list)) => Some(list.clone()),
            Some(other) => return Err(bad_arg_type("slice", other)),
        };
        let meta = shape.lookup(&field)?;
        let merge_key = meta.merge_key.filter(|_| meta.strategy.merges());
        if let Some(list) = &patch_list {
            check_order(list, &order, merge_key)?;
        }
        let merged = match (current.clone(), patch_list.clone()) {
            (None, None) => continue,
            (Some(current), None) => current,
            (None, Some(list)) => list,
            (Some(current), Some(list)) => {
                if meta.strategy.merges() {
                    merge_list(current, list, &meta, false)?
                } else {
                    list
                }
            }
        };
        let (named, server_only) = partition(merged, &order, merge_key)?;
        let both = interleave(
            sort_by(named, &order, merge_key)?,
            sort_by(server_only, current.as_deref().unwrap_or(&[]), merge_key)?,
            current.as_deref().unwrap_or(&[]),
            merge_key,
        );
        original.insert(field.clone(), Value::Array(both));
        patch.remove(&field);
    }
    Ok(())
}

/// Upstream's check that a patch list follows its `$setElementOrder` list.
fn check_order(list: &[Value], order: &[Value], merge_key: Option<&str>) -> Result<(), PatchError> {
    if list.is_empty() || order.is_empty() {
        return Ok(());
    }
    let kept: Vec<&Value> = match merge_key {
        Some(_) => list
            .iter()
            .filter(|v| v.get(DIRECTIVE).and_then(Value::as_str) != Some("delete"))
            .collect(),
        None => list.iter().collect(),
    };
    let (mut i, mut j) = (0, 0);
    while i < kept.len() && j < order.len() {
        if kept[i].get(DIRECTIVE).is_some() && kept[i].is_object() {
            i += 1;
            continue;
        }
        if key_of(kept[i], merge_key)? == key_of(&order[j], merge_key)? {
            i += 1;
        }
        j += 1;
    }
    if i < kept.len() {
        return Err(PatchError::other(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}\n",
            go_format(&Value::Array(list.to_vec())),
            go_format(&Value::Array(order.to_vec()))
        )));
    }
    Ok(())
}

/// Merges two lists of a `merge` field (upstream's `mergeSlice`).
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    meta: &FieldMeta,
    delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let elements_are_maps = element_kind(&original, &patch)?;
    if !elements_are_maps {
        if delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.contains(v))
                .collect());
        }
        let mut merged = original.clone();
        for v in &patch {
            if !merged.contains(v) {
                merged.push(v.clone());
            }
        }
        let (named, server_only) = partition(merged, &patch, None)?;
        return Ok(interleave(
            sort_by(named, &patch, None)?,
            sort_by(server_only, &original, None)?,
            &original,
            None,
        ));
    }
    let merge_key = meta
        .merge_key
        .ok_or_else(|| PatchError::other("cannot merge lists without merge key for type slice"))?;
    // Special elements first: deletions and a replace marker.
    let mut original = original;
    let mut rest = Vec::with_capacity(patch.len());
    let mut replace = false;
    for element in patch {
        let Value::Object(map) = &element else {
            return Err(bad_arg_type("map", &element));
        };
        match map.get(DIRECTIVE) {
            None => rest.push(element),
            Some(Value::String(d)) if d == "delete" => {
                let value = map
                    .get(merge_key)
                    .ok_or_else(|| PatchError::no_merge_key(map, merge_key))?;
                original.retain(|o| o.get(merge_key) != Some(value));
            }
            Some(Value::String(d)) if d == "replace" => replace = true,
            Some(Value::String(d)) if d == "merge" => {
                return Err(PatchError::other(
                    "merging lists cannot yet be specified in the patch",
                ))
            }
            Some(other) => {
                return Err(PatchError::other(format!(
                    "unknown patch type: {} in map: {}",
                    go_format(other),
                    go_format(&element)
                )))
            }
        }
    }
    let (original, patch) = if replace {
        (rest, Vec::new())
    } else {
        (original, rest)
    };
    let mut merged = original.clone();
    for element in &patch {
        let Value::Object(map) = element else {
            return Err(bad_arg_type("map", element));
        };
        let value = map
            .get(merge_key)
            .ok_or_else(|| PatchError::no_merge_key(map, merge_key))?;
        match merged.iter().position(|m| m.get(merge_key) == Some(value)) {
            Some(i) => {
                let current = match std::mem::take(&mut merged[i]) {
                    Value::Object(m) => m,
                    other => return Err(bad_arg_type("map", &other)),
                };
                merged[i] = Value::Object(merge_map(current, map.clone(), meta.shape)?);
            }
            None => merged.push(element.clone()),
        }
    }
    let (named, server_only) = partition(merged, &patch, Some(merge_key))?;
    Ok(interleave(
        sort_by(named, &patch, Some(merge_key))?,
        sort_by(server_only, &original, Some(merge_key))?,
        &original,
        Some(merge_key),
    ))
}

/// Whether the elements of the lists are maps; all must be of one type, and not lists.
fn element_kind(a: &[Value], b: &[Value]) -> Result<bool, PatchError> {
    let mut seen: Option<std::mem::Discriminant<Value>> = None;
    for v in a.iter().chain(b) {
        if v.is_array() {
            return Err(PatchError::unprocessable(
                "lists of lists are not supported",
            ));
        }
        let d = std::mem::discriminant(v);
        if seen.is_some_and(|s| s != d) {
            return Err(PatchError::other(format!(
                "list element types are not identical: {}",
                go_format(&Value::Array(a.iter().chain(b).cloned().collect()))
            )));
        }
        seen = Some(d);
    }
    Ok(matches!(a.first().or(b.first()), Some(Value::Object(_))))
}

/// The identity of a list element: its merge key's value, or the scalar itself.
fn key_of<'v>(v: &'v Value, merge_key: Option<&str>) -> Result<&'v Value, PatchError> {
    match merge_key {
        None => Ok(v),
        Some(k) => match v {
            Value::Object(m) => m.get(k).ok_or_else(|| PatchError::no_merge_key(m, k)),
            other => Err(bad_arg_type("map", other)),
        },
    }
}

fn position(list: &[Value], v: &Value, merge_key: Option<&str>) -> Option<usize> {
    let key = key_of(v, merge_key).ok()?;
    list.iter()
        .position(|item| key_of(item, merge_key).ok() == Some(key))
}

/// Splits `merged` into the elements named in `by` and the others, keeping order.
fn partition(
    merged: Vec<Value>,
    by: &[Value],
    merge_key: Option<&str>,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut named = Vec::new();
    let mut others = Vec::new();
    for v in merged {
        key_of(&v, merge_key)?;
        if position(by, &v, merge_key).is_some() {
            named.push(v);
        } else {
            others.push(v);
        }
    }
    Ok((named, others))
}

/// Orders `items` as they appear in `order` (stable; unknown elements first, as upstream's
/// comparison puts them), with `$patch: delete` elements last.
fn sort_by(
    items: Vec<Value>,
    order: &[Value],
    merge_key: Option<&str>,
) -> Result<Vec<Value>, PatchError> {
    let (mut keep, deletions): (Vec<Value>, Vec<Value>) = match merge_key {
        Some(_) => items
            .into_iter()
            .partition(|v| v.get(DIRECTIVE).and_then(Value::as_str) != Some("delete")),
        None => (items, Vec::new()),
    };
    if merge_key.is_some() {
        for v in keep.iter().chain(order) {
            key_of(v, merge_key)?;
        }
    }
    keep.sort_by_key(|v| position(order, v, merge_key).map_or(-1, |i| i as i64));
    keep.extend(deletions);
    Ok(keep)
}

/// Upstream's `mergeSortedSlice`: interleaves the server-only elements into the patch's,
/// taking a server element first only when the server had it before the patch element.
fn interleave(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    server_order: &[Value],
    merge_key: Option<&str>,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (position(server_order, l, merge_key), position(server_order, r, merge_key)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

fn bad_arg_type(expected: &str, actual: &Value) -> PatchError {
    let actual = match actual {
        Value::Object(_) => "map",
        Value::Array(_) => "slice",
        Value::String(_) => "string",
        Value::Number(_) => "float64",
        Value::Bool(_) => "bool",
        Value::Null => "invalid",
    };
    PatchError::other(format!("expected a {expected}, but received a {actual}"))
}

/// A value printed as Go's `%v` prints decoded JSON (`map[a:1 b:[x y]]`).
fn go_format(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(go_format).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", go_format(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

#[cfg(test)]
mod tests;
