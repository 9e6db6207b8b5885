//! The CRD controller inside the API server: upstream's naming, establishing and
//! finalizer controllers in one level-triggered loop.
//!
//! It follows the store's CRD prefix and, on every change, re-reads every CRD and:
//! accepts names that no other CRD of the group holds (`NamesAccepted`, `acceptedNames`)
//! and marks accepted CRDs `Established`; for a CRD being deleted, deletes its custom
//! resources (waiting for their own finalizers), then removes the
//! `customresourcecleanup.apiextensions.k8s.io` finalizer so the CRD goes; and finally
//! swaps the registry's snapshot, so what is served follows the CRDs without a restart.
//! [`start`] runs one pass before the server serves, so a restarted server serves its
//! CRDs from the first request.

use std::sync::Arc;
use std::time::Duration;

use rkube_store::Revision;
use serde_json::{json, Value};

use crate::codec::{decode_served, encode_for_store};
use crate::strategy::crds::{set_condition, CLEANUP_FINALIZER};
use crate::ApiState;

/// Where CRDs are stored.
pub const PREFIX: &str = "/registry/apiextensions.k8s.io/customresourcedefinitions/";

/// How often a pass is repeated while a CRD waits for its custom resources to go.
const RETRY: Duration = Duration::from_millis(500);

/// Runs the first pass, then keeps following CRDs in the background.
pub async fn start(state: &Arc<ApiState>) -> Result<(), rkube_store::Error> {
    let (revision, _) = reconcile(state).await?;
    tokio::spawn(follow(state.clone(), revision));
    Ok(())
}

async fn follow(state: Arc<ApiState>, mut revision: Revision) {
    loop {
        let mut watch = match state.store.watch(PREFIX, revision).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "crd controller: watch failed");
                tokio::time::sleep(RETRY).await;
                if let Ok((r, _)) = reconcile(&state).await {
                    revision = r;
                }
                continue;
            }
        };
        let mut pending = false;
        loop {
            let woke = if pending {
                tokio::time::timeout(RETRY, watch.recv()).await.ok()
            } else {
                Some(watch.recv().await)
            };
            match woke {
                Some(None) | Some(Some(Err(_))) => break,
                Some(Some(Ok(_))) | None => {}
            }
            match reconcile(&state).await {
                Ok((_, again)) => pending = again,
                Err(e) => {
                    tracing::warn!(error = %e, "crd controller: pass failed");
                    pending = true;
                }
            }
        }
        // The watch ended (store restart, compaction): list again and re-watch.
        match reconcile(&state).await {
            Ok((r, _)) => revision = r,
            Err(_) => tokio::time::sleep(RETRY).await,
        }
    }
}

fn condition(kind: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": kind, "status": status, "lastTransitionTime": crate::meta::now_rfc3339(), "reason": reason, "message": message})
}

