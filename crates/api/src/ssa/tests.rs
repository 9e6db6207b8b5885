//! Server-side apply cases, mirroring upstream's documented behaviour (the "Server-Side
//! Apply" reference page: ownership, conflicts, forcing, removal, Update managers).

use serde_json::{json, Value};

use super::*;
use crate::schema;

const T: &str = "2026-01-01T00:00:00Z";

fn deploy_ty() -> Ty<'static> {
    Ty::of_message(schema::for_kind("apps/v1", "Deployment").unwrap())
}

fn main_scope() -> Scope {
    Scope::Main {
        status_subresource: true,
    }
}

fn applier(name: &str) -> Manager<'_> {
    Manager {
        name,
        operation: Operation::Apply,
        api_version: "apps/v1",
        time: T,
        scope: main_scope(),
    }
}

fn updater(name: &str) -> Manager<'_> {
    Manager {
        name,
        operation: Operation::Update,
        api_version: "apps/v1",
        time: T,
        scope: main_scope(),
    }
}

fn deploy(replicas: i64, labels: Value, containers: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}}}
    })
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap().to_owned(),
                        e["operation"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn fields_of(obj: &Value, manager: &str) -> Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == manager)
        .map(|e| e["fieldsV1"].clone())
        .unwrap_or(Value::Null)
}

#[test]
fn apply_creates_and_records_ownership() {
    let config = deploy(
        2,
        json!({"app": "web"}),
        json!([{"name": "web", "image": "nginx"}]),
    );
    let obj = apply(None, &config, deploy_ty(), &applier("a"), false).unwrap();
    assert_eq!(obj["spec"]["replicas"], 2);
    assert_eq!(managers(&obj), [("a".to_owned(), "Apply".to_owned())]);
    assert_eq!(
        fields_of(&obj, "a"),
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}
                }
            }
        }),
        "selector is an atomic struct; list elements are owned with their fields"
    );
}

#[test]
fn reapplying_removes_what_is_no_longer_applied() {
    let v1 = deploy(
        2,
        json!({"app": "web", "tier": "front"}),
        json!([{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}, {"name": "log", "image": "busybox"}]),
    );
    let live = apply(None, &v1, deploy_ty(), &applier("a"), false).unwrap();
    let v2 = deploy(
        2,
        json!({"app": "web"}),
        json!([{"name": "web", "image": "nginx:2"}]),
    );
    let obj = apply(Some(&live), &v2, deploy_ty(), &applier("a"), false).unwrap();
    assert_eq!(obj["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(
        obj["spec"]["template"]["spec"]["containers"],
        json!([{"name": "web", "image": "nginx:2"}])
    );
}

#[test]
fn another_applier_conflicts_unless_forced() {
    let live = apply(
        None,
        &deploy(
            2,
            json!({"app": "web"}),
            json!([{"name": "web", "image": "nginx"}]),
        ),
        deploy_ty(),
        &applier("a"),
        false,
    )
    .unwrap();
    let b_config = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 5}});
    let err = apply(Some(&live), &b_config, deploy_ty(), &applier("b"), false).unwrap_err();
    assert_eq!(
        err.message(),
        "Apply failed with 1 conflict: conflict with \"a\": .spec.replicas"
    );

    // The same value is shared, not a conflict.
    let same = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2}});
    let shared = apply(Some(&live), &same, deploy_ty(), &applier("b"), false).unwrap();
    assert_eq!(
        fields_of(&shared, "b"),
        json!({"f:spec": {"f:replicas": {}}})
    );
    assert!(fields_of(&shared, "a")["f:spec"]["f:replicas"].is_object());

    // force takes ownership away from a.
    let forced = apply(Some(&live), &b_config, deploy_ty(), &applier("b"), true).unwrap();
    assert_eq!(forced["spec"]["replicas"], 5);
    assert!(fields_of(&forced, "a")["f:spec"]
        .get("f:replicas")
        .is_none());
    // a re-applying without replicas no longer removes them: b owns them.
    let a_again = apply(
        Some(&forced),
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}),
        deploy_ty(),
        &applier("a"),
        false,
    )
    .unwrap();
    assert_eq!(a_again["spec"]["replicas"], 5);
}

