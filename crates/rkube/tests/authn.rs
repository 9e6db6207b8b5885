//! Authentication end to end: service-account tokens from `kubectl create token` used by
//! kubectl and curl, every way a token can be bad (401 with upstream's body), bound
//! tokens dying with their pod or service account, legacy token Secrets, bootstrap
//! tokens and their expiry, impersonation, TokenReview, SelfSubjectReview and the
//! issuer discovery documents.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rkube_pki::ServiceAccountKey;
use serde_json::{json, Value};
use support::{curl, curl_token, Cluster};

const UNAUTHORIZED: &str = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn header_of(token: &str) -> Value {
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}

/// The cluster's real service-account signing key, read from its data dir.
fn cluster_key(c: &Cluster) -> ServiceAccountKey {
    let pem = std::fs::read_to_string(c.data_dir().join("pki").join("sa.key")).unwrap();
    ServiceAccountKey::from_pem(&pem).unwrap()
}

fn create_token(c: &Cluster, args: &[&str]) -> String {
    let mut all = vec!["create", "token"];
    all.extend_from_slice(args);
    let token = c.ok(&all).trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token}");
    token
}

fn whoami(c: &Cluster, token: &str) -> String {
    let out = c.kubectl_token(token, &["auth", "whoami"]);
    assert!(
        out.status.success(),
        "whoami failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        c.log()
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Asserts `token` gets upstream's 401 on a real request.
fn assert_unauthorized(c: &Cluster, token: &str, what: &str) {
    let (code, body) = curl_token(c, "GET", "/api/v1/namespaces", Some(token), None, &[]);
    assert_eq!(code, 401, "{what}: {body}");
    assert_eq!(body, UNAUTHORIZED, "{what}");
    let out = c.kubectl_token(token, &["get", "namespaces"]);
    assert!(!out.status.success(), "{what}: kubectl succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("You must be logged in to the server") || stderr.contains("Unauthorized"),
        "{what}: {stderr}"
    );
}

/// Asserts `token` authenticates: discovery, which every authenticated user may read
/// (`system:discovery`), answers 200 rather than 401 (or anonymous's 403).
fn assert_authorized(c: &Cluster, token: &str, what: &str) {
    let (code, body) = curl_token(c, "GET", "/api", Some(token), None, &[]);
    assert_eq!(code, 200, "{what}: {body}\n{}", c.log());
}

fn token_review(c: &Cluster, token: &str) -> Value {
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}});
    let (code, out) = curl(
        c,
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        "application/json",
        Some(body.to_string().as_bytes()),
        &[],
    );
    assert_eq!(code, 201, "{out}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn service_account_tokens() {
    let c = Cluster::start(&[]);
    c.wait_for_default_sa("default");

    let token = create_token(&c, &["default"]);
    let claims = claims_of(&token);
    let issuer = "https://kubernetes.default.svc.cluster.local";
    assert_eq!(claims["iss"], issuer);
    assert_eq!(claims["sub"], "system:serviceaccount:default:default");
    assert_eq!(claims["aud"], json!([issuer]));
    assert_eq!(claims["kubernetes.io"]["namespace"], "default");
    assert_eq!(claims["kubernetes.io"]["serviceaccount"]["name"], "default");
    let sa_uid = c.ok(&["get", "sa", "default", "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(
        claims["kubernetes.io"]["serviceaccount"]["uid"],
        sa_uid.as_str()
    );
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 3600);
    assert_eq!(claims["nbf"], claims["iat"]);
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert_eq!(header_of(&token)["alg"], "ES256");

    // kubectl with the token: whoami prints upstream's table.
    let who = whoami(&c, &token);
    let lines: Vec<&str> = who.lines().collect();
    assert!(
        lines[0].starts_with("ATTRIBUTE") && lines[0].contains("VALUE"),
        "{who}"
    );
    assert!(
        who.contains("Username") && who.contains("system:serviceaccount:default:default"),
        "{who}"
    );
    assert!(who.contains("UID") && who.contains(&sa_uid), "{who}");
    assert!(
        who.contains(
            "[system:serviceaccounts system:serviceaccounts:default system:authenticated]"
        ),
        "{who}"
    );
    assert!(
        who.contains("authentication.kubernetes.io/credential-id")
            && who.contains(&format!("JTI={}", claims["jti"].as_str().unwrap())),
        "{who}"
    );
    assert_authorized(&c, &token, "a fresh token");

    // --duration and --audience.
    let long = create_token(&c, &["default", "--duration", "2h"]);
    let lc = claims_of(&long);
    assert_eq!(
        lc["exp"].as_i64().unwrap() - lc["iat"].as_i64().unwrap(),
        7200
    );
    let short = c.fails(&["create", "token", "default", "--duration", "5m"]);
    assert!(
        short.contains("may not specify a duration less than 10 minutes"),
        "{short}"
    );
    let other = create_token(&c, &["default", "--audience", "vault"]);
    assert_eq!(claims_of(&other)["aud"], json!(["vault"]));
    assert_unauthorized(&c, &other, "a token for another audience");
    let missing = c.fails(&["create", "token", "nobody"]);
    assert!(
        missing.contains(r#"serviceaccounts "nobody" not found"#),
        "{missing}"
    );

    // Bad tokens: malformed, wrong signature, expired, not yet valid.
    assert_unauthorized(&c, "not-a-token", "a malformed token");
    assert_unauthorized(&c, "a.b.c", "a token-shaped garbage");
    let key = cluster_key(&c);
    let foreign = ServiceAccountKey::generate().unwrap();
    let forged = foreign.signer().sign(&claims).unwrap();
    assert_unauthorized(&c, &forged, "a token signed by another key");
    let mut sig_flipped = token.clone();
    let last = sig_flipped.pop().unwrap();
    sig_flipped.push(if last == 'A' { 'B' } else { 'A' });
    assert_unauthorized(&c, &sig_flipped, "a token with a damaged signature");
    let mut expired = claims.clone();
    expired["iat"] = json!(now() - 7200);
    expired["nbf"] = json!(now() - 7200);
    expired["exp"] = json!(now() - 3600);
    let expired = key.signer().sign(&expired).unwrap();
    assert_unauthorized(&c, &expired, "an expired token");
    let mut early = claims.clone();
    early["nbf"] = json!(now() + 3600);
    let early = key.signer().sign(&early).unwrap();
    assert_unauthorized(&c, &early, "a token not valid yet");
    let mut wrong_iss = claims.clone();
    wrong_iss["iss"] = json!("https://elsewhere");
    assert_unauthorized(
        &c,
        &key.signer().sign(&wrong_iss).unwrap(),
        "a token of another issuer",
    );
    let (code, _) = curl_token(&c, "GET", "/version", Some("not-a-token"), None, &[]);
    assert_eq!(code, 401, "a bad token is refused even on public paths");
    let (code, _) = curl_token(&c, "GET", "/version", None, None, &[]);
    assert_eq!(code, 200, "no token is anonymous");

    // TokenReview of a good and a bad token.
    let good = token_review(&c, &token);
    assert_eq!(good["status"]["authenticated"], true, "{good}");
    assert_eq!(
        good["status"]["user"]["username"],
        "system:serviceaccount:default:default"
    );
    assert_eq!(good["status"]["user"]["uid"], sa_uid.as_str());
    assert_eq!(good["status"]["audiences"], json!([issuer]));
    let bad = token_review(&c, &expired);
    assert!(bad["status"].get("authenticated").is_none(), "{bad}");
    assert_eq!(
        bad["status"]["error"],
        "[invalid bearer token, service account token has expired]"
    );
    let garbage = token_review(&c, "nope");
    assert_eq!(garbage["status"]["error"], "invalid bearer token");
    let (code, out) = curl(
        &c,
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        "application/json",
        Some(br#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{}}"#),
        &[],
    );
    assert_eq!(code, 400, "{out}");
    assert!(out.contains("token is required for TokenReview in authentication"));

    // A token bound to a pod dies with the pod.
    c.create("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: busybox\n");
    let bound = create_token(
        &c,
        &[
            "default",
            "--bound-object-kind",
            "Pod",
            "--bound-object-name",
            "p",
        ],
    );
    let pod_uid = c.ok(&["get", "pod", "p", "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(
        claims_of(&bound)["kubernetes.io"]["pod"]["uid"],
        pod_uid.as_str()
    );
    let who = whoami(&c, &bound);
    assert!(
        who.contains("authentication.kubernetes.io/pod-name") && who.contains("[p]"),
        "{who}"
    );
    assert!(who.contains(&pod_uid), "{who}");
    c.ok(&["delete", "pod", "p", "--grace-period=0", "--force"]);
    assert_unauthorized(&c, &bound, "a token bound to a deleted pod");
    let no_pod = c.fails(&[
        "create",
        "token",
        "default",
        "--bound-object-kind",
        "Pod",
        "--bound-object-name",
        "p",
    ]);
    assert!(no_pod.contains(r#"pods "p" not found"#), "{no_pod}");

    // A token of a deleted service account stops working, also when the name is reused.
    c.ok(&["create", "serviceaccount", "robot"]);
    let robot = create_token(&c, &["robot"]);
    assert_authorized(&c, &robot, "the robot's token");
    c.ok(&["delete", "serviceaccount", "robot"]);
    assert_unauthorized(&c, &robot, "a token of a deleted service account");
    c.ok(&["create", "serviceaccount", "robot"]);
    assert_unauthorized(&c, &robot, "a token of a recreated service account");

    // A legacy token Secret: the token in the Secret authenticates while the Secret holds it.
    let legacy = key
        .signer()
        .sign(&json!({
            "iss": "kubernetes/serviceaccount",
            "sub": "system:serviceaccount:default:default",
            "kubernetes.io/serviceaccount/namespace": "default",
            "kubernetes.io/serviceaccount/secret.name": "default-token",
            "kubernetes.io/serviceaccount/service-account.name": "default",
            "kubernetes.io/serviceaccount/service-account.uid": sa_uid,
        }))
        .unwrap();
    assert_unauthorized(&c, &legacy, "a legacy token without its Secret");
    c.create(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: default-token\n  annotations:\n    kubernetes.io/service-account.name: default\n    kubernetes.io/service-account.uid: {sa_uid}\ntype: kubernetes.io/service-account-token\ndata:\n  token: {}\n",
        STANDARD.encode(&legacy)
    ));
    assert!(whoami(&c, &legacy).contains("system:serviceaccount:default:default"));
    c.ok(&["delete", "secret", "default-token"]);
    assert_unauthorized(&c, &legacy, "a legacy token whose Secret is gone");

    // The issuer discovery documents.
    let (code, doc) = curl(
        &c,
        "GET",
        "/.well-known/openid-configuration",
        "",
        None,
        &[],
    );
    assert_eq!(code, 200, "{doc}");
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(doc["issuer"], issuer);
    assert_eq!(doc["jwks_uri"], format!("{issuer}/openid/v1/jwks"));
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["ES256"])
    );
    assert_eq!(doc["response_types_supported"], json!(["id_token"]));
    assert_eq!(doc["subject_types_supported"], json!(["public"]));
    let (code, jwks) = curl(&c, "GET", "/openid/v1/jwks", "", None, &[]);
    assert_eq!(code, 200, "{jwks}");
    let jwks: Value = serde_json::from_str(&jwks).unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], header_of(&token)["kid"]);
    assert_eq!(keys[0]["kty"], "EC");
    assert_eq!(keys[0]["crv"], "P-256");
    assert_eq!(keys[0]["use"], "sig");
    // Service accounts may read them (anonymous users only once RBAC grants it).
    let (code, _) = curl_token(&c, "GET", "/openid/v1/jwks", Some(&token), None, &[]);
    assert_eq!(code, 200);
}

