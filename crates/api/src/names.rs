//! Object name rules, name-format validators and `generateName`, as upstream validates them.
//!
//! Every kind validates `metadata.name` with one rule (upstream's `ValidateObjectMeta` name
//! function for that kind): most use a DNS-1123 subdomain, namespaces a DNS-1123 label, services a
//! DNS-1035 label, RBAC kinds a path segment. The validators return upstream's exact messages so
//! `Invalid` errors read the same as a real API server's.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::field_error::FieldError;
use crate::resources::ResourceInfo;

/// Longest DNS-1123 label (and DNS-1035 label, and label-key name part / label value).
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// Longest DNS-1123 subdomain.
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
/// Longest name `generateName` produces.
pub const MAX_NAME_LENGTH: usize = 63;
/// How many random characters `generateName` appends.
pub const GENERATED_SUFFIX_LENGTH: usize = 5;
/// Longest `generateName` base kept before the random suffix.
pub const MAX_GENERATED_NAME_BASE_LENGTH: usize = MAX_NAME_LENGTH - GENERATED_SUFFIX_LENGTH;
/// Upstream's alphabet for random name suffixes (no vowels, no look-alike characters).
pub const GENERATED_NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_ERR: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const LABEL_KEY_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_KEY_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// Which format a kind's `metadata.name` must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NameRule {
    /// DNS-1123 subdomain: lowercase alphanumerics, `-` and `.`, at most 253 characters
    /// (upstream `NameIsDNSSubdomain`; most kinds).
    Dns1123Subdomain,
    /// DNS-1123 label: lowercase alphanumerics and `-`, at most 63 characters
    /// (upstream `NameIsDNSLabel`; namespaces).
    Dns1123Label,
    /// DNS-1035 label: a DNS-1123 label that starts with a letter (upstream
    /// `NameIsDNS1035Label`; services, while the `RelaxedServiceNameValidation` gate is off).
    Dns1035Label,
    /// Anything usable as a URL path segment: not `.` or `..`, no `/` or `%`
    /// (upstream `ValidatePathSegmentName`; RBAC kinds, APIServices, ClusterTrustBundles).
    PathSegment,
    /// A canonical IP address (upstream `ValidateIPAddressName`; `ipaddresses`).
    IpAddress,
    /// No format beyond the path-segment check every key gets (CertificateSigningRequests, and
    /// the create-only review resources, which have no stored name).
    Any,
}

impl NameRule {
    /// The rule for `metadata.name` of the resource `plural` in `group`, following upstream's
    /// per-kind `ValidateObjectMeta` name functions. Kinds with extra object-dependent rules
    /// (CRDs must be named `<plural>.<group>`, APIServices `<version>.<group>`,
    /// ClusterTrustBundles carry their signer as a prefix) get their base rule here; the extra
    /// check belongs to the kind's strategy.
    pub fn for_resource(group: &str, plural: &str) -> NameRule {
        match (group, plural) {
            ("", "namespaces") => NameRule::Dns1123Label,
            ("", "services") => NameRule::Dns1035Label,
            ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
            ("apiregistration.k8s.io", "apiservices") => NameRule::PathSegment,
            ("certificates.k8s.io", "clustertrustbundles") => NameRule::PathSegment,
            ("certificates.k8s.io", "certificatesigningrequests") => NameRule::Any,
            ("networking.k8s.io", "ipaddresses") => NameRule::IpAddress,
            ("", "bindings") | ("authentication.k8s.io", _) | ("authorization.k8s.io", _) => {
                NameRule::Any
            }
            _ => NameRule::Dns1123Subdomain,
        }
    }

    /// Validates `name` and returns upstream's messages (empty when valid). `prefix` is true when
    /// `name` is a `generateName` base that will get a random suffix, which allows a trailing
    /// `-`.
    pub fn validate(self, name: &str, prefix: bool) -> Vec<String> {
        match self {
            NameRule::Dns1123Subdomain => is_dns1123_subdomain(&masked(name, prefix)),
            NameRule::Dns1123Label => is_dns1123_label(&masked(name, prefix)),
            NameRule::Dns1035Label => is_dns1035_label(&masked(name, prefix)),
            NameRule::PathSegment if prefix => is_path_segment_prefix(name),
            NameRule::PathSegment => is_path_segment_name(name),
            NameRule::IpAddress => is_ip_address_name(name),
            NameRule::Any => Vec::new(),
        }
    }
}

impl ResourceInfo {
    /// The rule `metadata.name` of this resource must follow.
    pub fn name_rule(&self) -> NameRule {
        NameRule::for_resource(self.group, self.plural)
    }
}

