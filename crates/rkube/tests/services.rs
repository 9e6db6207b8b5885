//! Service plumbing end to end: the endpoints and endpointslice controllers of `rkube
//! server` list hollow-node pods behind Services — ready and not-ready pods, named target
//! ports resolved per pod, `publishNotReadyAddresses`, hostnames — and clean up after a
//! Service is deleted; selector-less Services' Endpoints are left alone.

mod support;

use serde_json::{json, Value};
use support::hollow::{wait_json, HollowNodes};
use support::Cluster;

fn pod(name: &str, port: u16, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: web\nspec:\n{extra_spec}  containers:\n  - name: c\n    image: busybox\n    ports:\n    - name: http\n      containerPort: {port}\n"
    )
}

fn ip_of(c: &Cluster, pod: &str) -> String {
    let p = wait_json(
        c,
        &["get", "pod", pod],
        30,
        &format!("{pod} running"),
        |p| {
            p["status"]["podIP"].is_string()
                && p["status"]["conditions"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready"))
        },
    );
    p["status"]["podIP"].as_str().unwrap().to_owned()
}

/// `(ip, port)` pairs of an Endpoints object's `field` (`addresses`/`notReadyAddresses`).
fn pairs(ep: &Value, field: &str) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for s in ep["subsets"].as_array().into_iter().flatten() {
        for a in s[field].as_array().into_iter().flatten() {
            for p in s["ports"].as_array().into_iter().flatten() {
                out.push((
                    a["ip"].as_str().unwrap().to_owned(),
                    p["port"].as_i64().unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// `(ip, ready, serving, terminating, port)` of every endpoint in `svc`'s slices.
fn slice_endpoints(list: &Value) -> Vec<(String, bool, bool, bool, i64)> {
    let mut out = Vec::new();
    for s in list["items"].as_array().into_iter().flatten() {
        let port = s["ports"][0]["port"].as_i64().unwrap_or(0);
        for e in s["endpoints"].as_array().into_iter().flatten() {
            let c = &e["conditions"];
            out.push((
                e["addresses"][0].as_str().unwrap().to_owned(),
                c["ready"] == true,
                c["serving"] == true,
                c["terminating"] == true,
                port,
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn endpoints_and_slices_follow_pods() {
    let c = Cluster::start(&[]);
    // Paper-mode nodes: the test turns a pod not ready by writing its status, which a
    // (hollow) kubelet would overwrite with what its probes say at its next sync.
    let _nodes = HollowNodes::start(&c, &["--count", "2", "--mode", "paper"]);
    c.wait_for_default_sa("default");
    c.create(&pod("web-1", 8080, "  hostname: h1\n  subdomain: web\n"));
    c.create(&pod("web-2", 9090, ""));
    c.create(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  labels:\n    tier: front\nspec:\n  selector:\n    app: web\n  ports:\n  - name: http\n    port: 80\n    targetPort: http\n",
    );
    let ip1 = ip_of(&c, "web-1");
    let ip2 = ip_of(&c, "web-2");

    // Both pods ready: each under its own resolved port, with hostname, node and targetRef.
    let ep = wait_json(
        &c,
        &["get", "endpoints", "web"],
        30,
        "endpoints of web",
        |ep| pairs(ep, "addresses").len() == 2,
    );
    let mut want = vec![(ip1.clone(), 8080), (ip2.clone(), 9090)];
    want.sort();
    assert_eq!(pairs(&ep, "addresses"), want);
    assert_eq!(ep["metadata"]["labels"], json!({"tier": "front"}));
    assert!(
        ep["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"]
            .is_string(),
        "{ep}"
    );
    let addrs: Vec<&Value> = ep["subsets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["addresses"].as_array().unwrap())
        .collect();
    let a1 = addrs.iter().find(|a| a["ip"] == ip1.as_str()).unwrap();
    assert_eq!(a1["hostname"], "h1");
    assert!(a1["nodeName"].as_str().unwrap().starts_with("hollow-node-"));
    assert_eq!(a1["targetRef"]["kind"], "Pod");
    assert_eq!(a1["targetRef"]["name"], "web-1");
    let a2 = addrs.iter().find(|a| a["ip"] == ip2.as_str()).unwrap();
    assert!(a2.get("hostname").is_none(), "{a2}");

    let slices = wait_json(
        &c,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
        ],
        30,
        "slices of web",
        |l| slice_endpoints(l).len() == 2,
    );
    let mut want = vec![
        (ip1.clone(), true, true, false, 8080),
        (ip2.clone(), true, true, false, 9090),
    ];
    want.sort();
    assert_eq!(slice_endpoints(&slices), want);
    for s in slices["items"].as_array().unwrap() {
        let m = &s["metadata"];
        assert_eq!(
            m["labels"]["endpointslice.kubernetes.io/managed-by"],
            "endpointslice-controller.k8s.io"
        );
        assert_eq!(m["labels"]["tier"], "front");
        assert!(m["name"].as_str().unwrap().starts_with("web-"));
        assert_eq!(m["ownerReferences"][0]["kind"], "Service");
        assert_eq!(m["ownerReferences"][0]["controller"], true);
        assert_eq!(s["addressType"], "IPv4");
        assert_eq!(s["ports"][0]["name"], "http");
    }

    // web-2 turns not ready: notReadyAddresses, and ready=false serving=false in its slice.
    c.ok(&[
        "patch",
        "pod",
        "web-2",
        "--subresource=status",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"False"}]}}"#,
    ]);
    let ep = wait_json(
        &c,
        &["get", "endpoints", "web"],
        30,
        "web-2 not ready",
        |ep| pairs(ep, "notReadyAddresses").len() == 1,
    );
    assert_eq!(pairs(&ep, "addresses"), vec![(ip1.clone(), 8080)]);
    assert_eq!(pairs(&ep, "notReadyAddresses"), vec![(ip2.clone(), 9090)]);
    let slices = wait_json(
        &c,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
        ],
        30,
        "web-2 not ready in its slice",
        |l| slice_endpoints(l).iter().any(|e| e.0 == ip2 && !e.1),
    );
    assert!(slice_endpoints(&slices).contains(&(ip2.clone(), false, false, false, 9090)));

    // publishNotReadyAddresses: every pod listed ready.
    c.create(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web-all\nspec:\n  publishNotReadyAddresses: true\n  selector:\n    app: web\n  ports:\n  - port: 80\n    targetPort: 8080\n",
    );
    let ep = wait_json(&c, &["get", "endpoints", "web-all"], 30, "web-all", |ep| {
        pairs(ep, "addresses").len() == 2
    });
    assert!(ep["subsets"][0].get("notReadyAddresses").is_none(), "{ep}");
    let slices = wait_json(
        &c,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web-all",
        ],
        30,
        "slices of web-all",
        |l| slice_endpoints(l).len() == 2,
    );
    assert!(slice_endpoints(&slices).iter().all(|e| e.1), "{slices}");

    // A pod whose labels no longer match leaves the endpoints.
    c.ok(&["label", "pod", "web-1", "app=other", "--overwrite"]);
    wait_json(&c, &["get", "endpoints", "web"], 30, "web-1 gone", |ep| {
        pairs(ep, "addresses").is_empty() && pairs(ep, "notReadyAddresses").len() == 1
    });
    wait_json(
        &c,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
        ],
        30,
        "web-1 gone from the slices",
        |l| slice_endpoints(l).iter().all(|e| e.0 != ip1),
    );

    // Selector-less: hand-written Endpoints stay, and no slices are made for it.
    c.create(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: manual\nspec:\n  ports:\n  - port: 80\n",
    );
    c.create("apiVersion: v1\nkind: Endpoints\nmetadata:\n  name: manual\nsubsets:\n- addresses:\n  - ip: 192.0.2.1\n  ports:\n  - port: 80\n");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let ep = c.ok(&[
        "get",
        "endpoints",
        "manual",
        "-o",
        "jsonpath={.subsets[0].addresses[0].ip}",
    ]);
    assert_eq!(ep, "192.0.2.1");
    let managed = c.ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=manual,endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io",
        "-o",
        "name",
    ]);
    assert_eq!(managed, "");

    // The Service deleted: its Endpoints and slices go.
    c.ok(&["delete", "service", "web"]);
    wait_json(
        &c,
        &["get", "endpoints"],
        30,
        "web's endpoints deleted",
        |l| {
            l["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["metadata"]["name"] != "web")
        },
    );
    wait_json(
        &c,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
        ],
        30,
        "web's slices deleted",
        |l| l["items"].as_array().unwrap().is_empty(),
    );
}

#[test]
fn a_service_without_pods_has_empty_endpoints_and_a_placeholder_slice() {
    let c = Cluster::start(&[]);
    c.create("apiVersion: v1\nkind: Service\nmetadata:\n  name: lonely\nspec:\n  selector:\n    app: none\n  ports:\n  - port: 80\n");
    let ep = wait_json(
        &c,
        &["get", "endpoints", "lonely"],
        30,
        "lonely's endpoints",
        |_| true,
    );
    assert!(ep.get("subsets").is_none(), "{ep}");
    let slices = wait_json(
        &c,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=lonely",
        ],
        30,
        "a placeholder slice",
        |l| l["items"].as_array().unwrap().len() == 1,
    );
    let s = &slices["items"][0];
    assert!(
        s["endpoints"].is_null() || s["endpoints"] == json!([]),
        "{s}"
    );
    // kubectl shows it like upstream.
    let table = c.ok(&["get", "endpoints", "lonely"]);
    assert!(table.contains("<none>"), "{table}");
}
