//! ClusterPki on disk: creation, reload, re-issue of leaves, and refusal of corrupt files.

mod support;

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rkube_pki::identity::{node_user, NODES_GROUP, SCHEDULER_USER};
use rkube_pki::{identity_from_der, ClusterPki, Error, PkiOptions, ServingNames};
use support::{mode, names, parse, read, sans};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

fn options_at(now: SystemTime) -> PkiOptions {
    PkiOptions {
        now: Some(now),
        ..PkiOptions::default()
    }
}

/// Asserts `leaf_der` carries a valid signature by the CA in `ca_der`.
fn assert_signed_by(leaf_der: &[u8], ca_der: &[u8]) {
    let leaf = parse(leaf_der);
    let ca = parse(ca_der);
    assert_eq!(leaf.issuer().as_raw(), ca.subject().as_raw());
    leaf.verify_signature(Some(ca.public_key()))
        .expect("leaf signature verifies with the CA key");
}

#[test]
fn creates_files_with_private_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    ClusterPki::load_or_create(&dir, &names()).unwrap();

    assert_eq!(mode(&dir), 0o700);
    for key in ["ca.key", "apiserver.key", "admin.key"] {
        assert_eq!(mode(&dir.join(key)), 0o600, "{key}");
    }
    for cert in ["ca.crt", "apiserver.crt", "admin.crt"] {
        assert_eq!(mode(&dir.join(cert)), 0o644, "{cert}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn ca_is_a_ten_year_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    let ca = parse(pki.ca_cert_der());
    assert!(ca.is_ca());
    let cn: Vec<_> = ca
        .subject()
        .iter_common_name()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(cn, ["rkube-ca"]);
    let lifetime = ca.validity().not_after.timestamp() - ca.validity().not_before.timestamp();
    // 10 years plus the one-hour backdating.
    assert_eq!(lifetime, 3650 * 86400 + 3600);
    assert_eq!(
        pki.ca_cert_pem().as_bytes(),
        read(&tmp.path().join("ca.crt"))
    );
}

#[test]
fn reload_keeps_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let first = ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    let files: Vec<_> = [
        "ca.crt",
        "ca.key",
        "apiserver.crt",
        "apiserver.key",
        "admin.crt",
        "admin.key",
    ]
    .iter()
    .map(|f| read(&tmp.path().join(f)))
    .collect();

    let second = ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    assert_eq!(first.ca_cert_der(), second.ca_cert_der());
    assert_eq!(first.ca_cert_pem(), second.ca_cert_pem());
    assert_eq!(
        first.serving_cert().cert_pem(),
        second.serving_cert().cert_pem()
    );
    assert_eq!(
        first.serving_cert().key_pem(),
        second.serving_cert().key_pem()
    );
    assert_eq!(
        first.admin_cert().cert_der(),
        second.admin_cert().cert_der()
    );
    let again: Vec<_> = [
        "ca.crt",
        "ca.key",
        "apiserver.crt",
        "apiserver.key",
        "admin.crt",
        "admin.key",
    ]
    .iter()
    .map(|f| read(&tmp.path().join(f)))
    .collect();
    assert_eq!(files, again, "a reload rewrote a file");
}

#[test]
fn serving_cert_has_every_san_and_chains_to_the_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    let der = pki.serving_cert().cert_der();
    let (dns, ips) = sans(der);
    for want in [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "node-1",
    ] {
        assert!(
            dns.iter().any(|d| d == want),
            "missing DNS SAN {want}: {dns:?}"
        );
    }
    for want in ["127.0.0.1", "::1", support::SERVICE_IP, support::NODE_IP] {
        let want: IpAddr = want.parse().unwrap();
        assert!(ips.contains(&want), "missing IP SAN {want}: {ips:?}");
    }
    let cert = parse(der);
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    assert!(!cert.is_ca());
    let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    assert_eq!(lifetime, 365 * 86400 + 3600);
    assert_signed_by(der, pki.ca_cert_der());
    assert_eq!(pki.serving_cert_chain_der(), vec![der.clone()]);
}

#[test]
fn admin_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    let admin = pki.admin_cert();
    let id = identity_from_der(admin.cert_der()).unwrap();
    assert_eq!(id.user, "admin");
    assert_eq!(id.groups, vec!["system:masters"]);
    assert!(id.not_after > SystemTime::now() + 364 * DAY);
    let cert = parse(admin.cert_der());
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    assert_signed_by(admin.cert_der(), pki.client_ca_cert_der());
}

