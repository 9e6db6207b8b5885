//! Decoding, defaulting, validation and framework building, table-driven.

use super::*;
use crate::framework::ExtensionPoint as E;

const HEAD: &str = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n";

fn parse_ok(body: &str) -> Configuration {
    parse(&format!("{HEAD}{body}")).unwrap_or_else(|e| panic!("{body}: {e}"))
}

fn names(fw: &Framework, e: E) -> Vec<&'static str> {
    fw.at(e).iter().map(|p| p.name()).collect()
}

#[test]
fn an_empty_configuration_is_upstreams_defaults() {
    let c = parse_ok("");
    assert_eq!(c, Configuration::default());
    assert_eq!(c.parallelism, 16);
    assert_eq!(c.percentage_of_nodes_to_score, None);
    assert_eq!(c.pod_initial_backoff, Duration::from_secs(1));
    assert_eq!(c.pod_max_backoff, Duration::from_secs(10));
    assert_eq!(c.leader_election, LeaderElectionConfig::default());
    assert_eq!(c.profiles.len(), 1);
    let fws = c.build(&Handle::default()).unwrap();
    let fw = &fws[0];
    assert_eq!(fw.scheduler_name(), "default-scheduler");
    assert_eq!(names(fw, E::QueueSort), ["PrioritySort"]);
    assert_eq!(names(fw, E::PreEnqueue), ["SchedulingGates"]);
    assert_eq!(
        names(fw, E::Filter),
        [
            "NodeUnschedulable",
            "NodeName",
            "TaintToleration",
            "NodeAffinity",
            "NodePorts",
            "NodeResourcesFit",
            "VolumeRestrictions",
            "VolumeZone",
            "PodTopologySpread",
            "InterPodAffinity",
        ]
    );
    assert_eq!(
        names(fw, E::Score),
        [
            "TaintToleration",
            "NodeAffinity",
            "NodeResourcesFit",
            "PodTopologySpread",
            "InterPodAffinity",
            "NodeResourcesBalancedAllocation",
            "ImageLocality",
        ]
    );
    assert_eq!(
        names(fw, E::PostFilter),
        ["DynamicResources", "DefaultPreemption"]
    );
    assert_eq!(names(fw, E::Bind), ["DefaultBinder"]);
    assert_eq!(fw.weight("TaintToleration"), 3);
    assert_eq!(fw.weight("ImageLocality"), 1);
    // JSON is YAML too.
    let json = parse(
        r#"{"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration"}"#,
    )
    .unwrap();
    assert_eq!(json, c);
}

