//! kubectl 1.37 `get` and `get -o wide` against `rkube server` for kinds whose printers
//! mirror upstream's: the header line and a row of each.

mod support;

use support::Cluster;

const OBJECTS: &str = r#"
apiVersion: v1
kind: PodTemplate
metadata:
  name: tmpl
  namespace: default
template:
  metadata:
    labels:
      app: web
      tier: fe
  spec:
    containers:
    - name: web
      image: nginx:1
    - name: log
      image: busybox
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx
spec:
  controller: k8s.io/ingress-nginx
  parameters:
    apiGroup: k8s.example.com
    kind: IngressParameters
    name: external-lb
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: db
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes: [Ingress]
---
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: gvisor
handler: runsc
---
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata:
  name: csi.example.com
spec:
  podInfoOnMount: true
  volumeLifecycleModes: [Persistent]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc
  namespace: default
addressType: IPv4
ports:
- name: http
  port: 80
  protocol: TCP
endpoints:
- addresses: ["10.0.0.1"]
- addresses: ["10.0.0.2"]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: replicas
spec:
  paramKind:
    apiVersion: v1
    kind: ConfigMap
  validations:
  - expression: "true"
---
apiVersion: v1
kind: ResourceQuota
metadata:
  name: quota
  namespace: default
spec:
  hard:
    pods: "10"
    limits.cpu: "4"
"#;

/// The words of a line (kubectl pads columns with spaces).
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// `kubectl get <args>`: its header and the row whose first word is `name`, as words.
fn get(c: &Cluster, args: &[&str], name: &str) -> (Vec<String>, Vec<String>) {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    let out = c.ok(&full);
    let mut lines = out.lines();
    let header = words(lines.next().unwrap_or_default())
        .into_iter()
        .map(str::to_owned)
        .collect();
    let row = lines
        .map(words)
        .find(|w| w.first() == Some(&name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{out}"))
        .into_iter()
        .map(str::to_owned)
        .collect();
    (header, row)
}

/// Checks a header and row; `*` in `row` matches any word (ages).
fn expect(c: &Cluster, args: &[&str], name: &str, header: &str, row: &[&str]) {
    let (got_header, got_row) = get(c, args, name);
    assert_eq!(
        got_header.join(" "),
        header,
        "header of kubectl get {args:?}"
    );
    assert_eq!(
        got_row.len(),
        row.len(),
        "row of kubectl get {args:?}: {got_row:?}"
    );
    for (got, want) in got_row.iter().zip(row) {
        assert!(
            *want == "*" || got == want,
            "row of kubectl get {args:?}: {got_row:?}, wanted {row:?}"
        );
    }
}

#[test]
fn kubectl_get_prints_upstreams_columns() {
    // No workload controllers: the expected columns are those of objects nothing acts on.
    let c =
        Cluster::start(&["--controllers=*,-deployment,-replicaset,-daemonset,-statefulset,-job"]);
    c.create(OBJECTS);

    // Pod templates have no wide columns.
    let pt = "NAME CONTAINERS IMAGES POD LABELS";
    let pt_row = ["tmpl", "web,log", "nginx:1,busybox", "app=web,tier=fe"];
    expect(&c, &["podtemplates"], "tmpl", pt, &pt_row);
    expect(&c, &["podtemplates", "-o", "wide"], "tmpl", pt, &pt_row);

    let ic = "NAME CONTROLLER PARAMETERS AGE";
    let ic_row = [
        "nginx",
        "k8s.io/ingress-nginx",
        "IngressParameters.k8s.example.com/external-lb",
        "*",
    ];
    expect(&c, &["ingressclasses"], "nginx", ic, &ic_row);
    expect(&c, &["ingressclasses", "-o", "wide"], "nginx", ic, &ic_row);

    let np = "NAME POD-SELECTOR AGE";
    expect(&c, &["networkpolicies"], "db", np, &["db", "role=db", "*"]);
    expect(
        &c,
        &["netpol", "-o", "wide"],
        "db",
        np,
        &["db", "role=db", "*"],
    );

    let rc = "NAME HANDLER AGE";
    expect(
        &c,
        &["runtimeclasses"],
        "gvisor",
        rc,
        &["gvisor", "runsc", "*"],
    );

    let csi = "NAME ATTACHREQUIRED PODINFOONMOUNT STORAGECAPACITY TOKENREQUESTS REQUIRESREPUBLISH MODES AGE";
    let csi_row = [
        "csi.example.com",
        "true",
        "true",
        "false",
        "<unset>",
        "false",
        "Persistent",
        "*",
    ];
    expect(&c, &["csidrivers"], "csi.example.com", csi, &csi_row);
    expect(
        &c,
        &["csidrivers", "-o", "wide"],
        "csi.example.com",
        csi,
        &csi_row,
    );

    let es = "NAME ADDRESSTYPE PORTS ENDPOINTS AGE";
    let es_row = ["web-abc", "IPv4", "80", "10.0.0.1,10.0.0.2", "*"];
    expect(&c, &["endpointslices"], "web-abc", es, &es_row);

    let vap = "NAME VALIDATIONS PARAMKIND AGE";
    let vap_row = ["replicas", "1", "v1/ConfigMap", "*"];
    expect(
        &c,
        &["validatingadmissionpolicies"],
        "replicas",
        vap,
        &vap_row,
    );

    // A quota's REQUEST and LIMIT summaries (used/hard once the status has them).
    let (header, row) = get(&c, &["resourcequotas"], "quota");
    assert_eq!(header.join(" "), "NAME REQUEST LIMIT AGE");
    assert_eq!(row[0], "quota");

    // Roles get upstream's default columns.
    c.ok(&["create", "role", "reader", "--verb=get", "--resource=pods"]);
    let (header, row) = get(&c, &["roles"], "reader");
    assert_eq!(header.join(" "), "NAME CREATED AT");
    assert_eq!(row.len(), 2, "{row:?}");

    // Workloads' wide columns: containers, images and the selector.
    c.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1",
        "--replicas=2",
    ]);
    expect(
        &c,
        &["deployments", "-o", "wide"],
        "web",
        "NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR",
        &["web", "0/2", "0", "0", "*", "nginx", "nginx:1", "app=web"],
    );
    c.ok(&["create", "job", "once", "--image=busybox"]);
    let (header, row) = get(&c, &["jobs", "-o", "wide"], "once");
    assert_eq!(
        header.join(" "),
        "NAME STATUS COMPLETIONS DURATION AGE CONTAINERS IMAGES SELECTOR"
    );
    assert_eq!(&row[..3], ["once", "Running", "0/1"], "{row:?}");
}
