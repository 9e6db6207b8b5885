//! Bootstrap tokens and what a node joining with one needs, without IO (upstream
//! `k8s.io/cluster-bootstrap` and kubeadm's `pubkeypin`): the `<id>.<secret>` token
//! string, the detached JWS that signs `cluster-info`, the `sha256:` pin of a CA's public
//! key, and the kubelet's client certificate request with upstream's digested name.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Upstream's `BootstrapTokenPattern`: what a token string must look like.
pub const TOKEN_PATTERN: &str = r"^([a-z0-9]{6})\.([a-z0-9]{16})$";
/// The group kubeadm's tokens add for joining nodes (`auth-extra-groups`), which the
/// join RBAC grants CSR creation and auto-approval.
pub const DEFAULT_NODE_TOKEN_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
/// The signer of kubelet client certificates.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The usages the kubelet asks for on its client certificate (upstream's, in order).
pub const KUBELET_CLIENT_USAGES: [&str; 3] =
    ["digital signature", "key encipherment", "client auth"];

/// Errors of this module, each saying what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A token string that is not `<6 chars>.<16 chars>` of `[a-z0-9]`.
    #[error("the bootstrap token {0:?} was not of the form {TOKEN_PATTERN:?}")]
    TokenMalformed(String),
    /// A CA pin that is not `sha256:<64 hex digits>`.
    #[error("invalid discovery token CA certificate hash {0:?}: want sha256:<hex SHA-256 of the CA's Subject Public Key Info>")]
    PinMalformed(String),
    /// No certificate could be read from the PEM given.
    #[error("no certificate in the CA PEM: {0}")]
    CaUnreadable(String),
    /// None of the CA's public keys matches a pin.
    #[error("none of the public keys {0:?} are pinned")]
    PinMismatch(Vec<String>),
    /// The key or request could not be made.
    #[error("cannot make the certificate request: {0}")]
    RequestFailed(#[source] rcgen::Error),
}

/// A result whose error is this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A bootstrap token: `<id>.<secret>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// The public part, `[a-z0-9]{6}`; names the Secret `bootstrap-token-<id>`.
    pub id: String,
    /// The secret part, `[a-z0-9]{16}`.
    pub secret: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "Token({}.<redacted>)", self.id)
    }
}

