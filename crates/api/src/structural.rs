//! Structural schemas of CustomResourceDefinitions: parsing and the structural checks,
//! then what the server does with a custom resource's JSON — pruning unknown fields,
//! applying `default`s, and validating values with kube-openapi's messages.
//!
//! A schema is *structural* (upstream's rule for `apiextensions.k8s.io/v1`) when every
//! field and array item has a `type` (or `x-kubernetes-int-or-string` /
//! `x-kubernetes-preserve-unknown-fields`), `properties` and `additionalProperties` are not
//! mixed, and the logical junctors (`allOf`, `anyOf`, `oneOf`, `not`) only add value
//! validations, never structure. Errors name fields as upstream does
//! (`spec.versions[0].schema.openAPIV3Schema.properties[spec].type`), and value errors read
//! exactly like kube-openapi's (`spec.replicas in body must be of type integer: "string"`).
//!
//! `x-kubernetes-validations` (CEL) is accepted in schemas but not evaluated.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::field_error::{go_quote, BadValue, FieldError, FieldErrorType};

/// `additionalProperties`: `false`/`true`, or the schema of every value.
#[derive(Clone, Debug)]
pub enum Additional {
    Allows(bool),
    Schema(Box<Schema>),
}

/// One node of a structural schema.
#[derive(Clone, Debug, Default)]
pub struct Schema {
    /// `type`: object, array, string, integer, number, boolean; empty when unset.
    pub type_: String,
    pub format: String,
    pub description: String,
    pub nullable: bool,
    pub properties: BTreeMap<String, Schema>,
    pub additional_properties: Option<Additional>,
    pub items: Option<Box<Schema>>,
    pub default: Option<Value>,
    pub preserve_unknown_fields: bool,
    pub embedded_resource: bool,
    pub int_or_string: bool,
    /// Whether `x-kubernetes-list-type`, `-list-map-keys` or `-map-type` is set (only
    /// structural checks care).
    pub has_list_or_map_markers: bool,
    /// `x-kubernetes-list-type` (`atomic`, `set`, `map`); empty when unset.
    pub list_type: String,
    /// `x-kubernetes-list-map-keys`.
    pub list_map_keys: Vec<String>,
    /// `x-kubernetes-map-type` (`granular`, `atomic`); empty when unset.
    pub map_type: String,
    pub has_cel_rules: bool,
    pub title: String,
    pub has_external_docs: bool,
    pub validation: ValueValidation,
}

/// The keywords that only restrict values.
#[derive(Clone, Debug, Default)]
pub struct ValueValidation {
    pub required: Vec<String>,
    pub enum_: Option<Vec<Value>>,
    pub minimum: Option<f64>,
    pub exclusive_minimum: bool,
    pub maximum: Option<f64>,
    pub exclusive_maximum: bool,
    pub multiple_of: Option<f64>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    pub unique_items: bool,
    pub min_properties: Option<u64>,
    pub max_properties: Option<u64>,
    pub pattern: Option<Pattern>,
    pub all_of: Vec<Schema>,
    pub any_of: Vec<Schema>,
    pub one_of: Vec<Schema>,
    pub not: Option<Box<Schema>>,
}

/// A `pattern` and its compiled form (`None` if it does not compile).
#[derive(Clone, Debug)]
pub struct Pattern {
    pub source: String,
    pub regex: Option<regex::Regex>,
}

/// How deep schemas and values are followed; deeper parts are left alone.
const MAX_DEPTH: usize = 128;

impl Schema {
    /// Reads a schema from its JSON (`openAPIV3Schema`). Keywords of the wrong JSON type
    /// are ignored (the CRD's own decoding reports those).
    pub fn parse(v: &Value) -> Schema {
        parse_at(v, 0)
    }

    /// Whether this node declares no structure of its own (a junctor's branch may not).
    fn declares_structure(&self) -> bool {
        !self.type_.is_empty()
    }
}

