//! Control-plane plumbing end to end: the `default/kubernetes` Service and its endpoints
//! kept by the API server, the field managers of in-process components' writes, and the
//! controller manager's metrics.

mod support;

use serde_json::Value;
use support::hollow::wait_json;
use support::Cluster;

fn port_of(c: &Cluster) -> i64 {
    c.addr.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn kubernetes_service_and_endpoints_are_kept_by_the_apiserver() {
    let c = Cluster::start(&[]);
    let secure_port = port_of(&c);
    let svc: Value =
        serde_json::from_str(&c.ok(&["get", "svc", "kubernetes", "-o", "json"])).unwrap();
    assert_eq!(svc["spec"]["clusterIP"], "10.43.0.1", "{svc}");
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["metadata"]["labels"]["component"], "apiserver");
    assert_eq!(svc["metadata"]["labels"]["provider"], "kubernetes");
    let port = &svc["spec"]["ports"][0];
    assert_eq!(port["name"], "https");
    assert_eq!(port["port"], 443);
    assert_eq!(port["targetPort"], secure_port);
    assert!(svc["spec"].get("selector").is_none_or(Value::is_null));

    let ep: Value =
        serde_json::from_str(&c.ok(&["get", "endpoints", "kubernetes", "-o", "json"])).unwrap();
    assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "127.0.0.1", "{ep}");
    assert_eq!(ep["subsets"][0]["ports"][0]["port"], secure_port);
    assert_eq!(ep["subsets"][0]["ports"][0]["name"], "https");
    assert_eq!(
        ep["metadata"]["labels"]["endpointslice.kubernetes.io/skip-mirror"],
        "true"
    );

    let slices: Value = serde_json::from_str(&c.ok(&[
        "get",
        "endpointslice",
        "-l",
        "kubernetes.io/service-name=kubernetes",
        "-o",
        "json",
    ]))
    .unwrap();
    let items = slices["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{slices}");
    assert_eq!(items[0]["metadata"]["name"], "kubernetes");
    assert_eq!(items[0]["addressType"], "IPv4");
    assert_eq!(items[0]["endpoints"][0]["addresses"][0], "127.0.0.1");
    assert_eq!(items[0]["endpoints"][0]["conditions"]["ready"], true);
    assert_eq!(items[0]["ports"][0]["port"], secure_port);

    // Deleted: it comes back (a new object, a new uid).
    let uid = svc["metadata"]["uid"].as_str().unwrap().to_owned();
    c.ok(&["delete", "svc", "kubernetes", "--wait=false"]);
    wait_json(
        &c,
        &["get", "svc", "kubernetes"],
        30,
        "the service back",
        |s| {
            s["metadata"]["uid"].as_str().is_some_and(|u| u != uid)
                && s["spec"]["ports"][0]["port"] == 443
        },
    );
    c.ok(&["delete", "endpoints", "kubernetes"]);
    c.ok(&["delete", "endpointslice", "kubernetes"]);
    wait_json(
        &c,
        &["get", "endpoints", "kubernetes"],
        30,
        "endpoints back",
        |e| e["subsets"][0]["addresses"][0]["ip"] == "127.0.0.1",
    );
    wait_json(
        &c,
        &["get", "endpointslice", "kubernetes"],
        30,
        "slice back",
        |s| s["endpoints"][0]["addresses"][0] == "127.0.0.1",
    );

    // Edited: repaired.
    c.ok(&[
        "patch",
        "svc",
        "kubernetes",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/ports/0/port","value":8443}]"#,
    ]);
    wait_json(
        &c,
        &["get", "svc", "kubernetes"],
        30,
        "port 443 again",
        |s| s["spec"]["ports"][0]["port"] == 443,
    );
    c.ok(&[
        "patch",
        "endpoints",
        "kubernetes",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/subsets/0/addresses/0/ip","value":"192.0.2.7"}]"#,
    ]);
    wait_json(
        &c,
        &["get", "endpoints", "kubernetes"],
        30,
        "the address again",
        |e| e["subsets"][0]["addresses"][0]["ip"] == "127.0.0.1",
    );
}

