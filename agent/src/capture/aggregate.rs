//! Folding events into one bounded [`Behavior`] per cgroup.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use imprint_crd::report::{Access, Direction, NetworkEndpoint, Protocol};
use imprint_probes::events::{DropCounts, access, cap_audit, file_op, net_kind};

use super::decode::{Event, counts_as_needed};
use crate::normalize::normalize_path;

/// Bounds on what one cgroup's behavior may hold. Past a bound, files fold
/// into their directory (`dir/*`), and past twice that bound into their
/// top-level directory (`/top/**`, at most [`TOP_LEVEL_FOLDS`] of them,
/// then `/**`), so the list stays bounded whatever a container makes; other
/// lists stop growing. Either way the report says so in `stats.truncated`.
/// A fold keeps the accesses, writes included: it can only widen what a
/// recommendation sees as written, never hide a write.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Distinct file paths.
    pub files: usize,
    /// Distinct (path, argv) executables.
    pub executables: usize,
    /// Distinct network endpoints.
    pub network: usize,
    /// Distinct set-user-id, set-group-id or root executables kept beyond
    /// `executables` (the securityContext rules depend on them).
    pub decisive_executables: usize,
}

/// Top-level directory folds (`/top/**`) kept before everything else folds
/// into `/**`.
pub const TOP_LEVEL_FOLDS: usize = 64;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            files: 4096,
            executables: 512,
            network: 1024,
            decisive_executables: 512,
        }
    }
}

/// Counts and traits of one executed (path, argv).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecStats {
    /// Times executed.
    pub count: u64,
    /// Lowest effective uid after an exec (0 when any ran as root).
    pub euid: u32,
    /// The file is set-user-id.
    pub setuid: bool,
    /// The file is set-group-id.
    pub setgid: bool,
    /// Capabilities gained from the file's capabilities (bit n:
    /// capability n).
    pub file_caps: u64,
    /// The kernel's keys of these execs ([`Event::Exec`]'s `key_hash`):
    /// their repeats are counted in the kernel, not sent.
    pub kernel_keys: BTreeSet<u64>,
}

impl ExecStats {
    /// Adds other executions of the same (path, argv): counts add up, and
    /// what any of them did (ran as root, gained privilege) stays.
    pub fn absorb(&mut self, other: &ExecStats) {
        self.count += other.count;
        self.euid = self.euid.min(other.euid);
        self.setuid |= other.setuid;
        self.setgid |= other.setgid;
        self.file_caps |= other.file_caps;
        self.kernel_keys.extend(other.kernel_keys.iter().copied());
    }
}

/// How one capability was checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapStats {
    /// Granted and audited (or of unknown audit class).
    pub needed: bool,
    /// Denied in an audited check.
    pub denied: bool,
    /// Checked without audit.
    pub probed: bool,
    /// Checked (granted, audited) before the cgroup's first exec, in a
    /// cgroup born during the recording: the container runtime setting the
    /// container up (runc init), not the workload.
    pub runtime: bool,
}

/// What one cgroup did.
#[derive(Clone, Debug, Default)]
pub struct Behavior {
    /// Boot-time of the first event, ns.
    pub first_seen_ns: u64,
    /// Boot-time of the last event, ns.
    pub last_seen_ns: u64,
    /// Syscall numbers.
    pub syscalls: BTreeSet<u32>,
    /// Argument values of the recorded syscalls, by syscall number, as the
    /// probe took them; and whether one overflowed.
    pub syscall_args: BTreeMap<u32, (BTreeSet<u64>, bool)>,
    /// Executables by (path, argv).
    pub executables: BTreeMap<(String, Vec<String>), ExecStats>,
    /// Accesses by normalised path.
    pub files: BTreeMap<String, BTreeSet<Access>>,
    /// Network endpoints.
    pub network: BTreeSet<NetworkEndpoint>,
    /// Capabilities by number.
    pub capabilities: BTreeMap<u32, CapStats>,
    /// Events folded in.
    pub events: u64,
    /// Paths the kernel cut.
    pub truncated_paths: u64,
    /// Lists that hit a bound.
    pub truncated: BTreeSet<&'static str>,
    /// Losses counted in the kernel.
    pub drops: DropCounts,
    /// The cgroup was removed.
    pub removed: bool,
    /// The cgroup was made during the recording (its whole life is seen).
    pub born: bool,
    /// A program was executed in the cgroup.
    pub exec_seen: bool,
    /// Union of the capability bounding sets programs were executed with.
    pub exec_bset: u64,
}

