//! Compact JSON Web Tokens signed with ES256 (ECDSA P-256, SHA-256): the encoding of
//! service-account tokens. Signing and signature checks only; what the claims mean is
//! [`crate::service_account`]'s business.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, UnparsedPublicKey};
use serde_json::{json, Value};

/// The only signing algorithm rkube issues and accepts.
pub const ALGORITHM: &str = "ES256";

/// The DER prefix of a P-256 SubjectPublicKeyInfo; the 65-byte uncompressed point follows.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Why a token was not accepted as a JWT signed by our key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three dot-separated base64url parts with JSON header and payload.
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    /// The header names an algorithm other than ES256.
    #[error("unexpected signing algorithm {0:?}")]
    Algorithm(String),
    /// The signature does not verify with the key.
    #[error("invalid signature")]
    Signature,
    /// Signing failed (the system random source failed).
    #[error("signing failed")]
    SigningFailed,
}

/// An ES256 signing key and the key id upstream derives from its public key.
pub struct Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    verifier: Verifier,
}

impl Signer {
    /// A signer from a PKCS#8 DER P-256 private key (with its public key, as ring and
    /// rcgen write them).
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, String> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|e| format!("not a PKCS#8 ECDSA P-256 key: {e}"))?;
        let verifier = Verifier::from_point(key.public_key().as_ref())?;
        Ok(Self { key, rng, verifier })
    }

    /// The public half.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Signs `claims` (a JSON object) into a compact JWS with header
    /// `{"alg":"ES256","kid":<key id>}`.
    pub fn sign(&self, claims: &Value) -> Result<String, JwtError> {
        let header = json!({"alg": ALGORITHM, "kid": self.verifier.key_id()});
        let mut token = B64URL.encode(header.to_string());
        token.push('.');
        token.push_str(&B64URL.encode(claims.to_string()));
        let sig = self
            .key
            .sign(&self.rng, token.as_bytes())
            .map_err(|_| JwtError::SigningFailed)?;
        token.push('.');
        token.push_str(&B64URL.encode(sig.as_ref()));
        Ok(token)
    }
}

/// An ES256 public key: verifies signatures and publishes itself as a JWK.
#[derive(Clone, Debug)]
pub struct Verifier {
    /// The uncompressed point `04 || x || y`.
    point: Vec<u8>,
    key_id: String,
}

impl Verifier {
    /// A verifier from an uncompressed P-256 point (65 bytes).
    pub fn from_point(point: &[u8]) -> Result<Self, String> {
        if point.len() != 65 || point[0] != 4 {
            return Err("not an uncompressed P-256 public key".into());
        }
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(point);
        // Upstream's key id: unpadded base64url of the SHA-256 of the PKIX DER public key.
        let key_id = B64URL.encode(ring::digest::digest(&ring::digest::SHA256, &spki));
        Ok(Self {
            point: point.to_vec(),
            key_id,
        })
    }

    /// A verifier from a PKIX (SubjectPublicKeyInfo) DER P-256 public key.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, String> {
        der.strip_prefix(&P256_SPKI_PREFIX[..])
            .ok_or_else(|| "not a P-256 SubjectPublicKeyInfo".to_owned())
            .and_then(Self::from_point)
    }

    /// The key id (`kid`) tokens signed by this key carry.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The key as a JSON Web Key, as `/openid/v1/jwks` lists it.
    pub fn jwk(&self) -> Value {
        json!({
            "use": "sig",
            "kty": "EC",
            "kid": self.key_id,
            "crv": "P-256",
            "alg": ALGORITHM,
            "x": B64URL.encode(&self.point[1..33]),
            "y": B64URL.encode(&self.point[33..65]),
        })
    }

    /// Checks `token`'s signature and returns its header and payload. Claims are not
    /// looked at.
    pub fn verify(&self, token: &str) -> Result<(Value, Value), JwtError> {
        let (header, payload, sig) = split(token)?;
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
        if alg != ALGORITHM {
            return Err(JwtError::Algorithm(alg.to_owned()));
        }
        let signed_len = token.rfind('.').expect("split found three parts");
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &self.point)
            .verify(&token.as_bytes()[..signed_len], &sig)
            .map_err(|_| JwtError::Signature)?;
        Ok((header, payload))
    }
}

