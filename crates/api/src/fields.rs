//! Field selectors (`metadata.name=x,status.phase!=Running`): parsing with upstream's escaping,
//! the fields each kind supports, and reading those fields from an object's JSON.
//!
//! Upstream checks a selector in two steps, and so does this module: [`FieldSelector::parse`]
//! (syntax and escapes) and [`FieldSelector::convert_for`] (upstream's per-kind field label
//! conversion, which rejects fields the kind does not support with the kind's own message).
//! [`field_value`] then reads a field the way upstream's per-kind `GetAttrs` does: booleans as
//! `true`/`false`, numbers in decimal, missing fields as the empty string.

use std::fmt;

use serde_json::Value;

use crate::field_error::go_quote;
use crate::resources::ResourceInfo;

/// Why a field selector was rejected. The `Display` text is upstream's message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldSelectorError {
    /// A term has no `=`, `==` or `!=`.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    TermUnparsable {
        /// The whole selector.
        selector: String,
        /// The term that could not be split.
        term: String,
    },
    /// A value has a backslash not followed by `\`, `,` or `=`.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    EscapeInvalid(String),
    /// A value has an unescaped `,` or `=` (upstream prints the character as its code point).
    #[error("invalid field selector: unescaped character in value: {}", *.0 as u32)]
    CharacterUnescaped(char),
    /// The kind does not support selecting on this field; the message is the kind's own.
    #[error("{message}")]
    FieldUnsupported {
        /// The field as written.
        field: String,
        /// Upstream's message for this kind.
        message: String,
    },
}

/// How a field selector term compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `=` or `==`: the field equals the value.
    Equals,
    /// `!=`: the field differs from the value.
    NotEquals,
}

/// One term of a field selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FieldRequirement {
    /// The field path, e.g. `status.phase`.
    pub field: String,
    /// The comparison.
    pub operator: FieldOperator,
    /// The value, unescaped.
    pub value: String,
}

impl FieldRequirement {
    /// Whether the field's value (missing fields read as `""`) satisfies the term.
    pub fn matches(&self, field_value: &str) -> bool {
        match self.operator {
            FieldOperator::Equals => field_value == self.value,
            FieldOperator::NotEquals => field_value != self.value,
        }
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_value(&self.value))
    }
}

/// A field selector: the AND of its terms. No terms selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldSelector {
    /// The terms, in upstream's order (sorted by their text).
    pub requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Whether the selector has no terms.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Parses a field selector as upstream's `fields.ParseSelector`: comma-separated terms
    /// (`\,` does not separate), each `field=value`, `field==value` or `field!=value`, split at
    /// the first operator; values may escape `\`, `,` and `=` with a backslash.
    pub fn parse(selector: &str) -> Result<Self, FieldSelectorError> {
        let mut terms = split_terms(selector);
        terms.sort_unstable();
        let mut requirements = Vec::with_capacity(terms.len());
        for term in terms {
            if term.is_empty() {
                continue;
            }
            let Some((field, operator, raw)) = split_term(term) else {
                return Err(FieldSelectorError::TermUnparsable {
                    selector: selector.to_string(),
                    term: term.to_string(),
                });
            };
            requirements.push(FieldRequirement {
                field: field.to_string(),
                operator,
                value: unescape_value(raw)?,
            });
        }
        Ok(Self { requirements })
    }

    /// Checks every field against what `info`'s kind supports and maps deprecated names
    /// (`spec.host` to `spec.nodeName` for pods), as upstream's field label conversion does
    /// before a list or watch. The error is the kind's own message, which upstream returns as a
    /// `BadRequest`.
    pub fn convert_for(&self, info: &ResourceInfo) -> Result<Self, FieldSelectorError> {
        let requirements = self
            .requirements
            .iter()
            .map(|r| {
                Ok(FieldRequirement {
                    field: convert_field_label(info, &r.field)?.to_string(),
                    operator: r.operator,
                    value: r.value.clone(),
                })
            })
            .collect::<Result<Vec<_>, FieldSelectorError>>()?;
        Ok(Self { requirements })
    }

    /// Whether every term matches, reading fields with `lookup` (`None` reads as `""`).
    pub fn matches_with(&self, mut lookup: impl FnMut(&str) -> Option<String>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches(lookup(&r.field).as_deref().unwrap_or("")))
    }

    /// Whether `object` (of resource `info`) matches every term. Unsupported fields read as
    /// `""`; call [`FieldSelector::convert_for`] first to reject them.
    pub fn matches_object(&self, info: &ResourceInfo, object: &Value) -> bool {
        self.matches_with(|field| field_value(info, object, field))
    }

    /// If the selector requires `field` to equal one value, that value; used to narrow a list
    /// by an indexed field such as `spec.nodeName`.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for FieldSelector {
    type Err = FieldSelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Splits at commas not escaped by a backslash, keeping escapes in the terms.
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in selector.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// Splits a term at the first `!=`, `==` or `=` (tried in that order at each position).
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, operator) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::Equals),
            ("=", FieldOperator::Equals),
        ] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], operator, value));
            }
        }
    }
    None
}

