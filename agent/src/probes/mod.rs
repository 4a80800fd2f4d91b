//! Loading and attaching the probes, with feature detection: every hook
//! that cannot be used is named with what is lost, and recording goes on
//! with the rest.

pub mod arguments;
mod file_changes;
mod kallsyms;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use aya::maps::{CgrpStorage, HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::{BtfTracePoint, CgroupAttachMode, CgroupSockAddr, FExit, TracePoint};
use aya::{Btf, Ebpf, EbpfLoader, Pod};
use imprint_probes::events::{
    CgroupState, Counters, DropCounts, ExecKey, ProcessInfo, cgroup_flags,
};

use crate::capture::aggregate::Behavior;
use imprint_probes::{OBJECT, maps, programs};
use tracing::{debug, info, warn};

use crate::detect::process::ProcessSource;
use crate::names::Arch;

/// Errors that stop recording altogether.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The kernel has no BTF, which CO-RE needs.
    #[error(
        "the kernel exposes no BTF at /sys/kernel/btf/vmlinux (needs CONFIG_DEBUG_INFO_BTF=y): {0}"
    )]
    NoBtf(String),
    /// The object could not be loaded at all.
    #[error("loading the BPF object failed (are you root, with CAP_BPF and CAP_PERFMON?): {0}")]
    Load(String),
    /// A map the loader needs is missing or of the wrong type.
    #[error("BPF map {0}: {1}")]
    Map(&'static str, String),
    /// Not one syscall hook could be attached.
    #[error("the syscall hook could not be attached, nothing can be recorded: {0}")]
    NoSyscallHook(String),
}

/// How to load the probes.
#[derive(Clone, Debug, Default)]
pub struct ProbeConfig {
    /// Record every cgroup, instead of only those marked with [`Probes::record_cgroup`].
    pub record_all: bool,
    /// Which hook sees capability checks.
    pub capability_hook: CapabilityHook,
    /// Cgroups (directory, id) never recorded, marked before any hook is
    /// attached: imprint's own.
    pub ignore: Vec<(PathBuf, u64)>,
    /// Send forks, exits and repeated execs, for a process table
    /// (detection); the fork and exit hooks are attached only then.
    pub track_processes: bool,
}

/// The hook for capability checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CapabilityHook {
    /// The tracepoint (Linux >= 6.14), else fexit.
    #[default]
    Auto,
    /// Only the `capability/cap_capable` tracepoint.
    Tracepoint,
    /// Only `fexit/cap_capable` (needs BPF trampolines).
    Fexit,
}

/// A hook that could not be used, and what that costs.
#[derive(Clone, Debug)]
pub struct Unavailable {
    /// The hook (program section).
    pub hook: String,
    /// What the reports will lack.
    pub lost: &'static str,
    /// The kernel's or loader's error.
    pub error: String,
}

/// What the kernel counted per cgroup instead of sending it, read at once.
#[derive(Clone, Debug, Default)]
pub struct KernelCounts {
    /// Losses, per cgroup id.
    pub drops: HashMap<u64, DropCounts>,
    /// Repeats of execs already sent, per cgroup id and exec key.
    pub exec_repeats: HashMap<u64, HashMap<u64, u64>>,
}

impl KernelCounts {
    /// Folds what the kernel counted of cgroup `id` into its behavior.
    pub fn apply(&self, id: u64, behavior: &mut Behavior) {
        if let Some(d) = self.drops.get(&id) {
            behavior.add_drops(d);
        }
        if let Some(r) = self.exec_repeats.get(&id) {
            behavior.add_exec_repeats(r);
        }
    }
}

/// Processes the kernel's process table holds at most (exited ones stay
/// until newer ones push them out).
pub const PROCESS_TABLE_ENTRIES: u32 = 32_768;

/// The kernel's process table, read by the detector for an alert.
pub struct KernelProcesses(BpfHashMap<MapData, u32, PodProcess>);

impl ProcessSource for KernelProcesses {
    fn get(&self, pid: u32) -> Option<ProcessInfo> {
        self.0.get(&pid, 0).ok().map(|p| p.0)
    }
}

/// A handle on the kernel's process table, filled once the probes are
/// loaded (until then, and when they could not give it, it knows nothing).
#[derive(Clone, Default)]
pub struct ProcessTable(Arc<OnceLock<KernelProcesses>>);

impl ProcessTable {
    /// Hands the loaded table over (a second one is ignored).
    pub fn fill(&self, kernel: KernelProcesses) {
        let _ = self.0.set(kernel);
    }

