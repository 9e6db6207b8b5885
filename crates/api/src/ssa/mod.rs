//! Server-side apply and field ownership (`metadata.managedFields`), as upstream's
//! structured-merge-diff records them.
//!
//! Every write is attributed to a field manager. An **Update** (create, PUT, non-apply PATCH)
//! gives its manager the fields it added or changed and takes them from everyone else. An
//! **Apply** (`application/apply-patch+yaml`) declares the complete set of fields its
//! manager cares about: the configuration is merged into the live object, fields another
//! manager owns with a different value are conflicts (refused unless `force`, which takes
//! them over), and fields the manager applied before but no longer applies are removed
//! unless someone else owns them.
//!
//! Types come from [`crate::schema`] through [`Ty`]; identity metadata (`metadata.name`,
//! `uid`, `resourceVersion`, …) is never owned, and `status` is not owned through the main
//! resource of kinds with a status subresource.

pub mod fieldset;
mod typed;

use serde_json::{json, Map, Value};

pub use fieldset::FieldSet;
pub use typed::Ty;

/// How a write reached the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// The endpoint a write came through, which decides the fields it can own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The resource itself; `status` is excluded when the kind has a status subresource.
    Main { status_subresource: bool },
    /// The `status` subresource: only `status` is owned.
    Status,
    /// The `scale` subresource (it changes `spec.replicas` only).
    Scale,
}

/// Who is writing.
#[derive(Clone, Copy, Debug)]
pub struct Manager<'a> {
    pub name: &'a str,
    pub operation: Operation,
    /// The apiVersion the write was made in.
    pub api_version: &'a str,
    /// RFC 3339 time of the write.
    pub time: &'a str,
    pub scope: Scope,
}

impl Manager<'_> {
    fn subresource(&self) -> &'static str {
        match self.scope {
            Scope::Status => "status",
            Scope::Scale => "scale",
            Scope::Main { .. } => "",
        }
    }
}

/// One `managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    subresource: String,
    set: FieldSet,
}

impl Entry {
    fn is(&self, m: &Manager<'_>) -> bool {
        self.manager == m.name
            && self.operation == m.operation.as_str()
            && self.subresource == m.subresource()
            && (m.operation == Operation::Apply || self.api_version == m.api_version)
    }

    /// How upstream names this manager in conflict messages.
    fn label(&self) -> String {
        let mut label = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            label.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == "Update" {
            label.push_str(&format!(" using {}", self.api_version));
        }
        label
    }

    fn to_json(&self) -> Value {
        let mut e = Map::new();
        e.insert("manager".into(), json!(self.manager));
        e.insert("operation".into(), json!(self.operation));
        e.insert("apiVersion".into(), json!(self.api_version));
        if let Some(t) = &self.time {
            e.insert("time".into(), json!(t));
        }
        e.insert("fieldsType".into(), json!("FieldsV1"));
        e.insert("fieldsV1".into(), self.set.to_json());
        if !self.subresource.is_empty() {
            e.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(e)
    }

    fn from_json(v: &Value) -> Option<Entry> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        if s("manager").is_empty() && s("operation").is_empty() {
            return None;
        }
        Some(Entry {
            manager: s("manager"),
            operation: s("operation"),
            api_version: s("apiVersion"),
            time: v.get("time").and_then(Value::as_str).map(str::to_owned),
            subresource: s("subresource"),
            set: FieldSet::from_json(v.get("fieldsV1").unwrap_or(&json!({})))?,
        })
    }
}

/// Fields another manager owns with a value the apply would change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflicts {
    /// (manager as upstream prints it, field path such as `.spec.replicas`).
    pub conflicts: Vec<(String, String)>,
    /// The same paths as path elements.
    paths: Vec<Vec<String>>,
}

impl Conflicts {
    /// Upstream's message: `Apply failed with 1 conflict: conflict with "m": .spec.replicas`.
    pub fn message(&self) -> String {
        if let [(manager, path)] = self.conflicts.as_slice() {
            return format!("Apply failed with 1 conflict: conflict with {manager}: {path}");
        }
        let mut by_manager: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for (manager, path) in &self.conflicts {
            by_manager.entry(manager).or_default().push(path);
        }
        let mut lines = Vec::new();
        for (manager, paths) in by_manager {
            lines.push(format!("conflicts with {manager}:"));
            lines.extend(paths.iter().map(|p| format!("- {p}")));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            self.conflicts.len(),
            lines.join("\n")
        )
    }
}

