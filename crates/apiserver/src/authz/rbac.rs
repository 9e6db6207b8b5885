//! RBAC: policy rules, how a rule matches a request, and the in-memory index of roles and
//! bindings that every authorization decision reads.
//!
//! The index holds each Role's and ClusterRole's rules and each binding, with the
//! bindings also indexed by subject (user name or group name; a ServiceAccount subject is
//! indexed under its user name `system:serviceaccount:<ns>:<name>`), so resolving a user's
//! rules touches only the bindings that name the user or one of its groups.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use serde_json::{json, Value};

use super::attributes::Attributes;
use crate::auth::UserInfo;

/// `*`: every verb, group, resource or URL.
pub const ALL: &str = "*";

/// One rule of a Role or ClusterRole (`rbac.authorization.k8s.io/v1` `PolicyRule`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyRule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn strs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

impl PolicyRule {
    /// A rule over resources.
    pub fn resources(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Self {
        PolicyRule {
            verbs: strs(verbs),
            api_groups: strs(groups),
            resources: strs(resources),
            ..Default::default()
        }
    }

    /// A rule over non-resource URLs.
    pub fn urls(verbs: &[&str], urls: &[&str]) -> Self {
        PolicyRule {
            verbs: strs(verbs),
            non_resource_urls: strs(urls),
            ..Default::default()
        }
    }

    /// Restricts the rule to the named objects.
    pub fn names(mut self, names: &[&str]) -> Self {
        self.resource_names = strs(names);
        self
    }

    /// Reads a rule from its JSON form; missing lists are empty.
    pub fn from_json(v: &Value) -> Self {
        PolicyRule {
            verbs: strings(&v["verbs"]),
            api_groups: strings(&v["apiGroups"]),
            resources: strings(&v["resources"]),
            resource_names: strings(&v["resourceNames"]),
            non_resource_urls: strings(&v["nonResourceURLs"]),
        }
    }

    /// The JSON form, with empty lists left out as upstream serializes them.
    pub fn to_json(&self) -> Value {
        let mut out = serde_json::Map::new();
        for (field, list) in [
            ("verbs", &self.verbs),
            ("apiGroups", &self.api_groups),
            ("resources", &self.resources),
            ("resourceNames", &self.resource_names),
            ("nonResourceURLs", &self.non_resource_urls),
        ] {
            if !list.is_empty() || field == "verbs" {
                out.insert(field.into(), json!(list));
            }
        }
        Value::Object(out)
    }

    /// Reads the `rules` of a Role or ClusterRole.
    pub fn list_from_json(rules: &Value) -> Vec<PolicyRule> {
        rules
            .as_array()
            .map(|a| a.iter().map(PolicyRule::from_json).collect())
            .unwrap_or_default()
    }

    /// Whether this rule allows the request.
    pub fn allows(&self, a: &Attributes) -> bool {
        if !verb_matches(self, &a.verb) {
            return false;
        }
        if a.resource_request {
            api_group_matches(self, &a.api_group)
                && resource_matches(self, &a.resource, &a.subresource)
                && resource_name_matches(self, &a.name)
        } else {
            non_resource_url_matches(self, &a.path)
        }
    }

    /// Upstream's compact description in escalation errors:
    /// `{APIGroups:["apps"], Resources:["deployments"], Verbs:["get"]}`.
    pub fn compact_string(&self) -> String {
        let mut parts = Vec::new();
        for (label, list) in [
            ("APIGroups", &self.api_groups),
            ("Resources", &self.resources),
            ("NonResourceURLs", &self.non_resource_urls),
            ("ResourceNames", &self.resource_names),
            ("Verbs", &self.verbs),
        ] {
            if !list.is_empty() {
                parts.push(format!("{label}:{}", go_quoted_list(list)));
            }
        }
        format!("{{{}}}", parts.join(", "))
    }
}

/// A list as Go's `%q` prints a `[]string`: `["a" "b"]`.
pub fn go_quoted_list(list: &[String]) -> String {
    let quoted: Vec<String> = list.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// A string as Go's `%q` prints it (JSON escaping is the same for printable text).
pub fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == ALL || v == verb)
}

fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    rule.api_groups.iter().any(|g| g == ALL || g == group)
}

fn resource_matches(rule: &PolicyRule, resource: &str, subresource: &str) -> bool {
    rule.resources.iter().any(|r| {
        if r == ALL {
            return true;
        }
        if subresource.is_empty() {
            return r == resource;
        }
        // `resource/subresource`, or `*/subresource` for that subresource of anything.
        match r.split_once('/') {
            Some((res, sub)) => sub == subresource && (res == resource || res == ALL),
            None => false,
        }
    })
}

fn resource_name_matches(rule: &PolicyRule, name: &str) -> bool {
    rule.resource_names.is_empty() || rule.resource_names.iter().any(|n| n == name)
}

fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    rule.non_resource_urls.iter().any(|u| {
        u == ALL
            || u == path
            || u.strip_suffix('*')
                .is_some_and(|prefix| path.starts_with(prefix.trim_end_matches('*')))
    })
}

/// Splits a rule into rules of one group, resource, verb and name each (upstream's
/// `BreakdownRule`), the unit in which coverage is decided.
pub fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                let base = PolicyRule {
                    verbs: vec![verb.clone()],
                    api_groups: vec![group.clone()],
                    resources: vec![resource.clone()],
                    ..Default::default()
                };
                if rule.resource_names.is_empty() {
                    out.push(base);
                } else {
                    for name in &rule.resource_names {
                        out.push(PolicyRule {
                            resource_names: vec![name.clone()],
                            ..base.clone()
                        });
                    }
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            out.push(PolicyRule {
                verbs: vec![verb.clone()],
                non_resource_urls: vec![url.clone()],
                ..Default::default()
            });
        }
    }
    out
}

fn has_all(set: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| set.contains(w))
}

fn resources_cover(owner: &[String], wanted: &[String]) -> bool {
    if owner.iter().any(|r| r == ALL) || has_all(owner, wanted) {
        return true;
    }
    wanted.iter().all(|path| {
        owner.contains(path)
            || path
                .split_once('/')
                .is_some_and(|(_, sub)| owner.iter().any(|o| *o == format!("*/{sub}")))
    })
}

fn urls_cover(owner: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|path| {
        owner.iter().any(|o| {
            o == path
                || o.strip_suffix('*')
                    .is_some_and(|prefix| path.starts_with(prefix.trim_end_matches('*')))
        })
    })
}

/// Whether `owner` covers `sub`, a rule of at most one verb, resource and name.
fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let verbs = owner.verbs.iter().any(|v| v == ALL) || has_all(&owner.verbs, &sub.verbs);
    let groups =
        owner.api_groups.iter().any(|g| g == ALL) || has_all(&owner.api_groups, &sub.api_groups);
    let names = if sub.resource_names.is_empty() {
        owner.resource_names.is_empty()
    } else {
        owner.resource_names.is_empty() || has_all(&owner.resource_names, &sub.resource_names)
    };
    verbs
        && groups
        && resources_cover(&owner.resources, &sub.resources)
        && urls_cover(&owner.non_resource_urls, &sub.non_resource_urls)
        && names
}

/// Whether `owner` rules cover every `wanted` rule; the broken-down rules they miss.
pub fn covers(owner: &[PolicyRule], wanted: &[PolicyRule]) -> (bool, Vec<PolicyRule>) {
    let missing: Vec<PolicyRule> = wanted
        .iter()
        .flat_map(breakdown)
        .filter(|sub| !owner.iter().any(|o| rule_covers(o, sub)))
        .collect();
    (missing.is_empty(), missing)
}

