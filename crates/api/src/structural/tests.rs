use proptest::prelude::*;
use serde_json::json;

use super::*;

fn widget_schema() -> Schema {
    Schema::parse(&json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["size"],
                "properties": {
                    "size": {"type": "string", "enum": ["small", "large"]},
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                    "name": {"type": "string", "minLength": 3, "maxLength": 5, "pattern": "^[a-z]+$"},
                    "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2},
                    "port": {"x-kubernetes-int-or-string": true},
                    "when": {"type": "string", "format": "date-time"},
                    "note": {"type": "string", "nullable": true},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "ratio": {"type": "number"},
                    "nested": {"type": "object", "default": {}, "properties": {"mode": {"type": "string", "default": "auto"}}},
                    "items": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
                },
            },
            "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
        },
    }))
}

#[test]
fn validation_messages_match_upstream() {
    let s = widget_schema();
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"spec": {"size": "small"}}), vec![]),
        (json!({"spec": {}}), vec!["spec.size: Required value"]),
        (
            json!({"spec": {"size": "medium"}}),
            vec![r#"spec.size: Unsupported value: "medium": supported values: "small", "large""#],
        ),
        (
            json!({"spec": {"size": "small", "replicas": "three"}}),
            vec![r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#],
        ),
        (
            json!({"spec": {"size": "small", "replicas": 1.5}}),
            vec![r#"spec.replicas: Invalid value: "number": spec.replicas in body must be of type integer: "number""#],
        ),
        (
            json!({"spec": {"size": "small", "replicas": 0}}),
            vec!["spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"],
        ),
        (
            json!({"spec": {"size": "small", "replicas": 11}}),
            vec!["spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"],
        ),
        (
            json!({"spec": {"size": "small", "name": "ab"}}),
            vec![r#"spec.name: Invalid value: "ab": spec.name in body should be at least 3 chars long"#],
        ),
        (
            json!({"spec": {"size": "small", "name": "abcdef"}}),
            vec!["spec.name: Too long: must have at most 5 bytes"],
        ),
        (
            json!({"spec": {"size": "small", "name": "AbC"}}),
            vec![r#"spec.name: Invalid value: "AbC": spec.name in body should match '^[a-z]+$'"#],
        ),
        (
            json!({"spec": {"size": "small", "tags": []}}),
            vec!["spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items"],
        ),
        (
            json!({"spec": {"size": "small", "tags": ["a", "b", "c"]}}),
            vec!["spec.tags: Too many: 3: must have at most 2 items"],
        ),
        (
            json!({"spec": {"size": "small", "tags": ["a", 1]}}),
            vec![r#"spec.tags[1]: Invalid value: "integer": spec.tags[1] in body must be of type string: "integer""#],
        ),
        (json!({"spec": {"size": "small", "port": 80}}), vec![]),
        (json!({"spec": {"size": "small", "port": "http"}}), vec![]),
        (
            json!({"spec": {"size": "small", "port": true}}),
            vec![r#"spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#],
        ),
        (json!({"spec": {"size": "small", "when": "2024-01-02T03:04:05Z"}}), vec![]),
        (
            json!({"spec": {"size": "small", "when": "yesterday"}}),
            vec![r#"spec.when: Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday""#],
        ),
        (json!({"spec": {"size": "small", "note": null}}), vec![]),
        (
            json!({"spec": {"size": "small", "labels": {"a": 1}}}),
            vec![r#"spec.labels.a: Invalid value: "integer": spec.labels.a in body must be of type string: "integer""#],
        ),
        (json!({"spec": {"size": "small", "ratio": 1}}), vec![]),
        (
            json!({"spec": "big"}),
            vec![r#"spec: Invalid value: "string": spec in body must be of type object: "string""#],
        ),
        (json!({"metadata": {"name": 5}, "spec": {"size": "small"}}), vec![]),
    ];
    for (obj, want) in cases {
        let got: Vec<String> = validate(&s, &obj).iter().map(ToString::to_string).collect();
        assert_eq!(got, want, "for {obj}");
    }
}

#[test]
fn defaults_fill_missing_and_null_fields() {
    let s = widget_schema();
    let cases = [
        (
            json!({"spec": {"size": "small"}}),
            json!({"spec": {"size": "small", "replicas": 1, "nested": {"mode": "auto"}}}),
        ),
        (
            json!({"spec": {"size": "small", "replicas": null, "note": null, "name": null}}),
            json!({"spec": {"size": "small", "replicas": 1, "note": null, "nested": {"mode": "auto"}}}),
        ),
        (
            json!({"spec": {"size": "small", "replicas": 3, "nested": {"mode": "manual"}}}),
            json!({"spec": {"size": "small", "replicas": 3, "nested": {"mode": "manual"}}}),
        ),
        (json!({"status": {}}), json!({"status": {}})),
    ];
    for (mut obj, want) in cases {
        apply_defaults(&s, &mut obj);
        assert_eq!(obj, want);
    }
}

#[test]
fn pruning_drops_unknown_fields_and_reports_them() {
    let s = widget_schema();
    let mut obj = json!({
        "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "odd": 1},
        "spec": {"size": "small", "colour": "red", "free": {"any": {"thing": 1}},
                 "labels": {"x": "y"}, "items": [{"a": "1", "b": "2"}]},
        "extra": true,
    });
    let removed = prune(&s, &mut obj);
    assert_eq!(removed, ["extra", "spec.colour", "spec.items[0].b"]);
    assert_eq!(
        obj,
        json!({
            "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "odd": 1},
            "spec": {"size": "small", "free": {"any": {"thing": 1}}, "labels": {"x": "y"}, "items": [{"a": "1"}]},
        })
    );
    let preserve = Schema::parse(
        &json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true,
        "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}}}),
    );
    let mut obj = json!({"other": 1, "spec": {"a": "x", "b": "y"}});
    assert_eq!(prune(&preserve, &mut obj), ["spec.b"]);
    assert_eq!(obj, json!({"other": 1, "spec": {"a": "x"}}));
}

/// The regex crate's error for the pattern `(` (built at run time: clippy rejects a
/// literal invalid pattern).
fn unclosed_group_error() -> regex::Error {
    let pattern = String::from("(");
    regex::Regex::new(&pattern).unwrap_err()
}

#[test]
fn structural_errors_match_upstream() {
    let p = "spec.versions[0].schema.openAPIV3Schema";
    let cases: Vec<(Value, Vec<String>)> = vec![
        (json!({"type": "object", "properties": {"spec": {"type": "object"}}}), vec![]),
        (
            json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}}),
            vec![format!("{p}.properties[spec].type: Required value: must not be empty for specified object fields")],
        ),
        (
            json!({"properties": {}}),
            vec![format!("{p}.type: Required value: must not be empty at the root")],
        ),
        (
            json!({"type": "string"}),
            vec![format!(r#"{p}.type: Invalid value: "string": must be object at the root"#)],
        ),
        (
            json!({"type": "object", "properties": {"l": {"type": "array"}}}),
            vec![format!("{p}.properties[l].items: Required value: must be specified")],
        ),
        (
            json!({"type": "object", "properties": {"m": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}}}}),
            vec![format!("{p}.properties[m].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive")],
        ),
        (
            json!({"type": "object", "properties": {"a": {"type": "string", "anyOf": [{"type": "string"}]}}}),
            vec![format!("{p}.properties[a].anyOf[0].type: Forbidden: must be empty to be structural")],
        ),
        (
            json!({"type": "object", "properties": {"a": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]}}}),
            vec![],
        ),
        (
            json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}}}),
            vec![format!("{p}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified")],
        ),
        (
            json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "("}}}),
            vec![format!("{p}.properties[a].pattern: Invalid value: \"(\": must be a valid regular expression, but isn't: {}", unclosed_group_error())],
        ),
    ];
    for (schema, want) in cases {
        let got: Vec<String> = structural_errors(&Schema::parse(&schema), p)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, want, "for {schema}");
    }
}

#[test]
fn floats_print_as_go_does() {
    for (f, want) in [
        (1.0, "1"),
        (1.5, "1.5"),
        (100000.0, "100000"),
        (1e6, "1e+06"),
        (1e21, "1e+21"),
        (0.00001, "1e-05"),
        (-2.25, "-2.25"),
    ] {
        assert_eq!(go_float(f), want);
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        "[a-z]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                "[a-z]{1,5}|spec|size|replicas|items|a|type|properties|default|anyOf",
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn validation_pruning_and_defaulting_never_panic(obj in arb_json(), schema in arb_json()) {
        for s in [widget_schema(), Schema::parse(&schema)] {
            let mut o = obj.clone();
            let _ = structural_errors(&s, "x");
            let _ = prune(&s, &mut o);
            apply_defaults(&s, &mut o);
            let _ = validate(&s, &o);
            // Pruning is idempotent.
            let mut again = o.clone();
            prune(&s, &mut again);
            let mut twice = again.clone();
            prop_assert!(prune(&s, &mut twice).is_empty());
        }
    }
}
