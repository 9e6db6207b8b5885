//! Service ClusterIP and NodePort allocation end to end, with kubectl 1.37 and the Python
//! client: addresses from `--service-cluster-ip-range` recorded as IPAddress objects in the
//! default ServiceCIDR, node ports from `--service-node-port-range`, upstream's errors for
//! taken and out-of-range requests (with nothing written), headless and ExternalName
//! Services, type changes, release on delete, concurrent creates, and the repair loop
//! across a restart.

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::Cluster;

fn json(c: &Cluster, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["-o", "json"]);
    serde_json::from_str(&c.ok(&args)).unwrap()
}

fn spec(c: &Cluster, svc: &str) -> Value {
    json(c, &["get", "svc", svc])["spec"].clone()
}

/// IPAddress name → `namespace/name` of its Service.
fn ip_addresses(c: &Cluster) -> Vec<(String, String)> {
    let list = json(c, &["get", "ipaddresses"]);
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let r = &i["spec"]["parentRef"];
            (
                i["metadata"]["name"].as_str().unwrap().to_owned(),
                format!(
                    "{}/{}",
                    r["namespace"].as_str().unwrap(),
                    r["name"].as_str().unwrap()
                ),
            )
        })
        .collect()
}

fn in_range(ip: &str) -> bool {
    let octets: Vec<u8> = ip.split('.').map(|o| o.parse().unwrap()).collect();
    octets.len() == 4 && octets[0] == 10 && octets[1] == 43 && ip != "10.43.0.0"
}

