//! Bootstrap tokens: `<id>.<secret>` bearer tokens backed by Secrets of type
//! `bootstrap.kubernetes.io/token` named `bootstrap-token-<id>` in `kube-system`, as
//! upstream's bootstrap authenticator reads them. Every way a token can fail (no such
//! Secret, wrong secret, expired, not for authentication) looks the same to the client.

use base64::Engine as _;
use rkube_store::Store;
use serde_json::Value;

use super::service_account::get_object;
use super::UserInfo;
use crate::meta;

/// The Secret type of bootstrap tokens.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The namespace bootstrap token Secrets live in.
pub const NAMESPACE: &str = "kube-system";
/// The group every bootstrap token user is in.
pub const GROUP: &str = "system:bootstrappers";
/// Extra groups must start with this.
const EXTRA_GROUP_PREFIX: &str = "system:bootstrappers:";

/// What the bootstrap authenticator made of a token.
#[derive(Debug)]
pub enum Outcome {
    Authenticated(UserInfo),
    NotMine,
}

/// Splits `<id>.<secret>` (6 and 16 characters of `[a-z0-9]`).
pub fn parse_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, len| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

/// Authenticates a bootstrap token against its Secret.
pub async fn authenticate(store: &dyn Store, token: &str) -> Outcome {
    let Some((id, secret)) = parse_token(token) else {
        return Outcome::NotMine;
    };
    let name = format!("bootstrap-token-{id}");
    let obj = match get_object(store, "secrets", Some(NAMESPACE), &name).await {
        Ok(Some(obj)) => obj,
        Ok(None) => {
            tracing::debug!(secret = name, "no bootstrap token secret");
            return Outcome::NotMine;
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot read a bootstrap token secret");
            return Outcome::NotMine;
        }
    };
    match user_from_secret(&obj, id, secret, meta::now_secs()) {
        Ok(user) => Outcome::Authenticated(user),
        Err(why) => {
            tracing::debug!(secret = name, why, "bootstrap token refused");
            Outcome::NotMine
        }
    }
}

/// The user a bootstrap token Secret grants to `<id>.<secret>` at `now`, or why not.
pub fn user_from_secret(
    obj: &Value,
    id: &str,
    secret: &str,
    now: i64,
) -> Result<UserInfo, &'static str> {
    if obj.pointer("/metadata/deletionTimestamp").is_some() {
        return Err("the secret is being deleted");
    }
    if obj.get("type").and_then(Value::as_str) != Some(SECRET_TYPE) {
        return Err("the secret is not of type bootstrap.kubernetes.io/token");
    }
    let data = |key: &str| -> Option<String> {
        let b64 = obj.pointer(&format!("/data/{key}"))?.as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        String::from_utf8(bytes).ok()
    };
    let stored = data("token-secret").unwrap_or_default();
    if !constant_time_eq(stored.as_bytes(), secret.as_bytes()) {
        return Err("the token secret does not match");
    }
    if data("token-id").as_deref() != Some(id) {
        return Err("the token id does not match");
    }
    if let Some(expiration) = data("expiration") {
        match meta::parse_rfc3339(&expiration) {
            Some(t) if t > now => {}
            Some(_) => return Err("the token has expired"),
            None => return Err("the expiration is not RFC 3339"),
        }
    }
    if data("usage-bootstrap-authentication").as_deref() != Some("true") {
        return Err("the token is not for authentication");
    }
    let mut groups = vec![GROUP.to_owned()];
    for g in data("auth-extra-groups")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
    {
        if !g.starts_with(EXTRA_GROUP_PREFIX) {
            return Err("an extra group does not start with system:bootstrappers:");
        }
        if !groups.iter().any(|have| have == g) {
            groups.push(g.to_owned());
        }
    }
    Ok(UserInfo::new(format!("system:bootstrap:{id}"), groups).authenticated())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn secret(extra: &[(&str, &str)]) -> Value {
        let mut data = json!({
            "token-id": b64("abcdef"),
            "token-secret": b64("0123456789abcdef"),
            "usage-bootstrap-authentication": b64("true"),
        });
        for (k, v) in extra {
            data[*k] = json!(b64(v));
        }
        json!({"type": SECRET_TYPE, "metadata": {"name": "bootstrap-token-abcdef"}, "data": data})
    }

    #[test]
    fn parses_tokens() {
        assert_eq!(
            parse_token("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        for bad in [
            "abcdef",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdef",
            "abcdef.0123456789abcdef0",
            "",
        ] {
            assert_eq!(parse_token(bad), None, "{bad}");
        }
    }

    #[test]
    fn secrets_decide() {
        let now = 1_700_000_000;
        let user = user_from_secret(
            &secret(&[(
                "auth-extra-groups",
                "system:bootstrappers:kubeadm:default-node-token",
            )]),
            "abcdef",
            "0123456789abcdef",
            now,
        )
        .unwrap();
        assert_eq!(user.name, "system:bootstrap:abcdef");
        assert_eq!(
            user.groups,
            [
                "system:bootstrappers",
                "system:bootstrappers:kubeadm:default-node-token",
                "system:authenticated"
            ]
        );
        let check = |s: Value, secret: &str| user_from_secret(&s, "abcdef", secret, now);
        assert!(check(secret(&[]), "0123456789abcdee").is_err());
        assert!(check(
            secret(&[("expiration", "2000-01-01T00:00:00Z")]),
            "0123456789abcdef"
        )
        .is_err());
        assert!(check(
            secret(&[("expiration", "2100-01-01T00:00:00Z")]),
            "0123456789abcdef"
        )
        .is_ok());
        assert!(check(
            secret(&[("usage-bootstrap-authentication", "false")]),
            "0123456789abcdef"
        )
        .is_err());
        assert!(check(
            secret(&[("auth-extra-groups", "system:masters")]),
            "0123456789abcdef"
        )
        .is_err());
        let mut opaque = secret(&[]);
        opaque["type"] = json!("Opaque");
        assert!(check(opaque, "0123456789abcdef").is_err());
    }

    proptest! {
        #[test]
        fn parsing_never_panics(token in ".{0,64}") {
            let _ = parse_token(&token);
        }
    }
}