/// Identity metadata, which no manager owns.
fn never_owned() -> FieldSet {
    let p = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let mut never = FieldSet::default();
    for path in [
        p(&["f:apiVersion"]),
        p(&["f:kind"]),
        p(&["f:metadata"]),
        p(&["f:metadata", "f:name"]),
        p(&["f:metadata", "f:namespace"]),
        p(&["f:metadata", "f:creationTimestamp"]),
        p(&["f:metadata", "f:selfLink"]),
        p(&["f:metadata", "f:uid"]),
        p(&["f:metadata", "f:generation"]),
        p(&["f:metadata", "f:managedFields"]),
        p(&["f:metadata", "f:resourceVersion"]),
        p(&["f:metadata", "f:deletionTimestamp"]),
        p(&["f:metadata", "f:deletionGracePeriodSeconds"]),
    ] {
        never.insert(&path);
    }
    never
}

/// The metadata no manager owns.
fn strip(mut out: FieldSet, scope: Scope) -> FieldSet {
    static NEVER: std::sync::OnceLock<FieldSet> = std::sync::OnceLock::new();
    let never = NEVER.get_or_init(never_owned);
    out.subtract(never);
    match scope {
        Scope::Main {
            status_subresource: true,
        }
        | Scope::Scale => out.remove_element("f:status"),
        // Only status is owned through the status subresource.
        Scope::Status => out.keep_element("f:status"),
        Scope::Main { .. } => {}
    }
    out
}

fn read_entries(obj: Option<&Value>) -> Vec<Entry> {
    obj.and_then(|o| o["metadata"]["managedFields"].as_array())
        .map(|list| list.iter().filter_map(Entry::from_json).collect())
        .unwrap_or_default()
}

fn write_entries(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by(|a, b| {
        (
            &a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                &b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(Entry::to_json).collect()),
        );
    }
}

/// A copy of an object without `metadata.managedFields`, for comparisons.
fn without_managed(obj: &Value) -> Value {
    let mut copy = obj.clone();
    if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    copy
}

/// Records an Update by `m` from `old` (absent on create) to `new`, writing `new`'s
/// `metadata.managedFields`. A request that sets `managedFields` itself replaces them
/// (`[{}]` clears them), as upstream allows.
pub fn record_update(old: Option<&Value>, new: &mut Value, ty: Ty, m: &Manager<'_>) {
    let requested = new["metadata"]["managedFields"].as_array().cloned();
    let mut entries = match (&requested, old) {
        (Some(list), _)
            if old.is_none_or(|o| o["metadata"]["managedFields"].as_array() != Some(list)) =>
        {
            if list
                .iter()
                .all(|e| e.as_object().is_some_and(Map::is_empty))
                && !list.is_empty()
            {
                // `[{}]` resets ownership; the writer still owns what it changes.
                Vec::new()
            } else {
                list.iter().filter_map(Entry::from_json).collect()
            }
        }
        _ => read_entries(old),
    };
    // A created object is compared with an empty one, so that the maps and lists it adds
    // are owned themselves, as upstream records them.
    let empty = json!({});
    let (mut changed, mut removed) = (FieldSet::default(), FieldSet::default());
    typed::compare(
        Some(old.unwrap_or(&empty)),
        Some(new),
        ty,
        &mut Vec::new(),
        &mut changed,
        &mut removed,
    );
    let changed = strip(changed, m.scope);
    let removed = strip(removed, m.scope);
    let mut mine = None;
    if !entries.is_empty() {
        // (A create has no entries: nothing to take fields from.)
        let taken = if removed.is_empty() {
            std::borrow::Cow::Borrowed(&changed)
        } else {
            std::borrow::Cow::Owned(changed.union(&removed))
        };
        for e in entries.iter_mut() {
            if e.is(m) {
                let mut set = e.set.union(&changed);
                set.subtract(&removed);
                mine = Some(set);
                e.set = FieldSet::default();
            } else {
                e.set.subtract(&taken);
            }
        }
    }
    let set = mine.unwrap_or(changed);
    entries.retain(|e| !e.is(m));
    if !set.is_empty() {
        entries.push(Entry {
            manager: m.name.to_owned(),
            operation: m.operation.as_str().to_owned(),
            api_version: m.api_version.to_owned(),
            time: Some(m.time.to_owned()),
            subresource: m.subresource().to_owned(),
            set,
        });
    }
    write_entries(new, entries);
}

