//! Placing a cgroup for detection on a whole host or node: the container
//! it belongs to (named through the runtime as reports name it) and the
//! baseline it is checked against (a report file of its name, or its
//! workload's guarding profile).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use imprint_crd::report::Subject;

use crate::cgroups::{Hierarchy, is_imprints_own};
use crate::detect::baseline::Baseline;
use crate::detect::{Resolve, Watch};
use crate::pipeline::hostname;
use crate::runtime::{self, Containers, Filter, Holder};

/// Cgroups read in one scan of the hierarchy.
const SCAN_LIMIT: usize = 100_000;

/// Where the baseline of a container comes from.
pub trait Baselines: Send {
    /// The baseline of the container `key` (its report name), `subject`
    /// as the runtime named it (the source may add its workload); whether
    /// the answer is final (`false`: asked again a moment later).
    fn find(&mut self, key: &str, subject: &mut Subject) -> (Option<Arc<Baseline>>, bool);

    /// Changes whenever an answer of `find` may have changed.
    fn generation(&self) -> u64 {
        0
    }
}

/// Report files by name (`monitor --baseline-dir`).
pub struct ByName(pub HashMap<String, Arc<Baseline>>);

impl Baselines for ByName {
    fn find(&mut self, key: &str, _: &mut Subject) -> (Option<Arc<Baseline>>, bool) {
        (self.0.get(key).cloned(), true)
    }
}

/// Every cgroup of the host or node, named as `record --duration` names
/// its reports.
pub struct HostResolver {
    hierarchy: Hierarchy,
    containers: Containers,
    filter: Filter,
    /// A pod never watched (namespace, name): the agent's own.
    own_pod: Option<(String, String)>,
    baselines: Box<dyn Baselines>,
    /// Cgroups that existed when detection began.
    started: HashSet<u64>,
    paths: HashMap<u64, String>,
    scanned: Instant,
    node: Option<String>,
    /// On a node: when each cgroup was first found unnamed, to leave out
    /// those another runtime's ([`Containers::foreign`]); `None` on a
    /// plain host, where every container is watched (by path if unnamed).
    unnamed_since: Option<HashMap<u64, Instant>>,
}

impl HostResolver {
    /// A resolver over `hierarchy`, naming containers through `containers`.
    pub fn new(
        hierarchy: &Hierarchy,
        containers: &Containers,
        filter: Filter,
        own_pod: Option<(String, String)>,
        baselines: Box<dyn Baselines>,
    ) -> HostResolver {
        let preexisting = hierarchy.scan(SCAN_LIMIT);
        HostResolver {
            hierarchy: hierarchy.clone(),
            containers: containers.clone(),
            filter,
            own_pod,
            baselines,
            started: preexisting.keys().copied().collect(),
            paths: preexisting,
            scanned: Instant::now(),
            node: hostname(),
            unnamed_since: None,
        }
    }

    /// With this node name in the subjects (the agent's, not the host's),
    /// leaving out the containers no followed runtime knows (another
    /// node's, where nodes share a kernel): they are that node's agent's.
    pub fn on_node(mut self, node: String) -> HostResolver {
        self.node = Some(node);
        self.unnamed_since = Some(HashMap::new());
        self
    }

    /// Whether the cgroup `id` of `holder` is another runtime's (only
    /// asked on a node).
    fn foreign(&mut self, id: u64, holder: &Holder) -> bool {
        let Some(unnamed_since) = self.unnamed_since.as_mut() else {
            return false;
        };
        let Holder::Container(identity, None) = holder else {
            unnamed_since.remove(&id);
            return false;
        };
        if unnamed_since.len() >= SCAN_LIMIT {
            // Those the last scan no longer finds are gone.
            unnamed_since.retain(|id, _| self.paths.contains_key(id));
        }
        let since = *unnamed_since.entry(id).or_insert_with(Instant::now);
        self.containers
            .foreign(&identity.container_id, identity.pod_uid.as_deref(), since)
    }
}

impl Resolve for HostResolver {
    fn generation(&self) -> u64 {
        self.baselines.generation()
    }

    fn resolve(&mut self, id: u64, made: Option<(&str, u64)>) -> Option<Watch> {
        let path = match made {
            Some((path, _)) => path.to_string(),
            None => {
                if !self.paths.contains_key(&id) && self.scanned.elapsed() > Duration::from_secs(1)
                {
                    self.paths = self.hierarchy.scan(SCAN_LIMIT);
                    self.scanned = Instant::now();
                }
                self.paths.get(&id)?.clone()
            }
        };
        if is_imprints_own(&path) {
            return None;
        }
        let holder = runtime::classify(&path, &self.containers);
        if !self.filter.keeps(&holder) || self.foreign(id, &holder) {
            return None;
        }
        let named = !matches!(holder, Holder::Container(_, None));
        let mut subject = runtime::subject(&path, &holder, self.node.clone());
        if let (Some((ns, pod)), Some(namespace), Some(name)) =
            (&self.own_pod, &subject.namespace, &subject.pod)
            && ns == namespace
            && pod == name
        {
            return None;
        }
        let key = runtime::report_stem(subject.cgroup.as_deref().unwrap_or(&path), &subject);
        let (baseline, found) = self.baselines.find(&key, &mut subject);
        Some(Watch {
            baseline,
            key,
            subject,
            started: self.started.contains(&id),
            settled: named && found,
            provisional: !named && self.unnamed_since.is_some() && self.containers.decidable(),
        })
    }
}