    /// Whether the table was handed over.
    pub fn is_filled(&self) -> bool {
        self.0.get().is_some()
    }
}

impl std::fmt::Debug for ProcessTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessTable")
            .field("filled", &self.is_filled())
            .finish()
    }
}

impl ProcessSource for ProcessTable {
    fn get(&self, pid: u32) -> Option<ProcessInfo> {
        self.0.get()?.get(pid)
    }
}

/// Loaded and attached probes.
pub struct Probes {
    ebpf: Ebpf,
    /// Hooks attached, by name.
    pub attached: Vec<String>,
    /// Hooks that could not be used.
    pub unavailable: Vec<Unavailable>,
}

#[repr(transparent)]
#[derive(Clone, Copy)]
struct PodState(CgroupState);
// SAFETY: a plain `#[repr(C)]` struct of integers, no padding holes.
unsafe impl Pod for PodState {}

#[repr(transparent)]
#[derive(Clone, Copy)]
struct PodDrops(DropCounts);
// SAFETY: a plain `#[repr(C)]` struct of u64s.
unsafe impl Pod for PodDrops {}

#[repr(transparent)]
#[derive(Clone, Copy)]
struct PodExecKey(ExecKey);
// SAFETY: a plain `#[repr(C)]` struct of two u64s.
unsafe impl Pod for PodExecKey {}

#[repr(transparent)]
#[derive(Clone, Copy)]
struct PodProcess(ProcessInfo);
// SAFETY: a plain `#[repr(C)]` struct of integers, padding explicit.
unsafe impl Pod for PodProcess {}

#[repr(transparent)]
#[derive(Clone, Copy)]
struct PodCounters(Counters);
// SAFETY: a plain `#[repr(C)]` struct of u64s.
unsafe impl Pod for PodCounters {}

/// The id of the cgroup at the top of the cgroup2 hierarchy mounted at
/// `root` when that is not the machine's top (a cgroup namespace, as in a
/// kind node): recording every cgroup then ignores the cgroups outside it,
/// which this process could never name. 0 (no limit) at the machine's top
/// (id 1) or when it cannot be read.
fn view_cgroup_id(root: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(root).map(|m| m.ino()) {
        Ok(1) | Err(_) => 0,
        Ok(id) => id,
    }
}

impl Probes {
    /// Loads the object and attaches every hook the kernel allows.
    /// `cgroup_root` is the mount point of the unified hierarchy, where the
    /// socket-address programs attach.
    pub fn load(config: &ProbeConfig, cgroup_root: &Path) -> Result<Self, ProbeError> {
        let btf = Btf::from_sys_fs().map_err(|e| ProbeError::NoBtf(e.to_string()))?;
        ensure_tracefs();
        let ranges = kallsyms::noaudit_ranges();
        let audit_classes_known = ranges.is_some();
        let ranges = ranges.unwrap_or_default();
        let record_all: u32 = config.record_all.into();
        let view = view_cgroup_id(cgroup_root);
        let track_processes: u32 = config.track_processes.into();
        let arch =
            Arch::native().ok_or_else(|| ProbeError::Load("unsupported architecture".into()))?;
        let file_changes = file_changes::table(arch);
        let arguments = arguments::table(arch);
        let mut ebpf = EbpfLoader::new()
            .btf(Some(&btf))
            .override_global(maps::RECORD_ALL_CGROUPS, &record_all, true)
            .override_global(maps::VIEW_CGROUP_ID, &view, true)
            .override_global(maps::TRACK_PROCESSES, &track_processes, true)
            // The process table takes kernel memory only while it is kept.
            .map_max_entries(
                maps::PROCESSES,
                if config.track_processes {
                    PROCESS_TABLE_ENTRIES
                } else {
                    1
                },
            )
            .override_global(maps::FILE_CHANGE_SYSCALLS, &file_changes, true)
            .override_global(maps::ARG_SYSCALLS, &arguments, true)
            .override_global(maps::NOAUDIT_START, &ranges.start, true)
            .override_global(maps::NOAUDIT_END, &ranges.end, true)
            .override_global(maps::NOAUDIT_COUNT, &ranges.count, true)
            .load(OBJECT)
            .map_err(|e| ProbeError::Load(error_chain(&e)))?;
        if !audit_classes_known {
            warn!(
                "kernel symbols are hidden (/proc/kallsyms): granted capability checks count as needed, \
                 including no-audit probes"
            );
        }
        for (dir, id) in &config.ignore {
            mark(&mut ebpf, dir, *id, cgroup_flags::IGNORED)?;
        }
        let mut attacher = Attacher {
            ebpf: &mut ebpf,
            btf: &btf,
            attached: Vec::new(),
            unavailable: Vec::new(),
        };
        if let Err(e) = attacher.btf_tracepoint(programs::SYS_ENTER, "sys_enter") {
            return Err(ProbeError::NoSyscallHook(e));
        }
        attacher.try_btf_tracepoint(programs::CGROUP_MKDIR, "cgroup_mkdir", "cgroups made below a recorded cgroup are not followed (containers started after the recording began)");
        attacher.try_btf_tracepoint(
            programs::CGROUP_RMDIR,
            "cgroup_rmdir",
            "removed cgroups are not announced (reports close at the end only)",
        );
        attacher.try_btf_tracepoint(programs::EXEC, "sched_process_exec", "executed programs");
        if config.track_processes {
            attacher.try_btf_tracepoint(
                programs::FORK,
                "sched_process_fork",
                "forked processes (alerts name fewer ancestors)",
            );
        }
        attacher.capabilities(config.capability_hook);
        attacher.try_btf_tracepoint(
            programs::SOCK_STATE,
            "inet_sock_set_state",
            "TCP listening sockets and inbound accepts",
        );
        for name in programs::SOCK_ADDR {
            if let Err(e) = attacher.sock_addr(name, cgroup_root) {
                attacher.unavailable.push(Unavailable {
                    hook: name.to_string(),
                    lost: "outbound connections, UDP sends or binds of this family",
                    error: e,
                });
            }
        }
        for (name, tracepoint) in programs::OPENS {
            attacher.try_tracepoint(name, tracepoint, "files opened through this syscall");
        }
        let Attacher {
            attached,
            unavailable,
            ..
        } = attacher;
        for missing in &unavailable {
            info!(hook = %missing.hook, lost = missing.lost, error = %missing.error, "hook unavailable");
        }
        debug!(hooks = ?attached, "probes attached");
        Ok(Probes {
            ebpf,
            attached,
            unavailable,
        })
    }