/// The annotation client-side `kubectl apply` keeps its last configuration in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Applies `config` for manager `m` to `live` (absent when the apply creates the object).
/// Returns the new object with its `managedFields`, or the conflicts when `force` is off.
///
/// As upstream, `kubectl apply --server-side` (manager `kubectl`) takes over fields from a
/// client-side apply without conflicts: conflicts on fields of the object's
/// last-applied-configuration are forced, and that annotation, when present, is kept in
/// step with the applied configuration so client-side apply keeps working afterwards.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    ty: Ty,
    m: &Manager<'_>,
    force: bool,
) -> Result<Value, Conflicts> {
    let kubectl = m.name == "kubectl" && m.operation == Operation::Apply;
    let mut out = match apply_once(live, config, ty, m, force) {
        Err(conflicts) if kubectl => {
            let Some(allowed) = live.and_then(|l| last_applied_fields(l, ty, m.scope)) else {
                return Err(conflicts);
            };
            let (mut rest, mut rest_paths) = (Vec::new(), Vec::new());
            for (c, p) in conflicts.conflicts.into_iter().zip(conflicts.paths) {
                if !allowed.contains(&p) {
                    rest.push(c);
                    rest_paths.push(p);
                }
            }
            if !rest.is_empty() {
                return Err(Conflicts {
                    conflicts: rest,
                    paths: rest_paths,
                });
            }
            apply_once(live, config, ty, m, true)?
        }
        other => other?,
    };
    if kubectl && !out["metadata"]["annotations"][LAST_APPLIED].is_null() {
        let mut applied = without_managed(config);
        if let Some(annotations) = applied["metadata"]
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
        {
            annotations.remove(LAST_APPLIED);
        }
        let text = format!("{applied}\n");
        out["metadata"]["annotations"][LAST_APPLIED] = Value::String(text);
    }
    Ok(out)
}

/// The fields of an object's last client-side applied configuration.
fn last_applied_fields(live: &Value, ty: Ty, scope: Scope) -> Option<FieldSet> {
    let text = live["metadata"]["annotations"][LAST_APPLIED].as_str()?;
    let last: Value = serde_json::from_str(text).ok()?;
    let mut set = FieldSet::default();
    typed::to_set(&last, ty, &mut Vec::new(), &mut set);
    Some(strip(set, scope))
}

fn apply_once(
    live: Option<&Value>,
    config: &Value,
    ty: Ty,
    m: &Manager<'_>,
    force: bool,
) -> Result<Value, Conflicts> {
    let mut entries = read_entries(live);
    let config = without_managed(config);
    let mut applied = FieldSet::default();
    typed::to_set(&config, ty, &mut Vec::new(), &mut applied);
    let applied = strip(applied, m.scope);

    let live_plain = live.map(without_managed).unwrap_or_else(|| json!({}));
    let mut merged = typed::merge(Some(&live_plain), &config, ty);
    let (mut changed, mut removed) = (FieldSet::default(), FieldSet::default());
    typed::compare(
        Some(&live_plain),
        Some(&merged),
        ty,
        &mut Vec::new(),
        &mut changed,
        &mut removed,
    );
    let changed = strip(changed, m.scope);

    let (mut conflicts, mut paths) = (Vec::new(), Vec::new());
    for e in entries.iter_mut().filter(|e| !e.is(m)) {
        let clash = e.set.intersection(&changed).intersection(&applied);
        if clash.is_empty() {
            continue;
        }
        if force {
            e.set = e.set.difference(&clash);
        } else {
            for p in clash.paths() {
                conflicts.push((e.label(), fieldset::display(&p)));
                paths.push(p);
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(Conflicts { conflicts, paths });
    }

    // Fields this manager applied before, applies no more, and nobody else owns.
    let previous = entries
        .iter()
        .find(|e| e.is(m))
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let others = entries
        .iter()
        .filter(|e| !e.is(m))
        .fold(FieldSet::default(), |acc, e| acc.union(&e.set));
    let kept = applied.union(&others);
    let stale = previous.difference(&kept);
    if !stale.is_empty() {
        typed::remove(&mut merged, &stale, &kept, ty);
    }

    entries.retain(|e| !e.is(m));
    entries.push(Entry {
        manager: m.name.to_owned(),
        operation: "Apply".into(),
        api_version: m.api_version.to_owned(),
        time: Some(m.time.to_owned()),
        subresource: m.subresource().to_owned(),
        set: applied,
    });
    write_entries(&mut merged, entries);
    Ok(merged)
}

#[cfg(test)]
mod tests;
