//! `KubeSchedulerConfiguration` (`kubescheduler.config.k8s.io/v1`): strict decoding from
//! YAML or JSON, upstream's v1 defaulting (the default plugins are one `multiPoint` set
//! with upstream's weights, merged with a profile's own sets), validation with upstream's
//! messages, and building each profile's [`Framework`] — the default profile included,
//! so there is one code path.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{NodeAffinity, TopologySpreadConstraint};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::framework::{ExtensionPoint, Framework, Plugin};
use crate::plugins::node_resources::fit::ScoringStrategy;
use crate::plugins::node_resources::requested_to_capacity_ratio::ShapePoint;
use crate::plugins::node_resources::ResourceSpec;
use crate::plugins::{self, in_tree_registry, Handle, Registry};

pub const API_VERSION: &str = "kubescheduler.config.k8s.io/v1";
pub const KIND: &str = "KubeSchedulerConfiguration";

/// Plugins removed in v1: naming them is an error.
const INVALID_PLUGINS: &[&str] = &[
    "AzureDiskLimits",
    "CinderLimits",
    "EBSLimits",
    "GCEPDLimits",
];

/// A configuration that cannot be used: the message says why (upstream's wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

// ---- The file as written (v1), decoded strictly. ----

/// Upstream's fields rkube accepts but does not use (`apiVersion`/`kind` are checked
/// before decoding; serving and connecting are rkube's own flags) are `dead_code`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct RawConfiguration {
    api_version: Option<String>,
    kind: Option<String>,
    parallelism: Option<i32>,
    leader_election: Option<RawLeaderElection>,
    client_connection: Option<RawClientConnection>,
    health_z_bind_address: Option<String>,
    metrics_bind_address: Option<String>,
    enable_profiling: Option<bool>,
    enable_contention_profiling: Option<bool>,
    percentage_of_nodes_to_score: Option<i32>,
    pod_initial_backoff_seconds: Option<i64>,
    pod_max_backoff_seconds: Option<i64>,
    profiles: Option<Vec<RawProfile>>,
    delay_cache_until_active: Option<bool>,
}

