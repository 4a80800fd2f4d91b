//! Processes as an alert names them. The kernel keeps the process table
//! (the `processes` map: each process's parent, credentials and the key of
//! the program it runs, set at fork and at every exec), so nothing is sent
//! per fork, exec or exit; an alert reads it for its process and
//! ancestry. The programs behind the keys are those the container's exec
//! events announced. Processes the table does not know (one that began
//! before imprint, or that the table pushed out) are read from `/proc`
//! while they live.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use imprint_probes::events::ProcessInfo;

use super::alert::{Ancestor, Process};

/// Distinct executed programs remembered per container (the kernel sends
/// an exec's file and argv once, then only counts its repeats).
pub const MAX_PROGRAMS: usize = 1024;
/// Ancestors named at most.
pub const MAX_ANCESTRY: usize = 16;

/// A program and argv, shared by every process that ran it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Program {
    /// The executed file.
    pub exe: String,
    /// argv.
    pub args: Vec<String>,
}

/// The kernel's process table, as the detector reads it.
pub trait ProcessSource: Send {
    /// What the table holds of process `pid` (a thread group id).
    fn get(&self, pid: u32) -> Option<ProcessInfo>;
}

/// No process table (detection without the fork probe): only `/proc`.
#[derive(Debug, Default)]
pub struct NoProcesses;

impl ProcessSource for NoProcesses {
    fn get(&self, _: u32) -> Option<ProcessInfo> {
        None
    }
}

/// The programs one container executed, by their kernel key, bounded.
#[derive(Debug, Default)]
pub struct Programs {
    by_key: HashMap<u64, Arc<Program>>,
    order: VecDeque<u64>,
}

impl Programs {
    /// The exec event of key `key` announced `program`.
    pub fn insert(&mut self, key: u64, program: Program) {
        if !self.by_key.contains_key(&key) {
            if self.by_key.len() >= MAX_PROGRAMS
                && let Some(oldest) = self.order.pop_front()
            {
                self.by_key.remove(&oldest);
            }
            self.order.push_back(key);
        }
        self.by_key.insert(key, Arc::new(program));
    }

    /// The program of key `key`, when announced and still remembered.
    pub fn get(&self, key: u64) -> Option<&Program> {
        self.by_key.get(&key).map(Arc::as_ref)
    }

    /// Number of programs remembered.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// Looks the processes of one container up.
pub struct Lookup<'a> {
    /// The kernel's process table.
    pub table: &'a dyn ProcessSource,
    /// The container's programs.
    pub programs: &'a Programs,
    /// Whether a cgroup id is one of the container's: a table entry of
    /// another cgroup is another container's (or a reused pid's) and is
    /// not taken.
    pub ours: &'a dyn Fn(u64) -> bool,
    /// The container's path in the unified hierarchy, when known: a
    /// process `/proc` shows there is the container's.
    pub cgroup: Option<&'a str>,
}

impl Lookup<'_> {
    /// The table's entry of `pid`, if it is the container's.
    fn entry(&self, pid: u32) -> Option<ProcessInfo> {
        self.table.get(pid).filter(|p| (self.ours)(p.cgroup_id))
    }

    /// The process `pid` as the table knows it (its program from `/proc`
    /// when the table's key is unknown and it lives), else as `/proc`
    /// shows it (while it lives; `None` when neither knows it).
    pub fn process(&self, pid: u32) -> Option<Process> {
        let Some(entry) = self.entry(pid) else {
            return from_proc(pid);
        };
        let (exe, args) = match self.programs.get(entry.key_hash) {
            Some(program) => (program.exe.clone(), program.args.clone()),
            None => from_proc(pid).map(|p| (p.exe, p.args)).unwrap_or_default(),
        };
        Some(Process {
            pid,
            ppid: entry.ppid,
            uid: entry.uid,
            gid: entry.gid,
            exe,
            args,
        })
    }

    /// The ancestors of `process` in the container, nearest first: parents
    /// the table knows, or that `/proc` shows in the container's cgroup.
    pub fn ancestry(&self, process: &Process) -> Vec<Ancestor> {
        let mut ancestry = Vec::new();
        let mut ppid = process.ppid;
        while ancestry.len() < MAX_ANCESTRY && ppid > 1 {
            let parent = match self.entry(ppid) {
                Some(_) => self.process(ppid),
                None if self
                    .cgroup
                    .is_some_and(|c| proc_cgroup(ppid).as_deref() == Some(c)) =>
                {
                    from_proc(ppid)
                }
                None => None,
            };
            let Some(parent) = parent else { break };
            if ancestry.iter().any(|a: &Ancestor| a.pid == parent.pid) || parent.pid == process.pid
            {
                break;
            }
            ppid = parent.ppid;
            ancestry.push(Ancestor {
                pid: parent.pid,
                exe: parent.exe,
                args: parent.args,
            });
        }
        ancestry
    }

    /// The executed file of process `pid` (a parent), when the table and
    /// the container's programs know it.
    pub fn exe_of(&self, pid: u32) -> Option<String> {
        self.entry(pid)
            .and_then(|e| self.programs.get(e.key_hash))
            .map(|p| p.exe.clone())
    }
}

