//! Encryption at rest (upstream's `--encryption-provider-config`): an
//! `apiserver.config.k8s.io/v1` `EncryptionConfiguration` names, per resource, the
//! providers values are written with (the first) and read with (any): `aescbc`,
//! `aesgcm`, `secretbox` and `identity`. An encrypted value starts with upstream's
//! prefix `k8s:enc:<provider>:v1:<key name>:`, so a store written by one server reads
//! in the other.
//!
//! [`wrap`] layers the transform over any [`Store`]: values are encrypted on create and
//! update and decrypted on every read, list, watch event, conflict and delete answer,
//! so the watch cache, lists and controllers above see plaintext and the store below
//! sees bytes only. Key rotation is upstream's: put the new key first, then rewrite
//! every object (`kubectl get secrets -A -o json | kubectl replace -f -`).

use std::sync::Arc;

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use crypto_secretbox::aead::{Aead, KeyInit};
use rkube_store::{
    DeleteResult, Event, GetResult, KeyValue, ListOptions, ListResult, Result, Revision, Store,
    WatchResponse, WatchStream,
};
use serde_json::Value;

/// Every encrypted value starts with this.
const PREFIX: &str = "k8s:enc:";

/// One provider of a resource rule.
#[derive(Clone)]
enum Provider {
    Identity,
    AesCbc(Vec<(String, Vec<u8>)>),
    AesGcm(Vec<(String, Vec<u8>)>),
    Secretbox(Vec<(String, Vec<u8>)>),
}

impl Provider {
    fn name(&self) -> &'static str {
        match self {
            Provider::Identity => "identity",
            Provider::AesCbc(_) => "aescbc",
            Provider::AesGcm(_) => "aesgcm",
            Provider::Secretbox(_) => "secretbox",
        }
    }

    fn keys(&self) -> &[(String, Vec<u8>)] {
        match self {
            Provider::Identity => &[],
            Provider::AesCbc(k) | Provider::AesGcm(k) | Provider::Secretbox(k) => k,
        }
    }

    /// Encrypts with the provider's first key (identity: the value itself).
    fn encrypt(&self, key: &str, plain: &[u8]) -> std::result::Result<Vec<u8>, String> {
        let Some((name, secret)) = self.keys().first() else {
            return Ok(plain.to_vec());
        };
        let mut out = format!("{PREFIX}{}:v1:{name}:", self.name()).into_bytes();
        match self {
            Provider::Identity => unreachable!("identity has no keys"),
            Provider::AesCbc(_) => {
                let iv: [u8; 16] = rand::random();
                out.extend_from_slice(&iv);
                let sealed = match secret.len() {
                    16 => cbc::Encryptor::<aes::Aes128>::new_from_slices(secret, &iv)
                        .map(|c| c.encrypt_padded_vec_mut::<Pkcs7>(plain)),
                    24 => cbc::Encryptor::<aes::Aes192>::new_from_slices(secret, &iv)
                        .map(|c| c.encrypt_padded_vec_mut::<Pkcs7>(plain)),
                    _ => cbc::Encryptor::<aes::Aes256>::new_from_slices(secret, &iv)
                        .map(|c| c.encrypt_padded_vec_mut::<Pkcs7>(plain)),
                }
                .map_err(|e| e.to_string())?;
                out.extend_from_slice(&sealed);
            }
            Provider::AesGcm(_) => {
                let nonce: [u8; 12] = rand::random();
                let sealed = gcm_seal(secret, &nonce, key.as_bytes(), plain)?;
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&sealed);
            }
            Provider::Secretbox(_) => {
                let nonce: [u8; 24] = rand::random();
                let cipher = crypto_secretbox::XSalsa20Poly1305::new_from_slice(secret)
                    .map_err(|e| e.to_string())?;
                let sealed = cipher
                    .encrypt(&nonce.into(), plain)
                    .map_err(|_| "secretbox: encryption failed".to_owned())?;
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&sealed);
            }
        }
        Ok(out)
    }

    /// Decrypts `data` (what follows the prefix) with the key named `key_name`.
    fn decrypt(
        &self,
        key: &str,
        key_name: &str,
        data: &[u8],
    ) -> Option<std::result::Result<Vec<u8>, String>> {
        let (_, secret) = self.keys().iter().find(|(n, _)| n == key_name)?;
        let failed = |what: &str| Err(format!("{}: {what}", self.name()));
        Some(match self {
            Provider::Identity => return None,
            Provider::AesCbc(_) => {
                if data.len() < 32 || !data.len().is_multiple_of(16) {
                    return Some(failed("the stored data is not a whole number of blocks"));
                }
                let (iv, sealed) = data.split_at(16);
                let opened = match secret.len() {
                    16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(secret, iv)
                        .map(|c| c.decrypt_padded_vec_mut::<Pkcs7>(sealed)),
                    24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(secret, iv)
                        .map(|c| c.decrypt_padded_vec_mut::<Pkcs7>(sealed)),
                    _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(secret, iv)
                        .map(|c| c.decrypt_padded_vec_mut::<Pkcs7>(sealed)),
                };
                match opened {
                    Ok(Ok(plain)) => Ok(plain),
                    _ => failed("invalid padding on input"),
                }
            }
            Provider::AesGcm(_) => {
                if data.len() < 12 {
                    return Some(failed("the stored data was shorter than the required size"));
                }
                let (nonce, sealed) = data.split_at(12);
                gcm_open(secret, nonce, key.as_bytes(), sealed)
            }
            Provider::Secretbox(_) => {
                if data.len() < 24 {
                    return Some(failed("the stored data was shorter than the required size"));
                }
                let (nonce, sealed) = data.split_at(24);
                let Ok(cipher) = crypto_secretbox::XSalsa20Poly1305::new_from_slice(secret) else {
                    return Some(failed("bad key"));
                };
                let nonce = crypto_secretbox::Nonce::from_slice(nonce);
                cipher
                    .decrypt(nonce, sealed)
                    .map_err(|_| "secretbox: output array was not large enough for encryption / authentication failed".to_owned())
            }
        })
    }
}

