//! The HorizontalPodAutoscaler end to end: a Deployment on hollow nodes, `kubectl
//! autoscale`, and a tiny resource-metrics server the test owns (HTTPS with a test CA)
//! registered as the `v1beta1.metrics.k8s.io` APIService behind a Service and an
//! EndpointSlice, serving PodMetrics with the CPU usage the test chooses. Checks
//! upstream's failure condition while the metrics API is missing, the scale-up with its
//! Event, status, conditions and `kubectl get hpa` TARGETS, the limit at maxReplicas,
//! the v1 view, and the scale-down held back by the (shortened) stabilization window.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use support::hollow::{wait_json, HollowNodes};
use support::Cluster;

/// Seconds since the epoch as RFC 3339 (UTC).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The resource-metrics server: every pod the label selector picks (read with kubectl)
/// uses `usage` milli-CPU in each of its containers.
struct MetricsServer {
    port: u16,
    ca_pem: String,
    usage: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MetricsServer {
    fn start(kubeconfig: std::path::PathBuf, usage: i64) -> MetricsServer {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "metrics-test-ca");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["metrics-server.kube-system.svc".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let usage = Arc::new(AtomicI64::new(usage));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (usage, stop) = (usage.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let (config, usage, kubeconfig) =
                        (config.clone(), usage.clone(), kubeconfig.clone());
                    std::thread::spawn(move || serve_one(stream, config, &usage, &kubeconfig));
                }
            })
        };
        MetricsServer {
            port,
            ca_pem: ca_cert.pem(),
            usage,
            stop,
            thread: Some(thread),
        }
    }

    fn set_usage(&self, milli_cpu: i64) {
        self.usage.store(milli_cpu, Ordering::SeqCst);
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `%XX` decoding of a query value.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One HTTP/1.1 request over TLS, answered with `Connection: close`.
fn serve_one(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    usage: &AtomicI64,
    kubeconfig: &std::path::Path,
) {
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn = rustls::ServerConnection::new(config).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut reader = BufReader::new(&mut tls);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
            break;
        }
    }
    drop(reader);
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let selector = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("labelSelector="))
        .map(unescape)
        .unwrap_or_default();
    let base = "/apis/metrics.k8s.io/v1beta1";
    let (code, doc) = if path == base {
        (
            200,
            serde_json::json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "metrics.k8s.io/v1beta1", "resources": [
                {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]},
                {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]}
            ]}),
        )
    } else if let Some(ns) = path
        .strip_prefix(&format!("{base}/namespaces/"))
        .and_then(|r| r.strip_suffix("/pods"))
    {
        let mut cmd = std::process::Command::new(support::kubectl_path());
        cmd.arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["get", "pods", "-n", ns, "-o", "json"]);
        if !selector.is_empty() {
            cmd.args(["-l", &selector]);
        }
        let pods: serde_json::Value = cmd
            .output()
            .ok()
            .and_then(|o| serde_json::from_slice(&o.stdout).ok())
            .unwrap_or_default();
        let now = rfc3339(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        );
        let cpu = format!("{}m", usage.load(Ordering::SeqCst));
        let items: Vec<serde_json::Value> = pods["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|p| {
                let containers: Vec<serde_json::Value> = p["spec"]["containers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|c| serde_json::json!({"name": c["name"], "usage": {"cpu": cpu, "memory": "10Mi"}}))
                    .collect();
                serde_json::json!({"metadata": {"name": p["metadata"]["name"], "namespace": ns, "labels": p["metadata"]["labels"]},
                    "timestamp": now, "window": "1s", "containers": containers})
            })
            .collect();
        (
            200,
            serde_json::json!({"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items}),
        )
    } else {
        (
            404,
            serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "the server could not find the requested resource", "reason": "NotFound", "code": 404}),
        )
    };
    let body = serde_json::to_vec(&doc).unwrap();
    let head = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        if code == 200 { "OK" } else { "Not Found" },
        body.len()
    );
    let _ = tls.write_all(head.as_bytes());
    let _ = tls.write_all(&body);
    let _ = tls.flush();
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

