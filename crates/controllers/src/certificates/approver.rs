//! The CSR approver (upstream `certificatesigningrequest-approving-controller`): kubelet
//! client certificate requests (`kubernetes.io/kube-apiserver-client-kubelet`, shaped as
//! upstream's `ValidateKubeletClientCSR` wants) are approved when a SubjectAccessReview
//! says the requester may `create` `certificatesigningrequests/selfnodeclient` (renewing
//! its own node's certificate) or `certificatesigningrequests/nodeclient` (a new node,
//! e.g. with a bootstrap token); others are left for a person.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::PostParams;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

use super::*;
use crate::Context;

/// Runs the controller until dropped.
pub async fn run(cx: Context) {
    let api: Api<CertificateSigningRequest> = Api::all(cx.watch_client.clone());
    Controller::new(api, watcher::Config::default())
        .run(
            crate::metrics::queue().reconciler(reconcile),
            crate::metrics::queue().error_policy(error_policy),
            Arc::new(cx),
        )
        .for_each(|_| async {})
        .await;
}

/// The checks that may approve a request, in order: (subresource, message, applies).
fn recognizers(
    req: &Request,
    csr: &CertificateSigningRequest,
) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    if csr.spec.username.as_deref() == Some(req.common_name.as_str()) {
        out.push((
            "selfnodeclient",
            "Auto approving self kubelet client certificate after SubjectAccessReview.",
        ));
    }
    out.push((
        "nodeclient",
        "Auto approving kubelet client certificate after SubjectAccessReview.",
    ));
    out
}

#[derive(Debug, thiserror::Error)]
#[error("cannot approve csr {0}: {1}")]
struct Error(String, kube::Error);

async fn reconcile(csr: Arc<CertificateSigningRequest>, cx: Arc<Context>) -> Result<Action, Error> {
    let done = Ok(Action::await_change());
    if has_condition(&csr, "Approved")
        || has_condition(&csr, "Denied")
        || csr.spec.signer_name != KUBE_APISERVER_CLIENT_KUBELET
    {
        return done;
    }
    let Ok(req) = parse_request(&csr.spec.request.0) else {
        return done;
    };
    if validate_kubelet_client(&req, &csr).is_err() {
        return done;
    }
    let name = csr.name_any();
    let reviews: Api<SubjectAccessReview> = Api::all(cx.client.clone());
    for (subresource, message) in recognizers(&req, &csr) {
        let sar = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: csr.spec.username.clone(),
                groups: csr.spec.groups.clone(),
                uid: csr.spec.uid.clone(),
                extra: csr.spec.extra.clone(),
                resource_attributes: Some(ResourceAttributes {
                    group: Some("certificates.k8s.io".into()),
                    resource: Some("certificatesigningrequests".into()),
                    subresource: Some(subresource.into()),
                    verb: Some("create".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let allowed = reviews
            .create(&PostParams::default(), &sar)
            .await
            .map_err(|e| Error(name.clone(), e))?
            .status
            .is_some_and(|s| s.allowed);
        if !allowed {
            continue;
        }
        let mut updated = (*csr).clone();
        updated.metadata.managed_fields = None;
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        updated
            .status
            .get_or_insert_with(Default::default)
            .conditions
            .get_or_insert_with(Vec::new)
            .push(CertificateSigningRequestCondition {
                type_: "Approved".into(),
                status: "True".into(),
                reason: Some("AutoApproved".into()),
                message: Some(message.into()),
                last_update_time: Some(now.clone()),
                last_transition_time: Some(now),
            });
        let api: Api<CertificateSigningRequest> = Api::all(cx.client.clone());
        return match api
            .replace_subresource("approval", &name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => done,
            Err(kube::Error::Api(e)) if e.code == 404 => done,
            Err(kube::Error::Api(e)) if e.code == 409 => {
                Ok(Action::requeue(Duration::from_millis(200)))
            }
            Err(e) => Err(Error(name, e)),
        };
    }
    done
}

fn error_policy(_: Arc<CertificateSigningRequest>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(%error, "certificatesigningrequest-approving-controller");
    Action::requeue(Duration::from_secs(2))
}
