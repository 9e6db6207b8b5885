//! The certificate lifecycle: renewal of short-lived leaves, leaf and CA rotation with an
//! overlap, the `certs check` report, component kubeconfigs, and client certificate
//! verification with upstream's x509 messages. Parsers never panic on arbitrary input.

mod support;

use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use rkube_pki::check::{self, Status};
use rkube_pki::identity::verify_client_cert;
use rkube_pki::{ClusterPki, Error, PkiOptions};
use rustls_pki_types::pem::PemObject;
use support::{mode, names, read, HOSTNAME};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

fn at(now: SystemTime) -> PkiOptions {
    PkiOptions {
        now: Some(now),
        ..PkiOptions::default()
    }
}

fn pem_count(path: &std::path::Path) -> usize {
    String::from_utf8(read(path))
        .unwrap()
        .matches("BEGIN CERTIFICATE")
        .count()
}

#[test]
fn component_certificates_and_kubeconfigs() {
    let tmp = tempfile::tempdir().unwrap();
    let pki_dir = tmp.path().join("pki");
    let pki = ClusterPki::load_or_create(&pki_dir, &names()).unwrap();
    assert_eq!(mode(&pki_dir), 0o700);
    for (stem, user, groups) in [
        ("admin", "admin", vec!["system:masters"]),
        ("kube-scheduler", "system:kube-scheduler", vec![]),
        (
            "kube-controller-manager",
            "system:kube-controller-manager",
            vec![],
        ),
        ("kube-proxy", "system:kube-proxy", vec![]),
        ("kubelet", "system:node:node-1", vec!["system:nodes"]),
    ] {
        let cert = pki.client_cert(stem).unwrap_or_else(|| panic!("{stem}"));
        let id = verify_client_cert(
            cert.cert_der(),
            pki.client_ca_bundle_der(),
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(
            (id.user.as_str(), id.groups.clone()),
            (user, groups.iter().map(|g| g.to_string()).collect())
        );
        assert_eq!(mode(&pki_dir.join(format!("{stem}.key"))), 0o600);
    }
    // The server CA does not sign client certificates, nor the client CA serving ones.
    let err = verify_client_cert(
        pki.admin_cert().cert_der(),
        &[pki.ca_cert_der().clone()],
        SystemTime::now(),
    )
    .unwrap_err();
    assert!(
        err.ends_with("x509: certificate signed by unknown authority"),
        "{err}"
    );

    let written = pki
        .write_kubeconfigs(tmp.path(), "https://127.0.0.1:6443")
        .unwrap();
    let mut names: Vec<_> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "admin.kubeconfig",
            "controller-manager.kubeconfig",
            "kube-proxy.kubeconfig",
            "kubelet.kubeconfig",
            "scheduler.kubeconfig"
        ]
    );
    for path in &written {
        assert_eq!(mode(path), 0o600);
        assert_eq!(
            rkube_pki::kubeconfig::server_url(path).as_deref(),
            Some("https://127.0.0.1:6443")
        );
    }
    // Unchanged content is not rewritten.
    assert!(pki
        .write_kubeconfigs(tmp.path(), "https://127.0.0.1:6443")
        .unwrap()
        .is_empty());
}

#[test]
fn short_lived_leaves_renew_when_a_third_of_their_lifetime_is_left() {
    let tmp = tempfile::tempdir().unwrap();
    let t0 = SystemTime::now();
    let opts = |now| PkiOptions {
        leaf_validity: Duration::from_secs(30),
        ..at(now)
    };
    // 30 s leaves start 3 s early (a tenth of their validity): 33 s lifetime, renewed
    // with 11 s left.
    let first = ClusterPki::load_or_create_with(tmp.path(), &names(), opts(t0)).unwrap();
    let later =
        ClusterPki::load_or_create_with(tmp.path(), &names(), opts(t0 + Duration::from_secs(15)))
            .unwrap();
    assert_eq!(
        first.serving_cert().cert_der(),
        later.serving_cert().cert_der()
    );
    let renewed =
        ClusterPki::load_or_create_with(tmp.path(), &names(), opts(t0 + Duration::from_secs(21)))
            .unwrap();
    assert_ne!(
        first.serving_cert().cert_der(),
        renewed.serving_cert().cert_der()
    );
    assert_ne!(
        first.client_cert("kube-proxy").unwrap().cert_der(),
        renewed.client_cert("kube-proxy").unwrap().cert_der()
    );
    assert_eq!(
        first.ca_cert_der(),
        renewed.ca_cert_der(),
        "CAs are never renewed"
    );
}

