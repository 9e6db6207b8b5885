//! Token and certificate controllers end to end: `kube-root-ca.crt` in every namespace
//! (repaired when edited or deleted), and legacy service-account token Secrets filled by
//! the token controller, usable with `kubectl --token`, deleted with their account.

mod support;

use base64::Engine as _;
use support::hollow::wait_json;
use support::Cluster;

fn b64(s: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64");
    String::from_utf8(bytes).unwrap()
}

#[test]
fn root_ca_configmap_is_in_every_namespace_and_repaired() {
    let c = Cluster::start(&[]);
    let ca = std::fs::read_to_string(c.data_dir().join("pki").join("ca.crt")).unwrap();
    c.ok(&["create", "namespace", "t1"]);
    for ns in ["default", "kube-system", "t1"] {
        let cm = wait_json(
            &c,
            &["get", "configmap", "kube-root-ca.crt", "-n", ns],
            30,
            &format!("kube-root-ca.crt in {ns}"),
            |_| true,
        );
        assert_eq!(cm["data"]["ca.crt"], ca.as_str(), "{cm}");
        assert!(cm["metadata"]["annotations"]["kubernetes.io/description"]
            .as_str()
            .unwrap()
            .starts_with("Contains a CA bundle that can be used to verify the kube-apiserver"));
    }
    c.ok(&[
        "patch",
        "configmap",
        "kube-root-ca.crt",
        "-n",
        "t1",
        "-p",
        r#"{"data":{"ca.crt":"tampered"}}"#,
    ]);
    wait_json(
        &c,
        &["get", "configmap", "kube-root-ca.crt", "-n", "t1"],
        30,
        "the edit reverted",
        |cm| cm["data"]["ca.crt"] == ca.as_str(),
    );
    c.ok(&["delete", "configmap", "kube-root-ca.crt", "-n", "t1"]);
    wait_json(
        &c,
        &["get", "configmap", "kube-root-ca.crt", "-n", "t1"],
        30,
        "the configmap recreated",
        |cm| cm["data"]["ca.crt"] == ca.as_str(),
    );
}

