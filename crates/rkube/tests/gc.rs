//! The garbage collector end to end: `kubectl delete --cascade=background|foreground|
//! orphan` on an owner whose dependents (a pod and a ConfigMap, made by hand with
//! ownerReferences) are handled by the in-process garbage-collector-controller; a
//! dependent whose owner does not exist is deleted.

mod support;

use std::time::{Duration, Instant};

use support::Cluster;

/// Polls until `check` holds (30 s), panicking with `what` and the server log.
fn eventually(c: &Cluster, what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n--- server log ---\n{}",
            c.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn exists(c: &Cluster, ns: &str, what: &str) -> bool {
    c.kubectl(&["get", what, "-n", ns, "-o", "name"])
        .status
        .success()
}

/// An owner ConfigMap `owner` in a new namespace `ns` with two dependents, pod
/// `dep-pod` and ConfigMap `dep-cm` (`dep_cm_finalizers` on it), both blocking the
/// owner's deletion; returns the owner's uid.
fn owner_with_dependents(c: &Cluster, ns: &str, dep_cm_finalizers: &str) -> String {
    c.ok(&["create", "namespace", ns]);
    c.wait_for_default_sa(ns);
    c.ok(&[
        "create",
        "configmap",
        "owner",
        "-n",
        ns,
        "--from-literal=a=b",
    ]);
    let uid = c.ok(&[
        "get",
        "configmap",
        "owner",
        "-n",
        ns,
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let owner_ref = format!(
        "ownerReferences: [{{apiVersion: v1, kind: ConfigMap, name: owner, uid: {uid}, controller: true, blockOwnerDeletion: true}}]"
    );
    c.create(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: dep-pod\n  namespace: {ns}\n  {owner_ref}\nspec:\n  containers: [{{name: c, image: busybox}}]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dep-cm\n  namespace: {ns}\n  finalizers: [{dep_cm_finalizers}]\n  {owner_ref}\n"
    ));
    uid
}

#[test]
fn background_cascade_deletes_dependents_after_the_owner() {
    let c = Cluster::start(&[]);
    owner_with_dependents(&c, "bg", "");
    let out = c.ok(&[
        "delete",
        "configmap",
        "owner",
        "-n",
        "bg",
        "--cascade=background",
    ]);
    assert_eq!(out.trim(), "configmap \"owner\" deleted from bg namespace");
    assert!(
        !exists(&c, "bg", "configmap/owner"),
        "the owner goes at once"
    );
    eventually(&c, "the dependents to be collected", || {
        !exists(&c, "bg", "pod/dep-pod") && !exists(&c, "bg", "configmap/dep-cm")
    });
}

#[test]
fn foreground_cascade_keeps_the_owner_until_blocking_dependents_are_gone() {
    let c = Cluster::start(&[]);
    owner_with_dependents(&c, "fg", "example.com/hold");
    c.ok(&[
        "delete",
        "configmap",
        "owner",
        "-n",
        "fg",
        "--cascade=foreground",
        "--wait=false",
    ]);
    // The pod goes; the held ConfigMap is marked for deletion and blocks its owner.
    eventually(&c, "the pod to be collected", || {
        !exists(&c, "fg", "pod/dep-pod")
    });
    eventually(&c, "the held dependent to be marked for deletion", || {
        !c.ok(&[
            "get",
            "configmap",
            "dep-cm",
            "-n",
            "fg",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ])
        .is_empty()
    });
    std::thread::sleep(Duration::from_millis(500));
    let owner = c.ok(&[
        "get",
        "configmap",
        "owner",
        "-n",
        "fg",
        "-o",
        "jsonpath={.metadata.finalizers} {.metadata.deletionTimestamp}",
    ]);
    assert!(owner.starts_with("[\"foregroundDeletion\"] 20"), "{owner}");
    // Releasing the dependent lets the owner go.
    c.ok(&[
        "patch",
        "configmap",
        "dep-cm",
        "-n",
        "fg",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    eventually(&c, "the owner to be deleted", || {
        !exists(&c, "fg", "configmap/owner") && !exists(&c, "fg", "configmap/dep-cm")
    });
}

#[test]
fn orphan_cascade_keeps_dependents_without_the_reference() {
    let c = Cluster::start(&[]);
    owner_with_dependents(&c, "or", "");
    // kubectl waits until the owner is gone, which needs the collector's orphaning.
    c.ok(&[
        "delete",
        "configmap",
        "owner",
        "-n",
        "or",
        "--cascade=orphan",
        "--timeout=30s",
    ]);
    assert!(!exists(&c, "or", "configmap/owner"));
    std::thread::sleep(Duration::from_millis(500));
    for dep in ["pod/dep-pod", "configmap/dep-cm"] {
        let refs = c.ok(&[
            "get",
            dep,
            "-n",
            "or",
            "-o",
            "jsonpath={.metadata.ownerReferences}",
        ]);
        assert_eq!(refs, "", "{dep} keeps a reference to its deleted owner");
    }
}

#[test]
fn a_dependent_of_an_absent_owner_is_deleted() {
    let c = Cluster::start(&[]);
    c.ok(&["create", "namespace", "dangling"]);
    // The owner's name exists but with another uid: the reference dangles.
    c.ok(&["create", "configmap", "owner", "-n", "dangling"]);
    c.create(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: orphaned\n  namespace: dangling\n  ownerReferences: [{apiVersion: v1, kind: ConfigMap, name: owner, uid: 00000000-0000-0000-0000-000000000001}]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: unowned\n  namespace: dangling\n",
    );
    eventually(&c, "the dangling dependent to be collected", || {
        !exists(&c, "dangling", "configmap/orphaned")
    });
    assert!(exists(&c, "dangling", "configmap/owner"));
    assert!(exists(&c, "dangling", "configmap/unowned"));
}

#[test]
fn a_custom_resource_owner_cascades_too() {
    let c = Cluster::start(&[]);
    c.create(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {plural: widgets, kind: Widget}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}\n",
    );
    eventually(&c, "the CRD to be established", || {
        c.kubectl(&["get", "widgets", "-n", "default"])
            .status
            .success()
    });
    c.create("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: default}\n");
    let uid = c.ok(&[
        "get",
        "widget",
        "w",
        "-n",
        "default",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    c.create(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: part\n  namespace: default\n  ownerReferences: [{{apiVersion: example.com/v1, kind: Widget, name: w, uid: {uid}}}]\n"
    ));
    // Owned by a live widget, the ConfigMap stays.
    std::thread::sleep(Duration::from_secs(1));
    assert!(exists(&c, "default", "configmap/part"));
    c.ok(&["delete", "widget", "w", "-n", "default"]);
    eventually(&c, "the widget's ConfigMap to be collected", || {
        !exists(&c, "default", "configmap/part")
    });
}