fn parse_at(v: &Value, depth: usize) -> Schema {
    let Some(m) = v.as_object() else {
        return Schema::default();
    };
    if depth > MAX_DEPTH {
        return Schema::default();
    }
    let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let b = |k: &str| m.get(k).and_then(Value::as_bool).unwrap_or(false);
    let f = |k: &str| m.get(k).and_then(Value::as_f64);
    let u = |k: &str| m.get(k).and_then(Value::as_u64);
    let list = |k: &str| -> Vec<Schema> {
        m.get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|x| parse_at(x, depth + 1)).collect())
            .unwrap_or_default()
    };
    let properties = m
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| {
            p.iter()
                .map(|(k, x)| (k.clone(), parse_at(x, depth + 1)))
                .collect()
        })
        .unwrap_or_default();
    let additional_properties = match m.get("additionalProperties") {
        Some(Value::Bool(b)) => Some(Additional::Allows(*b)),
        Some(x @ Value::Object(_)) => Some(Additional::Schema(Box::new(parse_at(x, depth + 1)))),
        _ => None,
    };
    let items = match m.get("items") {
        Some(x @ Value::Object(_)) => Some(Box::new(parse_at(x, depth + 1))),
        _ => None,
    };
    let pattern = m.get("pattern").and_then(Value::as_str).map(|p| Pattern {
        source: p.to_owned(),
        regex: regex::Regex::new(p).ok(),
    });
    Schema {
        type_: s("type"),
        format: s("format"),
        description: s("description"),
        title: s("title"),
        nullable: b("nullable"),
        properties,
        additional_properties,
        items,
        default: m.get("default").cloned(),
        preserve_unknown_fields: b("x-kubernetes-preserve-unknown-fields"),
        embedded_resource: b("x-kubernetes-embedded-resource"),
        int_or_string: b("x-kubernetes-int-or-string"),
        has_list_or_map_markers: m.contains_key("x-kubernetes-list-type")
            || m.contains_key("x-kubernetes-list-map-keys")
            || m.contains_key("x-kubernetes-map-type"),
        list_type: m
            .get("x-kubernetes-list-type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        list_map_keys: m
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        map_type: m
            .get("x-kubernetes-map-type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        has_cel_rules: m
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty()),
        has_external_docs: m.contains_key("externalDocs"),
        validation: ValueValidation {
            required: m
                .get("required")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            enum_: m.get("enum").and_then(Value::as_array).cloned(),
            minimum: f("minimum"),
            exclusive_minimum: b("exclusiveMinimum"),
            maximum: f("maximum"),
            exclusive_maximum: b("exclusiveMaximum"),
            multiple_of: f("multipleOf"),
            min_length: u("minLength"),
            max_length: u("maxLength"),
            min_items: u("minItems"),
            max_items: u("maxItems"),
            unique_items: b("uniqueItems"),
            min_properties: u("minProperties"),
            max_properties: u("maxProperties"),
            pattern,
            all_of: list("allOf"),
            any_of: list("anyOf"),
            one_of: list("oneOf"),
            not: m
                .get("not")
                .filter(|x| x.is_object())
                .map(|x| Box::new(parse_at(x, depth + 1))),
        },
    }
}

// ---------------------------------------------------------------------------------------
// Structural checks (upstream `ValidateStructural` and the CRD schema checks).

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

