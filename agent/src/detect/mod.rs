//! Detection: each decoded event of a watched container is checked, as it
//! arrives, against the built-in rules and the container's learnt profile
//! (its baseline), with the process and its ancestry from the kernel's
//! process table; what is outside becomes an [`Alert`], once per cooldown
//! and within a rate. Pure but for that table and `/proc` reads of
//! processes it does not know: the caller feeds events and a clock, and
//! sends the alerts on.

pub mod alert;
pub mod arguments;
pub mod baseline;
pub mod limit;
pub mod process;
pub mod rules;
pub mod shared;
pub mod sink;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use imprint_crd::report::{Access, Direction, Subject};

use self::alert::{Alert, Observed, SCHEMA, Severity};
use self::baseline::{Baseline, name_of};
use self::limit::{Limiter, Limits, Verdict};
use self::process::{Lookup, NoProcesses, ProcessSource, Program, Programs};
use self::rules::{ExecFacts, Rule, RuleSwitches};
use crate::capture::aggregate::{endpoint, file_accesses};
use crate::capture::decode::{Event, counts_as_needed};
use crate::names::{Arch, capability_name};
use crate::normalize::normalize_path;
use crate::report::Clock;

/// Paths written per container remembered for the drift rule.
pub const MAX_WRITTEN: usize = 4096;
/// How long a cgroup the resolver could not place (or placed unsettled)
/// waits to be asked again.
const RESOLVE_RETRY: Duration = Duration::from_secs(2);
/// How often a settled container is placed again at the latest (it is
/// placed again at once when the resolver's generation changes: a profile
/// taken in, an anomaly accepted, a profile that started guarding).
const REFRESH: Duration = Duration::from_secs(60);
/// Cgroups placed (or found unwatched) remembered at most.
const MAX_PLACED: usize = 65_536;
/// Announced cgroups remembered at most.
const MAX_MADE: usize = 65_536;
/// How long the alerts of a provisional container wait for the runtime to
/// name it (or to find it another node's) before they are sent by path.
pub const HOLD_UNNAMED: Duration = Duration::from_secs(30);
/// Alerts kept per provisional container while they wait (the first ones;
/// the rest are counted).
const MAX_WAITING: usize = 64;

/// A watched container: who it is and what it learnt.
#[derive(Clone, Debug, Default)]
pub struct Watch {
    /// What names the container among those watched (its cgroups share
    /// one process table, cooldowns and rate).
    pub key: String,
    /// Named as its reports name it.
    pub subject: Subject,
    /// Its learnt profile (`None`: only the built-in rules).
    pub baseline: Option<Arc<Baseline>>,
    /// It ran before detection began: its program has started.
    pub started: bool,
    /// The name is final (`false`: the runtime has not named it yet; asked
    /// again a moment later, the container's state kept).
    pub settled: bool,
    /// Not named yet on a node whose runtimes can tell their containers
    /// from others (every one listed): it may be another node's, where
    /// nodes share a kernel. Its alerts wait (at most [`HOLD_UNNAMED`])
    /// until it is named (they then carry its names) or is found
    /// another's (the resolver no longer places it: they are dropped).
    pub provisional: bool,
}

/// Places a cgroup: the container it is, or `None` (not watched, or not
/// known yet: asked again a moment later).
pub trait Resolve: Send {
    /// The watch of cgroup `id`; `made`: its path and parent, when the
    /// kernel announced it.
    fn resolve(&mut self, id: u64, made: Option<(&str, u64)>) -> Option<Watch>;

    /// Changes whenever what `resolve` answers may have changed for
    /// cgroups already placed (their baselines): they are placed again.
    fn generation(&self) -> u64 {
        0
    }
}

/// What detection is told.
#[derive(Clone, Debug, Default)]
pub struct DetectorConfig {
    /// Rules on and off.
    pub switches: RuleSwitches,
    /// Cooldown and rate.
    pub limits: Limits,
    /// The Kubernetes API server's addresses, when known.
    pub api_servers: Vec<SocketAddr>,
}

/// Counts for the end of a run and for metrics.
#[derive(Clone, Debug, Default)]
pub struct DetectorStats {
    /// Alerts sent, by rule.
    pub alerts: HashMap<String, u64>,
    /// Alerts silenced by a cooldown.
    pub cooled: u64,
    /// Alerts held back by the rate limit (their summaries are sent).
    pub held: u64,
    /// Items a container runtime's own process did in a container (runc
    /// setting up an exec'd process), not judged.
    pub runtime_actions: u64,
    /// Alerts about a provisional container that proved another node's
    /// (dropped), or that did not fit while waiting.
    pub unplaced: u64,
}