    /// Records the cgroup at `dir` (id `id`) and every cgroup made below it.
    pub fn record_cgroup(&mut self, dir: &Path, id: u64) -> Result<(), ProbeError> {
        mark(&mut self.ebpf, dir, id, cgroup_flags::RECORDED)
    }

    /// Stops recording the cgroup at `dir` (id `id`): the hooks send
    /// nothing more of it. Cgroups made below it are not affected.
    pub fn ignore_cgroup(&mut self, dir: &Path, id: u64) -> Result<(), ProbeError> {
        mark(&mut self.ebpf, dir, id, cgroup_flags::IGNORED)
    }

    /// Takes the event ring buffer (once).
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, ProbeError> {
        let map = self.ebpf.take_map(maps::EVENTS).ok_or(ProbeError::Map(
            maps::EVENTS,
            "missing or already taken".into(),
        ))?;
        RingBuf::try_from(map).map_err(|e| ProbeError::Map(maps::EVENTS, e.to_string()))
    }

    /// Losses counted in the kernel, per cgroup id.
    fn drops(&self) -> HashMap<u64, DropCounts> {
        let Some(map) = self.ebpf.map(maps::CGROUP_DROPS) else {
            return HashMap::new();
        };
        let Ok(drops) = BpfHashMap::<_, u64, PodDrops>::try_from(map) else {
            return HashMap::new();
        };
        drops.iter().flatten().map(|(id, d)| (id, d.0)).collect()
    }

    /// Repeats of execs the kernel did not send again, per cgroup id and
    /// exec key. An entry the kernel evicted takes its repeats with it:
    /// these are lower bounds.
    fn exec_repeats(&self) -> HashMap<u64, HashMap<u64, u64>> {
        let mut repeats: HashMap<u64, HashMap<u64, u64>> = HashMap::new();
        let Some(map) = self.ebpf.map(maps::EXECS_SEEN) else {
            return repeats;
        };
        let Ok(seen) = BpfHashMap::<_, PodExecKey, u64>::try_from(map) else {
            return repeats;
        };
        for (key, count) in seen.iter().flatten() {
            if count > 0 {
                repeats
                    .entry(key.0.cgroup_id)
                    .or_default()
                    .insert(key.0.key_hash, count);
            }
        }
        repeats
    }

    /// Takes the kernel's process table (once; `None` once taken). Without
    /// process tracking it holds nothing (one entry, never written).
    pub fn take_processes(&mut self) -> Option<KernelProcesses> {
        let map = self.ebpf.take_map(maps::PROCESSES)?;
        BpfHashMap::<_, u32, PodProcess>::try_from(map)
            .ok()
            .map(KernelProcesses)
    }

