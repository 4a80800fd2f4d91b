//! A bounded table of one container's processes, fed by the kernel's exec,
//! fork, exit and repeated-exec events, so an alert names the process and
//! its ancestry up to the container's first process. Processes that began
//! before the table (a container started before imprint) are read from
//! `/proc` while they live.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::alert::{Ancestor, Process};

/// Processes kept per container (live and recently exited).
pub const MAX_PROCESSES: usize = 4096;
/// Exited processes kept for the ancestry of their children and of their
/// events still in the ring buffer.
pub const MAX_EXITED: usize = 256;
/// Distinct executed programs remembered per container (the kernel sends
/// an exec's file and argv once, then only its key).
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

/// One process.
#[derive(Clone, Debug, Default)]
struct Entry {
    ppid: u32,
    uid: u32,
    gid: u32,
    program: Option<Arc<Program>>,
    exited: bool,
}

/// The processes of one container.
#[derive(Debug, Default)]
pub struct ProcessTable {
    entries: HashMap<u32, Entry>,
    exited: VecDeque<u32>,
    programs: HashMap<u64, Arc<Program>>,
    program_order: VecDeque<u64>,
    /// Processes forgotten because the table was full.
    pub evicted: u64,
}

impl ProcessTable {
    /// `pid` executed `program` (its kernel key `key`): a new exec event.
    pub fn exec(&mut self, pid: u32, ppid: u32, uid: u32, gid: u32, key: u64, program: Program) {
        let program = Arc::new(program);
        if !self.programs.contains_key(&key) {
            if self.programs.len() >= MAX_PROGRAMS
                && let Some(oldest) = self.program_order.pop_front()
            {
                self.programs.remove(&oldest);
            }
            self.program_order.push_back(key);
        }
        self.programs.insert(key, program.clone());
        self.put(pid, ppid, uid, gid, Some(program));
    }

    /// `pid` executed again the program of kernel key `key`.
    pub fn exec_again(&mut self, pid: u32, ppid: u32, uid: u32, gid: u32, key: u64) {
        let program = self.programs.get(&key).cloned();
        self.put(pid, ppid, uid, gid, program);
    }

    /// `pid` was forked by `ppid`: it runs its parent's program.
    pub fn fork(&mut self, pid: u32, ppid: u32, uid: u32, gid: u32) {
        let program = self.entries.get(&ppid).and_then(|p| p.program.clone());
        self.put(pid, ppid, uid, gid, program);
    }

    /// `pid` exited: kept a while for what is still in flight of it.
    pub fn exit(&mut self, pid: u32) {
        let Some(entry) = self.entries.get_mut(&pid) else {
            return;
        };
        entry.exited = true;
        self.exited.push_back(pid);
        while self.exited.len() > MAX_EXITED {
            let Some(old) = self.exited.pop_front() else {
                break;
            };
            // A pid forked again since is another, live process.
            if self.entries.get(&old).is_some_and(|e| e.exited) {
                self.entries.remove(&old);
            }
        }
    }

    /// Number of processes kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no process is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keeps `pid` as a live process, evicting one when the table is full.
    fn put(&mut self, pid: u32, ppid: u32, uid: u32, gid: u32, program: Option<Arc<Program>>) {
        let entry = Entry {
            ppid,
            uid,
            gid,
            program,
            exited: false,
        };
        if !self.entries.contains_key(&pid) && self.entries.len() >= MAX_PROCESSES {
            // Exited processes go first, then any.
            let victim = self
                .exited
                .pop_front()
                .or_else(|| self.entries.keys().next().copied());
            if let Some(victim) = victim {
                self.entries.remove(&victim);
                self.evicted += 1;
            }
        }
        self.entries.insert(pid, entry);
    }

    /// The process `pid` as the table knows it, else as `/proc` shows it
    /// (while it lives; `None` when neither knows it).
    pub fn process(&self, pid: u32) -> Option<Process> {
        match self.entries.get(&pid) {
            Some(entry) => {
                let program = entry.program.as_deref().cloned().unwrap_or_default();
                Some(Process {
                    pid,
                    ppid: entry.ppid,
                    uid: entry.uid,
                    gid: entry.gid,
                    exe: program.exe,
                    args: program.args,
                })
            }
            None => from_proc(pid),
        }
    }

    /// The ancestors of `pid` in the container, nearest first: parents the
    /// table knows, or that `/proc` shows in the same cgroup (`cgroup`: the
    /// container's path in the unified hierarchy, when known).
    pub fn ancestry(&self, process: &Process, cgroup: Option<&str>) -> Vec<Ancestor> {
        let mut ancestry = Vec::new();
        let mut ppid = process.ppid;
        while ancestry.len() < MAX_ANCESTRY && ppid > 1 {
            let parent = match self.entries.get(&ppid) {
                Some(_) => self.process(ppid),
                None if cgroup.is_some_and(|c| proc_cgroup(ppid).as_deref() == Some(c)) => {
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

    /// The executed file of `pid`'s parent, when known.
    pub fn parent_exe(&self, ppid: u32) -> Option<String> {
        self.entries
            .get(&ppid)
            .and_then(|e| e.program.as_ref())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn program(exe: &str) -> Program {
        Program {
            exe: exe.into(),
            args: vec![exe.into()],
        }
    }

    #[test]
    fn ancestry_follows_forks_and_repeated_execs() {
        let mut table = ProcessTable::default();
        table.exec(100, 1, 0, 0, 11, program("/bin/sh"));
        table.fork(101, 100, 0, 0);
        table.exec(101, 100, 0, 0, 22, program("/usr/sbin/nginx"));
        table.fork(102, 101, 33, 33);
        // A second worker runs nginx again: only its key comes.
        table.fork(103, 101, 33, 33);
        table.exec_again(103, 101, 33, 33, 22);
        let worker = table.process(103).unwrap();
        assert_eq!(worker.exe, "/usr/sbin/nginx");
        assert_eq!((worker.uid, worker.ppid), (33, 101));
        let forked = table.process(102).unwrap();
        assert_eq!(
            forked.exe, "/usr/sbin/nginx",
            "a fork runs its parent's program"
        );
        let ancestry = table.ancestry(&worker, None);
        let pids: Vec<u32> = ancestry.iter().map(|a| a.pid).collect();
        assert_eq!(pids, [101, 100]);
        assert_eq!(ancestry[1].exe, "/bin/sh");
    }

    #[test]
    fn exited_processes_stay_for_a_while_then_go() {
        let mut table = ProcessTable::default();
        table.exec(10, 1, 0, 0, 1, program("/bin/sh"));
        table.fork(11, 10, 0, 0);
        table.exit(10);
        // Its child still names it.
        let child = table.process(11).unwrap();
        assert_eq!(table.ancestry(&child, None)[0].pid, 10);
        for pid in 1000..1000 + MAX_EXITED as u32 {
            table.fork(pid, 11, 0, 0);
            table.exit(pid);
        }
        assert!(
            !table.entries.contains_key(&10),
            "the oldest exited is forgotten"
        );
        assert!(table.len() <= MAX_EXITED + 1);
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut table = ProcessTable::default();
        for pid in 2..(MAX_PROCESSES as u32 + 500) {
            table.fork(pid, 1, 0, 0);
        }
        assert_eq!(table.len(), MAX_PROCESSES);
        assert_eq!(table.evicted, 498);
    }

    #[test]
    fn a_loop_in_parents_ends() {
        let mut table = ProcessTable::default();
        table.fork(20, 21, 0, 0);
        table.fork(21, 20, 0, 0);
        let p = table.process(20).unwrap();
        assert!(table.ancestry(&p, None).len() <= 2);
    }
}
