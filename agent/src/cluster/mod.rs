//! What the node agent learns from the API server beside its own
//! observations: the workload owning a pod ([`workload`]), which pod or
//! Service stands behind an address ([`peers`], with pods of other nodes
//! looked up by [`remote`]), and the reflector stores both read from
//! ([`reflect`]).

pub mod guarded;
pub mod node_addresses;
pub mod peers;
pub mod remote;
pub mod workload;

use futures::StreamExt;
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tracing::debug;

use crate::task::AbortOnDrop;

/// A reflector store of every object `api` lists, kept current by a task
/// that ends when the returned guard is dropped; `touched` is called with
/// each object that is added, changed or deleted.
pub fn reflect<K, F>(api: Api<K>, config: watcher::Config, touched: F) -> (Store<K>, AbortOnDrop)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    F: Fn(&K) + Send + 'static,
{
    let (reader, writer) = reflector::store::<K>();
    let stream = reflector::reflector(writer, watcher(api, config))
        .default_backoff()
        .touched_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(object) => touched(&object),
                Err(error) => debug!(%error, kind = %K::kind(&()), "watch error (retrying)"),
            }
        }
    });
    (reader, AbortOnDrop(task))
}