/// Validates `metadata.name` and `metadata.generateName` of a new object as upstream's
/// `ValidateObjectMeta` does, with field paths under `metadata`.
pub fn validate_object_name(rule: NameRule, name: &str, generate_name: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if !generate_name.is_empty() {
        for msg in rule.validate(generate_name, true) {
            errors.push(FieldError::invalid(
                "metadata.generateName",
                generate_name,
                &msg,
            ));
        }
    }
    if name.is_empty() {
        errors.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for msg in rule.validate(name, false) {
            errors.push(FieldError::invalid("metadata.name", name, &msg));
        }
    }
    errors
}

/// The message upstream's storage key functions give (as a `BadRequest`) for a name that cannot
/// be a path segment, whatever the kind: `Name parameter invalid: "a/b": may not contain '/'`.
pub fn key_name_error(name: &str) -> Option<String> {
    let msgs = is_path_segment_name(name);
    if msgs.is_empty() {
        None
    } else {
        Some(format!(
            "Name parameter invalid: {}: {}",
            crate::field_error::go_quote(name),
            msgs.join(";")
        ))
    }
}

/// Upstream's `maskTrailingDash`: a generateName base may end in `-`. Upstream drops the last
/// *two* characters and appends `a`; the quirk is kept because it decides which bases validate.
fn masked(name: &str, prefix: bool) -> std::borrow::Cow<'_, str> {
    if prefix && name.len() > 1 && name.ends_with('-') {
        let cut = &name.as_bytes()[..name.len() - 2];
        let mut s = String::from_utf8_lossy(cut).into_owned();
        s.push('a');
        std::borrow::Cow::Owned(s)
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// Upstream's `MaxLenError`.
pub fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// Upstream's `RegexError`: a message, examples and the regex used.
pub fn regex_error(msg: &str, regex: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{regex}')");
    }
    let mut s = format!("{msg} (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            s.push_str(" or ");
        }
        s.push('\'');
        s.push_str(example);
        s.push_str("', ");
    }
    s.push_str("regex used for validation is '");
    s.push_str(regex);
    s.push_str("')");
    s
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Matches `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
fn matches_dns1123_label(s: &[u8]) -> bool {
    match (s.first(), s.last()) {
        (Some(&first), Some(&last)) => {
            is_lower_alnum(first)
                && is_lower_alnum(last)
                && s.iter().all(|&b| is_lower_alnum(b) || b == b'-')
        }
        _ => false,
    }
}

/// Matches a DNS-1123 subdomain: one or more DNS-1123 labels joined by `.`.
fn matches_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|label| matches_dns1123_label(label.as_bytes()))
}

/// Upstream `IsDNS1123Label`: the reasons `value` is not a DNS-1123 label.
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !matches_dns1123_label(value.as_bytes()) {
        if matches_dns1123_subdomain(value) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_ERR,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// Upstream `IsDNS1123Subdomain`: the reasons `value` is not a DNS-1123 subdomain.
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !matches_dns1123_subdomain(value) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// Upstream `IsDNS1035Label`: the reasons `value` is not a DNS-1035 label.
pub fn is_dns1035_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    let b = value.as_bytes();
    let ok = matches_dns1123_label(b) && b[0].is_ascii_lowercase();
    if !ok {
        errs.push(regex_error(
            DNS1035_LABEL_ERR,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// Upstream `IsPathSegmentName`: the name is not `.` or `..` and contains no `/` or `%`.
pub fn is_path_segment_name(name: &str) -> Vec<String> {
    for illegal in [".", ".."] {
        if name == illegal {
            return vec![format!("may not be '{illegal}'")];
        }
    }
    is_path_segment_prefix(name)
}

/// Upstream `IsPathSegmentPrefix`: the name contains no `/` or `%`.
pub fn is_path_segment_prefix(name: &str) -> Vec<String> {
    ["/", "%"]
        .iter()
        .filter(|illegal| name.contains(**illegal))
        .map(|illegal| format!("may not contain '{illegal}'"))
        .collect()
}

/// Upstream `ValidateIPAddressName`: the name must be an IP address in canonical form. Go's
/// parser gives several messages for unparsable input; this reports them all as
/// `ParseAddr("..."): unable to parse IP`.
pub fn is_ip_address_name(name: &str) -> Vec<String> {
    match name.parse::<std::net::IpAddr>() {
        Err(_) => vec![format!(
            "ParseAddr({}): unable to parse IP",
            crate::field_error::go_quote(name)
        )],
        Ok(ip) if ip.to_string() != name => {
            vec!["must be a canonical format IP address".to_string()]
        }
        Ok(_) => Vec::new(),
    }
}

fn is_label_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// Matches `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
fn matches_label_name(s: &[u8]) -> bool {
    match (s.first(), s.last()) {
        (Some(&first), Some(&last)) => {
            is_label_char(first)
                && is_label_char(last)
                && s.iter()
                    .all(|&b| is_label_char(b) || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// Upstream `IsLabelKey` (also called `IsQualifiedName`): an optional DNS-1123 subdomain prefix
/// and `/`, then a name of at most 63 alphanumerics, `-`, `_`, `.`, starting and ending
/// alphanumeric.
pub fn is_label_key(value: &str) -> Vec<String> {
    let name_regex_error = || {
        regex_error(
            LABEL_KEY_ERR,
            LABEL_KEY_FMT,
            &["MyName", "my.name", "123-abc"],
        )
    };
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a valid label key {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                name_regex_error()
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(format!(
            "name part {}",
            max_len_error(DNS1123_LABEL_MAX_LENGTH)
        ));
    }
    if !matches_label_name(name.as_bytes()) {
        errs.push(format!("name part {}", name_regex_error()));
    }
    errs
}

/// Upstream `IsValidLabelValue`: empty, or at most 63 alphanumerics, `-`, `_`, `.`, starting
/// and ending alphanumeric.
pub fn is_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !value.is_empty() && !matches_label_name(value.as_bytes()) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// Appends `GENERATED_SUFFIX_LENGTH` characters to `base` as upstream's `generateName` does,
/// first truncating `base` to `MAX_GENERATED_NAME_BASE_LENGTH` bytes. `random` supplies the
/// randomness: each call's value picks one character of [`GENERATED_NAME_ALPHABET`].
pub fn generate_name(base: &str, mut random: impl FnMut() -> u64) -> String {
    let mut cut = base.len().min(MAX_GENERATED_NAME_BASE_LENGTH);
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut name = String::with_capacity(cut + GENERATED_SUFFIX_LENGTH);
    name.push_str(&base[..cut]);
    for _ in 0..GENERATED_SUFFIX_LENGTH {
        let i = (random() % GENERATED_NAME_ALPHABET.len() as u64) as usize;
        name.push(GENERATED_NAME_ALPHABET[i] as char);
    }
    name
}

/// A small deterministic random source (SplitMix64) for [`generate_name`]: seed it from the
/// clock or an OS source in the caller, or with a constant in tests. Safe to share between
/// threads.
#[derive(Debug)]
pub struct NameGenerator {
    state: AtomicU64,
}

impl NameGenerator {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(seed),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `base` plus five random characters, as [`generate_name`].
    pub fn generate(&self, base: &str) -> String {
        generate_name(base, || self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources;

    #[test]
    fn dns1123_subdomain_messages() {
        assert!(is_dns1123_subdomain("example.com").is_empty());
        assert!(is_dns1123_subdomain("a").is_empty());
        assert_eq!(
            is_dns1123_subdomain("Foo"),
            vec!["a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string()]
        );
        for bad in ["", "-a", "a-", "a..b", ".a", "a.", "a_b"] {
            assert_eq!(is_dns1123_subdomain(bad).len(), 1, "{bad}");
        }
        let long = "a".repeat(254);
        assert_eq!(
            is_dns1123_subdomain(&long),
            vec!["must be no more than 253 characters".to_string()]
        );
    }

    #[test]
    fn dns1123_label_messages() {
        assert!(is_dns1123_label("my-name").is_empty());
        assert!(is_dns1123_label("123-abc").is_empty());
        assert_eq!(
            is_dns1123_label("a.b"),
            vec!["must not contain dots".to_string()]
        );
        assert_eq!(
            is_dns1123_label("A"),
            vec!["a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".to_string()]
        );
        let long = "a".repeat(64);
        assert_eq!(is_dns1123_label(&long), vec![max_len_error(63)]);
    }

    #[test]
    fn dns1035_label_messages() {
        assert!(is_dns1035_label("my-svc").is_empty());
        assert_eq!(
            is_dns1035_label("1svc"),
            vec!["a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".to_string()]
        );
    }

    #[test]
    fn path_segment_names() {
        assert!(is_path_segment_name("system:controller:foo").is_empty());
        assert_eq!(
            is_path_segment_name(".."),
            vec!["may not be '..'".to_string()]
        );
        assert_eq!(
            is_path_segment_name("a/b%c"),
            vec![
                "may not contain '/'".to_string(),
                "may not contain '%'".to_string()
            ]
        );
        assert_eq!(
            key_name_error("a/b").as_deref(),
            Some(r#"Name parameter invalid: "a/b": may not contain '/'"#)
        );
        assert_eq!(key_name_error("ok"), None);
    }

    #[test]
    fn label_keys_and_values() {
        assert!(is_label_key("app").is_empty());
        assert!(is_label_key("app.kubernetes.io/name").is_empty());
        assert_eq!(
            is_label_key("/a"),
            vec!["prefix part must be non-empty".to_string()]
        );
        assert_eq!(is_label_key("a/").len(), 2);
        assert_eq!(
            is_label_key("a/b/c"),
            vec!["a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".to_string()]
        );
        assert_eq!(
            is_label_key("Bad_/x"),
            vec!["prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string()]
        );
        assert!(is_label_value("").is_empty());
        assert!(is_label_value("My_value.1").is_empty());
        assert_eq!(is_label_value("-x").len(), 1);
        assert_eq!(is_label_value(&"a".repeat(64)), vec![max_len_error(63)]);
    }

    #[test]
    fn rules_per_kind() {
        let rule = |g, p| resources::find(g, "v1", p).unwrap().name_rule();
        assert_eq!(rule("", "namespaces"), NameRule::Dns1123Label);
        assert_eq!(rule("", "services"), NameRule::Dns1035Label);
        assert_eq!(rule("", "configmaps"), NameRule::Dns1123Subdomain);
        assert_eq!(rule("", "secrets"), NameRule::Dns1123Subdomain);
        assert_eq!(rule("apps", "deployments"), NameRule::Dns1123Subdomain);
        assert_eq!(
            rule("rbac.authorization.k8s.io", "clusterroles"),
            NameRule::PathSegment
        );
        assert_eq!(
            rule("rbac.authorization.k8s.io", "roles"),
            NameRule::PathSegment
        );
        assert_eq!(
            rule("networking.k8s.io", "ipaddresses"),
            NameRule::IpAddress
        );
        assert_eq!(
            rule("certificates.k8s.io", "certificatesigningrequests"),
            NameRule::Any
        );
    }

    #[test]
    fn generate_name_prefixes() {
        // A trailing dash is fine in a generateName base, a leading one is not.
        assert!(NameRule::Dns1123Subdomain.validate("web-", true).is_empty());
        assert!(!NameRule::Dns1123Subdomain
            .validate("web-", false)
            .is_empty());
        assert!(!NameRule::Dns1123Subdomain
            .validate("-web-", true)
            .is_empty());
        assert!(NameRule::PathSegment.validate("..", true).is_empty());
        assert!(!NameRule::PathSegment.validate("..", false).is_empty());
    }

    #[test]
    fn object_name_errors() {
        assert_eq!(
            validate_object_name(NameRule::Dns1123Subdomain, "", ""),
            vec![FieldError::required(
                "metadata.name",
                "name or generateName is required"
            )]
        );
        let errs = validate_object_name(NameRule::Dns1123Label, "Foo", "");
        assert_eq!(errs.len(), 1);
        assert!(errs[0]
            .to_string()
            .starts_with(r#"metadata.name: Invalid value: "Foo": a lowercase RFC 1123 label"#));
        let errs = validate_object_name(NameRule::Dns1123Subdomain, "", "Bad-");
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].field, "metadata.generateName");
    }

    #[test]
    fn ip_address_names() {
        assert!(is_ip_address_name("10.0.0.1").is_empty());
        assert!(is_ip_address_name("2001:db8::1").is_empty());
        assert_eq!(
            is_ip_address_name("2001:DB8::1"),
            vec!["must be a canonical format IP address".to_string()]
        );
        assert_eq!(is_ip_address_name("nope").len(), 1);
    }

    #[test]
    fn generated_names() {
        let gen = NameGenerator::new(42);
        let a = gen.generate("web-");
        assert_eq!(a.len(), 9);
        assert!(a.starts_with("web-"));
        assert!(a[4..].bytes().all(|b| GENERATED_NAME_ALPHABET.contains(&b)));
        assert_ne!(a, gen.generate("web-"));
        let long = generate_name(&"x".repeat(100), || 0);
        assert_eq!(long.len(), 63);
        assert!(long.ends_with("bbbbb"));
        // Same seed, same sequence.
        assert_eq!(
            NameGenerator::new(7).generate("a-"),
            NameGenerator::new(7).generate("a-")
        );
    }
}
