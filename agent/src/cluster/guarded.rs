//! The guarding BehaviorProfiles of the workloads with pods on this node,
//! kept as detection baselines per container: one watch of every profile,
//! of which only those of local workloads are kept (a workload that comes
//! to the node later has its profile read once, then followed by the
//! watch). A profile that is not guarding is known as such: its
//! containers get the built-in rules only. What each local profile holds
//! as recorded is kept too, for the reports it covers ([`Covering`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use imprint_crd::profile::BehaviorProfile;
use imprint_crd::report::{Coverage, Subject, WorkloadRef};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::Notify;
use tracing::debug;

use super::workload::Workloads;
use crate::coverage::Base;
use crate::detect::baseline::Baseline;
use crate::kube_names::profile_name;
use crate::pipeline::placement::Baselines;
use crate::task::AbortOnDrop;

/// How long a change of the node's pods waits for the changes that come
/// with it before their workloads are looked at.
const SETTLE: Duration = Duration::from_millis(200);
/// How soon a pod whose workload could not be told is looked at again.
const RETRY_POD: Duration = Duration::from_secs(2);
/// How long a profile that could not be read waits to be read again.
const RETRY: Duration = Duration::from_secs(30);

/// A guarding profile's allow-lists, by container.
#[derive(Debug, Default)]
pub struct GuardedWorkload {
    containers: HashMap<String, Arc<Baseline>>,
    /// Of the allow-lists they were built from ([`allow_list_digest`]).
    digest: u64,
}

/// (namespace, profile name).
type ProfileKey = (String, String);

/// What a local workload's profile holds, for the reports it covers
/// ([`crate::coverage`]).
#[derive(Debug)]
pub struct Covering {
    /// The profile's name and uid, as a covered report names them.
    pub coverage: Coverage,
    /// The profile is Stable or guarding: a report not covered yet is
    /// covered from now on (one already covered stays covered whatever
    /// the phase, so a profile learning again does not make every report
    /// whole again).
    pub settled: bool,
    /// By container.
    pub bases: HashMap<String, Arc<Base>>,
    /// Of what the bases were built from ([`covering_digest`]).
    digest: u64,
}

#[derive(Debug, Default)]
struct State {
    /// Workload of each pod of this node, by pod UID.
    workloads: HashMap<String, WorkloadRef>,
    /// Profiles of the workloads with pods here.
    local: HashSet<ProfileKey>,
    /// What is known of them: `None` when there is no profile or it is not
    /// guarding.
    profiles: HashMap<ProfileKey, Option<Arc<GuardedWorkload>>>,
    /// Reads that failed, and when.
    failed: HashMap<ProfileKey, Instant>,
    /// What the profiles of the workloads with pods here hold (those that
    /// hold anything as recorded).
    covering: HashMap<ProfileKey, Arc<Covering>>,
}

/// The guarding profiles of this node's workloads (shared handle).
#[derive(Clone, Debug, Default)]
pub struct Guarded {
    state: Arc<Mutex<State>>,
    /// Told when a pod of the node is added, changed or deleted.
    pods_changed: Arc<Notify>,
    /// Counts the changes of what [`Baselines::find`] answers.
    generation: Arc<AtomicU64>,
    /// Counts the changes of what [`Guarded::covering_known`] answers.
    covering_generation: Arc<AtomicU64>,
}

impl Guarded {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the node's pod watch tells of every change.
    pub fn pods_changed(&self) -> Arc<Notify> {
        self.pods_changed.clone()
    }

    /// Starts following: the node's pods (from `pods`, looked at again as
    /// [`Guarded::pods_changed`] is told) and every profile.
    pub fn follow(&self, client: Client, pods: Store<Pod>) -> (AbortOnDrop, AbortOnDrop) {
        let watch = tokio::spawn(watch_profiles(client.clone(), self.clone()));
        let refresh = tokio::spawn(refresh(client, pods, self.clone()));
        (AbortOnDrop(watch), AbortOnDrop(refresh))
    }

