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
    /// `tracepoint/syscalls/sys_enter_*`: file mutations.
    pub const MUTATIONS: [(&str, &str); 16] = [
        ("imprint_enter_unlink", "sys_enter_unlink"),
        ("imprint_enter_unlinkat", "sys_enter_unlinkat"),
        ("imprint_enter_rmdir", "sys_enter_rmdir"),
        ("imprint_enter_mkdir", "sys_enter_mkdir"),
        ("imprint_enter_mkdirat", "sys_enter_mkdirat"),
        ("imprint_enter_rename", "sys_enter_rename"),
        ("imprint_enter_renameat", "sys_enter_renameat"),
        ("imprint_enter_renameat2", "sys_enter_renameat2"),
        ("imprint_enter_chmod", "sys_enter_chmod"),
        ("imprint_enter_fchmod", "sys_enter_fchmod"),
        ("imprint_enter_fchmodat", "sys_enter_fchmodat"),
        ("imprint_enter_fchmodat2", "sys_enter_fchmodat2"),
        ("imprint_enter_chown", "sys_enter_chown"),
        ("imprint_enter_lchown", "sys_enter_lchown"),
        ("imprint_enter_fchown", "sys_enter_fchown"),
        ("imprint_enter_fchownat", "sys_enter_fchownat"),
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
    /// Per-cgroup drop counters.
    pub const CGROUP_DROPS: &str = "cgroup_drops";
    /// Load-time setting: record every cgroup.
    pub const RECORD_ALL_CGROUPS: &str = "record_all_cgroups";
    /// Load-time setting: kernel text ranges of no-audit capability callers.
    pub const NOAUDIT_START: &str = "noaudit_start";
    /// End addresses matching [`NOAUDIT_START`].
    pub const NOAUDIT_END: &str = "noaudit_end";
    /// Number of valid entries in the no-audit ranges.
    pub const NOAUDIT_COUNT: &str = "noaudit_count";
}
