//! The table of every built-in resource Kubernetes v1.37 serves, and the storage keys of each.
//!
//! One row per group/version/resource, taken from upstream's discovery documents: verbs exactly as
//! upstream lists them, short names, categories, singular name, kind, scope and subresources
//! (each with its own kind and verbs). Rows within a group version are in upstream's order
//! (alphabetical by plural); groups are in the order upstream's `/apis` lists them.
//!
//! Only GA (`v1`, `v2`) versions are here: upstream serves no beta or alpha API by default.

use std::fmt;

/// Every verb of a normal stored resource, as upstream lists them.
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
/// Namespaces cannot be deleted as a collection.
const RW_NO_DELETECOLLECTION: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
/// The verbs of create-only resources (bindings and the review resources).
const CREATE: &[&str] = &["create"];
/// The verbs of `status`-like subresources.
const GPU: &[&str] = &["get", "patch", "update"];
/// The verbs of connect (proxy) subresources.
const PROXY: &[&str] = &["create", "delete", "get", "patch", "update"];
/// The verbs of streaming connect subresources (exec, attach, portforward).
const CONNECT: &[&str] = &["create", "get"];

const NONE: &[&str] = &[];
const ALL: &[&str] = &["all"];
const API_EXTENSIONS: &[&str] = &["api-extensions"];
const NO_SUBRESOURCES: &[SubresourceInfo] = &[];

/// A subresource of a resource (`pods/status`, `deployments/scale`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SubresourceInfo {
    /// The subresource name, e.g. `status`.
    pub name: &'static str,
    /// The kind sent and received, e.g. `Scale`.
    pub kind: &'static str,
    /// The group of `kind`; empty when it is the parent resource's group.
    pub group: &'static str,
    /// The version of `kind`; empty when it is the parent resource's version.
    pub version: &'static str,
    /// The verbs the subresource supports.
    pub verbs: &'static [&'static str],
}

const fn sub(
    name: &'static str,
    kind: &'static str,
    verbs: &'static [&'static str],
) -> SubresourceInfo {
    SubresourceInfo {
        name,
        kind,
        group: "",
        version: "",
        verbs,
    }
}

const fn sub_gv(
    name: &'static str,
    kind: &'static str,
    group: &'static str,
    version: &'static str,
    verbs: &'static [&'static str],
) -> SubresourceInfo {
    SubresourceInfo {
        name,
        kind,
        group,
        version,
        verbs,
    }
}

/// One built-in resource in one group version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResourceInfo {
    /// The API group; empty for the core (legacy) group.
    pub group: &'static str,
    /// The version, e.g. `v1`.
    pub version: &'static str,
    /// The kind, e.g. `Deployment`.
    pub kind: &'static str,
    /// The plural resource name used in URLs, e.g. `deployments`.
    pub plural: &'static str,
    /// The singular name, e.g. `deployment`.
    pub singular: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// The verbs the resource supports, as upstream lists them.
    pub verbs: &'static [&'static str],
    /// Short names kubectl accepts, e.g. `deploy`.
    pub short_names: &'static [&'static str],
    /// Categories, e.g. `all`.
    pub categories: &'static [&'static str],
    /// Subresources, in upstream's order.
    pub subresources: &'static [SubresourceInfo],
    api_version: &'static str,
    storage_prefix: &'static str,
    /// Whether the row comes from a CustomResourceDefinition (see [`custom_row`]).
    custom: bool,
}

impl ResourceInfo {
    /// The `apiVersion` of objects of this resource: `v1` for the core group, else
    /// `<group>/<version>`.
    pub fn api_version(&self) -> &'static str {
        self.api_version
    }

    /// The store key prefix of this resource: `/registry/<group>/<plural>/`
    /// (core group: `/registry/<plural>/`). Every version of one group/resource shares it, and
    /// `events.k8s.io` events share the core events' prefix, as upstream's storage does.
    pub fn storage_prefix(&self) -> &'static str {
        self.storage_prefix
    }

    /// The store key of one object: the prefix, then `<namespace>/<name>` or `<name>`.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        let prefix = self.storage_prefix;
        match namespace {
            Some(ns) => {
                let mut key = String::with_capacity(prefix.len() + ns.len() + 1 + name.len());
                key.push_str(prefix);
                key.push_str(ns);
                key.push('/');
                key.push_str(name);
                key
            }
            None => {
                let mut key = String::with_capacity(prefix.len() + name.len());
                key.push_str(prefix);
                key.push_str(name);
                key
            }
        }
    }

    /// The store key prefix of every object in one namespace: the prefix, then `<namespace>/`.
    pub fn namespace_prefix(&self, namespace: &str) -> String {
        format!("{}{namespace}/", self.storage_prefix)
    }

    /// Whether the resource has no storage: bindings, the token and access reviews,
    /// self-subject reviews and component statuses are computed per request.
    pub fn is_virtual(&self) -> bool {
        matches!(
            (self.group, self.plural),
            ("", "bindings")
                | ("", "componentstatuses")
                | ("authentication.k8s.io", _)
                | ("authorization.k8s.io", _)
        )
    }

    /// Whether the row was made from a CustomResourceDefinition rather than built in.
    pub fn is_custom(&self) -> bool {
        self.custom
    }

    /// Whether the resource supports `verb`.
    pub fn has_verb(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }

    /// The subresource called `name`, if any.
    pub fn subresource(&self, name: &str) -> Option<&'static SubresourceInfo> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// The group and plural, as used in error messages (`deployments.apps`).
    pub fn group_resource(&self) -> GroupResource {
        GroupResource::new(self.group, self.plural)
    }

    /// The group and kind, as used in `Invalid` messages (`Deployment.apps`).
    pub fn group_kind(&self) -> GroupKind {
        GroupKind::new(self.group, self.kind)
    }
}

