//! Authentication: who a request is from, as upstream's authenticator chain decides it.
//!
//! A verified client certificate (CN = user, O = groups, see `tls.rs`) wins; otherwise a
//! bearer token is tried against the static token file, service-account tokens
//! ([`service_account`]: bound JWTs from TokenRequest and legacy token Secrets) and
//! bootstrap tokens ([`bootstrap`]); a request without credentials is
//! `system:anonymous`. A bearer token no authenticator accepts is a 401, never anonymous.
//! [`impersonation`] then switches the user when the request asks and may; [`review`]
//! serves TokenRequest, TokenReview and SelfSubjectReview.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use axum::http::{header, HeaderMap};

use crate::ApiState;

pub mod bootstrap;
pub mod review;
pub mod service_account;

/// Every authenticated user is in this group (upstream's group adder).
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
/// Anonymous requests are in this group.
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";

/// The authenticated user of a request (upstream's `user.Info`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    /// A unique id of the user, when the authenticator knows one (service accounts: the
    /// ServiceAccount's uid).
    pub uid: String,
    pub groups: Vec<String>,
    /// Extra attributes (service accounts: the bound pod and node, the credential id).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// A user with `name` in `groups` (and nothing else).
    pub fn new(name: impl Into<String>, groups: Vec<String>) -> Self {
        UserInfo {
            name: name.into(),
            groups,
            ..Default::default()
        }
    }

    pub fn anonymous() -> Self {
        UserInfo::new("system:anonymous", vec![UNAUTHENTICATED_GROUP.into()])
    }

    pub fn is_anonymous(&self) -> bool {
        self.name == "system:anonymous"
    }

    /// Adds `system:authenticated` unless present (every authenticator's result gets it).
    pub fn authenticated(mut self) -> Self {
        if !self.groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            self.groups.push(AUTHENTICATED_GROUP.into());
        }
        self
    }

    /// The user as authentication.k8s.io's `UserInfo` JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let mut out = serde_json::json!({"username": self.name});
        if !self.uid.is_empty() {
            out["uid"] = self.uid.clone().into();
        }
        if !self.groups.is_empty() {
            out["groups"] = self.groups.clone().into();
        }
        if !self.extra.is_empty() {
            out["extra"] = serde_json::to_value(&self.extra).unwrap_or_default();
        }
        out
    }
}

/// Why a bearer token was refused: upstream's aggregated message (logged, and reported
/// by TokenReview's `status.error`; the client of a request only hears `Unauthorized`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRejected(pub String);

/// Upstream's bearer authenticator's error, with the reason a token authenticator gave.
fn invalid_bearer_token(reason: Option<String>) -> TokenRejected {
    TokenRejected(match reason {
        None => "invalid bearer token".into(),
        Some(r) => format!("[invalid bearer token, {r}]"),
    })
}

/// A successfully authenticated token: the user and the audiences it was valid for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenUser {
    pub user: UserInfo,
    pub audiences: Vec<String>,
}

/// Authenticates a bearer token for `audiences` (the API server's when `None`): the
/// static token file, then service-account tokens, then bootstrap tokens, as upstream's
/// union does; the first that recognises the token decides.
pub async fn authenticate_token(
    state: &ApiState,
    token: &str,
    audiences: Option<&[String]>,
) -> Result<TokenUser, TokenRejected> {
    let accepted = audiences.unwrap_or(&state.service_accounts.api_audiences);
    if let Some(user) = state.tokens.lookup(token) {
        return Ok(TokenUser {
            user: user.clone(),
            audiences: accepted.to_vec(),
        });
    }
    match state
        .service_accounts
        .authenticate(&*state.store, token, accepted)
        .await
    {
        service_account::Outcome::Authenticated(user) => return Ok(user),
        service_account::Outcome::Rejected(reason) => {
            return Err(invalid_bearer_token(Some(reason)))
        }
        service_account::Outcome::NotMine => {}
    }
    match bootstrap::authenticate(&*state.store, token).await {
        bootstrap::Outcome::Authenticated(user) => Ok(TokenUser {
            user,
            audiences: accepted.to_vec(),
        }),
        bootstrap::Outcome::NotMine => Err(invalid_bearer_token(None)),
    }
}

/// The bearer token of a request, if it sends one (`Authorization: Bearer <token>`; an
/// empty token counts as none, as upstream's bearer authenticator treats it).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    Some(token.trim()).filter(|t| !t.is_empty())
}

/// The user of a request: its verified client certificate's, its bearer token's, or
/// anonymous without credentials. A bad bearer token is an error (the request gets 401).
pub async fn authenticate_request(
    state: &ApiState,
    headers: &HeaderMap,
    cert_user: Option<&UserInfo>,
) -> Result<UserInfo, TokenRejected> {
    if let Some(user) = cert_user {
        return Ok(user.clone());
    }
    match bearer_token(headers) {
        Some(token) => authenticate_token(state, token, None)
            .await
            .map(|ok| ok.user),
        None => Ok(UserInfo::anonymous()),
    }
}

/// Tokens from a static token file (upstream's `--token-auth-file`: CSV lines
/// `token,user,uid,"group1,group2"`).
#[derive(Default, Debug, Clone)]
pub struct StaticTokens {
    tokens: HashMap<String, UserInfo>,
}

impl StaticTokens {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read token file {}: {e}", path.display()))?;
        let mut tokens = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line);
            if fields.len() < 3 || fields[0].is_empty() || fields[1].is_empty() {
                return Err(format!(
                    "token file {} line {}: want token,user,uid[,\"groups\"]",
                    path.display(),
                    n + 1
                ));
            }
            let mut groups: Vec<String> = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            groups.push(AUTHENTICATED_GROUP.into());
            tokens.insert(
                fields[0].clone(),
                UserInfo {
                    name: fields[1].clone(),
                    uid: fields[2].clone(),
                    groups,
                    extra: BTreeMap::new(),
                },
            );
        }
        Ok(StaticTokens { tokens })
    }

    pub fn lookup(&self, token: &str) -> Option<&UserInfo> {
        self.tokens.get(token)
    }
}

fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    fields.push(cur);
    fields.into_iter().map(|f| f.trim().to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_token_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        std::fs::write(
            &path,
            "# comment\nabc,alice,1,\"system:masters,dev\"\ndef,bob,2\n",
        )
        .unwrap();
        let t = StaticTokens::load(&path).unwrap();
        let alice = t.lookup("abc").unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.uid, "1");
        assert_eq!(
            alice.groups,
            ["system:masters", "dev", "system:authenticated"]
        );
        assert_eq!(t.lookup("def").unwrap().groups, ["system:authenticated"]);
        assert!(t.lookup("nope").is_none());
        std::fs::write(&path, "onlytoken\n").unwrap();
        assert!(StaticTokens::load(&path).is_err());
    }

    #[test]
    fn bearer_tokens_from_headers() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::AUTHORIZATION, v.parse().unwrap());
            m
        };
        assert_eq!(bearer_token(&h("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&h("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(&h("Bearer ")), None);
        assert_eq!(bearer_token(&h("Basic YTpi")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