/// Alerts of a provisional container, waiting for it to be named.
struct Waiting {
    /// When the first one was raised.
    since: Instant,
    /// One of its cgroups, and its path when the kernel announced it (it
    /// may be gone by the time the container is placed).
    cgroup: u64,
    made: Option<(String, u64)>,
    alerts: Vec<Alert>,
}

struct Container {
    /// The limiter's name of the container.
    serial: u64,
    /// Cgroups placed in it.
    cgroups: usize,
    watch: Watch,
    /// The programs its exec events announced, by kernel key.
    programs: Programs,
    written: HashSet<String>,
    started: bool,
}

/// The detector.
pub struct Detector {
    config: DetectorConfig,
    resolver: Box<dyn Resolve>,
    /// The kernel's process table.
    processes: Box<dyn ProcessSource>,
    containers: HashMap<String, Container>,
    /// Cgroup id -> the container it belongs to, and when it was placed;
    /// `None`: not watched (asked again after a while).
    placed: HashMap<u64, (Option<String>, Instant)>,
    /// The resolver's generation last seen, and since when: placements
    /// older than that are placed again.
    generation: (u64, Option<Instant>),
    /// Cgroups the kernel announced: path and parent.
    made: HashMap<u64, (String, u64)>,
    serials: u64,
    limiter: Limiter,
    arch: Option<Arch>,
    clock: Clock,
    stats: DetectorStats,
    /// Alerts of provisional containers, by container key.
    waiting: HashMap<String, Waiting>,
}

/// One event's item as the rules see it.
struct Item {
    observed: Observed,
    pid: u32,
    builtin: Vec<&'static str>,
    in_baseline: Option<bool>,
    /// The process as the event itself names it (an exec).
    process: Option<alert::Process>,
    anomaly: Option<&'static str>,
}

impl Detector {
    /// A detector placing cgroups with `resolver`.
    pub fn new(config: DetectorConfig, resolver: Box<dyn Resolve>) -> Detector {
        let limiter = Limiter::new(config.limits);
        Detector {
            config,
            resolver,
            processes: Box::new(NoProcesses),
            containers: HashMap::new(),
            placed: HashMap::new(),
            generation: (0, None),
            made: HashMap::new(),
            serials: 0,
            limiter,
            arch: Arch::native(),
            clock: Clock::now(),
            stats: DetectorStats::default(),
            waiting: HashMap::new(),
        }
    }

    /// Places cgroups with `resolver` from now on (what was placed stays).
    pub fn set_resolver(&mut self, resolver: Box<dyn Resolve>) {
        self.resolver = resolver;
        self.placed.retain(|_, (key, _)| key.is_some());
    }

    /// Reads processes from `table` (the kernel's process table) from now
    /// on; without one, only `/proc` names processes.
    pub fn set_processes(&mut self, table: Box<dyn ProcessSource>) {
        self.processes = table;
    }

    /// Counts so far.
    pub fn stats(&self) -> DetectorStats {
        let mut stats = self.stats.clone();
        stats.cooled = self.limiter.cooled;
        stats.held = self.limiter.held;
        stats
    }

    /// Checks one event; returns the alerts it raises.
    pub fn observe(&mut self, event: &Event, now: Instant) -> Vec<Alert> {
        let id = event.header().cgroup_id;
        match event {
            Event::CgroupMade {
                parent_id, path, ..
            } => {
                if self.made.len() >= MAX_MADE {
                    self.made.clear();
                }
                self.made.insert(id, (path.clone(), *parent_id));
                return Vec::new();
            }
            Event::CgroupRemoved { .. } => {
                self.made.remove(&id);
                if let Some((Some(key), _)) = self.placed.remove(&id) {
                    self.release(&key);
                }
                return Vec::new();
            }
            _ => {}
        }
        let Some(key) = self.place(id, now) else {
            return Vec::new();
        };
        let Some(item) = self.item(&key, event) else {
            return Vec::new();
        };
        let Some(alert) = self.judge(&key, item, event.header().timestamp_ns, now) else {
            return Vec::new();
        };
        if self
            .containers
            .get(&key)
            .is_some_and(|c| c.watch.provisional)
        {
            self.wait(key, id, alert, now);
            return Vec::new();
        }
        vec![alert]
    }