impl Behavior {
    /// Folds one event in.
    pub fn add(&mut self, event: &Event, limits: &Limits) {
        let ts = event.header().timestamp_ns;
        if self.events == 0 || ts < self.first_seen_ns {
            self.first_seen_ns = ts;
        }
        self.last_seen_ns = self.last_seen_ns.max(ts);
        self.events += 1;
        match event {
            Event::Syscall { nr, .. } => {
                self.syscalls.insert(*nr);
            }
            Event::SyscallArg {
                nr,
                value,
                overflow,
                ..
            } => {
                let (values, overflowed) = self.syscall_args.entry(*nr).or_default();
                if *overflow {
                    *overflowed = true;
                } else {
                    values.insert(*value);
                }
            }
            Event::Exec {
                path,
                args,
                euid,
                file_mode,
                cap_bset,
                cap_gained,
                key_hash,
                truncated,
                ..
            } => {
                if *truncated {
                    self.truncated_paths += 1;
                }
                self.exec_seen = true;
                self.exec_bset |= cap_bset;
                let key = (path.clone(), args.clone());
                let setuid = file_mode & 0o4000 != 0;
                let setgid = file_mode & 0o2000 != 0;
                // Executions the securityContext rules depend on (gaining
                // privilege, or running as root) are kept past the bound,
                // up to a bound of their own; the rest stop at the bound.
                let decisive = setuid || setgid || *cap_gained != 0 || *euid == 0;
                let room = if decisive {
                    self.executables.len() < limits.executables + limits.decisive_executables
                } else {
                    self.executables.len() < limits.executables
                };
                if room || self.executables.contains_key(&key) {
                    let this = ExecStats {
                        count: 1,
                        euid: *euid,
                        setuid,
                        setgid,
                        file_caps: *cap_gained,
                        kernel_keys: [*key_hash].into(),
                    };
                    match self.executables.get_mut(&key) {
                        Some(stats) => stats.absorb(&this),
                        None => {
                            self.executables.insert(key, this);
                        }
                    }
                } else {
                    self.truncated.insert("executables");
                }
                self.add_file(path, [Access::Exec].into_iter(), limits);
            }
            Event::File {
                op,
                access: bits,
                path,
                truncated,
                ..
            } => {
                if *truncated {
                    self.truncated_paths += 1;
                }
                self.add_file(path, file_accesses(*op, *bits).into_iter(), limits);
            }
            Event::Net {
                kind,
                protocol,
                local,
                remote,
                ..
            } => {
                if let Some(endpoint) = endpoint(*kind, *protocol, *local, *remote) {
                    if self.network.len() < limits.network || self.network.contains(&endpoint) {
                        self.network.insert(endpoint);
                    } else {
                        self.truncated.insert("network");
                    }
                }
            }
            Event::Cap {
                cap,
                granted,
                audit,
                ..
            } => {
                let stats = self.capabilities.entry(*cap).or_default();
                let needed = counts_as_needed(*granted, *audit);
                // A container's runtime (runc init) runs in the container's
                // cgroup with full capabilities until it executes the
                // container's program: its checks are not the workload's.
                // After the exec, a check of a capability outside every
                // executed program's bounding set is a runtime process
                // (with the runtime's full set) acting in the cgroup.
                let outside = self.exec_seen && (*cap >= 64 || self.exec_bset & (1u64 << cap) == 0);
                if (self.born && !self.exec_seen) || outside {
                    stats.runtime |= needed;
                } else {
                    stats.needed |= needed;
                }
                stats.denied |= !granted && *audit != cap_audit::NOAUDIT;
                stats.probed |= *audit == cap_audit::NOAUDIT;
            }
            Event::CgroupMade { .. } => self.born = true,
            Event::CgroupRemoved { .. } => self.removed = true,
        }
    }

