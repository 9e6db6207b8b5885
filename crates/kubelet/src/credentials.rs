//! Image pull credentials: a keyring built from a pod's `imagePullSecrets`
//! (`kubernetes.io/dockerconfigjson` and `kubernetes.io/dockercfg`), matched to an
//! image's registry the way upstream's credentialprovider keyring does: the entry's
//! scheme is dropped, `/v1/` and `/v2/` mean the host, the port must be equal, the host
//! has as many dot-separated parts as the entry's and each part matches its glob
//! (`*.example.com`), and the image path starts with the entry's path. Longer entries
//! come first; several matches are all tried, in that order.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use serde_json::Value;

use crate::cri::api::AuthConfig;

/// The secret type holding a `~/.docker/config.json` (`auths` map).
pub const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
/// The secret type holding a legacy `~/.dockercfg` (the map itself).
pub const DOCKER_CFG: &str = "kubernetes.io/dockercfg";

/// The host images without a registry come from, and the one their credentials are under.
const DEFAULT_REGISTRY: &str = "docker.io";
const DEFAULT_REGISTRY_HOST: &str = "index.docker.io";

/// One credential for a registry location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: String,
}

impl Credential {
    /// The CRI form of the credential. Like upstream, no `server_address`: the keyring
    /// already matched the registry (containerd would parse it as a URL and refuse a
    /// schemeless `host:port`).
    pub fn auth_config(&self) -> AuthConfig {
        AuthConfig {
            username: self.username.clone(),
            password: self.password.clone(),
            ..Default::default()
        }
    }
}

/// Registry locations (schemeless `host[:port][/path]`) and their credentials.
#[derive(Debug, Default, Clone)]
pub struct Keyring {
    creds: HashMap<String, Vec<Credential>>,
    /// The locations, longest (most specific) first.
    index: Vec<String>,
}

impl Keyring {
    /// A keyring from the pod's pull secrets, in the pod's order; secrets of another
    /// type or that do not parse are skipped (as upstream does).
    pub fn from_secrets<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Keyring {
        let mut k = Keyring::default();
        for s in secrets {
            let data = s.data.clone().unwrap_or_default();
            let config = match s.type_.as_deref() {
                Some(DOCKER_CONFIG_JSON) => data
                    .get(".dockerconfigjson")
                    .and_then(|b| serde_json::from_slice::<Value>(&b.0).ok())
                    .map(|v| v["auths"].clone()),
                Some(DOCKER_CFG) => data
                    .get(".dockercfg")
                    .and_then(|b| serde_json::from_slice::<Value>(&b.0).ok()),
                _ => None,
            };
            if let Some(Value::Object(entries)) = config {
                let entries: BTreeMap<_, _> = entries.into_iter().collect();
                for (location, entry) in entries {
                    if let Some(c) = entry_credential(&entry) {
                        k.add(&location, c);
                    }
                }
            }
        }
        k
    }

    /// Adds a credential for a location such as `https://host:5000/v2/` or `*.example.com/team`.
    pub fn add(&mut self, location: &str, credential: Credential) {
        let schemeless = location
            .strip_prefix("https://")
            .or_else(|| location.strip_prefix("http://"))
            .unwrap_or(location);
        let (host, path) = split_host_path(schemeless);
        let path = if path.starts_with("/v2/") || path.starts_with("/v1/") {
            &path[3..]
        } else {
            path
        };
        let key = if path.is_empty() || path == "/" {
            host.to_owned()
        } else {
            format!("{host}{path}")
        };
        let list = self.creds.entry(key.clone()).or_default();
        if !list.contains(&credential) {
            list.push(credential);
        }
        if !self.index.contains(&key) {
            self.index.push(key);
            // Reverse lexical order puts `host/team/app` before `host/team` before `host`.
            self.index.sort_by(|a, b| b.cmp(a));
        }
    }

