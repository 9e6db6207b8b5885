//! Strategic merge patch cases, mirroring upstream's documented behaviour (the
//! `kubectl patch` task page, the strategic-merge-patch and preserve-order design docs).

use serde_json::{json, Value};

use super::*;
use crate::schema;

/// (case, kind, original, patch, expected result or Err(code, message)).
type Case = (
    &'static str,
    (&'static str, &'static str),
    Value,
    Value,
    Result<Value, (u16, &'static str)>,
);

fn pod(containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers}})
}

fn cases() -> Vec<Case> {
    const POD: (&str, &str) = ("v1", "Pod");
    const DEPLOY: (&str, &str) = ("apps/v1", "Deployment");
    const CM: (&str, &str) = ("v1", "ConfigMap");
    vec![
        (
            "containers merge by name; a new one comes first without an order directive",
            POD,
            pod(json!([{"name": "a", "image": "a:1"}])),
            json!({"spec": {"containers": [{"name": "b", "image": "b:1"}]}}),
            Ok(pod(json!([{"name": "b", "image": "b:1"}, {"name": "a", "image": "a:1"}]))),
        ),
        (
            "a matching container is merged field by field",
            POD,
            pod(json!([{"name": "a", "image": "a:1", "command": ["x"]}])),
            json!({"spec": {"containers": [{"name": "a", "image": "a:2"}]}}),
            Ok(pod(json!([{"name": "a", "image": "a:2", "command": ["x"]}]))),
        ),
        (
            "$setElementOrder orders the merged list",
            POD,
            pod(json!([{"name": "a", "image": "a"}, {"name": "c", "image": "c"}])),
            json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}], "containers": [{"name": "b", "image": "b"}]}}),
            Ok(pod(json!([{"name": "a", "image": "a"}, {"name": "b", "image": "b"}, {"name": "c", "image": "c"}]))),
        ),
        (
            "$patch: delete removes the element with that merge key",
            POD,
            pod(json!([{"name": "a", "image": "a"}, {"name": "b", "image": "b"}])),
            json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
            Ok(pod(json!([{"name": "b", "image": "b"}]))),
        ),
        (
            "$patch: replace in a list replaces it",
            POD,
            pod(json!([{"name": "a", "image": "a"}, {"name": "b", "image": "b"}])),
            json!({"spec": {"containers": [{"name": "c", "image": "c"}, {"$patch": "replace"}]}}),
            Ok(pod(json!([{"name": "c", "image": "c"}]))),
        ),
        (
            "a list without a merge strategy (args) is replaced",
            POD,
            pod(json!([{"name": "a", "args": ["1", "2"]}])),
            json!({"spec": {"containers": [{"name": "a", "args": ["3"]}]}}),
            Ok(pod(json!([{"name": "a", "args": ["3"]}]))),
        ),
        (
            "tolerations (atomic) are replaced",
            POD,
            json!({"spec": {"tolerations": [{"key": "a", "operator": "Exists"}]}}),
            json!({"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}),
            Ok(json!({"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}})),
        ),
        (
            "container ports merge by containerPort; env by name",
            POD,
            pod(json!([{"name": "a", "ports": [{"containerPort": 80}], "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}])),
            json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 443}], "env": [{"name": "Y", "$patch": "delete"}]}]}}),
            Ok(pod(json!([{"name": "a", "ports": [{"containerPort": 443}, {"containerPort": 80}], "env": [{"name": "X", "value": "1"}]}]))),
        ),
        (
            "null removes a field; maps merge",
            CM,
            json!({"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"x": "1"}}),
            json!({"metadata": {"labels": {"a": null, "c": "3"}}, "data": null}),
            Ok(json!({"metadata": {"name": "c", "labels": {"b": "2", "c": "3"}}})),
        ),
        (
            "$patch: replace on a map",
            CM,
            json!({"data": {"x": "1", "y": "2"}}),
            json!({"data": {"$patch": "replace", "z": "3"}}),
            Ok(json!({"data": {"z": "3"}})),
        ),
        (
            "$patch: delete on a map",
            CM,
            json!({"metadata": {"name": "c"}, "data": {"x": "1"}}),
            json!({"data": {"$patch": "delete"}}),
            Ok(json!({"metadata": {"name": "c"}, "data": {}})),
        ),
        (
            "$retainKeys clears the other fields of a retainKeys struct",
            DEPLOY,
            json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
            Ok(json!({"spec": {"strategy": {"type": "Recreate"}}})),
        ),
        (
            "volumes merge by name and retain keys",
            POD,
            json!({"spec": {"volumes": [{"name": "v", "hostPath": {"path": "/x"}}, {"name": "w", "emptyDir": {}}]}}),
            json!({"spec": {"volumes": [{"name": "v", "$retainKeys": ["emptyDir", "name"], "emptyDir": {"medium": "Memory"}}]}}),
            Ok(json!({"spec": {"volumes": [{"name": "v", "emptyDir": {"medium": "Memory"}}, {"name": "w", "emptyDir": {}}]}})),
        ),
        (
            "fields of inline structs (Volume's VolumeSource) merge like the parent's",
            POD,
            json!({"spec": {"volumes": [{"name": "v", "emptyDir": {"medium": "Memory"}}]}}),
            json!({"spec": {"volumes": [{"name": "v", "emptyDir": {"sizeLimit": "1Gi"}}]}}),
            Ok(json!({"spec": {"volumes": [{"name": "v", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}]}})),
        ),
        (
            "finalizers merge as a set of scalars",
            CM,
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"finalizers": ["b", "c"]}}),
            Ok(json!({"metadata": {"finalizers": ["a", "b", "c"]}})),
        ),
        (
            "$deleteFromPrimitiveList removes scalars",
            CM,
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
            Ok(json!({"metadata": {"finalizers": ["a", "c"]}})),
        ),
        (
            "$setElementOrder for scalars",
            CM,
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"$setElementOrder/finalizers": ["b", "c", "a"], "finalizers": ["c"]}}),
            Ok(json!({"metadata": {"finalizers": ["b", "c", "a"]}})),
        ),
        (
            "a new field keeps its value with its directives applied",
            POD,
            json!({"spec": {}}),
            json!({"spec": {"containers": [{"name": "a", "image": "a"}, {"name": "b", "$patch": "delete"}]}}),
            Ok(json!({"spec": {"containers": [{"name": "a", "image": "a"}]}})),
        ),
        (
            "a value of another type replaces the original",
            CM,
            json!({"data": {"x": "1"}}),
            json!({"data": "oops"}),
            Ok(json!({"data": "oops"})),
        ),
        (
            "kind and apiVersion are fields of every object",
            CM,
            json!({"apiVersion": "v1", "kind": "ConfigMap"}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}}),
            Ok(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}})),
        ),
        (
            "an element without the merge key",
            POD,
            pod(json!([{"name": "a"}])),
            json!({"spec": {"containers": [{"image": "x"}]}}),
            Err((500, "map: map[image:x] does not contain declared merge key: name")),
        ),
        (
            "$retainKeys must name every field of the patch",
            DEPLOY,
            json!({"spec": {"strategy": {"type": "RollingUpdate"}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": {}}}}),
            Err((400, "invalid patch format of retainKeys")),
        ),
        (
            "$retainKeys must be a list",
            DEPLOY,
            json!({"spec": {"strategy": {}}}),
            json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
            Err((400, "invalid patch format of retainKeys")),
        ),
        (
            "an unknown $patch directive",
            CM,
            json!({"data": {"x": "1"}}),
            json!({"data": {"$patch": "explode"}}),
            Err((500, "unknown patch type: explode in map: map[$patch:explode]")),
        ),
        (
            "$patch: merge in a list",
            POD,
            pod(json!([{"name": "a"}])),
            json!({"spec": {"containers": [{"$patch": "merge"}]}}),
            Err((500, "merging lists cannot yet be specified in the patch")),
        ),
        (
            "lists of lists",
            CM,
            json!({"metadata": {"finalizers": [["a"]]}}),
            json!({"metadata": {"finalizers": [["b"]]}}),
            Err((422, "lists of lists are not supported")),
        ),
        (
            "a struct field that does not exist",
            POD,
            json!({"spec": {"nope": {"a": 1}}}),
            json!({"spec": {"nope": {"a": 2}}}),
            Err((500, "unable to find api field in struct PodSpec for the json field \"nope\"")),
        ),
        (
            "$setElementOrder must be a list",
            POD,
            pod(json!([{"name": "a"}])),
            json!({"spec": {"$setElementOrder/containers": {"name": "a"}}}),
            Err((400, "invalid patch format of setElementOrder list")),
        ),
        (
            "a patch list out of $setElementOrder's order",
            POD,
            pod(json!([])),
            json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}], "containers": [{"name": "b"}, {"name": "a"}]}}),
            Err((500, "The order in patch list:\n[map[name:b] map[name:a]]\n doesn't match $setElementOrder list:\n[map[name:a] map[name:b]]\n")),
        ),
    ]
}