    /// Whether nothing was seen but the cgroup's own making or removal
    /// (a pod's or QoS class's cgroup, in which no process ran).
    pub fn is_empty(&self) -> bool {
        self.syscalls.is_empty()
            && self.executables.is_empty()
            && self.files.is_empty()
            && self.network.is_empty()
            && self.capabilities.is_empty()
    }

    /// Folds another cgroup's behavior in (a cgroup made below this one).
    pub fn merge(&mut self, other: &Behavior) {
        // What the kernel lost of it counts even when nothing reached us.
        self.add_drops(&other.drops);
        if other.events == 0 {
            return;
        }
        if self.events == 0 || other.first_seen_ns < self.first_seen_ns {
            self.first_seen_ns = other.first_seen_ns;
        }
        self.last_seen_ns = self.last_seen_ns.max(other.last_seen_ns);
        self.events += other.events;
        self.syscalls.extend(other.syscalls.iter().copied());
        for (nr, (values, overflow)) in &other.syscall_args {
            let (ours, overflowed) = self.syscall_args.entry(*nr).or_default();
            ours.extend(values.iter().copied());
            *overflowed |= overflow;
        }
        for (key, stats) in &other.executables {
            match self.executables.get_mut(key) {
                Some(entry) => entry.absorb(stats),
                None => {
                    self.executables.insert(key.clone(), stats.clone());
                }
            }
        }
        for (path, access) in &other.files {
            self.files
                .entry(path.clone())
                .or_default()
                .extend(access.iter().copied());
        }
        self.network.extend(other.network.iter().cloned());
        for (cap, stats) in &other.capabilities {
            let entry = self.capabilities.entry(*cap).or_default();
            entry.needed |= stats.needed;
            entry.denied |= stats.denied;
            entry.probed |= stats.probed;
            entry.runtime |= stats.runtime;
        }
        self.truncated_paths += other.truncated_paths;
        self.truncated.extend(other.truncated.iter().copied());
    }

    /// Whether the kernel lost anything of it.
    pub fn lost_anything(&self) -> bool {
        self.drops.total() > 0
    }

    /// Adds losses counted in the kernel.
    pub fn add_drops(&mut self, drops: &DropCounts) {
        self.drops.ringbuf += drops.ringbuf;
        self.drops.map_full += drops.map_full;
        self.drops.truncated += drops.truncated;
        self.drops.read_fails += drops.read_fails;
    }

    /// Adds the repeats the kernel counted (by exec key) instead of
    /// sending them to the executions they repeat.
    pub fn add_exec_repeats(&mut self, repeats: &HashMap<u64, u64>) {
        for stats in self.executables.values_mut() {
            for key in &stats.kernel_keys {
                stats.count += repeats.get(key).copied().unwrap_or(0);
            }
        }
    }

    fn add_file(&mut self, path: &str, accesses: impl Iterator<Item = Access>, limits: &Limits) {
        let mut path = normalize_path(path);
        if !self.files.contains_key(&path) && self.files.len() >= limits.files {
            self.truncated.insert("files");
            path = match path.rsplit_once('/') {
                Some((dir, _)) if !dir.is_empty() => format!("{dir}/*"),
                _ => "/*".into(),
            };
        }
        let deep = limits.files.saturating_mul(2);
        if !self.files.contains_key(&path) && self.files.len() >= deep {
            self.truncated
                .insert("files (folded to top-level directories)");
            let top = match path.trim_start_matches('/').split_once('/') {
                Some((first, _)) if !first.is_empty() => format!("/{first}/**"),
                _ => "/**".into(),
            };
            path = if self.files.contains_key(&top) || self.files.len() < deep + TOP_LEVEL_FOLDS {
                top
            } else {
                "/**".into()
            };
        }
        self.files.entry(path).or_default().extend(accesses);
    }
}

