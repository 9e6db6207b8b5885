//! Every controller the manager knows, as data: adding one is one module and one row.

use futures::FutureExt;

use crate::ControllerDef;

/// The registry, in start order.
pub static CONTROLLERS: &[ControllerDef] = &[
    ControllerDef {
        name: "serviceaccount-controller",
        alias: "serviceaccount",
        service_account: "service-account-controller",
        enabled_by_default: true,
        start: |cx| crate::serviceaccount::run(cx).boxed(),
    },
    ControllerDef {
        name: "replicaset-controller",
        alias: "replicaset",
        service_account: "replicaset-controller",
        enabled_by_default: true,
        start: |cx| crate::replicaset::run_replicasets(cx).boxed(),
    },
    ControllerDef {
        name: "replicationcontroller-controller",
        alias: "replicationcontroller",
        service_account: "replication-controller",
        enabled_by_default: true,
        start: |cx| crate::replicaset::run_replication_controllers(cx).boxed(),
    },
    ControllerDef {
        name: "deployment-controller",
        alias: "deployment",
        service_account: "deployment-controller",
        enabled_by_default: true,
        start: |cx| crate::deployment::run(cx).boxed(),
    },
    ControllerDef {
        name: "daemonset-controller",
        alias: "daemonset",
        service_account: "daemon-set-controller",
        enabled_by_default: true,
        start: |cx| crate::daemonset::run(cx).boxed(),
    },
    ControllerDef {
        name: "namespace-controller",
        alias: "namespace",
        service_account: "namespace-controller",
        enabled_by_default: true,
        start: |cx| crate::namespace::run(cx).boxed(),
    },
    ControllerDef {
        name: "garbage-collector-controller",
        alias: "garbagecollector",
        service_account: "generic-garbage-collector",
        enabled_by_default: true,
        start: |cx| crate::garbagecollector::run(cx).boxed(),
    },
    ControllerDef {
        name: "pod-garbage-collector-controller",
        alias: "podgc",
        service_account: "pod-garbage-collector",
        enabled_by_default: true,
        start: |cx| crate::podgc::run(cx).boxed(),
    },
    ControllerDef {
        name: "resourcequota-controller",
        alias: "resourcequota",
        service_account: "resourcequota-controller",
        enabled_by_default: true,
        start: |cx| crate::resourcequota::run(cx).boxed(),
    },
    ControllerDef {
        name: "endpoints-controller",
        alias: "endpoint",
        service_account: "endpoint-controller",
        enabled_by_default: true,
        start: |cx| crate::endpoints::run(cx).boxed(),
    },
    ControllerDef {
        name: "endpointslice-controller",
        alias: "endpointslice",
        service_account: "endpointslice-controller",
        enabled_by_default: true,
        start: |cx| crate::endpointslice::run(cx).boxed(),
    },
    ControllerDef {
        name: "node-ipam-controller",
        alias: "nodeipam",
        service_account: "node-controller",
        enabled_by_default: true,
        start: |cx| crate::nodeipam::run(cx).boxed(),
    },
    ControllerDef {
        name: "node-lifecycle-controller",
        alias: "nodelifecycle",
        service_account: "node-controller",
        enabled_by_default: true,
        start: |cx| crate::nodelifecycle::run(cx).boxed(),
    },
    ControllerDef {
        name: "taint-eviction-controller",
        alias: "taint-eviction-controller",
        service_account: "node-controller",
        enabled_by_default: true,
        start: |cx| crate::tainteviction::run(cx).boxed(),
    },
    ControllerDef {
        name: "root-ca-certificate-publisher-controller",
        alias: "root-ca-cert-publisher",
        service_account: "root-ca-cert-publisher",
        enabled_by_default: true,
        start: |cx| crate::rootcacertpublisher::run(cx).boxed(),
    },
    ControllerDef {
        name: "serviceaccount-token-controller",
        alias: "serviceaccount-token",
        // Writes with the manager's own client (upstream's root "tokens-controller").
        service_account: "tokens-controller",
        enabled_by_default: true,
        start: |cx| crate::serviceaccounttoken::run(cx).boxed(),
    },
    ControllerDef {
        name: "bootstrap-signer-controller",
        alias: "bootstrapsigner",
        service_account: "bootstrap-signer",
        enabled_by_default: true,
        start: |cx| crate::bootstrap::signer::run(cx).boxed(),
    },
    ControllerDef {
        name: "token-cleaner-controller",
        alias: "tokencleaner",
        service_account: "token-cleaner",
        enabled_by_default: true,
        start: |cx| crate::bootstrap::tokencleaner::run(cx).boxed(),
    },
    ControllerDef {
        name: "certificatesigningrequest-approving-controller",
        alias: "csrapproving",
        service_account: "certificate-controller",
        enabled_by_default: true,
        start: |cx| crate::certificates::approver::run(cx).boxed(),
    },
    ControllerDef {
        name: "certificatesigningrequest-signing-controller",
        alias: "csrsigning",
        service_account: "certificate-controller",
        enabled_by_default: true,
        start: |cx| crate::certificates::signer::run(cx).boxed(),
    },
    ControllerDef {
        name: "disruption-controller",
        alias: "disruption",
        service_account: "disruption-controller",
        enabled_by_default: true,
        start: |cx| crate::disruption::run(cx).boxed(),
    },
];