/// The unverified payload of a compact JWT, for routing a token to the authenticator
/// that can check it (never for trusting it).
pub fn unverified_payload(token: &str) -> Result<Value, JwtError> {
    split(token).map(|(_, payload, _)| payload)
}

fn split(token: &str) -> Result<(Value, Value, Vec<u8>), JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("want three dot-separated parts"));
    };
    let json_part = |part: &str| -> Result<Value, JwtError> {
        let bytes = B64URL
            .decode(part)
            .map_err(|_| JwtError::Malformed("a part is not base64url"))?;
        match serde_json::from_slice(&bytes) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(JwtError::Malformed("a part is not a JSON object")),
        }
    };
    let header = json_part(h)?;
    let payload = json_part(p)?;
    let sig = B64URL
        .decode(s)
        .map_err(|_| JwtError::Malformed("the signature is not base64url"))?;
    Ok((header, payload, sig))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn signer() -> Signer {
        let rng = SystemRandom::new();
        let der = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
        Signer::from_pkcs8(der.as_ref()).unwrap()
    }

    #[test]
    fn signs_and_verifies() {
        let s = signer();
        let token = s.sign(&json!({"sub": "me", "n": 1})).unwrap();
        let (header, payload) = s.verifier().verify(&token).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], s.verifier().key_id());
        assert_eq!(payload, json!({"sub": "me", "n": 1}));
        assert_eq!(unverified_payload(&token).unwrap()["sub"], "me");
    }

    #[test]
    fn rejects_other_keys_and_tampering() {
        let (a, b) = (signer(), signer());
        let token = a.sign(&json!({"sub": "me"})).unwrap();
        assert_eq!(b.verifier().verify(&token), Err(JwtError::Signature));
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            B64URL.encode(r#"{"sub":"admin"}"#),
            parts[2]
        );
        assert_eq!(a.verifier().verify(&forged), Err(JwtError::Signature));
        let none = format!("{}.{}.", B64URL.encode(r#"{"alg":"none"}"#), parts[1]);
        assert_eq!(
            a.verifier().verify(&none),
            Err(JwtError::Algorithm("none".into()))
        );
        for bad in ["", "a.b", "a.b.c.d", "!!.e30.e30", "e30.W10.AA"] {
            assert!(matches!(
                a.verifier().verify(bad),
                Err(JwtError::Malformed(_))
            ));
        }
    }

    #[test]
    fn jwk_and_key_id_are_upstreams() {
        let s = signer();
        let jwk = s.verifier().jwk();
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(jwk["alg"], "ES256");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(B64URL.decode(jwk["x"].as_str().unwrap()).unwrap().len(), 32);
        // 32 bytes of SHA-256, unpadded base64url.
        assert_eq!(s.verifier().key_id().len(), 43);
        let again = Verifier::from_point(&s.verifier().point).unwrap();
        assert_eq!(again.key_id(), s.verifier().key_id());
    }

    proptest! {
        #[test]
        fn verifying_arbitrary_input_never_panics(token in ".{0,300}") {
            let s = Verifier::from_point(&[4; 65]).unwrap();
            let _ = s.verify(&token);
            let _ = unverified_payload(&token);
        }

        #[test]
        fn verifying_token_shaped_input_never_panics(
            h in "[A-Za-z0-9_-]{0,60}", p in "[A-Za-z0-9_-]{0,60}", sig in "[A-Za-z0-9_-]{0,100}"
        ) {
            let s = Verifier::from_point(&[4; 65]).unwrap();
            let _ = s.verify(&format!("{h}.{p}.{sig}"));
        }
    }
}
