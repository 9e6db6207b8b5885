//! Service-account tokens: minting bound tokens (TokenRequest), authenticating bound and
//! legacy tokens, and the OpenID discovery documents that publish the verification key.
//!
//! The signature check and claim parsing of a token are cached until it expires (they are
//! the expensive part); the checks against cluster state — the service account and the
//! bound object still exist with the uids in the token — are point reads on every use, so
//! a token stops working as soon as what it is bound to is deleted.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use rkube_pki::service_account::{
    ClaimError, LegacyClaims, TokenClaims, LEEWAY_SECONDS, LEGACY_ISSUER,
};
use rkube_pki::ServiceAccountKey;
use rkube_store::Store;
use serde_json::{json, Value};

use super::{TokenUser, UserInfo};
use crate::meta;

/// Upstream's issuer default for kubeadm-style clusters.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// `user.extra` keys upstream sets for service-account tokens.
pub const POD_NAME_KEY: &str = "authentication.kubernetes.io/pod-name";
pub const POD_UID_KEY: &str = "authentication.kubernetes.io/pod-uid";
pub const NODE_NAME_KEY: &str = "authentication.kubernetes.io/node-name";
pub const NODE_UID_KEY: &str = "authentication.kubernetes.io/node-uid";
pub const CREDENTIAL_ID_KEY: &str = "authentication.kubernetes.io/credential-id";
/// The group every service account is in.
pub const ALL_SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";
/// The legacy token Secret type and its annotations.
pub const TOKEN_SECRET_TYPE: &str = "kubernetes.io/service-account-token";

/// Most verified tokens kept; past it, expired entries go, then all.
const CACHE_CAPACITY: usize = 4096;
/// How long a verified legacy token (which never expires) stays cached.
const LEGACY_CACHE_SECONDS: i64 = 600;
/// What go-jose reports when a signature does not verify (upstream's wording).
const SIGNATURE_INVALID: &str = "go-jose/go-jose: error in cryptographic primitive";

/// A token whose signature verified, with its parsed claims.
#[derive(Clone, Debug)]
enum Verified {
    Bound(Box<TokenClaims>),
    Legacy(Box<LegacyClaims>),
}

/// What the service-account authenticator made of a token.
#[derive(Debug)]
pub enum Outcome {
    Authenticated(TokenUser),
    /// The token is a service-account token (our issuer) but is not valid: why.
    Rejected(String),
    /// Not a service-account token of this cluster; another authenticator may know it.
    NotMine,
}

/// Service-account token settings and the verification cache.
pub struct ServiceAccounts {
    key: Option<Arc<ServiceAccountKey>>,
    /// The `iss` of minted tokens (`--service-account-issuer`).
    pub issuer: String,
    /// The audiences the API server accepts (`--api-audiences`, default the issuer).
    pub api_audiences: Vec<String>,
    verified: Mutex<HashMap<[u8; 32], (Verified, i64)>>,
}

impl Default for ServiceAccounts {
    /// No signing key: service-account tokens are neither minted nor accepted.
    fn default() -> Self {
        Self::new(None, DEFAULT_ISSUER.into(), Vec::new())
    }
}