#[test]
fn profiles_plugins_and_args_resolve_as_upstream() {
    let c = parse_ok(
        r#"
parallelism: 4
percentageOfNodesToScore: 30
podInitialBackoffSeconds: 2
podMaxBackoffSeconds: 20
leaderElection:
  leaderElect: true
  leaseDuration: 30s
  renewDeadline: 20s
  retryPeriod: 500ms
  resourceName: my-scheduler
  resourceNamespace: other
profiles:
- schedulerName: default-scheduler
- schedulerName: packer
  percentageOfNodesToScore: 50
  plugins:
    multiPoint:
      enabled:
      - name: NodeResourcesFit
        weight: 5
      disabled:
      - name: TaintToleration
      - name: ImageLocality
    filter:
      disabled:
      - name: InterPodAffinity
    score:
      enabled:
      - name: NodeAffinity
        weight: 7
  pluginConfig:
  - name: NodeResourcesFit
    args:
      kind: NodeResourcesFitArgs
      apiVersion: kubescheduler.config.k8s.io/v1
      ignoredResources: [example.com/foo]
      scoringStrategy:
        type: MostAllocated
        resources:
        - name: cpu
          weight: 3
        - name: memory
  - name: InterPodAffinity
    args:
      hardPodAffinityWeight: 0
  - name: DefaultPreemption
    args:
      minCandidateNodesPercentage: 0
      minCandidateNodesAbsolute: 5
"#,
    );
    assert_eq!(c.parallelism, 4);
    assert_eq!(c.pod_initial_backoff, Duration::from_secs(2));
    assert_eq!(c.pod_max_backoff, Duration::from_secs(20));
    let le = &c.leader_election;
    assert_eq!(le.lease_duration, Duration::from_secs(30));
    assert_eq!(le.retry_period, Duration::from_millis(500));
    assert_eq!(
        (le.resource_name.as_str(), le.resource_namespace.as_str()),
        ("my-scheduler", "other")
    );
    let fws = c.build(&Handle::default()).unwrap();
    let (default, packer) = (&fws[0], &fws[1]);
    assert_eq!(default.percentage_of_nodes_to_score(), Some(30));
    assert_eq!(packer.percentage_of_nodes_to_score(), Some(50));
    assert_eq!(packer.scheduler_name(), "packer");
    // Disabled in multiPoint: gone everywhere; disabled at filter only: still elsewhere.
    assert!(!names(packer, E::Filter).contains(&"TaintToleration"));
    assert!(!names(packer, E::Score).contains(&"ImageLocality"));
    assert!(!names(packer, E::Filter).contains(&"InterPodAffinity"));
    assert!(names(packer, E::PreFilter).contains(&"InterPodAffinity"));
    assert!(names(packer, E::Score).contains(&"InterPodAffinity"));
    // The score point's own entry comes first and its weight wins; multiPoint's re-enabled
    // default keeps its place with the new weight.
    assert_eq!(names(packer, E::Score)[0], "NodeAffinity");
    assert_eq!(packer.weight("NodeAffinity"), 7);
    assert_eq!(packer.weight("NodeResourcesFit"), 5);
    let args = &c.profiles[1].args;
    assert_eq!(
        args.fit_strategy,
        ScoringStrategy::MostAllocated(vec![
            ResourceSpec {
                name: "cpu".into(),
                weight: 3
            },
            ResourceSpec {
                name: "memory".into(),
                weight: 1
            },
        ])
    );
    assert_eq!(args.fit_ignored_resources, ["example.com/foo"]);
    assert_eq!(args.hard_pod_affinity_weight, 0);
    assert_eq!(
        (
            args.min_candidate_nodes_percentage,
            args.min_candidate_nodes_absolute
        ),
        (0, 5)
    );
    // The first profile keeps the defaults.
    assert_eq!(c.profiles[0].args, PluginArgs::default());
}

#[test]
fn star_disables_every_default() {
    let c = parse_ok(
        r#"
profiles:
- schedulerName: minimal
  plugins:
    multiPoint:
      disabled: [{name: "*"}]
      enabled:
      - name: PrioritySort
      - name: NodeResourcesFit
      - name: DefaultBinder
    score:
      disabled: [{name: "*"}]
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: RequestedToCapacityRatio
        requestedToCapacityRatio:
          shape: [{utilization: 0, score: 0}, {utilization: 100, score: 10}]
"#,
    );
    let fw = &c.build(&Handle::default()).unwrap()[0];
    assert_eq!(
        fw.plugins().iter().map(|p| p.name()).collect::<Vec<_>>(),
        ["PrioritySort", "NodeResourcesFit", "DefaultBinder"]
    );
    assert_eq!(names(fw, E::Filter), ["NodeResourcesFit"]);
    assert!(names(fw, E::Score).is_empty());
    assert!(matches!(
        c.profiles[0].args.fit_strategy,
        ScoringStrategy::RequestedToCapacityRatio(_, ref shape) if shape.len() == 2
    ));
}