/// Accepted as upstream's; rkube connects with `--kubeconfig` (or in-process).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct RawClientConnection {
    kubeconfig: Option<String>,
    accept_content_types: Option<String>,
    content_type: Option<String>,
    qps: Option<f64>,
    burst: Option<i32>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawLeaderElection {
    leader_elect: Option<bool>,
    lease_duration: Option<String>,
    renew_deadline: Option<String>,
    retry_period: Option<String>,
    resource_lock: Option<String>,
    resource_name: Option<String>,
    resource_namespace: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawProfile {
    scheduler_name: Option<String>,
    percentage_of_nodes_to_score: Option<i32>,
    plugins: Option<RawPlugins>,
    plugin_config: Option<Vec<RawPluginConfig>>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawPlugins {
    pre_enqueue: Option<PluginSet>,
    queue_sort: Option<PluginSet>,
    pre_filter: Option<PluginSet>,
    filter: Option<PluginSet>,
    post_filter: Option<PluginSet>,
    pre_score: Option<PluginSet>,
    score: Option<PluginSet>,
    reserve: Option<PluginSet>,
    permit: Option<PluginSet>,
    pre_bind: Option<PluginSet>,
    bind: Option<PluginSet>,
    post_bind: Option<PluginSet>,
    multi_point: Option<PluginSet>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawPluginConfig {
    name: String,
    args: Option<Value>,
}

/// Plugins enabled and disabled at one extension point.
#[derive(Debug, Deserialize, Default, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginSet {
    #[serde(default)]
    pub enabled: Vec<PluginRef>,
    #[serde(default)]
    pub disabled: Vec<PluginRef>,
}

/// A plugin named in a set, with its score weight (0: unset).
#[derive(Debug, Deserialize, Default, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginRef {
    pub name: String,
    #[serde(default)]
    pub weight: i32,
}

impl PluginRef {
    fn named(name: &str, weight: i32) -> PluginRef {
        PluginRef {
            name: name.into(),
            weight,
        }
    }
}

// ---- Plugin args (upstream's `*Args` types). ----

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawResourceSpec {
    name: String,
    #[serde(default)]
    weight: i64,
}

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawShapePoint {
    utilization: i64,
    score: i64,
}

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawRequestedToCapacityRatio {
    #[serde(default)]
    shape: Vec<RawShapePoint>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawScoringStrategy {
    #[serde(rename = "type", default)]
    type_: String,
    #[serde(default)]
    resources: Vec<RawResourceSpec>,
    requested_to_capacity_ratio: Option<RawRequestedToCapacityRatio>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawFitArgs {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    ignored_resources: Vec<String>,
    #[serde(default)]
    ignored_resource_groups: Vec<String>,
    scoring_strategy: Option<RawScoringStrategy>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawBalancedArgs {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    resources: Vec<RawResourceSpec>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawInterPodAffinityArgs {
    api_version: Option<String>,
    kind: Option<String>,
    hard_pod_affinity_weight: Option<i32>,
    ignore_preferred_terms_of_existing_pods: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawPodTopologySpreadArgs {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    default_constraints: Vec<TopologySpreadConstraint>,
    defaulting_type: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawNodeAffinityArgs {
    api_version: Option<String>,
    kind: Option<String>,
    added_affinity: Option<NodeAffinity>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawDefaultPreemptionArgs {
    api_version: Option<String>,
    kind: Option<String>,
    min_candidate_nodes_percentage: Option<i32>,
    min_candidate_nodes_absolute: Option<i32>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawVolumeBindingArgs {
    api_version: Option<String>,
    kind: Option<String>,
    bind_timeout_seconds: Option<i64>,
    shape: Option<Value>,
}

/// A profile's plugin args, defaulted as upstream's v1 defaulting does.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginArgs {
    pub fit_strategy: ScoringStrategy,
    pub fit_ignored_resources: Vec<String>,
    pub fit_ignored_resource_groups: Vec<String>,
    pub balanced_allocation_resources: Vec<ResourceSpec>,
    pub hard_pod_affinity_weight: i64,
    /// `None`: `defaultingType: System`; otherwise the `List` constraints.
    pub default_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
    pub added_affinity: Option<NodeAffinity>,
    pub min_candidate_nodes_percentage: u32,
    pub min_candidate_nodes_absolute: u32,
    /// Decoded and validated; rkube's VolumeBinding has no binding wait it would bound.
    pub bind_timeout_seconds: i64,
}

impl Default for PluginArgs {
    fn default() -> Self {
        PluginArgs {
            fit_strategy: ScoringStrategy::LeastAllocated(default_resources()),
            fit_ignored_resources: Vec::new(),
            fit_ignored_resource_groups: Vec::new(),
            balanced_allocation_resources: default_resources(),
            hard_pod_affinity_weight: 1,
            default_spread_constraints: None,
            added_affinity: None,
            min_candidate_nodes_percentage: 10,
            min_candidate_nodes_absolute: 100,
            bind_timeout_seconds: 600,
        }
    }
}

fn default_resources() -> Vec<ResourceSpec> {
    plugins::node_resources::default_resources()
}

// ---- The configuration in effect. ----

/// Leader election as configured (`leaderElection`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderElectionConfig {
    pub leader_elect: bool,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
    pub resource_lock: String,
    pub resource_name: String,
    pub resource_namespace: String,
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        LeaderElectionConfig {
            leader_elect: true,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            resource_lock: "leases".into(),
            resource_name: "kube-scheduler".into(),
            resource_namespace: "kube-system".into(),
        }
    }
}

/// One profile after defaulting: the merged plugin sets and its args.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub scheduler_name: String,
    /// The profile's own value, else the configuration's (`None`: adaptive).
    pub percentage_of_nodes_to_score: Option<u32>,
    /// The sets per extension point after merging with the defaults (`None` key: multiPoint).
    pub multi_point: PluginSet,
    pub points: Vec<(ExtensionPoint, PluginSet)>,
    pub args: PluginArgs,
}

/// A defaulted, validated `KubeSchedulerConfiguration`.
#[derive(Debug, Clone, PartialEq)]
pub struct Configuration {
    pub parallelism: i32,
    pub percentage_of_nodes_to_score: Option<u32>,
    pub pod_initial_backoff: Duration,
    pub pod_max_backoff: Duration,
    pub leader_election: LeaderElectionConfig,
    pub profiles: Vec<Profile>,
}

impl Default for Configuration {
    /// What an empty file means: one `default-scheduler` profile with the defaults.
    fn default() -> Self {
        parse_value(serde_json::json!({"apiVersion": API_VERSION, "kind": KIND}))
            .expect("the default configuration is valid")
    }
}

/// The default profile's plugins as upstream's v1 `multiPoint` set, in its order, with its
/// weights (only those rkube has: not NodeVolumeLimits).
pub fn default_plugins() -> PluginSet {
    let weights: HashMap<&str, i32> = plugins::DEFAULT_WEIGHTS
        .iter()
        .map(|(n, w)| (*n, *w as i32))
        .collect();
    PluginSet {
        enabled: plugins::DEFAULT_PLUGINS
            .iter()
            .map(|n| PluginRef::named(n, weights.get(n).copied().unwrap_or(0)))
            .collect(),
        disabled: Vec::new(),
    }
}

// ---- Errors in upstream's `field.Error` form. ----

fn invalid(path: &str, value: impl std::fmt::Display, detail: &str) -> String {
    format!("{path}: Invalid value: {value}: {detail}")
}

fn quoted(s: &str) -> String {
    format!("{s:?}")
}

fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        format!("{}ms", ms)
    } else {
        format!("{}s", d.as_secs())
    }
}

/// Upstream's `utilerrors.Aggregate` text: one error alone, several in brackets.
fn aggregate(errs: Vec<String>) -> Result<(), ConfigError> {
    match errs.len() {
        0 => Ok(()),
        1 => Err(ConfigError(errs.into_iter().next().unwrap_or_default())),
        _ => Err(ConfigError(format!("[{}]", errs.join(", ")))),
    }
}

/// A Go duration (`15s`, `1m30s`, `500ms`, `1h`).
fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = tail;
    }
    Some(Duration::from_secs_f64(total))
}

/// Decodes `value` strictly: an unknown field is upstream's strict decoding error with
/// its path.
fn strict<T: DeserializeOwned>(value: Value, prefix: &str) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner().to_string();
        if let Some(rest) = inner.strip_prefix("unknown field `") {
            // The path ends with the unknown field itself.
            let field = rest.split('`').next().unwrap_or_default();
            let path = if path == "." || path.is_empty() {
                field.to_owned()
            } else {
                path
            };
            let full = if prefix.is_empty() {
                path
            } else {
                format!("{prefix}.{path}")
            };
            format!("strict decoding error: unknown field {full:?}")
        } else {
            let at = [prefix, &path]
                .iter()
                .filter(|s| !s.is_empty() && **s != ".")
                .copied()
                .collect::<Vec<_>>()
                .join(".");
            if at.is_empty() {
                format!("decoding error: {inner}")
            } else {
                format!("decoding error: {at}: {inner}")
            }
        }
    })
}

