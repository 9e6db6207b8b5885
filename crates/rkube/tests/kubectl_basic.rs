//! kubectl 1.37 against `rkube server`: discovery, create/get/patch/label/delete of
//! ConfigMaps and Namespaces, output formats, watch, and upstream's error messages.

mod support;

use std::time::Duration;

use support::Cluster;

const CM: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: default
  labels:
    app: web
data:
  colour: blue
"#;

#[test]
fn version_and_discovery() {
    let c = Cluster::start(&[]);
    let version: serde_json::Value =
        serde_json::from_str(&c.ok(&["version", "-o", "json"])).unwrap();
    assert_eq!(version["serverVersion"]["major"], "1");
    assert_eq!(version["serverVersion"]["minor"], "37");

    let versions = c.ok(&["api-versions"]);
    for gv in [
        "v1",
        "apps/v1",
        "batch/v1",
        "rbac.authorization.k8s.io/v1",
        "autoscaling/v2",
    ] {
        assert!(
            versions.lines().any(|l| l == gv),
            "api-versions lacks {gv}:\n{versions}"
        );
    }
    let resources = c.ok(&["api-resources"]);
    let header = resources.lines().next().unwrap();
    for col in ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"] {
        assert!(header.contains(col), "{header}");
    }
    let deploy = resources
        .lines()
        .find(|l| l.starts_with("deployments "))
        .expect("deployments listed");
    assert!(
        deploy.contains("deploy")
            && deploy.contains("apps/v1")
            && deploy.contains("true")
            && deploy.contains("Deployment"),
        "{deploy}"
    );
    let ns = resources
        .lines()
        .find(|l| l.starts_with("namespaces "))
        .expect("namespaces listed");
    assert!(ns.contains("false"), "{ns}");
}

#[test]
fn metrics_count_requests() {
    let c = Cluster::start(support::WITHOUT_ROOT_CA_CONFIGMAPS);
    c.ok(&["get", "cm", "-n", "default"]);
    let metrics = c.ok(&["get", "--raw", "/metrics"]);
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("apiserver_request_total{")
                && l.contains(r#"resource="configmaps""#)
                && l.contains(r#"verb="LIST""#)
                && l.contains(r#"scope="namespace""#)
        })
        .unwrap_or_else(|| panic!("no LIST configmaps counter in:\n{metrics}"));
    assert!(line.contains(r#"code="200""#), "{line}");
    assert!(
        metrics.contains("apiserver_request_duration_seconds_bucket{"),
        "{metrics}"
    );
}

#[test]
fn default_namespaces_exist() {
    let c = Cluster::start(&[]);
    let out = c.ok(&["get", "namespaces", "-o", "name"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(out.lines().any(|l| l == format!("namespace/{ns}")), "{out}");
    }
    let table = c.ok(&["get", "ns", "default"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], ["default", "Active"], "{table}");
    let ns: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "ns", "default", "-o", "json"])).unwrap();
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "default"
    );
}

#[test]
fn configmap_lifecycle() {
    let c = Cluster::start(support::WITHOUT_ROOT_CA_CONFIGMAPS);
    assert_eq!(c.create(CM).trim(), "configmap/settings created");

    let got: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "cm", "settings", "-o", "json"])).unwrap();
    assert_eq!(got["data"]["colour"], "blue");
    assert_eq!(got["metadata"]["namespace"], "default");
    assert!(got["metadata"]["uid"]
        .as_str()
        .is_some_and(|u| u.len() == 36));
    assert!(got["metadata"]["creationTimestamp"].as_str().is_some());
    let rv: u64 = got["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    assert_eq!(
        c.ok(&["get", "cm", "settings", "-o", "jsonpath={.data.colour}"]),
        "blue"
    );
    assert_eq!(
        c.ok(&["get", "cm", "-o", "name"]).trim(),
        "configmap/settings"
    );
    let yaml = c.ok(&["get", "cm", "settings", "-o", "yaml"]);
    assert!(
        yaml.contains("colour: blue") && yaml.contains("kind: ConfigMap"),
        "{yaml}"
    );
    // Upstream's columns: NAME DATA AGE.
    let table = c.ok(&["get", "cm"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "DATA", "AGE"], "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], ["settings", "1"], "{table}");
    assert!(row[2].ends_with('s'), "age like 3s: {table}");
    let labels = c.ok(&["get", "cm", "--show-labels"]);
    assert!(labels.contains("app=web"), "{labels}");

    // Creating it again is upstream's AlreadyExists.
    let out = c.kubectl_with(&["create", "-f", "-"], Some(CM), &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Error from server (AlreadyExists)")
            && err.contains("configmaps \"settings\" already exists"),
        "{err}"
    );

    // Patches and labels.
    c.ok(&[
        "patch",
        "cm",
        "settings",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"colour":"green"}}"#,
    ]);
    c.ok(&[
        "patch",
        "cm",
        "settings",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/data/size","value":"large"}]"#,
    ]);
    c.ok(&["label", "cm", "settings", "tier=front"]);
    c.ok(&["annotate", "cm", "settings", "note=hello"]);
    let got: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "cm", "settings", "-o", "json"])).unwrap();
    assert_eq!(got["data"]["colour"], "green");
    assert_eq!(got["data"]["size"], "large");
    assert_eq!(got["metadata"]["labels"]["tier"], "front");
    assert_eq!(got["metadata"]["annotations"]["note"], "hello");
    let rv2: u64 = got["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv);

    // Selectors.
    assert_eq!(
        c.ok(&["get", "cm", "-l", "tier=front", "-o", "name"])
            .trim(),
        "configmap/settings"
    );
    assert_eq!(
        c.ok(&["get", "cm", "-l", "tier!=front", "-o", "name"])
            .trim(),
        ""
    );
    assert_eq!(
        c.ok(&[
            "get",
            "cm",
            "--field-selector",
            "metadata.name=settings",
            "-o",
            "name"
        ])
        .trim(),
        "configmap/settings"
    );
    assert!(c
        .ok(&["get", "cm", "-A", "-o", "name"])
        .contains("configmap/settings"));

    assert_eq!(
        c.ok(&["delete", "cm", "settings"]).trim(),
        "configmap \"settings\" deleted from default namespace"
    );
    let err = c.fails(&["get", "cm", "settings"]);
    assert!(
        err.contains("Error from server (NotFound): configmaps \"settings\" not found"),
        "{err}"
    );
}