#[test]
fn legacy_token_secrets_are_filled_usable_and_deleted_with_their_account() {
    let c = Cluster::start(&[]);
    c.ok(&["create", "serviceaccount", "robot"]);
    c.create(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: robot-token\n  annotations:\n    kubernetes.io/service-account.name: robot\ntype: kubernetes.io/service-account-token\n",
    );
    let secret = wait_json(
        &c,
        &["get", "secret", "robot-token"],
        30,
        "the token",
        |s| s["data"]["token"].is_string(),
    );
    let ca = std::fs::read_to_string(c.data_dir().join("pki").join("ca.crt")).unwrap();
    assert_eq!(b64(secret["data"]["ca.crt"].as_str().unwrap()), ca);
    assert_eq!(
        b64(secret["data"]["namespace"].as_str().unwrap()),
        "default"
    );
    let uid = c.ok(&[
        "get",
        "serviceaccount",
        "robot",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    assert_eq!(
        secret["metadata"]["annotations"]["kubernetes.io/service-account.uid"],
        uid.as_str()
    );
    let token = b64(secret["data"]["token"].as_str().unwrap());
    let out = c.kubectl_token(
        &token,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "system:serviceaccount:default:robot"
    );
    // A token of a missing account is not filled in, and the account's deletion removes
    // its secret.
    c.ok(&["delete", "serviceaccount", "robot"]);
    wait_json(&c, &["get", "secrets"], 30, "robot-token deleted", |l| {
        l["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["metadata"]["name"] != "robot-token")
    });
    let out = c.kubectl_token(&token, &["auth", "whoami"]);
    assert!(
        !out.status.success(),
        "a deleted account's token still works"
    );
}

/// The detached HS256 JWS of `content`, computed independently with Python's `hmac`.
fn python_detached_jws(content: &str, id: &str, secret: &str) -> String {
    let script = r#"
import base64, hashlib, hmac, sys
content, kid, secret = sys.argv[1], sys.argv[2], sys.argv[3]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
header = b64(('{"alg":"HS256","kid":"%s"}' % kid).encode())
signing_input = (header + "." + b64(content.encode())).encode()
key = secret.encode().ljust(32, b"\0")
print(header + ".." + b64(hmac.new(key, signing_input, hashlib.sha256).digest()), end="")
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, content, id, secret])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn cluster_info_is_signed_with_bootstrap_tokens_and_expired_tokens_are_cleaned() {
    let c = Cluster::start(&[]);
    let ca = std::fs::read_to_string(c.data_dir().join("pki").join("ca.crt")).unwrap();
    let info = wait_json(
        &c,
        &["get", "configmap", "cluster-info", "-n", "kube-public"],
        30,
        "cluster-info",
        |_| true,
    );
    let kubeconfig = info["data"]["kubeconfig"].as_str().unwrap().to_owned();
    let ca_b64 = base64::engine::general_purpose::STANDARD.encode(&ca);
    assert!(
        kubeconfig.contains(&format!("certificate-authority-data: {ca_b64}")),
        "{kubeconfig}"
    );
    assert!(
        kubeconfig.contains("server: https://127.0.0.1:"),
        "{kubeconfig}"
    );

    c.ok(&[
        "create",
        "secret",
        "generic",
        "bootstrap-token-abcdef",
        "-n",
        "kube-system",
        "--type",
        "bootstrap.kubernetes.io/token",
        "--from-literal=token-id=abcdef",
        "--from-literal=token-secret=0123456789abcdef",
        "--from-literal=usage-bootstrap-signing=true",
    ]);
    // Not for signing: no signature.
    c.ok(&[
        "create",
        "secret",
        "generic",
        "bootstrap-token-nosign",
        "-n",
        "kube-system",
        "--type",
        "bootstrap.kubernetes.io/token",
        "--from-literal=token-id=nosign",
        "--from-literal=token-secret=0123456789abcdef",
    ]);
    let expiry = {
        let t = std::time::SystemTime::now() + std::time::Duration::from_secs(4);
        let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let out = std::process::Command::new("date")
            .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    c.ok(&[
        "create",
        "secret",
        "generic",
        "bootstrap-token-short1",
        "-n",
        "kube-system",
        "--type",
        "bootstrap.kubernetes.io/token",
        "--from-literal=token-id=short1",
        "--from-literal=token-secret=fedcba9876543210",
        "--from-literal=usage-bootstrap-signing=true",
        &format!("--from-literal=expiration={expiry}"),
    ]);
    let info = wait_json(
        &c,
        &["get", "configmap", "cluster-info", "-n", "kube-public"],
        30,
        "cluster-info signed",
        |cm| {
            cm["data"]["jws-kubeconfig-abcdef"].is_string()
                && cm["data"]["jws-kubeconfig-short1"].is_string()
        },
    );
    assert_eq!(
        info["data"]["jws-kubeconfig-abcdef"],
        python_detached_jws(&kubeconfig, "abcdef", "0123456789abcdef").as_str()
    );
    assert_eq!(
        info["data"]["jws-kubeconfig-short1"],
        python_detached_jws(&kubeconfig, "short1", "fedcba9876543210").as_str()
    );
    assert!(
        info["data"].get("jws-kubeconfig-nosign").is_none(),
        "{info}"
    );
    // The header is exactly upstream's.
    let sig = info["data"]["jws-kubeconfig-abcdef"].as_str().unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig.split('.').next().unwrap())
        .unwrap();
    assert_eq!(
        String::from_utf8(header).unwrap(),
        r#"{"alg":"HS256","kid":"abcdef"}"#
    );

    // Expired: the cleaner deletes the token and its signature goes.
    wait_json(
        &c,
        &["get", "secrets", "-n", "kube-system"],
        30,
        "the expired token deleted",
        |l| {
            l["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["metadata"]["name"] != "bootstrap-token-short1")
        },
    );
    wait_json(
        &c,
        &["get", "configmap", "cluster-info", "-n", "kube-public"],
        30,
        "the expired token's signature removed",
        |cm| cm["data"].get("jws-kubeconfig-short1").is_none(),
    );
    c.ok(&[
        "get",
        "secret",
        "bootstrap-token-abcdef",
        "-n",
        "kube-system",
    ]);
}

/// An EC key and a CSR for `subject` made with openssl in `dir`; returns (key path, CSR
/// base64).
fn openssl_csr(dir: &std::path::Path, name: &str, subject: &str) -> (std::path::PathBuf, String) {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
        ])
        .arg(&key)
        .args(["-subj", subject, "-out"])
        .arg(&csr)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read(&csr).unwrap();
    (key, base64::engine::general_purpose::STANDARD.encode(pem))
}

#[test]
fn kubectl_certificate_approve_gets_a_signed_certificate_that_works() {
    let c = Cluster::start(&[]);
    let dir = c.data_dir().to_owned();
    let (key, request) = openssl_csr(&dir, "alice", "/CN=alice/O=devs");
    c.create(&format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: alice\nspec:\n  request: {request}\n  signerName: kubernetes.io/kube-apiserver-client\n  expirationSeconds: 3600\n  usages:\n  - client auth\n"
    ));
    // Not approved: not signed.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let cert = c.ok(&[
        "get",
        "csr",
        "alice",
        "-o",
        "jsonpath={.status.certificate}",
    ]);
    assert_eq!(cert, "");
    c.ok(&["certificate", "approve", "alice"]);
    let csr = wait_json(
        &c,
        &["get", "csr", "alice"],
        30,
        "alice's certificate",
        |csr| csr["status"]["certificate"].is_string(),
    );
    let approved = &csr["status"]["conditions"][0];
    assert_eq!(approved["type"], "Approved", "{csr}");
    let pem = b64(csr["status"]["certificate"].as_str().unwrap());
    let cert_path = dir.join("alice.crt");
    std::fs::write(&cert_path, &pem).unwrap();
    let openssl = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl")
    };
    let ca = dir.join("pki").join("client-ca.crt");
    let verify = openssl(&[
        "verify",
        "-CAfile",
        ca.to_str().unwrap(),
        cert_path.to_str().unwrap(),
    ]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    // expirationSeconds honoured: valid for an hour, not two.
    let crt = cert_path.to_str().unwrap();
    assert!(
        openssl(&["x509", "-in", crt, "-noout", "-checkend", "3000"])
            .status
            .success()
    );
    assert!(
        !openssl(&["x509", "-in", crt, "-noout", "-checkend", "3700"])
            .status
            .success()
    );
    // The certificate authenticates alice (group devs).
    let out = c.kubectl(&[
        "--client-certificate",
        crt,
        "--client-key",
        key.to_str().unwrap(),
        "--user",
        "",
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let who = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(who.starts_with("alice "), "{who}");
    assert!(who.contains("devs"), "{who}");

    // A kubelet-serving request that is not a node's: approved, then failed by the signer.
    let (_, request) = openssl_csr(&dir, "bob", "/CN=bob/O=devs");
    c.create(&format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: bob\nspec:\n  request: {request}\n  signerName: kubernetes.io/kubelet-serving\n  usages:\n  - digital signature\n  - server auth\n"
    ));
    c.ok(&["certificate", "approve", "bob"]);
    let csr = wait_json(&c, &["get", "csr", "bob"], 30, "bob failed", |csr| {
        csr["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Failed"))
    });
    let failed = csr["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Failed")
        .unwrap();
    assert_eq!(failed["reason"], "SignerValidationFailure");
    assert_eq!(
        failed["message"],
        "subject organization is not system:nodes"
    );
    assert!(csr["status"].get("certificate").is_none(), "{csr}");
    assert_eq!(
        csr["spec"]["username"], "admin",
        "the requester is recorded"
    );
}

