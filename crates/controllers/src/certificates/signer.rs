//! The CSR signer (upstream `certificatesigningrequest-signing-controller`): approved
//! requests for `kubernetes.io/kube-apiserver-client`, `kube-apiserver-client-kubelet`
//! and `kubelet-serving` are signed by the cluster CA — for `expirationSeconds` when set
//! and shorter than `--cluster-signing-duration` (one year by default) — and the certificate written to
//! `status.certificate`. A request the signer's rules refuse gets a `Failed` condition
//! (`SignerValidationFailure`).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::ByteString;
use kube::api::PostParams;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use rcgen::{
    CertificateSigningRequestParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};

use super::*;
use crate::Context;

/// `--cluster-signing-duration`'s default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
const BACKDATE: Duration = Duration::from_secs(5 * 60);
const SHORT: Duration = Duration::from_secs(8 * 3600);

struct Ctx {
    cx: Context,
    ca_cert: String,
    ca_key: String,
}

/// Runs the controller until dropped (at once without the CA key).
pub async fn run(cx: Context) {
    let (Some(ca_cert), Some(ca_key)) = (
        cx.config.signing_ca_pem.clone(),
        cx.config.ca_key_pem.clone(),
    ) else {
        tracing::info!("certificatesigningrequest-signing-controller: no CA key to sign with");
        return;
    };
    let api: Api<CertificateSigningRequest> = Api::all(cx.watch_client.clone());
    let ctx = Arc::new(Ctx {
        cx,
        ca_cert,
        ca_key,
    });
    Controller::new(api, watcher::Config::default())
        .run(
            crate::metrics::queue().reconciler(reconcile),
            crate::metrics::queue().error_policy(error_policy),
            ctx,
        )
        .for_each(|_| async {})
        .await;
}

/// Signs `req` with the CA: its subject and SANs, the key usages asked for, valid for
/// `ttl` from (a little before) `now`.
pub fn sign(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    req: &Request,
    usages: &[String],
    ttl: Duration,
    now: time::OffsetDateTime,
) -> Result<String, String> {
    let key = KeyPair::from_pem(ca_key_pem).map_err(|e| format!("invalid CA key: {e}"))?;
    let issuer =
        Issuer::from_ca_cert_pem(ca_cert_pem, key).map_err(|e| format!("invalid CA: {e}"))?;
    let mut csr = CertificateSigningRequestParams::from_pem(&req.pem)
        .map_err(|e| format!("unable to parse csr: {e}"))?;
    let backdate = if ttl > SHORT {
        BACKDATE
    } else {
        Duration::ZERO
    };
    let p = &mut csr.params;
    p.not_before = now - backdate;
    p.not_after = now - backdate + ttl;
    p.is_ca = IsCa::ExplicitNoCa;
    p.use_authority_key_identifier_extension = true;
    let mut serial = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut serial)
        .map_err(|_| "no randomness for a serial number".to_owned())?;
    serial[0] &= 0x7f;
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    p.key_usages.clear();
    p.extended_key_usages.clear();
    for u in usages {
        match u.as_str() {
            "digital signature" => p.key_usages.push(KeyUsagePurpose::DigitalSignature),
            "key encipherment" => p.key_usages.push(KeyUsagePurpose::KeyEncipherment),
            "client auth" => p
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth),
            "server auth" => p
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth),
            _ => {}
        }
    }
    let cert = csr
        .signed_by(&issuer)
        .map_err(|e| format!("cannot sign: {e}"))?;
    Ok(cert.pem())
}

#[derive(Debug, thiserror::Error)]
#[error("cannot sign csr {0}: {1}")]
struct Error(String, String);

async fn reconcile(csr: Arc<CertificateSigningRequest>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let done = Ok(Action::await_change());
    let signed = csr
        .status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty());
    if !has_condition(&csr, "Approved")
        || has_condition(&csr, "Denied")
        || has_condition(&csr, "Failed")
        || signed
    {
        return done;
    }
    let signer = csr.spec.signer_name.as_str();
    if ![
        KUBE_APISERVER_CLIENT,
        KUBE_APISERVER_CLIENT_KUBELET,
        KUBELET_SERVING,
    ]
    .contains(&signer)
    {
        return done;
    }
    let name = csr.name_any();
    let req = match parse_request(&csr.spec.request.0) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(csr = name, error = e, "cannot parse the request");
            return done;
        }
    };
    let valid = match signer {
        KUBE_APISERVER_CLIENT => validate_apiserver_client(&csr),
        KUBE_APISERVER_CLIENT_KUBELET => validate_kubelet_client(&req, &csr),
        _ => validate_kubelet_serving(&req, &csr),
    };
    let mut updated = (*csr).clone();
    updated.metadata.managed_fields = None;
    let status = updated.status.get_or_insert_with(Default::default);
    match valid {
        Err(message) => {
            let now = Time(k8s_openapi::jiff::Timestamp::now());
            status.conditions.get_or_insert_with(Vec::new).push(
                CertificateSigningRequestCondition {
                    type_: "Failed".into(),
                    status: "True".into(),
                    reason: Some("SignerValidationFailure".into()),
                    message: Some(message),
                    last_update_time: Some(now.clone()),
                    last_transition_time: Some(now),
                },
            );
        }
        Ok(()) => {
            let max_ttl = ctx.cx.config.cluster_signing_duration;
            let ttl = csr
                .spec
                .expiration_seconds
                .map(|s| Duration::from_secs(s.max(0) as u64))
                .map_or(max_ttl, |d| d.min(max_ttl));
            let usages = csr.spec.usages.clone().unwrap_or_default();
            let pem = sign(
                &ctx.ca_cert,
                &ctx.ca_key,
                &req,
                &usages,
                ttl,
                time::OffsetDateTime::now_utc(),
            )
            .map_err(|e| Error(name.clone(), e))?;
            status.certificate = Some(ByteString(pem.into_bytes()));
        }
    }
    let api: Api<CertificateSigningRequest> = Api::all(ctx.cx.client.clone());
    match api
        .replace_status(&name, &PostParams::default(), &updated)
        .await
    {
        Ok(_) => done,
        Err(kube::Error::Api(e)) if e.code == 404 => done,
        Err(kube::Error::Api(e)) if e.code == 409 => {
            Ok(Action::requeue(Duration::from_millis(200)))
        }
        Err(e) => Err(Error(name, e.to_string())),
    }
}

