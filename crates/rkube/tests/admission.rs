//! The admission chain against the real binary with kubectl 1.37: webhooks served by a
//! test HTTPS server in this process (mutating adds a label; validating denies with a
//! message and warns; failurePolicy Fail and Ignore with the server down; timeouts;
//! dryRun), and the built-in plugins (ServiceAccount, Priority, DefaultTolerationSeconds,
//! NamespaceLifecycle); deletes that lose a race with a concurrent write are retried.

mod support;

use std::time::{Duration, Instant};

use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use support::Cluster;

/// The test webhook server: HTTPS on a random loopback port with a certificate for
/// 127.0.0.1 from a CA of its own; stopped when dropped.
struct WebhookServer {
    port: u16,
    ca_bundle: String,
    runtime: Option<tokio::runtime::Runtime>,
    _pki: tempfile::TempDir,
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn allow(review: &Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": review["request"]["uid"], "allowed": true}})
}

/// Adds the label `admitted-by=rkube-test`.
async fn mutate(Json(review): Json<Value>) -> Json<Value> {
    let has_labels = review["request"]["object"]["metadata"]["labels"].is_object();
    let patch = if has_labels {
        json!([{"op": "add", "path": "/metadata/labels/admitted-by", "value": "rkube-test"}])
    } else {
        json!([{"op": "add", "path": "/metadata/labels", "value": {"admitted-by": "rkube-test"}}])
    };
    let mut answer = allow(&review);
    answer["response"]["patchType"] = json!("JSONPatch");
    answer["response"]["patch"] =
        json!(base64::engine::general_purpose::STANDARD.encode(patch.to_string()));
    Json(answer)
}

/// Refuses objects named `bad-*` (saying whether the request was a dry run), and warns
/// about every other.
async fn validate(Json(review): Json<Value>) -> Json<Value> {
    let request = &review["request"];
    let name = request["name"].as_str().unwrap_or("");
    let mut answer = allow(&review);
    if name.starts_with("bad") {
        answer["response"]["allowed"] = json!(false);
        answer["response"]["status"] = json!({"code": 403, "message": format!("names starting with bad are refused (dryRun={})", request["dryRun"])});
    } else {
        answer["response"]["warnings"] = json!([format!("rkube test webhook saw {name}")]);
    }
    Json(answer)
}

/// Answers after 5 s.
async fn slow(Json(review): Json<Value>) -> Json<Value> {
    tokio::time::sleep(Duration::from_secs(5)).await;
    Json(allow(&review))
}

/// The kubeconfig `/touch` writes with, and the names it has touched.
static TOUCH_KUBECONFIG: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
static TOUCHED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// On the first admission of each object, labels it through the API before allowing the
/// request: the request's own write then loses a compare-and-swap race, every time.
async fn touch(Json(review): Json<Value>) -> Json<Value> {
    let request = &review["request"];
    let name = request["name"].as_str().unwrap_or("").to_owned();
    let ns = request["namespace"].as_str().unwrap_or("").to_owned();
    let first = {
        let mut touched = TOUCHED.lock().unwrap();
        let first = !touched.contains(&name);
        touched.push(name.clone());
        first
    };
    if let (true, Some(kubeconfig)) = (first, TOUCH_KUBECONFIG.get()) {
        let kubeconfig = kubeconfig.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(support::kubectl_path())
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args([
                    "label",
                    "configmap",
                    &name,
                    "-n",
                    &ns,
                    "touched=yes",
                    "--overwrite",
                ])
                .output()
        })
        .await
        .unwrap()
        .unwrap();
    }
    Json(allow(&review))
}