#[test]
fn upstream_cases() {
    let mut failures = Vec::new();
    for (name, (api_version, kind), original, patch, want) in cases() {
        let root = schema::for_kind(api_version, kind).expect("a built-in kind");
        let got = apply(original, patch, root).map_err(|e| (e.code, e.message));
        let want = want.map_err(|(code, message)| (code, message.to_owned()));
        if got != want {
            failures.push(format!("{name}:\n  got  {got:?}\n  want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_patch_must_be_an_object() {
    let root = schema::for_kind("v1", "ConfigMap").unwrap();
    let err = apply(json!({}), json!([1]), root).unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (400, "invalid JSON document")
    );
}

fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        "[a-z$/]{0,6}".prop_map(Value::String),
        Just(json!("delete")),
        Just(json!("replace")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("name".to_owned()),
                    Just("$patch".to_owned()),
                    Just("$retainKeys".to_owned()),
                    Just("$setElementOrder/containers".to_owned()),
                    Just("$deleteFromPrimitiveList/finalizers".to_owned()),
                    Just("containers".to_owned()),
                    Just("spec".to_owned()),
                    Just("metadata".to_owned()),
                    Just("finalizers".to_owned()),
                    "[a-z]{1,4}",
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest::proptest! {
    /// Patches come from the network: any patch applies or errors, never panics.
    #[test]
    fn never_panics(original in json_value(), patch in json_value()) {
        let root = schema::for_kind("v1", "Pod").unwrap();
        let _ = apply(original, patch, root);
    }
}