/// A resource qualified by its group (upstream `schema.GroupResource`); displays as `pods` or
/// `deployments.apps`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GroupResource {
    /// The API group; empty for the core group.
    pub group: String,
    /// The plural resource name.
    pub resource: String,
}

impl GroupResource {
    /// A group resource from its parts.
    pub fn new(group: &str, resource: &str) -> Self {
        Self {
            group: group.to_string(),
            resource: resource.to_string(),
        }
    }

    /// Whether both parts are empty.
    pub fn is_empty(&self) -> bool {
        self.group.is_empty() && self.resource.is_empty()
    }
}

impl fmt::Display for GroupResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// A kind qualified by its group (upstream `schema.GroupKind`); displays as `Pod` or
/// `Deployment.apps`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GroupKind {
    /// The API group; empty for the core group.
    pub group: String,
    /// The kind.
    pub kind: String,
}

impl GroupKind {
    /// A group kind from its parts.
    pub fn new(group: &str, kind: &str) -> Self {
        Self {
            group: group.to_string(),
            kind: kind.to_string(),
        }
    }
}

impl fmt::Display for GroupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.kind)
        } else {
            write!(f, "{}.{}", self.kind, self.group)
        }
    }
}

/// An API group served under `/apis`, with its versions, the preferred one first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupInfo {
    /// The group name.
    pub name: &'static str,
    /// The served versions in upstream's preference order.
    pub versions: &'static [&'static str],
}

impl GroupInfo {
    /// The preferred version (the first one).
    pub fn preferred_version(&self) -> &'static str {
        self.versions[0]
    }
}

/// The versions of the core group, served under `/api`.
pub const LEGACY_VERSIONS: &[&str] = &["v1"];

/// Every API group under `/apis`, in the order upstream lists them.
const GROUPS: &[GroupInfo] = &[
    GroupInfo {
        name: "apiregistration.k8s.io",
        versions: &["v1"],
    },
    GroupInfo {
        name: "apps",
        versions: &["v1"],
    },
    GroupInfo {
        name: "events.k8s.io",
        versions: &["v1"],
    },
    GroupInfo {
        name: "authentication.k8s.io",
        versions: &["v1"],
    },
    GroupInfo {
        name: "authorization.k8s.io",
        versions: &["v1"],
    },
    GroupInfo {
        name: "autoscaling",
        versions: &["v2", "v1"],
    },
    GroupInfo {
        name: "batch",
        versions: &["v1"],
    },
    GroupInfo {
        name: "certificates.k8s.io",
        versions: &["v1"],
    },
    GroupInfo {
        name: "networking.k8s.io",
        versions: &["v1"],
    },
    GroupInfo {
        name: "policy",
        versions: &["v1"],
    },
    GroupInfo {
        name: "rbac.authorization.k8s.io",
        versions: &["v1"],
    },
    GroupInfo {
        name: "storage.k8s.io",
        versions: &["v1"],
    },
    GroupInfo {
        name: "admissionregistration.k8s.io",
        versions: &["v1"],
    },
    GroupInfo {
        name: "apiextensions.k8s.io",
        versions: &["v1"],
    },
    GroupInfo {
        name: "scheduling.k8s.io",
        versions: &["v1"],
    },
    GroupInfo {
        name: "coordination.k8s.io",
        versions: &["v1"],
    },
    GroupInfo {
        name: "node.k8s.io",
        versions: &["v1"],
    },
    GroupInfo {
        name: "discovery.k8s.io",
        versions: &["v1"],
    },
    GroupInfo {
        name: "resource.k8s.io",
        versions: &["v1"],
    },
    GroupInfo {
        name: "flowcontrol.apiserver.k8s.io",
        versions: &["v1"],
    },
    GroupInfo {
        name: "storagemigration.k8s.io",
        versions: &["v1"],
    },
];

/// One table row. `core` rows have group `""`; `storage` overrides the key prefix for
/// resources that share another group's storage.
macro_rules! res {
    (core $kind:literal, $plural:literal, $singular:literal, ns: $ns:expr, verbs: $verbs:expr,
     short: $short:expr, cat: $cat:expr, sub: $sub:expr) => {
        ResourceInfo {
            group: "",
            version: "v1",
            kind: $kind,
            plural: $plural,
            singular: $singular,
            namespaced: $ns,
            verbs: $verbs,
            short_names: $short,
            categories: $cat,
            subresources: $sub,
            api_version: "v1",
            storage_prefix: concat!("/registry/", $plural, "/"),
            custom: false,
        }
    };
    ($group:literal $version:literal $kind:literal, $plural:literal, $singular:literal,
     ns: $ns:expr, verbs: $verbs:expr, short: $short:expr, cat: $cat:expr, sub: $sub:expr
     $(, storage: $storage:expr)?) => {
        ResourceInfo {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            namespaced: $ns,
            verbs: $verbs,
            short_names: $short,
            categories: $cat,
            subresources: $sub,
            api_version: concat!($group, "/", $version),
            storage_prefix: res!(@prefix $group, $plural $(, $storage)?),
            custom: false,
        }
    };
    (@prefix $group:literal, $plural:literal) => { concat!("/registry/", $group, "/", $plural, "/") };
    (@prefix $group:literal, $plural:literal, $storage:expr) => { $storage };
}