#[test]
fn rotating_leaves_keeps_the_cas() {
    let tmp = tempfile::tempdir().unwrap();
    let before = ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    let after = ClusterPki::rotate_leaves(tmp.path(), &names(), PkiOptions::default()).unwrap();
    assert_eq!(before.ca_cert_pem(), after.ca_cert_pem());
    assert_eq!(before.client_ca_pem(), after.client_ca_pem());
    assert_ne!(
        before.serving_cert().cert_der(),
        after.serving_cert().cert_der()
    );
    for stem in ["admin", "kube-scheduler", "kubelet"] {
        assert_ne!(
            before.client_cert(stem).unwrap().cert_der(),
            after.client_cert(stem).unwrap().cert_der()
        );
    }
}

#[test]
fn ca_rotation_trusts_old_and_new_until_the_overlap_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let t0 = SystemTime::now();
    let old = ClusterPki::load_or_create_with(tmp.path(), &names(), at(t0)).unwrap();
    let old_admin = old.admin_cert().clone();

    let new =
        ClusterPki::rotate_ca(tmp.path(), &names(), at(t0), Duration::from_secs(3600)).unwrap();
    assert_ne!(old.ca_cert_der(), new.ca_cert_der());
    assert_ne!(old.client_ca_cert_der(), new.client_ca_cert_der());
    assert_eq!(pem_count(&tmp.path().join("ca.crt")), 2);
    assert_eq!(pem_count(&tmp.path().join("client-ca.crt")), 2);
    assert!(tmp.path().join("client-ca.overlap-until").exists());
    assert!(
        new.ca_cert_pem().contains(old.ca_cert_pem().trim()),
        "old CA in the bundle"
    );
    // Leaves come from the new CAs; the old admin certificate is still accepted.
    let now = t0 + Duration::from_secs(60);
    verify_client_cert(new.admin_cert().cert_der(), new.client_ca_bundle_der(), now).unwrap();
    verify_client_cert(old_admin.cert_der(), new.client_ca_bundle_der(), now).unwrap();
    let err = verify_client_cert(new.admin_cert().cert_der(), old.client_ca_bundle_der(), now)
        .unwrap_err();
    assert!(err.contains("signed by unknown authority"), "{err}");

    // The serving chain carries the new CA signed by the old one, for old clients.
    let chain = new.serving_cert_chain_der();
    assert_eq!(chain.len(), 2);
    let cross = support::parse(&chain[1]);
    let old_ca = support::parse(old.ca_cert_der());
    assert_eq!(cross.issuer().as_raw(), old_ca.subject().as_raw());
    cross.verify_signature(Some(old_ca.public_key())).unwrap();
    assert_eq!(
        cross.public_key().raw,
        support::parse(new.ca_cert_der()).public_key().raw
    );
    // A reload during the overlap keeps both.
    let during =
        ClusterPki::load_or_create_with(tmp.path(), &names(), at(t0 + Duration::from_secs(1800)))
            .unwrap();
    assert_eq!(during.client_ca_bundle_der().len(), 2);
    assert_eq!(during.serving_cert_chain_der().len(), 2);
    assert_eq!(during.admin_cert().cert_der(), new.admin_cert().cert_der());

    // After it, the old CAs are dropped from the files.
    let after =
        ClusterPki::load_or_create_with(tmp.path(), &names(), at(t0 + Duration::from_secs(3700)))
            .unwrap();
    assert_eq!(after.client_ca_bundle_der().len(), 1);
    assert_eq!(pem_count(&tmp.path().join("ca.crt")), 1);
    assert_eq!(after.serving_cert_chain_der().len(), 1);
    assert!(!tmp.path().join("ca.cross.crt").exists());
    assert!(!tmp.path().join("client-ca.overlap-until").exists());
    let err = verify_client_cert(
        old_admin.cert_der(),
        after.client_ca_bundle_der(),
        t0 + Duration::from_secs(3700),
    )
    .unwrap_err();
    assert!(err.contains("signed by unknown authority"), "{err}");
}

