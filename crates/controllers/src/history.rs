//! ControllerRevisions (upstream `pkg/controller/history`), shared by the DaemonSet and
//! StatefulSet controllers: one revision per pod template, named `<owner>-<hash>`,
//! numbered in order of use, old ones pruned past `revisionHistoryLimit`.

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::podutil;

/// The label tying pods and ControllerRevisions to a template.
pub const REVISION_HASH: &str = "controller-revision-hash";

/// The current revision.
#[derive(Debug, Clone)]
pub struct Current {
    pub name: String,
    pub hash: String,
    pub revision: i64,
    /// Every revision the owner controls (before pruning), oldest first.
    pub all: Vec<ControllerRevision>,
}

/// The pod template a revision recorded.
pub fn template_of(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = rev.data.0.get("spec")?.get("template")?.clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

/// Makes (or renumbers, when an earlier template comes back) the revision of
/// `template` for `owner`, and prunes unused old ones beyond `limit` (default 10).
/// `in_use(name, hash)` says whether pods still run an old revision.
pub async fn sync<K>(
    client: &Client,
    owner: &K,
    template: &PodTemplateSpec,
    collision_count: Option<i32>,
    limit: Option<i32>,
    in_use: impl Fn(&str, &str) -> bool,
) -> Result<Current, kube::Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
{
    let ns = owner.namespace().unwrap_or_default();
    let hash = podutil::template_hash(template, collision_count);
    let name = format!("{}-{hash}", owner.name_any());
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
    let uid = owner.uid().unwrap_or_default();
    let mut all: Vec<ControllerRevision> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|r| podutil::controlled_by(&r.metadata, &uid))
        .collect();
    all.sort_by_key(|r| r.revision);
    let max = all.iter().filter_map(|r| r.revision).max().unwrap_or(0);
    let revision = match all
        .iter_mut()
        .find(|r| r.metadata.name.as_deref() == Some(name.as_str()))
    {
        Some(cur) if cur.revision < Some(max) => {
            // Back to an earlier template (rollout undo): it becomes the newest revision.
            cur.revision = Some(max + 1);
            *cur = api.replace(&name, &PostParams::default(), cur).await?;
            max + 1
        }
        Some(cur) => cur.revision.unwrap_or(max),
        None => {
            let mut labels = template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            labels.insert(REVISION_HASH.into(), hash.clone());
            let mut data = serde_json::to_value(template).unwrap_or_default();
            if let Some(m) = data.as_object_mut() {
                m.insert("$patch".into(), json!("replace"));
            }
            let rev = ControllerRevision {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(labels),
                    owner_references: Some(vec![podutil::controller_ref(owner)]),
                    ..Default::default()
                },
                data: RawExtension(json!({"spec": {"template": data}})),
                revision: Some(max + 1),
            };
            match api.create(&PostParams::default(), &rev).await {
                Ok(r) => all.push(r),
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e),
            }
            max + 1
        }
    };
    let limit = limit.unwrap_or(10).max(0) as usize;
    let old: Vec<&ControllerRevision> = all
        .iter()
        .filter(|r| r.metadata.name.as_deref() != Some(name.as_str()))
        .filter(|r| {
            let h = r
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_HASH));
            !in_use(&r.name_any(), h.map(String::as_str).unwrap_or_default())
        })
        .collect();
    if old.len() > limit {
        for r in old.iter().take(old.len() - limit) {
            match api.delete(&r.name_any(), &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(Current {
        name,
        hash,
        revision,
        all,
    })
}
