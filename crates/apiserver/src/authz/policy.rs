//! The default RBAC policy every cluster starts with (upstream's `bootstrappolicy`), as
//! data, and its reconciliation at server start.
//!
//! Rules are written as upstream's rule builder stores them (each list sorted). At start,
//! missing roles and bindings are created; existing ones not annotated
//! `rbac.authorization.kubernetes.io/autoupdate: "false"` get what they lack added (labels,
//! annotations, rules, aggregation selectors, subjects), never anything removed, as
//! upstream's reconciliation does. The per-controller `system:controller:*` roles belong
//! to the controller manager and come with it.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use super::rbac::{self, PolicyRule};
use crate::ApiState;

/// Every default object carries this label.
pub const BOOTSTRAP_LABEL: (&str, &str) = ("kubernetes.io/bootstrapping", "rbac-defaults");
/// The annotation that lets reconciliation update a default object (`"false"` stops it).
pub const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";

const AGG_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const AGG_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const AGG_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const RW: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const EVENT_WRITE: &[&str] = &["create", "patch", "update"];
const CREATE: &[&str] = &["create"];
const GET: &[&str] = &["get"];
const RW_NO_COLLECTION: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

const CORE: &[&str] = &[""];
const EVENTS: &[&str] = &["", "events.k8s.io"];

/// One rule of a default role.
#[derive(Clone, Copy, Debug)]
pub enum Rule {
    /// Verbs, API groups, resources.
    Res(
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
    ),
    /// The same, limited to resource names.
    Named(
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
    ),
    /// Verbs, non-resource URLs.
    Urls(&'static [&'static str], &'static [&'static str]),
}

impl Rule {
    pub fn to_policy_rule(self) -> PolicyRule {
        match self {
            Rule::Res(v, g, r) => PolicyRule::resources(v, g, r),
            Rule::Named(v, g, r, n) => PolicyRule::resources(v, g, r).names(n),
            Rule::Urls(v, u) => PolicyRule::urls(v, u),
        }
    }
}

/// A default ClusterRole.
#[derive(Debug)]
pub struct RoleDef {
    pub name: &'static str,
    /// Labels beyond the bootstrapping one (aggregation into admin/edit/view).
    pub labels: &'static [&'static str],
    /// Label keys (`…: "true"`) whose roles this one aggregates.
    pub aggregates: &'static [&'static str],
    pub rules: &'static [Rule],
}

use Rule::{Named, Res, Urls};