#[test]
fn an_expired_ca_says_how_to_fix_it_and_rotation_fixes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let past = PkiOptions {
        ca_validity: DAY,
        leaf_validity: DAY,
        ..at(SystemTime::now() - 10 * DAY)
    };
    ClusterPki::load_or_create_with(tmp.path(), &names(), past).unwrap();
    let err = ClusterPki::load_or_create(tmp.path(), &names()).unwrap_err();
    assert!(matches!(err, Error::CaExpired { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("x509: certificate has expired or is not yet valid")
            && text.contains("rkube certs rotate --ca"),
        "{text}"
    );
    let pki = ClusterPki::rotate_ca(tmp.path(), &names(), PkiOptions::default(), DAY).unwrap();
    // Nothing to overlap with: the expired CA is not kept.
    assert_eq!(pki.client_ca_bundle_der().len(), 1);
    ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
}

#[test]
fn client_certificate_errors_use_upstream_wording() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    let roots = pki.client_ca_bundle_der();
    let cert = pki
        .issue_client_cert("alice", &[], Duration::from_secs(3600))
        .unwrap();
    let now = SystemTime::now();
    let err = verify_client_cert(cert.cert_der(), roots, now + 2 * DAY).unwrap_err();
    assert!(err.starts_with("verifying certificate SN="), "{err}");
    assert!(
        err.contains("failed: x509: certificate has expired or is not yet valid: current time ")
            && err.contains(" is after "),
        "{err}"
    );
    let err = verify_client_cert(cert.cert_der(), roots, now - 2 * DAY).unwrap_err();
    assert!(err.contains(" is before "), "{err}");
    // A serving certificate is no client certificate.
    let err = verify_client_cert(
        pki.serving_cert().cert_der(),
        &[pki.ca_cert_der().clone()],
        now,
    )
    .unwrap_err();
    assert!(
        err.ends_with("x509: certificate specifies an incompatible key usage"),
        "{err}"
    );
    let id = verify_client_cert(cert.cert_der(), roots, now).unwrap();
    assert_eq!(id.user, "alice");
}