// ---- Loading. ----

/// Reads a configuration file (YAML or JSON).
pub fn load_file(path: &std::path::Path) -> Result<Configuration, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "cannot read the scheduler configuration {}: {e}",
            path.display()
        ))
    })?;
    parse(&text)
}

/// Decodes, defaults and validates a configuration (YAML or JSON text).
pub fn parse(text: &str) -> Result<Configuration, ConfigError> {
    let value: Value = serde_saphyr::from_str(text)
        .map_err(|e| ConfigError(format!("cannot parse the configuration: {e}")))?;
    parse_value(value)
}

/// [`parse`] from a decoded document.
pub fn parse_value(value: Value) -> Result<Configuration, ConfigError> {
    let Value::Object(obj) = &value else {
        return Err(ConfigError(
            "cannot parse the configuration: not an object".into(),
        ));
    };
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind.is_empty() {
        return Err(ConfigError(format!(
            "Object 'Kind' is missing in '{}'",
            serde_json::to_string(&value).unwrap_or_default()
        )));
    }
    if api_version != API_VERSION || kind != KIND {
        return Err(ConfigError(format!(
            "no kind {kind:?} is registered for version {api_version:?} in scheme \"rkube-scheduler\""
        )));
    }
    let raw: RawConfiguration = strict(value, "").map_err(ConfigError)?;
    resolve(raw)
}

/// Defaulting and validation.
fn resolve(raw: RawConfiguration) -> Result<Configuration, ConfigError> {
    let mut errs = Vec::new();
    let parallelism = raw.parallelism.unwrap_or(16);
    if parallelism <= 0 {
        errs.push(invalid(
            "parallelism",
            parallelism,
            "should be an integer value greater than zero",
        ));
    }
    let pct = |path: &str, v: Option<i32>, errs: &mut Vec<String>| match v {
        Some(p) if !(0..=100).contains(&p) => {
            errs.push(invalid(path, p, "not in valid range [0-100]"));
            None
        }
        Some(p) => Some(p as u32),
        None => None,
    };
    let percentage = pct(
        "percentageOfNodesToScore",
        raw.percentage_of_nodes_to_score,
        &mut errs,
    );
    let initial = raw.pod_initial_backoff_seconds.unwrap_or(1);
    let max = raw.pod_max_backoff_seconds.unwrap_or(10);
    if initial <= 0 {
        errs.push(invalid(
            "podInitialBackoffSeconds",
            initial,
            "must be greater than 0",
        ));
    }
    if max < initial {
        errs.push(invalid(
            "podMaxBackoffSeconds",
            max,
            "must be greater than or equal to PodInitialBackoffSeconds",
        ));
    }
    let leader_election = leader_election(raw.leader_election.unwrap_or_default(), &mut errs);

    let mut raw_profiles = raw.profiles.unwrap_or_default();
    if raw_profiles.is_empty() {
        raw_profiles.push(RawProfile::default());
    }
    if raw_profiles.len() == 1 && raw_profiles[0].scheduler_name.is_none() {
        raw_profiles[0].scheduler_name = Some(plugins::DEFAULT_SCHEDULER_NAME.into());
    }
    let mut profiles = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, rp) in raw_profiles.iter().enumerate() {
        let path = format!("profiles[{i}]");
        let name = rp.scheduler_name.clone().unwrap_or_default();
        if name.is_empty() {
            errs.push(format!("{path}.schedulerName: Required value"));
        }
        let own_pct = pct(
            &format!("{path}.percentageOfNodesToScore"),
            rp.percentage_of_nodes_to_score,
            &mut errs,
        );
        let plugins = rp.plugins.clone().unwrap_or_default();
        for (field, set) in plugin_sets(&plugins) {
            if let Some(set) = set {
                for (j, p) in set.enabled.iter().enumerate() {
                    if INVALID_PLUGINS.contains(&p.name.as_str()) {
                        errs.push(invalid(
                            &format!("{path}.plugins.{field}.enabled[{j}]"),
                            quoted(&p.name),
                            &format!("was invalid in version {API_VERSION:?} (KubeSchedulerConfiguration is version {API_VERSION:?})"),
                        ));
                    }
                }
            }
        }
        let multi_point = merge_plugin_set(&default_plugins(), plugins.multi_point.as_ref());
        let points = ExtensionPoint::ALL
            .iter()
            .map(|e| {
                let set = plugin_sets(&plugins)
                    .into_iter()
                    .find(|(f, _)| *f == e.field())
                    .and_then(|(_, s)| s);
                (*e, merge_plugin_set(&PluginSet::default(), set))
            })
            .collect();
        let args = plugin_args(
            &path,
            rp.plugin_config.as_deref().unwrap_or_default(),
            &mut errs,
        );
        if seen.contains_key(&name) {
            // Upstream passes the first profile's field path as the value, which its
            // error text renders as `{}`.
            errs.push(format!("{path}.schedulerName: Duplicate value: {{}}"));
        }
        seen.insert(name.clone(), i);
        profiles.push(Profile {
            scheduler_name: name,
            percentage_of_nodes_to_score: own_pct.or(percentage),
            multi_point,
            points,
            args,
        });
    }
    // queueSort must be the same in every profile (as written).
    let queue_sort = |rp: &RawProfile| {
        rp.plugins
            .as_ref()
            .and_then(|p| p.queue_sort.clone())
            .unwrap_or_default()
    };
    let canon = queue_sort(&raw_profiles[0]);
    if canon.enabled.len() > 1 {
        errs.push(invalid(
            "profiles[0].plugins.queueSort.Enabled",
            canon.enabled.len(),
            "only one queue sort plugin can be enabled",
        ));
    }
    for (i, rp) in raw_profiles.iter().enumerate().skip(1) {
        let curr = queue_sort(rp);
        if curr != canon {
            errs.push(invalid(
                &format!("profiles[{i}].plugins.queueSort"),
                format_plugin_set(&curr),
                "must be the same for all profiles",
            ));
        }
    }
    aggregate(errs)?;
    let config = Configuration {
        parallelism,
        percentage_of_nodes_to_score: percentage,
        pod_initial_backoff: Duration::from_secs(initial as u64),
        pod_max_backoff: Duration::from_secs(max as u64),
        leader_election,
        profiles,
    };
    // Building every profile catches what the framework refuses (unknown plugins, a
    // plugin at a point it does not implement, no queue sort or bind plugin).
    config.build(&Handle::default())?;
    Ok(config)
}