    /// What the kernel counted of every cgroup, read at once.
    pub fn kernel_counts(&self) -> KernelCounts {
        KernelCounts {
            drops: self.drops(),
            exec_repeats: self.exec_repeats(),
        }
    }

    /// Deletes the loss counters of a cgroup that is gone (its report
    /// has them), so the map never fills with the dead.
    pub fn forget_drops(&mut self, id: u64) {
        if let Some(map) = self.ebpf.map_mut(maps::CGROUP_DROPS)
            && let Ok(mut drops) = BpfHashMap::<_, u64, PodDrops>::try_from(map)
        {
            // Absent when nothing was lost: nothing to delete.
            let _ = drops.remove(&id);
        }
    }

    /// The global counters, summed over CPUs.
    pub fn counters(&self) -> Counters {
        let mut total = Counters::default();
        let Some(map) = self.ebpf.map(maps::COUNTERS) else {
            return total;
        };
        let Ok(array) = PerCpuArray::<_, PodCounters>::try_from(map) else {
            return total;
        };
        if let Ok(per_cpu) = array.get(&0, 0) {
            for cpu in per_cpu.iter() {
                for (sum, value) in total.values.iter_mut().zip(cpu.0.values) {
                    *sum += value;
                }
            }
        }
        total
    }
}

/// Sets `flags` for the cgroup at `dir` in both the id map and the cgroup
/// storage the syscall hook reads.
fn mark(ebpf: &mut Ebpf, dir: &Path, id: u64, flags: u32) -> Result<(), ProbeError> {
    let map_error =
        |name: &'static str| move |e: aya::maps::MapError| ProbeError::Map(name, e.to_string());
    let mut ids: BpfHashMap<_, u64, u32> = BpfHashMap::try_from(
        ebpf.map_mut(maps::CGROUP_IDS)
            .ok_or(ProbeError::Map(maps::CGROUP_IDS, "missing".into()))?,
    )
    .map_err(map_error(maps::CGROUP_IDS))?;
    ids.insert(id, flags, 0)
        .map_err(map_error(maps::CGROUP_IDS))?;
    let dir_file = File::open(dir).map_err(|e| {
        ProbeError::Map(maps::CGROUP_STATES, format!("open {}: {e}", dir.display()))
    })?;
    let mut states: CgrpStorage<_, PodState> = CgrpStorage::try_from(
        ebpf.map_mut(maps::CGROUP_STATES)
            .ok_or(ProbeError::Map(maps::CGROUP_STATES, "missing".into()))?,
    )
    .map_err(map_error(maps::CGROUP_STATES))?;
    let state = CgroupState {
        flags,
        ..CgroupState::default()
    };
    states
        .insert(&dir_file, PodState(state), 0)
        .map_err(map_error(maps::CGROUP_STATES))?;
    Ok(())
}

struct Attacher<'a> {
    ebpf: &'a mut Ebpf,
    btf: &'a Btf,
    attached: Vec<String>,
    unavailable: Vec<Unavailable>,
}