#[test]
fn bootstrap_tokens_impersonation_and_static_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "bobs-token,bob,1001,\"devs\"\n").unwrap();
    let c = Cluster::start(&["--token-auth-file", tokens.to_str().unwrap()]);

    // A static token still works, and its user is not a master.
    let who = whoami(&c, "bobs-token");
    assert!(
        who.contains("bob") && who.contains("[devs system:authenticated]"),
        "{who}"
    );

    // Bootstrap token, expiring a few seconds from now.
    let expires = now() + 6;
    let rfc3339 = {
        let out = std::process::Command::new("date")
            .args(["-u", "-d", &format!("@{expires}"), "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    c.create(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: bootstrap-token-abcdef\n  namespace: kube-system\ntype: bootstrap.kubernetes.io/token\nstringData:\n  token-id: abcdef\n  token-secret: 0123456789abcdef\n  usage-bootstrap-authentication: \"true\"\n  auth-extra-groups: system:bootstrappers:kubeadm:default-node-token\n  expiration: {rfc3339}\n"
    ));
    let bootstrap = "abcdef.0123456789abcdef";
    let who = whoami(&c, bootstrap);
    assert!(who.contains("system:bootstrap:abcdef"), "{who}");
    assert!(
        who.contains(
            "[system:bootstrappers system:bootstrappers:kubeadm:default-node-token system:authenticated]"
        ),
        "{who}"
    );
    assert_unauthorized(
        &c,
        "abcdef.0123456789abcdee",
        "a bootstrap token with the wrong secret",
    );
    assert_unauthorized(
        &c,
        "zzzzzz.0123456789abcdef",
        "a bootstrap token without a Secret",
    );
    let wait = expires - now() + 1;
    if wait > 0 {
        std::thread::sleep(Duration::from_secs(wait as u64));
    }
    assert_unauthorized(&c, bootstrap, "an expired bootstrap token");

    // Impersonation by the admin (system:masters).
    let who = c.ok(&["--as=alice", "--as-group=devs", "auth", "whoami"]);
    assert!(who.contains("alice"), "{who}");
    assert!(who.contains("[devs system:authenticated]"), "{who}");
    let who = c.ok(&[
        "--as=system:serviceaccount:kube-system:robot",
        "auth",
        "whoami",
    ]);
    assert!(
        who.contains(
            "[system:serviceaccounts system:serviceaccounts:kube-system system:authenticated]"
        ),
        "{who}"
    );
    let who = c.ok(&["--as=alice", "--as-uid=u-1", "auth", "whoami"]);
    assert!(who.contains("u-1"), "{who}");

    // By anyone else: 403 with upstream's message.
    let out = c.kubectl_token("bobs-token", &["--as=alice", "get", "namespaces"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"users "alice" is forbidden: User "bob" cannot impersonate resource "users" in API group "" at the cluster scope"#),
        "{stderr}"
    );
    let (code, body) = curl_token(
        &c,
        "GET",
        "/api/v1/namespaces",
        Some("bobs-token"),
        None,
        &["Impersonate-User: alice"],
    );
    assert_eq!(code, 403, "{body}");
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["reason"], "Forbidden");
    assert_eq!(status["details"]["name"], "alice");
    assert_eq!(status["details"]["kind"], "users");

    // SelfSubjectReview over the API.
    let (code, body) = curl_token(
        &c,
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        Some("bobs-token"),
        Some(r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#),
        &[],
    );
    assert_eq!(code, 201, "{body}");
    let review: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        review["status"]["userInfo"],
        json!({"username": "bob", "uid": "1001", "groups": ["devs", "system:authenticated"]})
    );
}
