//! Namespace deletion end to end: `kubectl delete namespace` with the in-process
//! namespace-controller removes the namespace's content (built-in objects and custom
//! resources) and then the namespace; a custom resource whose finalizer nobody removes
//! keeps the namespace Terminating with upstream's conditions naming it, and the
//! namespace goes as soon as the finalizer is removed.

mod support;

use std::time::{Duration, Instant};

use support::Cluster;

const WIDGETS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

/// Polls `kubectl args` until its stdout satisfies `check` (30 s); returns it.
fn wait_for(c: &Cluster, args: &[&str], what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = c.kubectl(args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if check(&text) && (out.status.success() || text.is_empty()) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: last output {text:?} {}\n--- server log ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            c.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until namespace `ns` no longer exists.
fn wait_gone(c: &Cluster, ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = c.kubectl(&["get", "namespace", ns, "-o", "name"]);
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("NotFound") || err.contains("not found"),
                "{err}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "namespace {ns} still exists: {}\n--- server log ---\n{}",
            c.ok(&["get", "namespace", ns, "-o", "yaml"]),
            c.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn establish_widgets(c: &Cluster) {
    c.create(WIDGETS);
    wait_for(
        c,
        &[
            "get",
            "crd",
            "widgets.example.com",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
        ],
        "the CRD to be established",
        |s| s == "True",
    );
}

#[test]
fn deleting_a_namespace_removes_its_content_then_the_namespace() {
    let c = Cluster::start(&[]);
    establish_widgets(&c);
    c.ok(&["create", "namespace", "doomed"]);
    c.wait_for_default_sa("doomed");
    c.ok(&[
        "create",
        "configmap",
        "cm",
        "-n",
        "doomed",
        "--from-literal=a=b",
    ]);
    c.ok(&[
        "create",
        "secret",
        "generic",
        "s",
        "-n",
        "doomed",
        "--from-literal=a=b",
    ]);
    c.create(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: doomed}\nspec: {size: 1}\n",
    );
    c.ok(&["create", "namespace", "kept"]);
    c.ok(&[
        "create",
        "configmap",
        "cm",
        "-n",
        "kept",
        "--from-literal=a=b",
    ]);

    // kubectl waits for the namespace to be gone.
    let out = c.ok(&["delete", "namespace", "doomed", "--timeout=30s"]);
    assert_eq!(out.trim(), "namespace \"doomed\" deleted");
    wait_gone(&c, "doomed");
    // Its content went with it; the other namespace's did not.
    for ns_obj in ["configmap/cm", "secret/s", "widget.example.com/w"] {
        let out = c.kubectl(&["get", ns_obj, "-n", "doomed"]);
        assert!(!out.status.success(), "{ns_obj} survived its namespace");
    }
    c.ok(&["get", "configmap", "cm", "-n", "kept"]);
    // Recreating the namespace starts empty.
    c.ok(&["create", "namespace", "doomed"]);
    let out = c.ok(&["get", "configmaps,widgets", "-n", "doomed", "-o", "name"]);
    assert!(
        !out.contains("configmap/cm") && !out.contains("widget"),
        "{out}"
    );
}

#[test]
fn a_finalizer_keeps_the_namespace_terminating_and_the_conditions_name_it() {
    let c = Cluster::start(&[]);
    establish_widgets(&c);
    c.ok(&["create", "namespace", "stuck"]);
    c.create(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: stuck, finalizers: [example.com/blocker]}\n",
    );
    c.ok(&[
        "create",
        "configmap",
        "cm",
        "-n",
        "stuck",
        "--from-literal=a=b",
    ]);
    c.ok(&["delete", "namespace", "stuck", "--wait=false"]);

    let cond = |t: &str| {
        format!("jsonpath={{.status.conditions[?(@.type==\"{t}\")].status}}|{{.status.conditions[?(@.type==\"{t}\")].reason}}|{{.status.conditions[?(@.type==\"{t}\")].message}}")
    };
    let finalizers = cond("NamespaceFinalizersRemaining");
    let got = wait_for(
        &c,
        &["get", "namespace", "stuck", "-o", &finalizers],
        "NamespaceFinalizersRemaining",
        |s| s.starts_with("True|"),
    );
    assert_eq!(
        got,
        "True|SomeFinalizersRemain|Some content in the namespace has finalizers remaining: example.com/blocker in 1 resource instances"
    );
    let remaining = cond("NamespaceContentRemaining");
    assert_eq!(
        c.ok(&["get", "namespace", "stuck", "-o", &remaining]),
        "True|SomeResourcesRemain|Some resources are remaining: widgets.example.com has 1 resource instances"
    );
    let discovery = cond("NamespaceDeletionDiscoveryFailure");
    assert_eq!(
        c.ok(&["get", "namespace", "stuck", "-o", &discovery]),
        "False|ResourcesDiscovered|All resources successfully discovered"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "namespace",
            "stuck",
            "-o",
            "jsonpath={.status.phase} {.spec.finalizers}"
        ]),
        "Terminating [\"kubernetes\"]"
    );
    // The rest of the content is gone already; no new content may be created.
    assert!(!c
        .kubectl(&["get", "configmap", "cm", "-n", "stuck"])
        .status
        .success());
    let err = c.fails(&["create", "configmap", "new", "-n", "stuck"]);
    assert!(err.contains("because it is being terminated"), "{err}");
    // The widget waits for its finalizer, marked for deletion.
    let ts = c.ok(&[
        "get",
        "widget",
        "w",
        "-n",
        "stuck",
        "-o",
        "jsonpath={.metadata.deletionTimestamp}",
    ]);
    assert!(!ts.is_empty());

    // Removing the blocker lets the deletion finish promptly.
    let removed = Instant::now();
    c.ok(&[
        "patch",
        "widget",
        "w",
        "-n",
        "stuck",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    wait_gone(&c, "stuck");
    assert!(
        removed.elapsed() < Duration::from_secs(15),
        "the namespace took {:?} to go after its last finalizer was removed",
        removed.elapsed()
    );
}

#[test]
fn an_unavailable_apiservice_blocks_namespace_deletion_until_it_is_removed() {
    let c = Cluster::start(&[]);
    // An APIService whose backend is a loopback port nothing listens on.
    let dead_port = rkube_testkit::free_port();
    c.ok(&["create", "namespace", "ext"]);
    c.create(&format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: dead-api, namespace: ext}}
spec:
  ports: [{{name: https, port: 443, targetPort: 8443}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: dead-api-1
  namespace: ext
  labels: {{kubernetes.io/service-name: dead-api}}
addressType: IPv4
endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]
ports: [{{name: https, port: {dead_port}, protocol: TCP}}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: v1alpha1.dead.example.com}}
spec:
  group: dead.example.com
  version: v1alpha1
  groupPriorityMinimum: 1000
  versionPriority: 15
  service: {{namespace: ext, name: dead-api, port: 443}}
  insecureSkipTLSVerify: true
"#
    ));
    wait_for(
        &c,
        &[
            "get",
            "apiservice",
            "v1alpha1.dead.example.com",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Available\")].status}",
        ],
        "Available=False",
        |s| s == "False",
    );
    c.ok(&["create", "namespace", "doomed"]);
    c.ok(&[
        "create",
        "configmap",
        "cm",
        "-n",
        "doomed",
        "--from-literal=a=b",
    ]);
    c.ok(&["delete", "namespace", "doomed", "--wait=false"]);
    let t = "NamespaceDeletionDiscoveryFailure";
    let cond = format!("jsonpath={{.status.conditions[?(@.type==\"{t}\")].status}}|{{.status.conditions[?(@.type==\"{t}\")].reason}}|{{.status.conditions[?(@.type==\"{t}\")].message}}");
    let got = wait_for(
        &c,
        &["get", "namespace", "doomed", "-o", &cond],
        "NamespaceDeletionDiscoveryFailure=True",
        |s| s.starts_with("True|"),
    );
    assert!(
        got.starts_with("True|DiscoveryFailed|Discovery failed for some groups, 1 failing: "),
        "{got}"
    );
    assert!(got.contains("dead.example.com/v1alpha1"), "{got}");
    // Blocked: still Terminating.
    assert_eq!(
        c.ok(&[
            "get",
            "namespace",
            "doomed",
            "-o",
            "jsonpath={.status.phase}"
        ]),
        "Terminating"
    );
    // Removing the broken APIService lets the deletion finish.
    c.ok(&["delete", "apiservice", "v1alpha1.dead.example.com"]);
    wait_gone(&c, "doomed");
}