    /// Takes in a profile (from the watch or a read) if it is local.
    fn take(&self, namespace: &str, name: &str, profile: Option<&BehaviorProfile>) {
        let key = (namespace.to_string(), name.to_string());
        let mut state = self.lock();
        if !state.local.contains(&key) {
            return;
        }
        state.failed.remove(&key);
        let digest = profile.and_then(covering_digest);
        if state.covering.get(&key).map(|c| c.digest) != digest {
            self.covering_generation.fetch_add(1, Ordering::Relaxed);
            match profile.zip(digest) {
                Some((profile, digest)) => {
                    state
                        .covering
                        .insert(key.clone(), Arc::new(covering(profile, digest)));
                }
                None => {
                    state.covering.remove(&key);
                }
            }
        }
        // The controller rewrites a guarding profile's status as anomalies
        // are counted: the baselines are built again only when the
        // allow-lists changed.
        let digest = profile.and_then(allow_list_digest);
        let known = state
            .profiles
            .get(&key)
            .map(|p| p.as_ref().map(|g| g.digest));
        if known == Some(digest) {
            return;
        }
        let guarded = profile
            .zip(digest)
            .map(|(p, digest)| Arc::new(guarded_workload(p, digest)));
        state.profiles.insert(key, guarded);
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts the changes of what [`Guarded::covering_known`] answers: a report
    /// may be written differently after one.
    pub fn covering_generation(&self) -> u64 {
        self.covering_generation.load(Ordering::Relaxed)
    }

    /// What the profile of `workload` in `namespace` holds (`Some(None)`:
    /// it holds nothing as recorded, or there is none), once it was read
    /// (`None` while the watch's first list, or a read, is still to come).
    pub fn covering_known(
        &self,
        namespace: &str,
        workload: &WorkloadRef,
    ) -> Option<Option<Arc<Covering>>> {
        let key = (namespace.to_string(), profile_name(workload));
        let state = self.lock();
        state
            .profiles
            .contains_key(&key)
            .then(|| state.covering.get(&key).cloned())
    }

    /// The workload of a pod of this node, once looked up.
    pub fn workload_of(&self, pod_uid: &str) -> Option<WorkloadRef> {
        self.lock().workloads.get(pod_uid).cloned()
    }

    /// The baseline of `container` of `workload` in `namespace`: `None`
    /// when its profile is not guarding; whether that is known yet.
    pub fn baseline(
        &self,
        namespace: &str,
        workload: &WorkloadRef,
        container: &str,
    ) -> (Option<Arc<Baseline>>, bool) {
        let key = (namespace.to_string(), profile_name(workload));
        match self.lock().profiles.get(&key) {
            Some(Some(guarded)) => (guarded.containers.get(container).cloned(), true),
            Some(None) => (None, true),
            None => (None, false),
        }
    }
}

/// A digest of what a profile allows, when it guards (`None` when not):
/// its containers without their anomalies.
fn allow_list_digest(profile: &BehaviorProfile) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let status = profile.status.as_ref()?;
    if !status.guarding || profile.spec.mode == imprint_crd::profile::Mode::Learn {
        return None;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for container in &status.containers {
        let allowed = imprint_crd::profile::ContainerProfile {
            anomalies: Vec::new(),
            ..container.clone()
        };
        serde_json::to_vec(&allowed)
            .unwrap_or_default()
            .hash(&mut hasher);
    }
    Some(hasher.finish())
}

/// A digest of what a profile's reports may be covered by (`None`: it
/// covers nothing): its uid, whether it is settled, and each container's
/// base.
fn covering_digest(profile: &BehaviorProfile) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let uid = profile.metadata.uid.as_ref()?;
    let status = profile.status.as_ref()?;
    if !status.containers.iter().any(|c| c.recorded.is_some()) {
        return None;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    uid.hash(&mut hasher);
    settled(profile).hash(&mut hasher);
    for c in &status.containers {
        let base = (
            &c.name,
            &c.recorded,
            &c.files,
            &c.network,
            &c.executables,
            &c.exec_arguments,
        );
        serde_json::to_vec(&base)
            .unwrap_or_default()
            .hash(&mut hasher);
    }
    Some(hasher.finish())
}

/// Whether a profile is Stable or guarding.
fn settled(profile: &BehaviorProfile) -> bool {
    profile
        .status
        .as_ref()
        .is_some_and(|s| s.guarding || s.phase == imprint_crd::profile::Phase::Stable)
}

/// What a profile holds, by container.
fn covering(profile: &BehaviorProfile, digest: u64) -> Covering {
    Covering {
        coverage: Coverage {
            profile: profile.name_any(),
            uid: profile.metadata.uid.clone().unwrap_or_default(),
        },
        settled: settled(profile),
        bases: profile
            .status
            .iter()
            .flat_map(|s| &s.containers)
            .filter_map(|c| Some((c.name.clone(), Arc::new(Base::of(c)?))))
            .collect(),
        digest,
    }
}

/// A guarding profile's baselines.
fn guarded_workload(profile: &BehaviorProfile, digest: u64) -> GuardedWorkload {
    let containers = profile
        .status
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| (c.name.clone(), Arc::new(Baseline::from_profile(c))))
        .collect();
    GuardedWorkload { containers, digest }
}