/// The report accesses of a file event.
pub fn file_accesses(op: u32, bits: u32) -> Vec<Access> {
    match op {
        file_op::OPEN => {
            let mut out = Vec::new();
            if bits & access::READ != 0 {
                out.push(Access::Read);
            }
            if bits & access::WRITE != 0 {
                out.push(Access::Write);
            }
            if bits & access::CREATE != 0 {
                out.push(Access::Create);
            }
            if bits & access::TRUNCATE != 0 {
                out.push(Access::Truncate);
            }
            if out.is_empty() {
                out.push(Access::Path);
            }
            out
        }
        file_op::UNLINK => vec![Access::Unlink],
        file_op::RMDIR => vec![Access::Rmdir],
        file_op::MKDIR => vec![Access::Mkdir],
        file_op::RENAME_FROM => vec![Access::RenameFrom],
        file_op::RENAME_TO => vec![Access::RenameTo],
        file_op::CHMOD => vec![Access::Chmod],
        file_op::CHOWN => vec![Access::Chown],
        file_op::SYMLINK => vec![Access::Symlink],
        file_op::LINK => vec![Access::Link],
        file_op::MKNOD => vec![Access::Mknod],
        file_op::TRUNCATE => vec![Access::Truncate],
        file_op::XATTR => vec![Access::Xattr],
        file_op::UTIME => vec![Access::Utime],
        _ => Vec::new(),
    }
}

/// The report entry of a network event; `None` for binds of TCP sockets
/// (their listen is reported) and of port 0 (the kernel picks one).
pub fn endpoint(
    kind: u8,
    protocol: u8,
    local: (IpAddr, u16),
    remote: (IpAddr, u16),
) -> Option<NetworkEndpoint> {
    let protocol = match protocol {
        6 => Protocol::Tcp,
        17 => Protocol::Udp,
        _ => Protocol::Other,
    };
    let (direction, (address, port)) = match kind {
        net_kind::CONNECT | net_kind::SEND => (Direction::Outbound, remote),
        net_kind::ACCEPT => (Direction::Inbound, (remote.0, local.1)),
        net_kind::LISTEN => (Direction::Listening, local),
        net_kind::BIND if protocol != Protocol::Tcp && local.1 != 0 => {
            (Direction::Listening, local)
        }
        _ => return None,
    };
    Some(NetworkEndpoint {
        peer: None,
        direction,
        protocol,
        address: address.to_string(),
        port,
    })
}

/// Behavior of every cgroup seen, by cgroup id, plus cgroup paths learnt
/// from the kernel.
#[derive(Debug, Default)]
pub struct Aggregator {
    /// Behavior by cgroup id.
    pub cgroups: HashMap<u64, Behavior>,
    /// Cgroup paths announced by the kernel (made below a recorded cgroup).
    pub paths: HashMap<u64, String>,
    /// Parent of each announced cgroup.
    pub parents: HashMap<u64, u64>,
    /// Bounds per cgroup.
    pub limits: Limits,
    /// Records that could not be decoded.
    pub decode_errors: u64,
}

