//! ServiceAccount: every pod runs as a service account (`default` unless named), which
//! must exist; its API credentials are mounted as the projected `kube-api-access-*`
//! volume and the account's imagePullSecrets are copied into pods that have none.

use serde_json::{json, Value};

use super::{is_pod_create, lookup, resource, Plugin, Request, Verdict};

/// Where the token, CA bundle and namespace are mounted in every container.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The projected volume's name prefix.
const VOLUME_PREFIX: &str = "kube-api-access-";
/// The projected token's lifetime: an hour plus seven seconds, so that kubelets can tell
/// the admission-made token from one a user asked for.
const TOKEN_SECONDS: i64 = 3607;
/// Marks a static pod's mirror.
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

pub struct ServiceAccount;

impl Plugin for ServiceAccount {
    fn name(&self) -> &'static str {
        "ServiceAccount"
    }

    fn mutate<'a>(&'a self, r: &'a mut Request) -> Verdict<'a> {
        Box::pin(async move {
            if !is_pod_create(r) {
                return Ok(());
            }
            let pod = r.object.as_ref().expect("a pod create has an object");
            if pod["metadata"]["annotations"][MIRROR_ANNOTATION].is_string() {
                if pod["spec"]["serviceAccountName"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty())
                {
                    return Err(r.forbidden("a mirror pod may not reference service accounts"));
                }
                return Ok(());
            }
            let name = pod["spec"]["serviceAccountName"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("default")
                .to_owned();
            let accounts = resource("", "v1", "serviceaccounts");
            let Some(account) = lookup(&r.state, accounts, Some(&r.namespace), &name).await? else {
                return Err(r.forbidden(format!(
                    "error looking up service account {}/{name}: serviceaccount \"{name}\" not found",
                    r.namespace
                )));
            };
            let pod = r.object.as_mut().expect("a pod create has an object");
            admit_pod(pod, &name, &account, random_suffix);
            Ok(())
        })
    }
}

/// Five characters of upstream's `rand.String` alphabet (no vowels, no look-alikes).
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Sets the pod's service account, mounts its credentials (unless automounting is off
/// on the pod, else on the account) and copies its imagePullSecrets.
fn admit_pod(pod: &mut Value, account_name: &str, account: &Value, suffix: fn() -> String) {
    let spec = &mut pod["spec"];
    spec["serviceAccountName"] = json!(account_name);
    let automount = spec["automountServiceAccountToken"]
        .as_bool()
        .or_else(|| account["automountServiceAccountToken"].as_bool())
        .unwrap_or(true);
    if automount {
        mount_token(spec, suffix);
    }
    let has_pull_secrets = spec["imagePullSecrets"]
        .as_array()
        .is_some_and(|s| !s.is_empty());
    if !has_pull_secrets {
        if let Some(secrets) = account["imagePullSecrets"]
            .as_array()
            .filter(|s| !s.is_empty())
        {
            spec["imagePullSecrets"] = Value::Array(
                secrets
                    .iter()
                    .map(|s| json!({"name": s["name"].as_str().unwrap_or("")}))
                    .collect(),
            );
        }
    }
}

/// Adds the projected token volume and a read-only mount of it in every container (and
/// init container) that has nothing mounted at [`MOUNT_PATH`].
fn mount_token(spec: &mut Value, suffix: fn() -> String) {
    let existing = spec["volumes"].as_array().and_then(|volumes| {
        volumes
            .iter()
            .filter_map(|v| v["name"].as_str())
            .find(|n| n.starts_with(VOLUME_PREFIX))
            .map(str::to_owned)
    });
    let volume_name = existing
        .clone()
        .unwrap_or_else(|| format!("{VOLUME_PREFIX}{}", suffix()));
    let mut mounted = false;
    for field in ["initContainers", "containers"] {
        let Some(containers) = spec[field].as_array_mut() else {
            continue;
        };
        for c in containers {
            let has_mount = c["volumeMounts"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["mountPath"] == MOUNT_PATH));
            if has_mount {
                continue;
            }
            let mount = json!({"name": volume_name, "readOnly": true, "mountPath": MOUNT_PATH});
            match c["volumeMounts"].as_array_mut() {
                Some(mounts) => mounts.push(mount),
                None => c["volumeMounts"] = json!([mount]),
            }
            mounted = true;
        }
    }
    if mounted && existing.is_none() {
        let volume = json!({
            "name": volume_name,
            "projected": {
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": TOKEN_SECONDS, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                ],
                "defaultMode": 420,
            },
        });
        match spec["volumes"].as_array_mut() {
            Some(volumes) => volumes.push(volume),
            None => spec["volumes"] = json!([volume]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed() -> String {
        "abcde".into()
    }

    #[test]
    fn cases() {
        struct Case {
            name: &'static str,
            pod: Value,
            account: Value,
            want_volume: bool,
            want_pull_secrets: Value,
        }
        let c = |n: &str| json!({"name": n, "image": "busybox"});
        let cases = [
            Case {
                name: "default account mounts the token",
                pod: json!({"spec": {"containers": [c("a"), c("b")]}}),
                account: json!({}),
                want_volume: true,
                want_pull_secrets: Value::Null,
            },
            Case {
                name: "pod opts out",
                pod: json!({"spec": {"automountServiceAccountToken": false, "containers": [c("a")]}}),
                account: json!({}),
                want_volume: false,
                want_pull_secrets: Value::Null,
            },
            Case {
                name: "account opts out, pull secrets copied",
                pod: json!({"spec": {"containers": [c("a")]}}),
                account: json!({"automountServiceAccountToken": false, "imagePullSecrets": [{"name": "reg"}]}),
                want_volume: false,
                want_pull_secrets: json!([{"name": "reg"}]),
            },
            Case {
                name: "pod's own pull secrets win",
                pod: json!({"spec": {"imagePullSecrets": [{"name": "mine"}], "containers": [c("a")]}}),
                account: json!({"imagePullSecrets": [{"name": "reg"}]}),
                want_volume: true,
                want_pull_secrets: json!([{"name": "mine"}]),
            },
        ];
        for case in cases {
            let mut pod = case.pod.clone();
            admit_pod(&mut pod, "default", &case.account, fixed);
            assert_eq!(
                pod["spec"]["serviceAccountName"], "default",
                "{}",
                case.name
            );
            let volume = pod["spec"]["volumes"]
                .as_array()
                .and_then(|v| v.iter().find(|v| v["name"] == "kube-api-access-abcde"));
            assert_eq!(volume.is_some(), case.want_volume, "{}", case.name);
            if let Some(volume) = volume {
                let sources = &volume["projected"]["sources"];
                assert_eq!(sources[0]["serviceAccountToken"]["expirationSeconds"], 3607);
                assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
                assert_eq!(
                    sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"],
                    "metadata.namespace"
                );
                for c in pod["spec"]["containers"].as_array().unwrap() {
                    assert_eq!(
                        c["volumeMounts"][0]["mountPath"], MOUNT_PATH,
                        "{}",
                        case.name
                    );
                    assert_eq!(c["volumeMounts"][0]["readOnly"], true);
                }
            }
            assert_eq!(
                pod["spec"]["imagePullSecrets"], case.want_pull_secrets,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn a_container_with_its_own_mount_keeps_it() {
        let mut pod = json!({"spec": {"containers": [
            {"name": "a", "volumeMounts": [{"name": "mine", "mountPath": MOUNT_PATH}]},
        ]}});
        admit_pod(&mut pod, "default", &json!({}), fixed);
        assert_eq!(
            pod["spec"]["containers"][0]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert!(pod["spec"]["volumes"].is_null());
    }
}
