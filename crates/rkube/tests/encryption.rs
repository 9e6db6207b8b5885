//! Encryption at rest over the real binary: secrets stored with upstream's
//! `k8s:enc:aescbc:v1:<key>:` prefix and no plaintext in the database files, read back
//! by get, list, the watch cache and watches; key rotation by putting a new key first
//! and rewriting every secret with kubectl; a server without the key cannot read them.

mod support;

use std::path::Path;

use support::Cluster;

const PLAINTEXT: &str = "correct-horse-battery-staple";

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn write_config(dir: &Path, keys: &[(&str, u8)], identity: bool) -> String {
    let keys: Vec<String> = keys
        .iter()
        .map(|(name, fill)| format!("{{name: {name}, secret: {}}}", b64(&[*fill; 32])))
        .collect();
    let path = dir.join("encryption.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aescbc:\n      keys: [{}]\n{}",
            keys.join(", "),
            if identity { "  - identity: {}\n" } else { "" }
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

/// Whether any file of the database directory contains `needle`.
fn db_contains(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir.join("db"))
        .unwrap()
        .filter_map(|e| std::fs::read(e.unwrap().path()).ok())
        .any(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
}

fn start(dir: tempfile::TempDir, config: &str) -> Cluster {
    let db = format!("sqlite://{}", dir.path().join("db/state.db").display());
    Cluster::start_in(
        dir,
        &[
            "--encryption-provider-config",
            config,
            "--datastore-endpoint",
            &db,
        ],
    )
}

#[test]
fn secrets_are_encrypted_at_rest_and_keys_rotate() {
    let conf = tempfile::tempdir().unwrap();
    let c = start(
        tempfile::tempdir().unwrap(),
        &write_config(conf.path(), &[("key1", 1)], true),
    );
    c.ok(&[
        "create",
        "secret",
        "generic",
        "s1",
        "-n",
        "default",
        &format!("--from-literal=password={PLAINTEXT}"),
    ]);
    c.ok(&[
        "create",
        "configmap",
        "c1",
        "-n",
        "default",
        &format!("--from-literal=note={PLAINTEXT}"),
    ]);
    let stored = b64(PLAINTEXT.as_bytes());
    // The configmap is not encrypted: the search finds plaintext where there is some.
    assert!(db_contains(c.data_dir(), PLAINTEXT.as_bytes()));
    assert!(
        !db_contains(c.data_dir(), stored.as_bytes()),
        "secret data in plaintext"
    );
    assert!(db_contains(c.data_dir(), b"k8s:enc:aescbc:v1:key1:"));

    // Every read path decrypts.
    let read = |c: &Cluster| {
        c.ok(&[
            "get",
            "secret",
            "s1",
            "-n",
            "default",
            "-o",
            "jsonpath={.data.password}",
        ])
    };
    assert_eq!(read(&c), stored);
    let listed = c.ok(&[
        "get",
        "secrets",
        "-A",
        "-o",
        "jsonpath={.items[*].data.password}",
    ]);
    assert!(listed.contains(&stored), "{listed}");
    let (code, cached) = support::curl(
        &c,
        "GET",
        "/api/v1/namespaces/default/secrets?resourceVersion=0",
        "application/json",
        None,
        &[],
    );
    assert_eq!(code, 200);
    assert!(cached.contains(&stored), "{cached}");
    let (code, watched) = support::curl(
        &c,
        "GET",
        "/api/v1/namespaces/default/secrets?watch=1&timeoutSeconds=1",
        "application/json",
        None,
        &[],
    );
    assert_eq!(code, 200);
    assert!(
        watched.contains(&stored) && watched.contains("ADDED"),
        "{watched}"
    );

    // Rotation: key2 first, key1 still readable; rewrite everything with kubectl.
    let (_, dir) = c.stop();
    let c = start(
        dir,
        &write_config(conf.path(), &[("key2", 2), ("key1", 1)], false),
    );
    assert_eq!(read(&c), stored);
    let all = c.ok(&["get", "secrets", "-A", "-o", "json"]);
    let out = c.kubectl_with(&["replace", "-f", "-"], Some(&all), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(db_contains(c.data_dir(), b"k8s:enc:aescbc:v1:key2:"));

    // key1 retired: everything current is readable with key2 alone.
    let (_, dir) = c.stop();
    let c = start(dir, &write_config(conf.path(), &[("key2", 2)], false));
    assert_eq!(read(&c), stored);
    c.ok(&["get", "secrets", "-A"]);

    // A server without the key cannot read the secret, and says why.
    let (_, dir) = c.stop();
    let c = start(dir, &write_config(conf.path(), &[("key3", 3)], false));
    let err = c.fails(&["get", "secret", "s1", "-n", "default"]);
    assert!(err.contains("no matching prefix found"), "{err}");
}

#[test]
fn a_bad_configuration_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aescbc:\n      keys: [{name: k, secret: AAAA}]\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args(["server", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--encryption-provider-config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad --encryption-provider-config")
            && err.contains("aescbc key must be 16, 24 or 32 bytes, got 3"),
        "{err}"
    );
}