    /// Keeps `alert` of provisional container `key` (cgroup `id`) until
    /// the container is named or found another node's.
    fn wait(&mut self, key: String, id: u64, alert: Alert, now: Instant) {
        let made = self.made.get(&id).cloned();
        let waiting = self.waiting.entry(key).or_insert_with(|| Waiting {
            since: now,
            cgroup: id,
            made: None,
            alerts: Vec::new(),
        });
        if waiting.made.is_none() {
            // Announced by the kernel, else as the resolver placed it: the
            // cgroup may be gone (its path no longer found) when it is
            // placed again.
            waiting.made = made.or_else(|| alert.subject.cgroup.clone().map(|path| (path, 0)));
        }
        if waiting.alerts.len() < MAX_WAITING {
            waiting.alerts.push(alert);
        } else {
            self.stats.unplaced += 1;
        }
    }

    /// The waiting alerts that can go now: those of containers named since
    /// (with the names), and those that waited [`HOLD_UNNAMED`] (by path);
    /// those of containers the resolver no longer places, by their path
    /// (found another node's), are dropped.
    fn settle_waiting(&mut self, now: Instant) -> Vec<Alert> {
        let mut out = Vec::new();
        let (resolver, stats) = (&mut self.resolver, &mut self.stats);
        self.waiting.retain(|_, waiting| {
            let made = waiting
                .made
                .as_ref()
                .map(|(p, parent)| (p.as_str(), *parent));
            match resolver.resolve(waiting.cgroup, made) {
                None => {
                    stats.unplaced += waiting.alerts.len() as u64;
                    for alert in &waiting.alerts {
                        if let Some(n) = stats.alerts.get_mut(&alert.rule) {
                            *n = n.saturating_sub(1);
                        }
                    }
                }
                Some(watch) if !watch.provisional => {
                    out.extend(waiting.alerts.drain(..).map(|mut alert| {
                        alert.subject = watch.subject.clone();
                        alert
                    }));
                }
                Some(_) if now.duration_since(waiting.since) >= HOLD_UNNAMED => {
                    out.append(&mut waiting.alerts);
                }
                Some(_) => return true,
            }
            false
        });
        out
    }

    /// Notes when the resolver's generation changed.
    fn see_generation(&mut self, now: Instant) {
        let generation = self.resolver.generation();
        if generation != self.generation.0 {
            self.generation = (generation, Some(now));
        }
    }

    /// Whether a placement in `key` made at `at` still holds at `now`.
    fn fresh(&self, key: &Option<String>, at: Instant, now: Instant) -> bool {
        let settled = key
            .as_ref()
            .and_then(|k| self.containers.get(k))
            .is_some_and(|c| c.watch.settled);
        let age = now.duration_since(at);
        if settled {
            age < REFRESH && self.generation.1.is_none_or(|since| at >= since)
        } else {
            age < RESOLVE_RETRY
        }
    }