#[test]
fn creating_in_a_missing_namespace_fails_like_upstream() {
    let c = Cluster::start(support::WITHOUT_ROOT_CA_CONFIGMAPS);
    let out = c.kubectl_with(
        &["create", "-f", "-"],
        Some(&CM.replace("namespace: default", "namespace: nowhere")),
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("namespaces \"nowhere\" not found"), "{err}");
    assert_eq!(
        c.ok(&["get", "cm", "-n", "nowhere", "-o", "name"]).trim(),
        "",
        "nothing written"
    );
    let all = c.ok(&[
        "get",
        "cm",
        "-A",
        "-o",
        "jsonpath={.items[*].metadata.namespace}",
    ]);
    assert!(!all.contains("nowhere"), "{all}");
}

#[test]
fn invalid_names_are_rejected() {
    let c = Cluster::start(&[]);
    let out = c.kubectl_with(
        &["create", "-f", "-"],
        Some(&CM.replace("name: settings", "name: Not_Valid")),
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is invalid") && err.contains("metadata.name"),
        "{err}"
    );
}

#[test]
fn watch_sees_changes() {
    let c = Cluster::start(&[]);
    c.create(CM);
    let mut watch = std::process::Command::new(support::kubectl_path())
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .args([
            "get",
            "cm",
            "--watch",
            "-o",
            "name",
            "--request-timeout",
            "20s",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    c.create(&CM.replace("name: settings", "name: second"));
    std::thread::sleep(Duration::from_millis(700));
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("configmap/settings") && text.contains("configmap/second"),
        "watch printed {text:?}, stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
spec:
  containers:
  - name: nginx
    image: nginx:1.27
    ports:
    - containerPort: 80
"#;

#[test]
fn pods_get_upstream_defaults_and_graceful_deletion() {
    let c = Cluster::start(&[]);
    assert_eq!(c.create(POD).trim(), "pod/web created");
    let pod: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "pod", "web", "-o", "json"])).unwrap();
    assert_eq!(pod["spec"]["restartPolicy"], "Always");
    assert_eq!(pod["spec"]["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod["spec"]["schedulerName"], "default-scheduler");
    assert_eq!(
        pod["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    assert_eq!(pod["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
    assert_eq!(pod["status"]["phase"], "Pending");
    assert_eq!(pod["status"]["qosClass"], "BestEffort");

    let table = c.ok(&["get", "pods"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{table}"
    );
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["web", "0/1", "Pending", "0"], "{table}");
    let wide = c.ok(&["get", "pods", "-o", "wide"]);
    assert!(
        wide.lines().next().unwrap().contains("NOMINATED NODE"),
        "{wide}"
    );

    // Only images (and a few fields) may change.
    let err = c.fails(&[
        "patch",
        "pod",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"restartPolicy":"Never"}}"#,
    ]);
    assert!(
        err.contains("pod updates may not change fields other than"),
        "{err}"
    );
    c.ok(&[
        "patch",
        "pod",
        "web",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/containers/0/image","value":"nginx:1.28"}]"#,
    ]);

    // Not on a node: deleted at once.
    c.ok(&["delete", "pod", "web"]);
    assert!(c.fails(&["get", "pod", "web"]).contains("NotFound"));

    // On a node: deletion waits for the node (deletionTimestamp) unless forced.
    c.create(&POD.replace("spec:\n", "spec:\n  nodeName: node-1\n"));
    c.ok(&["delete", "pod", "web", "--wait=false"]);
    let pod: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "pod", "web", "-o", "json"])).unwrap();
    assert!(pod["metadata"]["deletionTimestamp"].is_string(), "{pod}");
    assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 30);
    c.ok(&["delete", "pod", "web", "--grace-period=0", "--force"]);
    assert!(c.fails(&["get", "pod", "web"]).contains("NotFound"));

    let out = c.kubectl_with(&["create", "-f", "-"], Some("{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"empty\",\"namespace\":\"default\"},\"spec\":{}}"), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Pod \"empty\" is invalid: spec.containers: Required value"),
        "{err}"
    );
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
"#;