impl WebhookServer {
    fn start() -> WebhookServer {
        let pki = tempfile::tempdir().unwrap();
        let names = rkube_pki::ServingNames::new("webhook");
        let material = rkube_pki::ClusterPki::load_or_create(pki.path(), &names).unwrap();
        let ca_bundle =
            base64::engine::general_purpose::STANDARD.encode(material.ca_cert_pem().as_bytes());
        let config = rkube_apiserver::tls::DynamicTls::new(rkube_apiserver::tls::TlsMaterial {
            cert_chain: material.serving_cert_chain_der(),
            key: material.serving_key_der(),
            client_cas: vec![material.ca_cert_der().clone()],
        })
        .unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = Router::new()
            .route("/mutate", post(mutate))
            .route("/validate", post(validate))
            .route("/slow", post(slow))
            .route("/touch", post(touch));
        runtime.spawn(rkube_apiserver::tls::serve(
            listener,
            Some(config),
            app,
            std::future::pending(),
        ));
        WebhookServer {
            port,
            ca_bundle,
            runtime: Some(runtime),
            _pki: pki,
        }
    }
}

fn text(out: &std::process::Output) -> (bool, String, String) {
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn pod(name: &str, ns: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  containers:\n  - name: c\n    image: busybox\n")
}

/// A namespace labelled `hook=<hook>`, with its default service account.
fn namespace(c: &Cluster, ns: &str, hook: &str) {
    c.create(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels:\n    hook: {hook}\n"
    ));
    c.wait_for_default_sa(ns);
}

/// A webhook configuration of one webhook on pod creates in namespaces labelled
/// `hook=<hook>`.
fn webhook_config(kind: &str, name: &str, url: &str, ca: &str, hook: &str, extra: &str) -> String {
    format!(
        "apiVersion: admissionregistration.k8s.io/v1
kind: {kind}
metadata:
  name: {name}
webhooks:
- name: {name}
  clientConfig:
    url: {url}
    caBundle: {ca}
  rules:
  - operations: [CREATE]
    apiGroups: ['']
    apiVersions: [v1]
    resources: [pods]
  namespaceSelector:
    matchLabels:
      hook: {hook}
  sideEffects: None
  admissionReviewVersions: [v1]
{extra}"
    )
}