/// The errors that make `schema` (at field path `path`, e.g.
/// `spec.versions[0].schema.openAPIV3Schema`) non-structural, sorted by message as
/// upstream sorts them.
pub fn structural_errors(schema: &Schema, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    invariants(schema, Level::Root, path, &mut errors, 0);
    errors.sort_by_key(|e| e.to_string());
    errors
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn key(path: &str, name: &str, key: &str) -> String {
    format!("{}[{key}]", child(path, name))
}

fn invariants(s: &Schema, level: Level, path: &str, out: &mut Vec<FieldError>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    if s.type_ == "array" && s.items.is_none() {
        out.push(FieldError::required(
            &child(path, "items"),
            "must be specified",
        ));
    }
    if let Some(items) = &s.items {
        invariants(items, Level::Item, &child(path, "items"), out, depth + 1);
    }
    for (k, p) in &s.properties {
        invariants(p, Level::Field, &key(path, "properties", k), out, depth + 1);
    }
    if let Some(additional) = &s.additional_properties {
        if level == Level::Root {
            out.push(FieldError::forbidden(
                &child(path, "additionalProperties"),
                "must not be used at the root",
            ));
        }
        if !s.properties.is_empty() {
            out.push(FieldError::forbidden(
                &child(path, "additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        if let Additional::Schema(a) = additional {
            invariants(
                a,
                Level::Field,
                &child(path, "additionalProperties"),
                out,
                depth + 1,
            );
        }
    }
    if s.int_or_string && s.preserve_unknown_fields {
        out.push(FieldError::invalid(
            &child(path, "x-kubernetes-preserve-unknown-fields"),
            true,
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if s.int_or_string && s.embedded_resource {
        out.push(FieldError::invalid(
            &child(path, "x-kubernetes-embedded-resource"),
            true,
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    let int_or_string_any_of = is_int_or_string_pair(&s.validation.any_of);
    let int_or_string_all_of = s
        .validation
        .all_of
        .first()
        .is_some_and(|a| is_int_or_string_pair(&a.validation.any_of));
    value_validation(
        &s.validation,
        int_or_string_any_of,
        int_or_string_all_of,
        path,
        out,
        depth,
    );
    if s.embedded_resource && s.type_ != "object" {
        let f = child(path, "type");
        let why = "must be object if x-kubernetes-embedded-resource is true";
        out.push(if s.type_.is_empty() {
            FieldError::required(&f, why)
        } else {
            FieldError::invalid(&f, s.type_.as_str(), why)
        });
    } else if s.type_.is_empty() && !s.int_or_string && !s.preserve_unknown_fields {
        let why = match level {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        out.push(FieldError::required(&child(path, "type"), why));
    }
    if s.embedded_resource && s.additional_properties.is_some() {
        out.push(FieldError::forbidden(
            &child(path, "additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if level == Level::Root && !s.type_.is_empty() && s.type_ != "object" {
        out.push(FieldError::invalid(
            &child(path, "type"),
            s.type_.as_str(),
            "must be object at the root",
        ));
    }
    let check_metadata = level == Level::Root || s.embedded_resource;
    if check_metadata {
        for field in ["kind", "apiVersion"] {
            if let Some(p) = s.properties.get(field) {
                if p.type_ != "string" {
                    out.push(FieldError::invalid(
                        &child(&key(path, "properties", field), "type"),
                        p.type_.as_str(),
                        "must be string",
                    ));
                }
            }
        }
    }
    if let Some(metadata) = s.properties.get("metadata") {
        let mpath = key(path, "properties", "metadata");
        if check_metadata && metadata.type_ != "object" {
            out.push(FieldError::invalid(
                &child(&mpath, "type"),
                metadata.type_.as_str(),
                "must be object",
            ));
        }
        if level == Level::Root {
            let only_names = metadata
                .properties
                .keys()
                .all(|k| k == "name" || k == "generateName");
            let plain = metadata.additional_properties.is_none()
                && metadata.items.is_none()
                && metadata.default.is_none()
                && !metadata.nullable
                && !metadata.preserve_unknown_fields
                && !metadata.embedded_resource
                && !metadata.int_or_string
                && metadata.format.is_empty();
            if !only_names || !plain {
                out.push(FieldError::forbidden(&mpath, "must not specify anything other than name and generateName, but metadata is implicitly specified"));
            }
        }
    }
    if s.embedded_resource && !s.preserve_unknown_fields && s.properties.is_empty() {
        out.push(FieldError::required(&child(path, "properties"), "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields"));
    }
}

fn is_int_or_string_pair(any_of: &[Schema]) -> bool {
    matches!(any_of, [a, b] if a.type_ == "integer" && b.type_ == "string"
        && a.properties.is_empty() && b.properties.is_empty())
}

fn value_validation(
    v: &ValueValidation,
    skip_any_of: bool,
    skip_first_all_of_any_of: bool,
    path: &str,
    out: &mut Vec<FieldError>,
    depth: usize,
) {
    if !skip_any_of {
        for (i, n) in v.any_of.iter().enumerate() {
            nested(
                n,
                false,
                &format!("{}[{i}]", child(path, "anyOf")),
                out,
                depth + 1,
            );
        }
    }
    for (i, n) in v.all_of.iter().enumerate() {
        nested(
            n,
            skip_first_all_of_any_of && i == 0,
            &format!("{}[{i}]", child(path, "allOf")),
            out,
            depth + 1,
        );
    }
    for (i, n) in v.one_of.iter().enumerate() {
        nested(
            n,
            false,
            &format!("{}[{i}]", child(path, "oneOf")),
            out,
            depth + 1,
        );
    }
    if let Some(n) = &v.not {
        nested(n, false, &child(path, "not"), out, depth + 1);
    }
    if let Some(p) = &v.pattern {
        if p.regex.is_none() {
            let err = regex::Regex::new(&p.source)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            out.push(FieldError::invalid(
                &child(path, "pattern"),
                p.source.as_str(),
                &format!("must be a valid regular expression, but isn't: {err}"),
            ));
        }
    }
}

/// A junctor's branch: value validations only.
fn nested(s: &Schema, skip_any_of: bool, path: &str, out: &mut Vec<FieldError>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    value_validation(&s.validation, skip_any_of, false, path, out, depth);
    if let Some(items) = &s.items {
        nested(items, false, &child(path, "items"), out, depth + 1);
    }
    for (k, p) in &s.properties {
        nested(p, false, &key(path, "properties", k), out, depth + 1);
    }
    if s.declares_structure() {
        out.push(FieldError::forbidden(
            &child(path, "type"),
            "must be empty to be structural",
        ));
    }
    if s.additional_properties.is_some() {
        out.push(FieldError::forbidden(
            &child(path, "additionalProperties"),
            "must be undefined to be structural",
        ));
    }
    let forbidden: [(bool, &str, &str); 9] = [
        (
            s.default.is_some(),
            "default",
            "must be undefined to be structural",
        ),
        (
            !s.title.is_empty(),
            "title",
            "must be empty to be structural",
        ),
        (
            !s.description.is_empty(),
            "description",
            "must be empty to be structural",
        ),
        (s.nullable, "nullable", "must be false to be structural"),
        (
            s.has_external_docs,
            "externalDocs",
            "must be undefined to be structural",
        ),
        (
            s.preserve_unknown_fields,
            "x-kubernetes-preserve-unknown-fields",
            "must be false to be structural",
        ),
        (
            s.embedded_resource,
            "x-kubernetes-embedded-resource",
            "must be false to be structural",
        ),
        (
            s.int_or_string,
            "x-kubernetes-int-or-string",
            "must be false to be structural",
        ),
        (
            s.has_cel_rules,
            "x-kubernetes-validations",
            "must be empty to be structural",
        ),
    ];
    for (bad, field, why) in forbidden {
        if bad {
            out.push(FieldError::forbidden(&child(path, field), why));
        }
    }
    if s.properties.contains_key("metadata") {
        out.push(FieldError::forbidden(
            &key(path, "properties", "metadata"),
            "must not be specified in a nested context",
        ));
    }
}

// ---------------------------------------------------------------------------------------
// Pruning.

/// Removes every field `schema` does not specify (unless
/// `x-kubernetes-preserve-unknown-fields` keeps it) from a custom resource, and returns the
/// removed fields' paths (`spec.foo`, `spec.items[0].bar`) for strict field validation.
/// `apiVersion`, `kind` and `metadata` of the object (and of embedded resources) are kept.
pub fn prune(schema: &Schema, obj: &mut Value) -> Vec<String> {
    let mut removed = Vec::new();
    prune_at(schema, obj, "", true, &mut removed, 0);
    removed
}

fn prune_at(
    s: &Schema,
    v: &mut Value,
    path: &str,
    is_resource: bool,
    removed: &mut Vec<String>,
    depth: usize,
) {
    if depth > MAX_DEPTH {
        return;
    }
    match v {
        Value::Object(map) => {
            let additional = match &s.additional_properties {
                Some(Additional::Schema(a)) => Some(&**a),
                _ => None,
            };
            let allow_any = s.preserve_unknown_fields
                || matches!(s.additional_properties, Some(Additional::Allows(true)));
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let kpath = child(path, &k);
                if is_resource && (k == "apiVersion" || k == "kind" || k == "metadata") {
                    if let (Some(p), Some(val)) = (s.properties.get(&k), map.get_mut(&k)) {
                        if k != "metadata" {
                            prune_at(p, val, &kpath, false, removed, depth + 1);
                        }
                    }
                    continue;
                }
                let child_schema = s.properties.get(&k).or(additional);
                match child_schema {
                    Some(cs) => {
                        if let Some(val) = map.get_mut(&k) {
                            prune_at(cs, val, &kpath, cs.embedded_resource, removed, depth + 1);
                        }
                    }
                    None if allow_any => {}
                    None => {
                        map.remove(&k);
                        removed.push(kpath);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = &s.items {
                for (i, x) in items.iter_mut().enumerate() {
                    prune_at(
                        item,
                        x,
                        &format!("{path}[{i}]"),
                        item.embedded_resource,
                        removed,
                        depth + 1,
                    );
                }
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// Defaulting.

/// Applies the schema's `default`s to a custom resource: a missing field with a default
/// gets (a copy of) it, as does a `null` in a field that is not `nullable`; other `null`s
/// in non-nullable fields are dropped (upstream prunes them before defaulting).
pub fn apply_defaults(schema: &Schema, obj: &mut Value) {
    default_at(schema, obj, 0);
}

fn default_at(s: &Schema, v: &mut Value, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match v {
        Value::Object(map) => {
            for (k, p) in &s.properties {
                match map.get(k) {
                    None => {
                        if let Some(d) = &p.default {
                            map.insert(k.clone(), d.clone());
                        }
                    }
                    Some(Value::Null) if !p.nullable => match &p.default {
                        Some(d) => {
                            map.insert(k.clone(), d.clone());
                        }
                        None => {
                            map.remove(k);
                        }
                    },
                    _ => {}
                }
            }
            for (k, x) in map.iter_mut() {
                if let Some(p) = s.properties.get(k) {
                    default_at(p, x, depth + 1);
                } else if let Some(Additional::Schema(a)) = &s.additional_properties {
                    default_at(a, x, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = &s.items {
                for x in items.iter_mut() {
                    if x.is_null() && !item.nullable {
                        if let Some(d) = &item.default {
                            *x = d.clone();
                        }
                    }
                    default_at(item, x, depth + 1);
                }
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// Validation.

/// Validates a custom resource against its schema, returning upstream's field errors.
/// The root `metadata` is left to object-meta validation, as upstream does.
pub fn validate(schema: &Schema, obj: &Value) -> Vec<FieldError> {
    let mut out = Vec::new();
    validate_at(schema, obj, "", true, &mut out, 0);
    out
}

/// kube-openapi's name for a JSON value's type.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A value as upstream's field errors print it.
fn bad_value(v: &Value) -> BadValue {
    match v {
        Value::Null => BadValue::Null,
        Value::Bool(b) => BadValue::Bool(*b),
        Value::String(s) => BadValue::String(s.clone()),
        Value::Number(n) => match n.as_i64() {
            Some(i) => BadValue::Int(i),
            None => BadValue::Raw(go_float(n.as_f64().unwrap_or(0.0))),
        },
        other => BadValue::Raw(other.to_string()),
    }
}

/// A float as Go's `%v` prints it: shortest digits, in exponent form when the decimal
/// exponent is below -4 or at least 6 (Go's rule for shortest `%g`).
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return "0".into();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    format!("{f}")
}

fn invalid(path: &str, v: &Value, detail: String) -> FieldError {
    FieldError::invalid(path, bad_value(v), &detail)
}

fn body(path: &str) -> String {
    if path.is_empty() {
        ".".to_owned()
    } else {
        path.to_owned()
    }
}

fn type_ok(s: &Schema, v: &Value) -> bool {
    if s.int_or_string {
        return matches!(v, Value::String(_)) || v.as_i64().is_some() || v.as_u64().is_some();
    }
    match s.type_.as_str() {
        "" => true,
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        _ => true,
    }
}

fn validate_at(
    s: &Schema,
    v: &Value,
    path: &str,
    is_resource: bool,
    out: &mut Vec<FieldError>,
    depth: usize,
) {
    if depth > MAX_DEPTH {
        return;
    }
    if v.is_null() {
        if s.nullable || (s.type_.is_empty() && !s.int_or_string) {
            return;
        }
        let expected = if s.int_or_string {
            "integer,string"
        } else {
            &s.type_
        };
        out.push(FieldError {
            error_type: FieldErrorType::TypeInvalid,
            field: path.to_owned(),
            bad_value: BadValue::String("null".into()),
            detail: format!(
                "{} in body must be of type {expected}: \"null\"",
                body(path)
            ),
        });
        return;
    }
    if !type_ok(s, v) {
        let expected = if s.int_or_string {
            "integer,string"
        } else {
            &s.type_
        };
        let found = type_name(v);
        out.push(FieldError {
            error_type: FieldErrorType::TypeInvalid,
            field: path.to_owned(),
            bad_value: BadValue::String(found.into()),
            detail: format!(
                "{} in body must be of type {expected}: \"{found}\"",
                body(path)
            ),
        });
        return;
    }
    values(s, v, path, out);
    for sub in &s.validation.all_of {
        validate_at(sub, v, path, false, out, depth + 1);
    }
    if !s.validation.any_of.is_empty()
        && !s.validation.any_of.iter().any(|sub| {
            let mut e = Vec::new();
            validate_at(sub, v, path, false, &mut e, depth + 1);
            e.is_empty()
        })
    {
        out.push(invalid(
            path,
            v,
            format!(
                "{} in body must validate at least one schema (anyOf)",
                body(path)
            ),
        ));
    }
    if !s.validation.one_of.is_empty() {
        let matching = s
            .validation
            .one_of
            .iter()
            .filter(|sub| {
                let mut e = Vec::new();
                validate_at(sub, v, path, false, &mut e, depth + 1);
                e.is_empty()
            })
            .count();
        if matching != 1 {
            out.push(invalid(
                path,
                v,
                format!(
                    "{} in body must validate one and only one schema (oneOf)",
                    body(path)
                ),
            ));
        }
    }
    if let Some(not) = &s.validation.not {
        let mut e = Vec::new();
        validate_at(not, v, path, false, &mut e, depth + 1);
        if e.is_empty() {
            out.push(invalid(
                path,
                v,
                format!("{} in body must not validate the schema (not)", body(path)),
            ));
        }
    }
    match v {
        Value::Object(map) => {
            for r in &s.validation.required {
                if !map.contains_key(r) {
                    out.push(FieldError::required(&child(path, r), ""));
                }
            }
            if is_resource || s.embedded_resource {
                for field in ["apiVersion", "kind"] {
                    if s.embedded_resource
                        && map
                            .get(field)
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .is_empty()
                    {
                        out.push(FieldError::required(
                            &child(path, field),
                            "must not be empty",
                        ));
                    }
                }
            }
            for (k, x) in map {
                if (is_resource || s.embedded_resource) && k == "metadata" {
                    continue;
                }
                let kpath = child(path, k);
                if let Some(p) = s.properties.get(k) {
                    validate_at(p, x, &kpath, false, out, depth + 1);
                } else if let Some(Additional::Schema(a)) = &s.additional_properties {
                    validate_at(a, x, &kpath, false, out, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = &s.items {
                for (i, x) in items.iter().enumerate() {
                    validate_at(item, x, &format!("{path}[{i}]"), false, out, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// The keyword checks on one value (kube-openapi's messages).
fn values(s: &Schema, v: &Value, path: &str, out: &mut Vec<FieldError>) {
    let vv = &s.validation;
    let at = body(path);
    if let Some(allowed) = &vv.enum_ {
        if !allowed.iter().any(|a| json_equal(a, v)) {
            let valid: Vec<String> = allowed
                .iter()
                .map(|a| match a {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            let valid: Vec<&str> = valid.iter().map(String::as_str).collect();
            out.push(FieldError::not_supported(path, bad_value(v), &valid));
        }
    }
    if let Some(n) = v.as_f64().filter(|_| v.is_number()) {
        if let Some(min) = vv.minimum {
            if (vv.exclusive_minimum && n <= min) || n < min {
                let how = if vv.exclusive_minimum {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                out.push(invalid(
                    path,
                    v,
                    format!("{at} in body should be {how} {}", go_float(min)),
                ));
            }
        }
        if let Some(max) = vv.maximum {
            if (vv.exclusive_maximum && n >= max) || n > max {
                let how = if vv.exclusive_maximum {
                    "less than"
                } else {
                    "less than or equal to"
                };
                out.push(invalid(
                    path,
                    v,
                    format!("{at} in body should be {how} {}", go_float(max)),
                ));
            }
        }
        if let Some(m) = vv.multiple_of.filter(|m| *m > 0.0) {
            let q = n / m;
            if (q - q.round()).abs() > 1e-9 {
                out.push(invalid(
                    path,
                    v,
                    format!("{at} in body should be a multiple of {}", go_float(m)),
                ));
            }
        }
    }
    if let Value::String(text) = v {
        let chars = text.chars().count() as u64;
        if let Some(max) = vv.max_length {
            if chars > max {
                out.push(FieldError::too_long(path, max as usize));
            }
        }
        if let Some(min) = vv.min_length {
            if chars < min {
                out.push(invalid(
                    path,
                    v,
                    format!("{at} in body should be at least {min} chars long"),
                ));
            }
        }
        if let Some(Pattern {
            source,
            regex: Some(re),
        }) = &vv.pattern
        {
            if !re.is_match(text) {
                out.push(invalid(
                    path,
                    v,
                    format!("{at} in body should match '{source}'"),
                ));
            }
        }
        if !s.format.is_empty() && !format_ok(&s.format, text) {
            out.push(FieldError {
                error_type: FieldErrorType::TypeInvalid,
                field: path.to_owned(),
                bad_value: BadValue::String(text.clone()),
                detail: format!(
                    "{at} in body must be of type {}: {}",
                    s.format,
                    go_quote(text)
                ),
            });
        }
    }
    if let Value::Array(items) = v {
        let n = items.len() as u64;
        if let Some(max) = vv.max_items {
            if n > max {
                out.push(FieldError::too_many(path, n as i64, max as i64));
            }
        }
        if let Some(min) = vv.min_items {
            if n < min {
                out.push(FieldError::invalid(
                    path,
                    n as i64,
                    &format!("{at} in body should have at least {min} items"),
                ));
            }
        }
        if vv.unique_items {
            let dup = items
                .iter()
                .enumerate()
                .any(|(i, a)| items[..i].iter().any(|b| json_equal(a, b)));
            if dup {
                out.push(invalid(
                    path,
                    v,
                    format!("{at} in body shouldn't contain duplicates"),
                ));
            }
        }
    }
    if let Value::Object(map) = v {
        let n = map.len() as u64;
        if let Some(max) = vv.max_properties {
            if n > max {
                out.push(FieldError::too_many(path, n as i64, max as i64));
            }
        }
        if let Some(min) = vv.min_properties {
            if n < min {
                out.push(FieldError::invalid(
                    path,
                    n as i64,
                    &format!("{at} in body should have at least {min} properties"),
                ));
            }
        }
    }
}

/// JSON equality with numbers compared by value (1 == 1.0).
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, a)| y.get(k).is_some_and(|b| json_equal(a, b)))
        }
        _ => a == b,
    }
}

/// Whether `text` is valid for one of the formats Kubernetes checks; unknown formats pass.
fn format_ok(format: &str, text: &str) -> bool {
    fn all_hex(s: &str) -> bool {
        s.chars().all(|c| c.is_ascii_hexdigit())
    }
    match format {
        "date-time" => is_date_time(text),
        "date" => is_date(text),
        "uuid" | "uuid3" | "uuid4" | "uuid5" => {
            let parts: Vec<&str> = text.split('-').collect();
            parts.len() == 5
                && parts
                    .iter()
                    .zip([8, 4, 4, 4, 12])
                    .all(|(p, n)| p.len() == n && all_hex(p))
        }
        "ipv4" => text.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => text.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => text.split_once('/').is_some_and(|(ip, bits)| {
            let max = if ip.contains(':') { 128 } else { 32 };
            ip.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= max)
        }),
        "mac" => {
            let parts: Vec<&str> = text.split([':', '-']).collect();
            matches!(parts.len(), 6 | 8 | 20) && parts.iter().all(|p| p.len() == 2 && all_hex(p))
        }
        "hostname" => {
            !text.is_empty()
                && text.len() <= 255
                && text.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                })
        }
        "email" => text
            .split_once('@')
            .is_some_and(|(u, d)| !u.is_empty() && d.contains('.') && !d.starts_with('.')),
        "byte" => {
            let t = text.trim_end_matches('=');
            t.len() % 4 != 1
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
        }
        _ => true,
    }
}

fn is_date(t: &str) -> bool {
    let b = t.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| t.get(r).and_then(|s| s.parse::<u32>().ok());
    matches!((num(0..4), num(5..7), num(8..10)), (Some(_), Some(m), Some(d)) if (1..=12).contains(&m) && (1..=31).contains(&d))
}

fn is_date_time(t: &str) -> bool {
    let Some((date, rest)) = t.split_once(['T', 't', ' ']) else {
        return false;
    };
    if !is_date(date) || rest.len() < 8 {
        return false;
    }
    let b = rest.as_bytes();
    let hms = b[2] == b':'
        && b[5] == b':'
        && rest[..2].parse::<u32>().is_ok_and(|h| h < 24)
        && rest[3..5].parse::<u32>().is_ok_and(|m| m < 60)
        && rest[6..8].parse::<u32>().is_ok_and(|s| s < 61);
    if !hms {
        return false;
    }
    let mut tail = &rest[8..];
    if let Some(frac) = tail.strip_prefix('.') {
        let digits = frac.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        tail = &frac[digits..];
    }
    match tail {
        "Z" | "z" => true,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) => {
            tz.as_bytes()[3] == b':'
                && tz[1..3].parse::<u32>().is_ok()
                && tz[4..6].parse::<u32>().is_ok()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