impl ServiceAccounts {
    /// Settings for `issuer`; empty `api_audiences` means `[issuer]`, as upstream.
    pub fn new(
        key: Option<Arc<ServiceAccountKey>>,
        issuer: String,
        api_audiences: Vec<String>,
    ) -> Self {
        let api_audiences = if api_audiences.is_empty() {
            vec![issuer.clone()]
        } else {
            api_audiences
        };
        Self {
            key,
            issuer,
            api_audiences,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// The signing key, when the server has one.
    pub fn key(&self) -> Option<&ServiceAccountKey> {
        self.key.as_deref()
    }

    /// `/.well-known/openid-configuration`, as upstream serves it.
    pub fn openid_configuration(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}/openid/v1/jwks", self.issuer.trim_end_matches('/')),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [rkube_pki::jwt::ALGORITHM],
        })
    }

    /// `/openid/v1/jwks`: the public keys that verify service-account tokens.
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self.key().map(|k| k.verifier().jwk()).into_iter().collect();
        json!({ "keys": keys })
    }

    /// Signs bound-token claims.
    pub fn sign(&self, claims: &TokenClaims) -> Result<String, String> {
        let key = self
            .key()
            .ok_or("service account token signing is not configured")?;
        let claims = serde_json::to_value(claims).map_err(|e| e.to_string())?;
        key.signer().sign(&claims).map_err(|e| e.to_string())
    }

    /// Authenticates `token` if it is a service-account token of this cluster.
    pub async fn authenticate(
        &self,
        store: &dyn Store,
        token: &str,
        accepted: &[String],
    ) -> Outcome {
        let Some(key) = self.key() else {
            return Outcome::NotMine;
        };
        let now = meta::now_secs();
        let digest = token_digest(token);
        let cached = self
            .verified
            .lock()
            .expect("token cache poisoned")
            .get(&digest)
            .filter(|(_, until)| *until >= now)
            .map(|(v, _)| v.clone());
        let verified = match cached {
            Some(v) => v,
            None => {
                // Route by the unverified issuer first, as upstream does: a token of
                // another issuer is some other authenticator's.
                let Ok(payload) = rkube_pki::jwt::unverified_payload(token) else {
                    return Outcome::NotMine;
                };
                let iss = payload.get("iss").and_then(Value::as_str).unwrap_or("");
                if iss != self.issuer && iss != LEGACY_ISSUER {
                    return Outcome::NotMine;
                }
                let payload = match key.verifier().verify(token) {
                    Ok((_, payload)) => payload,
                    Err(_) => return Outcome::Rejected(SIGNATURE_INVALID.into()),
                };
                let (verified, until) = if iss == LEGACY_ISSUER {
                    match serde_json::from_value::<LegacyClaims>(payload) {
                        Ok(c) => (Verified::Legacy(Box::new(c)), now + LEGACY_CACHE_SECONDS),
                        Err(_) => return Outcome::Rejected(ClaimError::Unexpected.to_string()),
                    }
                } else {
                    match serde_json::from_value::<TokenClaims>(payload) {
                        Ok(c) => {
                            let until = c.exp + LEEWAY_SECONDS;
                            (Verified::Bound(Box::new(c)), until)
                        }
                        Err(_) => return Outcome::Rejected(ClaimError::Unexpected.to_string()),
                    }
                };
                self.remember(digest, verified.clone(), until, now);
                verified
            }
        };
        let result = match verified {
            Verified::Bound(claims) => self.check_bound(store, &claims, accepted, now).await,
            Verified::Legacy(claims) => check_legacy(store, token, &claims, accepted, now).await,
        };
        match result {
            Ok(user) => Outcome::Authenticated(user),
            Err(reason) => Outcome::Rejected(reason),
        }
    }

    fn remember(&self, digest: [u8; 32], verified: Verified, until: i64, now: i64) {
        let mut cache = self.verified.lock().expect("token cache poisoned");
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|_, (_, u)| *u >= now);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(digest, (verified, until));
    }

    async fn check_bound(
        &self,
        store: &dyn Store,
        claims: &TokenClaims,
        accepted: &[String],
        now: i64,
    ) -> Result<TokenUser, String> {
        let audiences = claims
            .validate(now, std::slice::from_ref(&self.issuer), accepted)
            .map_err(|e| e.to_string())?;
        let k = &claims.kubernetes;
        let ns = k.namespace.as_str();
        let sa = &k.serviceaccount;
        check_service_account(store, ns, &sa.name, &sa.uid, now).await?;
        let mut extra = BTreeMap::new();
        if let Some(secret) = &k.secret {
            let obj = bound_object(store, "secrets", Some(ns), &secret.name, now).await?;
            let uid = uid_of(&obj);
            if uid != secret.uid {
                return Err(format!(
                    "secret UID ({uid}) does not match service account secret ref claim ({})",
                    secret.uid
                ));
            }
        }
        if let Some(pod) = &k.pod {
            let obj = bound_object(store, "pods", Some(ns), &pod.name, now).await?;
            let uid = uid_of(&obj);
            if uid != pod.uid {
                return Err(format!(
                    "pod UID ({uid}) does not match service account pod ref claim ({})",
                    pod.uid
                ));
            }
            extra.insert(POD_NAME_KEY.to_owned(), vec![pod.name.clone()]);
            extra.insert(POD_UID_KEY.to_owned(), vec![pod.uid.clone()]);
        }
        if let Some(node) = &k.node {
            // A token bound to a node directly dies with the node; a pod-bound token only
            // carries its pod's node for information.
            if k.pod.is_none() && k.secret.is_none() {
                let obj = bound_object(store, "nodes", None, &node.name, now).await?;
                let uid = uid_of(&obj);
                if uid != node.uid {
                    return Err(format!(
                        "node UID ({uid}) does not match service account node ref claim ({})",
                        node.uid
                    ));
                }
            }
            extra.insert(NODE_NAME_KEY.to_owned(), vec![node.name.clone()]);
            extra.insert(NODE_UID_KEY.to_owned(), vec![node.uid.clone()]);
        }
        if !claims.jti.is_empty() {
            extra.insert(
                CREDENTIAL_ID_KEY.to_owned(),
                vec![format!("JTI={}", claims.jti)],
            );
        }
        Ok(TokenUser {
            user: service_account_user(ns, &sa.name, &sa.uid, extra),
            audiences,
        })
    }
}