const BUILTIN: &[ResourceInfo] = &[
    // core/v1
    res!(core "Binding", "bindings", "binding", ns: true, verbs: CREATE, short: NONE, cat: NONE, sub: NO_SUBRESOURCES),
    res!(core "ComponentStatus", "componentstatuses", "componentstatus", ns: false, verbs: &["get", "list"], short: &["cs"], cat: NONE, sub: NO_SUBRESOURCES),
    res!(core "ConfigMap", "configmaps", "configmap", ns: true, verbs: RW, short: &["cm"], cat: NONE, sub: NO_SUBRESOURCES),
    res!(core "Endpoints", "endpoints", "endpoints", ns: true, verbs: RW, short: &["ep"], cat: NONE, sub: NO_SUBRESOURCES),
    res!(core "Event", "events", "event", ns: true, verbs: RW, short: &["ev"], cat: NONE, sub: NO_SUBRESOURCES),
    res!(core "LimitRange", "limitranges", "limitrange", ns: true, verbs: RW, short: &["limits"], cat: NONE, sub: NO_SUBRESOURCES),
    res!(core "Namespace", "namespaces", "namespace", ns: false, verbs: RW_NO_DELETECOLLECTION, short: &["ns"], cat: NONE,
        sub: &[sub("finalize", "Namespace", &["update"]), sub("status", "Namespace", GPU)]),
    res!(core "Node", "nodes", "node", ns: false, verbs: RW, short: &["no"], cat: NONE,
        sub: &[sub("proxy", "NodeProxyOptions", PROXY), sub("status", "Node", GPU)]),
    res!(core "PersistentVolumeClaim", "persistentvolumeclaims", "persistentvolumeclaim", ns: true, verbs: RW, short: &["pvc"], cat: NONE,
        sub: &[sub("status", "PersistentVolumeClaim", GPU)]),
    res!(core "PersistentVolume", "persistentvolumes", "persistentvolume", ns: false, verbs: RW, short: &["pv"], cat: NONE,
        sub: &[sub("status", "PersistentVolume", GPU)]),
    res!(core "Pod", "pods", "pod", ns: true, verbs: RW, short: &["po"], cat: ALL,
    sub: &[
        sub("attach", "PodAttachOptions", CONNECT),
        sub("binding", "Binding", CREATE),
        sub("ephemeralcontainers", "Pod", GPU),
        sub_gv("eviction", "Eviction", "policy", "v1", CREATE),
        sub("exec", "PodExecOptions", CONNECT),
        sub("log", "Pod", &["get"]),
        sub("portforward", "PodPortForwardOptions", CONNECT),
        sub("proxy", "PodProxyOptions", PROXY),
        sub("resize", "Pod", GPU),
        sub("status", "Pod", GPU),
    ]),
    res!(core "PodTemplate", "podtemplates", "podtemplate", ns: true, verbs: RW, short: NONE, cat: NONE, sub: NO_SUBRESOURCES),
    res!(core "ReplicationController", "replicationcontrollers", "replicationcontroller", ns: true, verbs: RW, short: &["rc"], cat: ALL,
        sub: &[sub_gv("scale", "Scale", "autoscaling", "v1", GPU), sub("status", "ReplicationController", GPU)]),
    res!(core "ResourceQuota", "resourcequotas", "resourcequota", ns: true, verbs: RW, short: &["quota"], cat: NONE,
        sub: &[sub("status", "ResourceQuota", GPU)]),
    res!(core "Secret", "secrets", "secret", ns: true, verbs: RW, short: NONE, cat: NONE, sub: NO_SUBRESOURCES),
    res!(core "ServiceAccount", "serviceaccounts", "serviceaccount", ns: true, verbs: RW, short: &["sa"], cat: NONE,
        sub: &[sub_gv("token", "TokenRequest", "authentication.k8s.io", "v1", CREATE)]),
    res!(core "Service", "services", "service", ns: true, verbs: RW, short: &["svc"], cat: ALL,
        sub: &[sub("proxy", "ServiceProxyOptions", PROXY), sub("status", "Service", GPU)]),
    // apiregistration.k8s.io/v1
    res!("apiregistration.k8s.io" "v1" "APIService", "apiservices", "apiservice", ns: false, verbs: RW, short: NONE, cat: API_EXTENSIONS,
        sub: &[sub("status", "APIService", GPU)]),
    // apps/v1
    res!("apps" "v1" "ControllerRevision", "controllerrevisions", "controllerrevision", ns: true, verbs: RW, short: NONE, cat: NONE, sub: NO_SUBRESOURCES),
    res!("apps" "v1" "DaemonSet", "daemonsets", "daemonset", ns: true, verbs: RW, short: &["ds"], cat: ALL,
        sub: &[sub("status", "DaemonSet", GPU)]),
    res!("apps" "v1" "Deployment", "deployments", "deployment", ns: true, verbs: RW, short: &["deploy"], cat: ALL,
        sub: &[sub_gv("scale", "Scale", "autoscaling", "v1", GPU), sub("status", "Deployment", GPU)]),
    res!("apps" "v1" "ReplicaSet", "replicasets", "replicaset", ns: true, verbs: RW, short: &["rs"], cat: ALL,
        sub: &[sub_gv("scale", "Scale", "autoscaling", "v1", GPU), sub("status", "ReplicaSet", GPU)]),
    res!("apps" "v1" "StatefulSet", "statefulsets", "statefulset", ns: true, verbs: RW, short: &["sts"], cat: ALL,
        sub: &[sub_gv("scale", "Scale", "autoscaling", "v1", GPU), sub("status", "StatefulSet", GPU)]),
    // events.k8s.io/v1: the same objects as core events, so the same storage.
    res!("events.k8s.io" "v1" "Event", "events", "event", ns: true, verbs: RW, short: &["ev"], cat: NONE, sub: NO_SUBRESOURCES,
        storage: "/registry/events/"),
    // authentication.k8s.io/v1
    res!("authentication.k8s.io" "v1" "SelfSubjectReview", "selfsubjectreviews", "selfsubjectreview", ns: false, verbs: CREATE, short: NONE, cat: NONE, sub: NO_SUBRESOURCES),
    res!("authentication.k8s.io" "v1" "TokenReview", "tokenreviews", "tokenreview", ns: false, verbs: CREATE, short: NONE, cat: NONE, sub: NO_SUBRESOURCES),
    // authorization.k8s.io/v1
    res!("authorization.k8s.io" "v1" "LocalSubjectAccessReview", "localsubjectaccessreviews", "localsubjectaccessreview", ns: true, verbs: CREATE, short: NONE, cat: NONE, sub: NO_SUBRESOURCES),
    res!("authorization.k8s.io" "v1" "SelfSubjectAccessReview", "selfsubjectaccessreviews", "selfsubjectaccessreview", ns: false, verbs: CREATE, short: NONE, cat: NONE, sub: NO_SUBRESOURCES),
    res!("authorization.k8s.io" "v1" "SelfSubjectRulesReview", "selfsubjectrulesreviews", "selfsubjectrulesreview", ns: false, verbs: CREATE, short: NONE, cat: NONE, sub: NO_SUBRESOURCES),
    res!("authorization.k8s.io" "v1" "SubjectAccessReview", "subjectaccessreviews", "subjectaccessreview", ns: false, verbs: CREATE, short: NONE, cat: NONE, sub: NO_SUBRESOURCES),
    // autoscaling/v2 and v1: one storage.
    res!("autoscaling" "v2" "HorizontalPodAutoscaler", "horizontalpodautoscalers", "horizontalpodautoscaler", ns: true, verbs: RW, short: &["hpa"], cat: ALL,
        sub: &[sub("status", "HorizontalPodAutoscaler", GPU)]),
    res!("autoscaling" "v1" "HorizontalPodAutoscaler", "horizontalpodautoscalers", "horizontalpodautoscaler", ns: true, verbs: RW, short: &["hpa"], cat: ALL,
        sub: &[sub("status", "HorizontalPodAutoscaler", GPU)]),
    // batch/v1
    res!("batch" "v1" "CronJob", "cronjobs", "cronjob", ns: true, verbs: RW, short: &["cj"], cat: ALL,
        sub: &[sub("status", "CronJob", GPU)]),
    res!("batch" "v1" "Job", "jobs", "job", ns: true, verbs: RW, short: NONE, cat: ALL,
        sub: &[sub("status", "Job", GPU)]),
    // certificates.k8s.io/v1
    res!("certificates.k8s.io" "v1" "CertificateSigningRequest", "certificatesigningrequests", "certificatesigningrequest", ns: false, verbs: RW, short: &["csr"], cat: NONE,
        sub: &[sub("approval", "CertificateSigningRequest", GPU), sub("status", "CertificateSigningRequest", GPU)]),
    res!("certificates.k8s.io" "v1" "ClusterTrustBundle", "clustertrustbundles", "clustertrustbundle", ns: false, verbs: RW, short: NONE, cat: NONE, sub: NO_SUBRESOURCES),
    res!("certificates.k8s.io" "v1" "PodCertificateRequest", "podcertificaterequests", "podcertificaterequest", ns: true, verbs: RW, short: NONE, cat: NONE,
        sub: &[sub("status", "PodCertificateRequest", GPU)]),
    // networking.k8s.io/v1
    res!("networking.k8s.io" "v1" "IngressClass", "ingressclasses", "ingressclass", ns: false, verbs: RW, short: NONE, cat: NONE, sub: NO_SUBRESOURCES),
    res!("networking.k8s.io" "v1" "Ingress", "ingresses", "ingress", ns: true, verbs: RW, short: &["ing"], cat: NONE,
        sub: &[sub("status", "Ingress", GPU)]),
    res!("networking.k8s.io" "v1" "IPAddress", "ipaddresses", "ipaddress", ns: false, verbs: RW, short: &["ip"], cat: NONE, sub: NO_SUBRESOURCES),
    res!("networking.k8s.io" "v1" "NetworkPolicy", "networkpolicies", "networkpolicy", ns: true, verbs: RW, short: &["netpol"], cat: NONE, sub: NO_SUBRESOURCES),
    res!("networking.k8s.io" "v1" "ServiceCIDR", "servicecidrs", "servicecidr", ns: false, verbs: RW, short: NONE, cat: NONE,
        sub: &[sub("status", "ServiceCIDR", GPU)]),
    // policy/v1
    res!("policy" "v1" "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget", ns: true, verbs: RW, short: &["pdb"], cat: NONE,
        sub: &[sub("status", "PodDisruptionBudget", GPU)]),
    // rbac.authorization.k8s.io/v1
    res!("rbac.authorization.k8s.io" "v1" "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", ns: false, verbs: RW, short: NONE, cat: NONE, sub: NO_SUBRESOURCES),
    res!("rbac.authorization.k8s.io" "v1" "ClusterRole", "clusterroles", "clusterrole", ns: false, verbs: RW, short: NONE, cat: NONE, sub: NO_SUBRESOURCES),
    res!("rbac.authorization.k8s.io" "v1" "RoleBinding", "rolebindings", "rolebinding", ns: true, verbs: RW, short: NONE, cat: NONE, sub: NO_SUBRESOURCES),
    res!("rbac.authorization.k8s.io" "v1" "Role", "roles", "role", ns: true, verbs: RW, short: NONE, cat: NONE, sub: NO_SUBRESOURCES),
    // storage.k8s.io/v1
    res!("storage.k8s.io" "v1" "CSIDriver", "csidrivers", "csidriver", ns: false, verbs: RW, short: NONE, cat: NONE, sub: NO_SUBRESOURCES),
    res!("storage.k8s.io" "v1" "CSINode", "csinodes", "csinode", ns: false, verbs: RW, short: NONE, cat: NONE, sub: NO_SUBRESOURCES),
    res!("storage.k8s.io" "v1" "CSIStorageCapacity", "csistoragecapacities", "csistoragecapacity", ns: true, verbs: RW, short: NONE, cat: NONE, sub: NO_SUBRESOURCES),
    res!("storage.k8s.io" "v1" "StorageClass", "storageclasses", "storageclass", ns: false, verbs: RW, short: &["sc"], cat: NONE, sub: NO_SUBRESOURCES),
    res!("storage.k8s.io" "v1" "VolumeAttachment", "volumeattachments", "volumeattachment", ns: false, verbs: RW, short: NONE, cat: NONE,
        sub: &[sub("status", "VolumeAttachment", GPU)]),
    res!("storage.k8s.io" "v1" "VolumeAttributesClass", "volumeattributesclasses", "volumeattributesclass", ns: false, verbs: RW, short: &["vac"], cat: NONE, sub: NO_SUBRESOURCES),
    // admissionregistration.k8s.io/v1
    res!("admissionregistration.k8s.io" "v1" "MutatingAdmissionPolicy", "mutatingadmissionpolicies", "mutatingadmissionpolicy", ns: false, verbs: RW, short: NONE, cat: API_EXTENSIONS, sub: NO_SUBRESOURCES),
    res!("admissionregistration.k8s.io" "v1" "MutatingAdmissionPolicyBinding", "mutatingadmissionpolicybindings", "mutatingadmissionpolicybinding", ns: false, verbs: RW, short: NONE, cat: API_EXTENSIONS, sub: NO_SUBRESOURCES),
    res!("admissionregistration.k8s.io" "v1" "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", "mutatingwebhookconfiguration", ns: false, verbs: RW, short: NONE, cat: API_EXTENSIONS, sub: NO_SUBRESOURCES),
    res!("admissionregistration.k8s.io" "v1" "ValidatingAdmissionPolicy", "validatingadmissionpolicies", "validatingadmissionpolicy", ns: false, verbs: RW, short: NONE, cat: API_EXTENSIONS,
        sub: &[sub("status", "ValidatingAdmissionPolicy", GPU)]),
    res!("admissionregistration.k8s.io" "v1" "ValidatingAdmissionPolicyBinding", "validatingadmissionpolicybindings", "validatingadmissionpolicybinding", ns: false, verbs: RW, short: NONE, cat: API_EXTENSIONS, sub: NO_SUBRESOURCES),
    res!("admissionregistration.k8s.io" "v1" "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", "validatingwebhookconfiguration", ns: false, verbs: RW, short: NONE, cat: API_EXTENSIONS, sub: NO_SUBRESOURCES),
    // apiextensions.k8s.io/v1
    res!("apiextensions.k8s.io" "v1" "CustomResourceDefinition", "customresourcedefinitions", "customresourcedefinition", ns: false, verbs: RW, short: &["crd", "crds"], cat: API_EXTENSIONS,
        sub: &[sub("status", "CustomResourceDefinition", GPU)]),
    // scheduling.k8s.io/v1
    res!("scheduling.k8s.io" "v1" "PriorityClass", "priorityclasses", "priorityclass", ns: false, verbs: RW, short: &["pc"], cat: NONE, sub: NO_SUBRESOURCES),
    // coordination.k8s.io/v1
    res!("coordination.k8s.io" "v1" "Lease", "leases", "lease", ns: true, verbs: RW, short: NONE, cat: NONE, sub: NO_SUBRESOURCES),
    // node.k8s.io/v1
    res!("node.k8s.io" "v1" "RuntimeClass", "runtimeclasses", "runtimeclass", ns: false, verbs: RW, short: NONE, cat: NONE, sub: NO_SUBRESOURCES),
    // discovery.k8s.io/v1
    res!("discovery.k8s.io" "v1" "EndpointSlice", "endpointslices", "endpointslice", ns: true, verbs: RW, short: NONE, cat: NONE, sub: NO_SUBRESOURCES),
    // resource.k8s.io/v1
    res!("resource.k8s.io" "v1" "DeviceClass", "deviceclasses", "deviceclass", ns: false, verbs: RW, short: NONE, cat: NONE, sub: NO_SUBRESOURCES),
    res!("resource.k8s.io" "v1" "ResourceClaim", "resourceclaims", "resourceclaim", ns: true, verbs: RW, short: NONE, cat: NONE,
        sub: &[sub("status", "ResourceClaim", GPU)]),
    res!("resource.k8s.io" "v1" "ResourceClaimTemplate", "resourceclaimtemplates", "resourceclaimtemplate", ns: true, verbs: RW, short: NONE, cat: NONE, sub: NO_SUBRESOURCES),
    res!("resource.k8s.io" "v1" "ResourceSlice", "resourceslices", "resourceslice", ns: false, verbs: RW, short: NONE, cat: NONE, sub: NO_SUBRESOURCES),
    // flowcontrol.apiserver.k8s.io/v1
    res!("flowcontrol.apiserver.k8s.io" "v1" "FlowSchema", "flowschemas", "flowschema", ns: false, verbs: RW, short: NONE, cat: NONE,
        sub: &[sub("status", "FlowSchema", GPU)]),
    res!("flowcontrol.apiserver.k8s.io" "v1" "PriorityLevelConfiguration", "prioritylevelconfigurations", "prioritylevelconfiguration", ns: false, verbs: RW, short: NONE, cat: NONE,
        sub: &[sub("status", "PriorityLevelConfiguration", GPU)]),
    // storagemigration.k8s.io/v1
    res!("storagemigration.k8s.io" "v1" "StorageVersionMigration", "storageversionmigrations", "storageversionmigration", ns: false, verbs: RW, short: NONE, cat: NONE,
        sub: &[sub("status", "StorageVersionMigration", GPU)]),
];