#[test]
fn kubectl_gets_cluster_ips_and_node_ports_with_upstream_errors() {
    let c = Cluster::start(&[]);
    // The default ServiceCIDR, Ready, and the kubernetes Service's recorded address.
    let cidr = json(&c, &["get", "servicecidr", "kubernetes"]);
    assert_eq!(cidr["spec"]["cidrs"], serde_json::json!(["10.43.0.0/16"]));
    assert_eq!(cidr["status"]["conditions"][0]["type"], "Ready");
    assert_eq!(cidr["status"]["conditions"][0]["status"], "True");
    assert!(ip_addresses(&c).contains(&("10.43.0.1".into(), "default/kubernetes".into())));

    c.ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    let web = spec(&c, "web");
    let ip = web["clusterIP"].as_str().unwrap().to_owned();
    assert!(in_range(&ip), "{web}");
    assert_eq!(web["clusterIPs"], serde_json::json!([ip.clone()]));
    assert_eq!(web["ipFamilies"], serde_json::json!(["IPv4"]));
    assert_eq!(web["ipFamilyPolicy"], "SingleStack");
    let record = json(&c, &["get", "ipaddress", &ip]);
    assert_eq!(
        record["metadata"]["labels"]["ipaddress.kubernetes.io/managed-by"],
        "ipallocator.k8s.io"
    );
    assert_eq!(
        record["metadata"]["labels"]["ipaddress.kubernetes.io/ip-family"],
        "IPv4"
    );
    assert_eq!(
        record["spec"]["parentRef"],
        serde_json::json!({"group": "", "resource": "services", "namespace": "default", "name": "web"})
    );
    // A create that fails after allocating (the name is taken) gives the address back.
    let before = ip_addresses(&c);
    let err = c.fails(&["create", "service", "clusterip", "web", "--tcp=81"]);
    assert!(err.contains("services \"web\" already exists"), "{err}");
    assert_eq!(ip_addresses(&c), before);
    let table = c.ok(&["get", "svc", "web", "--no-headers"]);
    let row: Vec<&str> = table.split_whitespace().collect();
    assert_eq!(
        row[..5],
        ["web", "ClusterIP", ip.as_str(), "<none>", "80/TCP"],
        "{table}"
    );

    // NodePort: every port gets a node port from the range; the table shows it.
    c.ok(&["create", "service", "nodeport", "np", "--tcp=80:8080"]);
    let np = spec(&c, "np");
    let node_port = np["ports"][0]["nodePort"].as_i64().unwrap();
    assert!((30000..=32767).contains(&node_port), "{np}");
    assert!(in_range(np["clusterIP"].as_str().unwrap()));
    let table = c.ok(&["get", "svc", "np", "--no-headers"]);
    assert!(table.contains(&format!("80:{node_port}/TCP")), "{table}");

    // kubectl expose of a Deployment.
    c.ok(&[
        "create",
        "deployment",
        "app",
        "--image=busybox",
        "--port=8080",
    ]);
    c.ok(&[
        "expose",
        "deployment",
        "app",
        "--port=80",
        "--target-port=8080",
        "--type=NodePort",
    ]);
    let app = spec(&c, "app");
    assert!(in_range(app["clusterIP"].as_str().unwrap()), "{app}");
    assert!(app["ports"][0]["nodePort"].as_i64().unwrap() >= 30000);

    // Requested values: taken, out of range, invalid — upstream's words, nothing written.
    c.ok(&[
        "create",
        "service",
        "clusterip",
        "fixed",
        "--clusterip=10.43.0.50",
        "--tcp=80",
    ]);
    c.ok(&[
        "create",
        "service",
        "nodeport",
        "fixed-np",
        "--tcp=80",
        "--node-port=30080",
    ]);
    let before = ip_addresses(&c);
    for (args, message) in [
        (
            vec!["create", "service", "clusterip", "dup", "--clusterip=10.43.0.50", "--tcp=80"],
            "Service \"dup\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.43.0.50\"}: failed to allocate IP 10.43.0.50: provided IP is already allocated",
        ),
        (
            vec!["create", "service", "clusterip", "dup", "--clusterip=10.43.255.255", "--tcp=80"],
            "Service \"dup\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.43.255.255\"}: failed to allocate IP 10.43.255.255: the provided IP (10.43.255.255) is not in the valid range. The range of valid IPs is 10.43.0.0/16",
        ),
        (
            vec!["create", "service", "clusterip", "dup", "--clusterip=192.168.7.7", "--tcp=80"],
            "Service \"dup\" is invalid: spec.clusterIPs: Invalid value: []string{\"192.168.7.7\"}: failed to allocate IP 192.168.7.7: the provided network does not match the current range",
        ),
        (
            vec!["create", "service", "clusterip", "dup", "--clusterip=10.43.0.500", "--tcp=80"],
            "Service \"dup\" is invalid: spec.clusterIPs[0]: Invalid value: \"10.43.0.500\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ),
        (
            vec!["create", "service", "nodeport", "dup", "--tcp=80", "--node-port=30080"],
            "Service \"dup\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated",
        ),
        (
            vec!["create", "service", "nodeport", "dup", "--tcp=80", "--node-port=8080"],
            "Service \"dup\" is invalid: spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767",
        ),
    ] {
        let err = c.fails(&args);
        assert!(err.contains(message), "{args:?}: {err}");
        assert!(c.fails(&["get", "svc", "dup"]).contains("NotFound"));
    }
    assert_eq!(
        ip_addresses(&c),
        before,
        "a refused create leaves no record"
    );

    // Headless and ExternalName Services get no address.
    c.create("apiVersion: v1\nkind: Service\nmetadata:\n  name: hl\nspec:\n  clusterIP: None\n  selector:\n    app: web\n  ports:\n  - port: 80\n");
    let hl = spec(&c, "hl");
    assert_eq!(hl["clusterIPs"], serde_json::json!(["None"]));
    assert_eq!(hl["ipFamilies"], serde_json::json!(["IPv4"]));
    c.ok(&[
        "create",
        "service",
        "externalname",
        "ext",
        "--external-name=example.com",
    ]);
    let ext = spec(&c, "ext");
    assert!(
        ext.get("clusterIP").is_none() && ext.get("ipFamilies").is_none(),
        "{ext}"
    );
    assert_eq!(ip_addresses(&c), before);

    // The cluster IP is immutable.
    let err = c.fails(&[
        "patch",
        "svc",
        "web",
        "-p",
        r#"{"spec":{"clusterIP":"10.43.0.77","clusterIPs":["10.43.0.77"]}}"#,
    ]);
    assert!(
        err.contains(
            "spec.clusterIPs[0]: Invalid value: []string{\"10.43.0.77\"}: may not change once set"
        ),
        "{err}"
    );

    // Type changes: NodePort → ClusterIP frees the port, ClusterIP → ExternalName the
    // address, ExternalName → ClusterIP allocates one.
    c.ok(&[
        "patch",
        "svc",
        "fixed-np",
        "-p",
        r#"{"spec":{"type":"ClusterIP"}}"#,
    ]);
    assert!(spec(&c, "fixed-np")["ports"][0].get("nodePort").is_none());
    c.ok(&[
        "create",
        "service",
        "nodeport",
        "np-again",
        "--tcp=80",
        "--node-port=30080",
    ]);
    c.ok(&[
        "patch",
        "svc",
        "fixed",
        "-p",
        r#"{"spec":{"type":"ExternalName","externalName":"example.org"}}"#,
    ]);
    let fixed = spec(&c, "fixed");
    assert!(fixed.get("clusterIP").is_none(), "{fixed}");
    assert!(!ip_addresses(&c).iter().any(|(ip, _)| ip == "10.43.0.50"));
    c.ok(&[
        "patch",
        "svc",
        "ext",
        "-p",
        r#"{"spec":{"type":"ClusterIP","ports":[{"port":80}]}}"#,
    ]);
    let ext_ip = spec(&c, "ext")["clusterIP"].as_str().unwrap().to_owned();
    assert!(ip_addresses(&c).contains(&(ext_ip, "default/ext".into())));
    // An update that changes the node port frees the old one.
    let np_port = node_port.to_string();
    c.ok(&[
        "patch",
        "svc",
        "np",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/ports/0/nodePort","value":30070}]"#,
    ]);
    c.ok(&[
        "create",
        "service",
        "nodeport",
        "np-old",
        "--tcp=80",
        &format!("--node-port={np_port}"),
    ]);

    // Delete frees: the same address can be asked for again.
    c.ok(&[
        "create",
        "service",
        "clusterip",
        "again",
        "--clusterip=10.43.0.50",
        "--tcp=80",
    ]);
    c.ok(&["delete", "svc", "again"]);
    c.ok(&[
        "create",
        "service",
        "clusterip",
        "again2",
        "--clusterip=10.43.0.50",
        "--tcp=80",
    ]);
    c.ok(&["delete", "svc", "np-again"]);
    c.ok(&[
        "create",
        "service",
        "nodeport",
        "np-third",
        "--tcp=80",
        "--node-port=30080",
    ]);

    // LoadBalancer with externalTrafficPolicy Local gets a health check node port.
    c.create("apiVersion: v1\nkind: Service\nmetadata:\n  name: lb\nspec:\n  type: LoadBalancer\n  externalTrafficPolicy: Local\n  selector:\n    app: web\n  ports:\n  - port: 80\n");
    let lb = spec(&c, "lb");
    let hc = lb["healthCheckNodePort"].as_i64().unwrap();
    assert!(
        (30000..=32767).contains(&hc) && hc != lb["ports"][0]["nodePort"].as_i64().unwrap(),
        "{lb}"
    );
    assert_eq!(lb["allocateLoadBalancerNodePorts"], true);

    // Every Service holding an address has its record, and nothing else does.
    let svcs = json(&c, &["get", "svc", "-A"]);
    let mut held: Vec<(String, String)> = svcs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| {
            let ip = s["spec"]["clusterIP"].as_str()?;
            (ip != "None").then(|| {
                (
                    ip.to_owned(),
                    format!(
                        "{}/{}",
                        s["metadata"]["namespace"].as_str().unwrap(),
                        s["metadata"]["name"].as_str().unwrap()
                    ),
                )
            })
        })
        .collect();
    held.sort();
    let mut records = ip_addresses(&c);
    records.sort();
    assert_eq!(held, records);
}