/// Escapes `\`, `,` and `=` in a field selector value.
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Undoes [`escape_value`], rejecting unknown escapes and unescaped `,` or `=`.
pub fn unescape_value(value: &str) -> Result<String, FieldSelectorError> {
    if !value.contains(['\\', ',', '=']) {
        return Ok(value.to_string());
    }
    let mut out = String::with_capacity(value.len());
    let mut in_slash = false;
    for c in value.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                other => return Err(FieldSelectorError::EscapeInvalid(format!("\\{other}"))),
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => return Err(FieldSelectorError::CharacterUnescaped(c)),
            other => out.push(other),
        }
    }
    if in_slash {
        return Err(FieldSelectorError::EscapeInvalid("\\".to_string()));
    }
    Ok(out)
}

/// How a kind rejects an unsupported field (each upstream conversion function words it its own
/// way).
#[derive(Clone, Copy)]
enum Rejection {
    /// The default for kinds without their own function.
    NotKnown,
    /// `field label not supported: <field>`.
    NotSupported,
    /// `field label "<field>" not supported for batchv1.Job`.
    BatchJob,
    /// `field label not supported for <group>/<version>, Kind=<Kind>: <field>`.
    WithGroupVersionKind,
}

struct FieldSupport {
    fields: &'static [&'static str],
    rejection: Rejection,
}

const DEFAULT_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

/// The fields upstream's field label conversion accepts for a kind.
fn support(info: &ResourceInfo) -> FieldSupport {
    use Rejection::*;
    let (fields, rejection): (&'static [&'static str], Rejection) = match (info.group, info.plural)
    {
        ("", "pods") => (
            &[
                "metadata.name",
                "metadata.namespace",
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.podIPs",
                "status.nominatedNodeName",
            ],
            NotSupported,
        ),
        ("", "nodes") => (&["metadata.name", "spec.unschedulable"], NotSupported),
        ("", "replicationcontrollers") => (
            &["metadata.name", "metadata.namespace", "status.replicas"],
            NotSupported,
        ),
        ("", "events") => (
            &[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
                "metadata.namespace",
                "metadata.name",
            ],
            NotSupported,
        ),
        ("", "namespaces") => (&["status.phase", "metadata.name"], NotSupported),
        ("", "secrets") => (
            &["type", "metadata.namespace", "metadata.name"],
            NotSupported,
        ),
        ("", "services") => (
            &[
                "metadata.namespace",
                "metadata.name",
                "spec.clusterIP",
                "spec.type",
            ],
            NotSupported,
        ),
        ("batch", "jobs") => (
            &["metadata.name", "metadata.namespace", "status.successful"],
            BatchJob,
        ),
        ("certificates.k8s.io", "certificatesigningrequests")
        | ("certificates.k8s.io", "clustertrustbundles") => {
            (&["metadata.name", "spec.signerName"], NotSupported)
        }
        ("certificates.k8s.io", "podcertificaterequests") => (
            &[
                "metadata.name",
                "spec.signerName",
                "spec.podName",
                "spec.nodeName",
            ],
            NotSupported,
        ),
        ("resource.k8s.io", "resourceslices") => (
            &["metadata.name", "spec.nodeName", "spec.driver"],
            WithGroupVersionKind,
        ),
        _ => (DEFAULT_FIELDS, NotKnown),
    };
    FieldSupport { fields, rejection }
}

/// The fields a field selector may use for resource `info`.
pub fn supported_fields(info: &ResourceInfo) -> &'static [&'static str] {
    support(info).fields
}

