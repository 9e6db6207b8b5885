//! Request-header authentication (upstream's `--requestheader-*`): a client certificate
//! issued by the front-proxy CA, with a common name among the allowed names, vouches
//! for the user named in `X-Remote-User`, `X-Remote-Uid`, `X-Remote-Group` and
//! `X-Remote-Extra-<key>`. Such a certificate never names a user of its own.

use std::collections::BTreeMap;

use axum::http::HeaderMap;

use crate::auth::UserInfo;

/// The proxy client names this server accepts request headers from.
pub const ALLOWED_NAMES: &[&str] = &[rkube_pki::front_proxy::FRONT_PROXY_CLIENT_NAME];
pub const USERNAME_HEADER: &str = "X-Remote-User";
pub const UID_HEADER: &str = "X-Remote-Uid";
pub const GROUP_HEADER: &str = "X-Remote-Group";
pub const EXTRA_PREFIX: &str = "X-Remote-Extra-";

/// What a client certificate means for request-header authentication.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not issued by the front-proxy CA: the certificate's own identity applies.
    NotFrontProxy,
    /// Issued by the front-proxy CA but not usable (name not allowed, or no user
    /// header): the request has no certificate identity.
    NoUser,
    /// The user the headers name.
    User(UserInfo),
}

/// Decides request-header authentication for a verified client certificate `leaf`.
pub fn authenticate(front_proxy_ca: &[u8], leaf: &[u8], headers: &HeaderMap) -> Outcome {
    let Some(common_name) = rkube_pki::front_proxy::issued_by(front_proxy_ca, leaf) else {
        return Outcome::NotFrontProxy;
    };
    if !ALLOWED_NAMES.contains(&common_name.as_str()) {
        tracing::info!(
            common_name,
            "request-header client certificate name is not allowed"
        );
        return Outcome::NoUser;
    }
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect()
    };
    let Some(name) = values(USERNAME_HEADER).into_iter().find(|n| !n.is_empty()) else {
        return Outcome::NoUser;
    };
    let prefix = EXTRA_PREFIX.to_ascii_lowercase();
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (header, value) in headers {
        if let (Some(key), Ok(value)) = (header.as_str().strip_prefix(&prefix), value.to_str()) {
            extra
                .entry(unescape(key).to_ascii_lowercase())
                .or_default()
                .push(value.to_owned());
        }
    }
    let user = UserInfo {
        name,
        uid: values(UID_HEADER).into_iter().next().unwrap_or_default(),
        groups: values(GROUP_HEADER),
        extra,
    };
    Outcome::User(user.authenticated())
}

/// Percent-decoding of extra keys in header names.
fn unescape(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            let hex = [bytes[i + 1], bytes[i + 2]];
            let hex = std::str::from_utf8(&hex).unwrap_or("00");
            out.push(u8::from_str_radix(hex, 16).unwrap_or(0));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_keys_unescape() {
        assert_eq!(unescape("example.com%2Fscopes%20x"), "example.com/scopes x");
        assert_eq!(unescape("plain"), "plain");
        assert_eq!(unescape("bad%zz"), "bad%zz");
        assert_eq!(unescape("end%2"), "end%2");
    }
}
