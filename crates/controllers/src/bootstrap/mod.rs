//! Bootstrap tokens (upstream `k8s.io/cluster-bootstrap`): the token Secrets in
//! `kube-system`, the detached JWS that signs `cluster-info` with them, and the two
//! controllers that use them — the bootstrap signer and the token cleaner.

pub mod jws;
pub mod signer;
pub mod tokencleaner;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

/// The Secret type of bootstrap tokens.
pub const TOKEN_TYPE: &str = "bootstrap.kubernetes.io/token";
/// Bootstrap token Secrets live here.
pub const NAMESPACE: &str = "kube-system";
const NAME_PREFIX: &str = "bootstrap-token-";

/// A bootstrap token read from its Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    pub id: String,
    pub secret: String,
    /// `expiration`, if any (RFC 3339).
    pub expiration: Option<k8s_openapi::jiff::Timestamp>,
    /// `usage-bootstrap-signing: "true"`.
    pub signing: bool,
}

fn data<'a>(secret: &'a Secret, key: &str) -> Option<&'a str> {
    secret
        .data
        .as_ref()?
        .get(key)
        .and_then(|v| std::str::from_utf8(&v.0).ok())
}

fn lower_alnum(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The token a Secret holds, if it is a well-formed bootstrap token Secret (upstream
/// `ParseSecret`): type, name `bootstrap-token-<id>`, matching `token-id`, a 16-character
/// `token-secret`. An unparsable `expiration` makes it invalid.
pub fn parse(secret: &Secret) -> Option<BootstrapToken> {
    if secret.type_.as_deref() != Some(TOKEN_TYPE) {
        return None;
    }
    let id = data(secret, "token-id")?;
    if !lower_alnum(id, 6) || secret.name_any() != format!("{NAME_PREFIX}{id}") {
        return None;
    }
    let token_secret = data(secret, "token-secret")?;
    if !lower_alnum(token_secret, 16) {
        return None;
    }
    let expiration = match data(secret, "expiration") {
        Some(e) => Some(e.parse::<k8s_openapi::jiff::Timestamp>().ok()?),
        None => None,
    };
    Some(BootstrapToken {
        id: id.into(),
        secret: token_secret.into(),
        expiration,
        signing: data(secret, "usage-bootstrap-signing") == Some("true"),
    })
}

/// How long until the Secret's `expiration` (zero when past), `None` without one.
pub fn time_left(
    secret: &Secret,
    now: k8s_openapi::jiff::Timestamp,
) -> Option<std::time::Duration> {
    let e = data(secret, "expiration")?;
    let Ok(at) = e.parse::<k8s_openapi::jiff::Timestamp>() else {
        // Unparsable: treated as expired, as upstream's GetExpiration does.
        return Some(std::time::Duration::ZERO);
    };
    Some(std::time::Duration::try_from(at.duration_since(now)).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret(name: &str, data: serde_json::Value) -> Secret {
        use base64::Engine as _;
        let data: serde_json::Map<String, serde_json::Value> = data
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let b = base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap());
                (k.clone(), json!(b))
            })
            .collect();
        serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": "kube-system"},
            "type": TOKEN_TYPE, "data": data}),
        )
        .unwrap()
    }

    #[test]
    fn parses_like_upstream() {
        let ok = secret(
            "bootstrap-token-abcdef",
            json!({"token-id": "abcdef", "token-secret": "0123456789abcdef",
                   "usage-bootstrap-signing": "true", "expiration": "2030-01-01T00:00:00Z"}),
        );
        let t = parse(&ok).unwrap();
        assert_eq!(
            (t.id.as_str(), t.secret.as_str(), t.signing),
            ("abcdef", "0123456789abcdef", true)
        );
        let bad = [
            secret(
                "bootstrap-token-abcdeg",
                json!({"token-id": "abcdef", "token-secret": "0123456789abcdef"}),
            ),
            secret(
                "bootstrap-token-ABCDEF",
                json!({"token-id": "ABCDEF", "token-secret": "0123456789abcdef"}),
            ),
            secret(
                "bootstrap-token-abcdef",
                json!({"token-id": "abcdef", "token-secret": "short"}),
            ),
            secret(
                "bootstrap-token-abcdef",
                json!({"token-id": "abcdef", "token-secret": "0123456789abcdef", "expiration": "soon"}),
            ),
        ];
        for s in bad {
            assert!(parse(&s).is_none(), "{s:?}");
        }
        let now = "2029-12-31T23:59:00Z".parse().unwrap();
        assert_eq!(
            time_left(&ok, now),
            Some(std::time::Duration::from_secs(60))
        );
        let later = "2031-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(time_left(&ok, later), Some(std::time::Duration::ZERO));
    }
}