/// The HPA condition `type_` as (status, reason, message).
fn condition(hpa: &serde_json::Value, type_: &str) -> (String, String, String) {
    let c = hpa["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_).cloned())
        .unwrap_or_default();
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
    (s("status"), s("reason"), s("message"))
}

/// Messages of the Events with `reason` about HPA `web`.
fn events(c: &Cluster, reason: &str) -> Vec<String> {
    let out = c.ok(&["get", "events", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| {
            e["reason"] == reason
                && e["involvedObject"]["kind"] == "HorizontalPodAutoscaler"
                && e["involvedObject"]["name"] == "web"
        })
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn replicas(c: &Cluster) -> i64 {
    let out = c.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    out.trim().parse().unwrap_or(-1)
}

/// Registers `metrics` as the `v1beta1.metrics.k8s.io` APIService behind a Service and
/// an EndpointSlice in kube-system.
fn register(c: &Cluster, metrics: &MetricsServer) {
    c.create(&format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: metrics-server, namespace: kube-system}}
spec:
  ports: [{{name: https, port: 443, targetPort: 4443}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: metrics-server-1
  namespace: kube-system
  labels: {{kubernetes.io/service-name: metrics-server}}
addressType: IPv4
endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]
ports: [{{name: https, port: {port}, protocol: TCP}}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: v1beta1.metrics.k8s.io}}
spec:
  group: metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  service: {{namespace: kube-system, name: metrics-server, port: 443}}
  caBundle: {ca}
"#,
        port = metrics.port,
        ca = base64::engine::general_purpose::STANDARD.encode(&metrics.ca_pem),
    ));
}

/// A one-replica Deployment `web` requesting 100m CPU, available.
fn web(c: &Cluster) {
    c.create(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: c
        image: busybox
        resources: {requests: {cpu: 100m}}
"#,
    );
    wait_json(c, &["get", "deployment", "web"], 30, "web available", |d| {
        d["status"]["availableReplicas"] == 1
    });
}

const NOT_FOUND: &str = "unable to get metrics for resource cpu: unable to fetch metrics from resource metrics API: the server could not find the requested resource (get pods.metrics.k8s.io)";