/// Upstream's field label conversion for `info`'s kind: the field to match on, or the kind's
/// rejection. Pods accept the deprecated `spec.host` as `spec.nodeName`.
pub fn convert_field_label(
    info: &ResourceInfo,
    field: &str,
) -> Result<&'static str, FieldSelectorError> {
    let support = support(info);
    if let Some(known) = support.fields.iter().find(|f| **f == field) {
        return Ok(known);
    }
    if (info.group, info.plural, field) == ("", "pods", "spec.host") {
        return Ok("spec.nodeName");
    }
    let message = match support.rejection {
        Rejection::NotKnown => format!(
            "{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
            go_quote(field)
        ),
        Rejection::NotSupported => format!("field label not supported: {field}"),
        Rejection::BatchJob => format!(
            "field label {} not supported for batchv1.Job",
            go_quote(field)
        ),
        Rejection::WithGroupVersionKind => format!(
            "field label not supported for {}/{}, Kind={}: {field}",
            info.group, info.version, info.kind
        ),
    };
    Err(FieldSelectorError::FieldUnsupported {
        field: field.to_string(),
        message,
    })
}

/// Reads `field` from `object` (an object of resource `info`, as JSON) the way upstream's
/// per-kind `GetAttrs` does: strings as they are, booleans as `true`/`false`, numbers in decimal,
/// missing values as `""` (or the API default, e.g. `false`, `0`). `None` when the kind does
/// not support selecting on `field`.
pub fn field_value(info: &ResourceInfo, object: &Value, field: &str) -> Option<String> {
    let field = convert_field_label(info, field).ok()?;
    let text = |path: &[&str]| scalar(lookup(object, path)).unwrap_or_default();
    let value = match (info.group, info.plural, field) {
        (_, _, "metadata.name") => text(&["metadata", "name"]),
        (_, _, "metadata.namespace") => {
            if info.namespaced {
                text(&["metadata", "namespace"])
            } else {
                String::new()
            }
        }
        ("", "pods", "spec.hostNetwork") => {
            scalar(lookup(object, &["spec", "hostNetwork"])).unwrap_or_else(|| "false".into())
        }
        ("", "pods", "status.podIP") => {
            // Upstream reads the first of status.podIPs, which the API keeps equal to podIP.
            match lookup(object, &["status", "podIPs", "0", "ip"]) {
                Some(ip) => scalar(Some(ip)).unwrap_or_default(),
                None => text(&["status", "podIP"]),
            }
        }
        // Accepted by conversion but absent from upstream's field set, so always "".
        ("", "pods", "status.podIPs") => String::new(),
        ("", "nodes", "spec.unschedulable") => {
            scalar(lookup(object, &["spec", "unschedulable"])).unwrap_or_else(|| "false".into())
        }
        ("", "replicationcontrollers", "status.replicas") => {
            scalar(lookup(object, &["status", "replicas"])).unwrap_or_else(|| "0".into())
        }
        ("batch", "jobs", "status.successful") => {
            scalar(lookup(object, &["status", "succeeded"])).unwrap_or_else(|| "0".into())
        }
        ("", "events", "source") => {
            let component = text(&["source", "component"]);
            if component.is_empty() {
                text(&["reportingComponent"])
            } else {
                component
            }
        }
        (_, _, path) => {
            let parts: Vec<&str> = path.split('.').collect();
            text(&parts)
        }
    };
    Some(value)
}

/// The parts of an object (of resource `info`, as JSON) that [`field_value`] reads, with
/// everything else skipped unparsed: `field_value` answers the same on it as on the whole
/// object. Upstream's watch cache keeps each object's field set beside it for the same
/// reason: a watch with a field selector (each kubelet's, on pods) tests every event's
/// object, and a full parse of each was most of that cost. `None` when `json` is not an
/// object.
pub fn selectable_part(info: &ResourceInfo, json: &[u8]) -> Option<Value> {
    let mut paths: Vec<Vec<&str>> = support(info)
        .fields
        .iter()
        .map(|f| f.split('.').collect())
        .collect();
    // Fields read from somewhere other than their own path (see `field_value`).
    if (info.group, info.plural) == ("batch", "jobs") {
        paths.push(vec!["status", "succeeded"]);
    }
    let refs: Vec<&[&str]> = paths.iter().map(Vec::as_slice).collect();
    let mut de = serde_json::Deserializer::from_slice(json);
    let value = serde::de::DeserializeSeed::deserialize(Pruned(&refs), &mut de).ok()?;
    de.end().ok()?;
    value.is_object().then_some(value)
}

