//! CustomResourceDefinitions end to end with kubectl 1.37 and the Python client: a CRD
//! is served as soon as it is established, its custom resources are validated, pruned
//! and defaulted by its schema, printed with its columns, scaled, split into spec and
//! status, explained, served at several versions, kept across restarts, and deleted with
//! the CRD.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::Cluster;

const WIDGETS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    plural: widgets
    kind: Widget
    shortNames: [wd]
    categories: [all]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.selector
    additionalPrinterColumns:
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    - name: Phase
      type: string
      jsonPath: .status.phase
    - name: Ready
      type: string
      jsonPath: .status.conditions[?(@.type=="Ready")].status
      priority: 1
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        type: object
        description: A Widget is a configurable thing.
        properties:
          spec:
            type: object
            description: The widget that is wanted.
            properties:
              replicas:
                type: integer
                description: How many copies of the widget to run.
                minimum: 0
                default: 1
              size:
                type: string
                enum: [small, large]
                default: small
          status:
            type: object
            properties:
              phase: {type: string}
              replicas: {type: integer}
              selector: {type: string}
              conditions:
                type: array
                items:
                  type: object
                  properties:
                    type: {type: string}
                    status: {type: string}
"#;

fn widget(name: &str, spec: &str) -> String {
    format!("apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {name}\n  labels:\n    app: {name}\nspec:\n{spec}\n")
}

fn apply(c: &Cluster, yaml: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["apply", "-f", "-"];
    args.extend_from_slice(extra);
    c.kubectl_with(&args, Some(yaml), &[])
}