/// The managers of `obj`'s managedFields entries.
fn managers(obj: &Value) -> Vec<String> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["manager"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn in_process_components_write_as_their_upstream_field_managers() {
    let c = Cluster::start(&[]);
    let hollow = support::hollow::HollowNodes::start(&c, &["--count", "1"]);
    c.create(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: c\n        image: busybox\n",
    );
    let rs = wait_json(
        &c,
        &["get", "rs", "-l", "app=web", "--show-managed-fields"],
        30,
        "a replicaset with status",
        |l| {
            l["items"]
                .as_array()
                .and_then(|i| i.first())
                .is_some_and(|rs| rs["status"]["readyReplicas"] == 1)
        },
    );
    let rs = &rs["items"][0];
    let m = managers(rs);
    assert!(
        m.iter().all(|m| m == "kube-controller-manager"),
        "managers {m:?} in {rs}"
    );
    assert!(!m.is_empty(), "{rs}");
    let deploy: Value = serde_json::from_str(&c.ok(&[
        "get",
        "deploy",
        "web",
        "--show-managed-fields",
        "-o",
        "json",
    ]))
    .unwrap();
    let m = managers(&deploy);
    assert!(m.contains(&"kubectl-create".to_owned()), "{m:?}");
    assert!(m.contains(&"kube-controller-manager".to_owned()), "{m:?}");
    assert!(!m.contains(&String::new()), "{m:?}");
    let pods: Value = serde_json::from_str(&c.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "--show-managed-fields",
        "-o",
        "json",
    ]))
    .unwrap();
    let m = managers(&pods["items"][0]);
    assert!(m.contains(&"kube-controller-manager".to_owned()), "{m:?}");
    assert!(!m.contains(&String::new()), "{m:?} in {pods}");
    drop(hollow);
}

