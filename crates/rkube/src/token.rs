//! `rkube token create|list|delete` (kubeadm's `kubeadm token`): bootstrap token Secrets
//! written through the API with the admin kubeconfig, and the join command that uses
//! one. Also the RBAC a token join needs, which `rkube server` keeps at start as
//! `kubeadm init` does.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{
    ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Api, Client};
use rkube_pki::bootstrap::{Token, DEFAULT_NODE_TOKEN_GROUP};

/// `rkube token`.
#[derive(clap::Args, Debug)]
pub(crate) struct TokenArgs {
    /// The admin kubeconfig (default: `admin.kubeconfig` in the data dir).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// The server's data dir, where the admin kubeconfig is looked for.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(clap::Subcommand, Debug)]
enum TokenCommand {
    /// Creates a bootstrap token for `rkube agent --token` and prints it.
    Create(CreateArgs),
    /// Lists the bootstrap tokens.
    List,
    /// Deletes bootstrap tokens (by ID or full token).
    Delete {
        #[arg(required = true)]
        tokens: Vec<String>,
    },
}

#[derive(clap::Args, Debug)]
struct CreateArgs {
    /// The token to create (`[a-z0-9]{6}.[a-z0-9]{16}`); random when omitted.
    token: Option<String>,
    /// How long the token is valid (e.g. 24h, 30m); 0 never expires.
    #[arg(long, default_value = "24h", value_parser = parse_ttl)]
    ttl: std::time::Duration,
    /// A human-readable description of the token.
    #[arg(long)]
    description: Option<String>,
    /// Print the whole `rkube agent` command that joins a node with this token.
    #[arg(long)]
    print_join_command: bool,
    /// The API server URL in the join command (default: the kubeconfig's; give an
    /// address the nodes can reach when the server listens on loopback only).
    #[arg(long)]
    server: Option<String>,
}

fn parse_ttl(s: &str) -> Result<std::time::Duration, String> {
    if s.trim() == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    crate::components::parse_duration(s)
}

pub(crate) async fn run(args: TokenArgs) -> Result<()> {
    let kubeconfig = args.kubeconfig.unwrap_or_else(|| {
        args.data_dir
            .unwrap_or_else(crate::default_data_dir)
            .join("admin.kubeconfig")
    });
    let client = crate::components::client_from_kubeconfig(&kubeconfig, "rkube-token").await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
    match args.command {
        TokenCommand::Create(create) => {
            let token = match &create.token {
                Some(t) => Token::parse(t)?,
                None => Token::generate(),
            };
            let secret = token_secret(
                &token,
                create.ttl,
                create.description.as_deref(),
                k8s_openapi::jiff::Timestamp::now(),
            );
            secrets
                .create(&PostParams::default(), &secret)
                .await
                .with_context(|| {
                    format!("cannot create the token Secret {}", token.secret_name())
                })?;
            if create.print_join_command {
                let server = match create.server {
                    Some(s) => s,
                    None => rkube_pki::kubeconfig::server_url(&kubeconfig)
                        .with_context(|| format!("no server in {}", kubeconfig.display()))?,
                };
                let pin = ca_pin(&kubeconfig)?;
                println!(
                    "rkube agent --server {server} --token {} --discovery-token-ca-cert-hash {pin}",
                    token.expose()
                );
            } else {
                println!("{}", token.expose());
            }
        }
        TokenCommand::List => {
            let list = secrets
                .list(&ListParams::default())
                .await
                .context("cannot list the bootstrap token Secrets")?;
            println!(
                "{:<24} {:<21} {:<40} {:<20} EXTRA GROUPS",
                "TOKEN", "EXPIRES", "USAGES", "DESCRIPTION"
            );
            for s in list.items {
                if s.type_.as_deref() != Some("bootstrap.kubernetes.io/token") {
                    continue;
                }
                let data = decoded(&s);
                let get = |k: &str| data.get(k).cloned().unwrap_or_default();
                if get("token-id").is_empty() {
                    continue;
                }
                let usages: Vec<&str> = ["authentication", "signing"]
                    .into_iter()
                    .filter(|u| get(&format!("usage-bootstrap-{u}")) == "true")
                    .collect();
                let expires = get("expiration");
                println!(
                    "{:<24} {:<21} {:<40} {:<20} {}",
                    format!("{}.<secret>", get("token-id")),
                    if expires.is_empty() {
                        "<forever>".into()
                    } else {
                        expires
                    },
                    usages.join(","),
                    get("description"),
                    get("auth-extra-groups"),
                );
            }
        }
        TokenCommand::Delete { tokens } => {
            for t in tokens {
                let id = t.split('.').next().unwrap_or_default().to_owned();
                let name = format!("bootstrap-token-{id}");
                secrets
                    .delete(&name, &DeleteParams::default())
                    .await
                    .with_context(|| format!("cannot delete the bootstrap token {id:?}"))?;
                println!("bootstrap token {id:?} deleted");
            }
        }
    }
    Ok(())
}

/// A Secret's data as text.
fn decoded(s: &Secret) -> BTreeMap<String, String> {
    s.data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

/// kubeadm's token Secret: for authentication and signing, in kubeadm's node group,
/// expiring after `ttl` (never when zero).
fn token_secret(
    token: &Token,
    ttl: std::time::Duration,
    description: Option<&str>,
    now: k8s_openapi::jiff::Timestamp,
) -> Secret {
    let mut data = BTreeMap::from([
        ("token-id".to_owned(), token.id.clone()),
        ("token-secret".to_owned(), token.secret.clone()),
        (
            "usage-bootstrap-authentication".to_owned(),
            "true".to_owned(),
        ),
        ("usage-bootstrap-signing".to_owned(), "true".to_owned()),
        (
            "auth-extra-groups".to_owned(),
            DEFAULT_NODE_TOKEN_GROUP.to_owned(),
        ),
    ]);
    if !ttl.is_zero() {
        let expires = now
            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(
                ttl.as_secs() as i64
            ))
            .unwrap_or(now);
        data.insert(
            "expiration".into(),
            expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        );
    }
    if let Some(d) = description {
        data.insert("description".into(), d.into());
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(token.secret_name()),
            namespace: Some("kube-system".into()),
            ..Default::default()
        },
        type_: Some("bootstrap.kubernetes.io/token".into()),
        string_data: Some(data),
        ..Default::default()
    }
}