async fn watch_profiles(client: Client, guarded: Guarded) {
    let stream = watcher(
        Api::<BehaviorProfile>::all(client),
        watcher::Config::default(),
    )
    .default_backoff();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                guarded.take(&p.namespace().unwrap_or_default(), &p.name_any(), Some(&p));
            }
            Ok(watcher::Event::Delete(p)) => {
                guarded.take(&p.namespace().unwrap_or_default(), &p.name_any(), None);
            }
            Ok(_) => {}
            Err(error) => debug!(%error, "BehaviorProfile watch error (retrying)"),
        }
    }
}

/// Keeps the workloads of the node's pods, which profiles are local, and
/// reads a newly local profile once: when a pod changes, and again while
/// a pod's workload or a profile could not be read.
async fn refresh(client: Client, pods: Store<Pod>, guarded: Guarded) {
    let workloads = Workloads::new(client.clone());
    let mut again: Option<Duration> = None;
    loop {
        // A pod changed (the watch's first list included), or something
        // is to be tried again.
        let changed = guarded.pods_changed.notified();
        match again {
            Some(after) => {
                let _ = tokio::time::timeout(after, changed).await;
            }
            None => changed.await,
        }
        tokio::time::sleep(SETTLE).await;
        let pods = pods.state();
        let mut found = HashMap::new();
        let mut unknown = false;
        for pod in &pods {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let known = guarded.lock().workloads.get(&uid).cloned();
            let workload = match known {
                Some(w) => Some(w),
                None => workloads.of_pod(pod).await,
            };
            match workload {
                Some(workload) => {
                    found.insert(uid, (pod.namespace().unwrap_or_default(), workload));
                }
                None => unknown = true,
            }
        }
        let wanted: Vec<ProfileKey> = {
            let mut state = guarded.lock();
            let local: HashSet<ProfileKey> = found
                .values()
                .map(|(ns, w)| (ns.clone(), profile_name(w)))
                .collect();
            let workloads: HashMap<String, WorkloadRef> =
                found.into_iter().map(|(uid, (_, w))| (uid, w)).collect();
            // Most pod changes (status, readiness) change neither.
            if local != state.local || workloads != state.workloads {
                state.local = local;
                state.workloads = workloads;
                guarded.generation.fetch_add(1, Ordering::Relaxed);
            }
            let State {
                local,
                profiles,
                failed,
                covering,
                ..
            } = &mut *state;
            profiles.retain(|key, _| local.contains(key));
            let before = covering.len();
            covering.retain(|key, _| local.contains(key));
            if covering.len() != before {
                guarded.covering_generation.fetch_add(1, Ordering::Relaxed);
            }
            failed.retain(|key, _| local.contains(key));
            local
                .iter()
                .filter(|key| !profiles.contains_key(*key))
                .filter(|key| failed.get(*key).is_none_or(|at| at.elapsed() > RETRY))
                .cloned()
                .collect()
        };
        for (namespace, name) in wanted {
            let api = Api::<BehaviorProfile>::namespaced(client.clone(), &namespace);
            match api.get_opt(&name).await {
                Ok(profile) => guarded.take(&namespace, &name, profile.as_ref()),
                Err(error) => {
                    debug!(%error, namespace, name, "BehaviorProfile read failed");
                    guarded
                        .lock()
                        .failed
                        .insert((namespace, name), Instant::now());
                }
            }
        }
        let failed = !guarded.lock().failed.is_empty();
        again = match (unknown, failed) {
            (true, _) => Some(RETRY_POD),
            (false, true) => Some(RETRY),
            (false, false) => None,
        };
    }
}