/// AES-GCM with a 128-, 192- or 256-bit key, as upstream's aesgcm (a 12-byte nonce,
/// the store key as additional data, the 16-byte tag appended).
type Aes192Gcm = aes_gcm::AesGcm<aes::Aes192, aes_gcm::aead::consts::U12>;

fn gcm_seal(
    secret: &[u8],
    nonce: &[u8; 12],
    aad: &[u8],
    plain: &[u8],
) -> std::result::Result<Vec<u8>, String> {
    let payload = aes_gcm::aead::Payload { msg: plain, aad };
    let nonce = aes_gcm::Nonce::from_slice(nonce);
    match secret.len() {
        16 => aes_gcm::Aes128Gcm::new_from_slice(secret).map(|c| c.encrypt(nonce, payload)),
        24 => Aes192Gcm::new_from_slice(secret).map(|c| c.encrypt(nonce, payload)),
        32 => aes_gcm::Aes256Gcm::new_from_slice(secret).map(|c| c.encrypt(nonce, payload)),
        n => return Err(format!("aesgcm: {n}-byte keys are not supported")),
    }
    .map_err(|_| "aesgcm: bad key".to_owned())?
    .map_err(|_| "aesgcm: encryption failed".to_owned())
}

fn gcm_open(
    secret: &[u8],
    nonce: &[u8],
    aad: &[u8],
    sealed: &[u8],
) -> std::result::Result<Vec<u8>, String> {
    let payload = aes_gcm::aead::Payload { msg: sealed, aad };
    let nonce = aes_gcm::Nonce::from_slice(nonce);
    match secret.len() {
        16 => aes_gcm::Aes128Gcm::new_from_slice(secret).map(|c| c.decrypt(nonce, payload)),
        24 => Aes192Gcm::new_from_slice(secret).map(|c| c.decrypt(nonce, payload)),
        32 => aes_gcm::Aes256Gcm::new_from_slice(secret).map(|c| c.decrypt(nonce, payload)),
        n => return Err(format!("aesgcm: {n}-byte keys are not supported")),
    }
    .map_err(|_| "aesgcm: bad key".to_owned())?
    .map_err(|_| "aesgcm: message authentication failed".to_owned())
}