#[test]
fn scale_subresource() {
    let c = Cluster::start(&[]);
    assert_eq!(c.create(DEPLOYMENT).trim(), "deployment.apps/web created");
    assert_eq!(
        c.ok(&["scale", "deployment", "web", "--replicas=5"]).trim(),
        "deployment.apps/web scaled"
    );
    let d: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "deploy", "web", "-o", "json"])).unwrap();
    assert_eq!(d["spec"]["replicas"], 5);
    assert_eq!(
        d["metadata"]["generation"], 2,
        "a spec change bumps generation"
    );
    let scale: serde_json::Value = serde_json::from_str(&c.ok(&[
        "get",
        "--raw",
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
    ]))
    .unwrap();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 5);
    assert_eq!(scale["status"]["selector"], "app=web");
    let table = c.ok(&["get", "deploy"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{table}"
    );
}

#[test]
fn strict_field_validation_and_explain() {
    let c = Cluster::start(&[]);
    let typo = DEPLOYMENT.replace("  replicas: 2", "  replica: 2");
    let out = c.kubectl_with(&["create", "-f", "-"], Some(&typo), &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Error from server (BadRequest)") && err.contains("Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.replica\""),
        "{err}"
    );
    assert_eq!(
        c.ok(&["get", "deploy", "-o", "name"]).trim(),
        "",
        "nothing written"
    );
    // --validate=warn: created, with upstream's warning.
    let out = c.kubectl_with(&["create", "--validate=warn", "-f", "-"], Some(&typo), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown field \"spec.replica\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let explain = c.ok(&["explain", "pods.spec.containers.image"]);
    assert!(
        explain.contains("KIND:       Pod")
            && explain.contains("FIELD: image <string>")
            && explain.contains("Container image name"),
        "{explain}"
    );
    let explain = c.ok(&["explain", "deployments"]);
    assert!(
        explain.contains("GROUP:      apps")
            && explain.contains("Deployment enables declarative updates"),
        "{explain}"
    );
}

#[test]
fn replace_describe_wait_and_delete_collection() {
    let c = Cluster::start(support::WITHOUT_ROOT_CA_CONFIGMAPS);
    c.create(CM);
    // replace -f: a full update.
    let out = c.kubectl_with(
        &["replace", "-f", "-"],
        Some(&CM.replace("colour: blue", "colour: red")),
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        c.ok(&["get", "cm", "settings", "-o", "jsonpath={.data.colour}"]),
        "red"
    );

    // (kubectl edit and strategic merge patch are covered in kubectl_apply.rs.)
    c.ok(&[
        "patch",
        "cm",
        "settings",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"colour":"violet"}}"#,
    ]);

    let described = c.ok(&["describe", "cm", "settings"]);
    assert!(
        described.contains("Name:")
            && described.contains("settings")
            && described.contains("violet"),
        "{described}"
    );

    c.ok(&[
        "wait",
        "--for=jsonpath={.data.colour}=violet",
        "cm/settings",
        "--timeout=10s",
    ]);

    // deletecollection with a label selector removes only the matching objects.
    c.create(
        &CM.replace("name: settings", "name: other")
            .replace("app: web", "app: db"),
    );
    let out = c.kubectl_with(
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/configmaps?labelSelector=app%3Ddb",
        ],
        None,
        &[],
    );
    assert!(out.status.success());
    let (code, deleted) = support::curl(
        &c,
        "DELETE",
        "/api/v1/namespaces/default/configmaps?labelSelector=app%3Ddb",
        "application/json",
        None,
        &[],
    );
    assert_eq!(code, 200, "{deleted}");
    let body: serde_json::Value = serde_json::from_str(&deleted).unwrap();
    assert_eq!(body["kind"], "ConfigMapList");
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        c.ok(&["get", "cm", "-o", "name"]).trim(),
        "configmap/settings"
    );
}