#[test]
fn updates_take_ownership_and_conflict_with_appliers() {
    let live = apply(
        None,
        &deploy(
            2,
            json!({"app": "web"}),
            json!([{"name": "web", "image": "nginx"}]),
        ),
        deploy_ty(),
        &applier("a"),
        false,
    )
    .unwrap();
    let mut edited = live.clone();
    edited["spec"]["replicas"] = json!(7);
    record_update(
        Some(&live),
        &mut edited,
        deploy_ty(),
        &updater("kubectl-edit"),
    );
    assert_eq!(
        fields_of(&edited, "kubectl-edit"),
        json!({"f:spec": {"f:replicas": {}}})
    );
    assert!(fields_of(&edited, "a")["f:spec"]
        .get("f:replicas")
        .is_none());

    // a applies replicas again with a different value: conflict with the Update manager.
    let err = apply(
        Some(&edited),
        &deploy(
            3,
            json!({"app": "web"}),
            json!([{"name": "web", "image": "nginx"}]),
        ),
        deploy_ty(),
        &applier("a"),
        false,
    )
    .unwrap_err();
    assert_eq!(
        err.message(),
        "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1: .spec.replicas"
    );
}

#[test]
fn several_conflicts_are_listed_by_manager() {
    let live = apply(
        None,
        &deploy(
            2,
            json!({"app": "web"}),
            json!([{"name": "web", "image": "nginx"}]),
        ),
        deploy_ty(),
        &applier("a"),
        false,
    )
    .unwrap();
    let config = deploy(
        4,
        json!({"app": "other"}),
        json!([{"name": "web", "image": "nginx:9"}]),
    );
    let err = apply(Some(&live), &config, deploy_ty(), &applier("b"), false).unwrap_err();
    assert_eq!(
        err.message(),
        "Apply failed with 3 conflicts: conflicts with \"a\":\n- .metadata.labels.app\n- .spec.replicas\n- .spec.template.spec.containers[name=\"web\"].image"
    );
}

#[test]
fn create_is_an_update_with_every_field() {
    let cm_ty = Ty::of_message(schema::for_kind("v1", "ConfigMap").unwrap());
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "uid": "u", "labels": {"a": "1"}}, "data": {"k": "v"}});
    let m = Manager {
        name: "kubectl-create",
        operation: Operation::Update,
        api_version: "v1",
        time: T,
        scope: Scope::Main {
            status_subresource: false,
        },
    };
    record_update(None, &mut cm, cm_ty, &m);
    assert_eq!(
        cm["metadata"]["managedFields"],
        json!([{"manager": "kubectl-create", "operation": "Update", "apiVersion": "v1", "time": T, "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {".": {}, "f:k": {}}, "f:metadata": {"f:labels": {".": {}, "f:a": {}}}}}])
    );
    // A request may reset ownership with `[{}]`.
    let mut reset = cm.clone();
    reset["metadata"]["managedFields"] = json!([{}]);
    reset["data"]["k"] = json!("w");
    record_update(Some(&cm), &mut reset, cm_ty, &m);
    assert_eq!(
        fields_of(&reset, "kubectl-create"),
        json!({"f:data": {"f:k": {}}})
    );
}

#[test]
fn status_writes_own_only_status() {
    let ty = deploy_ty();
    let live = deploy(2, json!({}), json!([]));
    let mut new = live.clone();
    new["status"] = json!({"replicas": 2});
    let m = Manager {
        name: "controller",
        operation: Operation::Update,
        api_version: "apps/v1",
        time: T,
        scope: Scope::Status,
    };
    record_update(Some(&live), &mut new, ty, &m);
    let entry = &new["metadata"]["managedFields"][0];
    assert_eq!(entry["subresource"], "status");
    assert_eq!(entry["fieldsV1"], json!({"f:status": {"f:replicas": {}}}));
    // Through the main resource, status is never owned.
    let mut main = live.clone();
    main["status"] = json!({"replicas": 3});
    main["spec"]["paused"] = json!(true);
    record_update(Some(&live), &mut main, ty, &updater("u"));
    assert_eq!(fields_of(&main, "u"), json!({"f:spec": {"f:paused": {}}}));
}

#[test]
fn associative_lists_merge_in_order() {
    let live = deploy(
        1,
        json!({}),
        json!([{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]),
    );
    let config = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "2"}, {"name": "b", "image": "2"}]}}}});
    let merged = typed::merge(Some(&live), &config, deploy_ty());
    let names: Vec<&str> = merged["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "c", "b"]);
    assert_eq!(
        merged["spec"]["template"]["spec"]["containers"][2]["image"],
        "2"
    );
}

fn arbitrary_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i16>().prop_map(|n| json!(n)),
        "[a-z]{0,3}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("spec".to_owned()),
                    Just("metadata".to_owned()),
                    Just("containers".to_owned()),
                    Just("template".to_owned()),
                    Just("name".to_owned()),
                    Just("managedFields".to_owned()),
                    "[a-z]{1,3}",
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest::proptest! {
    /// Configurations and live objects come from the network: never a panic.
    #[test]
    fn never_panics(live in arbitrary_json(), config in arbitrary_json(), force: bool) {
        let ty = deploy_ty();
        if let Ok(mut out) = apply(Some(&live), &config, ty, &applier("a"), force) {
            let before = out.clone();
            record_update(Some(&before), &mut out, ty, &updater("u"));
        }
        let mut new = config.clone();
        record_update(Some(&live), &mut new, ty, &updater("u"));
    }
}