/// The pin of the signing CA in the kubeconfig (the first certificate of its bundle).
fn ca_pin(kubeconfig: &std::path::Path) -> Result<String> {
    let parsed = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("cannot read {}", kubeconfig.display()))?;
    let data = parsed
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.certificate_authority_data.clone())
        .with_context(|| format!("no certificate-authority-data in {}", kubeconfig.display()))?;
    let pem = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, data.trim())
        .context("certificate-authority-data is not base64")?;
    let ders = rkube_pki::bootstrap::certificates_der(&String::from_utf8_lossy(&pem))?;
    Ok(rkube_pki::bootstrap::ca_pin(&ders[0])?)
}

/// The RBAC kubeadm sets up for token joins, kept by `rkube server` at start (created
/// when missing, never changed): tokens in kubeadm's node group may create node CSRs,
/// which are auto-approved; nodes' renewals are auto-approved; anyone may read
/// `cluster-info` (its JWS is what makes it trustworthy); and — rkube's own, because its
/// client CA is not the server CA — nodes may read the client CA their kubelet server
/// trusts from `extension-apiserver-authentication`.
pub(crate) async fn ensure_join_rbac(client: &Client) -> Result<()> {
    let group = |name: &str| Subject {
        kind: "Group".into(),
        api_group: Some("rbac.authorization.k8s.io".into()),
        name: name.into(),
        namespace: None,
    };
    let cluster_binding = |name: &str, role: &str, subject: Subject| ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: role.into(),
        },
        subjects: Some(vec![subject]),
    };
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    for b in [
        cluster_binding(
            "kubeadm:kubelet-bootstrap",
            "system:node-bootstrapper",
            group(DEFAULT_NODE_TOKEN_GROUP),
        ),
        cluster_binding(
            "kubeadm:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            group(DEFAULT_NODE_TOKEN_GROUP),
        ),
        cluster_binding(
            "kubeadm:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            group("system:nodes"),
        ),
    ] {
        create_if_missing(&bindings, &b).await?;
    }
    let public_roles: Api<Role> = Api::namespaced(client.clone(), "kube-public");
    let role = Role {
        metadata: ObjectMeta {
            name: Some("kubeadm:bootstrap-signer-clusterinfo".into()),
            namespace: Some("kube-public".into()),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".into()]),
            resource_names: Some(vec!["cluster-info".into()]),
            verbs: vec!["get".into()],
            ..Default::default()
        }]),
    };
    create_if_missing(&public_roles, &role).await?;
    let role_binding = |ns: &str, name: &str, role: &str, subject: Subject| RoleBinding {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: role.into(),
        },
        subjects: Some(vec![subject]),
    };
    let public_bindings: Api<RoleBinding> = Api::namespaced(client.clone(), "kube-public");
    create_if_missing(
        &public_bindings,
        &role_binding(
            "kube-public",
            "kubeadm:bootstrap-signer-clusterinfo",
            "kubeadm:bootstrap-signer-clusterinfo",
            Subject {
                kind: "User".into(),
                api_group: Some("rbac.authorization.k8s.io".into()),
                name: "system:anonymous".into(),
                namespace: None,
            },
        ),
    )
    .await?;
    let system_bindings: Api<RoleBinding> = Api::namespaced(client.clone(), "kube-system");
    create_if_missing(
        &system_bindings,
        &role_binding(
            "kube-system",
            "rkube:node-client-ca-reader",
            "extension-apiserver-authentication-reader",
            group("system:nodes"),
        ),
    )
    .await?;
    Ok(())
}

async fn create_if_missing<K>(api: &Api<K>, obj: &K) -> Result<()>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + k8s_openapi::serde::Serialize
        + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot create {name}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_secrets_are_kubeadms() {
        let token = Token::parse("abcdef.0123456789abcdef").unwrap();
        let now: k8s_openapi::jiff::Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        let s = token_secret(
            &token,
            std::time::Duration::from_secs(24 * 3600),
            Some("for n2"),
            now,
        );
        assert_eq!(s.metadata.name.as_deref(), Some("bootstrap-token-abcdef"));
        assert_eq!(s.type_.as_deref(), Some("bootstrap.kubernetes.io/token"));
        let d = s.string_data.unwrap();
        assert_eq!(d["expiration"], "2030-01-02T00:00:00Z");
        assert_eq!(d["token-secret"], "0123456789abcdef");
        assert_eq!(d["auth-extra-groups"], DEFAULT_NODE_TOKEN_GROUP);
        assert_eq!(d["usage-bootstrap-authentication"], "true");
        assert_eq!(d["usage-bootstrap-signing"], "true");
        assert_eq!(d["description"], "for n2");
        let forever = token_secret(&token, std::time::Duration::ZERO, None, now);
        assert!(!forever.string_data.unwrap().contains_key("expiration"));
        assert_eq!(parse_ttl("0"), Ok(std::time::Duration::ZERO));
        assert_eq!(parse_ttl("1h"), Ok(std::time::Duration::from_secs(3600)));
    }
}
