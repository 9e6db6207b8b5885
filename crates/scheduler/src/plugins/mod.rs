//! The in-tree plugins (one file each, upstream's names), the registry of their
//! constructors (each given its profile's args), and the default plugin set with
//! upstream's order and score weights (built through [`crate::config`]).

pub mod default_binder;
pub mod default_preemption;
pub mod dynamic_resources;
pub mod helper;
pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod priority_sort;
pub mod scheduling_gates;
pub mod taint_toleration;
pub mod volume_binding;
pub mod volume_restrictions;
pub mod volume_zone;

use std::sync::Arc;

use kube::Client;
use thiserror::Error;

use crate::config::PluginArgs;
use crate::framework::{Framework, Plugin};

/// What plugin constructors may use.
#[derive(Clone, Default)]
pub struct Handle {
    /// The API client (the binder's); `None` in unit tests.
    pub client: Option<Client>,
    /// Objects besides nodes and pods, as the scheduler's watches last saw them.
    pub listers: Arc<crate::listers::Listers>,
}

/// A plugin constructor, given its profile's (defaulted) args.
pub type Factory = fn(&Handle, &PluginArgs) -> Arc<dyn Plugin>;

/// A registry error.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RegistryError {
    #[error("a plugin named {0:?} already exists")]
    DuplicatePlugin(&'static str),
    #[error("{0:?} does not exist")]
    UnknownPlugin(String),
}

/// Plugin constructors by name.
pub struct Registry {
    factories: Vec<(&'static str, Factory)>,
}

impl Registry {
    pub fn empty() -> Registry {
        Registry {
            factories: Vec::new(),
        }
    }

    /// Adds a constructor; a second plugin with the same name is refused.
    pub fn register(&mut self, name: &'static str, factory: Factory) -> Result<(), RegistryError> {
        if self.factories.iter().any(|(n, _)| *n == name) {
            return Err(RegistryError::DuplicatePlugin(name));
        }
        self.factories.push((name, factory));
        Ok(())
    }

    /// Builds the named plugins with default args, in the order given.
    pub fn build(
        &self,
        names: &[&str],
        handle: &Handle,
    ) -> Result<Vec<Arc<dyn Plugin>>, RegistryError> {
        let args = PluginArgs::default();
        names
            .iter()
            .map(|name| {
                self.build_one(name, handle, &args)
                    .ok_or_else(|| RegistryError::UnknownPlugin((*name).to_owned()))
            })
            .collect()
    }

    /// Builds one plugin with its profile's args; `None` if no plugin has that name.
    pub fn build_one(
        &self,
        name: &str,
        handle: &Handle,
        args: &PluginArgs,
    ) -> Option<Arc<dyn Plugin>> {
        self.factories
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| f(handle, args))
    }
}