/// Upstream's default ClusterRoles.
#[rustfmt::skip]
pub const CLUSTER_ROLES: &[RoleDef] = &[
    RoleDef { name: "cluster-admin", labels: &[], aggregates: &[], rules: &[
        Res(&["*"], &["*"], &["*"]),
        Urls(&["*"], &["*"]),
    ]},
    RoleDef { name: "admin", labels: &[], aggregates: &[AGG_ADMIN], rules: &[] },
    RoleDef { name: "edit", labels: &[AGG_ADMIN], aggregates: &[AGG_EDIT], rules: &[] },
    RoleDef { name: "view", labels: &[AGG_EDIT], aggregates: &[AGG_VIEW], rules: &[] },
    RoleDef { name: "system:aggregate-to-admin", labels: &[AGG_ADMIN], aggregates: &[], rules: &[
        Res(CREATE, &["authorization.k8s.io"], &["localsubjectaccessreviews"]),
        Res(RW, &["rbac.authorization.k8s.io"], &["rolebindings", "roles"]),
    ]},
    RoleDef { name: "system:aggregate-to-edit", labels: &[AGG_EDIT], aggregates: &[], rules: &[
        Res(READ, CORE, &["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"]),
        Res(&["impersonate"], CORE, &["serviceaccounts"]),
        Res(WRITE, CORE, &["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"]),
        Res(CREATE, CORE, &["pods/eviction"]),
        Res(WRITE, CORE, &["configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
            "replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy"]),
        Res(CREATE, CORE, &["serviceaccounts/token"]),
        Res(WRITE, &["apps"], &["daemonsets", "deployments", "deployments/rollback", "deployments/scale",
            "replicasets", "replicasets/scale", "statefulsets", "statefulsets/scale"]),
        Res(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
        Res(WRITE, &["batch"], &["cronjobs", "jobs"]),
        Res(WRITE, &["extensions"], &["daemonsets", "deployments", "deployments/rollback", "deployments/scale",
            "ingresses", "networkpolicies", "replicasets", "replicasets/scale", "replicationcontrollers/scale"]),
        Res(WRITE, &["policy"], &["poddisruptionbudgets"]),
        Res(WRITE, &["networking.k8s.io"], &["ingresses", "networkpolicies"]),
        Res(RW, &["coordination.k8s.io"], &["leases"]),
    ]},
    RoleDef { name: "system:aggregate-to-view", labels: &[AGG_VIEW], aggregates: &[], rules: &[
        Res(READ, CORE, &["configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "pods",
            "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services", "services/status"]),
        Res(READ, CORE, &["bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status",
            "replicationcontrollers/status", "resourcequotas", "resourcequotas/status"]),
        Res(READ, CORE, &["namespaces"]),
        Res(READ, &["discovery.k8s.io"], &["endpointslices"]),
        Res(READ, &["apps"], &["controllerrevisions", "daemonsets", "daemonsets/status", "deployments", "deployments/scale",
            "deployments/status", "replicasets", "replicasets/scale", "replicasets/status", "statefulsets",
            "statefulsets/scale", "statefulsets/status"]),
        Res(READ, &["autoscaling"], &["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
        Res(READ, &["batch"], &["cronjobs", "cronjobs/status", "jobs", "jobs/status"]),
        Res(READ, &["extensions"], &["daemonsets", "daemonsets/status", "deployments", "deployments/scale",
            "deployments/status", "ingresses", "ingresses/status", "networkpolicies", "replicasets",
            "replicasets/scale", "replicasets/status", "replicationcontrollers/scale"]),
        Res(READ, &["policy"], &["poddisruptionbudgets", "poddisruptionbudgets/status"]),
        Res(READ, &["networking.k8s.io"], &["ingresses", "ingresses/status", "networkpolicies"]),
    ]},
    RoleDef { name: "system:auth-delegator", labels: &[], aggregates: &[], rules: &[
        Res(CREATE, &["authentication.k8s.io"], &["tokenreviews"]),
        Res(CREATE, &["authorization.k8s.io"], &["subjectaccessreviews"]),
    ]},
    RoleDef { name: "system:basic-user", labels: &[], aggregates: &[], rules: &[
        Res(CREATE, &["authorization.k8s.io"], &["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
        Res(CREATE, &["authentication.k8s.io"], &["selfsubjectreviews"]),
    ]},
    RoleDef { name: "system:certificates.k8s.io:certificatesigningrequests:nodeclient", labels: &[], aggregates: &[], rules: &[
        Res(CREATE, &["certificates.k8s.io"], &["certificatesigningrequests/nodeclient"]),
    ]},
    RoleDef { name: "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", labels: &[], aggregates: &[], rules: &[
        Res(CREATE, &["certificates.k8s.io"], &["certificatesigningrequests/selfnodeclient"]),
    ]},
    RoleDef { name: "system:certificates.k8s.io:kube-apiserver-client-approver", labels: &[], aggregates: &[], rules: &[
        Named(&["approve"], &["certificates.k8s.io"], &["signers"], &["kubernetes.io/kube-apiserver-client"]),
    ]},
    RoleDef { name: "system:certificates.k8s.io:kube-apiserver-client-kubelet-approver", labels: &[], aggregates: &[], rules: &[
        Named(&["approve"], &["certificates.k8s.io"], &["signers"], &["kubernetes.io/kube-apiserver-client-kubelet"]),
    ]},
    RoleDef { name: "system:certificates.k8s.io:kubelet-serving-approver", labels: &[], aggregates: &[], rules: &[
        Named(&["approve"], &["certificates.k8s.io"], &["signers"], &["kubernetes.io/kubelet-serving"]),
    ]},
    RoleDef { name: "system:certificates.k8s.io:legacy-unknown-approver", labels: &[], aggregates: &[], rules: &[
        Named(&["approve"], &["certificates.k8s.io"], &["signers"], &["kubernetes.io/legacy-unknown"]),
    ]},
    RoleDef { name: "system:discovery", labels: &[], aggregates: &[], rules: &[
        Urls(GET, &["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
            "/readyz", "/version", "/version/"]),
    ]},
    RoleDef { name: "system:heapster", labels: &[], aggregates: &[], rules: &[
        Res(READ, CORE, &["events", "namespaces", "nodes", "pods"]),
        Res(READ, &["extensions"], &["deployments"]),
    ]},
    RoleDef { name: "system:kube-aggregator", labels: &[], aggregates: &[], rules: &[
        Res(READ, CORE, &["endpoints", "services"]),
    ]},
    RoleDef { name: "system:kube-controller-manager", labels: &[], aggregates: &[], rules: &[
        Res(EVENT_WRITE, EVENTS, &["events"]),
        Res(CREATE, &["coordination.k8s.io"], &["leases"]),
        Named(&["get", "update"], &["coordination.k8s.io"], &["leases"], &["kube-controller-manager"]),
        Res(CREATE, CORE, &["secrets", "serviceaccounts"]),
        Res(&["delete"], CORE, &["secrets"]),
        Res(GET, CORE, &["configmaps", "namespaces", "secrets", "serviceaccounts"]),
        Res(&["update"], CORE, &["secrets", "serviceaccounts"]),
        Res(CREATE, &["authentication.k8s.io"], &["tokenreviews"]),
        Res(CREATE, &["authorization.k8s.io"], &["subjectaccessreviews"]),
        Res(&["list", "watch"], &["*"], &["*"]),
        Res(CREATE, CORE, &["serviceaccounts/token"]),
    ]},
    // Controllers' roles (upstream's controller_policy), used with per-controller
    // service-account credentials: `system:controller:<controller>`.
    RoleDef { name: "system:controller:disruption-controller", labels: &[], aggregates: &[], rules: &[
        Res(READ, &["apps", "extensions"], &["deployments"]),
        Res(READ, &["apps", "extensions"], &["replicasets"]),
        Res(READ, CORE, &["replicationcontrollers"]),
        Res(READ, &["policy"], &["poddisruptionbudgets"]),
        Res(READ, &["apps"], &["statefulsets"]),
        Res(&["update"], &["policy"], &["poddisruptionbudgets/status"]),
        Res(&["patch", "update"], CORE, &["pods/status"]),
        Res(GET, &["*"], &["*/scale"]),
        Res(EVENT_WRITE, EVENTS, &["events"]),
    ]},
    RoleDef { name: "system:controller:generic-garbage-collector", labels: &[], aggregates: &[], rules: &[
        Res(&["delete", "get", "list", "patch", "update", "watch"], &["*"], &["*"]),
        Res(EVENT_WRITE, EVENTS, &["events"]),
    ]},
    RoleDef { name: "system:controller:horizontal-pod-autoscaler", labels: &[], aggregates: &[], rules: &[
        Res(READ, &["autoscaling"], &["horizontalpodautoscalers"]),
        Res(&["update"], &["autoscaling"], &["horizontalpodautoscalers/status"]),
        Res(&["get", "update"], &["*"], &["*/scale"]),
        Res(&["list"], CORE, &["pods"]),
        Res(&["list"], &["metrics.k8s.io"], &["pods"]),
        Res(&["get", "list"], &["custom.metrics.k8s.io"], &["*"]),
        Res(&["get", "list"], &["external.metrics.k8s.io"], &["*"]),
        Res(EVENT_WRITE, EVENTS, &["events"]),
    ]},
    RoleDef { name: "system:controller:namespace-controller", labels: &[], aggregates: &[], rules: &[
        Res(&["delete", "get", "list", "watch"], CORE, &["namespaces"]),
        Res(&["update"], CORE, &["namespaces/finalize", "namespaces/status"]),
        Res(&["delete", "deletecollection", "get", "list", "watch"], &["*"], &["*"]),
    ]},
    RoleDef { name: "system:controller:pod-garbage-collector", labels: &[], aggregates: &[], rules: &[
        Res(&["delete", "list", "watch"], CORE, &["pods"]),
        Res(READ, CORE, &["nodes"]),
        Res(&["patch"], CORE, &["pods/status"]),
    ]},
    RoleDef { name: "system:controller:resourcequota-controller", labels: &[], aggregates: &[], rules: &[
        Res(&["list", "watch"], &["*"], &["*"]),
        Res(&["update"], CORE, &["resourcequotas/status"]),
        Res(EVENT_WRITE, EVENTS, &["events"]),
    ]},
    RoleDef { name: "system:controller:service-account-controller", labels: &[], aggregates: &[], rules: &[
        Res(CREATE, CORE, &["serviceaccounts"]),
        Res(EVENT_WRITE, EVENTS, &["events"]),
    ]},
    RoleDef { name: "system:controller:replicaset-controller", labels: &[], aggregates: &[], rules: &[
        Res(&["get", "list", "update", "watch"], &["apps", "extensions"], &["replicasets"]),
        Res(&["update"], &["apps", "extensions"], &["replicasets/finalizers", "replicasets/status"]),
        Res(&["create", "delete", "list", "patch", "watch"], CORE, &["pods"]),
        Res(EVENT_WRITE, EVENTS, &["events"]),
    ]},
    RoleDef { name: "system:controller:replication-controller", labels: &[], aggregates: &[], rules: &[
        Res(&["get", "list", "update", "watch"], CORE, &["replicationcontrollers"]),
        Res(&["update"], CORE, &["replicationcontrollers/finalizers", "replicationcontrollers/status"]),
        Res(&["create", "delete", "list", "patch", "watch"], CORE, &["pods"]),
        Res(EVENT_WRITE, EVENTS, &["events"]),
    ]},
    RoleDef { name: "system:controller:daemon-set-controller", labels: &[], aggregates: &[], rules: &[
        Res(READ, &["apps", "extensions"], &["daemonsets"]),
        Res(&["update"], &["apps", "extensions"], &["daemonsets/finalizers", "daemonsets/status"]),
        Res(&["list", "watch"], CORE, &["nodes"]),
        Res(&["create", "delete", "list", "patch", "watch"], CORE, &["pods"]),
        Res(CREATE, CORE, &["pods/binding"]),
        Res(RW_NO_COLLECTION, &["apps"], &["controllerrevisions"]),
        Res(EVENT_WRITE, EVENTS, &["events"]),
    ]},
    RoleDef { name: "system:controller:statefulset-controller", labels: &[], aggregates: &[], rules: &[
        Res(READ, &["apps"], &["statefulsets"]),
        Res(&["update"], &["apps"], &["statefulsets/finalizers", "statefulsets/status"]),
        Res(RW_NO_COLLECTION, CORE, &["pods"]),
        Res(&["update"], CORE, &["pods/finalizers"]),
        Res(RW_NO_COLLECTION, &["apps"], &["controllerrevisions"]),
        Res(&["create", "delete", "get", "list", "update", "watch"], CORE, &["persistentvolumeclaims"]),
        Res(EVENT_WRITE, EVENTS, &["events"]),
    ]},
    RoleDef { name: "system:controller:job-controller", labels: &[], aggregates: &[], rules: &[
        Res(&["get", "list", "patch", "update", "watch"], &["batch"], &["jobs"]),
        Res(&["update"], &["batch"], &["jobs/finalizers", "jobs/status"]),
        Res(&["create", "delete", "list", "patch", "watch"], CORE, &["pods"]),
        Res(EVENT_WRITE, EVENTS, &["events"]),
    ]},
    RoleDef { name: "system:controller:cronjob-controller", labels: &[], aggregates: &[], rules: &[
        Res(&["get", "list", "update", "watch"], &["batch"], &["cronjobs"]),
        Res(&["create", "delete", "get", "list", "patch", "update", "watch"], &["batch"], &["jobs"]),
        Res(&["update"], &["batch"], &["cronjobs/status"]),
        Res(&["update"], &["batch"], &["cronjobs/finalizers"]),
        Res(&["delete", "list"], CORE, &["pods"]),
        Res(EVENT_WRITE, EVENTS, &["events"]),
    ]},
    RoleDef { name: "system:controller:ttl-after-finished-controller", labels: &[], aggregates: &[], rules: &[
        Res(&["delete", "get", "list", "watch"], &["batch"], &["jobs"]),
        Res(EVENT_WRITE, EVENTS, &["events"]),
    ]},
    RoleDef { name: "system:controller:deployment-controller", labels: &[], aggregates: &[], rules: &[
        Res(&["get", "list", "update", "watch"], &["apps", "extensions"], &["deployments"]),
        Res(&["update"], &["apps", "extensions"], &["deployments/finalizers", "deployments/status"]),
        Res(RW_NO_COLLECTION, &["apps", "extensions"], &["replicasets"]),
        Res(&["get", "list", "update", "watch"], CORE, &["pods"]),
        Res(EVENT_WRITE, EVENTS, &["events"]),
    ]},
    RoleDef { name: "system:controller:endpoint-controller", labels: &[], aggregates: &[], rules: &[
        Res(READ, CORE, &["pods", "services"]),
        Res(&["create", "delete", "get", "list", "update", "watch"], CORE, &["endpoints"]),
        Res(CREATE, CORE, &["endpoints/restricted"]),
        Res(EVENT_WRITE, EVENTS, &["events"]),
    ]},
    RoleDef { name: "system:controller:endpointslice-controller", labels: &[], aggregates: &[], rules: &[
        Res(READ, CORE, &["nodes", "pods", "services"]),
        Res(&["update"], CORE, &["services/finalizers"]),
        Res(&["create", "delete", "get", "list", "update", "watch"], &["discovery.k8s.io"], &["endpointslices"]),
        Res(EVENT_WRITE, EVENTS, &["events"]),
    ]},
    RoleDef { name: "system:controller:endpointslicemirroring-controller", labels: &[], aggregates: &[], rules: &[
        Res(READ, CORE, &["endpoints", "services"]),
        Res(&["update"], CORE, &["services/finalizers"]),
        Res(&["update"], CORE, &["endpoints/finalizers"]),
        Res(&["create", "delete", "get", "list", "update", "watch"], &["discovery.k8s.io"], &["endpointslices"]),
        Res(EVENT_WRITE, EVENTS, &["events"]),
    ]},
    RoleDef { name: "system:controller:node-controller", labels: &[], aggregates: &[], rules: &[
        Res(&["delete", "get", "list", "patch", "update", "watch"], CORE, &["nodes"]),
        Res(&["patch", "update"], CORE, &["nodes/status"]),
        Res(&["patch", "update"], CORE, &["pods/status"]),
        Res(&["delete", "get", "list", "watch"], CORE, &["pods"]),
        Res(EVENT_WRITE, EVENTS, &["events"]),
    ]},
    RoleDef { name: "system:controller:root-ca-cert-publisher", labels: &[], aggregates: &[], rules: &[
        Res(&["create", "update"], CORE, &["configmaps"]),
        Res(EVENT_WRITE, EVENTS, &["events"]),
    ]},
    RoleDef { name: "system:controller:certificate-controller", labels: &[], aggregates: &[], rules: &[
        Res(&["delete", "get", "list", "watch"], &["certificates.k8s.io"], &["certificatesigningrequests"]),
        Res(&["update"], &["certificates.k8s.io"], &["certificatesigningrequests/approval", "certificatesigningrequests/status"]),
        Named(&["approve"], &["certificates.k8s.io"], &["signers"], &["kubernetes.io/kube-apiserver-client-kubelet"]),
        Named(&["sign"], &["certificates.k8s.io"], &["signers"], &["kubernetes.io/kube-apiserver-client", "kubernetes.io/kube-apiserver-client-kubelet", "kubernetes.io/kubelet-serving", "kubernetes.io/legacy-unknown"]),
        Res(CREATE, &["authorization.k8s.io"], &["subjectaccessreviews"]),
        Res(EVENT_WRITE, EVENTS, &["events"]),
    ]},
    RoleDef { name: "system:kube-dns", labels: &[], aggregates: &[], rules: &[
        Res(&["list", "watch"], CORE, &["endpoints", "services"]),
    ]},
    RoleDef { name: "system:kube-scheduler", labels: &[], aggregates: &[], rules: &[
        Res(EVENT_WRITE, EVENTS, &["events"]),
        Res(CREATE, &["coordination.k8s.io"], &["leases"]),
        Named(&["get", "list", "update", "watch"], &["coordination.k8s.io"], &["leases"], &["kube-scheduler"]),
        Res(RW, &["coordination.k8s.io"], &["leasecandidates"]),
        Res(READ, CORE, &["nodes"]),
        Res(&["delete", "get", "list", "watch"], CORE, &["pods"]),
        Res(CREATE, CORE, &["bindings", "pods/binding"]),
        Res(&["patch", "update"], CORE, &["pods/status"]),
        Res(READ, CORE, &["replicationcontrollers", "services"]),
        Res(READ, &["apps", "extensions"], &["replicasets"]),
        Res(READ, &["apps"], &["statefulsets"]),
        Res(READ, &["policy"], &["poddisruptionbudgets"]),
        Res(READ, CORE, &["persistentvolumeclaims", "persistentvolumes"]),
        Res(CREATE, &["authentication.k8s.io"], &["tokenreviews"]),
        Res(CREATE, &["authorization.k8s.io"], &["subjectaccessreviews"]),
        Res(READ, &["storage.k8s.io"], &["csinodes"]),
        Res(READ, &["storage.k8s.io"], &["volumeattachments"]),
        Res(READ, CORE, &["namespaces"]),
        Res(READ, &["storage.k8s.io"], &["csidrivers"]),
        Res(READ, &["storage.k8s.io"], &["csistoragecapacities"]),
        Res(READ, &["resource.k8s.io"], &["deviceclasses"]),
        Res(&["get", "list", "patch", "update", "watch"], &["resource.k8s.io"], &["resourceclaims"]),
        Res(&["get", "list", "patch", "update", "watch"], &["resource.k8s.io"], &["resourceclaims/status"]),
        Res(&["get", "list", "patch", "update", "watch"], CORE, &["pods/finalizers"]),
        Res(READ, &["resource.k8s.io"], &["resourceslices"]),
    ]},
    RoleDef { name: "system:kubelet-api-admin", labels: &[], aggregates: &[], rules: &[
        Res(READ, CORE, &["nodes"]),
        Res(&["proxy"], CORE, &["nodes"]),
        Res(&["*"], CORE, &["nodes/log", "nodes/metrics", "nodes/proxy", "nodes/stats"]),
    ]},
    RoleDef { name: "system:monitoring", labels: &[], aggregates: &[], rules: &[
        Urls(GET, &["/healthz", "/healthz/*", "/livez", "/livez/*", "/metrics", "/metrics/slis", "/readyz", "/readyz/*"]),
    ]},
    RoleDef { name: "system:node", labels: &[], aggregates: &[], rules: &[
        Res(CREATE, &["authentication.k8s.io"], &["tokenreviews"]),
        Res(CREATE, &["authorization.k8s.io"], &["localsubjectaccessreviews", "subjectaccessreviews"]),
        Res(READ, CORE, &["services"]),
        Res(&["create", "get", "list", "watch"], CORE, &["nodes"]),
        Res(&["patch", "update"], CORE, &["nodes/status"]),
        Res(&["patch", "update"], CORE, &["nodes"]),
        Res(EVENT_WRITE, CORE, &["events"]),
        Res(READ, CORE, &["pods"]),
        Res(&["create", "delete"], CORE, &["pods"]),
        Res(&["patch", "update"], CORE, &["pods/status"]),
        Res(CREATE, CORE, &["pods/eviction"]),
        Res(READ, CORE, &["configmaps", "secrets"]),
        Res(GET, CORE, &["persistentvolumeclaims", "persistentvolumes"]),
        Res(GET, CORE, &["endpoints"]),
        Res(&["create", "get", "list", "watch"], &["certificates.k8s.io"], &["certificatesigningrequests"]),
        Res(&["create", "delete", "get", "patch", "update"], &["coordination.k8s.io"], &["leases"]),
        Res(GET, &["storage.k8s.io"], &["volumeattachments"]),
        Res(CREATE, CORE, &["serviceaccounts/token"]),
        Res(&["get", "patch", "update"], CORE, &["persistentvolumeclaims/status"]),
        Res(READ, &["storage.k8s.io"], &["csidrivers"]),
        Res(&["create", "delete", "get", "patch", "update"], &["storage.k8s.io"], &["csinodes"]),
        Res(READ, &["node.k8s.io"], &["runtimeclasses"]),
        Res(GET, &["resource.k8s.io"], &["resourceclaims"]),
        Res(&["deletecollection"], &["resource.k8s.io"], &["resourceslices"]),
    ]},
    RoleDef { name: "system:node-bootstrapper", labels: &[], aggregates: &[], rules: &[
        Res(&["create", "get", "list", "watch"], &["certificates.k8s.io"], &["certificatesigningrequests"]),
    ]},
    RoleDef { name: "system:node-problem-detector", labels: &[], aggregates: &[], rules: &[
        Res(GET, CORE, &["nodes"]),
        Res(&["patch"], CORE, &["nodes/status"]),
        Res(EVENT_WRITE, EVENTS, &["events"]),
    ]},
    RoleDef { name: "system:node-proxier", labels: &[], aggregates: &[], rules: &[
        Res(&["list", "watch"], CORE, &["endpoints", "services"]),
        Res(READ, CORE, &["nodes"]),
        Res(EVENT_WRITE, EVENTS, &["events"]),
        Res(&["list", "watch"], &["discovery.k8s.io"], &["endpointslices"]),
    ]},
    RoleDef { name: "system:persistent-volume-provisioner", labels: &[], aggregates: &[], rules: &[
        Res(&["create", "delete", "get", "list", "watch"], CORE, &["persistentvolumes"]),
        Res(&["get", "list", "update", "watch"], CORE, &["persistentvolumeclaims"]),
        Res(READ, &["storage.k8s.io"], &["storageclasses"]),
        Res(&["watch"], CORE, &["events"]),
        Res(EVENT_WRITE, EVENTS, &["events"]),
    ]},
    RoleDef { name: "system:public-info-viewer", labels: &[], aggregates: &[], rules: &[
        Urls(GET, &["/healthz", "/livez", "/readyz", "/version", "/version/"]),
    ]},
    RoleDef { name: "system:service-account-issuer-discovery", labels: &[], aggregates: &[], rules: &[
        Urls(GET, &["/.well-known/openid-configuration", "/.well-known/openid-configuration/",
            "/openid/v1/jwks", "/openid/v1/jwks/"]),
    ]},
    RoleDef { name: "system:volume-scheduler", labels: &[], aggregates: &[], rules: &[
        Res(&["get", "list", "patch", "update", "watch"], CORE, &["persistentvolumes"]),
        Res(READ, &["storage.k8s.io"], &["storageclasses"]),
        Res(&["get", "list", "patch", "update", "watch"], CORE, &["persistentvolumeclaims"]),
    ]},
];

/// A subject of a default binding.
#[derive(Clone, Copy, Debug)]
pub enum Subject {
    User(&'static str),
    Group(&'static str),
    /// Namespace, name.
    ServiceAccount(&'static str, &'static str),
}

/// A default ClusterRoleBinding (named after its ClusterRole).
#[derive(Debug)]
pub struct BindingDef {
    pub role: &'static str,
    pub subjects: &'static [Subject],
}

/// Upstream's default ClusterRoleBindings.
#[rustfmt::skip]
pub const CLUSTER_ROLE_BINDINGS: &[BindingDef] = &[
    BindingDef { role: "cluster-admin", subjects: &[Subject::Group("system:masters")] },
    BindingDef { role: "system:basic-user", subjects: &[Subject::Group("system:authenticated")] },
    BindingDef { role: "system:discovery", subjects: &[Subject::Group("system:authenticated")] },
    BindingDef { role: "system:kube-controller-manager", subjects: &[Subject::User("system:kube-controller-manager")] },
    BindingDef { role: "system:controller:disruption-controller", subjects: &[Subject::ServiceAccount("kube-system", "disruption-controller")] },
    BindingDef { role: "system:controller:generic-garbage-collector", subjects: &[Subject::ServiceAccount("kube-system", "generic-garbage-collector")] },
    BindingDef { role: "system:controller:horizontal-pod-autoscaler", subjects: &[Subject::ServiceAccount("kube-system", "horizontal-pod-autoscaler")] },
    BindingDef { role: "system:controller:namespace-controller", subjects: &[Subject::ServiceAccount("kube-system", "namespace-controller")] },
    BindingDef { role: "system:controller:pod-garbage-collector", subjects: &[Subject::ServiceAccount("kube-system", "pod-garbage-collector")] },
    BindingDef { role: "system:controller:resourcequota-controller", subjects: &[Subject::ServiceAccount("kube-system", "resourcequota-controller")] },
    BindingDef { role: "system:controller:service-account-controller", subjects: &[Subject::ServiceAccount("kube-system", "service-account-controller")] },
    BindingDef { role: "system:controller:replicaset-controller", subjects: &[Subject::ServiceAccount("kube-system", "replicaset-controller")] },
    BindingDef { role: "system:controller:replication-controller", subjects: &[Subject::ServiceAccount("kube-system", "replication-controller")] },
    BindingDef { role: "system:controller:daemon-set-controller", subjects: &[Subject::ServiceAccount("kube-system", "daemon-set-controller")] },
    BindingDef { role: "system:controller:statefulset-controller", subjects: &[Subject::ServiceAccount("kube-system", "statefulset-controller")] },
    BindingDef { role: "system:controller:job-controller", subjects: &[Subject::ServiceAccount("kube-system", "job-controller")] },
    BindingDef { role: "system:controller:cronjob-controller", subjects: &[Subject::ServiceAccount("kube-system", "cronjob-controller")] },
    BindingDef { role: "system:controller:ttl-after-finished-controller", subjects: &[Subject::ServiceAccount("kube-system", "ttl-after-finished-controller")] },
    BindingDef { role: "system:controller:deployment-controller", subjects: &[Subject::ServiceAccount("kube-system", "deployment-controller")] },
    BindingDef { role: "system:controller:endpoint-controller", subjects: &[Subject::ServiceAccount("kube-system", "endpoint-controller")] },
    BindingDef { role: "system:controller:endpointslice-controller", subjects: &[Subject::ServiceAccount("kube-system", "endpointslice-controller")] },
    BindingDef { role: "system:controller:endpointslicemirroring-controller", subjects: &[Subject::ServiceAccount("kube-system", "endpointslicemirroring-controller")] },
    BindingDef { role: "system:controller:node-controller", subjects: &[Subject::ServiceAccount("kube-system", "node-controller")] },
    BindingDef { role: "system:controller:root-ca-cert-publisher", subjects: &[Subject::ServiceAccount("kube-system", "root-ca-cert-publisher")] },
    BindingDef { role: "system:controller:certificate-controller", subjects: &[Subject::ServiceAccount("kube-system", "certificate-controller")] },
    BindingDef { role: "system:kube-dns", subjects: &[Subject::ServiceAccount("kube-system", "kube-dns")] },
    BindingDef { role: "system:kube-scheduler", subjects: &[Subject::User("system:kube-scheduler")] },
    BindingDef { role: "system:monitoring", subjects: &[Subject::Group("system:monitoring")] },
    // Nodes are authorized by the Node authorizer; the binding exists without subjects.
    BindingDef { role: "system:node", subjects: &[] },
    BindingDef { role: "system:node-proxier", subjects: &[Subject::User("system:kube-proxy")] },
    BindingDef { role: "system:public-info-viewer", subjects: &[
        Subject::Group("system:authenticated"),
        Subject::Group("system:unauthenticated"),
    ]},
    BindingDef { role: "system:service-account-issuer-discovery", subjects: &[Subject::Group("system:serviceaccounts")] },
    BindingDef { role: "system:volume-scheduler", subjects: &[Subject::User("system:kube-scheduler")] },
];

/// Upstream's default namespaced Roles (namespace_policy.go) that controllers here use:
/// (namespace, role).
pub const NAMESPACED_ROLES: &[(&str, RoleDef)] = &[
    (
        "kube-public",
        RoleDef {
            name: "system:controller:bootstrap-signer",
            labels: &[],
            aggregates: &[],
            rules: &[
                Res(READ, CORE, &["configmaps"]),
                Named(&["update"], CORE, &["configmaps"], &["cluster-info"]),
                Res(EVENT_WRITE, EVENTS, &["events"]),
                // rkube's bootstrap signer also makes cluster-info when nothing else has.
                Res(CREATE, CORE, &["configmaps"]),
            ],
        },
    ),
    (
        "kube-system",
        RoleDef {
            name: "system:controller:bootstrap-signer",
            labels: &[],
            aggregates: &[],
            rules: &[Res(READ, CORE, &["secrets"])],
        },
    ),
    (
        "kube-system",
        RoleDef {
            // Extension API servers and joining nodes read the client CA from here.
            name: "extension-apiserver-authentication-reader",
            labels: &[],
            aggregates: &[],
            rules: &[Named(
                READ,
                CORE,
                &["configmaps"],
                &["extension-apiserver-authentication"],
            )],
        },
    ),
    (
        "kube-system",
        RoleDef {
            name: "system:controller:token-cleaner",
            labels: &[],
            aggregates: &[],
            rules: &[
                Res(&["delete", "get", "list", "watch"], CORE, &["secrets"]),
                Res(EVENT_WRITE, EVENTS, &["events"]),
            ],
        },
    ),
];

/// Their RoleBindings: (namespace, binding of the Role named `role`).
pub const NAMESPACED_ROLE_BINDINGS: &[(&str, BindingDef)] = &[
    (
        "kube-public",
        BindingDef {
            role: "system:controller:bootstrap-signer",
            subjects: &[Subject::ServiceAccount("kube-system", "bootstrap-signer")],
        },
    ),
    (
        "kube-system",
        BindingDef {
            role: "system:controller:bootstrap-signer",
            subjects: &[Subject::ServiceAccount("kube-system", "bootstrap-signer")],
        },
    ),
    (
        "kube-system",
        BindingDef {
            role: "system:controller:token-cleaner",
            subjects: &[Subject::ServiceAccount("kube-system", "token-cleaner")],
        },
    ),
];

/// A cluster-scoped default object made a namespaced one (`Role`/`RoleBinding`).
fn namespaced(mut obj: Value, kind: &str, namespace: &str) -> Value {
    obj["kind"] = json!(kind);
    obj["metadata"]["namespace"] = json!(namespace);
    if obj.get("roleRef").is_some() {
        obj["roleRef"]["kind"] = json!("Role");
    }
    obj
}

fn default_metadata(name: &str, extra_labels: &[&str]) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert(BOOTSTRAP_LABEL.0.into(), json!(BOOTSTRAP_LABEL.1));
    for l in extra_labels {
        labels.insert((*l).into(), json!("true"));
    }
    json!({"name": name, "labels": labels, "annotations": {AUTOUPDATE: "true"}})
}

impl RoleDef {
    /// The ClusterRole object.
    pub fn to_object(&self) -> Value {
        let mut obj = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": default_metadata(self.name, self.labels),
        });
        if self.aggregates.is_empty() {
            obj["rules"] = Value::Array(
                self.rules
                    .iter()
                    .map(|r| r.to_policy_rule().to_json())
                    .collect(),
            );
        } else {
            let selectors: Vec<Value> = self
                .aggregates
                .iter()
                .map(|key| json!({"matchLabels": {*key: "true"}}))
                .collect();
            obj["aggregationRule"] = json!({"clusterRoleSelectors": selectors});
        }
        obj
    }
}

impl Subject {
    fn to_json(self) -> Value {
        match self {
            Subject::User(n) => {
                json!({"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": n})
            }
            Subject::Group(n) => {
                json!({"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": n})
            }
            Subject::ServiceAccount(ns, n) => {
                json!({"kind": "ServiceAccount", "name": n, "namespace": ns})
            }
        }
    }
}

impl BindingDef {
    /// The ClusterRoleBinding object.
    pub fn to_object(&self) -> Value {
        let mut obj = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": default_metadata(self.role, &[]),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": self.role},
        });
        if !self.subjects.is_empty() {
            obj["subjects"] = Value::Array(self.subjects.iter().map(|s| s.to_json()).collect());
        }
        obj
    }
}

/// Adds what `existing` lacks of `expected` (labels, annotations, and `merge`'s fields);
/// `None` when nothing is missing or the object opted out of updates.
fn reconciled(
    existing: &Value,
    expected: &Value,
    merge: impl FnOnce(&mut Value, &Value) -> bool,
) -> Option<Value> {
    if existing["metadata"]["annotations"][AUTOUPDATE] == "false" {
        return None;
    }
    let mut out = existing.clone();
    let mut changed = false;
    for field in ["labels", "annotations"] {
        if let Some(want) = expected["metadata"][field].as_object() {
            let meta = crate::meta::metadata_mut(&mut out);
            let have = meta
                .entry(field)
                .or_insert_with(|| json!({}))
                .as_object_mut();
            if let Some(have) = have {
                for (k, v) in want {
                    if !have.contains_key(k) {
                        have.insert(k.clone(), v.clone());
                        changed = true;
                    }
                }
            }
        }
    }
    changed |= merge(&mut out, expected);
    changed.then_some(out)
}

/// A ClusterRole with the expected rules it does not cover added (broken down, as
/// upstream adds them) and missing aggregation selectors appended.
fn merge_role(out: &mut Value, expected: &Value) -> bool {
    let mut changed = false;
    if expected.get("aggregationRule").is_some() {
        let want = expected["aggregationRule"]["clusterRoleSelectors"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let have = out["aggregationRule"]["clusterRoleSelectors"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut merged = have.clone();
        for s in want {
            if !merged.contains(&s) {
                merged.push(s);
            }
        }
        if merged.len() != have.len() || out.get("aggregationRule").is_none() {
            out["aggregationRule"] = json!({"clusterRoleSelectors": merged});
            changed = true;
        }
        // Aggregated rules belong to the aggregation controller.
        return changed;
    }
    let have = PolicyRule::list_from_json(&out["rules"]);
    let want = PolicyRule::list_from_json(&expected["rules"]);
    let (covered, missing) = rbac::covers(&have, &want);
    if !covered {
        let mut rules = out["rules"].as_array().cloned().unwrap_or_default();
        rules.extend(missing.iter().map(PolicyRule::to_json));
        out["rules"] = Value::Array(rules);
        changed = true;
    }
    changed
}

fn merge_binding(out: &mut Value, expected: &Value) -> bool {
    let want = expected["subjects"].as_array().cloned().unwrap_or_default();
    let mut have = out["subjects"].as_array().cloned().unwrap_or_default();
    let before = have.len();
    for s in want {
        let present = have.iter().any(|h| {
            h["kind"] == s["kind"] && h["name"] == s["name"] && h["namespace"] == s["namespace"]
        });
        if !present {
            have.push(s);
        }
    }
    if have.len() != before {
        out["subjects"] = Value::Array(have);
        true
    } else {
        false
    }
}

/// Creates the default roles and bindings that are missing and adds to existing ones
/// what they lack, through the API as the server's own loopback user.
pub async fn reconcile(state: &Arc<ApiState>) -> Result<(), String> {
    for role in CLUSTER_ROLES {
        let path = format!(
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/{}",
            role.name
        );
        ensure(
            state,
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            &path,
            role.to_object(),
            merge_role,
        )
        .await?;
    }
    for (ns, role) in NAMESPACED_ROLES {
        let base = format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles");
        ensure(
            state,
            &base,
            &format!("{base}/{}", role.name),
            namespaced(role.to_object(), "Role", ns),
            merge_role,
        )
        .await?;
    }
    for (ns, binding) in NAMESPACED_ROLE_BINDINGS {
        let base = format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings");
        ensure(
            state,
            &base,
            &format!("{base}/{}", binding.role),
            namespaced(binding.to_object(), "RoleBinding", ns),
            merge_binding,
        )
        .await?;
    }
    for binding in CLUSTER_ROLE_BINDINGS {
        let path = format!(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{}",
            binding.role
        );
        ensure(
            state,
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            &path,
            binding.to_object(),
            merge_binding,
        )
        .await?;
    }
    Ok(())
}

async fn ensure(
    state: &Arc<ApiState>,
    collection: &str,
    path: &str,
    expected: Value,
    merge: fn(&mut Value, &Value) -> bool,
) -> Result<(), String> {
    for _ in 0..5 {
        let (code, existing) = crate::internal_request(state, Method::GET, path, None).await;
        match code {
            StatusCode::NOT_FOUND => {
                let (code, body) =
                    crate::internal_request(state, Method::POST, collection, Some(&expected)).await;
                match code {
                    StatusCode::CREATED => return Ok(()),
                    StatusCode::CONFLICT => continue,
                    other => return Err(format!("cannot create {path}: {other}: {body}")),
                }
            }
            StatusCode::OK => {
                let Some(updated) = reconciled(&existing, &expected, merge) else {
                    return Ok(());
                };
                let (code, body) =
                    crate::internal_request(state, Method::PUT, path, Some(&updated)).await;
                match code {
                    StatusCode::OK => return Ok(()),
                    StatusCode::CONFLICT => continue,
                    other => return Err(format!("cannot update {path}: {other}: {body}")),
                }
            }
            other => return Err(format!("cannot read {path}: {other}: {existing}")),
        }
    }
    Err(format!("{path} kept changing while being reconciled"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_are_sorted_as_upstream_stores_them() {
        for role in CLUSTER_ROLES
            .iter()
            .chain(NAMESPACED_ROLES.iter().map(|(_, r)| r))
        {
            for rule in role.rules {
                let r = rule.to_policy_rule();
                for list in [
                    &r.verbs,
                    &r.api_groups,
                    &r.resources,
                    &r.resource_names,
                    &r.non_resource_urls,
                ] {
                    let mut sorted = list.clone();
                    sorted.sort();
                    assert_eq!(list, &sorted, "{}: {rule:?}", role.name);
                }
            }
        }
        for b in CLUSTER_ROLE_BINDINGS {
            assert!(CLUSTER_ROLES.iter().any(|r| r.name == b.role), "{}", b.role);
        }
    }

    #[test]
    fn reconciliation_only_adds() {
        let view = CLUSTER_ROLES
            .iter()
            .find(|r| r.name == "system:public-info-viewer")
            .unwrap();
        let expected = view.to_object();
        // An unchanged default needs nothing.
        assert!(reconciled(&expected, &expected, merge_role).is_none());
        // A role missing a URL gets just that added; extra rules stay.
        let mut trimmed = expected.clone();
        trimmed["rules"] = json!([{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version"]}, {"verbs": ["get"], "nonResourceURLs": ["/extra"]}]);
        let out = reconciled(&trimmed, &expected, merge_role).unwrap();
        assert_eq!(out["rules"].as_array().unwrap().len(), 3);
        assert_eq!(
            out["rules"][2],
            json!({"verbs": ["get"], "nonResourceURLs": ["/version/"]})
        );
        // autoupdate=false protects it.
        trimmed["metadata"]["annotations"][AUTOUPDATE] = json!("false");
        assert!(reconciled(&trimmed, &expected, merge_role).is_none());
    }
}
