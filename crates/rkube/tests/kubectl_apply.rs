//! kubectl 1.37 client-side apply, strategic merge patch, edit and diff against
//! `rkube server`: fields and list elements removed and added between applies, lists merged
//! by their keys, and bad patches refused with nothing written.

mod support;

use serde_json::Value;
use support::Cluster;

fn apply(c: &Cluster, yaml: &str) -> String {
    let out = c.kubectl_with(&["apply", "-f", "-"], Some(yaml), &[]);
    assert!(
        out.status.success(),
        "kubectl apply failed: {}\n--- server log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        c.log()
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The `name`s of a list's elements, in order.
fn names_of(list: &Value) -> Vec<&str> {
    list.as_array()
        .map(|l| l.iter().filter_map(|e| e["name"].as_str()).collect())
        .unwrap_or_default()
}

fn get(c: &Cluster, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&c.ok(&all)).unwrap()
}

const DEPLOY_V1: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports: [{containerPort: 80}, {containerPort: 443}]
        env: [{name: A, value: "1"}, {name: B, value: "2"}]
        volumeMounts: [{name: data, mountPath: /data}]
      - name: log
        image: busybox
      volumes: [{name: data, emptyDir: {}}]
"#;

/// The second manifest: a label, a port, an env var, the volume and a container removed;
/// an env var and a container added; replicas and an image changed.
const DEPLOY_V2: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, owner: me}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: metrics
        image: prom
      - name: web
        image: nginx:1.26
        ports: [{containerPort: 80}]
        env: [{name: A, value: "1"}, {name: C, value: "3"}]
"#;

#[test]
fn apply_twice_removes_and_adds_deployment_fields() {
    let c = Cluster::start(&[]);
    assert_eq!(apply(&c, DEPLOY_V1).trim(), "deployment.apps/web created");
    // A change made by someone else, not in any manifest, survives the applies.
    c.ok(&["annotate", "deploy", "web", "team=blue"]);
    assert_eq!(
        apply(&c, DEPLOY_V2).trim(),
        "deployment.apps/web configured"
    );

    let d = get(&c, &["deploy", "web"]);
    let labels = &d["metadata"]["labels"];
    assert_eq!(labels["owner"], "me");
    assert!(labels.get("tier").is_none(), "label removed: {labels}");
    assert_eq!(d["metadata"]["annotations"]["team"], "blue");
    assert_eq!(d["spec"]["replicas"], 3);
    let pod = &d["spec"]["template"]["spec"];
    let names = names_of(&pod["containers"]);
    assert_eq!(
        names,
        ["metrics", "web"],
        "containers follow the manifest's order"
    );
    let web = &pod["containers"][1];
    assert_eq!(web["image"], "nginx:1.26");
    assert_eq!(
        web["ports"],
        serde_json::json!([{"containerPort": 80, "protocol": "TCP"}]),
        "port 443 removed"
    );
    assert_eq!(
        web["env"],
        serde_json::json!([{"name": "A", "value": "1"}, {"name": "C", "value": "3"}])
    );
    assert!(web.get("volumeMounts").is_none(), "{web}");
    assert!(pod.get("volumes").is_none(), "{pod}");
    // Defaults the server set stay.
    assert_eq!(web["imagePullPolicy"], "IfNotPresent");
    assert_eq!(d["metadata"]["generation"], 2);

    // Applying the same manifest again changes nothing.
    assert_eq!(apply(&c, DEPLOY_V2).trim(), "deployment.apps/web unchanged");
}

const OTHERS_V1: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: svc}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: https, port: 443, targetPort: 8443}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, labels: {keep: "yes", drop: "yes"}}
data: {a: "1", b: "2"}
---
apiVersion: v1
kind: Pod
metadata: {name: pod1, labels: {app: one}}
spec:
  containers:
  - name: c
    image: busybox
  tolerations:
  - {key: a, operator: Exists}
"#;

const OTHERS_V2: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: svc}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 9090}
  - {name: admin, port: 8081}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, labels: {keep: "yes"}}
data: {a: "1", c: "3"}
---
apiVersion: v1
kind: Pod
metadata: {name: pod1, labels: {app: two}}
spec:
  containers:
  - name: c
    image: busybox:1.36
  tolerations:
  - {key: a, operator: Exists}
  - {key: b, operator: Exists}
"#;

