//! imprint's eBPF probes.
//!
//! The C sources live in `bpf/`, one file per concern; `build.sh` compiles
//! them with clang-19 and links them into `imprint.bpf.o`, which is committed
//! and embedded here so that building imprint needs no C toolchain.
//! [`events`] holds the `#[repr(C)]` mirrors of the structs the probes send.

pub mod events;

/// Bytes aligned for the ELF parser (the object is read in place).
#[repr(C, align(8))]
struct Aligned<T: ?Sized> {
    bytes: T,
}

static OBJECT_ALIGNED: &Aligned<[u8]> = &Aligned {
    bytes: *include_bytes!("../imprint.bpf.o"),
};

/// The compiled, linked BPF object with every imprint program and map.
pub static OBJECT: &[u8] = &OBJECT_ALIGNED.bytes;

static EMPTY_ALIGNED: &Aligned<[u8]> = &Aligned {
    bytes: *include_bytes!("../bench/empty.bpf.o"),
};

/// Empty programs on the syscall-entry and openat-exit hooks, the floor the
/// overhead benchmark measures against (`empty_sys_enter`, `empty_exit_openat`).
pub static EMPTY_OBJECT: &[u8] = &EMPTY_ALIGNED.bytes;

/// Program names in the object, by concern, as the loader attaches them.
pub mod programs {
    /// `tp_btf/sys_enter`: per-cgroup syscall bitmap.
    pub const SYS_ENTER: &str = "imprint_sys_enter";
    /// `tp_btf/cgroup_mkdir`: records cgroups made below recorded ones.
    pub const CGROUP_MKDIR: &str = "imprint_cgroup_mkdir";
    /// `tp_btf/cgroup_rmdir`: announces removed recorded cgroups.
    pub const CGROUP_RMDIR: &str = "imprint_cgroup_rmdir";
    /// `tp_btf/sched_process_exec`: programs executed.
    pub const EXEC: &str = "imprint_exec";
    /// `tp_btf/sched_process_fork`: processes forked (tracked processes only).
    pub const FORK: &str = "imprint_fork";
    /// `tp_btf/cap_capable`: capability checks (Linux >= 6.14).
    pub const CAP_CAPABLE: &str = "imprint_cap_capable";
    /// `fexit/cap_capable`: capability checks on kernels with trampolines.
    pub const CAP_CAPABLE_FEXIT: &str = "imprint_cap_capable_exit";
    /// `tp_btf/inet_sock_set_state`: TCP listen and inbound accepts.
    pub const SOCK_STATE: &str = "imprint_sock_state";
    /// Cgroup socket-address hooks: (program, attach type name).
    pub const SOCK_ADDR: [&str; 6] = [
        "imprint_connect4",
        "imprint_connect6",
        "imprint_sendmsg4",
        "imprint_sendmsg6",
        "imprint_bind4",
        "imprint_bind6",
    ];
    /// `tracepoint/syscalls/sys_exit_*`: opens, resolved from the new fd.
    pub const OPENS: [(&str, &str); 4] = [
        ("imprint_exit_openat", "sys_exit_openat"),
        ("imprint_exit_openat2", "sys_exit_openat2"),
        ("imprint_exit_open", "sys_exit_open"),
        ("imprint_exit_creat", "sys_exit_creat"),
    ];
}

/// Map and global names in the object.
pub mod maps {
    /// Ring buffer of events.
    pub const EVENTS: &str = "events";
    /// `BPF_MAP_TYPE_CGRP_STORAGE` with the per-cgroup syscall bitmap.
    pub const CGROUP_STATES: &str = "cgroup_states";
    /// Recorded or ignored cgroups by id.
    pub const CGROUP_IDS: &str = "cgroup_ids";
    /// Per-CPU global counters.
    pub const COUNTERS: &str = "counters";
    /// Repeats of execs already sent, per (cgroup, exec hash).
    pub const EXECS_SEEN: &str = "execs_seen";
    /// Per-cgroup drop counters.
    pub const CGROUP_DROPS: &str = "cgroup_drops";
    /// The kernel's process table ([`crate::events::ProcessInfo`] by pid).
    pub const PROCESSES: &str = "processes";
    /// Load-time setting: keep the process table.
    pub const TRACK_PROCESSES: &str = "track_processes";
    /// Load-time setting: record every cgroup.
    pub const RECORD_ALL_CGROUPS: &str = "record_all_cgroups";
    /// Load-time setting: the cgroup every recorded one descends from when
    /// recording every cgroup (0: no limit).
    pub const VIEW_CGROUP_ID: &str = "view_cgroup_id";
    /// Load-time setting: kernel text ranges of no-audit capability callers.
    pub const NOAUDIT_START: &str = "noaudit_start";
    /// End addresses matching [`NOAUDIT_START`].
    pub const NOAUDIT_END: &str = "noaudit_end";
    /// Number of valid entries in the no-audit ranges.
    pub const NOAUDIT_COUNT: &str = "noaudit_count";
    /// Load-time setting: per syscall number, the file change it makes.
    pub const FILE_CHANGE_SYSCALLS: &str = "file_change_syscalls";
    /// Load-time setting: per syscall number, the argument recorded.
    pub const ARG_SYSCALLS: &str = "arg_syscalls";
    /// Argument values already sent, per (cgroup, syscall, value).
    pub const ARGS_SEEN: &str = "args_seen";
}