/// kubectl's typed commands send protobuf bodies (a peer implementation fails every
/// `kubectl create namespace` because it cannot read them).
#[test]
fn typed_commands_send_protobuf() {
    let c = Cluster::start(&[]);
    assert_eq!(
        c.ok(&["create", "namespace", "team-a"]).trim(),
        "namespace/team-a created"
    );
    let ns: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "ns", "team-a", "-o", "json"])).unwrap();
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(ns["spec"]["finalizers"], serde_json::json!(["kubernetes"]));
    c.ok(&[
        "create",
        "configmap",
        "cfg",
        "-n",
        "team-a",
        "--from-literal=a=b",
        "--from-literal=c=d",
    ]);
    assert_eq!(
        c.ok(&[
            "get",
            "cm",
            "cfg",
            "-n",
            "team-a",
            "-o",
            "jsonpath={.data.c}"
        ]),
        "d"
    );
    c.ok(&[
        "create",
        "secret",
        "generic",
        "s1",
        "-n",
        "team-a",
        "--from-literal=password=hunter2",
    ]);
    let secret: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "secret", "s1", "-n", "team-a", "-o", "json"]))
            .unwrap();
    assert_eq!(secret["data"]["password"], "aHVudGVyMg==");
    assert_eq!(secret["type"], "Opaque");
    c.ok(&[
        "create",
        "secret",
        "docker-registry",
        "reg",
        "-n",
        "team-a",
        "--docker-server=r.example:5000",
        "--docker-username=u",
        "--docker-password=p",
    ]);
    assert_eq!(
        c.ok(&[
            "get",
            "secret",
            "reg",
            "-n",
            "team-a",
            "-o",
            "jsonpath={.type}"
        ]),
        "kubernetes.io/dockerconfigjson"
    );
    c.ok(&["create", "serviceaccount", "robot", "-n", "team-a"]);
    c.ok(&[
        "create",
        "deployment",
        "web",
        "-n",
        "team-a",
        "--image=nginx:1.27",
        "--replicas=2",
    ]);
    let d: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "deploy", "web", "-n", "team-a", "-o", "json"]))
            .unwrap();
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    c.ok(&[
        "create",
        "service",
        "clusterip",
        "web",
        "-n",
        "team-a",
        "--tcp=80:8080",
    ]);
    let svc: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "svc", "web", "-n", "team-a", "-o", "json"])).unwrap();
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["spec"]["sessionAffinity"], "None");
    assert_eq!(svc["spec"]["ports"][0]["protocol"], "TCP");
    c.ok(&["create", "job", "pi", "-n", "team-a", "--image=busybox"]);
    let job: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "job", "pi", "-n", "team-a", "-o", "json"])).unwrap();
    assert_eq!(job["spec"]["backoffLimit"], 6);
    assert_eq!(
        job["spec"]["template"]["metadata"]["labels"]["batch.kubernetes.io/job-name"],
        "pi"
    );
    assert_eq!(
        job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        job["metadata"]["uid"]
    );
    let out = c.kubectl_with(&["create", "-f", "-"], Some("{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"noports\",\"namespace\":\"default\"},\"spec\":{}}"), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spec.ports: Required value"), "{err}");
    let err = c.fails(&["create", "namespace", "team-a"]);
    assert!(
        err.contains("Error from server (AlreadyExists): namespaces \"team-a\" already exists"),
        "{err}"
    );
}

#[test]
fn deployments_get_defaults_and_selector_validation() {
    let c = Cluster::start(&[]);
    c.create(DEPLOYMENT);
    let d: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "deploy", "web", "-o", "json"])).unwrap();
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    assert_eq!(d["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
    let bad = DEPLOYMENT
        .replace("name: web\n  namespace", "name: bad\n  namespace")
        .replace("      app: web\n  template", "      app: other\n  template");
    let out = c.kubectl_with(&["create", "-f", "-"], Some(&bad), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("The Deployment \"bad\" is invalid")
            && err.contains("`selector` does not match template `labels`"),
        "{err}"
    );
}

#[test]
fn create_a_list_and_openapi_v2() {
    let c = Cluster::start(&[]);
    let out = c.create(
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: l1}\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: l2}\n  stringData: {a: b}\n",
    );
    assert!(
        out.contains("configmap/l1 created") && out.contains("secret/l2 created"),
        "{out}"
    );
    // The Swagger 2.0 document, with every kind's definition.
    let v2: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "--raw", "/openapi/v2"])).unwrap();
    assert_eq!(v2["swagger"], "2.0");
    assert!(v2["definitions"]["io.k8s.api.apps.v1.Deployment"]["properties"]["spec"].is_object());
    assert!(
        !v2.to_string().contains("#/components/schemas/"),
        "references are rewritten"
    );
}
