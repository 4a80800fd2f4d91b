//! Leader election on a coordination.k8s.io Lease: one controller replica
//! acts, the others wait to take over when the holder stops renewing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tracing::{debug, info};

/// Who holds a Lease, as its record says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holding {
    /// `holderIdentity`.
    pub holder: Option<String>,
    /// `renewTime` in microseconds since the epoch (only compared for
    /// change, never with this machine's clock).
    pub renewed: Option<i64>,
    /// `leaseDurationSeconds`.
    pub duration: i64,
}

impl Holding {
    fn of(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        Holding {
            holder: spec.holder_identity,
            renewed: spec.renew_time.map(|t| t.0.as_microsecond()),
            duration: i64::from(spec.lease_duration_seconds.unwrap_or(15)),
        }
    }
}

/// A Lease record as this replica last saw it, and when (by its own
/// monotonic clock).
#[derive(Clone, Debug)]
pub struct Sighting {
    holding: Holding,
    at: Instant,
}

/// Whether `identity` may take a Lease found as `holding` at `now`: it
/// holds it already, nobody does, or the record has not changed for the
/// lease's duration as this replica has watched it (`seen`, updated here).
/// As client-go's leader election: the holder's `renewTime` is never
/// compared with this machine's wall clock, so a clock skew between two
/// replicas cannot make two leaders.
pub fn free_for(
    seen: &mut Option<Sighting>,
    holding: &Holding,
    identity: &str,
    now: Instant,
) -> bool {
    match (&holding.holder, holding.renewed) {
        (Some(holder), _) if holder == identity => return true,
        (None, _) | (_, None) => return true,
        _ => {}
    }
    match seen {
        Some(sighting) if sighting.holding == *holding => {
            let duration = Duration::from_secs(u64::try_from(holding.duration).unwrap_or(15));
            now.saturating_duration_since(sighting.at) > duration
        }
        _ => {
            *seen = Some(Sighting {
                holding: holding.clone(),
                at: now,
            });
            false
        }
    }
}

/// Whether this replica may write now: always when it runs alone, else
/// while its Lease is held. Checked before every write a reconcile makes,
/// so a long batch stops writing the moment the Lease is no longer held.
#[derive(Clone, Default)]
pub struct Leadership(Option<Arc<LeaderLease>>);

/// A write refused because this replica does not hold the Lease.
#[derive(Debug, thiserror::Error)]
#[error("not leading: the Lease was not renewed in time")]
pub struct NotLeading;

impl Leadership {
    /// Writes allowed while `lease` is held (always, without one).
    pub fn new(lease: Option<Arc<LeaderLease>>) -> Self {
        Leadership(lease)
    }

    /// Whether writing is allowed now.
    pub fn may_write(&self) -> bool {
        self.0.as_ref().is_none_or(|lease| lease.is_held())
    }

    /// `Err` when writing is not allowed now.
    pub fn ensure(&self) -> Result<(), NotLeading> {
        if self.may_write() {
            Ok(())
        } else {
            Err(NotLeading)
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
    /// The other holder's record as last seen, and when.
    seen: Mutex<Option<Sighting>>,
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
            seen: Mutex::new(None),
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
                let free = {
                    let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
                    free_for(&mut seen, &holding, &self.identity, Instant::now())
                };
                if !free {
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
    fn a_lease_is_free_when_unheld_ours_or_unrenewed_for_its_duration() {
        let held = |holder: &str, renewed| Holding {
            holder: Some(holder.into()),
            renewed: Some(renewed),
            duration: 15,
        };
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        let mut seen = None;
        assert!(free_for(&mut seen, &held("me", 100), "me", t0));
        // Another holder: counted from when this replica first saw it.
        assert!(!free_for(&mut seen, &held("other", 100), "me", at(0)));
        assert!(!free_for(&mut seen, &held("other", 100), "me", at(15)));
        assert!(free_for(&mut seen, &held("other", 100), "me", at(16)));
        let unheld = Holding {
            holder: None,
            renewed: None,
            duration: 15,
        };
        assert!(free_for(&mut None, &unheld, "me", t0));
    }

    /// The leader writes renewTimes by its clock, 10 s behind the
    /// standby's (or the standby's 10 s ahead): compared with the standby's
    /// wall clock, a record renewed 6 s ago would look 16 s old, expired.
    /// Judged by the standby's own time since the record last changed, the
    /// lease stays the leader's while it renews every 5 s, and is free 15 s
    /// after the renewals stop.
    #[test]
    fn a_standby_whose_clock_is_ahead_never_takes_a_renewed_lease() {
        let leader_clock_behind_us = 10_000_000; // µs
        let t0 = Instant::now();
        let mut seen = None;
        let mut renewed = 0;
        for tick in 0..12u64 {
            // The standby looks every 5 s; the leader renewed just before.
            renewed = 1_000_000_000 + tick as i64 * 5_000_000 - leader_clock_behind_us;
            let holding = Holding {
                holder: Some("leader".into()),
                renewed: Some(renewed),
                duration: 15,
            };
            let now = t0 + Duration::from_secs(tick * 5 + 1);
            assert!(
                !free_for(&mut seen, &holding, "standby", now),
                "taken at tick {tick}"
            );
        }
        // The leader stops renewing.
        let last = Holding {
            holder: Some("leader".into()),
            renewed: Some(renewed),
            duration: 15,
        };
        let stopped = t0 + Duration::from_secs(11 * 5 + 1);
        assert!(!free_for(
            &mut seen,
            &last,
            "standby",
            stopped + Duration::from_secs(15)
        ));
        assert!(free_for(
            &mut seen,
            &last,
            "standby",
            stopped + Duration::from_secs(16)
        ));
    }
}