#[test]
fn check_reports_every_file() {
    let tmp = tempfile::tempdir().unwrap();
    ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    let node = rkube_pki::inventory::node_name(Some(HOSTNAME));
    let now = SystemTime::now();
    let rows = check::check(tmp.path(), &node, now, 30 * DAY);
    assert!(!check::has_problems(&rows), "{rows:#?}");
    let files: Vec<&str> = rows.iter().map(|r| r.file.as_str()).collect();
    for f in [
        "ca.crt",
        "client-ca.crt",
        "front-proxy-ca.crt",
        "apiserver.crt",
        "admin.crt",
        "kube-scheduler.crt",
        "kube-controller-manager.crt",
        "kube-proxy.crt",
        "kubelet.crt",
        "front-proxy-client.crt",
        "sa.key",
    ] {
        assert!(files.contains(&f), "{f} missing from {files:?}");
    }
    let status = |rows: &[check::CheckRow], f: &str| {
        rows.iter().find(|r| r.file == f).unwrap().status.clone()
    };
    assert_eq!(status(&rows, "front-proxy-ca.crt"), Status::Absent);
    let table = check::render_table(&rows, now);
    assert!(table.starts_with("FILE"), "{table}");
    assert!(table.contains("CN=admin, O=system:masters"), "{table}");

    // A 400-day threshold flags the 1-year leaves, not the 10-year CAs.
    let rows = check::check(tmp.path(), &node, now, 400 * DAY);
    assert!(check::has_problems(&rows));
    assert_eq!(status(&rows, "admin.crt"), Status::ExpiresSoon);
    assert_eq!(status(&rows, "ca.crt"), Status::Ok);
    // Expired, wrong key, missing, unreadable.
    let rows = check::check(tmp.path(), &node, now + 400 * DAY, DAY);
    assert_eq!(status(&rows, "admin.crt"), Status::Expired);
    let rows = check::check(tmp.path(), &node, now - 2 * DAY, DAY);
    assert_eq!(status(&rows, "admin.crt"), Status::NotYetValid);
    std::fs::copy(
        tmp.path().join("kube-proxy.key"),
        tmp.path().join("admin.key"),
    )
    .unwrap();
    std::fs::remove_file(tmp.path().join("kubelet.crt")).unwrap();
    std::fs::write(tmp.path().join("front-proxy-ca.crt"), "garbage").unwrap();
    let rows = check::check(tmp.path(), &node, now, DAY);
    assert_eq!(status(&rows, "admin.crt"), Status::KeyMismatch);
    assert_eq!(status(&rows, "kubelet.crt"), Status::Missing);
    assert!(matches!(
        status(&rows, "front-proxy-ca.crt"),
        Status::Unreadable(_)
    ));
    assert_eq!(status(&rows, "front-proxy-client.crt"), Status::Absent);
}

#[test]
fn check_shows_both_cas_during_a_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    ClusterPki::rotate_ca(tmp.path(), &names(), PkiOptions::default(), DAY).unwrap();
    let rows = check::check(tmp.path(), "node-1", SystemTime::now(), DAY);
    assert!(!check::has_problems(&rows), "{rows:#?}");
    assert!(rows.iter().any(|r| r.file == "client-ca.crt[2]"));
    let subjects: Vec<_> = rows
        .iter()
        .filter(|r| r.file.starts_with("ca.crt"))
        .map(|r| r.subject.clone())
        .collect();
    assert!(subjects[0].starts_with("CN=rkube-ca@"), "{subjects:?}");
    assert_eq!(subjects[1], "CN=rkube-ca");
}

#[test]
fn front_proxy_rows_are_checked_and_rotated_when_present_never_created() {
    let tmp = tempfile::tempdir().unwrap();
    ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    assert!(!tmp.path().join("front-proxy-ca.crt").exists());
    assert!(!tmp.path().join("front-proxy-client.crt").exists());
    // Stand-ins for what the aggregation layer makes: a CA and a client certificate of it.
    let copy = |from: &str, to: &str| {
        std::fs::copy(tmp.path().join(from), tmp.path().join(to)).unwrap();
    };
    copy("client-ca.crt", "front-proxy-ca.crt");
    copy("client-ca.key", "front-proxy-ca.key");
    copy("kube-proxy.crt", "front-proxy-client.crt");
    copy("kube-proxy.key", "front-proxy-client.key");
    let rows = check::check(tmp.path(), "node-1", SystemTime::now(), DAY);
    assert!(!check::has_problems(&rows), "{rows:#?}");
    let before = read(&tmp.path().join("front-proxy-client.crt"));
    ClusterPki::rotate_leaves(tmp.path(), &names(), PkiOptions::default()).unwrap();
    let after = read(&tmp.path().join("front-proxy-client.crt"));
    assert_ne!(before, after);
    let der = rustls_pki_types::CertificateDer::from_pem_slice(&after).unwrap();
    let ca = rustls_pki_types::CertificateDer::from_pem_slice(&read(
        &tmp.path().join("front-proxy-ca.crt"),
    ))
    .unwrap();
    let id = verify_client_cert(&der, &[ca], SystemTime::now()).unwrap();
    assert_eq!(id.user, "front-proxy-client");
    let rows = check::check(tmp.path(), "node-1", SystemTime::now(), DAY);
    assert!(!check::has_problems(&rows), "{rows:#?}");
}