fn install_widgets(c: &Cluster) {
    let out = apply(c, WIDGETS, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.ok(&[
        "wait",
        "--for",
        "condition=established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ]);
}

fn lines(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[test]
fn custom_resources_with_kubectl() {
    let c = Cluster::start(&[]);
    install_widgets(&c);
    // The CRD's status, as upstream's controllers leave it.
    let status = c.ok(&["get", "crd", "widgets.example.com", "-o", "jsonpath={.status.acceptedNames.singular} {.status.acceptedNames.listKind} {.status.storedVersions} {.status.conditions[?(@.type==\"NamesAccepted\")].reason}"]);
    assert_eq!(status, "widget WidgetList [\"v1\"] NoConflicts");

    let out = apply(&c, &widget("w1", "  replicas: 2"), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = lines(&c.ok(&["get", "wd"]));
    assert_eq!(table[0], ["NAME", "REPLICAS", "PHASE", "AGE"]);
    // A column whose path finds nothing is an empty (nil) cell, as upstream sends it.
    assert_eq!(&table[1][..2], ["w1", "2"]);
    assert_eq!(table[1].len(), 3, "{table:?}");
    let wide = lines(&c.ok(&["get", "widgets", "-o", "wide"]));
    assert_eq!(wide[0], ["NAME", "REPLICAS", "PHASE", "READY", "AGE"]);
    let all = c.ok(&["get", "all"]);
    assert!(all.contains("widget.example.com/w1"), "{all}");

    // Schema violations: upstream's messages, nothing written.
    let bad = widget("w2", "  replicas: \"many\"\n  size: medium");
    let out = apply(&c, &bad, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"The Widget "w2" is invalid: "#)
            && err.contains(r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#)
            && err.contains(r#"spec.size: Unsupported value: "medium": supported values: "small", "large""#),
        "{err}"
    );
    let out = apply(&c, &widget("w2", "  replicas: -1"), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0"),
        "{err}"
    );
    assert!(c
        .fails(&["get", "widget", "w2"])
        .contains(r#"widgets.example.com "w2" not found"#));

    // Unknown fields: rejected under strict validation, pruned otherwise; defaults applied.
    let sloppy = widget("w3", "  colour: red");
    let err =
        String::from_utf8_lossy(&apply(&c, &sloppy, &["--validate=strict"]).stderr).into_owned();
    assert!(
        err.contains(r#"Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field "spec.colour""#),
        "{err}"
    );
    let out = apply(&c, &sloppy, &["--validate=false"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "widget", "w3", "-o", "json"])).unwrap();
    assert_eq!(
        json["spec"],
        serde_json::json!({"replicas": 1, "size": "small"})
    );
    assert_eq!(json["metadata"]["generation"], 1);

    // Selectors.
    let names = c.ok(&["get", "wd", "-l", "app=w3", "-o", "name"]);
    assert_eq!(names.trim(), "widget.example.com/w3");
    let names = c.ok(&[
        "get",
        "wd",
        "--field-selector",
        "metadata.name=w1",
        "-o",
        "name",
    ]);
    assert_eq!(names.trim(), "widget.example.com/w1");

    // scale, status, generation.
    c.ok(&["scale", "widget", "w1", "--replicas=5"]);
    assert_eq!(
        c.ok(&[
            "get",
            "wd",
            "w1",
            "-o",
            "jsonpath={.spec.replicas} {.metadata.generation}"
        ]),
        "5 2"
    );
    c.ok(&["patch", "widget", "w1", "--subresource=status", "--type=merge", "-p",
        r#"{"status":{"phase":"Running","replicas":5,"selector":"app=w1","conditions":[{"type":"Ready","status":"True"}]},"spec":{"replicas":9}}"#]);
    assert_eq!(
        c.ok(&[
            "get",
            "wd",
            "w1",
            "-o",
            "jsonpath={.spec.replicas} {.status.phase} {.metadata.generation}"
        ]),
        "5 Running 2",
        "a status write changes only status"
    );
    let wide = lines(&c.ok(&["get", "wd", "w1", "-o", "wide"]));
    assert_eq!(&wide[1][..4], ["w1", "5", "Running", "True"]);
    let scale = c.ok(&[
        "get",
        "--raw",
        "/apis/example.com/v1/namespaces/default/widgets/w1/scale",
    ]);
    let scale: serde_json::Value = serde_json::from_str(&scale).unwrap();
    assert_eq!(
        scale["status"],
        serde_json::json!({"replicas": 5, "selector": "app=w1"})
    );
    c.ok(&[
        "patch",
        "widget",
        "w1",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":3},"status":{"phase":"Ignored"}}"#,
    ]);
    assert_eq!(
        c.ok(&[
            "get",
            "wd",
            "w1",
            "-o",
            "jsonpath={.spec.replicas} {.status.phase} {.metadata.generation}"
        ]),
        "3 Running 3"
    );
    let err = c.fails(&["patch", "widget", "w1", "-p", r#"{"spec":{"replicas":4}}"#]);
    assert!(
        err.contains("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"),
        "{err}"
    );
    c.ok(&[
        "patch",
        "widget",
        "w1",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/size","value":"large"}]"#,
    ]);

    // kubectl explain reads the CRD's schema from OpenAPI v3.
    let explain = c.ok(&["explain", "widget"]);
    assert!(
        explain.contains("A Widget is a configurable thing."),
        "{explain}"
    );
    let explain = c.ok(&["explain", "widget.spec"]);
    assert!(
        explain.contains("How many copies of the widget to run."),
        "{explain}"
    );

    // Deleting the CRD deletes its objects and stops serving it.
    c.ok(&["delete", "crd", "widgets.example.com", "--timeout=30s"]);
    let resources = c.ok(&["api-resources"]);
    assert!(!resources.contains("example.com"), "{resources}");
    assert!(c
        .fails(&["get", "wd"])
        .contains("the server doesn't have a resource type \"wd\""));
    install_widgets(&c);
    assert!(
        c.ok(&["get", "widgets"]).is_empty(),
        "the old objects are gone"
    );
}

const GADGETS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.org
spec:
  group: example.org
  scope: Cluster
  names: {plural: gadgets, kind: Gadget}
  versions:
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              colour: {type: string, default: blue}
"#;

#[test]
fn versions_restart_and_name_conflicts() {
    let (_etcd, flags) = support::persistent_datastore();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let c = Cluster::start(&flags);
    let out = apply(&c, GADGETS, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.ok(&[
        "wait",
        "--for",
        "condition=established",
        "crd/gadgets.example.org",
        "--timeout=20s",
    ]);
    c.create(
        "apiVersion: example.org/v1beta1\nkind: Gadget\nmetadata:\n  name: g\nspec:\n  size: 3\n",
    );
    // Without a row of printer columns: NAME and AGE.
    assert_eq!(lines(&c.ok(&["get", "gadgets"]))[0], ["NAME", "AGE"]);
    let v1: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "gadgets.v1.example.org", "g", "-o", "json"])).unwrap();
    assert_eq!(v1["apiVersion"], "example.org/v1");
    assert_eq!(
        v1["spec"],
        serde_json::json!({"size": 3, "colour": "blue"}),
        "read at v1, with v1's defaults"
    );
    let beta = c.ok(&["get", "--raw", "/apis/example.org/v1beta1/gadgets/g"]);
    let beta: serde_json::Value = serde_json::from_str(&beta).unwrap();
    assert_eq!(beta["apiVersion"], "example.org/v1beta1");
    assert_eq!(beta["spec"]["size"], 3);
    let groups = c.ok(&["get", "--raw", "/apis/example.org"]);
    assert!(
        groups.contains(r#""preferredVersion":{"groupVersion":"example.org/v1","version":"v1"}"#),
        "{groups}"
    );

    // A second CRD claiming the same kind in the group is not accepted.
    let clash = GADGETS
        .replace("gadgets.example.org", "widgets.example.org")
        .replace("plural: gadgets", "plural: widgets");
    let out = apply(&c, &clash, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut condition = String::new();
    for _ in 0..50 {
        condition = c.ok(&[
            "get",
            "crd",
            "widgets.example.org",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"NamesAccepted\")]}",
        ]);
        if condition.contains("False") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Upstream checks kind, then listKind; the last conflict found names the condition.
    assert!(
        condition.contains(r#""reason":"ListKindConflict""#)
            && condition.contains(r#""message":"\"GadgetList\" is already in use""#),
        "{condition}"
    );
    let established = c.ok(&[
        "get",
        "crd",
        "widgets.example.org",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
    ]);
    assert_eq!(established, "False");

    // A restarted server serves its CRDs again.
    let (status, dir) = c.stop();
    assert!(status.success());
    let c = Cluster::start_in(dir, &flags);
    assert_eq!(
        c.ok(&["get", "gadget", "g", "-o", "jsonpath={.spec.colour}"]),
        "blue"
    );
    let resources = c.ok(&["api-resources", "--api-group=example.org"]);
    assert!(resources.contains("gadgets"), "{resources}");
}

const PYTHON: &str = r#"
import sys
from kubernetes import config, dynamic
from kubernetes.client import api_client

client = dynamic.DynamicClient(api_client.ApiClient(configuration=config.load_kube_config(config_file=sys.argv[1])))
widgets = client.resources.get(api_version="example.com/v1", kind="Widget")
created = widgets.create(namespace="default", body={"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "py"}, "spec": {"replicas": 2}})
assert created.spec.size == "small", created
names = [w.metadata.name for w in widgets.get(namespace="default").items]
assert names == ["py"], names
patched = widgets.patch(namespace="default", name="py", body={"spec": {"replicas": 4}}, content_type="application/merge-patch+json")
assert patched.spec.replicas == 4 and patched.metadata.generation == 2, patched
# Server-side apply through the dynamic client. The merge patch above made the client's
# User-Agent manager (OpenAPI-Generator) own spec.replicas, so taking it needs force; then
# a second manager changing it conflicts with the applier.
applied = widgets.server_side_apply(namespace="default", name="py", field_manager="py-apply", force_conflicts=True, body={"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "py"}, "spec": {"replicas": 5}})
assert applied.spec.replicas == 5, applied
managers = [(m.manager, m.operation) for m in applied.metadata.managedFields]
assert ("py-apply", "Apply") in managers, managers
try:
    widgets.server_side_apply(namespace="default", name="py", field_manager="other", body={"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "py"}, "spec": {"replicas": 6}})
    raise SystemExit("conflicting apply succeeded")
except Exception as e:
    assert getattr(e, "status", None) == 409 and 'conflict with \\"py-apply\\": .spec.replicas' in e.body, e
widgets.delete(namespace="default", name="py")
assert widgets.get(namespace="default").items == []
print("dynamic client ok")
"#;

#[test]
fn python_dynamic_client() {
    let c = Cluster::start(&[]);
    install_widgets(&c);
    let child = Command::new(support::venv().join("bin/python"))
        .args(["-c", PYTHON])
        .arg(&c.kubeconfig)
        .env("HOME", c.data_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = support::wait_with_timeout(child, Duration::from_secs(90));
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("dynamic client ok"),
        "python failed:\n{}\n{}\n--- server log ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        c.log()
    );
}