#[test]
fn apply_twice_services_configmaps_pods() {
    let c = Cluster::start(&[]);
    let out = apply(&c, OTHERS_V1);
    assert!(
        out.contains("service/svc created") && out.contains("pod/pod1 created"),
        "{out}"
    );
    let cluster_ip = get(&c, &["svc", "svc"])["spec"]["clusterIP"].clone();
    let out = apply(&c, OTHERS_V2);
    for line in [
        "service/svc configured",
        "configmap/cfg configured",
        "pod/pod1 configured",
    ] {
        assert!(out.contains(line), "{out}");
    }

    let svc = get(&c, &["svc", "svc"]);
    let ports: Vec<(i64, Value)> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["port"].as_i64().unwrap(), p["targetPort"].clone()))
        .collect();
    assert_eq!(
        ports,
        [(80, Value::from(9090)), (8081, Value::from(8081))],
        "ports merged by port: {svc}"
    );
    assert_eq!(
        svc["spec"]["clusterIP"], cluster_ip,
        "server-set fields stay"
    );

    let cm = get(&c, &["cm", "cfg"]);
    assert_eq!(cm["data"], serde_json::json!({"a": "1", "c": "3"}));
    assert_eq!(cm["metadata"]["labels"], serde_json::json!({"keep": "yes"}));

    let pod = get(&c, &["pod", "pod1"]);
    assert_eq!(pod["metadata"]["labels"]["app"], "two");
    assert_eq!(pod["spec"]["containers"][0]["image"], "busybox:1.36");
    assert_eq!(pod["spec"]["tolerations"].as_array().unwrap().len(), 2);

    // A change a Pod cannot take is refused with upstream's message, nothing written.
    let out = c.kubectl_with(
        &["apply", "-f", "-"],
        Some(&OTHERS_V2.replace("name: c\n", "name: c\n    command: [sleep]\n")),
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("pod updates may not change fields other than"),
        "{stderr}"
    );
    let after = get(&c, &["pod", "pod1"]);
    assert_eq!(
        after["metadata"]["resourceVersion"],
        pod["metadata"]["resourceVersion"]
    );
}

#[test]
fn strategic_patch_edit_and_diff() {
    let c = Cluster::start(&["--controllers=*,-deployment"]);
    apply(&c, DEPLOY_V1);

    // kubectl patch sends a strategic merge patch by default: containers merge by name.
    c.ok(&[
        "patch",
        "deploy",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"side","image":"envoy"}]}}}}"#,
    ]);
    let names = c.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[*].name}",
    ]);
    assert_eq!(names, "side web log");
    // $patch: delete removes one element.
    c.ok(&[
        "patch",
        "deploy",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"log","$patch":"delete"}]}}}}"#,
    ]);
    let names = c.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[*].name}",
    ]);
    assert_eq!(names, "side web");

    // Malformed patches: upstream's errors, nothing written.
    let before = get(&c, &["deploy", "web"])["metadata"]["resourceVersion"].clone();
    let err = c.fails(&[
        "patch",
        "deploy",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}"#,
    ]);
    assert!(
        err.contains("does not contain declared merge key: name"),
        "{err}"
    );
    let err = c.fails(&[
        "patch",
        "deploy",
        "web",
        "-p",
        r#"{"spec":{"strategy":{"$retainKeys":["type"],"rollingUpdate":{}}}}"#,
    ]);
    assert!(err.contains("invalid patch format of retainKeys"), "{err}");
    assert_eq!(
        get(&c, &["deploy", "web"])["metadata"]["resourceVersion"],
        before
    );

    // kubectl edit (EDITOR is a script) sends a strategic merge patch too.
    let editor = c.data_dir().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/replicas: 2/replicas: 7/' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = c.kubectl_with(
        &["edit", "deploy", "web"],
        None,
        &[("EDITOR", editor.to_str().unwrap())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "deployment.apps/web edited"
    );
    assert_eq!(
        c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "7"
    );

    // kubectl diff: a server-side dry run; exit 1 with the change, nothing written.
    let rv = get(&c, &["deploy", "web"])["metadata"]["resourceVersion"].clone();
    let changed = DEPLOY_V1.replace("nginx:1.25", "nginx:1.27");
    let out = c.kubectl_with(&["diff", "-f", "-"], Some(&changed), &[]);
    let diff = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        diff.contains("-        image: nginx:1.25") && diff.contains("+        image: nginx:1.27"),
        "{diff}"
    );
    assert!(
        !diff.contains("resourceVersion"),
        "a dry run keeps resourceVersion: {diff}"
    );
    assert_eq!(
        get(&c, &["deploy", "web"])["metadata"]["resourceVersion"],
        rv
    );
    assert_eq!(
        c.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[?(@.name=='web')].image}"
        ]),
        "nginx:1.25"
    );
}