/// A live process as `/proc` shows it.
fn from_proc(pid: u32) -> Option<Process> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    };
    let args = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| {
            bytes
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    Some(Process {
        pid,
        ppid: field("PPid:"),
        uid: field("Uid:"),
        gid: field("Gid:"),
        exe,
        args,
    })
}

/// The unified-hierarchy cgroup path of a live process.
fn proc_cgroup(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

/// A process table in memory (for tests of what reads one).
#[cfg(test)]
impl ProcessSource for HashMap<u32, ProcessInfo> {
    fn get(&self, pid: u32) -> Option<ProcessInfo> {
        HashMap::get(self, &pid).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Pids far above any pid_max, so `/proc` never answers for them.
    const SH: u32 = 900_000_100;
    const NGINX: u32 = 900_000_101;
    const WORKER: u32 = 900_000_102;

    fn program(exe: &str) -> Program {
        Program {
            exe: exe.into(),
            args: vec![exe.into()],
        }
    }

    /// A lookup of `table` and `programs` for the container of cgroups
    /// `ours` says are its.
    fn lookup<'a>(
        table: &'a HashMap<u32, ProcessInfo>,
        programs: &'a Programs,
        ours: &'a dyn Fn(u64) -> bool,
    ) -> Lookup<'a> {
        Lookup {
            table,
            programs,
            ours,
            cgroup: None,
        }
    }

    fn info(key_hash: u64, cgroup_id: u64, ppid: u32) -> ProcessInfo {
        ProcessInfo {
            key_hash,
            cgroup_id,
            ppid,
            uid: 33,
            ..ProcessInfo::default()
        }
    }

    #[test]
    fn ancestry_follows_the_kernels_table_within_the_container() {
        let mut programs = Programs::default();
        programs.insert(11, program("/bin/sh"));
        programs.insert(22, program("/usr/sbin/nginx"));
        let table: HashMap<u32, ProcessInfo> = [
            (SH, info(11, 7, 1)),
            (NGINX, info(22, 7, SH)),
            // A forked worker runs its parent's program.
            (WORKER, info(22, 7, NGINX)),
        ]
        .into();
        let ours = |id: u64| id == 7;
        let view = lookup(&table, &programs, &ours);
        let worker = view.process(WORKER).unwrap();
        assert_eq!(worker.exe, "/usr/sbin/nginx");
        assert_eq!((worker.uid, worker.ppid), (33, NGINX));
        let ancestry = view.ancestry(&worker);
        let chain: Vec<(u32, &str)> = ancestry.iter().map(|a| (a.pid, a.exe.as_str())).collect();
        assert_eq!(chain, [(NGINX, "/usr/sbin/nginx"), (SH, "/bin/sh")]);
        assert_eq!(view.exe_of(SH).as_deref(), Some("/bin/sh"));

        // The same table seen from another container: nothing of it.
        let theirs = |id: u64| id == 8;
        let other = lookup(&table, &programs, &theirs);
        assert!(other.process(WORKER).is_none());
        assert!(other.exe_of(SH).is_none());
    }

    #[test]
    fn a_program_pushed_out_leaves_the_process_without_a_name() {
        let mut programs = Programs::default();
        programs.insert(1, program("/bin/first"));
        for key in 2..=MAX_PROGRAMS as u64 + 1 {
            programs.insert(key, program("/bin/other"));
        }
        assert_eq!(programs.len(), MAX_PROGRAMS);
        assert!(programs.get(1).is_none(), "the oldest is forgotten");
        let table: HashMap<u32, ProcessInfo> = [(SH, info(1, 7, 1))].into();
        let ours = |_: u64| true;
        let view = lookup(&table, &programs, &ours);
        let p = view.process(SH).unwrap();
        assert_eq!((p.exe.as_str(), p.ppid), ("", 1));
    }

    #[test]
    fn a_loop_in_parents_ends() {
        let programs = Programs::default();
        let table: HashMap<u32, ProcessInfo> =
            [(SH, info(0, 7, NGINX)), (NGINX, info(0, 7, SH))].into();
        let ours = |_: u64| true;
        let view = lookup(&table, &programs, &ours);
        let p = view.process(SH).unwrap();
        assert!(view.ancestry(&p).len() <= 2);
    }
}
