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