/// Every in-tree plugin.
pub fn in_tree_registry() -> Registry {
    let mut r = Registry::empty();
    let all: &[(&'static str, Factory)] = &[
        (priority_sort::NAME, |_, _| {
            Arc::new(priority_sort::PrioritySort::new())
        }),
        (scheduling_gates::NAME, |_, _| {
            Arc::new(scheduling_gates::SchedulingGates::new())
        }),
        (node_unschedulable::NAME, |_, _| {
            Arc::new(node_unschedulable::NodeUnschedulable::new())
        }),
        (node_name::NAME, |_, _| Arc::new(node_name::NodeName::new())),
        (taint_toleration::NAME, |_, _| {
            Arc::new(taint_toleration::TaintToleration::new())
        }),
        (node_affinity::NAME, |_, a| {
            Arc::new(node_affinity::NodeAffinity::with_added_affinity(
                a.added_affinity.clone(),
            ))
        }),
        (node_ports::NAME, |_, _| {
            Arc::new(node_ports::NodePorts::new())
        }),
        (node_resources::fit::NAME, |_, a| {
            Arc::new(node_resources::fit::Fit::with_args(
                a.fit_strategy.clone(),
                a.fit_ignored_resources.clone(),
                a.fit_ignored_resource_groups.clone(),
            ))
        }),
        (node_resources::balanced_allocation::NAME, |_, a| {
            Arc::new(
                node_resources::balanced_allocation::BalancedAllocation::with_resources(
                    a.balanced_allocation_resources.clone(),
                ),
            )
        }),
        (volume_restrictions::NAME, |h, _| {
            Arc::new(volume_restrictions::VolumeRestrictions::new(
                h.listers.clone(),
            ))
        }),
        (volume_binding::NAME, |h, _| {
            Arc::new(volume_binding::VolumeBinding::new(h.listers.clone()))
        }),
        (volume_zone::NAME, |h, _| {
            Arc::new(volume_zone::VolumeZone::new(h.listers.clone()))
        }),
        (pod_topology_spread::NAME, |h, a| {
            Arc::new(match &a.default_spread_constraints {
                None => pod_topology_spread::PodTopologySpread::new(h.listers.clone()),
                Some(list) => pod_topology_spread::PodTopologySpread::with_defaults(
                    h.listers.clone(),
                    list.clone(),
                ),
            })
        }),
        (inter_pod_affinity::NAME, |h, a| {
            Arc::new(inter_pod_affinity::InterPodAffinity::with_args(
                h.listers.clone(),
                a.hard_pod_affinity_weight,
            ))
        }),
        (dynamic_resources::NAME, |_, _| {
            Arc::new(dynamic_resources::DynamicResources::new())
        }),
        (default_preemption::NAME, |_, a| {
            Arc::new(default_preemption::DefaultPreemption::with_args(
                a.min_candidate_nodes_percentage,
                a.min_candidate_nodes_absolute,
            ))
        }),
        (image_locality::NAME, |_, _| {
            Arc::new(image_locality::ImageLocality::new())
        }),
        (default_binder::NAME, |h, _| {
            Arc::new(default_binder::DefaultBinder::new(h.client.clone()))
        }),
    ];
    for (name, factory) in all {
        r.register(name, *factory)
            .expect("in-tree plugin names are unique");
    }
    r
}

/// The default profile's plugins, in upstream's order (those rkube has).
pub const DEFAULT_PLUGINS: &[&str] = &[
    scheduling_gates::NAME,
    priority_sort::NAME,
    node_unschedulable::NAME,
    node_name::NAME,
    taint_toleration::NAME,
    node_affinity::NAME,
    node_ports::NAME,
    node_resources::fit::NAME,
    volume_restrictions::NAME,
    volume_binding::NAME,
    volume_zone::NAME,
    pod_topology_spread::NAME,
    inter_pod_affinity::NAME,
    dynamic_resources::NAME,
    default_preemption::NAME,
    node_resources::balanced_allocation::NAME,
    image_locality::NAME,
    default_binder::NAME,
];

/// Upstream's default score weights.
pub const DEFAULT_WEIGHTS: &[(&str, i64)] = &[
    (taint_toleration::NAME, 3),
    (node_affinity::NAME, 2),
    (node_resources::fit::NAME, 1),
    (pod_topology_spread::NAME, 2),
    (inter_pod_affinity::NAME, 2),
    (node_resources::balanced_allocation::NAME, 1),
    (image_locality::NAME, 1),
];

/// The scheduler name pods get by default.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// The `default-scheduler` profile: what an empty KubeSchedulerConfiguration means.
pub fn default_profile(handle: &Handle) -> Framework {
    let config = crate::config::Configuration::default();
    config.profiles[0]
        .build(&in_tree_registry(), handle)
        .expect("the default profile builds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_names_are_refused() {
        let mut r = in_tree_registry();
        assert_eq!(
            r.register(node_name::NAME, |_, _| Arc::new(node_name::NodeName::new())),
            Err(RegistryError::DuplicatePlugin("NodeName"))
        );
        assert!(matches!(
            r.build(&["NoSuchPlugin"], &Handle::default()),
            Err(RegistryError::UnknownPlugin(_))
        ));
    }

    #[test]
    fn default_profile_has_upstream_names_in_order() {
        let fw = default_profile(&Handle::default());
        let names: Vec<_> = fw.plugins().iter().map(|p| p.name()).collect();
        assert_eq!(names, DEFAULT_PLUGINS);
        assert_eq!(fw.scheduler_name(), DEFAULT_SCHEDULER_NAME);
        for (name, weight) in DEFAULT_WEIGHTS {
            assert_eq!(fw.weight(name), *weight, "{name}");
        }
    }
}
