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
        name: "statefulset-controller",
        alias: "statefulset",
        service_account: "statefulset-controller",
        enabled_by_default: true,
        start: |cx| crate::statefulset::run(cx).boxed(),
    },
    ControllerDef {
        name: "job-controller",
        alias: "job",
        service_account: "job-controller",
        enabled_by_default: true,
        start: |cx| crate::job::run(cx).boxed(),
    },
    ControllerDef {
        name: "ttl-after-finished-controller",
        alias: "ttl-after-finished",
        service_account: "ttl-after-finished-controller",
        enabled_by_default: true,
        start: |cx| crate::ttlafterfinished::run(cx).boxed(),
    },
];