#[test]
fn cpu_autoscaling_through_the_metrics_api() {
    let c = Cluster::start(&[
        "--horizontal-pod-autoscaler-sync-period",
        "1s",
        "--horizontal-pod-autoscaler-downscale-stabilization",
        "6s",
        "--horizontal-pod-autoscaler-cpu-initialization-period",
        "1s",
        "--apiservice-recheck-seconds",
        "1",
    ]);
    let _nodes = HollowNodes::start(&c, &["--count", "1", "--cpu", "8"]);
    web(&c);

    // No metrics API yet: upstream's failure condition and events.
    c.ok(&[
        "autoscale",
        "deployment",
        "web",
        "--cpu-percent=50",
        "--min=1",
        "--max=5",
    ]);
    let hpa = wait_json(&c, &["get", "hpa", "web"], 30, "ScalingActive=False", |h| {
        condition(h, "ScalingActive").0 == "False"
    });
    assert_eq!(
        condition(&hpa, "ScalingActive"),
        (
            "False".into(),
            "FailedGetResourceMetric".into(),
            format!("the HPA was unable to compute the replica count: failed to get cpu utilization: {NOT_FOUND}")
        )
    );
    assert_eq!(
        condition(&hpa, "AbleToScale"),
        (
            "True".into(),
            "SucceededGetScale".into(),
            "the HPA controller was able to get the target's current scale".into()
        )
    );
    assert_eq!(hpa["status"]["currentReplicas"], 1);
    let row = c.ok(&["get", "hpa", "web", "--no-headers"]);
    assert!(
        row.split_whitespace().take(6).eq([
            "web",
            "Deployment/web",
            "cpu:",
            "<unknown>/50%",
            "1",
            "5"
        ]),
        "{row}"
    );
    assert_eq!(
        events(&c, "FailedGetResourceMetric"),
        vec![format!("failed to get cpu utilization: {NOT_FOUND}")]
    );
    let failed = events(&c, "FailedComputeMetricsReplicas");
    assert_eq!(
        failed,
        vec![format!("invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: failed to get cpu utilization: {NOT_FOUND}")]
    );

    // The metrics API appears: 80m of a 100m request is 80% against a 50% target.
    let metrics = MetricsServer::start(c.kubeconfig.clone(), 80);
    register(&c, &metrics);
    let hpa = wait_json(&c, &["get", "hpa", "web"], 40, "a first rescale", |h| {
        h["status"]["lastScaleTime"].is_string()
    });
    let rescales = events(&c, "SuccessfulRescale");
    assert!(
        rescales.iter().any(|m| {
            m
            == "New size: 2; reason: cpu resource utilization (percentage of request) above target"
        }),
        "{rescales:?}"
    );
    assert_eq!(
        condition(&hpa, "ScalingActive"),
        (
            "True".into(),
            "ValidMetricFound".into(),
            "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)".into()
        )
    );
    assert_eq!(
        hpa["status"]["currentMetrics"],
        serde_json::json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 80, "averageValue": "80m"}}}])
    );
    assert_eq!(
        hpa["status"]["observedGeneration"],
        hpa["metadata"]["generation"]
    );

    // Up to the maximum, then limited there.
    let hpa = wait_json(&c, &["get", "hpa", "web"], 60, "5 replicas, limited", |h| {
        h["status"]["currentReplicas"] == 5 && condition(h, "ScalingLimited").0 == "True"
    });
    assert_eq!(hpa["status"]["desiredReplicas"], 5);
    assert_eq!(
        condition(&hpa, "ScalingLimited"),
        (
            "True".into(),
            "TooManyReplicas".into(),
            "the desired replica count is more than the maximum replica count".into()
        )
    );
    assert_eq!(replicas(&c), 5);
    let sizes = events(&c, "SuccessfulRescale");
    assert!(
        sizes
            .iter()
            .any(|m| m.starts_with("New size: 5; reason: cpu resource utilization")),
        "{sizes:?}"
    );
    let table = c.ok(&["get", "hpa", "web"]);
    let mut lines = table.lines();
    assert!(
        lines.next().unwrap().split_whitespace().eq([
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE"
        ]),
        "{table}"
    );
    assert!(
        lines.next().unwrap().split_whitespace().take(7).eq([
            "web",
            "Deployment/web",
            "cpu:",
            "80%/50%",
            "1",
            "5",
            "5"
        ]),
        "{table}"
    );
    // The controller's own series, with upstream's names.
    let metrics_text = c.ok(&["get", "--raw", "/metrics"]);
    assert!(
        metrics_text.contains("horizontal_pod_autoscaler_controller_reconciliations_total{action=\"scale_up\",error=\"none\"}")
            && metrics_text.contains("horizontal_pod_autoscaler_controller_metric_computation_total{action=\"scale_up\",error=\"none\",metric_type=\"Resource\"}"),
        "{metrics_text}"
    );
    // The v1 view, through the API server's conversion.
    let v1 = c.ok(&[
        "get",
        "horizontalpodautoscalers.v1.autoscaling",
        "web",
        "-o",
        "json",
    ]);
    let v1: serde_json::Value = serde_json::from_str(&v1).unwrap();
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
    assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 80);
    assert_eq!(v1["status"]["currentReplicas"], 5);

    // Usage drops to 10%: the stabilization window holds the recommendation of 5 first.
    metrics.set_usage(10);
    let hpa = wait_json(&c, &["get", "hpa", "web"], 30, "a held scale-down", |h| {
        condition(h, "AbleToScale").1 == "ScaleDownStabilized"
    });
    assert_eq!(hpa["status"]["currentReplicas"], 5);
    assert_eq!(
        condition(&hpa, "AbleToScale").2,
        "recent recommendations were higher than current one, applying the highest recent recommendation"
    );
    let hpa = wait_json(&c, &["get", "hpa", "web"], 40, "scaled down to 1", |h| {
        h["status"]["desiredReplicas"] == 1
    });
    assert_eq!(
        condition(&hpa, "ScalingLimited"),
        (
            "False".into(),
            "DesiredWithinRange".into(),
            "the desired count is within the acceptable range".into()
        )
    );
    assert!(events(&c, "SuccessfulRescale")
        .iter()
        .any(|m| m == "New size: 1; reason: All metrics below target"));
    wait_json(
        &c,
        &["get", "deployment", "web"],
        30,
        "web back to 1",
        |d| d["spec"]["replicas"] == 1,
    );
    let row = c.ok(&["get", "hpa", "web", "--no-headers"]);
    assert!(
        row.split_whitespace()
            .take(4)
            .eq(["web", "Deployment/web", "cpu:", "10%/50%"]),
        "{row}"
    );
}