/// A parsed `EncryptionConfiguration`: for each store prefix it covers, the providers.
#[derive(Clone)]
pub struct EncryptionConfig {
    /// (store prefix, index into `rules`), most specific configuration first.
    prefixes: Vec<(String, usize)>,
    rules: Vec<Vec<Provider>>,
}

impl std::fmt::Debug for EncryptionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionConfig")
            .field("prefixes", &self.prefixes)
            .finish_non_exhaustive()
    }
}

impl EncryptionConfig {
    /// Reads an `EncryptionConfiguration` (YAML or JSON). Errors name the field.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let doc: Value =
            serde_saphyr::from_str(text).map_err(|e| format!("cannot parse the file: {e}"))?;
        if doc["kind"] != "EncryptionConfiguration"
            || !matches!(
                doc["apiVersion"].as_str(),
                Some("apiserver.config.k8s.io/v1")
            )
        {
            return Err(
                "want kind EncryptionConfiguration, apiVersion apiserver.config.k8s.io/v1".into(),
            );
        }
        let mut config = EncryptionConfig {
            prefixes: Vec::new(),
            rules: Vec::new(),
        };
        for (i, rule) in doc["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let field = format!("resources[{i}]");
            let mut providers = Vec::new();
            for (j, p) in rule["providers"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                providers.push(provider(p, &format!("{field}.providers[{j}]"))?);
            }
            if providers.is_empty() {
                return Err(format!(
                    "{field}.providers: Required value: at least one provider"
                ));
            }
            let index = config.rules.len();
            config.rules.push(providers);
            let resources: Vec<&str> = rule["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if resources.is_empty() {
                return Err(format!(
                    "{field}.resources: Required value: at least one resource"
                ));
            }
            for r in resources {
                let (resource, group) = r.split_once('.').unwrap_or((r, ""));
                let mut matched = false;
                for row in rkube_api::resources::builtin()
                    .iter()
                    .filter(|row| !row.is_virtual())
                {
                    let group_ok = group == "*" || group == row.group;
                    let resource_ok = resource == "*" || resource == row.plural;
                    if group_ok && resource_ok {
                        matched = true;
                        let prefix = row.storage_prefix().to_owned();
                        // The first rule that names a resource wins, as upstream.
                        if !config.prefixes.iter().any(|(p, _)| *p == prefix) {
                            config.prefixes.push((prefix, index));
                        }
                    }
                }
                if !matched && !r.contains('*') {
                    tracing::warn!(
                        resource = r,
                        "encryption configuration names a resource this server does not store"
                    );
                }
            }
        }
        // Longest prefix first, so `/registry/a/b/` wins over `/registry/a/`.
        config
            .prefixes
            .sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        Ok(config)
    }

    /// Reads the configuration file at `path`.
    pub fn load(path: &std::path::Path) -> std::result::Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn rule(&self, key: &str) -> Option<&[Provider]> {
        self.prefixes
            .iter()
            .find(|(p, _)| key.starts_with(p.as_str()))
            .map(|(_, i)| self.rules[*i].as_slice())
    }

    /// The stored form of `value` at `key`.
    pub fn encrypt(&self, key: &str, value: &[u8]) -> std::result::Result<Vec<u8>, String> {
        match self.rule(key) {
            Some(providers) => providers[0].encrypt(key, value),
            None => Ok(value.to_vec()),
        }
    }

    /// The plaintext of the stored `value` at `key`.
    pub fn decrypt(&self, key: &str, value: &[u8]) -> std::result::Result<Vec<u8>, String> {
        let Some(providers) = self.rule(key) else {
            return Ok(value.to_vec());
        };
        if value.is_empty() {
            return Ok(Vec::new());
        }
        let Some(rest) = value.strip_prefix(PREFIX.as_bytes()) else {
            return if providers.iter().any(|p| matches!(p, Provider::Identity)) {
                Ok(value.to_vec())
            } else {
                Err("no matching prefix found".into())
            };
        };
        // `<provider>:v1:<key name>:<data>`
        let mut parts = rest.splitn(4, |b| *b == b':');
        let (Some(provider), Some(b"v1"), Some(key_name), Some(data)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("no matching prefix found".into());
        };
        let key_name = String::from_utf8_lossy(key_name);
        providers
            .iter()
            .filter(|p| p.name().as_bytes() == provider)
            .find_map(|p| p.decrypt(key, &key_name, data))
            .unwrap_or_else(|| Err("no matching prefix found".into()))
    }
}