#[test]
fn endpoints_of_selectorless_services_are_mirrored_into_slices() {
    let c = Cluster::start(&[]);
    c.create(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: ext\nspec:\n  ports:\n  - name: pg\n    port: 5432\n---\napiVersion: v1\nkind: Endpoints\nmetadata:\n  name: ext\n  labels:\n    team: db\nsubsets:\n- addresses:\n  - ip: 192.0.2.10\n  - ip: 192.0.2.11\n  notReadyAddresses:\n  - ip: 192.0.2.12\n  ports:\n  - name: pg\n    port: 5432\n",
    );
    let sel = "kubernetes.io/service-name=ext";
    let mirrored = |l: &Value| -> Vec<(String, bool)> {
        let mut out: Vec<(String, bool)> = l["items"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .map(|e| {
                (
                    e["addresses"][0].as_str().unwrap_or_default().to_owned(),
                    e["conditions"]["ready"] == true,
                )
            })
            .collect();
        out.sort();
        out
    };
    let list = wait_json(
        &c,
        &["get", "endpointslice", "-l", sel],
        30,
        "mirrored slice",
        |l| mirrored(l).len() == 3,
    );
    assert_eq!(
        mirrored(&list),
        vec![
            ("192.0.2.10".into(), true),
            ("192.0.2.11".into(), true),
            ("192.0.2.12".into(), false)
        ]
    );
    let slice = &list["items"][0];
    assert_eq!(
        slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslicemirroring-controller.k8s.io"
    );
    assert_eq!(slice["metadata"]["labels"]["team"], "db");
    assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Service");
    assert_eq!(slice["ports"][0]["port"], 5432);
    assert_eq!(slice["addressType"], "IPv4");

    // Endpoints changes are followed.
    c.ok(&[
        "patch",
        "endpoints",
        "ext",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/subsets/0/addresses/1"}]"#,
    ]);
    wait_json(
        &c,
        &["get", "endpointslice", "-l", sel],
        30,
        "one address fewer",
        |l| mirrored(l) == vec![("192.0.2.10".into(), true), ("192.0.2.12".into(), false)],
    );

    // skip-mirror: the mirrored slices go.
    c.ok(&[
        "label",
        "endpoints",
        "ext",
        "endpointslice.kubernetes.io/skip-mirror=true",
    ]);
    wait_json(
        &c,
        &["get", "endpointslice", "-l", sel],
        30,
        "no slices",
        |l| l["items"].as_array().is_some_and(Vec::is_empty),
    );
    c.ok(&[
        "label",
        "endpoints",
        "ext",
        "endpointslice.kubernetes.io/skip-mirror-",
    ]);
    wait_json(
        &c,
        &["get", "endpointslice", "-l", sel],
        30,
        "slices back",
        |l| mirrored(l).len() == 2,
    );
    // Deleting the Endpoints removes them as well.
    c.ok(&["delete", "endpoints", "ext"]);
    wait_json(
        &c,
        &["get", "endpointslice", "-l", sel],
        30,
        "no slices",
        |l| l["items"].as_array().is_some_and(Vec::is_empty),
    );

    // The API server's own endpoints are never mirrored.
    let mirrored_kubernetes = c.ok(&[
        "get",
        "endpointslice",
        "-l",
        "endpointslice.kubernetes.io/managed-by=endpointslicemirroring-controller.k8s.io",
        "-A",
        "-o",
        "name",
    ]);
    assert_eq!(mirrored_kubernetes.trim(), "", "{mirrored_kubernetes}");
}

/// The value of the series `metric{name="controller"...}` in Prometheus `text`.
fn series(text: &str, metric: &str, controller: &str) -> f64 {
    let prefix = format!("{metric}{{name=\"{controller}\"");
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

const RS: &str = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: counted\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: counted\n  template:\n    metadata:\n      labels:\n        app: counted\n    spec:\n      containers:\n      - name: c\n        image: busybox\n";

fn wait_for_series(
    scrape: impl Fn() -> String,
    what: &str,
    check: impl Fn(&str) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let text = scrape();
        if check(&text) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}; last scrape:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn controller_workqueue_metrics_move_on_the_apiserver_metrics_endpoint() {
    let c = Cluster::start(&[]);
    let scrape = || c.ok(&["get", "--raw", "/metrics"]);
    let before = scrape();
    let name = "replicaset-controller";
    let adds = series(&before, "workqueue_adds_total", name);
    let work = series(&before, "workqueue_work_duration_seconds_count", name);
    c.create(RS);
    let after = wait_for_series(scrape, "replicaset reconciles", |t| {
        series(t, "workqueue_adds_total", name) > adds
            && series(t, "workqueue_work_duration_seconds_count", name) > work
    });
    for family in [
        "# TYPE workqueue_depth gauge",
        "# TYPE workqueue_adds_total counter",
        "# TYPE workqueue_queue_duration_seconds histogram",
        "# TYPE workqueue_work_duration_seconds histogram",
        "# TYPE workqueue_retries_total counter",
        "# TYPE controller_reconcile_total counter",
    ] {
        assert!(after.contains(family), "{family} missing:\n{after}");
    }
    assert!(
        after.contains(&format!(
            "controller_reconcile_total{{name=\"{name}\",result=\"success\"}}"
        )),
        "{after}"
    );
    // The API server's own series are still there.
    assert!(after.contains("apiserver_request_total{"), "{after}");
    // Every controller goes through the wrappers, the CronJob controller too.
    let cj = "cronjob-controller";
    let cj_work = series(&after, "workqueue_work_duration_seconds_count", cj);
    c.ok(&[
        "create",
        "cronjob",
        "counted",
        "--image=busybox",
        "--schedule=0 0 1 1 *",
    ]);
    wait_for_series(scrape, "cronjob reconciles", |t| {
        series(t, "workqueue_work_duration_seconds_count", cj) > cj_work
            && t.contains(&format!(
                "controller_reconcile_total{{name=\"{cj}\",result=\"success\"}}"
            ))
    });
}

#[test]
fn standalone_controller_manager_serves_healthz_and_metrics_over_https() {
    let c = Cluster::start(&["--disable-controller-manager"]);
    let port = rkube_testkit::free_port();
    let log = std::fs::File::create(c.data_dir().join("kcm.log")).unwrap();
    let _kcm = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_rkube"))
            .args(["controller-manager", "--kubeconfig"])
            .arg(&c.kubeconfig)
            .args([
                "--controllers",
                "replicaset,serviceaccount",
                "--leader-elect=false",
            ])
            .args(["--secure-port", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let get = |path: &str| {
        let out = std::process::Command::new("curl")
            .args(["-sk", "--max-time", "5"])
            .arg(format!("https://127.0.0.1:{port}{path}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait_for_series(|| get("/healthz"), "healthz", |t| t == "ok");
    // Pods need the default ServiceAccount its serviceaccount-controller makes.
    c.wait_for_default_sa("default");
    c.create(RS);
    let text = wait_for_series(
        || get("/metrics"),
        "replicaset series",
        |t| {
            series(
                t,
                "workqueue_work_duration_seconds_count",
                "replicaset-controller",
            ) > 0.0
        },
    );
    assert!(
        text.contains("workqueue_adds_total{name=\"replicaset-controller\"}"),
        "{text}"
    );
    // The write went through the standalone manager, as kube-controller-manager.
    let pods = wait_json(
        &c,
        &["get", "pods", "-l", "app=counted", "--show-managed-fields"],
        30,
        "the replicaset's pods",
        |l| l["items"].as_array().is_some_and(|i| i.len() == 2),
    );
    let m = managers(&pods["items"][0]);
    assert!(m.contains(&"kube-controller-manager".to_owned()), "{m:?}");
}

/// Kills the child process it holds when dropped (on success and on panic).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