#[test]
fn custom_resource_lists_follow_the_crd_schema() {
    let schema = crate::structural::Schema::parse(&json!({
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {
                "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}},
                "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "args": {"type": "array", "items": {"type": "string"}},
                "selector": {"type": "object", "x-kubernetes-map-type": "atomic", "additionalProperties": {"type": "string"}}
            }}
        }
    }));
    let ty = Ty::of_schema(&schema);
    let m = |name| Manager {
        name,
        operation: Operation::Apply,
        api_version: "example.com/v1",
        time: T,
        scope: Scope::Main {
            status_subresource: true,
        },
    };
    let cr = |spec: Value| json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "labels": {"a": "1"}}, "spec": spec});
    let live = apply(
        None,
        &cr(json!({"ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}], "tags": ["x"], "args": ["1"], "selector": {"app": "w"}})),
        ty,
        &m("a"),
        false,
    )
    .unwrap();
    assert_eq!(
        fields_of(&live, "a"),
        json!({"f:metadata": {"f:labels": {"f:a": {}}}, "f:spec": {
            "f:args": {},
            "f:ports": {"k:{\"name\":\"http\"}": {".": {}, "f:name": {}, "f:port": {}}, "k:{\"name\":\"https\"}": {".": {}, "f:name": {}, "f:port": {}}},
            "f:selector": {},
            "f:tags": {"v:\"x\"": {}}
        }})
    );
    // Another manager adds an element and a tag: merged, not replaced.
    let live = apply(
        Some(&live),
        &cr(json!({"ports": [{"name": "admin", "port": 9000}], "tags": ["y"]})),
        ty,
        &m("b"),
        false,
    )
    .unwrap();
    let names: Vec<&str> = live["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["http", "https", "admin"]);
    assert_eq!(live["spec"]["tags"], json!(["x", "y"]));
    // a drops https: removed; b's element stays. Changing b's port conflicts.
    let live = apply(
        Some(&live),
        &cr(json!({"ports": [{"name": "http", "port": 80}], "tags": ["x"], "args": ["1"], "selector": {"app": "w"}})),
        ty,
        &m("a"),
        false,
    )
    .unwrap();
    let names: Vec<&str> = live["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["http", "admin"]);
    let err = apply(
        Some(&live),
        &cr(json!({"ports": [{"name": "admin", "port": 9001}]})),
        ty,
        &m("a"),
        false,
    )
    .unwrap_err();
    assert_eq!(
        err.message(),
        "Apply failed with 1 conflict: conflict with \"b\": .spec.ports[name=\"admin\"].port"
    );
}

#[test]
fn a_stale_map_keeps_the_entries_still_applied() {
    // After kubectl's client-side-apply migration, the applier owns `labels` itself (an
    // Update-style member) and its entries; re-applying with one entry prunes only the other.
    let mut live = deploy(
        1,
        json!({"app": "web", "tier": "front"}),
        json!([{"name": "web", "image": "nginx"}]),
    );
    let set = json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}, "f:tier": {}}}, "f:spec": {"f:replicas": {}}});
    live["metadata"]["managedFields"] = json!([{"manager": "a", "operation": "Apply", "apiVersion": "apps/v1", "time": T, "fieldsType": "FieldsV1", "fieldsV1": set}]);
    let config = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"replicas": 1}});
    let out = apply(Some(&live), &config, deploy_ty(), &applier("a"), false).unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
}

#[test]
fn reapplying_prunes_list_elements_an_applier_took_over() {
    let containers = json!([{"name": "web", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443, "protocol": "TCP"}]}]);
    let mut live = deploy(1, json!({"app": "web"}), containers);
    let set = json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {".": {}, "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {},
        "f:ports": {"k:{\"containerPort\":443,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}, "f:protocol": {}},
                    "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}, "f:protocol": {}}}}}}}}});
    live["metadata"]["managedFields"] = json!([{"manager": "a", "operation": "Apply", "apiVersion": "apps/v1", "time": T, "fieldsType": "FieldsV1", "fieldsV1": set}]);
    let config = deploy(
        1,
        json!({"app": "web"}),
        json!([{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]),
    );
    let out = apply(Some(&live), &config, deploy_ty(), &applier("a"), false).unwrap();
    // The pruned list keeps what someone owns; the unowned `protocol` goes too, as upstream's
    // prune drops it (the server's defaulting puts it back).
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 80}])
    );
}