#[test]
fn kubelet_client_csrs_are_auto_approved_after_a_subject_access_review() {
    let c = Cluster::start(&[]);
    let dir = c.data_dir().to_owned();
    c.ok(&[
        "create",
        "clusterrolebinding",
        "bootstrap-csrs",
        "--clusterrole=system:node-bootstrapper",
        "--group=system:bootstrappers",
    ]);
    c.ok(&[
        "create",
        "clusterrolebinding",
        "bootstrap-csrs-devs",
        "--clusterrole=system:node-bootstrapper",
        "--group=devs",
    ]);
    c.ok(&[
        "create",
        "clusterrolebinding",
        "auto-approve",
        "--clusterrole=system:certificates.k8s.io:certificatesigningrequests:nodeclient",
        "--group=system:bootstrappers",
    ]);
    let csr_yaml = |name: &str, request: &str| {
        format!(
            "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: {name}\nspec:\n  request: {request}\n  signerName: kubernetes.io/kube-apiserver-client-kubelet\n  usages:\n  - digital signature\n  - client auth\n"
        )
    };
    // Someone without the nodeclient permission: left pending.
    let dev = c.user_kubeconfig("dev", &["devs"]);
    let (_, request) = openssl_csr(&dir, "n2", "/CN=system:node:n2/O=system:nodes");
    let out = c.kubectl_with(
        &["--kubeconfig", dev.to_str().unwrap(), "create", "-f", "-"],
        Some(&csr_yaml("node-csr-dev", &request)),
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A bootstrapper: approved and signed.
    let boot = c.user_kubeconfig("system:bootstrap:abcdef", &["system:bootstrappers"]);
    let (_, request) = openssl_csr(&dir, "n1", "/CN=system:node:n1/O=system:nodes");
    let out = c.kubectl_with(
        &["--kubeconfig", boot.to_str().unwrap(), "create", "-f", "-"],
        Some(&csr_yaml("node-csr-1", &request)),
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csr = wait_json(
        &c,
        &["get", "csr", "node-csr-1"],
        30,
        "node-csr-1 signed",
        |csr| csr["status"]["certificate"].is_string(),
    );
    assert_eq!(csr["spec"]["username"], "system:bootstrap:abcdef");
    let approved = &csr["status"]["conditions"][0];
    assert_eq!(approved["type"], "Approved");
    assert_eq!(approved["reason"], "AutoApproved");
    assert_eq!(
        approved["message"],
        "Auto approving kubelet client certificate after SubjectAccessReview."
    );
    let table = c.ok(&["get", "csr", "node-csr-1"]);
    assert!(table.contains("Approved,Issued"), "{table}");
    let pending = c.ok(&["get", "csr", "node-csr-dev", "-o", "jsonpath={.status}"]);
    assert!(!pending.contains("Approved"), "{pending}");
}