/// Runs `kubectl create --dry-run=server` of `yaml` until `done` holds for its outcome
/// (webhook configurations take effect once the server's cache has them).
fn until_in_force(c: &Cluster, yaml: &str, done: impl Fn(bool, &str, &str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (ok, out, err) = text(&c.kubectl_with(
            &["create", "--dry-run=server", "-o", "json", "-f", "-"],
            Some(yaml),
            &[],
        ));
        if done(ok, &out, &err) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "webhook not in force: ok={ok} out={out} err={err}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn webhooks_mutate_validate_fail_and_time_out() {
    let server = WebhookServer::start();
    let c = Cluster::start(&[]);
    let base = format!("https://127.0.0.1:{}", server.port);
    let ca = &server.ca_bundle;

    // Configurations are validated as upstream's v1.
    let invalid = webhook_config(
        "MutatingWebhookConfiguration",
        "invalid.rkube.test",
        &format!("{base}/mutate"),
        ca,
        "mutate",
        "",
    )
    .replace("  sideEffects: None\n", "");
    let (ok, _, err) = text(&c.kubectl_with(&["create", "-f", "-"], Some(&invalid), &[]));
    assert!(!ok);
    assert!(
        err.contains("The MutatingWebhookConfiguration \"invalid.rkube.test\" is invalid: webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun"),
        "{err}"
    );

    // Mutating: the label is added.
    namespace(&c, "wh-mutate", "mutate");
    c.create(&webhook_config(
        "MutatingWebhookConfiguration",
        "label.rkube.test",
        &format!("{base}/mutate"),
        ca,
        "mutate",
        "  reinvocationPolicy: IfNeeded\n",
    ));
    until_in_force(&c, &pod("p", "wh-mutate"), |ok, out, _| {
        ok && out.contains("admitted-by")
    });
    c.create(&pod("p", "wh-mutate"));
    let label = c.ok(&[
        "get",
        "pod",
        "p",
        "-n",
        "wh-mutate",
        "-o",
        "jsonpath={.metadata.labels.admitted-by}",
    ]);
    assert_eq!(label, "rkube-test");
    // Other namespaces are not selected.
    namespace(&c, "wh-other", "none");
    c.create(&pod("p", "wh-other"));
    let labels = c.ok(&[
        "get",
        "pod",
        "p",
        "-n",
        "wh-other",
        "-o",
        "jsonpath={.metadata.labels}",
    ]);
    assert!(!labels.contains("admitted-by"), "{labels}");

    // Validating: a denial with the webhook's message, nothing written; warnings printed.
    namespace(&c, "wh-validate", "validate");
    c.create(&webhook_config(
        "ValidatingWebhookConfiguration",
        "deny.rkube.test",
        &format!("{base}/validate"),
        ca,
        "validate",
        "",
    ));
    until_in_force(&c, &pod("bad-1", "wh-validate"), |ok, _, _| !ok);
    let (ok, _, err) = text(&c.kubectl_with(
        &["create", "-f", "-"],
        Some(&pod("bad-1", "wh-validate")),
        &[],
    ));
    assert!(!ok);
    assert!(
        err.contains("error when creating \"STDIN\": admission webhook \"deny.rkube.test\" denied the request: names starting with bad are refused (dryRun=false)"),
        "{err}"
    );
    let (ok, _, err) = text(&c.kubectl(&["get", "pod", "bad-1", "-n", "wh-validate"]));
    assert!(!ok && err.contains("NotFound"), "{err}");
    let (ok, _, err) = text(&c.kubectl_with(
        &["create", "-f", "-"],
        Some(&pod("good-1", "wh-validate")),
        &[],
    ));
    assert!(ok, "{err}");
    assert!(
        err.contains("Warning: rkube test webhook saw good-1"),
        "{err}"
    );
    // dryRun: the webhook is told.
    let (ok, _, err) = text(&c.kubectl_with(
        &["create", "--dry-run=server", "-f", "-"],
        Some(&pod("bad-2", "wh-validate")),
        &[],
    ));
    assert!(!ok);
    assert!(
        err.contains("names starting with bad are refused (dryRun=true)"),
        "{err}"
    );

    // failurePolicy: Fail refuses while the webhook is down, Ignore admits.
    namespace(&c, "wh-down", "down");
    let down_port = rkube_testkit::free_port();
    let down_url = format!("https://127.0.0.1:{down_port}/validate");
    c.create(&webhook_config(
        "ValidatingWebhookConfiguration",
        "down.rkube.test",
        &down_url,
        ca,
        "down",
        "  failurePolicy: Fail\n",
    ));
    until_in_force(&c, &pod("p", "wh-down"), |ok, _, _| !ok);
    let (ok, _, err) =
        text(&c.kubectl_with(&["create", "-f", "-"], Some(&pod("p", "wh-down")), &[]));
    assert!(!ok);
    assert_eq!(
        err.trim(),
        format!("Error from server (InternalError): error when creating \"STDIN\": Internal error occurred: failed calling webhook \"down.rkube.test\": failed to call webhook: Post \"https://127.0.0.1:{down_port}/validate?timeout=10s\": dial tcp 127.0.0.1:{down_port}: connect: connection refused")
    );
    c.ok(&[
        "patch",
        "validatingwebhookconfiguration",
        "down.rkube.test",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/webhooks/0/failurePolicy","value":"Ignore"}]"#,
    ]);
    until_in_force(&c, &pod("p", "wh-down"), |ok, _, _| ok);
    c.create(&pod("p", "wh-down"));

    // timeoutSeconds: a slow webhook fails the request at its deadline.
    namespace(&c, "wh-slow", "slow");
    c.create(&webhook_config(
        "ValidatingWebhookConfiguration",
        "slow.rkube.test",
        &format!("{base}/slow"),
        ca,
        "slow",
        "  timeoutSeconds: 1\n  failurePolicy: Fail\n",
    ));
    until_in_force(&c, &pod("p", "wh-slow"), |ok, _, _| !ok);
    let started = Instant::now();
    let (ok, _, err) =
        text(&c.kubectl_with(&["create", "-f", "-"], Some(&pod("p", "wh-slow")), &[]));
    assert!(!ok);
    assert!(
        err.contains(&format!("failed calling webhook \"slow.rkube.test\": failed to call webhook: Post \"{base}/slow?timeout=1s\": context deadline exceeded")),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let (ok, _, _) = text(&c.kubectl(&["get", "pod", "p", "-n", "wh-slow"]));
    assert!(!ok, "nothing is written on a failed webhook");
}

#[test]
fn built_in_plugins() {
    let c = Cluster::start(&[]);
    namespace(&c, "plugins", "none");

    // ServiceAccount: the projected token volume and mounts; imagePullSecrets copied.
    c.create("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: puller\n  namespace: plugins\nimagePullSecrets:\n- name: registry-key\n");
    c.create("apiVersion: v1\nkind: Pod\nmetadata:\n  name: sa\n  namespace: plugins\nspec:\n  serviceAccountName: puller\n  containers:\n  - name: c\n    image: busybox\n");
    let got: Value =
        serde_json::from_str(&c.ok(&["get", "pod", "sa", "-n", "plugins", "-o", "json"])).unwrap();
    let spec = &got["spec"];
    assert_eq!(spec["imagePullSecrets"], json!([{"name": "registry-key"}]));
    let volume = &spec["volumes"][0];
    let volume_name = volume["name"].as_str().unwrap();
    assert!(volume_name.starts_with("kube-api-access-"), "{volume}");
    assert_eq!(volume_name.len(), "kube-api-access-".len() + 5);
    assert_eq!(
        volume["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
        3607
    );
    assert_eq!(
        volume["projected"]["sources"][1]["configMap"]["name"],
        "kube-root-ca.crt"
    );
    assert_eq!(volume["projected"]["defaultMode"], 420);
    assert_eq!(
        spec["containers"][0]["volumeMounts"][0],
        json!({"name": volume_name, "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"})
    );
    // A missing service account is refused with upstream's message.
    let err = c.fails(&[
        "run",
        "nosa",
        "-n",
        "plugins",
        "--image=busybox",
        "--overrides",
        r#"{"spec":{"serviceAccountName":"ghost"}}"#,
    ]);
    assert!(
        err.contains("pods \"nosa\" is forbidden: error looking up service account plugins/ghost: serviceaccount \"ghost\" not found"),
        "{err}"
    );

    // DefaultTolerationSeconds.
    let tolerations = spec["tolerations"].as_array().unwrap();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        assert!(
            tolerations.contains(&json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})),
            "{tolerations:?}"
        );
    }

    // Priority: the built-in classes exist; a class name resolves to its value.
    let value = c.ok(&[
        "get",
        "priorityclass",
        "system-node-critical",
        "-o",
        "jsonpath={.value}",
    ]);
    assert_eq!(value, "2000001000");
    assert_eq!(spec["priority"], 0);
    c.create("apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: high\nvalue: 1000\npreemptionPolicy: Never\n");
    c.ok(&[
        "run",
        "prio",
        "-n",
        "plugins",
        "--image=busybox",
        "--overrides",
        r#"{"spec":{"priorityClassName":"high"}}"#,
    ]);
    let got = c.ok(&[
        "get",
        "pod",
        "prio",
        "-n",
        "plugins",
        "-o",
        "jsonpath={.spec.priority} {.spec.preemptionPolicy}",
    ]);
    assert_eq!(got, "1000 Never");
    let err = c.fails(&[
        "run",
        "noprio",
        "-n",
        "plugins",
        "--image=busybox",
        "--overrides",
        r#"{"spec":{"priorityClassName":"nope"}}"#,
    ]);
    assert!(
        err.contains("pods \"noprio\" is forbidden: no PriorityClass with name nope was found"),
        "{err}"
    );
    // One global default at most.
    c.create("apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: d1\nvalue: 5\nglobalDefault: true\n");
    let (ok, _, err) = text(&c.kubectl_with(&["create", "-f", "-"], Some("apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: d2\nvalue: 6\nglobalDefault: true\n"), &[]));
    assert!(!ok);
    assert!(
        err.contains("PriorityClass d1 is already marked as default. Only one default can exist"),
        "{err}"
    );
    c.ok(&["run", "dflt", "-n", "plugins", "--image=busybox"]);
    let got = c.ok(&[
        "get",
        "pod",
        "dflt",
        "-n",
        "plugins",
        "-o",
        "jsonpath={.spec.priorityClassName} {.spec.priority}",
    ]);
    assert_eq!(got, "d1 5");

    // NamespaceLifecycle: immortal namespaces.
    let err = c.fails(&["delete", "namespace", "default"]);
    assert!(
        err.contains("namespaces \"default\" is forbidden: this namespace may not be deleted"),
        "{err}"
    );
    let err = c.fails(&["run", "x", "-n", "missing", "--image=busybox"]);
    assert!(err.contains("namespaces \"missing\" not found"), "{err}");
}