fn provider(p: &Value, field: &str) -> std::result::Result<Provider, String> {
    let obj = p.as_object().filter(|o| o.len() == 1).ok_or_else(|| {
        format!("{field}: Invalid value: exactly one provider type must be set per entry")
    })?;
    let (kind, body) = obj.iter().next().expect("one entry");
    let keys = || -> std::result::Result<Vec<(String, Vec<u8>)>, String> {
        let mut out = Vec::new();
        for (i, k) in body["keys"].as_array().into_iter().flatten().enumerate() {
            let name = k["name"].as_str().unwrap_or_default();
            if name.is_empty() || name.contains(':') {
                return Err(format!("{field}.{kind}.keys[{i}].name: Invalid value: {name:?}: key name must be set and must not contain ':'"));
            }
            let secret = base64::engine::general_purpose::STANDARD
                .decode(k["secret"].as_str().unwrap_or_default())
                .map_err(|e| format!("{field}.{kind}.keys[{i}].secret: Invalid value: REDACTED: secrets must be base64 encoded: {e}"))?;
            let sizes: &[usize] = match kind.as_str() {
                "aescbc" => &[16, 24, 32],
                "aesgcm" => &[16, 24, 32],
                _ => &[32],
            };
            if !sizes.contains(&secret.len()) {
                return Err(format!("{field}.{kind}.keys[{i}].secret: Invalid value: REDACTED: {kind} key must be {} bytes, got {}", sizes.iter().map(usize::to_string).collect::<Vec<_>>().join(", ").replace(", 32", " or 32"), secret.len()));
            }
            out.push((name.to_owned(), secret));
        }
        if out.is_empty() {
            return Err(format!(
                "{field}.{kind}.keys: Required value: at least one key"
            ));
        }
        Ok(out)
    };
    Ok(match kind.as_str() {
        "identity" => Provider::Identity,
        "aescbc" => Provider::AesCbc(keys()?),
        "aesgcm" => Provider::AesGcm(keys()?),
        "secretbox" => Provider::Secretbox(keys()?),
        other => return Err(format!("{field}: Unsupported value: {other:?}: supported values: \"identity\", \"aescbc\", \"aesgcm\", \"secretbox\"")),
    })
}

/// `store` with `config`'s transforms applied to every value.
pub fn wrap(store: Arc<dyn Store>, config: EncryptionConfig) -> Arc<dyn Store> {
    Arc::new(Encrypted {
        inner: store,
        config: Arc::new(config),
    })
}

struct Encrypted {
    inner: Arc<dyn Store>,
    config: Arc<EncryptionConfig>,
}

fn transform_error(key: &str, reason: String) -> rkube_store::Error {
    rkube_store::Error::ValueTransform {
        key: key.to_owned(),
        reason,
    }
}

fn open_kv(config: &EncryptionConfig, mut kv: KeyValue) -> Result<KeyValue> {
    if !kv.value.is_empty() {
        kv.value = config
            .decrypt(&kv.key, &kv.value)
            .map_err(|e| transform_error(&kv.key, e))?
            .into();
    }
    Ok(kv)
}

