//! Service-account tokens: the signing key kept in the PKI directory (`sa.key`, `sa.pub`)
//! and the claims upstream's tokens carry, with the checks that need no cluster state
//! (issuer, audience, expiry and not-before with upstream's leeway).

use std::path::Path;

use rcgen::{KeyPair, PublicKeyData, PKCS_ECDSA_P256_SHA256};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivatePkcs8KeyDer;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};
use crate::jwt::{Signer, Verifier};
use crate::material;

/// The service-account signing key's file name in the PKI directory (PKCS#8 PEM, 0600).
pub const SA_KEY_FILE: &str = "sa.key";
/// The service-account public key's file name in the PKI directory (PKIX PEM, 0644).
pub const SA_PUB_FILE: &str = "sa.pub";
/// The issuer of tokens minted by the token controller for legacy token Secrets.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
/// How far clocks may disagree when checking `exp`, `nbf` and `iat` (go-jose's default
/// leeway, which upstream uses).
pub const LEEWAY_SECONDS: i64 = 60;

/// The key that signs service-account tokens.
pub struct ServiceAccountKey {
    signer: Signer,
}

impl ServiceAccountKey {
    /// Loads `sa.key` from `dir`, creating it (and `sa.pub`) on first start. A key file
    /// that exists but cannot be read is an error naming it; the key is never replaced,
    /// since that would invalidate every token in the cluster.
    pub fn load_or_create(dir: &Path) -> Result<Self> {
        let key_path = dir.join(SA_KEY_FILE);
        let pub_path = dir.join(SA_PUB_FILE);
        let key = match material::read_optional(&key_path)? {
            Some(bytes) => material::read_key_pem(&key_path, &bytes)?.0,
            None => {
                let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
                    .map_err(Error::KeyGenerationFailed)?;
                material::write_key(&key_path, &key.serialize_pem())?;
                key
            }
        };
        if material::read_optional(&pub_path)?.is_none() {
            material::write_cert(&pub_path, &key.public_key_pem())?;
        }
        Self::from_pkcs8(&key.serialize_der()).map_err(|reason| Error::SigningKeyInvalid {
            path: key_path,
            reason,
        })
    }

    /// A key from PKCS#8 PEM text (tests and tools that sign tokens themselves).
    pub fn from_pem(pem: &str) -> std::result::Result<Self, String> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| e.to_string())?;
        Self::from_pkcs8(der.secret_pkcs8_der())
    }

    fn from_pkcs8(der: &[u8]) -> std::result::Result<Self, String> {
        Ok(Self {
            signer: Signer::from_pkcs8(der)?,
        })
    }

    /// A fresh key held only in memory (tests and benchmarks).
    pub fn generate() -> std::result::Result<Self, String> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
        debug_assert!(!key.subject_public_key_info().is_empty());
        Self::from_pkcs8(&key.serialize_der())
    }

    /// Signs tokens.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// Verifies tokens and publishes the key.
    pub fn verifier(&self) -> &Verifier {
        self.signer.verifier()
    }
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("kid", &self.verifier().key_id())
            .finish_non_exhaustive()
    }
}

/// A name and uid naming an object a token is tied to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// The object's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The object's uid.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// The `kubernetes.io` private claim of a bound token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    /// The service account's namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The service account.
    #[serde(default)]
    pub serviceaccount: ObjectRef,
    /// The pod the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    /// The secret the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectRef>,
    /// The node the token is bound to (or the bound pod's node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectRef>,
    /// After this time the token is reported stale (projected tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnafter: Option<i64>,
}

/// The claims of a bound service-account token (TokenRequest).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// Issuer.
    #[serde(default)]
    pub iss: String,
    /// Subject: `system:serviceaccount:<namespace>:<name>`.
    #[serde(default)]
    pub sub: String,
    /// Audiences (a JWT may carry one as a plain string).
    #[serde(default, deserialize_with = "string_or_list")]
    pub aud: Vec<String>,
    /// Expiry, seconds since the epoch.
    #[serde(default)]
    pub exp: i64,
    /// Issued at.
    #[serde(default)]
    pub iat: i64,
    /// Not before.
    #[serde(default)]
    pub nbf: i64,
    /// The token's unique id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
    /// What the token is for.
    #[serde(rename = "kubernetes.io", default)]
    pub kubernetes: KubernetesClaims,
}

fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

/// The claims of a legacy token, as the token controller writes into token Secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyClaims {
    /// Always [`LEGACY_ISSUER`].
    #[serde(default)]
    pub iss: String,
    /// Subject: `system:serviceaccount:<namespace>:<name>`.
    #[serde(default)]
    pub sub: String,
    /// The namespace.
    #[serde(rename = "kubernetes.io/serviceaccount/namespace", default)]
    pub namespace: String,
    /// The Secret holding the token.
    #[serde(rename = "kubernetes.io/serviceaccount/secret.name", default)]
    pub secret_name: String,
    /// The service account's name.
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.name", default)]
    pub service_account_name: String,
    /// The service account's uid.
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.uid", default)]
    pub service_account_uid: String,
}

/// Why claims were refused; the messages are upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// `iss` is not one this server accepts.
    #[error("token issuer {0:?} is invalid")]
    Issuer(String),
    /// No audience of the token is one the server (or the review) accepts.
    #[error("token audiences {} is invalid for the target audiences {}", go_quoted(.token), go_quoted(.target))]
    Audience {
        /// The token's audiences.
        token: Vec<String>,
        /// The accepted audiences.
        target: Vec<String>,
    },
    /// `exp` is in the past (beyond the leeway).
    #[error("service account token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("service account token is not valid yet")]
    NotValidYet,
    /// `iat` is in the future, or the claims are not well-formed.
    #[error(
        "service account token claims could not be validated due to unexpected validation error"
    )]
    Unexpected,
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_quoted(list: &[String]) -> String {
    let quoted: Vec<String> = list.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

impl TokenClaims {
    /// The username the token authenticates as.
    pub fn username(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.kubernetes.namespace, self.kubernetes.serviceaccount.name
        )
    }

    /// Checks the issuer, audiences and validity window at `now` (seconds since the
    /// epoch); returns the token's audiences that are among `accepted`.
    pub fn validate(
        &self,
        now: i64,
        issuers: &[String],
        accepted: &[String],
    ) -> std::result::Result<Vec<String>, ClaimError> {
        if !issuers.contains(&self.iss) {
            return Err(ClaimError::Issuer(self.iss.clone()));
        }
        let matched = audiences_matching(&self.aud, accepted)?;
        if self.kubernetes.namespace.is_empty() || self.kubernetes.serviceaccount.name.is_empty() {
            return Err(ClaimError::Unexpected);
        }
        validate_window(now, self.exp, self.nbf, self.iat)?;
        Ok(matched)
    }
}

/// The token audiences that are in `accepted`; none is an error (a token without
/// audiences is for the server's own audiences, as upstream treats legacy tokens).
pub fn audiences_matching(
    token: &[String],
    accepted: &[String],
) -> std::result::Result<Vec<String>, ClaimError> {
    if token.is_empty() {
        return Ok(accepted.to_vec());
    }
    let matched: Vec<String> = token
        .iter()
        .filter(|a| accepted.contains(a))
        .cloned()
        .collect();
    if matched.is_empty() && !accepted.is_empty() {
        return Err(ClaimError::Audience {
            token: token.to_vec(),
            target: accepted.to_vec(),
        });
    }
    Ok(matched)
}

