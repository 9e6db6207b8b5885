//! Shared reflector plumbing: a watcher feeding a reflector store, as one stream of
//! watch events that a `Controller` drives (`for_stream` / `watches_stream`). Controllers
//! that read several kinds keep one store per kind this way instead of watching twice.

use std::fmt::Debug;
use std::hash::Hash;

use futures::Stream;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// A store of `api`'s objects and the stream of watch events that keeps it filled (the
/// store fills only while the stream is polled).
pub fn reflected<K>(
    api: Api<K>,
    config: watcher::Config,
) -> (
    Store<K>,
    impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config)).default_backoff();
    (reader, stream)
}