#[test]
fn merge_plugin_set_follows_upstream() {
    let set = |enabled: &[(&str, i32)], disabled: &[&str]| PluginSet {
        enabled: enabled
            .iter()
            .map(|(n, w)| PluginRef::named(n, *w))
            .collect(),
        disabled: disabled.iter().map(|n| PluginRef::named(n, 0)).collect(),
    };
    let defaults = set(&[("A", 1), ("B", 2), ("C", 0)], &[]);
    // (case, custom, merged enabled)
    type Case<'a> = (&'a str, Option<PluginSet>, Vec<(&'a str, i32)>);
    let cases: &[Case] = &[
        ("no custom set", None, vec![("A", 1), ("B", 2), ("C", 0)]),
        (
            "disable one, add one",
            Some(set(&[("D", 0)], &["B"])),
            vec![("A", 1), ("C", 0), ("D", 0)],
        ),
        (
            "re-enable a default: replaced in place",
            Some(set(&[("D", 0), ("B", 9)], &[])),
            vec![("A", 1), ("B", 9), ("C", 0), ("D", 0)],
        ),
        (
            "star",
            Some(set(&[("C", 0), ("A", 4)], &["*"])),
            vec![("C", 0), ("A", 4)],
        ),
    ];
    for (case, custom, want) in cases {
        let got = merge_plugin_set(&defaults, custom.as_ref());
        let got: Vec<(&str, i32)> = got
            .enabled
            .iter()
            .map(|p| (p.name.as_str(), p.weight))
            .collect();
        assert_eq!(&got, want, "{case}");
    }
}

#[test]
fn bad_configurations_are_refused_with_upstreams_messages() {
    // (case, document (after apiVersion/kind unless it starts with "!"), error)
    let cases: &[(&str, &str, &str)] = &[
        (
            "unknown top-level field",
            "foo: 1\n",
            r#"strict decoding error: unknown field "foo""#,
        ),
        (
            "unknown nested field",
            "profiles:\n- schedulerName: a\n  plugins:\n    filter:\n      enabledd: []\n",
            r#"strict decoding error: unknown field "profiles[0].plugins.filter.enabledd""#,
        ),
        (
            "unknown args field",
            "profiles:\n- pluginConfig:\n  - name: InterPodAffinity\n    args: {hardPodAffinityWeigth: 2}\n",
            r#"strict decoding error: decoding args for plugin InterPodAffinity: strict decoding error: unknown field "hardPodAffinityWeigth""#,
        ),
        (
            "unknown nested args field (upstream's v1.37 text)",
            "profiles:\n- pluginConfig:\n  - name: NodeResourcesFit\n    args: {scoringStrategy: {resourcess: []}}\n",
            r#"strict decoding error: decoding args for plugin NodeResourcesFit: strict decoding error: unknown field "scoringStrategy.resourcess""#,
        ),
        (
            "misspelt top-level field (upstream's v1.37 text)",
            "percentageOfNodeToScore: 100\n",
            r#"strict decoding error: unknown field "percentageOfNodeToScore""#,
        ),
        (
            "unknown apiVersion",
            "!apiVersion: kubescheduler.config.k8s.io/v1beta9\nkind: KubeSchedulerConfiguration\n",
            r#"no kind "KubeSchedulerConfiguration" is registered for version "kubescheduler.config.k8s.io/v1beta9" in scheme "rkube-scheduler""#,
        ),
        (
            "unknown kind",
            "!apiVersion: kubescheduler.config.k8s.io/v1\nkind: SchedulerConfig\n",
            r#"no kind "SchedulerConfig" is registered for version "kubescheduler.config.k8s.io/v1" in scheme "rkube-scheduler""#,
        ),
        (
            "unknown plugin in multiPoint",
            "profiles:\n- plugins:\n    multiPoint:\n      enabled: [{name: Foo}]\n",
            r#"initializing profiles: creating profile for scheduler name default-scheduler: PreFilterPlugin "Foo" does not exist"#,
        ),
        (
            "unknown plugin at a point",
            "profiles:\n- plugins:\n    filter:\n      enabled: [{name: Foo}]\n",
            r#"initializing profiles: creating profile for scheduler name default-scheduler: FilterPlugin "Foo" does not exist"#,
        ),
        (
            "plugin at a point it does not implement",
            "profiles:\n- plugins:\n    filter:\n      enabled: [{name: ImageLocality}]\n",
            r#"initializing profiles: creating profile for scheduler name default-scheduler: plugin "ImageLocality" does not extend FilterPlugin plugin"#,
        ),
        (
            "no queue sort",
            "profiles:\n- plugins:\n    queueSort:\n      disabled: [{name: \"*\"}]\n",
            r#"initializing profiles: creating profile for scheduler name default-scheduler: only one queue sort plugin required for profile with scheduler name "default-scheduler", but got 0"#,
        ),
        (
            "no binder",
            "profiles:\n- plugins:\n    multiPoint:\n      disabled: [{name: DefaultBinder}]\n",
            r#"initializing profiles: creating profile for scheduler name default-scheduler: at least one bind plugin is needed for profile with scheduler name "default-scheduler""#,
        ),
        (
            "duplicate schedulerName",
            "profiles:\n- schedulerName: a\n- schedulerName: a\n",
            "profiles[1].schedulerName: Duplicate value: {}",
        ),
        (
            "schedulerName required with several profiles",
            "profiles:\n- schedulerName: a\n- {}\n",
            "profiles[1].schedulerName: Required value",
        ),
        (
            "queueSort differs",
            "profiles:\n- schedulerName: a\n- schedulerName: b\n  plugins:\n    queueSort:\n      disabled: [{name: \"*\"}]\n",
            r#"profiles[1].plugins.queueSort: Invalid value: config.PluginSet{Enabled:[], Disabled:[{Name:"*" Weight:0}]}: must be the same for all profiles"#,
        ),
        (
            "weight beyond int32",
            "profiles:\n- plugins:\n    score:\n      enabled: [{name: ImageLocality, weight: 3000000000}]\n",
            "decoding error: profiles[0].plugins.score.enabled[0].weight",
        ),
        (
            "percentage out of range",
            "percentageOfNodesToScore: 120\n",
            "percentageOfNodesToScore: Invalid value: 120: not in valid range [0-100]",
        ),
        (
            "profile percentage out of range",
            "profiles:\n- percentageOfNodesToScore: -1\n",
            "profiles[0].percentageOfNodesToScore: Invalid value: -1: not in valid range [0-100]",
        ),
        (
            "parallelism",
            "parallelism: 0\n",
            "parallelism: Invalid value: 0: should be an integer value greater than zero",
        ),
        (
            "backoff",
            "podInitialBackoffSeconds: 5\npodMaxBackoffSeconds: 2\n",
            "podMaxBackoffSeconds: Invalid value: 2: must be greater than or equal to PodInitialBackoffSeconds",
        ),
        (
            "two errors at once",
            "parallelism: -1\npercentageOfNodesToScore: 101\n",
            "[parallelism: Invalid value: -1: should be an integer value greater than zero, percentageOfNodesToScore: Invalid value: 101: not in valid range [0-100]]",
        ),
        (
            "resource lock",
            "leaderElection: {resourceLock: endpoints}\n",
            r#"leaderElection.resourceLock: Invalid value: "endpoints": resourceLock value must be "leases""#,
        ),
        (
            "lease shorter than renew deadline",
            "leaderElection: {leaseDuration: 5s}\n",
            "leaderElection.leaseDuration: Invalid value: 10s: LeaseDuration must be greater than RenewDeadline",
        ),
        (
            "duplicate pluginConfig",
            "profiles:\n- pluginConfig:\n  - name: NodeAffinity\n  - name: NodeAffinity\n",
            r#"profiles[0].pluginConfig[1]: Duplicate value: "NodeAffinity""#,
        ),
        (
            "removed plugin",
            "profiles:\n- plugins:\n    filter:\n      enabled: [{name: EBSLimits}]\n",
            r#"profiles[0].plugins.filter.enabled[0]: Invalid value: "EBSLimits": was invalid in version "kubescheduler.config.k8s.io/v1" (KubeSchedulerConfiguration is version "kubescheduler.config.k8s.io/v1")"#,
        ),
        (
            "scoring strategy type",
            "profiles:\n- pluginConfig:\n  - name: NodeResourcesFit\n    args: {scoringStrategy: {type: Packed}}\n",
            r#"profiles[0].pluginConfig[0].args.scoringStrategy.type: Unsupported value: "Packed": supported values: "LeastAllocated", "MostAllocated", "RequestedToCapacityRatio""#,
        ),
        (
            "resource weight",
            "profiles:\n- pluginConfig:\n  - name: NodeResourcesFit\n    args: {scoringStrategy: {type: MostAllocated, resources: [{name: cpu, weight: 101}]}}\n",
            "profiles[0].pluginConfig[0].args.scoringStrategy.resources[0].weight: Invalid value: 101: resource weight of cpu not in valid range [1, 100]",
        ),
        (
            "shape not sorted",
            "profiles:\n- pluginConfig:\n  - name: NodeResourcesFit\n    args: {scoringStrategy: {type: RequestedToCapacityRatio, requestedToCapacityRatio: {shape: [{utilization: 50, score: 1}, {utilization: 10, score: 2}]}}}\n",
            "profiles[0].pluginConfig[0].args.scoringStrategy.requestedToCapacityRatio.shape[1].utilization: Invalid value: 10: utilization values must be sorted in increasing order",
        ),
        (
            "hard pod affinity weight",
            "profiles:\n- pluginConfig:\n  - name: InterPodAffinity\n    args: {hardPodAffinityWeight: 101}\n",
            "profiles[0].pluginConfig[0].args.hardPodAffinityWeight: Invalid value: 101: not in valid range [0, 100]",
        ),
        (
            "preemption candidates",
            "profiles:\n- pluginConfig:\n  - name: DefaultPreemption\n    args: {minCandidateNodesPercentage: 101}\n",
            "profiles[0].pluginConfig[0].args.minCandidateNodesPercentage: Invalid value: 101: not in valid range [0, 100]",
        ),
        (
            "bind timeout",
            "profiles:\n- pluginConfig:\n  - name: VolumeBinding\n    args: {bindTimeoutSeconds: -1}\n",
            "profiles[0].pluginConfig[0].args.bindTimeoutSeconds: Invalid value: -1: invalid BindTimeoutSeconds, should not be a negative value",
        ),
        (
            "system defaulting with constraints",
            "profiles:\n- pluginConfig:\n  - name: PodTopologySpread\n    args: {defaultingType: System, defaultConstraints: [{maxSkew: 1, topologyKey: zone, whenUnsatisfiable: ScheduleAnyway}]}\n",
            r#"profiles[0].pluginConfig[0].args.defaultingType: Invalid value: "System": when .defaultConstraints are not empty"#,
        ),
        (
            "args of another kind",
            "profiles:\n- pluginConfig:\n  - name: NodeAffinity\n    args: {kind: InterPodAffinityArgs}\n",
            r#"profiles[0].pluginConfig[0].args.kind: Invalid value: "InterPodAffinityArgs": has to match plugin args"#,
        ),
    ];
    for (case, doc, want) in cases {
        let text = match doc.strip_prefix('!') {
            Some(whole) => whole.to_owned(),
            None => format!("{HEAD}{doc}"),
        };
        match parse(&text) {
            Ok(_) => panic!("{case}: accepted"),
            Err(e) => assert!(
                e.0 == *want || (want.starts_with("decoding error") && e.0.starts_with(want)),
                "{case}:\n got  {}\n want {want}",
                e.0
            ),
        }
    }
}

#[test]
fn go_durations() {
    for (s, want) in [
        ("15s", Some(Duration::from_secs(15))),
        ("1m30s", Some(Duration::from_secs(90))),
        ("500ms", Some(Duration::from_millis(500))),
        ("1h", Some(Duration::from_secs(3600))),
        ("0", Some(Duration::ZERO)),
        ("15", None),
        ("", None),
        ("3x", None),
    ] {
        assert_eq!(parse_go_duration(s), want, "{s}");
    }
}
