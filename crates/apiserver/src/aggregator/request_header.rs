//! Request-header authentication (upstream's `--requestheader-*`): a client certificate
//! issued by the front-proxy CA, with a common name among the allowed names, vouches
//! for the user named in `X-Remote-User`, `X-Remote-Uid`, `X-Remote-Group` and
//! `X-Remote-Extra-<key>`. Such a certificate never names a user of its own.

use std::collections::BTreeMap;
use std::time::SystemTime;

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

/// A client certificate the front-proxy CA issued: its common name and validity. The
/// chain is checked once per connection ([`front_proxy_cert`]); the validity on every
/// request, as for any client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontProxyCert {
    pub common_name: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

/// Whether the front-proxy CA (`front_proxy_ca`, DER) issued `leaf` (and it is valid now).
pub fn front_proxy_cert(front_proxy_ca: &[u8], leaf: &[u8]) -> Option<FrontProxyCert> {
    let common_name = rkube_pki::front_proxy::issued_by(front_proxy_ca, leaf)?;
    let (not_before, not_after) = rkube_pki::identity::validity_of(leaf)?;
    Some(FrontProxyCert {
        common_name,
        not_before,
        not_after,
    })
}

/// Decides request-header authentication for a verified client certificate, given
/// what [`front_proxy_cert`] found for it.
pub fn authenticate(cert: Option<&FrontProxyCert>, headers: &HeaderMap) -> Outcome {
    let Some(cert) = cert else {
        return Outcome::NotFrontProxy;
    };
    // Expired since the connection was checked: no longer the front proxy's (and its
    // own identity fails the same validity check).
    if rkube_pki::identity::validity_error(cert.not_before, cert.not_after, SystemTime::now())
        .is_some()
    {
        return Outcome::NotFrontProxy;
    }
    let common_name = &cert.common_name;
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