#[test]
fn limit_ranges_and_quotas() {
    let c = Cluster::start(&[]);
    namespace(&c, "limits", "none");

    // LimitRanger: defaults, and bounds with upstream's messages.
    c.create("apiVersion: v1\nkind: LimitRange\nmetadata:\n  name: lr\n  namespace: limits\nspec:\n  limits:\n  - type: Container\n    default:\n      cpu: 500m\n      memory: 128Mi\n    defaultRequest:\n      cpu: 100m\n    max:\n      cpu: '1'\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (ok, out, err) = text(&c.kubectl(&[
            "run",
            "d",
            "-n",
            "limits",
            "--image=busybox",
            "--dry-run=server",
            "-o",
            "json",
        ]));
        assert!(ok, "{err}");
        if out.contains("500m") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the LimitRange is not in force: {out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    c.ok(&["run", "d", "-n", "limits", "--image=busybox"]);
    let got: Value =
        serde_json::from_str(&c.ok(&["get", "pod", "d", "-n", "limits", "-o", "json"])).unwrap();
    assert_eq!(
        got["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}})
    );
    assert_eq!(
        got["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container d; cpu, memory limit for container d"
    );
    assert_eq!(got["status"]["qosClass"], "Burstable");
    let err = c.fails(&["run", "big", "-n", "limits", "--image=busybox", "--overrides", r#"{"spec":{"containers":[{"name":"big","image":"busybox","resources":{"limits":{"cpu":"2"}}}]}}"#]);
    assert!(
        err.contains(
            "pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
        ),
        "{err}"
    );

    // Claims: storage requests bounded per PersistentVolumeClaim.
    c.create("apiVersion: v1\nkind: LimitRange\nmetadata:\n  name: storage\n  namespace: limits\nspec:\n  limits:\n  - type: PersistentVolumeClaim\n    min: {storage: 1Gi}\n    max: {storage: 10Gi}\n");
    let claim = |name: &str, size: &str| {
        format!("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {name}\n  namespace: limits\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests: {{storage: {size}}}\n")
    };
    c.create(&claim("fits", "5Gi"));
    let out = c.kubectl_with(&["create", "-f", "-"], Some(&claim("huge", "20Gi")), &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("persistentvolumeclaims \"huge\" is forbidden: maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"),
        "{err}"
    );

    // ResourceQuota: object counts, with upstream's message; usage is charged.
    namespace(&c, "quota", "none");
    c.create("apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: q\n  namespace: quota\nspec:\n  hard:\n    pods: '2'\n    count/configmaps: '1'\n");
    // As upstream, a quota is enforced once the controller has computed its usage.
    quota_computed(&c, "quota", "q");
    c.ok(&["run", "p1", "-n", "quota", "--image=busybox"]);
    c.ok(&["run", "p2", "-n", "quota", "--image=busybox"]);
    let err = c.fails(&["run", "p3", "-n", "quota", "--image=busybox"]);
    assert!(
        err.contains("pods \"p3\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"),
        "{err}"
    );
    let used = c.ok(&[
        "get",
        "resourcequota",
        "q",
        "-n",
        "quota",
        "-o",
        "jsonpath={.status.used.pods}",
    ]);
    assert_eq!(used, "2");
    // count/<resource>: the namespace's kube-root-ca.crt (if any) counts too.
    let existing = c.ok(&["get", "configmaps", "-n", "quota", "-o", "name"]);
    if existing.trim().is_empty() {
        c.ok(&["create", "configmap", "one", "-n", "quota"]);
    }
    let err = c.fails(&["create", "configmap", "two", "-n", "quota"]);
    assert!(
        err.contains("configmaps \"two\" is forbidden: exceeded quota: q, requested: count/configmaps=1, used: count/configmaps=1, limited: count/configmaps=1"),
        "{err}"
    );
    // Compute resources must be declared when limited.
    c.create("apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: compute\n  namespace: quota\nspec:\n  hard:\n    limits.cpu: '1'\n");
    quota_computed(&c, "quota", "compute");
    c.ok(&["delete", "pod", "p2", "-n", "quota"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let err = c.fails(&["run", "p4", "-n", "quota", "--image=busybox"]);
        if err.contains(
            "pods \"p4\" is forbidden: failed quota: compute: must specify limits.cpu for: p4",
        ) {
            break;
        }
        assert!(Instant::now() < deadline, "{err}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Scoped quotas charge only the pods their scopes select.
    namespace(&c, "scoped", "none");
    c.create("apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: besteffort\n  namespace: scoped\nspec:\n  hard:\n    pods: '1'\n  scopes: [BestEffort]\n");
    quota_computed(&c, "scoped", "besteffort");
    c.ok(&["run", "be1", "-n", "scoped", "--image=busybox"]);
    let err = c.fails(&["run", "be2", "-n", "scoped", "--image=busybox"]);
    assert!(
        err.contains("pods \"be2\" is forbidden: exceeded quota: besteffort, requested: pods=1, used: pods=1, limited: pods=1"),
        "{err}"
    );
    // A pod with requests is not BestEffort: the quota does not select it.
    c.ok(&["run", "burstable", "-n", "scoped", "--image=busybox", "--overrides", r#"{"spec":{"containers":[{"name":"burstable","image":"busybox","resources":{"requests":{"cpu":"10m"}}}]}}"#]);
    c.ok(&["create", "configmap", "free", "-n", "scoped"]);
}

#[test]
fn pod_security_enforce_and_warn() {
    let c = Cluster::start(&[]);
    c.create("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: strict\n  labels:\n    pod-security.kubernetes.io/enforce: restricted\n    pod-security.kubernetes.io/enforce-version: v1.36\n");
    c.create("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: warned\n  labels:\n    pod-security.kubernetes.io/warn: restricted\n    pod-security.kubernetes.io/enforce: baseline\n");
    c.wait_for_default_sa("strict");
    c.wait_for_default_sa("warned");
    let violations = "allowPrivilegeEscalation != false (container \"x\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"x\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"x\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"x\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")";
    let err = c.fails(&["run", "x", "-n", "strict", "--image=busybox"]);
    assert!(
        err.contains(&format!(
            "pods \"x\" is forbidden: violates PodSecurity \"restricted:v1.36\": {violations}"
        )),
        "{err}"
    );
    // A compliant pod is admitted.
    c.create("apiVersion: v1\nkind: Pod\nmetadata:\n  name: ok\n  namespace: strict\nspec:\n  securityContext:\n    runAsNonRoot: true\n    seccompProfile:\n      type: RuntimeDefault\n  containers:\n  - name: c\n    image: busybox\n    securityContext:\n      allowPrivilegeEscalation: false\n      capabilities:\n        drop: [ALL]\n");
    // warn: admitted, with the warning kubectl prints.
    let (ok, _, err) = text(&c.kubectl(&["run", "x", "-n", "warned", "--image=busybox"]));
    assert!(ok, "{err}");
    assert!(
        err.contains(&format!(
            "Warning: would violate PodSecurity \"restricted:latest\": {violations}"
        )),
        "{err}"
    );
    // Workload templates are warned about too.
    let (ok, _, err) = text(&c.kubectl(&[
        "create",
        "deployment",
        "x",
        "-n",
        "warned",
        "--image=busybox",
    ]));
    assert!(ok, "{err}");
    assert!(err.contains("Warning: would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"busybox\""), "{err}");
    // enforce=baseline refuses privileged pods.
    let err = c.fails(&[
        "run",
        "priv",
        "-n",
        "warned",
        "--image=busybox",
        "--privileged",
    ]);
    assert!(
        err.contains("pods \"priv\" is forbidden: violates PodSecurity \"baseline:latest\": privileged (container \"priv\" must not set securityContext.privileged=true)"),
        "{err}"
    );
}

#[test]
fn node_restriction() {
    let c = Cluster::start(&[]);
    // Authorization lets nodes do anything here, so that only admission restricts them.
    c.ok(&[
        "create",
        "clusterrolebinding",
        "nodes-all",
        "--clusterrole=cluster-admin",
        "--group=system:nodes",
    ]);
    let kc = c.user_kubeconfig("system:node:n1", &["system:nodes"]);
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = std::process::Command::new(support::kubectl_path());
        cmd.arg("--kubeconfig")
            .arg(&kc)
            .args(args)
            .env("HOME", c.dir.path());
        if stdin.is_some() {
            cmd.stdin(std::process::Stdio::piped());
        }
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        text(&child.wait_with_output().unwrap())
    };
    let node = |name: &str| {
        format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels:\n    kubernetes.io/hostname: {name}\n")
    };
    let (ok, _, err) = run(&["create", "-f", "-"], Some(&node("n1")));
    assert!(ok, "{err}");
    let (ok, _, err) = run(&["create", "-f", "-"], Some(&node("n2")));
    assert!(!ok);
    assert!(
        err.contains("nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\""),
        "{err}"
    );
    let (ok, _, err) = run(
        &[
            "label",
            "node",
            "n1",
            "node-role.kubernetes.io/control-plane=",
        ],
        None,
    );
    assert!(!ok);
    assert!(err.contains("nodes \"n1\" is forbidden: is not allowed to modify labels: node-role.kubernetes.io/control-plane"), "{err}");
    let (ok, _, err) = run(
        &["label", "node", "n1", "topology.kubernetes.io/zone=z1"],
        None,
    );
    assert!(ok, "{err}");
    // Pods: only mirror pods bound to itself.
    c.wait_for_default_sa("default");
    let (ok, _, err) = run(&["run", "p", "--image=busybox"], None);
    assert!(!ok);
    assert!(err.contains("pods \"p\" is forbidden: pod does not have \"kubernetes.io/config.mirror\" annotation, node \"n1\" can only create mirror pods"), "{err}");
    // Deleting a pod bound to another node.
    c.create("apiVersion: v1\nkind: Pod\nmetadata:\n  name: elsewhere\nspec:\n  nodeName: n2\n  containers:\n  - name: c\n    image: busybox\n");
    let (ok, _, err) = run(&["delete", "pod", "elsewhere", "--wait=false"], None);
    assert!(!ok);
    assert!(err.contains("pods \"elsewhere\" is forbidden: node \"n1\" can only delete pods with spec.nodeName set to itself"), "{err}");
    // Tokens only for pods bound to itself.
    let (ok, _, err) = run(&["create", "token", "default"], None);
    assert!(!ok);
    assert!(
        err.contains(
            "serviceaccounts \"default\" is forbidden: node requested token not bound to a pod"
        ),
        "{err}"
    );
    // Leases: its own, in kube-node-lease.
    let lease = |name: &str| {
        format!("apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: {name}\n  namespace: kube-node-lease\nspec:\n  holderIdentity: {name}\n")
    };
    let (ok, _, err) = run(&["create", "-f", "-"], Some(&lease("n1")));
    assert!(ok, "{err}");
    let (ok, _, err) = run(&["create", "-f", "-"], Some(&lease("n2")));
    assert!(!ok);
    assert!(err.contains("leases.coordination.k8s.io \"n2\" is forbidden: can only access node lease with the same name as the requesting node"), "{err}");
}

/// Waits until the resourcequota controller has written the quota's `status.hard` and
/// `status.used` (upstream enforces a quota from then on).
fn quota_computed(c: &Cluster, ns: &str, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = c.ok(&[
            "get",
            "resourcequota",
            name,
            "-n",
            ns,
            "-o",
            "jsonpath={.status.hard}|{.status.used}",
        ]);
        let (hard, used) = out.split_once('|').unwrap_or(("", ""));
        if !hard.is_empty() && !used.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "quota {ns}/{name} never got a status: {out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn deletes_that_lose_a_race_with_another_write_are_retried() {
    let c = Cluster::start(&[]);
    let hooks = WebhookServer::start();
    TOUCH_KUBECONFIG.set(c.kubeconfig.clone()).unwrap();
    namespace(&c, "racy", "touch");
    let config = webhook_config(
        "ValidatingWebhookConfiguration",
        "touch.rkube.test",
        &format!("https://127.0.0.1:{}/touch", hooks.port),
        &hooks.ca_bundle,
        "touch",
        "",
    )
    .replace("operations: [CREATE]", "operations: [DELETE]")
    .replace("resources: [pods]", "resources: [configmaps]");
    c.create(&config);
    let configmap = |name: &str| {
        c.create(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: racy\n  labels:\n    racy: \"yes\"\n"
        ));
    };
    // In force once it has seen a delete.
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0.. {
        let probe = format!("probe-{i}");
        configmap(&probe);
        c.ok(&["delete", "configmap", &probe, "-n", "racy"]);
        if TOUCHED.lock().unwrap().contains(&probe) {
            break;
        }
        assert!(Instant::now() < deadline, "the touch webhook is not called");
    }
    // One delete: the webhook's write wins the first compare-and-swap; the delete is
    // retried on the new object instead of failing with a 409.
    configmap("single");
    c.ok(&["delete", "configmap", "single", "-n", "racy"]);
    assert!(TOUCHED.lock().unwrap().contains(&"single".to_owned()));
    // deletecollection: every listed object is deleted, none skipped.
    for name in ["many-1", "many-2", "many-3"] {
        configmap(name);
    }
    let (code, body) = support::curl(
        &c,
        "DELETE",
        "/api/v1/namespaces/racy/configmaps?labelSelector=racy%3Dyes",
        "application/json",
        None,
        &[],
    );
    assert_eq!(code, 200, "{body}");
    let deleted: Value = serde_json::from_str(&body).unwrap();
    let mut names: Vec<&str> = deleted["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["many-1", "many-2", "many-3"], "{body}");
    let touched = TOUCHED.lock().unwrap().clone();
    for name in ["many-1", "many-2", "many-3"] {
        assert!(touched.contains(&name.to_owned()), "{touched:?}");
    }
    let left = c.ok(&[
        "get",
        "configmaps",
        "-n",
        "racy",
        "-l",
        "racy=yes",
        "-o",
        "name",
    ]);
    assert_eq!(left, "");
}