impl Baselines for Guarded {
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    fn find(&mut self, _: &str, subject: &mut Subject) -> (Option<Arc<Baseline>>, bool) {
        let (Some(namespace), Some(uid), Some(container)) =
            (&subject.namespace, &subject.pod_uid, &subject.container)
        else {
            return (None, subject.pod.is_none());
        };
        let Some(workload) = self.workload_of(uid) else {
            return (None, false);
        };
        let answer = self.baseline(namespace, &workload, container);
        subject.workload = Some(workload);
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imprint_crd::profile::{
        BehaviorProfileSpec, BehaviorProfileStatus, ContainerProfile, Mode,
    };

    fn profile(guarding: bool, mode: Mode) -> BehaviorProfile {
        let mut p = BehaviorProfile::new(
            "deployment-web",
            BehaviorProfileSpec {
                mode,
                ..BehaviorProfileSpec::default()
            },
        );
        p.metadata.namespace = Some("shop".into());
        p.status = Some(BehaviorProfileStatus {
            guarding,
            containers: vec![ContainerProfile {
                name: "web".into(),
                syscalls: vec!["read".into()],
                ..ContainerProfile::default()
            }],
            ..BehaviorProfileStatus::default()
        });
        p
    }

    fn web() -> WorkloadRef {
        WorkloadRef {
            kind: "Deployment".into(),
            name: "web".into(),
        }
    }

    /// deployment-web of shop has pods on this node.
    fn make_local(guarded: &Guarded) {
        guarded
            .lock()
            .local
            .insert(("shop".into(), "deployment-web".into()));
    }

    #[test]
    fn only_local_guarding_profiles_give_baselines() {
        let guarded = Guarded::default();
        let web = web();
        guarded.take("shop", "deployment-web", Some(&profile(true, Mode::Auto)));
        assert!(
            !guarded.baseline("shop", &web, "web").1,
            "not local: not kept"
        );
        make_local(&guarded);
        guarded.take("shop", "deployment-web", Some(&profile(true, Mode::Auto)));
        let (baseline, known) = guarded.baseline("shop", &web, "web");
        assert!(known && baseline.unwrap().has_syscall("read"));
        guarded.take("shop", "deployment-web", Some(&profile(false, Mode::Auto)));
        assert_eq!(guarded.baseline("shop", &web, "web").0.map(|_| ()), None);
        guarded.take("shop", "deployment-web", Some(&profile(true, Mode::Learn)));
        let (baseline, known) = guarded.baseline("shop", &web, "web");
        assert!(
            known && baseline.is_none(),
            "set to Learn: no longer guarded"
        );
    }

    #[test]
    fn only_a_changed_allow_list_builds_baselines_again() {
        let guarded = Guarded::default();
        let web = web();
        make_local(&guarded);
        let mut p = profile(true, Mode::Auto);
        guarded.take("shop", "deployment-web", Some(&p));
        let first = guarded.baseline("shop", &web, "web").0.unwrap();
        let generation = guarded.generation();
        // Anomalies counted: the same allow-list, the same baseline.
        p.status.as_mut().unwrap().containers[0]
            .anomalies
            .push(imprint_crd::profile::Anomaly {
                value: "/bin/sh".into(),
                count: 3,
                ..Default::default()
            });
        guarded.take("shop", "deployment-web", Some(&p));
        assert_eq!(guarded.generation(), generation);
        assert!(Arc::ptr_eq(
            &first,
            &guarded.baseline("shop", &web, "web").0.unwrap()
        ));
        // An accepted syscall: a new baseline, and a new generation.
        p.status.as_mut().unwrap().containers[0]
            .syscalls
            .push("ptrace".into());
        guarded.take("shop", "deployment-web", Some(&p));
        assert!(guarded.generation() > generation);
        assert!(
            guarded
                .baseline("shop", &web, "web")
                .0
                .unwrap()
                .has_syscall("ptrace")
        );
    }

    #[test]
    fn local_profiles_that_hold_something_as_recorded_cover_reports() {
        let guarded = Guarded::default();
        let web = web();
        make_local(&guarded);
        assert!(
            guarded.covering_known("shop", &web).is_none(),
            "not read yet: not known"
        );
        let mut p = profile(false, Mode::Auto);
        p.metadata.uid = Some("uid-1".into());
        guarded.take("shop", "deployment-web", Some(&p));
        assert!(matches!(guarded.covering_known("shop", &web), Some(None)));
        assert!(
            guarded.covering_known("shop", &web).flatten().is_none(),
            "nothing held as recorded (an earlier release's status)"
        );
        let status = p.status.as_mut().unwrap();
        status.containers[0].recorded = Some(imprint_crd::profile::Recorded::default());
        guarded.take("shop", "deployment-web", Some(&p));
        let covering = guarded.covering_known("shop", &web).flatten().unwrap();
        assert_eq!(covering.coverage.uid, "uid-1");
        assert!(!covering.settled && covering.bases.contains_key("web"));
        let generation = guarded.covering_generation();
        guarded.take("shop", "deployment-web", Some(&p));
        assert_eq!(
            guarded.covering_generation(),
            generation,
            "the same: no change"
        );
        p.status.as_mut().unwrap().phase = imprint_crd::profile::Phase::Stable;
        guarded.take("shop", "deployment-web", Some(&p));
        assert!(
            guarded
                .covering_known("shop", &web)
                .flatten()
                .unwrap()
                .settled
        );
        assert!(
            guarded.covering_generation() > generation,
            "settled: every report is looked at again"
        );
        guarded.take("shop", "deployment-web", None);
        assert!(
            guarded.covering_known("shop", &web).flatten().is_none(),
            "deleted: covers nothing"
        );
    }
}
