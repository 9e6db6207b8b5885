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