fn apply_server_side(c: &Cluster, yaml: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["apply", "--server-side", "-f", "-"];
    args.extend_from_slice(extra);
    c.kubectl_with(&args, Some(yaml), &[])
}

fn managers(obj: &Value) -> Vec<String> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|e| {
                    format!(
                        "{}/{}",
                        e["manager"].as_str().unwrap(),
                        e["operation"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn server_side_apply_owns_removes_and_conflicts() {
    // No deployment-controller: its writes would add managers to the Deployment.
    let c = Cluster::start(&["--controllers=*,-deployment"]);
    let out = apply_server_side(&c, DEPLOY_V1, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "deployment.apps/web serverside-applied"
    );
    let d = get(&c, &["deploy", "web", "--show-managed-fields"]);
    assert_eq!(managers(&d), ["kubectl/Apply"]);
    let fields = &d["metadata"]["managedFields"][0]["fieldsV1"];
    assert!(
        fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"]["f:ports"]
            ["k:{\"containerPort\":443,\"protocol\":\"TCP\"}"]
            .is_object(),
        "{fields}"
    );
    // kubectl hides managedFields unless asked.
    assert!(!c
        .ok(&["get", "deploy", "web", "-o", "yaml"])
        .contains("managedFields"));

    // Applying the second manifest removes what the manager no longer applies.
    let out = apply_server_side(&c, DEPLOY_V2, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = get(&c, &["deploy", "web"]);
    assert!(d["metadata"]["labels"].get("tier").is_none());
    let pod = &d["spec"]["template"]["spec"];
    let names = names_of(&pod["containers"]);
    assert_eq!(names, ["metrics", "web"]);
    let web = &pod["containers"][1];
    assert_eq!(
        web["ports"],
        serde_json::json!([{"containerPort": 80, "protocol": "TCP"}])
    );
    assert_eq!(
        web["env"],
        serde_json::json!([{"name": "A", "value": "1"}, {"name": "C", "value": "3"}])
    );
    assert!(
        pod.get("volumes").is_none() && web.get("volumeMounts").is_none(),
        "{pod}"
    );

    // kubectl scale (manager "kubectl", from its User-Agent, as upstream names it) takes
    // spec.replicas through the scale subresource; applying another value conflicts.
    c.ok(&["scale", "deploy", "web", "--replicas=5"]);
    let out = apply_server_side(&c, DEPLOY_V2, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a conflicting apply succeeded");
    assert!(
        stderr.contains("Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1: .spec.replicas"),
        "{stderr}"
    );
    assert_eq!(
        get(&c, &["deploy", "web"])["spec"]["replicas"],
        5,
        "nothing written"
    );

    // A second applier with the same value shares the field; with another value it
    // conflicts with the first applier.
    let other = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
      - name: web
        image: nginx:9
"#;
    let out = apply_server_side(&c, other, &["--field-manager=team-b"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "conflict with \"kubectl\": .spec.template.spec.containers[name=\"web\"].image"
        ),
        "{stderr}"
    );
    let out = apply_server_side(&c, other, &["--field-manager=team-b", "--force-conflicts"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = get(&c, &["deploy", "web", "--show-managed-fields"]);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][1]["image"],
        "nginx:9"
    );
    assert!(
        managers(&d).contains(&"team-b/Apply".to_owned()),
        "{:?}",
        managers(&d)
    );
    // --force-conflicts took the image from kubectl: kubectl's next apply of another
    // image now conflicts with team-b.
    let out = apply_server_side(&c, &DEPLOY_V2.replace("replicas: 3", "replicas: 5"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "conflict with \"team-b\": .spec.template.spec.containers[name=\"web\"].image"
        ),
        "{stderr}"
    );
    let out = apply_server_side(
        &c,
        &DEPLOY_V2
            .replace("replicas: 3", "replicas: 5")
            .replace("nginx:1.26", "nginx:9"),
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Server-side dry run (what kubectl diff --server-side does) writes nothing.
    let rv = get(&c, &["deploy", "web"])["metadata"]["resourceVersion"].clone();
    let agreed = DEPLOY_V2
        .replace("replicas: 3", "replicas: 5")
        .replace("nginx:1.26", "nginx:9");
    let out = apply_server_side(&c, &agreed.replace("prom", "prom:2"), &["--dry-run=server"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        get(&c, &["deploy", "web"])["metadata"]["resourceVersion"],
        rv
    );

    // Bad input: an apply without a field manager, and force on another patch type.
    let (code, body) = support::curl(
        &c,
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/web",
        "application/apply-patch+yaml",
        Some(b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"),
        &[],
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("PatchOptions.meta.k8s.io \\\"\\\" is invalid: fieldManager: Required value: is required for apply patch"), "{body}");
    let (code, body) = support::curl(
        &c,
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/web?force=true",
        "application/merge-patch+json",
        Some(b"{}"),
        &[],
    );
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("force: Forbidden: may not be specified for non-apply patch"),
        "{body}"
    );
}

#[test]
fn updates_are_recorded_as_managers() {
    let c = Cluster::start(&[]);
    c.ok(&["create", "configmap", "cfg", "--from-literal=a=1"]);
    let cm = get(&c, &["cm", "cfg", "--show-managed-fields"]);
    assert_eq!(managers(&cm), ["kubectl-create/Update"]);
    assert_eq!(
        cm["metadata"]["managedFields"][0]["fieldsV1"],
        serde_json::json!({"f:data": {".": {}, "f:a": {}}})
    );
    c.ok(&["label", "cm", "cfg", "x=y"]);
    let cm = get(&c, &["cm", "cfg", "--show-managed-fields"]);
    assert_eq!(
        managers(&cm),
        ["kubectl-create/Update", "kubectl-label/Update"]
    );
    // An applier taking a field an Update manager set conflicts with it.
    let out = apply_server_side(
        &c,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: \"2\"}\n",
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("conflict with \"kubectl-create\" using v1: .data.a"),
        "{stderr}"
    );
}

/// Every kind merges by its own markers: paths of an Ingress rule, NetworkPolicy ports,
/// a StatefulSet's probes, Role rules, DaemonSet volumes (an inline VolumeSource).
const MANY_KINDS: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ing}
spec:
  rules:
  - host: a.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: svc, port: {number: 80}}}}
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 8080}}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: fe}}}]
    ports: [{port: 80, protocol: TCP}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: cj}
