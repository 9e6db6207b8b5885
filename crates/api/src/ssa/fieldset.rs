//! Sets of field paths, in the `FieldsV1` form `managedFields` carries.
//!
//! A path element is kept in its FieldsV1 spelling, which also orders it: `f:<field>` (a
//! struct field or map key), `k:<json object>` (a list element by its map keys), `v:<json>`
//! (an element of a set list), `i:<index>` (an element of an atomic list). A set holds
//! members (paths that are themselves owned) and children (sub-sets under an element);
//! in FieldsV1 a member with children is written with a `"."` key.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// A set of field paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<String>,
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(FieldSet::is_empty)
    }

    /// Adds the path `path` (a list of elements) as a member.
    pub fn insert(&mut self, path: &[String]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => match self.children.get_mut(first) {
                // (No copy of the element when its level exists: most do.)
                Some(child) => child.insert(rest),
                None => self.children.entry(first.clone()).or_default().insert(rest),
            },
        }
    }

    /// Whether `path` is a member.
    pub fn contains(&self, path: &[String]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.contains(rest)),
        }
    }

    /// The children under one element, if any.
    pub fn child(&self, element: &str) -> Option<&FieldSet> {
        self.children.get(element)
    }

    /// Whether `element` is a member of this level.
    pub fn has_member(&self, element: &str) -> bool {
        self.members.contains(element)
    }

    /// Removes one top-level element and everything under it.
    pub fn remove_element(&mut self, element: &str) {
        self.members.remove(element);
        self.children.remove(element);
    }

    /// Keeps only one top-level element and what is under it.
    pub fn keep_element(&mut self, element: &str) {
        self.members.retain(|m| m == element);
        self.children.retain(|k, _| k == element);
    }

    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (k, v) in &other.children {
            let merged = match out.children.get(k) {
                Some(mine) => mine.union(v),
                None => v.clone(),
            };
            out.children.insert(k.clone(), merged);
        }
        out
    }

    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            members: self.members.difference(&other.members).cloned().collect(),
            children: BTreeMap::new(),
        };
        for (k, v) in &self.children {
            let rest = match other.children.get(k) {
                Some(theirs) => v.difference(theirs),
                None => v.clone(),
            };
            if !rest.is_empty() {
                out.children.insert(k.clone(), rest);
            }
        }
        out
    }

    /// [`FieldSet::difference`] in place: no copy of what stays.
    pub fn subtract(&mut self, other: &FieldSet) {
        if !other.members.is_empty() {
            self.members.retain(|m| !other.members.contains(m));
        }
        if other.children.is_empty() {
            return;
        }
        self.children.retain(|k, v| {
            if let Some(theirs) = other.children.get(k) {
                v.subtract(theirs);
            }
            !v.is_empty()
        });
    }

    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            members: self.members.intersection(&other.members).cloned().collect(),
            children: BTreeMap::new(),
        };
        for (k, v) in &self.children {
            if let Some(theirs) = other.children.get(k) {
                let both = v.intersection(theirs);
                if !both.is_empty() {
                    out.children.insert(k.clone(), both);
                }
            }
        }
        out
    }

    /// Every member path, in order.
    pub fn paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        let keys: BTreeSet<&String> = self.members.iter().chain(self.children.keys()).collect();
        for k in keys {
            prefix.push(k.clone());
            if self.members.contains(k) {
                out.push(prefix.clone());
            }
            if let Some(c) = self.children.get(k) {
                c.collect(prefix, out);
            }
            prefix.pop();
        }
    }

    /// The FieldsV1 JSON of this set.
    pub fn to_json(&self) -> Value {
        Value::Object(self.to_map().unwrap_or_default())
    }

    /// [`FieldSet::to_json`]'s object; `None` when the set is empty (one pass, where
    /// asking each child `is_empty` first walked every subtree twice).
    fn to_map(&self) -> Option<Map<String, Value>> {
        let mut map = Map::new();
        for m in &self.members {
            map.insert(m.clone(), Value::Object(Map::new()));
        }
        for (k, c) in &self.children {
            let Some(mut inner) = c.to_map() else {
                continue;
            };
            if self.members.contains(k) {
                inner.insert(".".into(), Value::Object(Map::new()));
            }
            map.insert(k.clone(), Value::Object(inner));
        }
        (!map.is_empty()).then_some(map)
    }

    /// Reads FieldsV1 JSON; `None` when it is not a FieldsV1 document.
    pub fn from_json(value: &Value) -> Option<FieldSet> {
        let Value::Object(map) = value else {
            return None;
        };
        let mut set = FieldSet::default();
        for (k, v) in map {
            if k == "." {
                continue;
            }
            if !(k.starts_with("f:")
                || k.starts_with("k:")
                || k.starts_with("v:")
                || k.starts_with("i:"))
            {
                return None;
            }
            let Value::Object(inner) = v else {
                return None;
            };
            if inner.is_empty() || inner.contains_key(".") {
                set.members.insert(k.clone());
            }
            let child = FieldSet::from_json(v)?;
            if !child.is_empty() {
                set.children.insert(k.clone(), child);
            }
        }
        Some(set)
    }
}