fn error_policy(_: Arc<CertificateSigningRequest>, error: &Error, _: Arc<Ctx>) -> Action {
    tracing::warn!(%error, "certificatesigningrequest-signing-controller");
    Action::requeue(Duration::from_secs(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType};
    use x509_parser::prelude::{FromDer, X509Certificate};

    fn ca() -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, "test-ca");
        let cert = p.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn request(cn: &str, orgs: &[&str], sans: &[&str]) -> Request {
        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        for o in orgs {
            p.distinguished_name.push(DnType::OrganizationName, *o);
        }
        let pem = p.serialize_request(&key).unwrap().pem().unwrap();
        parse_request(pem.as_bytes()).unwrap()
    }

    fn csr(usages: &[&str]) -> CertificateSigningRequest {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "c"}, "spec": {
            "request": "", "signerName": KUBELET_SERVING, "usages": usages}}))
        .unwrap()
    }

    #[test]
    fn signs_with_the_requested_subject_usages_and_lifetime() {
        let (ca_cert, ca_key) = ca();
        let req = request("alice", &["devs"], &[]);
        assert_eq!(req.common_name, "alice");
        assert_eq!(req.organizations, ["devs"]);
        let now = time::OffsetDateTime::from_unix_timestamp(2_000_000_000).unwrap();
        let pem = sign(
            &ca_cert,
            &ca_key,
            &req,
            &["digital signature".into(), "client auth".into()],
            Duration::from_secs(3600),
            now,
        )
        .unwrap();
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let (_, cert) = X509Certificate::from_der(&block.contents).unwrap();
        let cn: Vec<_> = cert.subject().iter_common_name().collect();
        assert_eq!(cn[0].as_str().unwrap(), "alice");
        assert_eq!(cert.validity().not_before.timestamp(), 2_000_000_000);
        assert_eq!(cert.validity().not_after.timestamp(), 2_000_003_600);
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        let (_, ca_block) = x509_parser::pem::parse_x509_pem(ca_cert.as_bytes()).unwrap();
        let (_, ca) = X509Certificate::from_der(&ca_block.contents).unwrap();
        cert.verify_signature(Some(ca.public_key())).unwrap();
    }

    #[test]
    fn kubelet_checks_like_upstream() {
        let ok = request("system:node:n1", &["system:nodes"], &["n1.example"]);
        assert_eq!(ok.dns_names, ["n1.example"]);
        let serving = csr(&["digital signature", "key encipherment", "server auth"]);
        assert_eq!(validate_kubelet_serving(&ok, &serving), Ok(()));
        let cases = [
            (
                request("system:node:n1", &["other"], &["n1"]),
                "subject organization is not system:nodes",
            ),
            (
                request("n1", &["system:nodes"], &["n1"]),
                "subject common name does not begin with system:node:",
            ),
            (
                request("system:node:n1", &["system:nodes"], &[]),
                "DNS or IP subjectAltName is required",
            ),
        ];
        for (r, msg) in cases {
            assert_eq!(validate_kubelet_serving(&r, &serving), Err(msg.to_owned()));
        }
        assert_eq!(
            validate_kubelet_serving(&ok, &csr(&["client auth", "digital signature"])),
            Err("usages did not match [digital signature server auth]".to_owned())
        );
        let client = csr(&["digital signature", "client auth"]);
        let c = request("system:node:n1", &["system:nodes"], &[]);
        assert_eq!(validate_kubelet_client(&c, &client), Ok(()));
        assert_eq!(
            validate_kubelet_client(&ok, &client),
            Err("DNS subjectAltNames are not allowed".to_owned())
        );
        assert!(validate_apiserver_client(&client).is_ok());
        assert!(validate_apiserver_client(&serving).is_err());
    }
}
