//! The Node authorizer over the real HTTPS port: a kubelet's client certificate
//! (`system:node:<name>` in `system:nodes`) reads the secret its pod mounts, is refused
//! another with upstream's message, renews only its own Lease, and loses access when
//! the pod goes.

mod support;

use std::time::{Duration, Instant};

use support::Cluster;

fn wait_for(c: &Cluster, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "timed out waiting for {what}\n--- server log ---\n{}",
        c.log()
    );
}

#[test]
fn a_node_reads_only_what_its_pods_reference() {
    let c = Cluster::start(&["--disable-scheduler"]);
    let n1 = c.user_kubeconfig("system:node:n1", &["system:nodes"]);
    let n2 = c.user_kubeconfig("system:node:n2", &["system:nodes"]);
    c.ok(&["create", "namespace", "ns"]);
    c.wait_for_default_sa("ns");
    c.ok(&[
        "create",
        "secret",
        "generic",
        "mounted",
        "-n",
        "ns",
        "--from-literal=k=v",
    ]);
    c.ok(&[
        "create",
        "secret",
        "generic",
        "other",
        "-n",
        "ns",
        "--from-literal=k=v",
    ]);
    c.ok(&[
        "create",
        "configmap",
        "conf",
        "-n",
        "ns",
        "--from-literal=k=v",
    ]);
    c.create(
        r#"apiVersion: v1
kind: Pod
metadata: {name: p, namespace: ns}
spec:
  nodeName: n1
  containers:
  - name: c
    image: busybox
    envFrom: [{configMapRef: {name: conf}}]
  volumes:
  - name: s
    secret: {secretName: mounted}
"#,
    );
    let get = |kc: &std::path::Path, args: &[&str]| {
        let out = c.kubectl_as(kc, args);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    wait_for(&c, "n1 to read its pod's secret", || {
        get(&n1, &["get", "secret", "mounted", "-n", "ns"]).0
    });
    assert!(get(&n1, &["get", "configmap", "conf", "-n", "ns"]).0);
    let (ok, err) = get(&n1, &["get", "secret", "other", "-n", "ns"]);
    assert!(!ok);
    assert!(
        err.contains(r#"secrets "other" is forbidden: User "system:node:n1" cannot get resource "secrets" in API group "" in the namespace "ns": no relationship found between node 'n1' and this object"#),
        "{err}"
    );
    let (ok, err) = get(&n2, &["get", "secret", "mounted", "-n", "ns"]);
    assert!(!ok);
    assert!(
        err.contains("no relationship found between node 'n2'"),
        "{err}"
    );
    // Listing all secrets is not reading one the node needs.
    assert!(!get(&n1, &["get", "secrets", "-n", "ns"]).0);

    // The node rules: pods, its Node; its own Lease only.
    assert!(get(&n1, &["get", "pods", "-A"]).0);
    let lease = |name: &str| {
        format!(
            "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {{name: {name}, namespace: kube-node-lease}}\nspec: {{holderIdentity: {name}}}\n"
        )
    };
    let apply = |kc: &std::path::Path, yaml: &str| {
        let path = c.data_dir().join("lease.yaml");
        std::fs::write(&path, yaml).unwrap();
        let out = c.kubectl_as(
            kc,
            &["apply", "--server-side", "-f", path.to_str().unwrap()],
        );
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = apply(&n1, &lease("n1"));
    assert!(ok, "{err}");
    let (ok, err) = apply(&n1, &lease("n2"));
    assert!(!ok);
    assert!(
        err.contains("can only access node lease with the same name as the requesting node"),
        "{err}"
    );

    // A restarted server knows the graph from its first request.
    let c = if c.on_etcd() {
        c
    } else {
        let (_, dir) = c.stop();
        let c = Cluster::start_in(dir, &["--disable-scheduler"]);
        // The new server listens on a new port.
        let n1 = c.user_kubeconfig("system:node:n1", &["system:nodes"]);
        let out = c.kubectl_as(&n1, &["get", "secret", "mounted", "-n", "ns"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        c
    };
    let n1 = c.user_kubeconfig("system:node:n1", &["system:nodes"]);
    let get = |kc: &std::path::Path, args: &[&str]| c.kubectl_as(kc, args).status.success();

    // The pod goes: so does the access.
    c.ok(&[
        "delete",
        "pod",
        "p",
        "-n",
        "ns",
        "--grace-period=0",
        "--force",
    ]);
    wait_for(&c, "n1 to lose the secret", || {
        !get(&n1, &["get", "secret", "mounted", "-n", "ns"])
    });
}