fn lower_alnum(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl Token {
    /// Parses `<id>.<secret>` with upstream's message for anything else.
    pub fn parse(s: &str) -> Result<Token> {
        match s.split_once('.') {
            Some((id, secret)) if lower_alnum(id, 6) && lower_alnum(secret, 16) => Ok(Token {
                id: id.into(),
                secret: secret.into(),
            }),
            _ => Err(Error::TokenMalformed(s.into())),
        }
    }

    /// A new random token (kubeadm's alphabet: lowercase letters and digits).
    pub fn generate() -> Token {
        use rand::Rng as _;
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rng();
        let mut pick = |n: usize| -> String {
            (0..n)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect()
        };
        Token {
            id: pick(6),
            secret: pick(16),
        }
    }

    /// `<id>.<secret>`, what the agent is given.
    pub fn expose(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }

    /// The name of the token's Secret in `kube-system`.
    pub fn secret_name(&self) -> String {
        format!("bootstrap-token-{}", self.id)
    }
}

/// The detached JWS (RFC 7515 appendix F, HS256) of `content` with token `id`/`secret`,
/// as upstream's `cluster-bootstrap/token/jws`: the protected header is exactly
/// `{"alg":"HS256","kid":"<id>"}`, the key is the secret zero-padded to 32 bytes, and the
/// payload part is left empty: `<header>..<signature>`.
pub fn detached_signature(content: &str, id: &str, secret: &str) -> String {
    let header = serde_json::json!({"alg": "HS256", "kid": id}).to_string();
    let header = URL_SAFE_NO_PAD.encode(header);
    let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(content));
    let mut key = secret.as_bytes().to_vec();
    if key.len() < 32 {
        key.resize(32, 0);
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let tag = ring::hmac::sign(&key, signing_input.as_bytes());
    format!("{header}..{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Whether `signature` is the detached signature of `content` with the token (compared in
/// constant time).
pub fn signature_is_valid(signature: &str, content: &str, id: &str, secret: &str) -> bool {
    let want = detached_signature(content, id, secret);
    // Constant time over the bytes: no early exit on the first difference.
    want.len() == signature.len()
        && want
            .bytes()
            .zip(signature.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The certificates of a PEM bundle, as DER.
pub fn certificates_der(pem: &str) -> Result<Vec<Vec<u8>>> {
    use rustls_pki_types::pem::PemObject as _;
    let certs: Vec<Vec<u8>> = rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.map(|c| c.as_ref().to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| Error::CaUnreadable(e.to_string()))?;
    if certs.is_empty() {
        return Err(Error::CaUnreadable("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// Whether `pem` holds certificates and none has expired (upstream's
/// `isClientConfigStillValid` check of a kubelet's client certificate).
pub fn certificates_unexpired(pem: &str) -> bool {
    use x509_parser::prelude::FromDer as _;
    let Ok(ders) = certificates_der(pem) else {
        return false;
    };
    let now = time::OffsetDateTime::now_utc();
    ders.iter().all(|der| {
        x509_parser::certificate::X509Certificate::from_der(der)
            .is_ok_and(|(_, c)| c.validity().not_after.to_datetime() > now)
    })
}

/// A certificate's validity and serial number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validity {
    /// `notBefore`, seconds since the Unix epoch.
    pub not_before: i64,
    /// `notAfter`, seconds since the Unix epoch.
    pub not_after: i64,
    /// The serial number, lowercase hex.
    pub serial: String,
}

/// The validity of the first certificate of `pem` (the leaf of a client certificate
/// chain).
pub fn certificate_validity(pem: &str) -> Result<Validity> {
    use x509_parser::prelude::FromDer as _;
    let ders = certificates_der(pem)?;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&ders[0])
        .map_err(|e| Error::CaUnreadable(e.to_string()))?;
    let v = cert.validity();
    Ok(Validity {
        not_before: v.not_before.timestamp(),
        not_after: v.not_after.timestamp(),
        serial: cert.raw_serial_as_string().replace(':', ""),
    })
}

/// kubeadm's CA pin of a certificate: `sha256:` and the hex SHA-256 of its
/// SubjectPublicKeyInfo.
pub fn ca_pin(cert_der: &[u8]) -> Result<String> {
    use x509_parser::prelude::FromDer as _;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(cert_der)
        .map_err(|e| Error::CaUnreadable(e.to_string()))?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.public_key().raw);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("sha256:{hex}"))
}

/// Checks a pin's form (kubeadm's `pubkeypin.Set.Allow`).
pub fn check_pin_form(pin: &str) -> Result<()> {
    match pin.split_once(':') {
        Some(("sha256", hex)) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(())
        }
        _ => Err(Error::PinMalformed(pin.into())),
    }
}

/// Whether any certificate of the CA bundle `ca_pem` has a pinned public key
/// (kubeadm's `CheckAny`); every pin must be well formed.
pub fn check_pins(ca_pem: &str, pins: &[String]) -> Result<()> {
    for pin in pins {
        check_pin_form(pin)?;
    }
    let mut seen = Vec::new();
    for der in certificates_der(ca_pem)? {
        let pin = ca_pin(&der)?;
        if pins.iter().any(|p| p.eq_ignore_ascii_case(&pin)) {
            return Ok(());
        }
        seen.push(pin);
    }
    Err(Error::PinMismatch(seen))
}

/// A kubelet's client certificate request: its key, the PKCS#10 request and the CSR
/// object's name.
pub struct NodeCsr {
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
    /// The request, PEM (`CERTIFICATE REQUEST`).
    pub request_pem: String,
    /// Upstream's digested name: `node-csr-` and the base64url SHA-512/256 of the public
    /// key, subject and usages — the same key asks again under the same name.
    pub name: String,
}

/// A request for `system:node:<node_name>` in `system:nodes` with `key_pem` (a new
/// P-256 key when `None`).
pub fn node_csr(node_name: &str, key_pem: Option<&str>) -> Result<NodeCsr> {
    let key = match key_pem {
        Some(pem) => rcgen::KeyPair::from_pem(pem).map_err(Error::RequestFailed)?,
        None => rcgen::KeyPair::generate().map_err(Error::RequestFailed)?,
    };
    let common_name = format!("system:node:{node_name}");
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationName, "system:nodes");
    dn.push(rcgen::DnType::CommonName, common_name.clone());
    params.distinguished_name = dn;
    let request = params
        .serialize_request(&key)
        .map_err(Error::RequestFailed)?;
    let request_pem = request.pem().map_err(Error::RequestFailed)?;
    let name = digested_name(
        &rcgen::PublicKeyData::subject_public_key_info(&key),
        &common_name,
        &["system:nodes"],
        &KUBELET_CLIENT_USAGES,
    );
    Ok(NodeCsr {
        key_pem: key.serialize_pem(),
        request_pem,
        name,
    })
}

/// Upstream's `digestedName`: each part base64url-encoded and followed by `|`, hashed
/// with SHA-512/256.
fn digested_name(
    public_key_der: &[u8],
    common_name: &str,
    orgs: &[&str],
    usages: &[&str],
) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA512_256);
    let mut write = |data: &[u8]| {
        ctx.update(URL_SAFE_NO_PAD.encode(data).as_bytes());
        ctx.update(b"|");
    };
    write(public_key_der);
    write(common_name.as_bytes());
    for o in orgs {
        write(o.as_bytes());
    }
    for u in usages {
        write(u.as_bytes());
    }
    format!("node-csr-{}", URL_SAFE_NO_PAD.encode(ctx.finish().as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Upstream's test vectors (cluster-bootstrap jws_test.go).
    const CONTENT: &str = "Hello from the other side. I must have called a thousand times.";
    const SECRET: &str = "my voice is my passcode";
    const ID: &str = "joshua";

    #[test]
    fn jws_matches_upstream_vectors() {
        assert_eq!(
            detached_signature(CONTENT, ID, SECRET),
            "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..VShe2taLd-YTrmWuRkcL_8QTNDHYxQIEBsAYYiIj1_8"
        );
        assert_eq!(
            detached_signature("", ID, SECRET),
            "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..7Ui1ALizW4jXphVUB7xUqC9vLYLL9RZeOFfVLoB7Tgk"
        );
        assert_eq!(
            detached_signature(CONTENT, ID, ""),
            "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..UfkqvDGiIFxrMnFseDj9LYJOLNrvjW8aHhF71mvvAs8"
        );
        let sig = detached_signature(CONTENT, ID, SECRET);
        assert!(signature_is_valid(&sig, CONTENT, ID, SECRET));
        assert!(!signature_is_valid(
            &format!("{sig}foo"),
            CONTENT,
            ID,
            SECRET
        ));
        assert!(!signature_is_valid(&sig, CONTENT, ID, "another secret"));
    }

    #[test]
    fn tokens_parse_as_upstream() {
        let t = Token::parse("abcdef.0123456789abcdef").unwrap();
        assert_eq!(
            (t.id.as_str(), t.secret.as_str()),
            ("abcdef", "0123456789abcdef")
        );
        assert_eq!(t.secret_name(), "bootstrap-token-abcdef");
        assert_eq!(format!("{t:?}"), "Token(abcdef.<redacted>)");
        for bad in [
            "",
            "abcdef",
            "abcdef.0123456789abcde",
            "ABCDEF.0123456789abcdef",
            "abcdef:0123456789abcdef",
            "abcdefg.0123456789abcdef",
        ] {
            let e = Token::parse(bad).unwrap_err().to_string();
            assert_eq!(
                e,
                format!(
                    "the bootstrap token {bad:?} was not of the form \"^([a-z0-9]{{6}})\\\\.([a-z0-9]{{16}})$\""
                )
            );
        }
        let g = Token::generate();
        assert_eq!(Token::parse(&g.expose()).unwrap(), g);
        assert_ne!(Token::generate(), g);
    }

    #[test]
    fn ca_pins_match_openssl_style_spki_hashes() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["ca".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let pin = ca_pin(cert.der()).unwrap();
        // The SPKI is what rcgen calls the public key DER.
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            &rcgen::PublicKeyData::subject_public_key_info(&key),
        );
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(pin, format!("sha256:{hex}"));
        let pem = cert.pem();
        check_pins(&pem, std::slice::from_ref(&pin)).unwrap();
        check_pins(&pem, &[pin.to_uppercase().replace("SHA256", "sha256")]).unwrap();
        let other = format!("sha256:{}", "0".repeat(64));
        let e = check_pins(&pem, std::slice::from_ref(&other)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("none of the public keys [{pin:?}] are pinned")
        );
        assert!(matches!(
            check_pins(&pem, &["md5:00".into()]),
            Err(Error::PinMalformed(_))
        ));
    }

    #[test]
    fn expired_certificates_are_seen() {
        let cert = |days: i64| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
            params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(60);
            params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
            params.self_signed(&key).unwrap().pem()
        };
        assert!(certificates_unexpired(&cert(30)));
        assert!(!certificates_unexpired(&cert(-1)));
        assert!(!certificates_unexpired(&format!(
            "{}{}",
            cert(30),
            cert(-1)
        )));
        assert!(!certificates_unexpired(""));
        let v = certificate_validity(&cert(30)).unwrap();
        assert!(v.not_after > v.not_before, "{v:?}");
        assert!(!v.serial.is_empty() && !v.serial.contains(':'), "{v:?}");
        assert!(certificate_validity("").is_err());
    }

    #[test]
    fn node_csrs_keep_their_name_for_the_same_key() {
        let a = node_csr("n1", None).unwrap();
        assert!(a
            .request_pem
            .starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        assert!(a.name.starts_with("node-csr-"));
        let again = node_csr("n1", Some(&a.key_pem)).unwrap();
        assert_eq!(again.name, a.name);
        assert_ne!(node_csr("n2", Some(&a.key_pem)).unwrap().name, a.name);
        assert_ne!(node_csr("n1", None).unwrap().name, a.name);
        // The subject is what the approver wants.
        use x509_parser::prelude::FromDer as _;
        let (_, pem) = x509_parser::pem::parse_x509_pem(a.request_pem.as_bytes()).unwrap();
        let (_, req) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&pem.contents)
                .unwrap();
        let subject = req.certification_request_info.subject.to_string();
        assert!(subject.contains("CN=system:node:n1"), "{subject}");
        assert!(subject.contains("O=system:nodes"), "{subject}");
    }
}
