//! Detached JWS (RFC 7515 appendix F) with HS256, as upstream's
//! `cluster-bootstrap/token/jws`; the implementation is `rkube_pki::bootstrap`'s, shared
//! with the joining node that verifies it.

/// The detached signature of `content` with token `id`/`secret`.
pub fn detached_signature(content: &str, id: &str, secret: &str) -> String {
    rkube_pki::bootstrap::detached_signature(content, id, secret)
}

/// Whether `signature` is the detached signature of `content` with the token.
pub fn is_valid(signature: &str, content: &str, id: &str, secret: &str) -> bool {
    rkube_pki::bootstrap::signature_is_valid(signature, content, id, secret)
}
