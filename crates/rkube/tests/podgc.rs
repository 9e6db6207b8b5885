//! The pod garbage collector end to end: a pod bound to a node that is deleted is marked
//! Failed with upstream's `DisruptionTarget` condition and removed once the node has
//! stayed missing through the quarantine (40 s, checked every 20 s).

mod support;

use std::time::{Duration, Instant};

use support::Cluster;

#[test]
fn pods_of_a_deleted_node_are_collected() {
    let c = Cluster::start(&[]);
    c.create("apiVersion: v1\nkind: Node\nmetadata: {name: doomed-node}\n");
    c.wait_for_default_sa("default");
    c.create(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: stranded, namespace: default}\nspec:\n  nodeName: doomed-node\n  containers: [{name: c, image: busybox}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: unbound, namespace: default}\nspec:\n  nodeSelector: {nowhere: \"true\"}\n  containers: [{name: c, image: busybox}]\n",
    );
    c.ok(&["delete", "node", "doomed-node"]);
    let deadline = Instant::now() + Duration::from_secs(90);
    while c
        .kubectl(&["get", "pod", "stranded", "-o", "name"])
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "pod stranded on a deleted node was not collected\n--- server log ---\n{}",
            c.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Only the orphan went.
    c.ok(&["get", "pod", "unbound"]);
}
