//! The in-tree plugins (one file each, upstream's names) and the registry that builds
//! the default profile from them with upstream's order and score weights.

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

use std::sync::Arc;

use kube::Client;
use thiserror::Error;

use crate::framework::{Framework, Plugin};

/// What plugin constructors may use.
#[derive(Clone, Default)]
pub struct Handle {
    /// The API client (the binder's); `None` in unit tests.
    pub client: Option<Client>,
    /// Objects besides nodes and pods, as the scheduler's watches last saw them.
    pub listers: Arc<crate::listers::Listers>,
}

/// A plugin constructor.
pub type Factory = fn(&Handle) -> Arc<dyn Plugin>;

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

    /// Builds the named plugins, in the order given.
    pub fn build(
        &self,
        names: &[&str],
        handle: &Handle,
    ) -> Result<Vec<Arc<dyn Plugin>>, RegistryError> {
        names
            .iter()
            .map(|name| {
                self.factories
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, f)| f(handle))
                    .ok_or_else(|| RegistryError::UnknownPlugin((*name).to_owned()))
            })
            .collect()
    }
}

/// Every in-tree plugin.
pub fn in_tree_registry() -> Registry {
    let mut r = Registry::empty();
    let all: &[(&'static str, Factory)] = &[
        (priority_sort::NAME, |_| {
            Arc::new(priority_sort::PrioritySort::new())
        }),
        (scheduling_gates::NAME, |_| {
            Arc::new(scheduling_gates::SchedulingGates::new())
        }),
        (node_unschedulable::NAME, |_| {
            Arc::new(node_unschedulable::NodeUnschedulable::new())
        }),
        (node_name::NAME, |_| Arc::new(node_name::NodeName::new())),
        (taint_toleration::NAME, |_| {
            Arc::new(taint_toleration::TaintToleration::new())
        }),
        (node_affinity::NAME, |_| {
            Arc::new(node_affinity::NodeAffinity::new())
        }),
        (node_ports::NAME, |_| Arc::new(node_ports::NodePorts::new())),
        (node_resources::fit::NAME, |_| {
            Arc::new(node_resources::fit::Fit::new())
        }),
        (node_resources::balanced_allocation::NAME, |_| {
            Arc::new(node_resources::balanced_allocation::BalancedAllocation::new())
        }),
        (volume_restrictions::NAME, |h| {
            Arc::new(volume_restrictions::VolumeRestrictions::new(
                h.listers.clone(),
            ))
        }),
        (volume_binding::NAME, |h| {
            Arc::new(volume_binding::VolumeBinding::new(h.listers.clone()))
        }),
        (pod_topology_spread::NAME, |h| {
            Arc::new(pod_topology_spread::PodTopologySpread::new(
                h.listers.clone(),
            ))
        }),
        (inter_pod_affinity::NAME, |h| {
            Arc::new(inter_pod_affinity::InterPodAffinity::new(h.listers.clone()))
        }),
        (dynamic_resources::NAME, |_| {
            Arc::new(dynamic_resources::DynamicResources::new())
        }),
        (default_preemption::NAME, |_| {
            Arc::new(default_preemption::DefaultPreemption::new())
        }),
        (image_locality::NAME, |_| {
            Arc::new(image_locality::ImageLocality::new())
        }),
        (default_binder::NAME, |h| {
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

/// The `default-scheduler` profile.
pub fn default_profile(handle: &Handle) -> Framework {
    let plugins = in_tree_registry()
        .build(DEFAULT_PLUGINS, handle)
        .expect("the default plugins are registered");
    Framework::new(DEFAULT_SCHEDULER_NAME, plugins, DEFAULT_WEIGHTS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_names_are_refused() {
        let mut r = in_tree_registry();
        assert_eq!(
            r.register(node_name::NAME, |_| Arc::new(node_name::NodeName::new())),
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
    }
}
