//! CertificateSigningRequests: what the approver and the signer share — parsing the
//! request, its approval state, and upstream's checks of kubelet client and serving
//! requests.

pub mod approver;
pub mod signer;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

pub const KUBE_APISERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";
pub const KUBE_APISERVER_CLIENT_KUBELET: &str = "kubernetes.io/kube-apiserver-client-kubelet";
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";

/// The parts of a PKCS#10 request the checks read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Request {
    pub common_name: String,
    pub organizations: Vec<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<String>,
    pub emails: Vec<String>,
    pub uris: Vec<String>,
    /// The request as PEM.
    pub pem: String,
}

/// Parses `spec.request` (PEM; upstream's message when it is not a CSR).
pub fn parse_request(raw: &[u8]) -> Result<Request, String> {
    let not_csr = || "PEM block type must be CERTIFICATE REQUEST".to_owned();
    let text = std::str::from_utf8(raw).map_err(|_| not_csr())?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(text.as_bytes()).map_err(|_| not_csr())?;
    if pem.label != "CERTIFICATE REQUEST" && pem.label != "NEW CERTIFICATE REQUEST" {
        return Err(not_csr());
    }
    let (_, csr) = X509CertificationRequest::from_der(&pem.contents)
        .map_err(|e| format!("unable to parse csr: {e}"))?;
    let subject = &csr.certification_request_info.subject;
    let strings = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
        it.filter_map(|a| a.as_str().ok().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    let mut req = Request {
        common_name: strings(&mut subject.iter_common_name())
            .into_iter()
            .next()
            .unwrap_or_default(),
        organizations: strings(&mut subject.iter_organization()),
        pem: text.to_owned(),
        ..Default::default()
    };
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(d) => req.dns_names.push((*d).to_owned()),
                    GeneralName::RFC822Name(e) => req.emails.push((*e).to_owned()),
                    GeneralName::URI(u) => req.uris.push((*u).to_owned()),
                    GeneralName::IPAddress(b) => req.ip_addresses.push(match b.len() {
                        4 => std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string(),
                        16 => {
                            let a: [u8; 16] = (*b).try_into().unwrap_or([0; 16]);
                            std::net::Ipv6Addr::from(a).to_string()
                        }
                        _ => String::new(),
                    }),
                    _ => {}
                }
            }
        }
    }
    Ok(req)
}

/// Whether a condition of `type_` is True.
pub fn has_condition(csr: &CertificateSigningRequest, type_: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

fn usages(csr: &CertificateSigningRequest) -> Vec<String> {
    let mut u = csr.spec.usages.clone().unwrap_or_default();
    u.sort();
    u.dedup();
    u
}

fn usages_are(csr: &CertificateSigningRequest, options: &[&[&str]]) -> bool {
    let u = usages(csr);
    options.iter().any(|o| {
        let mut o: Vec<String> = o.iter().map(|s| (*s).to_owned()).collect();
        o.sort();
        o == u
    })
}

const NODE_PREFIX: &str = "system:node:";

/// Upstream's `ValidateKubeletClientCSR`.
pub fn validate_kubelet_client(
    req: &Request,
    csr: &CertificateSigningRequest,
) -> Result<(), String> {
    if req.organizations != ["system:nodes"] {
        return Err("subject organization is not system:nodes".into());
    }
    if !req.common_name.starts_with(NODE_PREFIX) {
        return Err("subject common name does not begin with system:node:".into());
    }
    if !req.dns_names.is_empty() {
        return Err("DNS subjectAltNames are not allowed".into());
    }
    if !req.emails.is_empty() {
        return Err("Email subjectAltNames are not allowed".into());
    }
    if !req.ip_addresses.is_empty() {
        return Err("IP subjectAltNames are not allowed".into());
    }
    if !req.uris.is_empty() {
        return Err("URI subjectAltNames are not allowed".into());
    }
    if !usages_are(
        csr,
        &[
            &["digital signature", "client auth"],
            &["key encipherment", "digital signature", "client auth"],
        ],
    ) {
        return Err("usages did not match [digital signature client auth]".into());
    }
    Ok(())
}

/// Upstream's `ValidateKubeletServingCSR`.
pub fn validate_kubelet_serving(
    req: &Request,
    csr: &CertificateSigningRequest,
) -> Result<(), String> {
    if req.organizations != ["system:nodes"] {
        return Err("subject organization is not system:nodes".into());
    }
    if !req.common_name.starts_with(NODE_PREFIX) {
        return Err("subject common name does not begin with system:node:".into());
    }
    if req.dns_names.is_empty() && req.ip_addresses.is_empty() {
        return Err("DNS or IP subjectAltName is required".into());
    }
    if !req.emails.is_empty() {
        return Err("Email subjectAltNames are not allowed".into());
    }
    if !req.uris.is_empty() {
        return Err("URI subjectAltNames are not allowed".into());
    }
    if !usages_are(
        csr,
        &[
            &["digital signature", "server auth"],
            &["key encipherment", "digital signature", "server auth"],
        ],
    ) {
        return Err("usages did not match [digital signature server auth]".into());
    }
    Ok(())
}

/// The kube-apiserver-client signer's check: only client usages.
pub fn validate_apiserver_client(csr: &CertificateSigningRequest) -> Result<(), String> {
    let u = usages(csr);
    if !u.iter().any(|x| x == "client auth") {
        return Err("usages must include client auth".into());
    }
    for x in &u {
        if !["digital signature", "key encipherment", "client auth"].contains(&x.as_str()) {
            return Err(format!("invalid usage for client certificate: {x}"));
        }
    }
    Ok(())
}
