//! Continue tokens: where a paginated list resumes, and at which revision.
//!
//! A token is base64url of `<revision>:<start key>`, where the start key is the last
//! returned key followed by a NUL byte (the smallest key after it).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::{Error, Result, Revision};

/// Encodes a token resuming after `last_key` at `revision`.
pub(crate) fn encode(revision: Revision, last_key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{revision}:{last_key}\0"))
}

/// Decodes a token into `(revision, start key)`, checking it belongs to `prefix`.
pub(crate) fn decode(token: &str, prefix: &str) -> Result<(Revision, String)> {
    let invalid = |reason: &str| Error::InvalidContinue {
        reason: reason.to_owned(),
    };
    let raw = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid("not base64url"))?;
    let raw = String::from_utf8(raw).map_err(|_| invalid("not UTF-8"))?;
    let (revision, start) = raw
        .split_once(':')
        .ok_or_else(|| invalid("missing revision"))?;
    let revision: Revision = revision.parse().map_err(|_| invalid("bad revision"))?;
    if revision <= 0 {
        return Err(invalid("bad revision"));
    }
    if !start.starts_with(prefix) {
        return Err(invalid("token was issued for another key range"));
    }
    Ok((revision, start.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = encode(42, "/registry/pods/ns/a");
        assert_eq!(
            decode(&t, "/registry/pods/").unwrap(),
            (42, "/registry/pods/ns/a\0".to_owned())
        );
    }

    #[test]
    fn rejects_foreign_tokens() {
        let t = encode(42, "/registry/pods/ns/a");
        assert!(matches!(
            decode(&t, "/registry/secrets/"),
            Err(Error::InvalidContinue { .. })
        ));
        assert!(matches!(
            decode("!!!", ""),
            Err(Error::InvalidContinue { .. })
        ));
        assert!(matches!(
            decode(&URL_SAFE_NO_PAD.encode("x:y"), ""),
            Err(Error::InvalidContinue { .. })
        ));
        assert!(matches!(
            decode(&URL_SAFE_NO_PAD.encode("-3:y"), ""),
            Err(Error::InvalidContinue { .. })
        ));
    }

    proptest::proptest! {
        /// Tokens come from clients: decoding any string must return, never panic.
        #[test]
        fn decoding_arbitrary_input_never_panics(token in ".{0,64}", prefix in "[a-z/]{0,8}") {
            let _ = decode(&token, &prefix);
        }

        #[test]
        fn round_trips_any_key(revision in 1i64.., key in "/[a-z0-9/.-]{0,40}") {
            let token = encode(revision, &key);
            proptest::prop_assert_eq!(decode(&token, "/").unwrap(), (revision, format!("{key}\0")));
        }
    }
}