    /// Places again the watched cgroups whose placement is out of date (a
    /// profile that started guarding, an accepted anomaly), without
    /// waiting for their next event: a quiet container is then counted as
    /// guarded as soon as its profile guards.
    pub fn refresh(&mut self, now: Instant) {
        self.see_generation(now);
        let stale: Vec<u64> = self
            .placed
            .iter()
            .filter(|(_, (key, at))| key.is_some() && !self.fresh(key, *at, now))
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            self.place(id, now);
        }
    }

    /// Containers checked against a baseline (a guarding profile) now.
    pub fn guarded_containers(&self) -> usize {
        self.containers
            .values()
            .filter(|c| c.watch.baseline.is_some())
            .count()
    }

    /// Whether alerts are held back: summaries are due later, or alerts of
    /// provisional containers wait.
    pub fn holding(&self) -> bool {
        self.limiter.holding() || !self.waiting.is_empty()
    }

    /// Summaries of alerts held back whose second is over, and the waiting
    /// alerts of provisional containers that can go now (the summary of a
    /// provisional container's alerts waits with them).
    pub fn tick(&mut self, now: Instant) -> Vec<Alert> {
        let mut out = self.settle_waiting(now);
        let due = self.limiter.due(now);
        if due.is_empty() {
            return out;
        }
        let time = self.clock.rfc3339(crate::report::boot_ns());
        for (serial, held) in due {
            let Some((key, container)) = self.containers.iter().find(|(_, c)| c.serial == serial)
            else {
                continue;
            };
            let key = key.clone();
            let provisional = container.watch.provisional;
            let subject = container.watch.subject.clone();
            *self
                .stats
                .alerts
                .entry(rules::RATE_LIMIT_RULE.to_string())
                .or_default() += 1;
            let summary = Alert {
                schema: SCHEMA.into(),
                rule: rules::RATE_LIMIT_RULE.into(),
                severity: held.severity.unwrap_or(Severity::Low),
                message: format!(
                    "{} more alert(s) held back (at most {} per second per container)",
                    held.count, self.config.limits.per_second
                ),
                time: time.clone(),
                subject,
                outside_profile: false,
                process: None,
                ancestry: Vec::new(),
                observed: Observed::Held {
                    rules: held.rules.into_iter().collect(),
                },
                count: Some(held.count),
            };
            if provisional
                && let Some(id) = self
                    .placed
                    .iter()
                    .find(|(_, (k, _))| k.as_deref() == Some(key.as_str()))
                    .map(|(id, _)| *id)
            {
                self.wait(key, id, summary, now);
            } else {
                out.push(summary);
            }
        }
        out
    }

    /// The container cgroup `id` belongs to, asking the resolver when it
    /// is new, unsettled or was not watched a while ago.
    fn place(&mut self, id: u64, now: Instant) -> Option<String> {
        self.see_generation(now);
        if let Some((key, at)) = self.placed.get(&id)
            && self.fresh(key, *at, now)
        {
            return key.clone();
        }
        let made = self.made.get(&id).map(|(p, parent)| (p.as_str(), *parent));
        let watch = self.resolver.resolve(id, made);
        let previous = self.placed.remove(&id).and_then(|(key, _)| key);
        if self.placed.len() >= MAX_PLACED {
            self.placed.retain(|_, (key, _)| key.is_some());
        }
        let Some(watch) = watch else {
            if let Some(previous) = previous {
                self.release(&previous);
            }
            self.placed.insert(id, (None, now));
            return None;
        };
        let key = watch.key.clone();
        if let Some(previous) = previous.as_ref().filter(|p| **p != key) {
            // Renamed once the runtime named it: its state moves along.
            if let Some(container) = self.containers.remove(previous) {
                self.containers.entry(key.clone()).or_insert(container);
            }
        }
        match self.containers.get_mut(&key) {
            Some(container) => {
                if previous.is_none() {
                    container.cgroups += 1;
                }
                container.started |= watch.started;
                container.watch = watch;
            }
            None => {
                self.serials += 1;
                self.containers.insert(
                    key.clone(),
                    Container {
                        serial: self.serials,
                        cgroups: 1,
                        started: watch.started,
                        watch,
                        programs: Programs::default(),
                        written: HashSet::new(),
                    },
                );
            }
        }
        self.placed.insert(id, (Some(key.clone()), now));
        Some(key)
    }

    /// One cgroup of container `key` is no longer placed in it; the
    /// container goes with its last cgroup.
    fn release(&mut self, key: &str) {
        let Some(container) = self.containers.get_mut(key) else {
            return;
        };
        container.cgroups = container.cgroups.saturating_sub(1);
        if container.cgroups == 0 {
            let serial = container.serial;
            self.containers.remove(key);
            self.limiter.forget(serial);
        }
    }

    /// Updates the container's state with the event and says what the
    /// rules are to judge of it.
    fn item(&mut self, key: &str, event: &Event) -> Option<Item> {
        let arch = self.arch;
        let api_servers = &self.config.api_servers;
        // Read before the exec's program is taken in.
        let parent_exe = match event {
            Event::Exec { process, .. } => {
                self.with_lookup(key, |l| l.exe_of(process.ppid)).flatten()
            }
            _ => None,
        };
        let container = self.containers.get_mut(key)?;
        let baseline = container.watch.baseline.clone();
        let pid = event.header().pid;
        match event {
            Event::Exec {
                path,
                args,
                key_hash,
                process,
                ..
            } => {
                container.programs.insert(
                    *key_hash,
                    Program {
                        exe: path.clone(),
                        args: args.clone(),
                    },
                );
                container.started = true;
                let builtin = rules::exec_rules(&ExecFacts {
                    path,
                    args,
                    terminal: process.has_terminal(),
                    socket_stdio: process.stdio_is_socket(),
                    parent_exe: parent_exe.as_deref(),
                    written_since_start: container.written.contains(path),
                });
                let in_baseline = baseline.as_ref().map(|b| b.has_execution(path, args));
                let known_program = baseline.as_ref().is_none_or(|b| b.has_program(path));
                Some(Item {
                    observed: Observed::Exec {
                        path: path.clone(),
                        args: args.clone(),
                    },
                    pid,
                    builtin,
                    // Built-in rules ask for the argv as learnt (its
                    // shape); the profile's rules for the program, then
                    // for the shape of its arguments.
                    anomaly: if !known_program {
                        Some("unexpected-exec")
                    } else if in_baseline == Some(false) {
                        Some(rules::EXEC_ARGUMENTS_RULE)
                    } else {
                        None
                    },
                    in_baseline,
                    process: Some(alert::Process {
                        pid,
                        ppid: process.ppid,
                        uid: process.uid,
                        gid: process.gid,
                        exe: path.clone(),
                        args: args.clone(),
                    }),
                })
            }
            Event::File {
                op, access, path, ..
            } => {
                let accesses = file_accesses(*op, *access);
                let writes: Vec<Access> =
                    accesses.iter().copied().filter(|a| a.is_write()).collect();
                if !writes.is_empty() {
                    if container.written.len() >= MAX_WRITTEN {
                        container.written.clear();
                    }
                    container.written.insert(path.clone());
                }
                if !container.started || accesses.is_empty() {
                    return None;
                }
                let normalized = normalize_path(path);
                let builtin = rules::file_rules(&normalized, &accesses);
                let (in_baseline, anomaly) = match &baseline {
                    None => (None, None),
                    Some(b) if !writes.is_empty() => {
                        let known = b.has_file_access(&normalized, &writes);
                        (
                            Some(known && b.has_file_access(&normalized, &accesses)),
                            (!known).then_some("unexpected-file-write"),
                        )
                    }
                    Some(b) => {
                        let known = b.has_file_access(&normalized, &accesses);
                        (Some(known), (!known).then_some("unexpected-file-read"))
                    }
                };
                Some(Item {
                    observed: Observed::File {
                        path: normalized,
                        access: accesses.iter().map(name_of).collect(),
                    },
                    pid,
                    builtin,
                    in_baseline,
                    anomaly,
                    process: None,
                })
            }
            Event::Syscall { nr, .. } => {
                if !container.started {
                    return None;
                }
                let name = arch
                    .and_then(|a| a.syscall_name(*nr))
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("syscall_{nr}"));
                let in_baseline = baseline.as_ref().map(|b| b.has_syscall(&name));
                Some(Item {
                    builtin: rules::syscall_rules(&name),
                    observed: Observed::Syscall { name },
                    pid,
                    anomaly: (in_baseline == Some(false)).then_some("unexpected-syscall"),
                    in_baseline,
                    process: None,
                })
            }
            Event::Cap {
                cap,
                granted,
                audit,
                ..
            } => {
                if !container.started || !counts_as_needed(*granted, *audit) {
                    return None;
                }
                let name = capability_name(*cap).unwrap_or_else(|| format!("CAP_{cap}"));
                let in_baseline = baseline.as_ref().map(|b| b.has_capability(&name));
                Some(Item {
                    observed: Observed::Capability { name },
                    pid,
                    builtin: Vec::new(),
                    anomaly: (in_baseline == Some(false)).then_some("unexpected-capability"),
                    in_baseline,
                    process: None,
                })
            }
            Event::Net {
                kind,
                protocol,
                local,
                remote,
                ..
            } => {
                if !container.started {
                    return None;
                }
                let endpoint = endpoint(*kind, *protocol, *local, *remote)?;
                let in_baseline = baseline.as_ref().map(|b| b.has_endpoint(&endpoint));
                let anomaly = match endpoint.direction {
                    Direction::Outbound => Some("unexpected-connection"),
                    Direction::Listening => Some("unexpected-listener"),
                    Direction::Inbound => None,
                };
                Some(Item {
                    builtin: rules::network_rules(&endpoint, api_servers),
                    observed: Observed::Network {
                        direction: name_of(&endpoint.direction),
                        protocol: name_of(&endpoint.protocol),
                        address: endpoint.address.clone(),
                        port: endpoint.port,
                    },
                    pid,
                    anomaly: anomaly.filter(|_| in_baseline == Some(false)),
                    in_baseline,
                    process: None,
                })
            }
            Event::SyscallArg { nr, value, .. } => {
                if !container.started {
                    return None;
                }
                let name = arch.and_then(|a| a.syscall_name(*nr))?;
                let arguments = crate::probes::arguments::decode(name, *value)?;
                let in_baseline = baseline.as_ref().map(|b| b.has_call(name, &arguments));
                Some(Item {
                    observed: Observed::SyscallArguments {
                        name: name.to_string(),
                        arguments,
                    },
                    pid,
                    builtin: Vec::new(),
                    anomaly: (in_baseline == Some(false)).then_some(rules::SYSCALL_ARGUMENTS_RULE),
                    in_baseline,
                    process: None,
                })
            }
            Event::CgroupMade { .. } | Event::CgroupRemoved { .. } => None,
        }
    }

    /// The rule an item raises, if any: the first built-in rule that is on
    /// and not silenced by the profile, else the profile's own rule.
    fn rule_for(&self, item: &Item, namespace: Option<&str>) -> Option<&'static Rule> {
        let switches = &self.config.switches;
        let learnt = item.in_baseline == Some(true);
        let has_profile = item.in_baseline.is_some();
        for id in &item.builtin {
            let Some(rule) = rules::find(id) else {
                continue;
            };
            if !switches.enabled(rule, namespace)
                || (rule.learnable && learnt)
                || (rule.needs_profile && !has_profile)
            {
                continue;
            }
            return Some(rule);
        }
        item.anomaly
            .and_then(rules::find)
            .filter(|rule| switches.enabled(rule, namespace))
    }

    /// Runs `f` with the process lookup of container `key`.
    fn with_lookup<R>(&self, key: &str, f: impl FnOnce(&Lookup) -> R) -> Option<R> {
        let container = self.containers.get(key)?;
        let placed = &self.placed;
        let ours = |id: u64| in_container(placed, id, key);
        Some(f(&Lookup {
            table: &*self.processes,
            programs: &container.programs,
            ours: &ours,
            cgroup: container.watch.subject.cgroup.as_deref(),
        }))
    }

    fn judge(
        &mut self,
        container_key: &str,
        item: Item,
        timestamp_ns: u64,
        now: Instant,
    ) -> Option<Alert> {
        let container = self.containers.get(container_key)?;
        let namespace = container.watch.subject.namespace.clone();
        let serial = container.serial;
        let rule = self.rule_for(&item, namespace.as_deref())?;
        // An exec names the program it ran, whatever the process ran since.
        let process = match item.process.clone() {
            Some(process) => Some(process),
            None if item.pid != 0 => self
                .with_lookup(container_key, |l| l.process(item.pid))
                .flatten(),
            None => None,
        };
        // The runtime setting up a process in the container (`runc init`
        // of a `kubectl exec`: setns, mounts) before it executes the
        // container's program: not the workload.
        if !matches!(item.observed, Observed::Exec { .. })
            && process.as_ref().is_some_and(|p| rules::is_runtime(&p.exe))
        {
            self.stats.runtime_actions += 1;
            return None;
        }
        let key = match &item.observed {
            Observed::Exec { path, args } if rule.id == rules::EXEC_ARGUMENTS_RULE => {
                arguments::value(path, &arguments::shape(args))
            }
            observed => observed.key(),
        };
        if self
            .limiter
            .judge(rule.id, rule.severity, serial, &key, now)
            != Verdict::Send
        {
            return None;
        }
        let ancestry = process
            .as_ref()
            .and_then(|p| self.with_lookup(container_key, |l| l.ancestry(p)))
            .unwrap_or_default();
        let container = self.containers.get(container_key)?;
        *self.stats.alerts.entry(rule.id.to_string()).or_default() += 1;
        Some(Alert {
            schema: SCHEMA.into(),
            rule: rule.id.into(),
            severity: rule.severity,
            message: format!("{}: {}", rule.description, key),
            time: self.clock.rfc3339(timestamp_ns),
            subject: container.watch.subject.clone(),
            outside_profile: item.in_baseline == Some(false),
            process,
            ancestry,
            observed: item.observed,
            count: None,
        })
    }
}

/// Whether cgroup `id` is placed in container `key`.
fn in_container(placed: &HashMap<u64, (Option<String>, Instant)>, id: u64, key: &str) -> bool {
    placed
        .get(&id)
        .and_then(|(k, _)| k.as_deref())
        .is_some_and(|k| k == key)
}

#[cfg(test)]
mod tests;