fn open_event(config: &EncryptionConfig, mut e: Event) -> Result<Event> {
    e.kv = open_kv(config, e.kv)?;
    e.prev_kv = e.prev_kv.map(|kv| open_kv(config, kv)).transpose()?;
    Ok(e)
}

fn open_error(config: &EncryptionConfig, err: rkube_store::Error) -> rkube_store::Error {
    match err {
        rkube_store::Error::Conflict {
            key,
            expected,
            current,
        } => match open_kv(config, *current) {
            Ok(current) => rkube_store::Error::Conflict {
                key,
                expected,
                current: Box::new(current),
            },
            Err(e) => e,
        },
        other => other,
    }
}

impl Encrypted {
    fn seal(&self, key: &str, value: &[u8]) -> Result<Bytes> {
        self.config
            .encrypt(key, value)
            .map(Bytes::from)
            .map_err(|e| transform_error(key, e))
    }
}

#[async_trait]
impl Store for Encrypted {
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        let sealed = self.seal(key, &value)?;
        let mut kv = self.inner.create(key, sealed).await?;
        kv.value = value;
        Ok(kv)
    }

    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<GetResult> {
        let mut got = self.inner.get(key, revision).await?;
        got.kv = got.kv.map(|kv| open_kv(&self.config, kv)).transpose()?;
        Ok(got)
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListResult> {
        let mut page = self.inner.list(prefix, options).await?;
        page.kvs = page
            .kvs
            .into_iter()
            .map(|kv| open_kv(&self.config, kv))
            .collect::<Result<_>>()?;
        Ok(page)
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        self.inner.count(prefix).await
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue> {
        let sealed = self.seal(key, &value)?;
        match self.inner.update(key, sealed, expected).await {
            Ok(mut kv) => {
                kv.value = value;
                Ok(kv)
            }
            Err(e) => Err(open_error(&self.config, e)),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<DeleteResult> {
        match self.inner.delete(key, expected).await {
            Ok(mut d) => {
                d.prev_kv = open_kv(&self.config, d.prev_kv)?;
                Ok(d)
            }
            Err(e) => Err(open_error(&self.config, e)),
        }
    }

    async fn watch(&self, prefix: &str, after_revision: Revision) -> Result<WatchStream> {
        let stream = self.inner.watch(prefix, after_revision).await?;
        let config = self.config.clone();
        Ok(stream.map(move |msg| match msg {
            WatchResponse::Events(events) => events
                .into_iter()
                .map(|e| open_event(&config, e))
                .collect::<Result<_>>()
                .map(WatchResponse::Events),
            progress => Ok(progress),
        }))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn config(providers: &str) -> EncryptionConfig {
        EncryptionConfig::parse(&format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n{providers}"
        ))
        .unwrap()
    }

    const KEY: &str = "/registry/secrets/ns/s";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The GCM specification's test case 9 (AES-192, no additional data) and test
    /// case 16 (AES-256 with additional data): the 192-bit path is real AES-GCM.
    #[test]
    fn aesgcm_matches_the_gcm_specification_vectors() {
        let plain = unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255");
        let nonce: [u8; 12] = unhex("cafebabefacedbaddecaf888").try_into().unwrap();
        let key192 = unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c");
        let sealed = gcm_seal(&key192, &nonce, b"", &plain).unwrap();
        let want = unhex("3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710acade2569924a7c8587336bfb118024db8674a14");
        assert_eq!(sealed, want);
        assert_eq!(gcm_open(&key192, &nonce, b"", &sealed).unwrap(), plain);
        assert!(gcm_open(&key192, &nonce, b"other", &sealed).is_err());
    }

    #[test]
    fn every_provider_round_trips_with_upstreams_prefix() {
        let k16 = b64(&[1; 16]);
        let k32 = b64(&[2; 32]);
        for (kind, secret, prefix) in [
            ("aescbc", &k32, "k8s:enc:aescbc:v1:key1:"),
            ("aescbc", &k16, "k8s:enc:aescbc:v1:key1:"),
            ("aesgcm", &k16, "k8s:enc:aesgcm:v1:key1:"),
            ("aesgcm", &k32, "k8s:enc:aesgcm:v1:key1:"),
            ("aesgcm", &b64(&[3; 24]), "k8s:enc:aesgcm:v1:key1:"),
            ("secretbox", &k32, "k8s:enc:secretbox:v1:key1:"),
        ] {
            let c = config(&format!(
                "  - {kind}:\n      keys: [{{name: key1, secret: {secret}}}]\n"
            ));
            let sealed = c.encrypt(KEY, b"{\"data\":\"hunter2\"}").unwrap();
            assert!(sealed.starts_with(prefix.as_bytes()), "{kind}");
            assert!(!sealed.windows(7).any(|w| w == b"hunter2"), "{kind}");
            assert_eq!(c.decrypt(KEY, &sealed).unwrap(), b"{\"data\":\"hunter2\"}");
            // Tampering is detected (or at least never yields the plaintext).
            let mut bad = sealed.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert_ne!(
                c.decrypt(KEY, &bad).ok().as_deref(),
                Some(&b"{\"data\":\"hunter2\"}"[..])
            );
            // Other resources are untouched.
            assert_eq!(c.encrypt("/registry/configmaps/ns/c", b"x").unwrap(), b"x");
        }
    }

    #[test]
    fn identity_reads_plaintext_and_rotation_reads_old_keys() {
        let old = config(&format!(
            "  - aescbc:\n      keys: [{{name: old, secret: {}}}]\n  - identity: {{}}\n",
            b64(&[3; 32])
        ));
        assert_eq!(
            old.decrypt(KEY, b"{\"plain\":1}").unwrap(),
            b"{\"plain\":1}"
        );
        let sealed_old = old.encrypt(KEY, b"v").unwrap();
        let rotated = config(&format!(
            "  - aescbc:\n      keys: [{{name: new, secret: {}}}, {{name: old, secret: {}}}]\n",
            b64(&[4; 32]),
            b64(&[3; 32])
        ));
        assert_eq!(rotated.decrypt(KEY, &sealed_old).unwrap(), b"v");
        assert!(rotated
            .encrypt(KEY, b"v")
            .unwrap()
            .starts_with(b"k8s:enc:aescbc:v1:new:"));
        // Without identity, plaintext is refused; without the key, so is the value.
        assert_eq!(
            rotated.decrypt(KEY, b"{}").unwrap_err(),
            "no matching prefix found"
        );
        let forgot = config(&format!(
            "  - aescbc:\n      keys: [{{name: new, secret: {}}}]\n",
            b64(&[4; 32])
        ));
        assert!(forgot.decrypt(KEY, &sealed_old).is_err());
        // identity first: writes plaintext, still reads the encrypted.
        let off = config(&format!(
            "  - identity: {{}}\n  - aescbc:\n      keys: [{{name: old, secret: {}}}]\n",
            b64(&[3; 32])
        ));
        assert_eq!(off.encrypt(KEY, b"v").unwrap(), b"v");
        assert_eq!(off.decrypt(KEY, &sealed_old).unwrap(), b"v");
    }

    #[test]
    fn bad_configurations_are_refused() {
        for (providers, want) in [
            (
                "  - aescbc:\n      keys: [{name: k, secret: AAAA}]\n",
                "aescbc key must be 16, 24 or 32 bytes, got 3",
            ),
            ("  - secretbox:\n      keys: []\n", "at least one key"),
            ("  - kms: {name: x}\n", "Unsupported value: \"kms\""),
            (
                "  - aesgcm:\n      keys: [{name: 'a:b', secret: AAAAAAAAAAAAAAAAAAAAAA==}]\n",
                "must not contain ':'",
            ),
        ] {
            let err = EncryptionConfig::parse(&format!(
                "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n{providers}"
            ))
            .unwrap_err();
            assert!(err.contains(want), "{err}");
        }
    }
}
