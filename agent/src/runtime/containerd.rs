//! containerd's API: the containers of every namespace imprint looks at,
//! kept current from containerd's event stream, with reconnects. When the
//! socket is missing or dead, recording goes on and cgroups are reported
//! under their paths; resolution resumes when the socket returns.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::events_client::EventsClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::{GetImageRequest, ListContainersRequest, SubscribeRequest};
use containerd_client::with_namespace;
use tonic::Request;
use tonic::transport::Channel;
use tracing::{debug, info};

use super::containers::Containers;
use super::identity::{identify, spec_fields};

/// containerd namespaces looked at: Kubernetes (CRI), Docker, `ctr`.
pub const NAMESPACES: [&str; 3] = ["k8s.io", "moby", "default"];

/// Lists the containers of every namespace into `containers`.
async fn list_all(
    socket: &Path,
    channel: &Channel,
    containers: &Containers,
) -> Result<usize, tonic::Status> {
    let began = Instant::now();
    let mut client = ContainersClient::new(channel.clone());
    let mut images = ImagesClient::new(channel.clone());
    let mut digests: HashMap<(String, String), Option<String>> = HashMap::new();
    let mut n = 0;
    for namespace in NAMESPACES {
        let request = with_namespace!(
            ListContainersRequest {
                filters: Vec::new()
            },
            namespace
        );
        let listed = client.list(request).await?.into_inner().containers;
        for c in listed {
            let (annotations, cgroups_path) = c
                .spec
                .as_ref()
                .map(|s| spec_fields(&s.value))
                .unwrap_or_default();
            let mut info = identify(
                &c.id,
                namespace,
                &c.image,
                &c.labels,
                &annotations,
                cgroups_path,
            );
            let key = (namespace.to_string(), c.image.clone());
            if !c.image.is_empty() && !digests.contains_key(&key) {
                let request = with_namespace!(
                    GetImageRequest {
                        name: c.image.clone()
                    },
                    namespace
                );
                let digest = images
                    .get(request)
                    .await
                    .ok()
                    .and_then(|r| r.into_inner().image)
                    .and_then(|i| i.target)
                    .map(|t| t.digest);
                digests.insert(key.clone(), digest);
            }
            info.image_digest = digests.get(&key).cloned().flatten();
            containers.insert(info);
            n += 1;
        }
    }
    containers.listed(socket, began);
    Ok(n)
}

/// A safety net: containers are listed again this often even without
/// events (an event missed while the subscription was being set up).
const RELIST_EVERY: Duration = Duration::from_secs(10);

/// Follows containerd once: lists everything, then re-lists on each
/// container or task event, until the connection fails.
pub(super) async fn follow(socket: &Path, containers: &Containers) -> Result<(), String> {
    let channel = containerd_client::connect(socket)
        .await
        .map_err(|e| e.to_string())?;
    // Subscribe first, so nothing created between the list and the stream
    // is missed. containerd answers a subscription only with its first
    // event, so the call runs beside the list instead of before it.
    let mut client = EventsClient::new(channel.clone());
    let subscription = tokio::spawn(async move {
        client
            .subscribe(SubscribeRequest {
                filters: vec![r#"topic~="^/(containers|tasks)/""#.to_string()],
            })
            .await
    });
    tokio::task::yield_now().await;
    let n = list_all(socket, &channel, containers)
        .await
        .map_err(|e| e.to_string())?;
    containers.set_connected(true);
    info!(socket = %socket.display(), containers = n, "following the container runtime");
    let mut relist = tokio::time::interval(RELIST_EVERY);
    relist.tick().await;
    let mut subscription = subscription;
    let mut events = loop {
        tokio::select! {
            subscribed = &mut subscription => {
                break subscribed
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?
                    .into_inner();
            }
            _ = relist.tick() => {
                list_all(socket, &channel, containers).await.map_err(|e| e.to_string())?;
            }
        }
    };
    // The event that answered the subscription is the first message.
    list_all(socket, &channel, containers)
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let message = tokio::select! {
            message = events.message() => message,
            _ = relist.tick() => {
                list_all(socket, &channel, containers).await.map_err(|e| e.to_string())?;
                continue;
            }
            _ = containers.listing_wanted() => {
                list_all(socket, &channel, containers).await.map_err(|e| e.to_string())?;
                continue;
            }
        };
        match message {
            Ok(Some(envelope)) => {
                debug!(topic = %envelope.topic, namespace = %envelope.namespace, "runtime event");
                if envelope.topic.starts_with("/containers/create")
                    || envelope.topic.starts_with("/tasks/start")
                {
                    list_all(socket, &channel, containers)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            Ok(None) => return Err("event stream closed".into()),
            Err(status) => return Err(status.to_string()),
        }
    }
}
