//! Detached JWS (RFC 7515 appendix F) with HS256, as upstream's
//! `cluster-bootstrap/token/jws`: the protected header is exactly
//! `{"alg":"HS256","kid":"<token id>"}`, the key is the token secret (zero-padded to 32
//! bytes), and the payload part is left empty: `<header>..<signature>`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// The detached signature of `content` with token `id`/`secret`.
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

/// Whether `signature` is the detached signature of `content` with the token.
pub fn is_valid(signature: &str, content: &str, id: &str, secret: &str) -> bool {
    detached_signature(content, id, secret) == signature
}

#[cfg(test)]
mod tests {
    use super::*;

    // Upstream's test vectors (jws_test.go).
    const CONTENT: &str = "Hello from the other side. I must have called a thousand times.";
    const SECRET: &str = "my voice is my passcode";
    const ID: &str = "joshua";

    #[test]
    fn upstream_vectors() {
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
        assert!(is_valid(&sig, CONTENT, ID, SECRET));
        assert!(!is_valid(&format!("{sig}foo"), CONTENT, ID, SECRET));
    }
}