/// Every built-in resource: core/v1 first, then the groups in `/apis` order.
pub fn builtin() -> &'static [ResourceInfo] {
    BUILTIN
}

/// Every API group under `/apis` with its versions (preferred first), in upstream's order. The
/// core group is not listed; its versions are [`LEGACY_VERSIONS`].
pub fn groups() -> &'static [GroupInfo] {
    GROUPS
}

/// The group called `name`, if it is served under `/apis`.
pub fn group(name: &str) -> Option<&'static GroupInfo> {
    GROUPS.iter().find(|g| g.name == name)
}

/// The resource `plural` in `group`/`version`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    // Indexed by plural: every request looks its resource up, some several times
    // (admission plugins, strategies), and a scan compared strings of ~70 rows.
    static BY_PLURAL: std::sync::LazyLock<
        std::collections::HashMap<&'static str, Vec<&'static ResourceInfo>>,
    > = std::sync::LazyLock::new(|| {
        let mut index = std::collections::HashMap::<_, Vec<_>>::new();
        for r in BUILTIN {
            index.entry(r.plural).or_default().push(r);
        }
        index
    });
    BY_PLURAL
        .get(plural)?
        .iter()
        .copied()
        .find(|r| r.version == version && r.group == group)
}

/// The resource of `kind` in `group`/`version`.
pub fn find_by_kind(group: &str, version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    BUILTIN
        .iter()
        .find(|r| r.kind == kind && r.version == version && r.group == group)
}