    /// The credentials to try for `image` (a normalized reference without tag, such as
    /// `docker.io/library/busybox` or `127.0.0.1:5000/team/app`), most specific first.
    pub fn lookup(&self, image: &str) -> Vec<Credential> {
        let mut found = Vec::new();
        for k in &self.index {
            if urls_match(k, image) {
                found.extend(self.creds[k].iter().cloned());
            }
        }
        if found.is_empty() && split_host_path(image).0 == DEFAULT_REGISTRY {
            if let Some(c) = self.creds.get(DEFAULT_REGISTRY_HOST) {
                found.extend(c.iter().cloned());
            }
        }
        found
    }

    /// Whether the keyring holds no credential.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

/// A config entry's user and password: `auth` (base64 `user:password`) wins over the
/// `username` and `password` fields, as in the docker client.
fn entry_credential(entry: &Value) -> Option<Credential> {
    if let Some(auth) = entry["auth"].as_str().filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        return Some(Credential {
            username: user.to_owned(),
            password: password.trim_matches('\0').to_owned(),
        });
    }
    Some(Credential {
        username: entry["username"].as_str().unwrap_or_default().to_owned(),
        password: entry["password"].as_str().unwrap_or_default().to_owned(),
    })
}

fn split_host_path(s: &str) -> (&str, &str) {
    match s.find('/') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

fn split_port(host: &str) -> (&str, &str) {
    match host.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h, p),
        _ => (host, ""),
    }
}

/// Whether the schemeless `target` is covered by the schemeless `glob` location.
fn urls_match(glob: &str, target: &str) -> bool {
    let (glob_host, glob_path) = split_host_path(glob);
    let (target_host, target_path) = split_host_path(target);
    let (glob_host, glob_port) = split_port(glob_host);
    let (target_host, target_port) = split_port(target_host);
    if glob_port != target_port || !target_path.starts_with(glob_path) {
        return false;
    }
    let glob_parts: Vec<_> = glob_host.split('.').collect();
    let target_parts: Vec<_> = target_host.split('.').collect();
    glob_parts.len() == target_parts.len()
        && glob_parts
            .iter()
            .zip(&target_parts)
            .all(|(g, t)| glob_match(g.as_bytes(), t.as_bytes()))
}

/// Shell-style matching of one host label: `*` any run, `?` one character.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob_match(rest, &text[i..])),
        Some((b'?', rest)) => !text.is_empty() && glob_match(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && glob_match(rest, &text[1..]),
    }
}

/// The repository an image reference names, normalized as upstream's `ParseImageName`:
/// a missing registry is `docker.io`, a single-part name is under `library/`, and the
/// tag or digest is dropped.
pub fn repository(image: &str) -> String {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    let name = match without_digest[last_slash..].rfind(':') {
        Some(i) => &without_digest[..last_slash + i],
        None => without_digest,
    };
    let (first, rest) = match name.split_once('/') {
        Some((f, r)) => (f, Some(r)),
        None => (name, None),
    };
    match rest {
        Some(_) if first.contains(['.', ':']) || first == "localhost" => name.to_owned(),
        Some(_) => format!("{DEFAULT_REGISTRY}/{name}"),
        None => format!("{DEFAULT_REGISTRY}/library/{name}"),
    }
}