/// A plugin set as Go's `%#v` prints it, shortened to what matters.
fn format_plugin_set(set: &PluginSet) -> String {
    let names = |v: &[PluginRef]| {
        v.iter()
            .map(|p| format!("{{Name:{:?} Weight:{}}}", p.name, p.weight))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "config.PluginSet{{Enabled:[{}], Disabled:[{}]}}",
        names(&set.enabled),
        names(&set.disabled)
    )
}

fn plugin_sets(p: &RawPlugins) -> Vec<(&'static str, Option<&PluginSet>)> {
    vec![
        ("preEnqueue", p.pre_enqueue.as_ref()),
        ("queueSort", p.queue_sort.as_ref()),
        ("preFilter", p.pre_filter.as_ref()),
        ("filter", p.filter.as_ref()),
        ("postFilter", p.post_filter.as_ref()),
        ("preScore", p.pre_score.as_ref()),
        ("score", p.score.as_ref()),
        ("reserve", p.reserve.as_ref()),
        ("permit", p.permit.as_ref()),
        ("preBind", p.pre_bind.as_ref()),
        ("bind", p.bind.as_ref()),
        ("postBind", p.post_bind.as_ref()),
        ("multiPoint", p.multi_point.as_ref()),
    ]
}

/// Upstream's `mergePluginSet`: the defaults minus those disabled (all for `*`), a
/// re-enabled default replaced in place by the custom entry, then the other custom ones.
pub fn merge_plugin_set(defaults: &PluginSet, custom: Option<&PluginSet>) -> PluginSet {
    let Some(custom) = custom else {
        return defaults.clone();
    };
    let disabled: HashSet<&str> = custom.disabled.iter().map(|p| p.name.as_str()).collect();
    let mut replaced = HashSet::new();
    let mut enabled = Vec::new();
    if !disabled.contains("*") {
        for d in &defaults.enabled {
            if disabled.contains(d.name.as_str()) {
                continue;
            }
            match custom.enabled.iter().position(|c| c.name == d.name) {
                Some(i) => {
                    replaced.insert(i);
                    enabled.push(custom.enabled[i].clone());
                }
                None => enabled.push(d.clone()),
            }
        }
    }
    for (i, c) in custom.enabled.iter().enumerate() {
        if !replaced.contains(&i) {
            enabled.push(c.clone());
        }
    }
    PluginSet {
        enabled,
        disabled: custom.disabled.clone(),
    }
}