#[test]
fn expired_leaves_are_reissued_with_the_same_ca() {
    let tmp = tempfile::tempdir().unwrap();
    // Made 400 days ago: the 1-year leaves expired 35 days ago, the CA is still good.
    let old = ClusterPki::load_or_create_with(
        tmp.path(),
        &names(),
        options_at(SystemTime::now() - 400 * DAY),
    )
    .unwrap();
    let old_not_after = identity_from_der(old.admin_cert().cert_der())
        .unwrap()
        .not_after;
    assert!(old_not_after < SystemTime::now());

    let new = ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    assert_eq!(old.ca_cert_der(), new.ca_cert_der());
    for (before, after) in [
        (old.serving_cert(), new.serving_cert()),
        (old.admin_cert(), new.admin_cert()),
    ] {
        assert_ne!(before.cert_der(), after.cert_der());
        assert_ne!(
            before.key_pem(),
            after.key_pem(),
            "a re-issued leaf gets a new key"
        );
        let issuer = if after.cert_der() == new.serving_cert().cert_der() {
            new.ca_cert_der()
        } else {
            new.client_ca_cert_der()
        };
        assert_signed_by(after.cert_der(), issuer);
        let not_after = identity_from_der(after.cert_der()).unwrap().not_after;
        assert!(not_after > SystemTime::now() + 364 * DAY);
    }
    // And what was re-issued is what is on disk now.
    assert_eq!(
        read(&tmp.path().join("apiserver.crt")),
        new.serving_cert().cert_pem().as_bytes()
    );
    assert_eq!(
        read(&tmp.path().join("admin.key")),
        new.admin_cert().key_pem().as_bytes()
    );
}

#[test]
fn leaves_expiring_within_90_days_are_reissued_and_others_kept() {
    let tmp = tempfile::tempdir().unwrap();
    // Leaves made 350 days ago expire in 15 days: inside the renewal window (90 days).
    let old = ClusterPki::load_or_create_with(
        tmp.path(),
        &names(),
        options_at(SystemTime::now() - 350 * DAY),
    )
    .unwrap();
    let new = ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    assert_ne!(old.serving_cert().cert_der(), new.serving_cert().cert_der());

    // Leaves made 250 days ago still have 115 days (over 90): kept.
    let tmp = tempfile::tempdir().unwrap();
    let old = ClusterPki::load_or_create_with(
        tmp.path(),
        &names(),
        options_at(SystemTime::now() - 250 * DAY),
    )
    .unwrap();
    let new = ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    assert_eq!(old.serving_cert().cert_der(), new.serving_cert().cert_der());
    assert_eq!(old.admin_cert().cert_der(), new.admin_cert().cert_der());
}

#[test]
fn a_new_san_reissues_only_the_serving_cert() {
    let tmp = tempfile::tempdir().unwrap();
    let old = ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    let more = names()
        .with_ip("198.51.100.7".parse().unwrap())
        .with_dns_name("api.example.test");
    let new = ClusterPki::load_or_create(tmp.path(), &more).unwrap();
    assert_ne!(old.serving_cert().cert_der(), new.serving_cert().cert_der());
    assert_eq!(old.admin_cert().cert_der(), new.admin_cert().cert_der());
    assert_eq!(old.ca_cert_der(), new.ca_cert_der());
    let (dns, ips) = sans(new.serving_cert().cert_der());
    assert!(dns.contains(&"api.example.test".to_string()));
    assert!(ips.contains(&"198.51.100.7".parse().unwrap()));

    // Asking for fewer names than the certificate has keeps it.
    let fewer = ClusterPki::load_or_create(tmp.path(), &ServingNames::new("node-1")).unwrap();
    assert_eq!(
        new.serving_cert().cert_der(),
        fewer.serving_cert().cert_der()
    );
}

#[test]
fn corrupt_ca_key_is_an_error_naming_the_file_and_nothing_is_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    let key_path = tmp.path().join("ca.key");
    std::fs::write(
        &key_path,
        "-----BEGIN PRIVATE KEY-----\ngarbage!!\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let before: Vec<_> = [
        "ca.crt",
        "ca.key",
        "apiserver.crt",
        "apiserver.key",
        "admin.crt",
        "admin.key",
    ]
    .iter()
    .map(|f| read(&tmp.path().join(f)))
    .collect();

    let err = ClusterPki::load_or_create(tmp.path(), &names()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::KeyPemReadFailed { .. } | Error::KeyParseFailed { .. }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&key_path.display().to_string()),
        "{err}"
    );

    let after: Vec<_> = [
        "ca.crt",
        "ca.key",
        "apiserver.crt",
        "apiserver.key",
        "admin.crt",
        "admin.key",
    ]
    .iter()
    .map(|f| read(&tmp.path().join(f)))
    .collect();
    assert_eq!(before, after);
}