impl Aggregator {
    /// Folds one decoded event in.
    pub fn add(&mut self, event: &Event) {
        if let Event::CgroupMade {
            header,
            parent_id,
            path,
        } = event
        {
            self.paths.insert(header.cgroup_id, path.clone());
            self.parents.insert(header.cgroup_id, *parent_id);
        }
        let limits = self.limits;
        self.cgroups
            .entry(event.header().cgroup_id)
            .or_default()
            .add(event, &limits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imprint_probes::events::{EventHeader, kind};

    fn h(kind: u32, ts: u64) -> EventHeader {
        EventHeader {
            kind,
            pid: 1,
            cgroup_id: 5,
            timestamp_ns: ts,
        }
    }

    #[test]
    fn runtime_checks_before_the_first_exec_of_a_new_cgroup_are_not_needed() {
        let limits = Limits::default();
        let cap = |ts, cap| Event::Cap {
            header: h(kind::CAP, ts),
            cap,
            granted: true,
            audit: cap_audit::AUDITED,
        };
        let exec = Event::Exec {
            header: h(kind::EXEC, 20),
            path: "/usr/sbin/nginx".into(),
            args: vec!["nginx".into()],
            euid: 0,
            file_mode: 0o100755,
            cap_bset: u64::MAX,
            cap_gained: 0,
            key_hash: 0,
            truncated: false,
            process: Default::default(),
        };
        let made = Event::CgroupMade {
            header: h(kind::CGROUP_MKDIR, 1),
            parent_id: 1,
            path: "/kubepods/pod1/abc".into(),
        };
        // Born during the recording: runc init's checks (SYS_ADMIN = 21)
        // before the exec are the runtime's; CHOWN (0) after it is needed.
        let mut born = Behavior::default();
        for event in [&made, &cap(10, 21), &exec, &cap(30, 0)] {
            born.add(event, &limits);
        }
        assert!(born.capabilities[&21].runtime && !born.capabilities[&21].needed);
        assert!(born.capabilities[&0].needed && !born.capabilities[&0].runtime);
        // A capability outside the executed program's bounding set cannot
        // be the program's: runtime again.
        let mut bounded = Behavior::default();
        let narrow = Event::Exec {
            header: h(kind::EXEC, 20),
            path: "/usr/sbin/nginx".into(),
            args: vec!["nginx".into()],
            euid: 0,
            file_mode: 0o100755,
            cap_bset: 1 << 0,
            cap_gained: 0,
            key_hash: 0,
            truncated: false,
            process: Default::default(),
        };
        for event in [&made, &narrow, &cap(30, 21), &cap(31, 0)] {
            bounded.add(event, &limits);
        }
        assert!(bounded.capabilities[&21].runtime && !bounded.capabilities[&21].needed);
        assert!(bounded.capabilities[&0].needed);
        // Already running when the recording began: nothing is known of
        // its start, so every granted check counts.
        let mut running = Behavior::default();
        running.add(&cap(10, 21), &limits);
        assert!(running.capabilities[&21].needed);
        // Only the making of the cgroup: nothing to report.
        let mut empty = Behavior::default();
        empty.add(&made, &limits);
        assert!(empty.is_empty() && !born.is_empty());
    }

    /// A container making 200,000 distinct directories cannot grow its
    /// file list without bound, and a write among them is never lost.
    #[test]
    fn files_stay_bounded_and_keep_their_writes() {
        let limits = Limits::default();
        let mut behavior = Behavior::default();
        let mut open = |path: String, bits: u32| {
            behavior.add(
                &Event::File {
                    header: h(kind::FILE, 1),
                    op: file_op::OPEN,
                    access: bits,
                    path,
                    truncated: false,
                },
                &limits,
            );
        };
        for i in 0..200_000 {
            open(format!("/data/d{i}/{}/f", "x".repeat(200)), access::READ);
            if i % 1000 == 0 {
                open(format!("/t{i}/f"), access::READ);
            }
        }
        open("/var/run/app.pid".into(), access::WRITE | access::CREATE);
        let most = limits.files * 2 + TOP_LEVEL_FOLDS + 1;
        assert!(
            behavior.files.len() <= most,
            "{} files",
            behavior.files.len()
        );
        assert!(
            behavior
                .truncated
                .contains("files (folded to top-level directories)")
        );
        let written: Vec<&String> = behavior
            .files
            .iter()
            .filter(|(_, a)| a.iter().any(|a| a.is_write()))
            .map(|(p, _)| p)
            .collect();
        assert!(
            written
                .iter()
                .any(|p| ["/var/**", "/**"].contains(&p.as_str())),
            "the write is kept, folded: {written:?}"
        );
    }

    #[test]
    fn folds_events_of_each_kind() {
        let mut b = Behavior::default();
        let limits = Limits::default();
        b.add(
            &Event::Syscall {
                header: h(kind::SYSCALL, 20),
                nr: 39,
            },
            &limits,
        );
        b.add(
            &Event::Syscall {
                header: h(kind::SYSCALL, 10),
                nr: 0,
            },
            &limits,
        );
        b.add(
            &Event::File {
                header: h(kind::FILE, 30),
                op: file_op::OPEN,
                access: 3,
                path: "/proc/77/stat".into(),
                truncated: false,
            },
            &limits,
        );
        b.add(
            &Event::Exec {
                header: h(kind::EXEC, 40),
                path: "/usr/bin/passwd".into(),
                args: vec!["passwd".into()],
                euid: 0,
                file_mode: 0o104755,
                cap_bset: u64::MAX,
                cap_gained: 0,
                key_hash: 0,
                truncated: false,
                process: Default::default(),
            },
            &limits,
        );
        b.add(
            &Event::Cap {
                header: h(kind::CAP, 50),
                cap: 21,
                granted: true,
                audit: cap_audit::NOAUDIT,
            },
            &limits,
        );
        b.add(
            &Event::Cap {
                header: h(kind::CAP, 51),
                cap: 0,
                granted: true,
                audit: cap_audit::AUDITED,
            },
            &limits,
        );
        b.add(
            &Event::Cap {
                header: h(kind::CAP, 52),
                cap: 1,
                granted: false,
                audit: cap_audit::AUDITED,
            },
            &limits,
        );
        assert_eq!((b.first_seen_ns, b.last_seen_ns, b.events), (10, 52, 7));
        assert_eq!(b.syscalls, BTreeSet::from([0, 39]));
        assert_eq!(
            b.files["/proc/*/stat"],
            BTreeSet::from([Access::Read, Access::Write])
        );
        assert_eq!(b.files["/usr/bin/passwd"], BTreeSet::from([Access::Exec]));
        assert!(b.executables[&("/usr/bin/passwd".into(), vec!["passwd".into()])].setuid);
        assert_eq!(
            b.capabilities[&21],
            CapStats {
                needed: false,
                denied: false,
                probed: true,
                runtime: false,
            }
        );
        assert_eq!(
            b.capabilities[&0],
            CapStats {
                needed: true,
                denied: false,
                probed: false,
                runtime: false,
            }
        );
        assert_eq!(
            b.capabilities[&1],
            CapStats {
                needed: false,
                denied: true,
                probed: false,
                runtime: false,
            }
        );
    }

    #[test]
    fn merging_adds_counts_and_unions_the_rest() {
        let limits = Limits::default();
        let exec = |ts| Event::Exec {
            header: h(kind::EXEC, ts),
            path: "/bin/true".into(),
            args: vec!["true".into()],
            euid: 0,
            file_mode: 0o755,
            cap_bset: u64::MAX,
            cap_gained: 0,
            key_hash: 0,
            truncated: false,
            process: Default::default(),
        };
        let mut a = Behavior::default();
        a.add(&exec(5), &limits);
        a.add(
            &Event::Syscall {
                header: h(kind::SYSCALL, 6),
                nr: 1,
            },
            &limits,
        );
        let mut b = Behavior::default();
        b.add(&exec(2), &limits);
        b.add(
            &Event::Cap {
                header: h(kind::CAP, 9),
                cap: 0,
                granted: true,
                audit: cap_audit::AUDITED,
            },
            &limits,
        );
        b.drops.ringbuf = 3;
        a.merge(&b);
        let key = ("/bin/true".to_string(), vec!["true".to_string()]);
        assert_eq!(a.executables[&key].count, 2, "equal entries still add up");
        assert_eq!((a.first_seen_ns, a.last_seen_ns, a.events), (2, 9, 4));
        assert_eq!(a.syscalls, BTreeSet::from([1]));
        assert!(a.capabilities[&0].needed);
        assert_eq!(a.drops.ringbuf, 3);
    }

    #[test]
    fn privilege_gaining_and_root_executions_are_kept_past_the_bound() {
        let mut b = Behavior::default();
        let limits = Limits {
            executables: 3,
            decisive_executables: 2,
            ..Limits::default()
        };
        let exec = |path: &str, euid: u32, file_mode: u32| Event::Exec {
            header: h(kind::EXEC, 1),
            path: path.into(),
            args: vec![path.into()],
            euid,
            file_mode,
            cap_bset: u64::MAX,
            cap_gained: 0,
            key_hash: 0,
            truncated: false,
            process: Default::default(),
        };
        for i in 0..5 {
            b.add(&exec(&format!("/bin/tool-{i}"), 1000, 0o755), &limits);
        }
        assert_eq!(b.executables.len(), 3);
        b.add(&exec("/usr/bin/su", 1000, 0o4755), &limits);
        b.add(&exec("/usr/bin/wall", 1000, 0o2755), &limits);
        b.add(&exec("/bin/as-root", 0, 0o755), &limits);
        let kept: Vec<&str> = b.executables.keys().map(|(p, _)| p.as_str()).collect();
        assert!(
            kept.contains(&"/usr/bin/su") && kept.contains(&"/usr/bin/wall"),
            "{kept:?}"
        );
        assert_eq!(b.executables.len(), 5, "the decisive ones have a bound too");
        assert!(b.truncated.contains("executables"));
    }

    #[test]
    fn an_exec_as_root_or_privileged_marks_its_entry_whichever_ran_first() {
        let limits = Limits::default();
        let exec = |euid: u32, file_mode: u32, key_hash: u64| Event::Exec {
            header: h(kind::EXEC, 1),
            path: "/bin/tool".into(),
            args: vec!["tool".into()],
            euid,
            file_mode,
            cap_bset: u64::MAX,
            cap_gained: 0,
            key_hash,
            truncated: false,
            process: Default::default(),
        };
        let mut b = Behavior::default();
        b.add(&exec(1000, 0o755, 1), &limits);
        b.add(&exec(0, 0o4755, 2), &limits);
        let stats = &b.executables[&("/bin/tool".to_string(), vec!["tool".to_string()])];
        assert_eq!((stats.euid, stats.setuid, stats.count), (0, true, 2));
        // A child cgroup's root exec folds in the same way.
        let mut parent = Behavior::default();
        parent.add(&exec(1000, 0o755, 1), &limits);
        let mut child = Behavior::default();
        child.add(&exec(0, 0o755, 3), &limits);
        parent.merge(&child);
        let stats = &parent.executables[&("/bin/tool".to_string(), vec!["tool".to_string()])];
        assert_eq!((stats.euid, stats.count), (0, 2));
        // Repeats the kernel counted add to the execution they repeat.
        parent.add_exec_repeats(&HashMap::from([(3, 10), (99, 5)]));
        let stats = &parent.executables[&("/bin/tool".to_string(), vec!["tool".to_string()])];
        assert_eq!(stats.count, 12);
    }

    #[test]
    fn a_child_cgroup_whose_events_were_all_lost_still_brings_its_losses() {
        let mut parent = Behavior::default();
        parent.add(
            &Event::Syscall {
                header: h(kind::SYSCALL, 1),
                nr: 0,
            },
            &Limits::default(),
        );
        let mut child = Behavior::default();
        child.add_drops(&DropCounts {
            ringbuf: 7,
            ..DropCounts::default()
        });
        assert_eq!(child.events, 0);
        parent.merge(&child);
        assert_eq!(parent.drops.ringbuf, 7);
        assert!(parent.lost_anything());
    }

    #[test]
    fn files_fold_into_their_directory_past_the_bound() {
        let mut b = Behavior::default();
        let limits = Limits {
            files: 2,
            ..Limits::default()
        };
        for name in ["a", "b", "c", "d"] {
            let path = format!("/data/{name}");
            b.add(
                &Event::File {
                    header: h(kind::FILE, 1),
                    op: file_op::OPEN,
                    access: 1,
                    path,
                    truncated: false,
                },
                &limits,
            );
        }
        assert_eq!(
            b.files.keys().collect::<Vec<_>>(),
            ["/data/*", "/data/a", "/data/b"]
        );
        assert!(b.truncated.contains("files"));
    }

    #[test]
    fn network_directions() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let peer: IpAddr = "10.1.2.3".parse().unwrap();
        let out = endpoint(net_kind::CONNECT, 6, (any, 0), (lo, 80)).unwrap();
        assert_eq!(
            (out.direction, out.protocol, out.address.as_str(), out.port),
            (Direction::Outbound, Protocol::Tcp, "127.0.0.1", 80)
        );
        let inbound = endpoint(net_kind::ACCEPT, 6, (lo, 8080), (peer, 51000)).unwrap();
        assert_eq!(
            (inbound.direction, inbound.address.as_str(), inbound.port),
            (Direction::Inbound, "10.1.2.3", 8080)
        );
        let listen = endpoint(net_kind::LISTEN, 6, (any, 8080), (any, 0)).unwrap();
        assert_eq!(
            (listen.direction, listen.port),
            (Direction::Listening, 8080)
        );
        assert_eq!(endpoint(net_kind::BIND, 6, (any, 8080), (any, 0)), None);
        assert_eq!(endpoint(net_kind::BIND, 17, (any, 0), (any, 0)), None);
        assert_eq!(
            endpoint(net_kind::BIND, 17, (any, 53), (any, 0))
                .unwrap()
                .protocol,
            Protocol::Udp
        );
    }
}