spec:
  schedule: "*/5 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: c, image: busybox, args: [date]}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: sts}
spec:
  serviceName: sts
  replicas: 1
  selector: {matchLabels: {app: sts}}
  template:
    metadata: {labels: {app: sts}}
    spec:
      containers:
      - name: c
        image: nginx
        volumeMounts: [{name: data, mountPath: /data}]
        livenessProbe: {httpGet: {path: /, port: 80}}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: r}
rules:
- {apiGroups: [""], resources: [pods], verbs: [get, list]}
- {apiGroups: [apps], resources: [deployments], verbs: [get]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds}
spec:
  selector: {matchLabels: {app: ds}}
  template:
    metadata: {labels: {app: ds}}
    spec:
      tolerations: [{operator: Exists}]
      containers: [{name: c, image: busybox, resources: {limits: {cpu: 100m}}, env: [{name: X, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]}]
      volumes: [{name: h, hostPath: {path: /var/log}}, {name: cm, configMap: {name: cfg}}]
"#;

#[test]
fn apply_twice_for_many_kinds() {
    let c = Cluster::start(&[]);
    apply(&c, MANY_KINDS);
    let v2 = MANY_KINDS
        .replace("      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 8080}}}}\n", "")
        .replace("port: 80, protocol: TCP", "port: 443, protocol: TCP")
        .replace("*/5", "*/10")
        .replace("livenessProbe: {httpGet: {path: /, port: 80}}", "readinessProbe: {tcpSocket: {port: 80}}")
        .replace("- {apiGroups: [apps], resources: [deployments], verbs: [get]}\n", "")
        .replace(", {name: cm, configMap: {name: cfg}}", "")
        .replace("cpu: 100m", "cpu: 200m");
    assert_ne!(v2, MANY_KINDS);
    let out = apply(&c, &v2);
    assert_eq!(out.matches("configured").count(), 6, "{out}");

    let ing = get(&c, &["ingress", "ing"]);
    assert_eq!(
        ing["spec"]["rules"][0]["http"]["paths"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let np = get(&c, &["networkpolicy", "np"]);
    assert_eq!(
        np["spec"]["ingress"][0]["ports"],
        serde_json::json!([{"port": 443, "protocol": "TCP"}])
    );
    assert_eq!(
        get(&c, &["cronjob", "cj"])["spec"]["schedule"],
        "*/10 * * * *"
    );
    let sts = get(&c, &["statefulset", "sts"]);
    let container = &sts["spec"]["template"]["spec"]["containers"][0];
    assert!(container.get("livenessProbe").is_none(), "{container}");
    assert_eq!(container["readinessProbe"]["tcpSocket"]["port"], 80);
    assert_eq!(
        container["readinessProbe"]["periodSeconds"], 10,
        "probe defaults"
    );
    let role = get(&c, &["role", "r"]);
    assert_eq!(role["rules"].as_array().unwrap().len(), 1);
    let ds = get(&c, &["daemonset", "ds"]);
    let pod = &ds["spec"]["template"]["spec"];
    let volumes = names_of(&pod["volumes"]);
    assert_eq!(volumes, ["h"], "{pod}");
    assert_eq!(pod["volumes"][0]["hostPath"]["path"], "/var/log");
    assert_eq!(pod["containers"][0]["resources"]["limits"]["cpu"], "200m");
    // No field is ever stored as null.
    for obj in [&ing, &np, &sts, &role, &ds] {
        assert!(!obj.to_string().contains(":null"), "{obj}");
    }
}

const ROUTE_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: routes.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: routes, singular: route, kind: Route}
  versions:
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
              backends:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {type: string}
                    weight: {type: integer}
"#;

#[test]
fn server_side_apply_merges_custom_resource_lists_by_their_keys() {
    let c = Cluster::start(&[]);
    c.create(ROUTE_CRD);
    c.ok(&[
        "wait",
        "--for",
        "condition=established",
        "crd/routes.example.com",
        "--timeout=30s",
    ]);
    let route = |backends: &str| {
        format!("apiVersion: example.com/v1\nkind: Route\nmetadata: {{name: r}}\nspec:\n  backends: {backends}\n")
    };
    let out = apply_server_side(
        &c,
        &route("[{name: blue, weight: 90}, {name: green, weight: 10}]"),
        &["--field-manager=team-a"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = apply_server_side(
        &c,
        &route("[{name: canary, weight: 1}]"),
        &["--field-manager=team-b"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = get(&c, &["routes.example.com", "r"]);
    let names = names_of(&r["spec"]["backends"]);
    assert_eq!(names, ["blue", "green", "canary"], "merged by name: {r}");
    let out = apply_server_side(
        &c,
        &route("[{name: canary, weight: 50}]"),
        &["--field-manager=team-a"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("conflict with \"team-b\": .spec.backends[name=\"canary\"].weight"),
        "{stderr}"
    );
}

#[test]
fn client_side_apply_upgrades_to_server_side_apply() {
    let c = Cluster::start(&[]);
    apply(&c, DEPLOY_V1);
    // kubectl apply --server-side over a client-side applied object: no conflicts with the
    // client-side manager, and kubectl's migration then prunes what the new manifest drops.
    let out = apply_server_side(&c, DEPLOY_V2, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("Warning"), "{stderr}");
    let d = get(&c, &["deploy", "web", "--show-managed-fields"]);
    assert_eq!(d["spec"]["replicas"], 3);
    assert!(d["metadata"]["labels"].get("tier").is_none(), "{d}");
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(names_of(&pod["containers"]), ["metrics", "web"]);
    assert_eq!(
        pod["containers"][1]["ports"],
        serde_json::json!([{"containerPort": 80, "protocol": "TCP"}])
    );
    assert!(pod.get("volumes").is_none(), "{pod}");
    assert!(
        !managers(&d).contains(&"kubectl-client-side-apply/Update".to_owned()),
        "{:?}",
        managers(&d)
    );
    // The last-applied annotation follows, so client-side apply still works afterwards.
    assert_eq!(
        apply(&c, DEPLOY_V1).trim(),
        "deployment.apps/web configured"
    );
    assert_eq!(get(&c, &["deploy", "web"])["spec"]["replicas"], 2);
}