fn find_condition<'a>(crd: &'a Value, kind: &str) -> Option<&'a Value> {
    crd["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// Upstream's naming decision for one CRD against the names the group's CRDs hold.
fn accept_names(crd: &mut Value, used_resources: &[String], used_kinds: &[String]) {
    let requested = crd["spec"]["names"].clone();
    let accepted = crd["status"]["acceptedNames"].clone();
    let mut names = if accepted.is_object() {
        accepted.clone()
    } else {
        json!({})
    };
    let mut problem: Option<(&str, String)> = None;
    let fresh = |field: &str, used: &[String]| -> Result<(), String> {
        let want = requested[field].as_str().unwrap_or("");
        if want == accepted[field].as_str().unwrap_or("") || !used.iter().any(|u| u == want) {
            Ok(())
        } else {
            Err(format!("{want:?} is already in use"))
        }
    };
    for (field, used, reason) in [
        ("plural", used_resources, "PluralConflict"),
        ("singular", used_resources, "SingularConflict"),
    ] {
        match fresh(field, used) {
            Ok(()) => names[field] = requested[field].clone(),
            Err(e) => problem = Some((reason, e)),
        }
    }
    let wanted_short: Vec<String> = requested["shortNames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let accepted_short: Vec<String> = accepted["shortNames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    if wanted_short != accepted_short {
        let own = [
            accepted["plural"].as_str().unwrap_or(""),
            accepted["singular"].as_str().unwrap_or(""),
        ];
        let conflicts: Vec<String> = wanted_short
            .iter()
            .filter(|s| !accepted_short.contains(s) && !own.contains(&s.as_str()))
            .filter(|s| used_resources.contains(s))
            .map(|s| format!("{s:?} is already in use"))
            .collect();
        if conflicts.is_empty() {
            names["shortNames"] = requested["shortNames"].clone();
        } else {
            problem = Some((
                "ShortNamesConflict",
                rkube_api::field_error::aggregate_messages(conflicts),
            ));
        }
    }
    for (field, reason) in [("kind", "KindConflict"), ("listKind", "ListKindConflict")] {
        match fresh(field, used_kinds) {
            Ok(()) => names[field] = requested[field].clone(),
            Err(e) => problem = Some((reason, e)),
        }
    }
    if requested["categories"].is_array() {
        names["categories"] = requested["categories"].clone();
    } else if let Some(m) = names.as_object_mut() {
        m.remove("categories");
    }
    if requested["shortNames"].is_null() {
        if let Some(m) = names.as_object_mut() {
            m.remove("shortNames");
        }
    }
    let names_accepted = match &problem {
        Some((reason, message)) => condition("NamesAccepted", "False", reason, message),
        None => condition("NamesAccepted", "True", "NoConflicts", "no conflicts found"),
    };
    let established = match (problem.is_none(), find_condition(crd, "Established")) {
        (_, Some(c)) if c["status"] == "True" => c.clone(),
        (true, _) => condition(
            "Established",
            "True",
            "InitialNamesAccepted",
            "the initial names have been accepted",
        ),
        (false, Some(c)) => c.clone(),
        (false, None) => condition(
            "Established",
            "False",
            "NotAccepted",
            "not all names are accepted",
        ),
    };
    crd["status"]["acceptedNames"] = names;
    set_condition(crd, names_accepted);
    set_condition(crd, established);
}

/// One pass over every CRD; returns the revision listed at and whether a CRD still
/// waits for its custom resources.
async fn reconcile(state: &Arc<ApiState>) -> Result<(Revision, bool), rkube_store::Error> {
    let listed = state.store.list(PREFIX, Default::default()).await?;
    let mut crds: Vec<(String, Value, Revision)> = listed
        .kvs
        .iter()
        .filter_map(|kv| {
            decode_served(&kv.value, kv.mod_revision)
                .ok()
                .map(|v| (kv.key.clone(), v, kv.mod_revision))
        })
        .collect();
    crds.sort_by(|a, b| {
        let ts = |v: &Value| {
            v["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        };
        ts(&a.1).cmp(&ts(&b.1)).then(a.0.cmp(&b.0))
    });
    let mut pending = false;
    let mut served = Vec::new();
    for i in 0..crds.len() {
        let (key, mut crd, revision) = crds[i].clone();
        if crd["metadata"]["deletionTimestamp"].is_string() {
            served.push(crd.clone());
            if !clean_up(state, &key, &mut crd, revision).await? {
                pending = true;
            }
            continue;
        }
        if crd["spec"]["names"] != crd["status"]["acceptedNames"]
            || find_condition(&crd, "Established").is_none_or(|c| c["status"] != "True")
        {
            let group = crd["spec"]["group"].clone();
            let mut used_resources = Vec::new();
            let mut used_kinds = Vec::new();
            for (_, other, _) in &crds {
                if other["spec"]["group"] != group {
                    continue;
                }
                let names = &other["status"]["acceptedNames"];
                for f in ["plural", "singular"] {
                    if let Some(s) = names[f].as_str() {
                        used_resources.push(s.to_owned());
                    }
                }
                for s in names["shortNames"].as_array().into_iter().flatten() {
                    used_resources.extend(s.as_str().map(str::to_owned));
                }
                for f in ["kind", "listKind"] {
                    if let Some(s) = names[f].as_str() {
                        used_kinds.push(s.to_owned());
                    }
                }
            }
            let before = crd.clone();
            accept_names(&mut crd, &used_resources, &used_kinds);
            if crd != before {
                match state
                    .store
                    .update(&key, encode_for_store(&crd).into(), revision)
                    .await
                {
                    Ok(kv) => crds[i] = (key.clone(), crd.clone(), kv.mod_revision),
                    // Changed meanwhile: the watch brings the next pass.
                    Err(
                        rkube_store::Error::Conflict { .. } | rkube_store::Error::NotFound { .. },
                    ) => crd = before,
                    Err(e) => return Err(e),
                }
            }
        }
        served.push(crd);
    }
    state.registry.replace(&served);
    Ok((listed.revision, pending))
}

/// Deletes a terminating CRD's custom resources; once none is left, drops the cleanup
/// finalizer (and with it the CRD, when no other finalizer holds it). Returns whether it
/// is done.
async fn clean_up(
    state: &Arc<ApiState>,
    key: &str,
    crd: &mut Value,
    revision: Revision,
) -> Result<bool, rkube_store::Error> {
    let finalizers: Vec<Value> = crd["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !finalizers.iter().any(|f| f == CLEANUP_FINALIZER) {
        return Ok(true);
    }
    let group = crd["spec"]["group"].as_str().unwrap_or("");
    let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or("");
    if group.is_empty() || plural.is_empty() {
        return Ok(true);
    }
    let prefix = format!("/registry/{group}/{plural}/");
    let objects = state.store.list(&prefix, Default::default()).await?;
    let mut left = 0;
    for kv in &objects.kvs {
        let Ok(mut obj) = serde_json::from_slice::<Value>(&kv.value) else {
            let _ = state.store.delete(&kv.key, Some(kv.mod_revision)).await;
            continue;
        };
        let held = obj["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if !held {
            match state.store.delete(&kv.key, Some(kv.mod_revision)).await {
                Ok(_) | Err(rkube_store::Error::NotFound { .. }) => {}
                Err(rkube_store::Error::Conflict { .. }) => left += 1,
                Err(e) => return Err(e),
            }
            continue;
        }
        left += 1;
        if !obj["metadata"]["deletionTimestamp"].is_string() {
            let meta = crate::meta::metadata_mut(&mut obj);
            meta.insert(
                "deletionTimestamp".into(),
                json!(crate::meta::now_rfc3339()),
            );
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            let _ = state
                .store
                .update(&kv.key, encode_for_store(&obj).into(), kv.mod_revision)
                .await;
        }
    }
    let before = crd.clone();
    if left > 0 {
        set_condition(
            crd,
            condition(
                "Terminating",
                "True",
                "InstanceDeletionInProgress",
                "CustomResource deletion is in progress",
            ),
        );
        if *crd != before {
            let _ = state
                .store
                .update(key, encode_for_store(crd).into(), revision)
                .await;
        }
        return Ok(false);
    }
    let rest: Vec<Value> = finalizers
        .into_iter()
        .filter(|f| f != CLEANUP_FINALIZER)
        .collect();
    let result = if rest.is_empty() {
        state.store.delete(key, Some(revision)).await.map(|_| ())
    } else {
        crd["metadata"]["finalizers"] = Value::Array(rest);
        set_condition(
            crd,
            condition(
                "Terminating",
                "True",
                "InstanceDeletionCompleted",
                "removed all instances",
            ),
        );
        state
            .store
            .update(key, encode_for_store(crd).into(), revision)
            .await
            .map(|_| ())
    };
    match result {
        Ok(()) => Ok(true),
        Err(rkube_store::Error::Conflict { .. } | rkube_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(plural: &str, kind: &str) -> Value {
        json!({"spec": {"group": "example.com", "names": {"plural": plural, "singular": plural.trim_end_matches('s'), "kind": kind, "listKind": format!("{kind}List")}}})
    }

    #[test]
    fn names_are_accepted_unless_taken() {
        let mut a = crd("widgets", "Widget");
        accept_names(&mut a, &[], &[]);
        assert_eq!(a["status"]["acceptedNames"]["plural"], "widgets");
        let named = find_condition(&a, "NamesAccepted").unwrap();
        assert_eq!(
            (named["status"].as_str(), named["reason"].as_str()),
            (Some("True"), Some("NoConflicts"))
        );
        assert_eq!(
            find_condition(&a, "Established").unwrap()["reason"],
            "InitialNamesAccepted"
        );

        let mut b = crd("widgets", "Gizmo");
        accept_names(
            &mut b,
            &["widgets".into(), "widget".into()],
            &["Widget".into(), "WidgetList".into()],
        );
        let named = find_condition(&b, "NamesAccepted").unwrap();
        assert_eq!(named["status"], "False");
        assert_eq!(named["reason"], "SingularConflict");
        assert_eq!(named["message"], "\"widget\" is already in use");
        assert_eq!(
            find_condition(&b, "Established").unwrap()["status"],
            "False"
        );
        assert_eq!(b["status"]["acceptedNames"]["kind"], "Gizmo");
        assert!(b["status"]["acceptedNames"]["plural"].is_null());
    }
}