/// The user a service account authenticates as.
pub fn service_account_user(
    namespace: &str,
    name: &str,
    uid: &str,
    extra: BTreeMap<String, Vec<String>>,
) -> UserInfo {
    UserInfo {
        name: format!("system:serviceaccount:{namespace}:{name}"),
        uid: uid.to_owned(),
        groups: vec![
            ALL_SERVICE_ACCOUNTS_GROUP.into(),
            format!("{ALL_SERVICE_ACCOUNTS_GROUP}:{namespace}"),
            super::AUTHENTICATED_GROUP.into(),
        ],
        extra,
    }
}

async fn check_legacy(
    store: &dyn Store,
    token: &str,
    claims: &LegacyClaims,
    accepted: &[String],
    now: i64,
) -> Result<TokenUser, String> {
    if claims.namespace.is_empty()
        || claims.secret_name.is_empty()
        || claims.service_account_name.is_empty()
    {
        return Err(ClaimError::Unexpected.to_string());
    }
    let invalidated = || "service account token has been invalidated".to_owned();
    let secret = get_object(
        store,
        "secrets",
        Some(&claims.namespace),
        &claims.secret_name,
    )
    .await?
    .ok_or_else(invalidated)?;
    if deleted_before(&secret, now - LEEWAY_SECONDS) {
        return Err(invalidated());
    }
    let stored = secret
        .pointer("/data/token")
        .and_then(Value::as_str)
        .and_then(|b64| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(b64).ok()
        })
        .unwrap_or_default();
    if stored != token.as_bytes() {
        return Err("service account token does not match server's copy".into());
    }
    if secret
        .pointer("/metadata/labels/kubernetes.io~1legacy-token-invalid-since")
        .is_some()
    {
        return Err(invalidated());
    }
    check_service_account(
        store,
        &claims.namespace,
        &claims.service_account_name,
        &claims.service_account_uid,
        now,
    )
    .await?;
    Ok(TokenUser {
        user: service_account_user(
            &claims.namespace,
            &claims.service_account_name,
            &claims.service_account_uid,
            BTreeMap::new(),
        ),
        audiences: accepted.to_vec(),
    })
}

async fn check_service_account(
    store: &dyn Store,
    namespace: &str,
    name: &str,
    uid: &str,
    now: i64,
) -> Result<(), String> {
    let sa = get_object(store, "serviceaccounts", Some(namespace), name)
        .await?
        .ok_or_else(|| format!("serviceaccounts \"{name}\" not found"))?;
    if deleted_before(&sa, now - LEEWAY_SECONDS) {
        return Err(format!(
            "service account {namespace}/{name} has been deleted"
        ));
    }
    let actual = uid_of(&sa);
    if actual != uid {
        return Err(format!(
            "service account UID ({actual}) does not match claim ({uid})"
        ));
    }
    Ok(())
}

/// A bound object that must still exist and not be (long) terminating.
async fn bound_object(
    store: &dyn Store,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
    now: i64,
) -> Result<Value, String> {
    let invalidated = || "service account token has been invalidated".to_owned();
    let obj = get_object(store, plural, namespace, name)
        .await?
        .ok_or_else(invalidated)?;
    if deleted_before(&obj, now - LEEWAY_SECONDS) {
        return Err(invalidated());
    }
    Ok(obj)
}

/// Reads one core/v1 object from the store.
pub(crate) async fn get_object(
    store: &dyn Store,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Value>, String> {
    let info = rkube_api::resources::find("", "v1", plural).expect("a built-in core resource");
    let got = store
        .get(&info.key(namespace, name), None)
        .await
        .map_err(|e| format!("cannot read {plural} {name:?}: {e}"))?;
    Ok(got.kv.and_then(|kv| serde_json::from_slice(&kv.value).ok()))
}

pub(crate) fn uid_of(obj: &Value) -> &str {
    obj.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn deleted_before(obj: &Value, limit: i64) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(meta::parse_rfc3339)
        .is_some_and(|t| t < limit)
}

fn token_digest(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}
