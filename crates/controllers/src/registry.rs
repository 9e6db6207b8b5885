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
        name: "disruption-controller",
        alias: "disruption",
        service_account: "disruption-controller",
        enabled_by_default: true,
        start: |cx| crate::disruption::run(cx).boxed(),
    },
];
