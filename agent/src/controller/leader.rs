//! Leader election on a coordination.k8s.io Lease: one controller replica
//! acts, the others wait to take over when the holder stops renewing.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tracing::{debug, info};

/// Who holds a Lease, and until when it counts as held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holding {
    /// `holderIdentity`.
    pub holder: Option<String>,
    /// `renewTime` in seconds since the epoch.
    pub renewed: Option<i64>,
    /// `leaseDurationSeconds`.
    pub duration: i64,
}

impl Holding {
    fn of(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        Holding {
            holder: spec.holder_identity,
            renewed: spec.renew_time.map(|t| t.0.as_second()),
            duration: i64::from(spec.lease_duration_seconds.unwrap_or(15)),
        }
    }

    /// Whether `identity` may take the lease at `now`: it holds it already,
    /// nobody does, or the holder stopped renewing.
    pub fn free_for(&self, identity: &str, now: i64) -> bool {
        match (&self.holder, self.renewed) {
            (Some(holder), _) if holder == identity => true,
            (None, _) | (_, None) => true,
            (Some(_), Some(renewed)) => now > renewed + self.duration,
        }
    }
}

/// A Lease this process competes for.
pub struct LeaderLease {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    /// When the last successful take or renewal started (the renewTime it
    /// wrote is not earlier): the lease counts as ours from there.
    held_since: Mutex<Option<Instant>>,
}

/// A renewal that did not go through.
#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    /// The API server refused or could not be reached.
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// No answer in time (a hung connection must not outlive the lease).
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

/// Whether a lease whose last renewal started at `renewed` still counts as
/// held at `now`: a margin of a fifth of `duration` before it expires, so
/// the holder stops acting before any other replica may take over.
pub fn still_held(renewed: Instant, now: Instant, duration: Duration) -> bool {
    now.saturating_duration_since(renewed) < duration - duration / 5
}

impl LeaderLease {
    /// The Lease `name` in `namespace`, held as `identity` for `duration`.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Self {
        LeaderLease {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity: identity.into(),
            duration,
            held_since: Mutex::new(None),
        }
    }

    /// Whether this process may act as the leader now: its last take or
    /// renewal is recent enough that no other replica can have taken over.
    pub fn is_held(&self) -> bool {
        let held_since = *self.held_since.lock().unwrap_or_else(|e| e.into_inner());
        held_since.is_some_and(|renewed| still_held(renewed, Instant::now(), self.duration))
    }

    /// Waits until this process holds the lease.
    pub async fn acquire(&self) -> Result<(), kube::Error> {
        let mut waiting_logged = false;
        loop {
            match self.try_hold().await {
                Ok(true) => {
                    info!(lease = %self.name, identity = %self.identity, "leading");
                    return Ok(());
                }
                Ok(false) => {
                    if !waiting_logged {
                        info!(lease = %self.name, "another replica leads; waiting");
                        waiting_logged = true;
                    }
                }
                Err(error) => debug!(%error, "lease not taken (retrying)"),
            }
            tokio::time::sleep(self.duration / 3).await;
        }
    }

    /// Renews the lease; `Ok(false)` when another replica took it over.
    /// Bounded to a third of the lease's duration.
    pub async fn renew(&self) -> Result<bool, RenewError> {
        let limit = self.duration / 3;
        match tokio::time::timeout(limit, self.try_hold()).await {
            Ok(held) => Ok(held?),
            Err(_) => Err(RenewError::TimedOut(limit)),
        }
    }

    /// Gives the lease up (on a clean stop), so a standby replica takes
    /// over at once instead of after the lease expires.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }

    /// How often a holder renews.
    pub fn renew_every(&self) -> Duration {
        self.duration / 3
    }

    /// Takes or renews the lease when it is free for us. Conflicting writes
    /// fail on the resourceVersion, so two replicas never both win; a
    /// conflict is looked at again once (our own earlier renewal may have
    /// gone through while its answer was lost, as when the API server
    /// restarts), and only lost when someone else holds it.
    async fn try_hold(&self) -> Result<bool, kube::Error> {
        let started = Instant::now();
        let held = match self.try_hold_once().await {
            Ok(false) => self.try_hold_once().await,
            other => other,
        };
        if let Ok(true) = held {
            *self.held_since.lock().unwrap_or_else(|e| e.into_inner()) = Some(started);
        }
        held
    }

    async fn try_hold_once(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let seconds = i32::try_from(self.duration.as_secs()).unwrap_or(15);
        match self.api.get_opt(&self.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(seconds),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                    Err(error) => Err(error),
                }
            }
            Some(mut lease) => {
                let holding = Holding::of(&lease);
                if !holding.free_for(&self.identity, now.as_second()) {
                    return Ok(false);
                }
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
                    spec.acquire_time = Some(MicroTime(now));
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                    spec.holder_identity = Some(self.identity.clone());
                }
                spec.renew_time = Some(MicroTime(now));
                spec.lease_duration_seconds = Some(seconds);
                match self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                    Err(error) => Err(error),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_stops_acting_before_the_lease_can_be_taken() {
        let renewed = Instant::now();
        let duration = Duration::from_secs(15);
        assert!(still_held(renewed, renewed, duration));
        assert!(still_held(
            renewed,
            renewed + Duration::from_secs(11),
            duration
        ));
        // 12 s: three seconds before a standby may take over.
        assert!(!still_held(
            renewed,
            renewed + Duration::from_secs(12),
            duration
        ));
        assert!(!still_held(
            renewed,
            renewed + Duration::from_secs(600),
            duration
        ));
    }

    #[test]
    fn a_lease_is_free_when_unheld_ours_or_expired() {
        let held = |holder: &str, renewed| Holding {
            holder: Some(holder.into()),
            renewed: Some(renewed),
            duration: 15,
        };
        assert!(held("me", 100).free_for("me", 101));
        assert!(!held("other", 100).free_for("me", 110));
        assert!(!held("other", 100).free_for("me", 115));
        assert!(held("other", 100).free_for("me", 116));
        let unheld = Holding {
            holder: None,
            renewed: None,
            duration: 15,
        };
        assert!(unheld.free_for("me", 0));
    }
}