/// The resource an `apiVersion` (`v1`, `apps/v1`) and `kind` name.
pub fn find_by_api_version_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    find_by_kind(group, version, kind)
}

/// The resources in `group`/`version`, in discovery order.
pub fn in_group_version<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static ResourceInfo> + 'a {
    BUILTIN
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

/// The resources with short name `short`, in every group version.
pub fn find_by_short_name(short: &str) -> impl Iterator<Item = &'static ResourceInfo> + '_ {
    BUILTIN
        .iter()
        .filter(move |r| r.short_names.contains(&short))
}

/// The resources in `category` (e.g. `all`), in every group version.
pub fn in_category(category: &str) -> impl Iterator<Item = &'static ResourceInfo> + '_ {
    BUILTIN
        .iter()
        .filter(move |r| r.categories.contains(&category))
}

/// The names and shape of one served version of a CustomResourceDefinition, from which
/// [`custom_row`] makes a table row.
#[derive(Clone, Debug)]
pub struct CustomRow<'a> {
    pub group: &'a str,
    pub version: &'a str,
    pub kind: &'a str,
    pub plural: &'a str,
    pub singular: &'a str,
    pub namespaced: bool,
    pub short_names: &'a [String],
    pub categories: &'a [String],
    /// Whether the `status` subresource is enabled.
    pub status: bool,
    /// Whether the `scale` subresource is enabled.
    pub scale: bool,
}

