//! NamespaceLifecycle: nothing is created or changed in a namespace that does not exist,
//! nothing new in one being terminated, and the immortal namespaces are never deleted.

use super::{lookup, resource, Operation, Plugin, Request, Verdict};
use crate::error::ApiError;
use crate::meta::meta_str;

/// Namespaces that may not be deleted (upstream's immortal namespaces).
const IMMORTAL: [&str; 3] = ["default", "kube-system", "kube-public"];

pub struct NamespaceLifecycle;

impl Plugin for NamespaceLifecycle {
    fn name(&self) -> &'static str {
        "NamespaceLifecycle"
    }

    fn mutate<'a>(&'a self, r: &'a mut Request) -> Verdict<'a> {
        Box::pin(async move {
            let is_namespace = r.info.group.is_empty() && r.info.plural == "namespaces";
            if is_namespace {
                if r.operation == Operation::Delete && IMMORTAL.contains(&r.name.as_str()) {
                    return Err(r.forbidden("this namespace may not be deleted"));
                }
                return Ok(());
            }
            if r.namespace.is_empty() || r.operation == Operation::Delete {
                return Ok(());
            }
            // Access reviews and token reviews are computed, never stored.
            if r.info.is_virtual() {
                return Ok(());
            }
            let namespaces = resource("", "v1", "namespaces");
            let Some(ns) = lookup(&r.state, namespaces, None, &r.namespace).await? else {
                return Err(ApiError::not_found(namespaces, &r.namespace));
            };
            let terminating = meta_str(&ns, "deletionTimestamp").is_some()
                || ns["status"]["phase"] == "Terminating";
            if r.operation == Operation::Create && terminating {
                let mut err = r.forbidden(format!(
                    "unable to create new content in namespace {} because it is being terminated",
                    r.namespace
                ));
                if let Some(details) = err.0.details.as_mut() {
                    details.causes.push(rkube_api::status::StatusCause {
                        cause_type: "NamespaceTerminating".into(),
                        message: format!("namespace {} is being terminated", r.namespace),
                        field: "metadata.namespace".into(),
                    });
                }
                return Err(err);
            }
            Ok(())
        })
    }
}