const CONCURRENT: &str = r#"
import sys, threading
from kubernetes import client, config
config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()
results, errors = {}, []
def create(i):
    try:
        body = client.V1Service(metadata=client.V1ObjectMeta(name=f"s{i}"), spec=client.V1ServiceSpec(type="NodePort", selector={"app": "x"}, ports=[client.V1ServicePort(port=80)]))
        svc = v1.create_namespaced_service("default", body)
        results[i] = (svc.spec.cluster_ip, svc.spec.ports[0].node_port)
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=create, args=(i,)) for i in range(20)]
[t.start() for t in threads]
[t.join(60) for t in threads]
assert not errors, errors
assert len(results) == 20, results
ips = [r[0] for r in results.values()]
ports = [r[1] for r in results.values()]
assert len(set(ips)) == 20, ips
assert len(set(ports)) == 20, ports
# A requested address taken in between is refused through the client too.
try:
    v1.create_namespaced_service("default", client.V1Service(metadata=client.V1ObjectMeta(name="taken"), spec=client.V1ServiceSpec(cluster_ip=ips[0], ports=[client.V1ServicePort(port=80)])))
    raise SystemExit("a taken address was handed out twice")
except client.rest.ApiException as e:
    assert e.status == 422 and "provided IP is already allocated" in e.body, e.body