/// The element naming field `name` (made for every field of every write: no formatter).
pub fn field(name: &str) -> String {
    prefixed("f:", name.len(), |s| s.push_str(name))
}

/// The element naming a list element by its key fields (`k:{"name":"web"}`).
pub fn key(fields: &Map<String, Value>) -> String {
    prefixed("k:", 32, |s| push_json(s, fields))
}

/// The element naming a set element by value.
pub fn value(v: &Value) -> String {
    prefixed("v:", 16, |s| push_json(s, v))
}

fn prefixed(prefix: &str, len: usize, rest: impl FnOnce(&mut String)) -> String {
    let mut s = String::with_capacity(prefix.len() + len);
    s.push_str(prefix);
    rest(&mut s);
    s
}

/// Appends compact JSON (as `Value`'s `Display`), without copying a map into a `Value`.
fn push_json<T: serde::Serialize + ?Sized>(out: &mut String, v: &T) {
    // serde_json writes only UTF-8, and serialising a Value or a Map cannot fail.
    if let Ok(json) = serde_json::to_string(v) {
        out.push_str(&json);
    }
}

/// A path as upstream prints it in conflicts: `.spec.containers[name="web"].image`.
pub fn display(path: &[String]) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(name) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(json) = element.strip_prefix("k:") {
            let fields: Map<String, Value> = serde_json::from_str(json).unwrap_or_default();
            let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(json) = element.strip_prefix("v:") {
            out.push_str(&format!("[={json}]"));
        } else if let Some(i) = element.strip_prefix("i:") {
            out.push_str(&format!("[{i}]"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn p(elements: &[&str]) -> Vec<String> {
        elements.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn fields_v1_round_trip() {
        let doc = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}, "f:replicas": {}}
        });
        let set = FieldSet::from_json(&doc).unwrap();
        assert!(set.contains(&p(&["f:spec", "f:replicas"])));
        assert!(set.contains(&p(&["f:metadata", "f:labels"])));
        assert!(set.contains(&p(&["f:spec", "f:containers", "k:{\"name\":\"web\"}"])));
        assert!(!set.contains(&p(&["f:spec"])));
        assert_eq!(set.to_json(), doc);
        assert_eq!(FieldSet::from_json(&json!({"nope": {}})), None);
    }

    #[test]
    fn set_algebra() {
        let mut a = FieldSet::default();
        a.insert(&p(&["f:spec", "f:replicas"]));
        a.insert(&p(&["f:spec", "f:paused"]));
        let mut b = FieldSet::default();
        b.insert(&p(&["f:spec", "f:replicas"]));
        b.insert(&p(&["f:metadata", "f:labels", "f:a"]));
        assert_eq!(a.intersection(&b).paths(), [p(&["f:spec", "f:replicas"])]);
        assert_eq!(a.difference(&b).paths(), [p(&["f:spec", "f:paused"])]);
        assert_eq!(a.union(&b).paths().len(), 3);
        assert!(a.difference(&a).is_empty());
    }

    proptest::proptest! {
        /// Subtracting in place leaves what `difference` returns.
        #[test]
        fn subtract_is_difference(
            a in proptest::collection::vec(proptest::collection::vec(0u8..4, 1..4), 0..12),
            b in proptest::collection::vec(proptest::collection::vec(0u8..4, 1..4), 0..12),
        ) {
            let set = |paths: &Vec<Vec<u8>>| {
                let mut s = FieldSet::default();
                for path in paths {
                    s.insert(&path.iter().map(|e| format!("f:{e}")).collect::<Vec<_>>());
                }
                s
            };
            let (a, b) = (set(&a), set(&b));
            let mut in_place = a.clone();
            in_place.subtract(&b);
            proptest::prop_assert_eq!(in_place.paths(), a.difference(&b).paths());
            proptest::prop_assert_eq!(in_place.to_json(), a.difference(&b).to_json());
        }
    }

    #[test]
    fn paths_print_as_upstream() {
        assert_eq!(display(&p(&["f:spec", "f:replicas"])), ".spec.replicas");
        assert_eq!(
            display(&p(&[
                "f:spec",
                "f:containers",
                "k:{\"name\":\"web\"}",
                "f:image"
            ])),
            ".spec.containers[name=\"web\"].image"
        );
        assert_eq!(
            display(&p(&[
                "f:spec",
                "f:ports",
                "k:{\"port\":80,\"protocol\":\"TCP\"}"
            ])),
            ".spec.ports[port=80,protocol=\"TCP\"]"
        );
        assert_eq!(
            display(&p(&["f:metadata", "f:finalizers", "v:\"a\""])),
            ".metadata.finalizers[=\"a\"]"
        );
    }
}