fn leader_election(raw: RawLeaderElection, errs: &mut Vec<String>) -> LeaderElectionConfig {
    let d = LeaderElectionConfig::default();
    let mut dur = |field: &str, v: Option<String>, default: Duration| match v {
        None => default,
        Some(s) => parse_go_duration(&s).unwrap_or_else(|| {
            errs.push(format!(
                "decoding error: leaderElection.{field}: time: invalid duration {s:?}"
            ));
            default
        }),
    };
    let le = LeaderElectionConfig {
        leader_elect: raw.leader_elect.unwrap_or(d.leader_elect),
        lease_duration: dur("leaseDuration", raw.lease_duration, d.lease_duration),
        renew_deadline: dur("renewDeadline", raw.renew_deadline, d.renew_deadline),
        retry_period: dur("retryPeriod", raw.retry_period, d.retry_period),
        resource_lock: raw.resource_lock.unwrap_or(d.resource_lock),
        resource_name: raw.resource_name.unwrap_or(d.resource_name),
        resource_namespace: raw.resource_namespace.unwrap_or(d.resource_namespace),
    };
    if !le.leader_elect {
        return le;
    }
    for (field, v) in [
        ("leaseDuration", le.lease_duration),
        ("renewDeadline", le.renew_deadline),
        ("retryPeriod", le.retry_period),
    ] {
        if v.is_zero() {
            errs.push(invalid(
                &format!("leaderElection.{field}"),
                go_duration(v),
                "must be greater than zero",
            ));
        }
    }
    if le.lease_duration <= le.renew_deadline {
        errs.push(invalid(
            "leaderElection.leaseDuration",
            go_duration(le.renew_deadline),
            "LeaseDuration must be greater than RenewDeadline",
        ));
    }
    for (field, v) in [
        ("resourceLock", &le.resource_lock),
        ("resourceName", &le.resource_name),
        ("resourceNamespace", &le.resource_namespace),
    ] {
        if v.is_empty() {
            errs.push(invalid(
                &format!("leaderElection.{field}"),
                quoted(v),
                &format!("{field} is required"),
            ));
        }
    }
    if le.resource_lock != "leases" {
        errs.push(invalid(
            "leaderElection.resourceLock",
            quoted(&le.resource_lock),
            "resourceLock value must be \"leases\"",
        ));
    }
    le
}

/// Checks an args object's own `apiVersion`/`kind` (optional, as upstream).
fn check_args_kind(
    path: &str,
    api_version: &Option<String>,
    kind: &Option<String>,
    want: &str,
    errs: &mut Vec<String>,
) {
    if let Some(k) = kind {
        if k != want {
            errs.push(invalid(
                &format!("{path}.kind"),
                quoted(k),
                "has to match plugin args",
            ));
        }
    }
    if let Some(v) = api_version {
        if v != API_VERSION {
            errs.push(format!(
                "{path}: no kind {:?} is registered for version {v:?}",
                kind.as_deref().unwrap_or(want)
            ));
        }
    }
}

fn resource_specs(
    path: &str,
    raw: &[RawResourceSpec],
    errs: &mut Vec<String>,
) -> Vec<ResourceSpec> {
    if raw.is_empty() {
        return default_resources();
    }
    let mut seen = HashSet::new();
    raw.iter()
        .enumerate()
        .map(|(i, r)| {
            let weight = if r.weight == 0 { 1 } else { r.weight };
            if !(1..=100).contains(&weight) {
                errs.push(invalid(
                    &format!("{path}[{i}].weight"),
                    weight,
                    &format!("resource weight of {} not in valid range [1, 100]", r.name),
                ));
            }
            if !seen.insert(r.name.clone()) {
                errs.push(format!("{path}[{i}].name: Duplicate value: {:?}", r.name));
            }
            ResourceSpec {
                name: r.name.clone(),
                weight,
            }
        })
        .collect()
}