for ip in ips:
    print(ip)
"#;

#[test]
fn concurrent_creates_get_distinct_addresses_and_ports() {
    let c = Cluster::start(&[]);
    let child = Command::new(support::venv().join("bin/python"))
        .args(["-c", CONCURRENT])
        .arg(&c.kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = support::wait_with_timeout(child, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}\n--- server log ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        c.log()
    );
    let ips: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(ips.len(), 20);
    let records: BTreeSet<String> = ip_addresses(&c).into_iter().map(|(ip, _)| ip).collect();
    assert!(ips.is_subset(&records), "{ips:?} not all in {records:?}");
    assert_eq!(records.len(), 21, "20 Services and kubernetes: {records:?}");

    // The default ServiceCIDR comes back when deleted (upstream re-checks every 10 s).
    c.ok(&["delete", "servicecidr", "kubernetes"]);
    support::wait_for_within(
        &c,
        Duration::from_secs(40),
        &[
            "get",
            "servicecidr",
            "kubernetes",
            "-o",
            "jsonpath={.spec.cidrs[0]} {.status.conditions[0].status}",
        ],
        "the default ServiceCIDR to be re-created",
        |out| out == "10.43.0.0/16 True",
    );
}

#[test]
fn restart_keeps_allocations_and_repairs_records() {
    let (_etcd, flags) = support::persistent_datastore();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let c = Cluster::start(&flags);
    c.ok(&[
        "create",
        "service",
        "clusterip",
        "keep",
        "--clusterip=10.43.0.60",
        "--tcp=80",
    ]);
    c.ok(&[
        "create",
        "service",
        "nodeport",
        "keep-np",
        "--tcp=80",
        "--node-port=30060",
    ]);
    c.ok(&["create", "service", "clusterip", "lost", "--tcp=80"]);
    let lost_ip = spec(&c, "lost")["clusterIP"].as_str().unwrap().to_owned();
    // A record whose Service never got written, and a Service whose record was lost.
    c.create("apiVersion: networking.k8s.io/v1\nkind: IPAddress\nmetadata:\n  name: 10.43.0.99\n  labels:\n    ipaddress.kubernetes.io/managed-by: ipallocator.k8s.io\n    ipaddress.kubernetes.io/ip-family: IPv4\nspec:\n  parentRef:\n    group: \"\"\n    resource: services\n    namespace: default\n    name: never-written\n");
    c.ok(&["delete", "ipaddress", &lost_ip]);
    let (status, dir) = c.stop();
    assert!(status.success());

    let c = Cluster::start_with_env(dir, &flags, &[("RKUBE_SERVICE_ALLOCATION_GRACE", "0s")]);
    let records = ip_addresses(&c);
    assert!(
        !records.iter().any(|(ip, _)| ip == "10.43.0.99"),
        "the leak is freed: {records:?}"
    );
    assert!(
        records.contains(&(lost_ip.clone(), "default/lost".into())),
        "{records:?}"
    );
    assert!(records.contains(&("10.43.0.60".into(), "default/keep".into())));
    let events = c.ok(&["get", "events", "-o", "jsonpath={.items[*].message}"]);
    assert!(
        events.contains(&format!(
            "Cluster IP [IPv4]: {lost_ip} is not allocated; repairing"
        )),
        "{events}"
    );
    // What was allocated before the restart is still taken, and the freed address is not.
    for (args, message) in [
        (
            vec![
                "create",
                "service",
                "clusterip",
                "dup",
                "--clusterip=10.43.0.60",
                "--tcp=80",
            ],
            "provided IP is already allocated",
        ),
        (
            vec![
                "create",
                "service",
                "clusterip",
                "dup",
                &format!("--clusterip={lost_ip}"),
                "--tcp=80",
            ],
            "provided IP is already allocated",
        ),
        (
            vec![
                "create",
                "service",
                "nodeport",
                "dup",
                "--tcp=80",
                "--node-port=30060",
            ],
            "provided port is already allocated",
        ),
    ] {
        let err = c.fails(&args);
        assert!(err.contains(message), "{args:?}: {err}");
    }
    c.ok(&[
        "create",
        "service",
        "clusterip",
        "reuse",
        "--clusterip=10.43.0.99",
        "--tcp=80",
    ]);
}