/// Merges rules of one group and resource that differ only by verb (upstream's
/// `CompactRules`, for readable escalation errors).
pub fn compact(rules: Vec<PolicyRule>) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    let mut simple: Vec<PolicyRule> = Vec::new();
    for rule in rules {
        let is_simple = rule.resource_names.is_empty()
            && rule.non_resource_urls.is_empty()
            && rule.api_groups.len() == 1
            && rule.resources.len() == 1;
        if !is_simple {
            out.push(rule);
            continue;
        }
        match simple
            .iter_mut()
            .find(|s| s.api_groups == rule.api_groups && s.resources == rule.resources)
        {
            Some(existing) => existing.verbs.extend(rule.verbs),
            None => simple.push(rule),
        }
    }
    out.extend(simple);
    out
}

/// What a binding points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleRef {
    pub kind: String,
    pub name: String,
    pub api_group: String,
}

impl RoleRef {
    pub fn from_json(v: &Value) -> Self {
        RoleRef {
            kind: v["kind"].as_str().unwrap_or("").to_owned(),
            name: v["name"].as_str().unwrap_or("").to_owned(),
            api_group: v["apiGroup"].as_str().unwrap_or("").to_owned(),
        }
    }
}

/// One subject of a binding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

/// A RoleBinding or ClusterRoleBinding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub name: String,
    /// Empty for a ClusterRoleBinding.
    pub namespace: String,
    pub role_ref: RoleRef,
    pub subjects: Vec<Subject>,
}

/// How a subject is looked up: by user name or by group name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum SubjectKey {
    User(String),
    Group(String),
}

impl Binding {
    pub fn from_json(obj: &Value) -> Self {
        let meta = &obj["metadata"];
        let subjects = obj["subjects"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| Subject {
                        kind: s["kind"].as_str().unwrap_or("").to_owned(),
                        name: s["name"].as_str().unwrap_or("").to_owned(),
                        namespace: s["namespace"].as_str().unwrap_or("").to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Binding {
            name: meta["name"].as_str().unwrap_or("").to_owned(),
            namespace: meta["namespace"].as_str().unwrap_or("").to_owned(),
            role_ref: RoleRef::from_json(&obj["roleRef"]),
            subjects,
        }
    }

    /// The lookup key of a subject, if it can ever match a user (upstream's
    /// `appliesToUser`: a ServiceAccount without a namespace takes the binding's).
    fn subject_key(&self, s: &Subject) -> Option<SubjectKey> {
        match s.kind.as_str() {
            "User" => Some(SubjectKey::User(s.name.clone())),
            "Group" => Some(SubjectKey::Group(s.name.clone())),
            "ServiceAccount" => {
                let ns = if s.namespace.is_empty() {
                    &self.namespace
                } else {
                    &s.namespace
                };
                (!ns.is_empty())
                    .then(|| SubjectKey::User(format!("system:serviceaccount:{ns}:{}", s.name)))
            }
            _ => None,
        }
    }

    /// The first subject that is `user`, if any.
    pub fn subject_for(&self, user: &UserInfo) -> Option<&Subject> {
        self.subjects.iter().find(|s| match s.kind.as_str() {
            "User" => s.name == user.name,
            "Group" => user.groups.contains(&s.name),
            "ServiceAccount" => {
                let ns = if s.namespace.is_empty() {
                    &self.namespace
                } else {
                    &s.namespace
                };
                // `system:serviceaccount:<ns>:<name>`, compared without building it.
                !ns.is_empty()
                    && user
                        .name
                        .strip_prefix("system:serviceaccount:")
                        .and_then(|rest| rest.strip_prefix(ns.as_str()))
                        .and_then(|rest| rest.strip_prefix(':'))
                        == Some(s.name.as_str())
            }
            _ => false,
        })
    }

    fn keys(&self) -> BTreeSet<SubjectKey> {
        self.subjects
            .iter()
            .filter_map(|s| self.subject_key(s))
            .collect()
    }

    /// Upstream's description of where a rule comes from, as in `RBAC: allowed by …`.
    pub fn describe(&self, subject: &Subject) -> String {
        let who = match subject.kind.as_str() {
            "ServiceAccount" => {
                let ns = if subject.namespace.is_empty() {
                    &self.namespace
                } else {
                    &subject.namespace
                };
                format!(
                    "{} {}",
                    subject.kind,
                    go_quote(&format!("{}/{ns}", subject.name))
                )
            }
            _ => format!("{} {}", subject.kind, go_quote(&subject.name)),
        };
        if self.namespace.is_empty() {
            format!(
                "ClusterRoleBinding {} of {} {} to {who}",
                go_quote(&self.name),
                self.role_ref.kind,
                go_quote(&self.role_ref.name)
            )
        } else {
            format!(
                "RoleBinding {} of {} {} to {who}",
                go_quote(&format!("{}/{}", self.name, self.namespace)),
                self.role_ref.kind,
                go_quote(&self.role_ref.name)
            )
        }
    }
}

/// A ClusterRole as the index keeps it.
#[derive(Clone, Debug)]
pub struct ClusterRoleEntry {
    pub rules: Arc<[PolicyRule]>,
    pub labels: BTreeMap<String, String>,
    /// `aggregationRule.clusterRoleSelectors`, if the role is aggregated.
    pub aggregation: Option<Vec<Value>>,
}

/// Why a binding's role could not be resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolveError {
    /// The referenced Role or ClusterRole does not exist.
    RoleNotFound { kind: String, name: String },
    /// A roleRef kind other than Role or ClusterRole.
    UnsupportedKind(String),
}

impl ResolveError {
    /// As the authorizer's listers word it (`role.rbac.authorization.k8s.io "x" not found`).
    pub fn lister_message(&self) -> String {
        match self {
            ResolveError::RoleNotFound { kind, name } => format!(
                "{}.rbac.authorization.k8s.io {} not found",
                kind.to_ascii_lowercase(),
                go_quote(name)
            ),
            ResolveError::UnsupportedKind(kind) => {
                format!("unsupported role reference kind: {}", go_quote(kind))
            }
        }
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lister_message())
    }
}