/// Decodes, defaults and validates one profile's `pluginConfig`.
fn plugin_args(
    profile_path: &str,
    configs: &[RawPluginConfig],
    errs: &mut Vec<String>,
) -> PluginArgs {
    let mut args = PluginArgs::default();
    let mut seen = HashSet::new();
    for (i, pc) in configs.iter().enumerate() {
        let path = format!("{profile_path}.pluginConfig[{i}]");
        if !seen.insert(pc.name.clone()) {
            errs.push(format!("{path}: Duplicate value: {:?}", pc.name));
        }
        if INVALID_PLUGINS.contains(&pc.name.as_str()) {
            errs.push(invalid(
                &path,
                quoted(&pc.name),
                &format!("was invalid in version {API_VERSION:?} (KubeSchedulerConfiguration is version {API_VERSION:?})"),
            ));
            continue;
        }
        let value = pc.args.clone().unwrap_or(Value::Object(Default::default()));
        let args_path = format!("{path}.args");
        macro_rules! decode {
            ($t:ty) => {
                match strict::<$t>(value, "") {
                    Ok(v) => v,
                    // Upstream's nested strict decoding: paths relative to the args.
                    Err(e) => {
                        errs.push(match e.strip_prefix("strict decoding error: ") {
                            Some(inner) => format!(
                                "strict decoding error: decoding args for plugin {}: strict decoding error: {inner}",
                                pc.name
                            ),
                            None => format!("{args_path}: decoding args for plugin {}: {e}", pc.name),
                        });
                        continue;
                    }
                }
            };
        }
        match pc.name.as_str() {
            "NodeResourcesFit" => {
                let raw = decode!(RawFitArgs);
                check_args_kind(
                    &args_path,
                    &raw.api_version,
                    &raw.kind,
                    "NodeResourcesFitArgs",
                    errs,
                );
                args.fit_ignored_resources = raw.ignored_resources;
                args.fit_ignored_resource_groups = raw.ignored_resource_groups;
                for (j, g) in args.fit_ignored_resource_groups.iter().enumerate() {
                    if g.contains('/') {
                        errs.push(invalid(
                            &format!("{args_path}.ignoredResourceGroups[{j}]"),
                            quoted(g),
                            "resource group name can't contain '/'",
                        ));
                    }
                }
                let ss = raw.scoring_strategy.unwrap_or_else(|| RawScoringStrategy {
                    type_: "LeastAllocated".into(),
                    ..Default::default()
                });
                let spath = format!("{args_path}.scoringStrategy");
                let resources = resource_specs(&format!("{spath}.resources"), &ss.resources, errs);
                args.fit_strategy = match ss.type_.as_str() {
                    "LeastAllocated" => ScoringStrategy::LeastAllocated(resources),
                    "MostAllocated" => ScoringStrategy::MostAllocated(resources),
                    "RequestedToCapacityRatio" => {
                        let shape = ss
                            .requested_to_capacity_ratio
                            .map(|r| r.shape)
                            .unwrap_or_default();
                        let shape_path = format!("{spath}.requestedToCapacityRatio.shape");
                        if shape.is_empty() {
                            errs.push(format!("{shape_path}: Required value: at least one point must be specified"));
                        }
                        for (j, p) in shape.iter().enumerate() {
                            if !(0..=100).contains(&p.utilization) {
                                errs.push(invalid(
                                    &format!("{shape_path}[{j}].utilization"),
                                    p.utilization,
                                    "not in valid range [0, 100]",
                                ));
                            } else if j > 0 && p.utilization <= shape[j - 1].utilization {
                                errs.push(invalid(
                                    &format!("{shape_path}[{j}].utilization"),
                                    p.utilization,
                                    "utilization values must be sorted in increasing order",
                                ));
                            }
                            if !(0..=10).contains(&p.score) {
                                errs.push(invalid(
                                    &format!("{shape_path}[{j}].score"),
                                    p.score,
                                    "not in valid range [0, 10]",
                                ));
                            }
                        }
                        ScoringStrategy::RequestedToCapacityRatio(
                            resources,
                            shape
                                .iter()
                                .map(|p| ShapePoint {
                                    utilization: p.utilization,
                                    score: p.score,
                                })
                                .collect(),
                        )
                    }
                    other => {
                        errs.push(format!(
                            "{spath}.type: Unsupported value: {other:?}: supported values: \"LeastAllocated\", \"MostAllocated\", \"RequestedToCapacityRatio\""
                        ));
                        continue;
                    }
                };
            }
            "NodeResourcesBalancedAllocation" => {
                let raw = decode!(RawBalancedArgs);
                check_args_kind(
                    &args_path,
                    &raw.api_version,
                    &raw.kind,
                    "NodeResourcesBalancedAllocationArgs",
                    errs,
                );
                args.balanced_allocation_resources =
                    resource_specs(&format!("{args_path}.resources"), &raw.resources, errs);
            }
            "InterPodAffinity" => {
                let raw = decode!(RawInterPodAffinityArgs);
                check_args_kind(
                    &args_path,
                    &raw.api_version,
                    &raw.kind,
                    "InterPodAffinityArgs",
                    errs,
                );
                let _ = raw.ignore_preferred_terms_of_existing_pods;
                let w = raw.hard_pod_affinity_weight.unwrap_or(1);
                if !(0..=100).contains(&w) {
                    errs.push(invalid(
                        &format!("{args_path}.hardPodAffinityWeight"),
                        w,
                        "not in valid range [0, 100]",
                    ));
                }
                args.hard_pod_affinity_weight = i64::from(w);
            }
            "PodTopologySpread" => {
                let raw = decode!(RawPodTopologySpreadArgs);
                check_args_kind(
                    &args_path,
                    &raw.api_version,
                    &raw.kind,
                    "PodTopologySpreadArgs",
                    errs,
                );
                let typ = raw.defaulting_type.unwrap_or_else(|| "System".into());
                match typ.as_str() {
                    "System" => {
                        if !raw.default_constraints.is_empty() {
                            errs.push(invalid(&format!("{args_path}.defaultingType"), quoted(&typ), "when .defaultConstraints are not empty"));
                        }
                        args.default_spread_constraints = None;
                    }
                    "List" => {
                        let cpath = format!("{args_path}.defaultConstraints");
                        let mut seen = HashSet::new();
                        for (j, c) in raw.default_constraints.iter().enumerate() {
                            let p = format!("{cpath}[{j}]");
                            if c.max_skew <= 0 {
                                errs.push(invalid(&format!("{p}.maxSkew"), c.max_skew, "must be greater than zero"));
                            }
                            if c.topology_key.is_empty() {
                                errs.push(format!("{p}.topologyKey: Required value: can not be empty"));
                            }
                            if !matches!(c.when_unsatisfiable.as_str(), "DoNotSchedule" | "ScheduleAnyway") {
                                errs.push(format!("{p}.whenUnsatisfiable: Unsupported value: {:?}: supported values: \"DoNotSchedule\", \"ScheduleAnyway\"", c.when_unsatisfiable));
                            }
                            if !seen.insert((c.topology_key.clone(), c.when_unsatisfiable.clone())) {
                                errs.push(format!("{p}: Duplicate value: \"{{{}, {}}}\"", c.topology_key, c.when_unsatisfiable));
                            }
                            if c.label_selector.is_some() {
                                errs.push(format!("{p}.labelSelector: Forbidden: constraint must not define a selector, as they deduced for each pod"));
                            }
                        }
                        args.default_spread_constraints = Some(raw.default_constraints);
                    }
                    other => errs.push(format!(
                        "{args_path}.defaultingType: Unsupported value: {other:?}: supported values: \"List\", \"System\""
                    )),
                }
            }
            "NodeAffinity" => {
                let raw = decode!(RawNodeAffinityArgs);
                check_args_kind(
                    &args_path,
                    &raw.api_version,
                    &raw.kind,
                    "NodeAffinityArgs",
                    errs,
                );
                if let Some(a) = &raw.added_affinity {
                    let terms = a
                        .required_during_scheduling_ignored_during_execution
                        .as_ref()
                        .map(|r| r.node_selector_terms.len());
                    if terms == Some(0) {
                        errs.push(format!("{args_path}.addedAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms: Required value: must have at least one node selector term"));
                    }
                    for (j, p) in a
                        .preferred_during_scheduling_ignored_during_execution
                        .iter()
                        .flatten()
                        .enumerate()
                    {
                        if !(1..=100).contains(&p.weight) {
                            errs.push(invalid(&format!("{args_path}.addedAffinity.preferredDuringSchedulingIgnoredDuringExecution[{j}].weight"), p.weight, "must be in the range 1-100"));
                        }
                    }
                }
                args.added_affinity = raw.added_affinity;
            }
            "DefaultPreemption" => {
                let raw = decode!(RawDefaultPreemptionArgs);
                check_args_kind(
                    &args_path,
                    &raw.api_version,
                    &raw.kind,
                    "DefaultPreemptionArgs",
                    errs,
                );
                let pct = raw.min_candidate_nodes_percentage.unwrap_or(10);
                let abs = raw.min_candidate_nodes_absolute.unwrap_or(100);
                if !(0..=100).contains(&pct) {
                    errs.push(invalid(
                        &format!("{args_path}.minCandidateNodesPercentage"),
                        pct,
                        "not in valid range [0, 100]",
                    ));
                }
                if abs < 0 {
                    errs.push(invalid(
                        &format!("{args_path}.minCandidateNodesAbsolute"),
                        abs,
                        "not in valid range [0, inf)",
                    ));
                }
                if pct == 0 && abs == 0 {
                    errs.push(invalid(
                        &format!("{args_path}.minCandidateNodesPercentage"),
                        pct,
                        "cannot be zero at the same time as minCandidateNodesAbsolute",
                    ));
                    errs.push(invalid(
                        &format!("{args_path}.minCandidateNodesAbsolute"),
                        abs,
                        "cannot be zero at the same time as minCandidateNodesPercentage",
                    ));
                }
                args.min_candidate_nodes_percentage = pct.max(0) as u32;
                args.min_candidate_nodes_absolute = abs.max(0) as u32;
            }
            "VolumeBinding" => {
                let raw = decode!(RawVolumeBindingArgs);
                check_args_kind(
                    &args_path,
                    &raw.api_version,
                    &raw.kind,
                    "VolumeBindingArgs",
                    errs,
                );
                let _ = raw.shape;
                let t = raw.bind_timeout_seconds.unwrap_or(600);
                if t < 0 {
                    errs.push(invalid(
                        &format!("{args_path}.bindTimeoutSeconds"),
                        t,
                        "invalid BindTimeoutSeconds, should not be a negative value",
                    ));
                }
                args.bind_timeout_seconds = t;
            }
            // Plugins without args (or unknown names): upstream keeps them undecoded.
            _ => {}
        }
    }
    args
}