#[test]
fn a_key_of_the_wrong_kind_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    // Valid base64, not a PKCS#8 key.
    std::fs::write(
        tmp.path().join("ca.key"),
        "-----BEGIN PRIVATE KEY-----\nAAECAwQFBgcICQ==\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = ClusterPki::load_or_create(tmp.path(), &names()).unwrap_err();
    assert!(matches!(err, Error::KeyParseFailed { .. }), "{err:?}");
    assert!(err.to_string().contains("ca.key"), "{err}");
}

#[test]
fn corrupt_certificates_are_errors_naming_the_file() {
    for file in ["ca.crt", "apiserver.crt", "admin.crt"] {
        let tmp = tempfile::tempdir().unwrap();
        ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
        let path = tmp.path().join(file);
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = ClusterPki::load_or_create(tmp.path(), &names()).unwrap_err();
        assert!(
            matches!(err, Error::CertificateParseFailed { .. }),
            "{file}: {err:?}"
        );
        assert!(err.to_string().contains(file), "{err}");
        assert!(read(&path).starts_with(b"-----BEGIN CERTIFICATE-----\nAAECAwQF"));

        std::fs::write(&path, "not pem at all").unwrap();
        let err = ClusterPki::load_or_create(tmp.path(), &names()).unwrap_err();
        assert!(
            matches!(err, Error::CertificateCountWrong { found: 0, .. }),
            "{file}: {err:?}"
        );
        assert!(err.to_string().contains(file), "{err}");
    }
}

#[test]
fn ca_cert_without_key_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    std::fs::remove_file(tmp.path().join("ca.key")).unwrap();
    let ca_before = read(&tmp.path().join("ca.crt"));
    let err = ClusterPki::load_or_create(tmp.path(), &names()).unwrap_err();
    assert!(matches!(err, Error::CaKeyMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("ca.key"), "{err}");
    assert_eq!(read(&tmp.path().join("ca.crt")), ca_before);
    assert!(!tmp.path().join("ca.key").exists());
}

#[test]
fn mismatched_ca_key_is_an_error() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    ClusterPki::load_or_create(a.path(), &names()).unwrap();
    ClusterPki::load_or_create(b.path(), &names()).unwrap();
    std::fs::copy(b.path().join("ca.key"), a.path().join("ca.key")).unwrap();
    let err = ClusterPki::load_or_create(a.path(), &names()).unwrap_err();
    assert!(matches!(err, Error::CaKeyMismatch { .. }), "{err:?}");
}

#[test]
fn ca_key_without_cert_gets_its_cert_back_and_leaves_stay_valid() {
    // A crash after writing ca.key and before ca.crt on first start.
    let tmp = tempfile::tempdir().unwrap();
    let old = ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    std::fs::remove_file(tmp.path().join("ca.crt")).unwrap();
    let new = ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    assert_ne!(old.ca_cert_der(), new.ca_cert_der());
    // Same key and name, so the leaves signed before still verify and are kept.
    assert_eq!(old.serving_cert().cert_der(), new.serving_cert().cert_der());
    assert_signed_by(old.serving_cert().cert_der(), new.ca_cert_der());
    assert_ne!(
        parse(old.ca_cert_der()).raw_serial(),
        parse(new.ca_cert_der()).raw_serial(),
        "serials are random, not derived from the key"
    );
}

#[test]
fn leaf_key_that_does_not_match_is_reissued() {
    // A crash between writing a re-issued leaf's key and its certificate.
    let tmp = tempfile::tempdir().unwrap();
    let old = ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    let other = tempfile::tempdir().unwrap();
    ClusterPki::load_or_create(other.path(), &names()).unwrap();
    std::fs::copy(other.path().join("admin.key"), tmp.path().join("admin.key")).unwrap();
    let new = ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    assert_ne!(old.admin_cert().cert_der(), new.admin_cert().cert_der());
    assert_signed_by(new.admin_cert().cert_der(), new.client_ca_cert_der());
}

#[test]
fn leaf_from_another_ca_is_reissued() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    let other = tempfile::tempdir().unwrap();
    ClusterPki::load_or_create(other.path(), &names()).unwrap();
    for f in ["apiserver.crt", "apiserver.key"] {
        std::fs::copy(other.path().join(f), tmp.path().join(f)).unwrap();
    }
    let new = ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    assert_signed_by(new.serving_cert().cert_der(), pki.ca_cert_der());
}

