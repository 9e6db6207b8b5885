//! Choosing and opening the store from the command line.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rkube_store::etcd::{EtcdOptions, EtcdStore};
use rkube_store::sqlite::{SqliteOptions, SqliteStore};
use rkube_store::Store;

/// Opens the store named by `endpoint`: empty for the embedded SQLite file in
/// `<data_dir>/db/state.db`, `sqlite://PATH` for another file, or a comma-separated
/// list of `http://host:port` etcd client URLs (TLS to etcd comes with the PKI work).
pub(crate) async fn open(endpoint: &str, data_dir: &Path) -> Result<Arc<dyn Store>> {
    if endpoint.is_empty() || endpoint.starts_with("sqlite://") {
        let path = match endpoint.strip_prefix("sqlite://") {
            Some(path) if !path.is_empty() => path.into(),
            _ => data_dir.join("db").join("state.db"),
        };
        let store = SqliteStore::open(&path, SqliteOptions::default())?;
        return Ok(Arc::new(store));
    }
    let endpoints: Vec<String> = endpoint
        .split(',')
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty())
        .collect();
    if let Some(bad) = endpoints.iter().find(|e| !e.starts_with("http://")) {
        bail!("unsupported datastore endpoint {bad:?}: use sqlite://PATH, or http://HOST:PORT of etcd members (TLS to etcd is not supported yet)");
    }
    let store = EtcdStore::connect(&endpoints, EtcdOptions::default())
        .await
        .with_context(|| format!("cannot connect to etcd at {endpoint}"))?;
    Ok(Arc::new(store))
}