// ---- Building frameworks. ----

/// Upstream's maximum total score (`math.MaxInt64`).
const MAX_TOTAL_SCORE: i64 = i64::MAX;

impl Profile {
    /// The profile's framework: its plugins built once with its args, expanded to each
    /// extension point as upstream's `NewFramework` does.
    pub fn build(&self, registry: &Registry, handle: &Handle) -> Result<Framework, ConfigError> {
        self.build_inner(registry, handle).map_err(|e| {
            ConfigError(format!(
                "initializing profiles: creating profile for scheduler name {}: {e}",
                self.scheduler_name
            ))
        })
    }

    fn build_inner(&self, registry: &Registry, handle: &Handle) -> Result<Framework, String> {
        // Upstream's order of extension points when building.
        const ORDER: [ExtensionPoint; 12] = [
            ExtensionPoint::PreFilter,
            ExtensionPoint::Filter,
            ExtensionPoint::PostFilter,
            ExtensionPoint::Reserve,
            ExtensionPoint::PreScore,
            ExtensionPoint::Score,
            ExtensionPoint::PreBind,
            ExtensionPoint::Bind,
            ExtensionPoint::PostBind,
            ExtensionPoint::Permit,
            ExtensionPoint::PreEnqueue,
            ExtensionPoint::QueueSort,
        ];
        // Each plugin is built once, in the order first named.
        let mut built: Vec<Arc<dyn Plugin>> = Vec::new();
        let mut get = |name: &str| -> Option<Arc<dyn Plugin>> {
            if let Some(p) = built.iter().find(|p| p.name() == name) {
                return Some(p.clone());
            }
            let p = registry.build_one(name, handle, &self.args)?;
            built.push(p.clone());
            Some(p)
        };
        let set_at = |e: ExtensionPoint| -> &PluginSet {
            self.points
                .iter()
                .find(|(p, _)| *p == e)
                .map(|(_, s)| s)
                .expect("every extension point has a set")
        };
        let mut points: Vec<(ExtensionPoint, Vec<Arc<dyn Plugin>>)> = Vec::new();
        // Plugins named at specific extension points.
        for e in ORDER {
            let mut list: Vec<Arc<dyn Plugin>> = Vec::new();
            for p in &set_at(e).enabled {
                let pl = get(&p.name)
                    .ok_or_else(|| format!("{} {:?} does not exist", e.interface(), p.name))?;
                if !e.implemented_by(pl.as_ref()) {
                    return Err(format!(
                        "plugin {:?} does not extend {} plugin",
                        p.name,
                        e.interface()
                    ));
                }
                if list.iter().any(|x| x.name() == pl.name()) {
                    return Err(format!(
                        "plugin {:?} already registered as {:?}",
                        p.name,
                        e.interface()
                    ));
                }
                list.push(pl);
            }
            points.push((e, list));
        }
        // multiPoint, expanded to every point each plugin implements.
        for (e, list) in points.iter_mut() {
            let set = set_at(*e);
            let disabled: HashSet<&str> = set.disabled.iter().map(|p| p.name.as_str()).collect();
            if disabled.contains("*") {
                continue;
            }
            let mut overrides: Vec<Arc<dyn Plugin>> = Vec::new();
            let mut multi: Vec<Arc<dyn Plugin>> = Vec::new();
            for p in &self.multi_point.enabled {
                let pl = get(&p.name)
                    .ok_or_else(|| format!("{} {:?} does not exist", e.interface(), p.name))?;
                if !e.implemented_by(pl.as_ref()) || disabled.contains(p.name.as_str()) {
                    continue;
                }
                if let Some(x) = list.iter().find(|x| x.name() == pl.name()) {
                    if !overrides.iter().any(|o| o.name() == x.name()) {
                        overrides.push(x.clone());
                    }
                    continue;
                }
                if multi.iter().any(|x| x.name() == pl.name()) {
                    return Err(format!(
                        "plugin {:?} already registered as {:?}",
                        p.name,
                        e.interface()
                    ));
                }
                multi.push(pl);
            }
            if overrides.is_empty() && multi.is_empty() {
                continue;
            }
            let rest: Vec<Arc<dyn Plugin>> = list
                .iter()
                .filter(|x| {
                    !overrides.iter().any(|o| o.name() == x.name())
                        && !multi.iter().any(|m| m.name() == x.name())
                })
                .cloned()
                .collect();
            *list = overrides.into_iter().chain(multi).chain(rest).collect();
        }
        let count = |e: ExtensionPoint| {
            points
                .iter()
                .find(|(p, _)| *p == e)
                .map_or(0, |(_, l)| l.len())
        };
        if count(ExtensionPoint::QueueSort) != 1 {
            return Err(format!(
                "only one queue sort plugin required for profile with scheduler name {:?}, but got {}",
                self.scheduler_name,
                count(ExtensionPoint::QueueSort)
            ));
        }
        if count(ExtensionPoint::Bind) == 0 {
            return Err(format!(
                "at least one bind plugin is needed for profile with scheduler name {:?}",
                self.scheduler_name
            ));
        }
        // Score weights: the score point's own entries first, then multiPoint's.
        let mut weights: HashMap<&'static str, i64> = HashMap::new();
        let mut total: i64 = 0;
        let scorers: Vec<&'static str> = points
            .iter()
            .find(|(p, _)| *p == ExtensionPoint::Score)
            .map(|(_, l)| l.iter().map(|p| p.name()).collect())
            .unwrap_or_default();
        for p in set_at(ExtensionPoint::Score)
            .enabled
            .iter()
            .chain(&self.multi_point.enabled)
        {
            let Some(name) = scorers.iter().find(|n| **n == p.name) else {
                continue;
            };
            if weights.contains_key(name) {
                continue;
            }
            let w = if p.weight == 0 {
                1
            } else {
                i64::from(p.weight)
            };
            if w.saturating_mul(crate::framework::MAX_NODE_SCORE)
                > MAX_TOTAL_SCORE.saturating_sub(total)
            {
                return Err("total score of Score plugins could overflow".into());
            }
            total += w * crate::framework::MAX_NODE_SCORE;
            weights.insert(name, w);
        }
        // Only plugins that run somewhere belong to the profile.
        let all = built
            .into_iter()
            .filter(|b| {
                points
                    .iter()
                    .any(|(_, l)| l.iter().any(|p| p.name() == b.name()))
            })
            .collect();
        Ok(Framework::from_points(
            self.scheduler_name.clone(),
            all,
            points,
            weights,
            self.percentage_of_nodes_to_score,
        ))
    }
}

impl Configuration {
    /// Every profile's framework, in order, from the in-tree registry.
    pub fn build(&self, handle: &Handle) -> Result<Vec<Framework>, ConfigError> {
        let registry = in_tree_registry();
        self.profiles
            .iter()
            .map(|p| p.build(&registry, handle))
            .collect()
    }
}

#[cfg(test)]
mod tests;