impl Attacher<'_> {
    fn btf_tracepoint(&mut self, name: &str, tracepoint: &str) -> Result<(), String> {
        let btf = self.btf;
        let program: &mut BtfTracePoint = self.program(name)?;
        program.load(tracepoint, btf).map_err(|e| error_chain(&e))?;
        program.attach().map_err(|e| error_chain(&e))?;
        self.attached.push(format!("tp_btf/{tracepoint}"));
        Ok(())
    }

    fn try_btf_tracepoint(&mut self, name: &str, tracepoint: &str, lost: &'static str) {
        if let Err(error) = self.btf_tracepoint(name, tracepoint) {
            self.unavailable.push(Unavailable {
                hook: format!("tp_btf/{tracepoint}"),
                lost,
                error,
            });
        }
    }

    fn capabilities(&mut self, hook: CapabilityHook) {
        let tracepoint = || (programs::CAP_CAPABLE, "tp_btf/cap_capable");
        let mut errors = Vec::new();
        if hook != CapabilityHook::Fexit {
            match self.btf_tracepoint(tracepoint().0, "cap_capable") {
                Ok(()) => return,
                Err(e) => errors.push(format!("{}: {e}", tracepoint().1)),
            }
        }
        if hook != CapabilityHook::Tracepoint {
            match self.fexit(programs::CAP_CAPABLE_FEXIT, "cap_capable") {
                Ok(()) => return,
                Err(e) => errors.push(format!("fexit/cap_capable: {e}")),
            }
        }
        self.unavailable.push(Unavailable {
            hook: "cap_capable".into(),
            lost: "capability checks (the capability set cannot be recommended)",
            error: errors.join("; "),
        });
    }

    fn fexit(&mut self, name: &str, function: &str) -> Result<(), String> {
        let btf = self.btf;
        let program: &mut FExit = self.program(name)?;
        program.load(function, btf).map_err(|e| error_chain(&e))?;
        program.attach().map_err(|e| error_chain(&e))?;
        self.attached.push(format!("fexit/{function}"));
        Ok(())
    }

    fn try_tracepoint(&mut self, name: &str, tracepoint: &str, lost: &'static str) {
        let result = (|| {
            let program: &mut TracePoint = self.program(name)?;
            program.load().map_err(|e| error_chain(&e))?;
            program
                .attach("syscalls", tracepoint)
                .map_err(|e| error_chain(&e))?;
            Ok::<_, String>(())
        })();
        match result {
            Ok(()) => self
                .attached
                .push(format!("tracepoint/syscalls/{tracepoint}")),
            Err(error) => self.unavailable.push(Unavailable {
                hook: format!("tracepoint/syscalls/{tracepoint}"),
                lost,
                error,
            }),
        }
    }

    fn sock_addr(&mut self, name: &str, cgroup_root: &Path) -> Result<(), String> {
        let cgroup =
            File::open(cgroup_root).map_err(|e| format!("open {}: {e}", cgroup_root.display()))?;
        let program: &mut CgroupSockAddr = self.program(name)?;
        program.load().map_err(|e| error_chain(&e))?;
        program
            .attach(&cgroup, CgroupAttachMode::Single)
            .map_err(|e| error_chain(&e))?;
        self.attached.push(name.to_string());
        Ok(())
    }

    fn program<T>(&mut self, name: &str) -> Result<&mut T, String>
    where
        for<'p> &'p mut T:
            TryFrom<&'p mut aya::programs::Program, Error = aya::programs::ProgramError>,
    {
        let program = self
            .ebpf
            .program_mut(name)
            .ok_or_else(|| format!("program {name} is not in the object"))?;
        program
            .try_into()
            .map_err(|e: aya::programs::ProgramError| e.to_string())
    }
}

/// Mounts tracefs at /sys/kernel/tracing when no tracefs is reachable, since
/// syscall tracepoints are attached through it. Failure only costs those hooks.
fn ensure_tracefs() {
    let reachable = [
        "/sys/kernel/tracing/events",
        "/sys/kernel/debug/tracing/events",
    ]
    .iter()
    .any(|p| Path::new(p).exists());
    if reachable {
        return;
    }
    let target = c"/sys/kernel/tracing";
    // SAFETY: plain mount(2) with static NUL-terminated strings.
    let rc = unsafe {
        libc::mount(
            c"tracefs".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        warn!(error = %std::io::Error::last_os_error(), "tracefs is not mounted and mounting it failed");
    }
}

/// Gives the memory freed after loading (the kernel's parsed BTF, tens of
/// MiB) back to the system: the allocator would otherwise keep it, and a
/// node agent's resident memory is what a DaemonSet's limit counts.
pub fn release_load_memory() {
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// An error with its sources, on one line; a verifier log is cut to its
/// last line, which says why the program was rejected.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    match text.split_once("Verifier output:") {
        Some((head, log)) => {
            let head = head.trim_end().trim_end_matches('.');
            let last = log
                .lines()
                .rev()
                .map(str::trim)
                // The reason, not the statistics the log ends with.
                .filter(|l| {
                    !["processed ", "verification time", "stack depth"]
                        .iter()
                        .any(|stat| l.starts_with(stat))
                })
                .find(|l| l.len() > 2 && !head.ends_with(l.trim_start_matches(": ")));
            match last {
                Some(last) => format!("{head} (verifier: {last})"),
                None => head.to_string(),
            }
        }
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[test]
    fn a_verifier_log_is_cut_to_its_reason() {
        let error = std::io::Error::other(
            "the BPF_PROG_LOAD syscall failed. Verifier output: 0: (bf) r6 = r1\n\
             21: R0 unbounded memory access, make sure to bounds check any such access\n\
             processed 1102 insns (limit 1000000) max_states_per_insn 2\n",
        );
        assert_eq!(
            error_chain(&error),
            "the BPF_PROG_LOAD syscall failed (verifier: 21: R0 unbounded memory access, \
             make sure to bounds check any such access)"
        );
    }
}