/// Upstream's aggregate of several errors: one error alone, else `[e1, e2]`.
pub fn aggregate_errors(errors: &[ResolveError]) -> String {
    match errors {
        [one] => one.lister_message(),
        many => format!(
            "[{}]",
            many.iter()
                .map(ResolveError::lister_message)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Bindings of one namespace (or the cluster's), by name and by subject.
#[derive(Default, Debug)]
struct BindingSet {
    by_name: HashMap<String, Arc<Binding>>,
    /// User name → names of the bindings naming it.
    by_user: HashMap<String, BTreeSet<String>>,
    /// Group name → names of the bindings naming it.
    by_group: HashMap<String, BTreeSet<String>>,
}

impl BindingSet {
    fn remove(&mut self, name: &str) {
        let Some(old) = self.by_name.remove(name) else {
            return;
        };
        for key in old.keys() {
            let (map, k) = match key {
                SubjectKey::User(u) => (&mut self.by_user, u),
                SubjectKey::Group(g) => (&mut self.by_group, g),
            };
            if let Some(set) = map.get_mut(&k) {
                set.remove(name);
                if set.is_empty() {
                    map.remove(&k);
                }
            }
        }
    }

    fn insert(&mut self, binding: Arc<Binding>) {
        self.remove(&binding.name);
        for key in binding.keys() {
            let (map, k) = match key {
                SubjectKey::User(u) => (&mut self.by_user, u),
                SubjectKey::Group(g) => (&mut self.by_group, g),
            };
            map.entry(k).or_default().insert(binding.name.clone());
        }
        self.by_name.insert(binding.name.clone(), binding);
    }

    fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Appends the bindings naming `user` or one of its groups, each once, by name.
    fn collect_for(&self, user: &UserInfo, out: &mut Vec<Arc<Binding>>) {
        let mut names: Vec<&String> = Vec::new();
        if let Some(set) = self.by_user.get(&user.name) {
            names.extend(set);
        }
        for g in &user.groups {
            if let Some(set) = self.by_group.get(g) {
                names.extend(set);
            }
        }
        names.sort_unstable();
        names.dedup();
        out.extend(
            names
                .into_iter()
                .filter_map(|n| self.by_name.get(n).cloned()),
        );
    }
}

/// Every Role, ClusterRole and binding, indexed for authorization.
#[derive(Default, Debug)]
pub struct Index {
    cluster_roles: HashMap<String, ClusterRoleEntry>,
    /// Namespace → role name → rules.
    roles: HashMap<String, HashMap<String, Arc<[PolicyRule]>>>,
    cluster_role_bindings: BindingSet,
    /// Namespace → its RoleBindings.
    role_bindings: HashMap<String, BindingSet>,
}

/// The four kinds the index holds, told apart by their storage key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Role,
    ClusterRole,
    RoleBinding,
    ClusterRoleBinding,
}

/// Where RBAC objects are stored.
pub const PREFIX: &str = "/registry/rbac.authorization.k8s.io/";

impl Kind {
    /// The kind and (namespace, name) of an RBAC storage key.
    pub fn of_key(key: &str) -> Option<(Kind, String, String)> {
        let rest = key.strip_prefix(PREFIX)?;
        let (plural, rest) = rest.split_once('/')?;
        let (ns, name) = match rest.split_once('/') {
            Some((ns, name)) => (ns.to_owned(), name.to_owned()),
            None => (String::new(), rest.to_owned()),
        };
        let kind = match plural {
            "roles" => Kind::Role,
            "clusterroles" => Kind::ClusterRole,
            "rolebindings" => Kind::RoleBinding,
            "clusterrolebindings" => Kind::ClusterRoleBinding,
            _ => return None,
        };
        Some((kind, ns, name))
    }
}

impl Index {
    /// Applies one stored object (`None`: deleted) under `key`.
    pub fn apply(&mut self, key: &str, obj: Option<&Value>) {
        let Some((kind, ns, name)) = Kind::of_key(key) else {
            return;
        };
        match kind {
            Kind::Role => match obj {
                Some(o) => {
                    self.roles
                        .entry(ns)
                        .or_default()
                        .insert(name, PolicyRule::list_from_json(&o["rules"]).into());
                }
                None => {
                    if let Some(roles) = self.roles.get_mut(&ns) {
                        roles.remove(&name);
                        if roles.is_empty() {
                            self.roles.remove(&ns);
                        }
                    }
                }
            },
            Kind::ClusterRole => match obj {
                Some(o) => {
                    let aggregation = o["aggregationRule"].as_object().map(|a| {
                        a.get("clusterRoleSelectors")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default()
                    });
                    self.cluster_roles.insert(
                        name,
                        ClusterRoleEntry {
                            rules: PolicyRule::list_from_json(&o["rules"]).into(),
                            labels: crate::meta::labels(o),
                            aggregation,
                        },
                    );
                }
                None => {
                    self.cluster_roles.remove(&name);
                }
            },
            Kind::ClusterRoleBinding => match obj {
                Some(o) => {
                    let mut binding = Binding::from_json(o);
                    binding.name = name;
                    self.cluster_role_bindings.insert(Arc::new(binding));
                }
                None => self.cluster_role_bindings.remove(&name),
            },
            Kind::RoleBinding => match obj {
                Some(o) => {
                    let mut binding = Binding::from_json(o);
                    binding.name = name;
                    binding.namespace = ns.clone();
                    self.role_bindings
                        .entry(ns)
                        .or_default()
                        .insert(Arc::new(binding));
                }
                None => {
                    if let Some(set) = self.role_bindings.get_mut(&ns) {
                        set.remove(&name);
                        if set.is_empty() {
                            self.role_bindings.remove(&ns);
                        }
                    }
                }
            },
        }
    }

    /// Forgets everything (before a relist).
    pub fn clear(&mut self) {
        *self = Index::default();
    }

    /// The cluster roles, for the aggregation controller.
    pub fn cluster_roles(&self) -> &HashMap<String, ClusterRoleEntry> {
        &self.cluster_roles
    }

    /// The rules a binding's roleRef grants, resolved in the binding's namespace.
    pub fn role_ref_rules(
        &self,
        role_ref: &RoleRef,
        namespace: &str,
    ) -> Result<Arc<[PolicyRule]>, ResolveError> {
        match role_ref.kind.as_str() {
            "Role" => self
                .roles
                .get(namespace)
                .and_then(|roles| roles.get(&role_ref.name))
                .cloned()
                .ok_or_else(|| ResolveError::RoleNotFound {
                    kind: "Role".into(),
                    name: role_ref.name.clone(),
                }),
            "ClusterRole" => self
                .cluster_roles
                .get(&role_ref.name)
                .map(|c| c.rules.clone())
                .ok_or_else(|| ResolveError::RoleNotFound {
                    kind: "ClusterRole".into(),
                    name: role_ref.name.clone(),
                }),
            other => Err(ResolveError::UnsupportedKind(other.to_owned())),
        }
    }

    /// The bindings that apply to `user`: cluster-wide ones, then those of `namespace`
    /// (when not empty), each once, in name order.
    pub fn bindings_for(&self, user: &UserInfo, namespace: &str) -> Vec<Arc<Binding>> {
        let mut out = Vec::new();
        self.cluster_role_bindings.collect_for(user, &mut out);
        if !namespace.is_empty() {
            if let Some(set) = self.role_bindings.get(namespace) {
                set.collect_for(user, &mut out);
            }
        }
        out
    }

    /// Visits every rule that applies to `user` in `namespace`, with its source, and every
    /// resolution error; stops when `visit` returns false (upstream's `VisitRulesFor`).
    pub fn visit_rules_for(
        &self,
        user: &UserInfo,
        namespace: &str,
        mut visit: impl FnMut(
            Option<(&Binding, &Subject)>,
            Option<&PolicyRule>,
            Option<ResolveError>,
        ) -> bool,
    ) {
        for binding in self.bindings_for(user, namespace) {
            let Some(subject) = binding.subject_for(user) else {
                continue;
            };
            match self.role_ref_rules(&binding.role_ref, &binding.namespace) {
                Ok(rules) => {
                    for rule in rules.iter() {
                        if !visit(Some((&binding, subject)), Some(rule), None) {
                            return;
                        }
                    }
                }
                Err(e) => {
                    if !visit(None, None, Some(e)) {
                        return;
                    }
                }
            }
        }
    }

    /// Every rule that applies to `user` in `namespace`, and the resolution errors.
    pub fn rules_for(
        &self,
        user: &UserInfo,
        namespace: &str,
    ) -> (Vec<PolicyRule>, Vec<ResolveError>) {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        self.visit_rules_for(user, namespace, |_, rule, err| {
            if let Some(r) = rule {
                rules.push(r.clone());
            }
            if let Some(e) = err {
                errors.push(e);
            }
            true
        });
        (rules, errors)
    }

    /// RBAC's decision: allowed (with the reason naming the binding when `explain`), or
    /// not, with the resolution errors met on the way as the reason.
    pub fn authorize(&self, a: &Attributes, explain: bool) -> Result<String, String> {
        let mut allowed = None;
        let mut errors = Vec::new();
        self.visit_rules_for(&a.user, &a.namespace, |source, rule, err| {
            if let (Some((binding, subject)), Some(rule)) = (source, rule) {
                if rule.allows(a) {
                    allowed = Some(if explain {
                        format!("RBAC: allowed by {}", binding.describe(subject))
                    } else {
                        String::new()
                    });
                    return false;
                }
            }
            if let Some(e) = err {
                errors.push(e);
            }
            true
        });
        match allowed {
            Some(reason) => Ok(reason),
            None if errors.is_empty() => Err(String::new()),
            None => Err(format!("RBAC: {}", aggregate_errors(&errors))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes {
            user: UserInfo {
                name: "alice".into(),
                groups: vec![],
                ..Default::default()
            },
            verb: verb.into(),
            resource_request: true,
            api_group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
            namespace: "ns".into(),
            ..Default::default()
        }
    }

    fn url(verb: &str, path: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            path: path.into(),
            ..Default::default()
        }
    }

    #[test]
    fn rules_match_as_upstream() {
        let r = |verbs: &[&str], groups: &[&str], res: &[&str]| {
            PolicyRule::resources(verbs, groups, res)
        };
        let cases: Vec<(PolicyRule, Attributes, bool)> = vec![
            (
                r(&["get"], &[""], &["pods"]),
                attrs("get", "", "pods", "", "x"),
                true,
            ),
            (
                r(&["get"], &[""], &["pods"]),
                attrs("list", "", "pods", "", ""),
                false,
            ),
            (
                r(&["*"], &[""], &["pods"]),
                attrs("deletecollection", "", "pods", "", ""),
                true,
            ),
            (
                r(&["get"], &["*"], &["pods"]),
                attrs("get", "apps", "pods", "", ""),
                true,
            ),
            (
                r(&["get"], &["apps"], &["pods"]),
                attrs("get", "", "pods", "", ""),
                false,
            ),
            (
                r(&["get"], &[""], &["*"]),
                attrs("get", "", "pods", "log", ""),
                true,
            ),
            (
                r(&["get"], &[""], &["pods"]),
                attrs("get", "", "pods", "log", ""),
                false,
            ),
            (
                r(&["get"], &[""], &["pods/log"]),
                attrs("get", "", "pods", "log", ""),
                true,
            ),
            (
                r(&["get"], &[""], &["pods/log"]),
                attrs("get", "", "pods", "", ""),
                false,
            ),
            (
                r(&["get"], &[""], &["pods/log"]),
                attrs("get", "", "pods", "status", ""),
                false,
            ),
            (
                r(&["get"], &["apps"], &["*/scale"]),
                attrs("get", "apps", "deployments", "scale", ""),
                true,
            ),
            (
                r(&["get"], &["apps"], &["*/scale"]),
                attrs("get", "apps", "deployments", "", ""),
                false,
            ),
            (
                r(&["get"], &["apps"], &["*/scale"]),
                attrs("get", "apps", "deployments", "status", ""),
                false,
            ),
            (
                r(&["get"], &[""], &["configmaps"]).names(&["a"]),
                attrs("get", "", "configmaps", "", "a"),
                true,
            ),
            (
                r(&["get"], &[""], &["configmaps"]).names(&["a"]),
                attrs("get", "", "configmaps", "", "b"),
                false,
            ),
            (
                r(&["list"], &[""], &["configmaps"]).names(&["a"]),
                attrs("list", "", "configmaps", "", ""),
                false,
            ),
            // A resource rule never matches a non-resource request and vice versa.
            (r(&["get"], &["*"], &["*"]), url("get", "/healthz"), false),
            (
                PolicyRule::urls(&["get"], &["/healthz"]),
                url("get", "/healthz"),
                true,
            ),
            (
                PolicyRule::urls(&["get"], &["/healthz"]),
                url("get", "/healthz/etcd"),
                false,
            ),
            (
                PolicyRule::urls(&["get"], &["/healthz/*"]),
                url("get", "/healthz/etcd"),
                true,
            ),
            (
                PolicyRule::urls(&["get"], &["/apis/*"]),
                url("get", "/apis"),
                false,
            ),
            (
                PolicyRule::urls(&["get"], &["*"]),
                url("get", "/anything"),
                true,
            ),
            (
                PolicyRule::urls(&["get"], &["/metrics"]),
                url("post", "/metrics"),
                false,
            ),
            (
                PolicyRule::urls(&["get"], &["/healthz"]),
                attrs("get", "", "healthz", "", ""),
                false,
            ),
        ];
        for (rule, a, want) in cases {
            assert_eq!(rule.allows(&a), want, "{rule:?} vs {a:?}");
        }
    }

    #[test]
    fn coverage_and_compaction_as_upstream() {
        let owner = vec![
            PolicyRule::resources(&["get", "list"], &[""], &["pods", "*/status"]),
            PolicyRule::urls(&["get"], &["/healthz/*"]),
        ];
        let cases = vec![
            (PolicyRule::resources(&["get"], &[""], &["pods"]), true),
            (
                PolicyRule::resources(&["get"], &[""], &["pods/status"]),
                true,
            ),
            (PolicyRule::resources(&["get"], &[""], &["pods/log"]), false),
            (PolicyRule::resources(&["get"], &["apps"], &["pods"]), false),
            (
                PolicyRule::resources(&["get"], &[""], &["pods"]).names(&["x"]),
                true,
            ),
            (PolicyRule::resources(&["delete"], &[""], &["pods"]), false),
            (PolicyRule::urls(&["get"], &["/healthz/etcd"]), true),
            (PolicyRule::urls(&["get"], &["/healthz"]), false),
        ];
        for (wanted, want) in cases {
            assert_eq!(
                covers(&owner, std::slice::from_ref(&wanted)).0,
                want,
                "{wanted:?}"
            );
        }
        let named = vec![PolicyRule::resources(&["get"], &[""], &["pods"]).names(&["x"])];
        assert!(!covers(&named, &[PolicyRule::resources(&["get"], &[""], &["pods"])]).0);
        let (_, missing) = covers(
            &owner,
            &[PolicyRule::resources(
                &["create", "delete"],
                &["", "apps"],
                &["pods"],
            )],
        );
        let text: BTreeSet<String> = compact(missing)
            .iter()
            .map(PolicyRule::compact_string)
            .collect();
        assert_eq!(
            text.into_iter().collect::<Vec<_>>(),
            [
                "{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"create\" \"delete\"]}",
                "{APIGroups:[\"apps\"], Resources:[\"pods\"], Verbs:[\"create\" \"delete\"]}",
            ]
        );
    }

    fn obj(v: Value) -> Value {
        v
    }

    #[test]
    fn index_resolves_bindings_by_subject() {
        let mut idx = Index::default();
        idx.apply(
            "/registry/rbac.authorization.k8s.io/clusterroles/view",
            Some(&obj(json!({"metadata": {"name": "view"}, "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]}))),
        );
        idx.apply(
            "/registry/rbac.authorization.k8s.io/rolebindings/ns/rb",
            Some(&obj(json!({"metadata": {"name": "rb", "namespace": "ns"}, "roleRef": {"kind": "ClusterRole", "name": "view", "apiGroup": "rbac.authorization.k8s.io"},
                "subjects": [{"kind": "Group", "name": "devs"}, {"kind": "ServiceAccount", "name": "robot"}]}))),
        );
        idx.apply(
            "/registry/rbac.authorization.k8s.io/clusterrolebindings/missing",
            Some(&obj(json!({"metadata": {"name": "missing"}, "roleRef": {"kind": "ClusterRole", "name": "gone"}, "subjects": [{"kind": "User", "name": "alice"}]}))),
        );
        let mut a = attrs("get", "", "pods", "", "x");
        a.user.groups = vec!["devs".into()];
        assert_eq!(
            idx.authorize(&a, true),
            Ok(
                "RBAC: allowed by RoleBinding \"rb/ns\" of ClusterRole \"view\" to Group \"devs\""
                    .into()
            )
        );
        a.namespace = "other".into();
        assert_eq!(
            idx.authorize(&a, true),
            Err("RBAC: clusterrole.rbac.authorization.k8s.io \"gone\" not found".into())
        );
        let mut sa = attrs("get", "", "pods", "", "");
        sa.user.name = "system:serviceaccount:ns:robot".into();
        assert!(idx.authorize(&sa, true).is_ok());
        sa.user.name = "system:serviceaccount:other:robot".into();
        assert_eq!(idx.authorize(&sa, true), Err(String::new()));
        // Deleting the binding removes its grants.
        idx.apply(
            "/registry/rbac.authorization.k8s.io/rolebindings/ns/rb",
            None,
        );
        a.namespace = "ns".into();
        assert!(idx.authorize(&a, true).is_err());
        assert!(idx.role_bindings.is_empty());
    }
}