/// How long reading one pull secret from the API may take.
const SECRET_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The keyring of `pod`'s `imagePullSecrets`, and the names of those that could not be
/// read (upstream pulls anyway and says so in a `FailedToRetrieveImagePullSecret` event).
pub async fn pod_keyring(client: &kube::Client, pod: &Pod) -> (Keyring, Vec<String>) {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut secrets = Vec::new();
    let mut failed = Vec::new();
    let refs = pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.as_deref())
        .unwrap_or_default();
    for r in refs.iter().filter(|r| !r.name.is_empty()) {
        match tokio::time::timeout(SECRET_READ_TIMEOUT, api.get(&r.name)).await {
            Ok(Ok(s)) => secrets.push(s),
            Ok(Err(e)) => {
                tracing::info!(secret = %r.name, error = %e, "unable to retrieve pull secret, the image pull may not succeed");
                failed.push(r.name.clone());
            }
            Err(_) => {
                tracing::info!(secret = %r.name, "reading the pull secret timed out, the image pull may not succeed");
                failed.push(r.name.clone());
            }
        }
    }
    (Keyring::from_secrets(&secrets), failed)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;

    use super::*;

    fn cred(u: &str, p: &str) -> Credential {
        Credential {
            username: u.into(),
            password: p.into(),
        }
    }

    fn secret(type_: &str, key: &str, json: &str) -> Secret {
        Secret {
            type_: Some(type_.into()),
            data: Some([(key.to_owned(), ByteString(json.as_bytes().to_vec()))].into()),
            ..Default::default()
        }
    }

    #[test]
    fn repository_normalizes_like_parse_image_name() {
        for (image, want) in [
            ("busybox", "docker.io/library/busybox"),
            ("busybox:1", "docker.io/library/busybox"),
            ("team/app:v1", "docker.io/team/app"),
            ("127.0.0.1:5000/team/app:v1", "127.0.0.1:5000/team/app"),
            ("localhost/app", "localhost/app"),
            ("reg.example.com/app@sha256:abcd", "reg.example.com/app"),
            ("reg.example.com:443/a/b/c:t", "reg.example.com:443/a/b/c"),
        ] {
            assert_eq!(repository(image), want, "{image}");
        }
    }

    #[test]
    fn lookup_matches_as_upstreams_keyring() {
        let mut k = Keyring::default();
        k.add("https://127.0.0.1:5000/v2/", cred("port", "p"));
        k.add("*.example.com", cred("wild", "p"));
        k.add("http://reg.example.com/team", cred("team", "p"));
        k.add("reg.example.com", cred("host", "p"));
        k.add("index.docker.io", cred("hub", "p"));
        let names = |image: &str| -> Vec<String> {
            k.lookup(&repository(image))
                .into_iter()
                .map(|c| c.username)
                .collect()
        };
        assert_eq!(names("127.0.0.1:5000/app:1"), ["port"]);
        assert!(names("127.0.0.1:5001/app:1").is_empty(), "port differs");
        assert!(names("127.0.0.1/app:1").is_empty(), "no port vs port");
        assert_eq!(names("reg.example.com/team/app"), ["team", "host", "wild"]);
        assert_eq!(names("reg.example.com/other/app"), ["host", "wild"]);
        assert_eq!(names("x.example.com/app"), ["wild"]);
        assert!(names("a.b.example.com/app").is_empty(), "glob is one label");
        assert!(names("example.com/app").is_empty());
        assert_eq!(names("busybox"), ["hub"], "default registry");
    }

    #[test]
    fn secrets_of_both_types_auth_wins_over_fields() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let json = secret(
            DOCKER_CONFIG_JSON,
            ".dockerconfigjson",
            &format!(
                r#"{{"auths":{{"reg.io":{{"username":"ignored","password":"x","auth":"{auth}"}}}}}}"#
            ),
        );
        let cfg = secret(
            DOCKER_CFG,
            ".dockercfg",
            r#"{"https://other.io/v1/":{"username":"bob","password":"pw","email":"b@x"}}"#,
        );
        let opaque = secret("Opaque", ".dockerconfigjson", r#"{"auths":{"reg.io":{}}}"#);
        let broken = secret(DOCKER_CONFIG_JSON, ".dockerconfigjson", "{");
        let k = Keyring::from_secrets([&json, &cfg, &opaque, &broken]);
        assert_eq!(k.lookup("reg.io/app"), [cred("alice", "s3cret")]);
        assert_eq!(k.lookup("other.io/app"), [cred("bob", "pw")]);
        assert!(k.lookup("third.io/app").is_empty());
    }
}
