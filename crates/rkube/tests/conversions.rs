//! Versions that share storage, with kubectl 1.37: core `v1` Events and `events.k8s.io/v1`
//! Events, `autoscaling/v1` and `autoscaling/v2` HorizontalPodAutoscalers — every object is
//! visible in both versions with upstream's field mapping, in gets, lists, tables and watches.

mod support;

use serde_json::Value;
use support::Cluster;

fn get(c: &Cluster, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&c.ok(&all)).unwrap()
}

const CORE_EVENT: &str = r#"
apiVersion: v1
kind: Event
metadata: {name: started, namespace: default}
involvedObject: {kind: Pod, name: web-1, namespace: default}
reason: Started
message: Started container web
type: Normal
source: {component: kubelet}
count: 2
firstTimestamp: "2026-01-01T00:00:00Z"
lastTimestamp: "2026-01-01T00:01:00Z"
"#;

const EVENTS_V1_EVENT: &str = r#"
apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: scheduled, namespace: default}
eventTime: "2026-01-01T00:00:00.000000Z"
regarding: {kind: Pod, name: web-2, namespace: default}
reason: Scheduled
note: Successfully assigned default/web-2 to node-1
type: Normal
action: Binding
reportingController: default-scheduler
reportingInstance: default-scheduler-node-1
"#;

#[test]
fn events_are_served_in_both_versions() {
    let c = Cluster::start(&[]);
    c.create(CORE_EVENT);
    c.create(EVENTS_V1_EVENT);

    // The core event read as events.k8s.io/v1.
    let e = get(&c, &["events.v1.events.k8s.io", "started"]);
    assert_eq!(e["apiVersion"], "events.k8s.io/v1");
    assert_eq!(e["regarding"]["name"], "web-1");
    assert_eq!(e["note"], "Started container web");
    assert_eq!(e["deprecatedSource"]["component"], "kubelet");
    assert_eq!(e["deprecatedCount"], 2);
    assert!(
        e.get("involvedObject").is_none() && e.get("message").is_none(),
        "{e}"
    );

    // The events.k8s.io event read as core v1.
    let e = get(&c, &["events.v1.", "scheduled"]);
    assert_eq!(e["apiVersion"], "v1");
    assert_eq!(e["involvedObject"]["name"], "web-2");
    assert_eq!(
        e["message"],
        "Successfully assigned default/web-2 to node-1"
    );
    assert_eq!(e["reportingComponent"], "default-scheduler");
    assert!(
        e.get("note").is_none() && e.get("regarding").is_none(),
        "{e}"
    );

    // Lists of either version hold both, converted.
    let list = get(&c, &["events.v1.events.k8s.io"]);
    let notes: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["note"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(notes.len(), 2, "{list}");
    assert!(notes.contains(&"Started container web"), "{notes:?}");

    // kubectl get events prints upstream's columns from either version.
    let table = c.ok(&["get", "events.v1.events.k8s.io"]);
    let header = table.lines().next().unwrap();
    for col in ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"] {
        assert!(header.contains(col), "{table}");
    }
    assert!(
        table.contains("pod/web-2") && table.contains("Successfully assigned"),
        "{table}"
    );

    // Updates through the other version keep the stored form: a patch via events.k8s.io
    // is seen by core clients.
    c.ok(&[
        "patch",
        "events.v1.events.k8s.io",
        "started",
        "--type=merge",
        "-p",
        r#"{"note":"Restarted container web"}"#,
    ]);
    assert_eq!(
        get(&c, &["events.v1.", "started"])["message"],
        "Restarted container web"
    );
}

#[test]
fn autoscalers_are_served_as_v1_and_v2() {
    let c = Cluster::start(&[]);
    let v2 = r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: default}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 6
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 60}}
  - type: Resource
    resource: {name: memory, target: {type: AverageValue, averageValue: 1Gi}}
"#;
    c.create(v2);
    let v1 = get(&c, &["horizontalpodautoscalers.v1.autoscaling", "web"]);
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 60);
    assert_eq!(v1["spec"]["minReplicas"], 2);
    assert!(v1["spec"].get("metrics").is_none());
    assert!(
        v1["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/metrics"]
            .as_str()
            .unwrap()
            .contains("memory"),
        "{v1}"
    );

    // An update through v1 keeps what only v2 can say.
    c.ok(&[
        "patch",
        "horizontalpodautoscalers.v1.autoscaling",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"targetCPUUtilizationPercentage":75}}"#,
    ]);
    let back = get(&c, &["horizontalpodautoscalers.v2.autoscaling", "web"]);
    let metrics = back["spec"]["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 2, "{back}");
    assert_eq!(metrics[0]["resource"]["target"]["averageUtilization"], 75);
    assert_eq!(metrics[1]["resource"]["name"], "memory");
    assert!(back["metadata"].get("annotations").is_none(), "{back}");

    // A v1 object without a target gets upstream's 80% default; bad bounds are refused.
    c.create("apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: api}\nspec:\n  scaleTargetRef: {kind: Deployment, name: api}\n  maxReplicas: 3\n");
    let api = get(&c, &["horizontalpodautoscalers.v2.autoscaling", "api"]);
    assert_eq!(
        api["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        80
    );
    assert_eq!(api["spec"]["minReplicas"], 1);
    let out = c.kubectl_with(
        &["create", "-f", "-"],
        Some("apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: bad}\nspec:\n  scaleTargetRef: {kind: Deployment, name: x}\n  minReplicas: 4\n  maxReplicas: 2\n"),
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"
        ),
        "{stderr}"
    );

    // kubectl get hpa prints upstream's columns.
    let table = c.ok(&["get", "hpa"]);
    let header = table.lines().next().unwrap();
    for col in [
        "NAME",
        "REFERENCE",
        "TARGETS",
        "MINPODS",
        "MAXPODS",
        "REPLICAS",
        "AGE",
    ] {
        assert!(header.contains(col), "{table}");
    }
    assert!(table.contains("Deployment/web"), "{table}");
}