proptest! {
    #[test]
    fn client_certificate_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = rkube_pki::identity_from_der(&bytes);
        let _ = verify_client_cert(&bytes, std::slice::from_ref(&bytes), SystemTime::now());
        let _ = rkube_pki::identity::validity_of(&bytes);
    }

    #[test]
    fn mutated_certificates_never_panic(index in 0usize..700, value in any::<u8>()) {
        thread_local! {
            static PKI: (tempfile::TempDir, ClusterPki) = {
                let tmp = tempfile::tempdir().unwrap();
                let pki = ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
                (tmp, pki)
            };
        }
        PKI.with(|(_, pki)| {
            let mut der = pki.admin_cert().cert_der().to_vec();
            let i = index % der.len();
            der[i] = value;
            let _ = verify_client_cert(&der, pki.client_ca_bundle_der(), SystemTime::now());
            let _ = rkube_pki::identity_from_der(&der);
        });
    }

    #[test]
    fn pem_files_never_panic(text in ".{0,400}", pem_body in "[A-Za-z0-9+/=\n]{0,300}") {
        let tmp = tempfile::tempdir().unwrap();
        let pem = format!("-----BEGIN CERTIFICATE-----\n{pem_body}\n-----END CERTIFICATE-----\n");
        for (file, content) in [("ca.crt", pem.as_str()), ("admin.crt", text.as_str()), ("admin.key", pem.as_str()), ("sa.key", text.as_str())] {
            std::fs::write(tmp.path().join(file), content).unwrap();
        }
        let _ = check::check(tmp.path(), "n", SystemTime::now(), DAY);
        let _ = ClusterPki::load_or_create(tmp.path(), &names());
        let _ = rkube_pki::ServiceAccountKey::from_pem(&text);
        let _ = rkube_pki::ServiceAccountKey::from_pem(&pem);
        std::fs::write(tmp.path().join("k"), &text).unwrap();
        let _ = rkube_pki::kubeconfig::server_url(&tmp.path().join("k"));
    }

    #[test]
    fn service_account_claims_never_panic(
        iss in ".{0,20}",
        aud in proptest::collection::vec(".{0,10}", 0..3),
        exp in any::<i64>(),
        nbf in any::<i64>(),
        iat in any::<i64>(),
        namespace in ".{0,10}",
        name in ".{0,10}",
        extra in proptest::option::of(any::<i64>()),
    ) {
        use rkube_pki::service_account::TokenClaims;
        thread_local! {
            static KEY: rkube_pki::ServiceAccountKey = rkube_pki::ServiceAccountKey::generate().unwrap();
        }
        let claims = serde_json::json!({
            "iss": iss, "aud": aud, "exp": exp, "nbf": nbf, "iat": iat,
            "sub": format!("system:serviceaccount:{namespace}:{name}"),
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": "u"}, "warnafter": extra},
        });
        KEY.with(|key| {
            let token = key.signer().sign(&claims).unwrap();
            let (_, payload) = key.verifier().verify(&token).unwrap();
            if let Ok(parsed) = serde_json::from_value::<TokenClaims>(payload) {
                let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
                let _ = parsed.validate(now, std::slice::from_ref(&iss), &["https://kubernetes.default.svc".to_owned()]);
            }
            // A tampered token is refused, never a panic.
            let _ = key.verifier().verify(&format!("{token}x"));
            let _ = rkube_pki::jwt::unverified_payload(&token.replacen('.', "", 1));
        });
    }
}