/// Checks `exp`, `nbf` and `iat` at `now` with [`LEEWAY_SECONDS`]; a zero claim is absent.
pub fn validate_window(
    now: i64,
    exp: i64,
    nbf: i64,
    iat: i64,
) -> std::result::Result<(), ClaimError> {
    if exp != 0 && now - LEEWAY_SECONDS > exp {
        return Err(ClaimError::Expired);
    }
    if nbf != 0 && now + LEEWAY_SECONDS < nbf {
        return Err(ClaimError::NotValidYet);
    }
    if iat != 0 && now + LEEWAY_SECONDS < iat {
        return Err(ClaimError::Unexpected);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use serde_json::json;

    use super::*;

    #[test]
    fn key_is_created_once_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let a = ServiceAccountKey::load_or_create(dir.path()).unwrap();
        let b = ServiceAccountKey::load_or_create(dir.path()).unwrap();
        assert_eq!(a.verifier().key_id(), b.verifier().key_id());
        let mode = |f| {
            std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(SA_KEY_FILE), 0o600);
        assert_eq!(mode(SA_PUB_FILE), 0o644);
        let pem = std::fs::read_to_string(dir.path().join(SA_KEY_FILE)).unwrap();
        let c = ServiceAccountKey::from_pem(&pem).unwrap();
        let token = c.signer().sign(&json!({"x": 1})).unwrap();
        a.verifier().verify(&token).unwrap();
    }

    #[test]
    fn unreadable_key_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SA_KEY_FILE), "garbage").unwrap();
        assert!(ServiceAccountKey::load_or_create(dir.path()).is_err());
        assert_eq!(
            std::fs::read_to_string(dir.path().join(SA_KEY_FILE)).unwrap(),
            "garbage"
        );
    }

    fn claims() -> TokenClaims {
        TokenClaims {
            iss: "https://issuer".into(),
            sub: "system:serviceaccount:ns:sa".into(),
            aud: vec!["https://issuer".into()],
            exp: 2000,
            iat: 1000,
            nbf: 1000,
            jti: "j".into(),
            kubernetes: KubernetesClaims {
                namespace: "ns".into(),
                serviceaccount: ObjectRef {
                    name: "sa".into(),
                    uid: "u".into(),
                },
                ..Default::default()
            },
        }
    }

    #[test]
    fn claim_validation_table() {
        let iss = vec!["https://issuer".to_owned()];
        let auds = vec!["https://issuer".to_owned(), "api".to_owned()];
        type Edit = fn(&mut TokenClaims);
        let cases: &[(&str, i64, Edit, Result<(), ClaimError>)] = &[
            ("valid", 1500, |_| {}, Ok(())),
            ("expired", 2061, |_| {}, Err(ClaimError::Expired)),
            ("expired within leeway", 2060, |_| {}, Ok(())),
            ("not yet valid", 939, |_| {}, Err(ClaimError::NotValidYet)),
            ("nbf within leeway", 940, |_| {}, Ok(())),
            (
                "issued in the future",
                1500,
                |c| c.iat = 1600,
                Err(ClaimError::Unexpected),
            ),
            (
                "wrong issuer",
                1500,
                |c| c.iss = "evil".into(),
                Err(ClaimError::Issuer("evil".into())),
            ),
            (
                "wrong audience",
                1500,
                |c| c.aud = vec!["other".into()],
                Err(ClaimError::Audience {
                    token: vec!["other".into()],
                    target: vec!["https://issuer".into(), "api".into()],
                }),
            ),
            (
                "one of several audiences",
                1500,
                |c| c.aud = vec!["x".into(), "api".into()],
                Ok(()),
            ),
            ("no audience", 1500, |c| c.aud.clear(), Ok(())),
            (
                "no service account",
                1500,
                |c| c.kubernetes.serviceaccount.name.clear(),
                Err(ClaimError::Unexpected),
            ),
        ];
        for (name, now, edit, want) in cases {
            let mut c = claims();
            edit(&mut c);
            assert_eq!(
                c.validate(*now, &iss, &auds).map(|_| ()),
                *want,
                "case {name}"
            );
        }
        assert_eq!(
            ClaimError::Audience {
                token: vec!["other".into()],
                target: vec!["a".into(), "b".into()]
            }
            .to_string(),
            r#"token audiences ["other"] is invalid for the target audiences ["a" "b"]"#
        );
    }

    #[test]
    fn claims_round_trip_with_upstreams_names() {
        let mut c = claims();
        c.kubernetes.pod = Some(ObjectRef {
            name: "p".into(),
            uid: "pu".into(),
        });
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["kubernetes.io"]["serviceaccount"]["uid"], "u");
        assert_eq!(v["kubernetes.io"]["pod"]["name"], "p");
        assert!(v["kubernetes.io"].get("secret").is_none());
        let back: TokenClaims = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
        let one: TokenClaims = serde_json::from_value(json!({"aud": "x"})).unwrap();
        assert_eq!(one.aud, ["x"]);
    }
}