/// Deserializes a JSON value keeping only `paths` (each the rest of a path below this
/// value; an empty one keeps the whole value).
struct Pruned<'a, 'p>(&'a [&'p [&'p str]]);

impl<'de> serde::de::DeserializeSeed<'de> for Pruned<'_, '_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.0.iter().any(|p| p.is_empty()) {
            return serde::Deserialize::deserialize(d);
        }
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Pruned<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut kept = serde_json::Map::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let below: Vec<&[&str]> = self
                .0
                .iter()
                .filter(|p| p[0] == key)
                .map(|p| &p[1..])
                .collect();
            if below.is_empty() {
                map.next_value::<serde::de::IgnoredAny>()?;
            } else {
                let value = map.next_value_seed(Pruned(&below))?;
                kept.insert(key.into_owned(), value);
            }
        }
        Ok(Value::Object(kept))
    }

    // A path that runs into anything but an object finds nothing there.
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_str<E>(self, _: &str) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Walks `path` through objects (and arrays, by decimal index).
fn lookup<'a>(object: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(object, |v, key| match v {
        Value::Object(map) => map.get(*key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// A scalar as upstream's field set holds it; `None` for missing, null or structured values.
fn scalar(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::resources::find;

    fn parse(s: &str) -> FieldSelector {
        FieldSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn selectable_part_answers_as_the_whole_object() {
        fn resource(path: &str) -> &'static ResourceInfo {
            let mut parts: Vec<&str> = path.split('/').collect();
            if parts.len() == 2 {
                parts.insert(0, "");
            }
            find(parts[0], parts[1], parts[2]).expect(path)
        }
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "labels": {"a": "b"},
                "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"nodeName": "n1", "hostNetwork": true, "containers": [{"name": "c"}],
                "restartPolicy": "Always", "schedulerName": "s", "serviceAccountName": "sa"},
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                "podIPs": [{"ip": "10.0.0.2"}], "nominatedNodeName": "n2"}});
        let job = json!({"metadata": {"name": "j", "namespace": "ns"},
            "status": {"succeeded": 3, "active": 1}});
        let event = json!({"metadata": {"name": "e", "namespace": "ns"},
            "involvedObject": {"kind": "Pod", "name": "p", "uid": "u"},
            "reason": "Scheduled", "source": {"component": "c"}, "type": "Normal"});
        let cases = [
            ("v1/pods", pod.clone()),
            ("batch/v1/jobs", job),
            ("v1/events", event),
            // Paths that run into arrays or scalars find nothing, as in the whole object.
            (
                "v1/pods",
                json!({"metadata": [1, 2], "spec": "x", "status": {"podIPs": 3}}),
            ),
            (
                "v1/nodes",
                json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}}),
            ),
            (
                "v1/secrets",
                json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {}}),
            ),
            (
                "v1/configmaps",
                json!({"metadata": {"name": "c", "namespace": "ns"}}),
            ),
        ];
        for (plural, object) in cases {
            let info = resource(plural);
            let bytes = serde_json::to_vec(&object).expect("json");
            let part = selectable_part(info, &bytes).expect("an object");
            for field in supported_fields(info) {
                assert_eq!(
                    field_value(info, &part, field),
                    field_value(info, &object, field),
                    "{plural} {field}"
                );
            }
        }
        let info = resource("v1/pods");
        let part =
            selectable_part(info, &serde_json::to_vec(&pod).expect("json")).expect("an object");
        assert!(part["metadata"].get("managedFields").is_none());
        assert!(part["spec"].get("containers").is_none());
        assert!(selectable_part(info, b"[1]").is_none());
        assert!(selectable_part(info, b"{\"a\": 1} x").is_none());
        assert!(selectable_part(info, b"{\"a\": ").is_none());
    }

    proptest! {
        #[test]
        fn selectable_part_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let info = find("", "v1", "pods").expect("pods");
            let _ = selectable_part(info, &bytes);
        }
    }

    #[test]
    fn parses_terms() {
        let s = parse("status.phase!=Running,metadata.name==a,spec.nodeName=n1");
        assert_eq!(
            s.to_string(),
            "metadata.name=a,spec.nodeName=n1,status.phase!=Running"
        );
        assert_eq!(s.requirements[2].operator, FieldOperator::NotEquals);
        assert!(parse("").is_empty());
        assert!(parse(",,").is_empty());
        assert_eq!(parse("a=").requirements[0].value, "");
        // The first operator wins, so a field name cannot contain one.
        assert_eq!(parse("a==b").requirements[0].value, "b");
        assert_eq!(parse(r"a!=\=b").requirements[0].value, "=b");
        assert!(FieldSelector::parse("a!==b").is_err());
    }

    #[test]
    fn escapes_round_trip() {
        let s = parse(r"metadata.name=a\,b\=c\\d");
        assert_eq!(s.requirements.len(), 1);
        assert_eq!(s.requirements[0].value, r"a,b=c\d");
        assert_eq!(s.to_string(), r"metadata.name=a\,b\=c\\d");
        assert_eq!(escape_value(r"x,y=z\"), r"x\,y\=z\\");
    }

    #[test]
    fn rejects_with_upstream_messages() {
        let err = |s: &str| FieldSelector::parse(s).unwrap_err().to_string();
        assert_eq!(err("a"), "invalid selector: 'a'; can't understand 'a'");
        assert_eq!(
            err("x=1,abc"),
            "invalid selector: 'x=1,abc'; can't understand 'abc'"
        );
        assert_eq!(
            err(r"a=b\c"),
            r"invalid field selector: invalid escape sequence: \c"
        );
        assert_eq!(
            err(r"a=b\"),
            r"invalid field selector: invalid escape sequence: \"
        );
        assert_eq!(
            err("a=b=c"),
            "invalid field selector: unescaped character in value: 61"
        );
    }

    #[test]
    fn conversion_per_kind() {
        let pods = find("", "v1", "pods").unwrap();
        let s = parse("spec.host=n1,status.phase=Running")
            .convert_for(pods)
            .unwrap();
        assert_eq!(s.to_string(), "spec.nodeName=n1,status.phase=Running");
        assert_eq!(
            parse("spec.foo=x")
                .convert_for(pods)
                .unwrap_err()
                .to_string(),
            "field label not supported: spec.foo"
        );
        let ingresses = find("networking.k8s.io", "v1", "ingresses").unwrap();
        assert_eq!(
            parse("foo.bar=baz")
                .convert_for(ingresses)
                .unwrap_err()
                .to_string(),
            r#""foo.bar" is not a known field selector: only "metadata.name", "metadata.namespace""#
        );
        // Upstream never registered status.replicas for apps/v1 ReplicaSets.
        let rs = find("apps", "v1", "replicasets").unwrap();
        assert!(parse("status.replicas=0").convert_for(rs).is_err());
        let rc = find("", "v1", "replicationcontrollers").unwrap();
        assert!(parse("status.replicas=0").convert_for(rc).is_ok());
        let jobs = find("batch", "v1", "jobs").unwrap();
        assert_eq!(
            parse("status.succeeded=1")
                .convert_for(jobs)
                .unwrap_err()
                .to_string(),
            r#"field label "status.succeeded" not supported for batchv1.Job"#
        );
        let slices = find("resource.k8s.io", "v1", "resourceslices").unwrap();
        assert_eq!(
            parse("spec.pool.name=p")
                .convert_for(slices)
                .unwrap_err()
                .to_string(),
            "field label not supported for resource.k8s.io/v1, Kind=ResourceSlice: spec.pool.name"
        );
        // Nodes do not accept metadata.namespace; namespaces neither.
        let nodes = find("", "v1", "nodes").unwrap();
        assert!(parse("metadata.namespace=").convert_for(nodes).is_err());
        let configmaps = find("", "v1", "configmaps").unwrap();
        assert!(parse("metadata.namespace=default")
            .convert_for(configmaps)
            .is_ok());
    }

    #[test]
    fn reads_pod_fields() {
        let pods = find("", "v1", "pods").unwrap();
        let pod = json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "default-scheduler"},
            "status": {"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]}
        });
        let v = |f: &str| field_value(pods, &pod, f);
        assert_eq!(v("metadata.name").as_deref(), Some("web"));
        assert_eq!(v("metadata.namespace").as_deref(), Some("default"));
        assert_eq!(v("spec.nodeName").as_deref(), Some("n1"));
        assert_eq!(v("spec.host").as_deref(), Some("n1"));
        assert_eq!(v("spec.hostNetwork").as_deref(), Some("false"));
        assert_eq!(v("spec.serviceAccountName").as_deref(), Some(""));
        assert_eq!(v("status.podIP").as_deref(), Some("10.0.0.5"));
        assert_eq!(v("status.podIPs").as_deref(), Some(""));
        assert_eq!(v("status.nominatedNodeName").as_deref(), Some(""));
        assert_eq!(v("spec.containers"), None);
        assert!(parse("spec.nodeName=n1,status.phase!=Pending").matches_object(pods, &pod));
        assert!(!parse("spec.nodeName=").matches_object(pods, &pod));
        assert!(parse("spec.hostNetwork=false").matches_object(pods, &pod));
    }

    #[test]
    fn reads_other_kinds() {
        let check = |group: &str, plural: &str, obj: Value, field: &str, want: &str| {
            let info = find(group, "v1", plural).unwrap();
            assert_eq!(
                field_value(info, &obj, field).as_deref(),
                Some(want),
                "{plural} {field}"
            );
        };
        check(
            "",
            "nodes",
            json!({"spec": {"unschedulable": true}}),
            "spec.unschedulable",
            "true",
        );
        check(
            "",
            "nodes",
            json!({"spec": {}}),
            "spec.unschedulable",
            "false",
        );
        check(
            "",
            "nodes",
            json!({"metadata": {"name": "n"}}),
            "metadata.name",
            "n",
        );
        check(
            "",
            "namespaces",
            json!({"status": {"phase": "Active"}}),
            "status.phase",
            "Active",
        );
        check("", "secrets", json!({"type": "Opaque"}), "type", "Opaque");
        check(
            "",
            "services",
            json!({"spec": {"clusterIP": "10.96.0.1", "type": "ClusterIP"}}),
            "spec.clusterIP",
            "10.96.0.1",
        );
        check(
            "",
            "replicationcontrollers",
            json!({"status": {"replicas": 3}}),
            "status.replicas",
            "3",
        );
        check(
            "",
            "replicationcontrollers",
            json!({}),
            "status.replicas",
            "0",
        );
        check(
            "batch",
            "jobs",
            json!({"status": {"succeeded": 2}}),
            "status.successful",
            "2",
        );
        check("batch", "jobs", json!({}), "status.successful", "0");
        check(
            "certificates.k8s.io",
            "certificatesigningrequests",
            json!({"spec": {"signerName": "kubernetes.io/kubelet-serving"}}),
            "spec.signerName",
            "kubernetes.io/kubelet-serving",
        );
        let event = json!({
            "involvedObject": {"kind": "Pod", "name": "web", "uid": "u1"},
            "reason": "Scheduled", "type": "Normal", "reportingComponent": "default-scheduler"
        });
        check("", "events", event.clone(), "involvedObject.kind", "Pod");
        check("", "events", event.clone(), "involvedObject.uid", "u1");
        check("", "events", event.clone(), "involvedObject.namespace", "");
        check("", "events", event.clone(), "source", "default-scheduler");
        check(
            "",
            "events",
            event.clone(),
            "reportingComponent",
            "default-scheduler",
        );
        check(
            "",
            "events",
            json!({"source": {"component": "kubelet"}}),
            "source",
            "kubelet",
        );
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in any::<String>()) {
            let _ = FieldSelector::parse(&s);
        }

        #[test]
        fn parsing_selector_like_input_never_panics(s in r"[a-z.=!,\\ ]{0,30}") {
            if let Ok(sel) = FieldSelector::parse(&s) {
                let pods = find("", "v1", "pods").unwrap();
                let _ = sel.convert_for(pods);
                let _ = sel.matches_object(pods, &json!({}));
            }
        }

        #[test]
        fn display_round_trips(terms in proptest::collection::vec(("[a-z][a-z.]{0,8}", any::<bool>(), "[a-z0-9,=\\\\ ]{0,6}"), 0..4)) {
            let requirements = terms.into_iter().map(|(field, ne, value)| FieldRequirement {
                field,
                operator: if ne { FieldOperator::NotEquals } else { FieldOperator::Equals },
                value,
            }).collect();
            let text = FieldSelector { requirements }.to_string();
            let parsed = FieldSelector::parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
            prop_assert_eq!(FieldSelector::parse(&parsed.to_string()).unwrap(), parsed);
        }
    }
}
