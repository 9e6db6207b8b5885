//! Objects plugins read besides nodes and pods (upstream's informer listers): the
//! scheduler fills them from its watches; plugins get them through their `Handle`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    Namespace, PersistentVolume, PersistentVolumeClaim, ReplicationController, Service,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::Metadata;
use kube::api::ObjectMeta;

/// Objects of one kind by `namespace/name` (`name` for cluster-scoped kinds).
pub struct Lister<T>(RwLock<HashMap<String, Arc<T>>>);

impl<T> Default for Lister<T> {
    fn default() -> Self {
        Lister(RwLock::default())
    }
}

fn key(meta: &ObjectMeta) -> String {
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{}", meta.name.as_deref().unwrap_or("")),
        _ => meta.name.clone().unwrap_or_default(),
    }
}

impl<T: Metadata<Ty = ObjectMeta>> Lister<T> {
    /// The object `name` in `namespace` ("" for cluster-scoped kinds).
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<T>> {
        let key = if namespace.is_empty() {
            name.to_owned()
        } else {
            format!("{namespace}/{name}")
        };
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned()
    }

    pub fn upsert(&self, obj: T) {
        let k = key(obj.metadata());
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(k, Arc::new(obj));
    }

    pub fn remove(&self, obj: &T) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key(obj.metadata()));
    }

    /// Replaces everything (after a relist).
    pub fn replace(&self, objs: Vec<T>) {
        let map = objs
            .into_iter()
            .map(|o| (key(o.metadata()), Arc::new(o)))
            .collect();
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = map;
    }
}

/// Every lister plugins may read.
#[derive(Default)]
pub struct Listers {
    pub pvcs: Lister<PersistentVolumeClaim>,
    /// Cluster-scoped: looked up with namespace `""`.
    pub pvs: Lister<PersistentVolume>,
    pub storage_classes: Lister<StorageClass>,
    pub namespaces: Lister<Namespace>,
    pub services: Lister<Service>,
    pub replication_controllers: Lister<ReplicationController>,
    pub replica_sets: Lister<ReplicaSet>,
    pub stateful_sets: Lister<StatefulSet>,
}

impl<T: Metadata<Ty = ObjectMeta>> Lister<T> {
    /// Every object in `namespace`.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<T>> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|o| o.metadata().namespace.as_deref() == Some(namespace))
            .cloned()
            .collect()
    }
}