/// Scale targets of any kind (a custom resource with a `scale` subresource, resolved
/// through discovery), an HPA created as autoscaling/v1, the min-replicas floor, and
/// upstream's failures: a missing target, and custom and external metrics APIs that are
/// not registered.
#[test]
fn custom_targets_v1_objects_and_failures() {
    let c = Cluster::start(&["--horizontal-pod-autoscaler-sync-period", "1s"]);
    c.create(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas, labelSelectorPath: .status.selector}
"#,
    );
    wait_json(
        &c,
        &["get", "crd", "widgets.example.com"],
        30,
        "the CRD established",
        |v| {
            v["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Established" && c["status"] == "True")
            })
        },
    );
    for name in ["floor", "custom"] {
        c.create(&format!(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {{name: {name}}}\nspec: {{replicas: 2}}\n"
        ));
        c.ok(&[
            "patch",
            "widget",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &format!(r#"{{"status": {{"replicas": 2, "selector": "app={name}"}}}}"#),
        ]);
    }

    // autoscaling/v1, below its minimum: scaled straight to minReplicas.
    c.create(
        r#"apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: floor}
spec:
  scaleTargetRef: {apiVersion: example.com/v1, kind: Widget, name: floor}
  minReplicas: 4
  maxReplicas: 6
  targetCPUUtilizationPercentage: 50
"#,
    );
    wait_json(
        &c,
        &["get", "widget", "floor"],
        30,
        "the widget scaled to 4",
        |w| w["spec"]["replicas"] == 4,
    );
    let out = c.ok(&["get", "events", "-o", "json"]);
    let events: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"] == "SuccessfulRescale"
                && e["involvedObject"]["name"] == "floor"
                && e["message"]
                    == "New size: 4; reason: Current number of replicas below Spec.MinReplicas"),
        "{events}"
    );
    let v1 = wait_json(
        &c,
        &["get", "horizontalpodautoscalers.v1.autoscaling", "floor"],
        30,
        "v1 status",
        |h| h["status"]["desiredReplicas"] == 4,
    );
    assert!(v1["status"]["lastScaleTime"].is_string(), "{v1}");

    // Custom and external metrics with neither API registered.
    c.create(
        r#"apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: custom}
spec:
  scaleTargetRef: {apiVersion: example.com/v1, kind: Widget, name: custom}
  minReplicas: 1
  maxReplicas: 10
  metrics:
  - type: Pods
    pods: {metric: {name: qps}, target: {type: AverageValue, averageValue: "10"}}
  - type: External
    external: {metric: {name: queue}, target: {type: Value, value: "30"}}
"#,
    );
    let hpa = wait_json(
        &c,
        &["get", "hpa", "custom"],
        30,
        "ScalingActive=False",
        |h| condition(h, "ScalingActive").0 == "False",
    );
    let pods_error = "unable to get metric qps: unable to fetch metrics from custom metrics API: no custom metrics API (custom.metrics.k8s.io) registered";
    assert_eq!(
        condition(&hpa, "ScalingActive"),
        (
            "False".into(),
            "FailedGetPodsMetric".into(),
            format!("the HPA was unable to compute the replica count: {pods_error}")
        )
    );
    assert_eq!(condition(&hpa, "AbleToScale").1, "SucceededGetScale");
    assert_eq!(hpa["status"]["currentReplicas"], 2);
    let messages = |reason: &str| -> Vec<String> {
        let out = c.ok(&["get", "events", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["reason"] == reason && e["involvedObject"]["name"] == "custom")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(messages("FailedGetPodsMetric"), vec![pods_error.to_owned()]);
    assert_eq!(
        messages("FailedGetExternalMetric"),
        vec!["unable to get external metric default/queue/<nil>: unable to fetch metrics from external metrics API: the server could not find the requested resource (get queue.external.metrics.k8s.io)".to_owned()]
    );
    assert_eq!(
        messages("FailedComputeMetricsReplicas"),
        vec![format!("invalid metrics (2 invalid out of 2), first error is: failed to get pods metric value: {pods_error}")]
    );
    let row = c.ok(&["get", "hpa", "custom", "--no-headers"]);
    assert!(
        row.split_whitespace().take(4).eq([
            "custom",
            "Widget/custom",
            "<unknown>/10,",
            "<unknown>/30"
        ]),
        "{row}"
    );

    // A target that does not exist.
    c.create(
        r#"apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: nope}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: nope}
  maxReplicas: 3
"#,
    );
    let hpa = wait_json(&c, &["get", "hpa", "nope"], 30, "AbleToScale=False", |h| {
        condition(h, "AbleToScale").0 == "False"
    });
    assert_eq!(
        condition(&hpa, "AbleToScale"),
        (
            "False".into(),
            "FailedGetScale".into(),
            "the HPA controller was unable to get the target's current scale: deployments.apps \"nope\" not found".into()
        )
    );
}

/// `behavior` end to end: a scale-up policy of one pod a minute limits the rise
/// (`ScaleUpLimit`), counting the controller's own earlier scale-up.
#[test]
fn behavior_policies_limit_the_scale_up_rate() {
    let c = Cluster::start(&[
        "--horizontal-pod-autoscaler-sync-period",
        "1s",
        "--horizontal-pod-autoscaler-cpu-initialization-period",
        "1s",
        "--apiservice-recheck-seconds",
        "1",
    ]);
    let _nodes = HollowNodes::start(&c, &["--count", "1", "--cpu", "8"]);
    web(&c);
    let metrics = MetricsServer::start(c.kubeconfig.clone(), 200);
    register(&c, &metrics);
    c.create(
        r#"apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 10
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
  behavior:
    scaleUp:
      policies: [{type: Pods, value: 1, periodSeconds: 60}]
"#,
    );
    // 200% of a 50% target asks for 4; one pod a minute allows 2.
    let hpa = wait_json(&c, &["get", "hpa", "web"], 40, "the first scale-up", |h| {
        h["status"]["desiredReplicas"] == 2
    });
    assert_eq!(
        condition(&hpa, "ScalingLimited"),
        (
            "True".into(),
            "ScaleUpLimit".into(),
            "the desired replica count is increasing faster than the maximum scale rate".into()
        )
    );
    // Defaults filled in by the API server, as upstream.
    assert_eq!(hpa["spec"]["behavior"]["scaleUp"]["selectPolicy"], "Max");
    assert_eq!(
        hpa["spec"]["behavior"]["scaleUp"]["stabilizationWindowSeconds"],
        0
    );
    assert_eq!(
        hpa["spec"]["behavior"]["scaleDown"]["policies"],
        serde_json::json!([{"type": "Percent", "value": 100, "periodSeconds": 15}])
    );
    // Later syncs see both pods at 200% and ask for more, but the minute is not over.
    let hpa = wait_json(
        &c,
        &["get", "hpa", "web"],
        40,
        "2 replicas, still limited",
        |h| {
            h["status"]["currentReplicas"] == 2
                && h["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"]
                    == 200
                && condition(h, "ScalingLimited").1 == "ScaleUpLimit"
        },
    );
    assert_eq!(hpa["status"]["desiredReplicas"], 2);
    assert_eq!(replicas(&c), 2);
    assert_eq!(
        events(&c, "SuccessfulRescale"),
        vec![
            "New size: 2; reason: cpu resource utilization (percentage of request) above target"
                .to_owned()
        ]
    );
}