#[test]
fn client_identity_files_create_load_and_follow_the_subject() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(tmp.path(), &names()).unwrap();

    let sched = pki
        .client_identity_files("my-scheduler", SCHEDULER_USER, &[])
        .unwrap();
    assert_eq!(mode(&tmp.path().join("my-scheduler.key")), 0o600);
    assert_eq!(
        read(&tmp.path().join("my-scheduler.crt")),
        sched.cert_pem().as_bytes()
    );
    let id = identity_from_der(sched.cert_der()).unwrap();
    assert_eq!(id.user, "system:kube-scheduler");
    assert!(id.groups.is_empty());

    let again = pki
        .client_identity_files("my-scheduler", SCHEDULER_USER, &[])
        .unwrap();
    assert_eq!(sched.cert_der(), again.cert_der());

    let kubelet_user = node_user("node-1");
    let kubelet = pki
        .client_identity_files("hollow-kubelet", &kubelet_user, &[NODES_GROUP])
        .unwrap();
    let id = identity_from_der(kubelet.cert_der()).unwrap();
    assert_eq!(id.user, "system:node:node-1");
    assert_eq!(id.groups, vec!["system:nodes"]);

    // The same file asked for another subject is re-issued.
    let other = pki
        .client_identity_files("hollow-kubelet", &node_user("node-2"), &[NODES_GROUP])
        .unwrap();
    assert_eq!(
        identity_from_der(other.cert_der()).unwrap().user,
        "system:node:node-2"
    );

    for reserved in [
        "ca",
        "client-ca",
        "apiserver",
        "admin",
        "kubelet",
        "../escape",
    ] {
        let err = pki.client_identity_files(reserved, "x", &[]).unwrap_err();
        assert!(
            matches!(err, Error::IdentityNameInvalid { .. }),
            "{reserved}: {err:?}"
        );
    }
}

#[test]
fn issue_client_cert_is_signed_and_not_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    let files_before = std::fs::read_dir(tmp.path()).unwrap().count();
    let cert = pki
        .issue_client_cert("system:kube-proxy", &[], Duration::from_secs(3600))
        .unwrap();
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), files_before);
    assert_signed_by(cert.cert_der(), pki.client_ca_cert_der());
    let id = identity_from_der(cert.cert_der()).unwrap();
    assert_eq!(id.user, "system:kube-proxy");
    assert!(id.not_after < SystemTime::now() + Duration::from_secs(3601));
    let (cert_pem, key_pem) = cert.into_pems();
    assert!(cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));

    let err = pki
        .issue_client_cert("alice", &["dev", "ops"], Duration::from_secs(3600))
        .unwrap_err();
    assert!(matches!(err, Error::SubjectBuildFailed { .. }), "{err:?}");
}

#[test]
fn expired_ca_is_an_error_not_a_new_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let short = PkiOptions {
        ca_validity: DAY,
        leaf_validity: DAY,
        now: Some(SystemTime::now() - 10 * DAY),
        ..PkiOptions::default()
    };
    ClusterPki::load_or_create_with(tmp.path(), &names(), short).unwrap();
    let ca_before = read(&tmp.path().join("ca.crt"));
    let err = ClusterPki::load_or_create(tmp.path(), &names()).unwrap_err();
    assert!(matches!(err, Error::CaExpired { .. }), "{err:?}");
    assert!(err.to_string().contains("ca.crt"), "{err}");
    assert_eq!(read(&tmp.path().join("ca.crt")), ca_before);
}

#[test]
fn debug_output_hides_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    let debug = format!("{:?} {:?}", pki, pki.admin_cert());
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
}

#[test]
fn reissue_is_logged_at_info() {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let tmp = tempfile::tempdir().unwrap();
    ClusterPki::load_or_create_with(
        tmp.path(),
        &names(),
        options_at(SystemTime::now() - 400 * DAY),
    )
    .unwrap();
    let buf = Buf::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer({
            let buf = buf.clone();
            move || buf.clone()
        })
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    });
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let reissues: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("issued certificate"))
        .collect();
    // The serving certificate and the five client certificates of the inventory.
    assert_eq!(reissues.len(), 6, "{logs}");
    for line in reissues {
        assert!(
            line.contains("INFO") && line.contains("expired at"),
            "{line}"
        );
    }
    assert!(
        logs.contains("apiserver.crt") && logs.contains("admin.crt"),
        "{logs}"
    );
}

#[test]
fn concurrent_first_starts_agree_on_one_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let cas: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let pki = ClusterPki::load_or_create(&dir, &names()).unwrap();
                    pki.ca_cert_der().to_vec()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        cas.windows(2).all(|w| w[0] == w[1]),
        "processes made different CAs"
    );
    assert_eq!(
        cas[0],
        ClusterPki::load_or_create(&dir, &names())
            .unwrap()
            .ca_cert_der()
            .to_vec()
    );
}