/// Interned rows and strings of custom resources.
#[derive(Default)]
struct Interned {
    strings: std::collections::HashSet<&'static str>,
    lists: std::collections::HashSet<&'static [&'static str]>,
    subresources: std::collections::HashSet<&'static [SubresourceInfo]>,
    rows: std::collections::HashSet<&'static ResourceInfo>,
}

static INTERNED: std::sync::Mutex<Option<Interned>> = std::sync::Mutex::new(None);

impl Interned {
    fn str(&mut self, s: &str) -> &'static str {
        if let Some(found) = self.strings.get(s) {
            return found;
        }
        let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
        self.strings.insert(leaked);
        leaked
    }

    fn list(&mut self, items: &[String]) -> &'static [&'static str] {
        let items: Vec<&'static str> = items.iter().map(|s| self.str(s)).collect();
        if let Some(found) = self.lists.get(items.as_slice()) {
            return found;
        }
        let leaked: &'static [&'static str] = Box::leak(items.into_boxed_slice());
        self.lists.insert(leaked);
        leaked
    }
}

/// The table row of one served version of a CustomResourceDefinition.
///
/// The API server holds `&'static ResourceInfo` everywhere, so custom rows live for the
/// rest of the process: every distinct row (and every distinct string in one) is leaked
/// once and then reused, so memory grows only with the number of distinct CRD name sets
/// ever served, not with requests or with re-reading the same CRDs.
pub fn custom_row(row: &CustomRow<'_>) -> &'static ResourceInfo {
    let mut guard = INTERNED.lock().unwrap_or_else(|e| e.into_inner());
    let interned = guard.get_or_insert_with(Interned::default);
    let group = interned.str(row.group);
    let version = interned.str(row.version);
    let kind = interned.str(row.kind);
    let plural = interned.str(row.plural);
    let mut subs = Vec::new();
    if row.scale {
        subs.push(sub_gv("scale", "Scale", "autoscaling", "v1", GPU));
    }
    if row.status {
        subs.push(sub("status", kind, GPU));
    }
    let subresources: &'static [SubresourceInfo] = match interned.subresources.get(subs.as_slice())
    {
        Some(found) => found,
        None => {
            let leaked: &'static [SubresourceInfo] = Box::leak(subs.into_boxed_slice());
            interned.subresources.insert(leaked);
            leaked
        }
    };
    let info = ResourceInfo {
        group,
        version,
        kind,
        plural,
        singular: interned.str(row.singular),
        namespaced: row.namespaced,
        verbs: RW,
        short_names: interned.list(row.short_names),
        categories: interned.list(row.categories),
        subresources,
        api_version: interned.str(&format!("{group}/{version}")),
        storage_prefix: interned.str(&format!("/registry/{group}/{plural}/")),
        custom: true,
    };
    if let Some(found) = interned.rows.get(&info) {
        return found;
    }
    let leaked: &'static ResourceInfo = Box::leak(Box::new(info));
    interned.rows.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_row_is_unique() {
        let mut by_resource = HashSet::new();
        let mut by_kind = HashSet::new();
        for r in builtin() {
            assert!(
                by_resource.insert((r.group, r.version, r.plural)),
                "duplicate {}/{} {}",
                r.group,
                r.version,
                r.plural
            );
            assert!(
                by_kind.insert((r.group, r.version, r.kind)),
                "duplicate kind {}",
                r.kind
            );
            let mut subs = HashSet::new();
            for s in r.subresources {
                assert!(subs.insert(s.name), "duplicate {}/{}", r.plural, s.name);
                assert!(!s.verbs.is_empty());
            }
        }
    }

    #[test]
    fn every_kind_and_resource_is_findable() {
        for r in builtin() {
            assert_eq!(find(r.group, r.version, r.plural), Some(r));
            assert_eq!(find_by_kind(r.group, r.version, r.kind), Some(r));
            assert_eq!(find_by_api_version_kind(r.api_version(), r.kind), Some(r));
            assert!(!r.verbs.is_empty());
            assert!(!r.singular.is_empty());
        }
        assert_eq!(find("apps", "v1", "nope"), None);
    }

    #[test]
    fn every_row_belongs_to_a_listed_group_version() {
        for r in builtin() {
            if r.group.is_empty() {
                assert!(LEGACY_VERSIONS.contains(&r.version));
            } else {
                let g = group(r.group).unwrap_or_else(|| panic!("group {} not listed", r.group));
                assert!(g.versions.contains(&r.version));
            }
        }
        for g in groups() {
            for v in g.versions {
                assert!(
                    in_group_version(g.name, v).next().is_some(),
                    "{}/{v} empty",
                    g.name
                );
            }
        }
    }

    #[test]
    fn rows_are_in_discovery_order() {
        for g in groups() {
            for v in g.versions {
                let plurals: Vec<_> = in_group_version(g.name, v).map(|r| r.plural).collect();
                let mut sorted = plurals.clone();
                sorted.sort();
                assert_eq!(plurals, sorted, "{}/{v}", g.name);
            }
        }
    }

    #[test]
    fn short_names_and_categories() {
        let deploy: Vec<_> = find_by_short_name("deploy").collect();
        assert_eq!(deploy.len(), 1);
        assert_eq!(deploy[0].plural, "deployments");
        assert_eq!(deploy[0].group, "apps");
        let all: Vec<_> = in_category("all").map(|r| r.plural).collect();
        for p in [
            "pods",
            "services",
            "replicationcontrollers",
            "daemonsets",
            "deployments",
            "replicasets",
            "statefulsets",
            "horizontalpodautoscalers",
            "cronjobs",
            "jobs",
        ] {
            assert!(all.contains(&p), "{p} not in category all");
        }
    }

    #[test]
    fn pods_have_their_subresources() {
        let pods = find("", "v1", "pods").unwrap();
        assert_eq!(pods.subresource("status").unwrap().verbs, GPU);
        assert_eq!(pods.subresource("binding").unwrap().kind, "Binding");
        let eviction = pods.subresource("eviction").unwrap();
        assert_eq!(
            (eviction.group, eviction.version, eviction.kind),
            ("policy", "v1", "Eviction")
        );
        assert_eq!(pods.subresource("log").unwrap().verbs, &["get"]);
        assert_eq!(pods.subresource("exec").unwrap().kind, "PodExecOptions");
        assert!(pods.subresource("scale").is_none());
    }

    #[test]
    fn scopes() {
        assert!(!find("", "v1", "namespaces").unwrap().namespaced);
        assert!(!find("", "v1", "nodes").unwrap().namespaced);
        assert!(find("", "v1", "pods").unwrap().namespaced);
        assert!(
            !find("rbac.authorization.k8s.io", "v1", "clusterroles")
                .unwrap()
                .namespaced
        );
        assert!(
            find("authorization.k8s.io", "v1", "localsubjectaccessreviews")
                .unwrap()
                .namespaced
        );
    }

    #[test]
    fn storage_keys() {
        let pods = find("", "v1", "pods").unwrap();
        assert_eq!(pods.api_version(), "v1");
        assert_eq!(pods.storage_prefix(), "/registry/pods/");
        assert_eq!(
            pods.key(Some("default"), "web"),
            "/registry/pods/default/web"
        );
        let deploy = find("apps", "v1", "deployments").unwrap();
        assert_eq!(deploy.api_version(), "apps/v1");
        assert_eq!(deploy.storage_prefix(), "/registry/apps/deployments/");
        assert_eq!(
            deploy.namespace_prefix("ns"),
            "/registry/apps/deployments/ns/"
        );
        let ns = find("", "v1", "namespaces").unwrap();
        assert_eq!(
            ns.key(None, "kube-system"),
            "/registry/namespaces/kube-system"
        );
        let hpa1 = find("autoscaling", "v1", "horizontalpodautoscalers").unwrap();
        let hpa2 = find("autoscaling", "v2", "horizontalpodautoscalers").unwrap();
        assert_eq!(hpa1.storage_prefix(), hpa2.storage_prefix());
        assert_eq!(
            find("events.k8s.io", "v1", "events")
                .unwrap()
                .storage_prefix(),
            find("", "v1", "events").unwrap().storage_prefix()
        );
        // No two different resources share a prefix unless they are versions of one resource
        // or the events cohabitation.
        for a in builtin() {
            for b in builtin() {
                if a.storage_prefix() == b.storage_prefix() {
                    assert!(
                        a.plural == b.plural,
                        "{} and {} share storage",
                        a.plural,
                        b.plural
                    );
                }
            }
        }
    }

    #[test]
    fn virtual_resources() {
        let virtuals: Vec<_> = builtin()
            .iter()
            .filter(|r| r.is_virtual())
            .map(|r| r.plural)
            .collect();
        assert_eq!(
            virtuals,
            vec![
                "bindings",
                "componentstatuses",
                "selfsubjectreviews",
                "tokenreviews",
                "localsubjectaccessreviews",
                "selfsubjectaccessreviews",
                "selfsubjectrulesreviews",
                "subjectaccessreviews",
            ]
        );
    }

    #[test]
    fn group_order_and_preferred_versions() {
        let names: Vec<_> = groups().iter().map(|g| g.name).collect();
        assert_eq!(names[0], "apiregistration.k8s.io");
        assert_eq!(names[1], "apps");
        assert_eq!(group("autoscaling").unwrap().versions, &["v2", "v1"]);
        assert_eq!(group("autoscaling").unwrap().preferred_version(), "v2");
        let unique: HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
    }

    #[test]
    fn qualified_names() {
        let deploy = find("apps", "v1", "deployments").unwrap();
        assert_eq!(deploy.group_resource().to_string(), "deployments.apps");
        assert_eq!(deploy.group_kind().to_string(), "Deployment.apps");
        let pods = find("", "v1", "pods").unwrap();
        assert_eq!(pods.group_resource().to_string(), "pods");
        assert_eq!(pods.group_kind().to_string(), "Pod");
    }

    /// A few rows checked field by field against upstream's discovery documents.
    #[test]
    fn rows_match_upstream_discovery() {
        let d = find("apps", "v1", "deployments").unwrap();
        assert_eq!(
            (
                d.kind,
                d.singular,
                d.namespaced,
                d.verbs,
                d.short_names,
                d.categories
            ),
            (
                "Deployment",
                "deployment",
                true,
                RW,
                &["deploy"][..],
                &["all"][..]
            )
        );
        assert_eq!(
            d.subresources,
            &[
                SubresourceInfo {
                    name: "scale",
                    kind: "Scale",
                    group: "autoscaling",
                    version: "v1",
                    verbs: &["get", "patch", "update"],
                },
                SubresourceInfo {
                    name: "status",
                    kind: "Deployment",
                    group: "",
                    version: "",
                    verbs: &["get", "patch", "update"],
                },
            ]
        );
        let ns = find("", "v1", "namespaces").unwrap();
        assert_eq!(
            ns.verbs,
            &["create", "delete", "get", "list", "patch", "update", "watch"]
        );
        assert_eq!(ns.short_names, &["ns"]);
        assert_eq!(ns.subresource("finalize").unwrap().verbs, &["update"]);
        let cs = find("", "v1", "componentstatuses").unwrap();
        assert_eq!(
            (cs.verbs, cs.short_names),
            (&["get", "list"][..], &["cs"][..])
        );
        let crd = find("apiextensions.k8s.io", "v1", "customresourcedefinitions").unwrap();
        assert_eq!(crd.short_names, &["crd", "crds"]);
        assert_eq!(crd.categories, &["api-extensions"]);
        let ep = find("", "v1", "endpoints").unwrap();
        assert_eq!(ep.singular, "endpoints");
        let sa = find("", "v1", "serviceaccounts").unwrap();
        let token = sa.subresource("token").unwrap();
        assert_eq!(
            (token.kind, token.group, token.version, token.verbs),
            ("TokenRequest", "authentication.k8s.io", "v1", CREATE)
        );
        let tr = find("authentication.k8s.io", "v1", "tokenreviews").unwrap();
        assert_eq!((tr.verbs, tr.namespaced), (CREATE, false));
        let nodes = find("", "v1", "nodes").unwrap();
        assert_eq!(nodes.subresource("proxy").unwrap().verbs, PROXY);
    }
}

#[cfg(test)]
mod custom_tests {
    use super::*;

    #[test]
    fn custom_rows_are_interned() {
        let short = vec!["wd".to_owned()];
        let cats = vec!["all".to_owned()];
        let row = CustomRow {
            group: "example.com",
            version: "v1",
            kind: "Widget",
            plural: "widgets",
            singular: "widget",
            namespaced: true,
            short_names: &short,
            categories: &cats,
            status: true,
            scale: true,
        };
        let a = custom_row(&row);
        let b = custom_row(&row.clone());
        assert!(std::ptr::eq(a, b), "the same row is leaked once");
        assert!(a.is_custom());
        assert_eq!(a.api_version(), "example.com/v1");
        assert_eq!(a.storage_prefix(), "/registry/example.com/widgets/");
        assert_eq!(a.key(Some("ns"), "w"), "/registry/example.com/widgets/ns/w");
        assert_eq!(a.subresource("status").map(|s| s.kind), Some("Widget"));
        assert_eq!(a.subresource("scale").map(|s| s.group), Some("autoscaling"));
        let v2 = custom_row(&CustomRow {
            version: "v2",
            ..row
        });
        assert_eq!(
            v2.storage_prefix(),
            a.storage_prefix(),
            "versions share storage"
        );
    }
}
