//! `#[repr(C)]` mirrors of the structs in `bpf/imprint.h`.
//!
//! The layout test at the bottom compares sizes and field offsets with the
//! BTF of the compiled object, so a change on one side fails the build's tests.

/// Largest syscall number + 1 the per-cgroup bitmap holds.
pub const MAX_SYSCALLS: usize = 512;
/// Bytes of resolved path data (components, leaf first, NUL-ended).
pub const PATH_BUF: usize = 4096;
/// Bytes of one path component.
pub const NAME_BUF: usize = 256;
/// Bytes of a raw, user-given name.
pub const RAW_NAME_BUF: usize = 256;
/// Bytes of argv kept per exec.
pub const ARGS_BUF: usize = 1024;
/// Bytes of a cgroup path in a cgroup event.
pub const CGROUP_PATH_BUF: usize = 512;
/// Number of kernel text ranges of no-audit capability callers.
pub const NOAUDIT_RANGES: usize = 8;
/// Offset in [`FileEvent::data`] of a mutation's raw name.
pub const RAW_NAME_OFFSET: usize = PATH_BUF + NAME_BUF;

/// `enum event_kind`.
pub mod kind {
    /// First use of a syscall in a cgroup.
    pub const SYSCALL: u32 = 1;
    /// A program executed.
    pub const EXEC: u32 = 2;
    /// A file opened or changed.
    pub const FILE: u32 = 3;
    /// A network endpoint used.
    pub const NET: u32 = 4;
    /// A capability checked.
    pub const CAP: u32 = 5;
    /// A cgroup made below a recorded one.
    pub const CGROUP_MKDIR: u32 = 6;
    /// A recorded cgroup removed.
    pub const CGROUP_RMDIR: u32 = 7;
    /// A syscall argument value new in a cgroup.
    pub const SYSCALL_ARG: u32 = 8;
}

/// Entries of the argument table (`arg_syscalls`): the value recorded
/// (`ARG_*`) in the low nibble, the syscall's slot in a cgroup's value
/// counts in the high nibble.
pub mod arg {
    /// Argument 0 as is (personality, prctl's option, unshare's flags).
    pub const FIRST: u8 = 1;
    /// socket, socketpair: the family (argument 0) in the low 16 bits, the
    /// type (argument 1) without SOCK_NONBLOCK and SOCK_CLOEXEC in the next
    /// 16, the protocol (argument 2) in the high 32.
    pub const SOCKET: u8 = 2;
    /// clone: the namespace bits of its flags (argument 0).
    pub const CLONE: u8 = 3;
    /// Argument 1's low 32 bits (ioctl's request).
    pub const SECOND: u8 = 4;
    /// Argument 2's [`PROT_WRITE_EXEC`] bits (the protection of mmap,
    /// mprotect and pkey_mprotect).
    pub const PROT: u8 = 5;
    /// Where the slot sits in an entry.
    pub const SLOT_SHIFT: u8 = 4;
    /// Syscalls whose arguments are recorded, at most.
    pub const SLOTS: usize = 16;
    /// PROT_WRITE | PROT_EXEC.
    pub const PROT_WRITE_EXEC: u64 = 0x6;
    /// Distinct values sent per syscall and cgroup before the overflow event.
    pub const VALUES_MAX: usize = 64;
    /// clone's namespace flags (NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER,
    /// NEWPID, NEWNET).
    pub const CLONE_NAMESPACE_BITS: u64 = 0x7E02_0000;
    /// [`super::ArgEvent::flags`]: more distinct values than are sent.
    pub const OVERFLOW: u32 = 1;
}

/// `EXEC_*`: traits of an exec ([`ExecEvent::exec_flags`]).
pub mod exec_flags {
    /// The process has a controlling terminal.
    pub const TTY: u32 = 1;
    /// Its standard input is a socket.
    pub const STDIN_SOCKET: u32 = 2;
    /// Its standard output is a socket.
    pub const STDOUT_SOCKET: u32 = 4;
}

/// `enum file_op`.
pub mod file_op {
    /// Opened (see the access bits).
    pub const OPEN: u32 = 1;
    /// Unlinked.
    pub const UNLINK: u32 = 2;
    /// Directory removed.
    pub const RMDIR: u32 = 3;
    /// Directory made.
    pub const MKDIR: u32 = 4;
    /// Renamed from this name.
    pub const RENAME_FROM: u32 = 5;
    /// Renamed to this name.
    pub const RENAME_TO: u32 = 6;
    /// Mode changed.
    pub const CHMOD: u32 = 7;
    /// Owner changed.
    pub const CHOWN: u32 = 8;
    /// Symbolic link made.
    pub const SYMLINK: u32 = 9;
    /// Hard link made.
    pub const LINK: u32 = 10;
    /// Device, FIFO or socket file made.
    pub const MKNOD: u32 = 11;
    /// Truncated by path or fd.
    pub const TRUNCATE: u32 = 12;
    /// Extended attributes changed.
    pub const XATTR: u32 = 13;
    /// Times changed.
    pub const UTIME: u32 = 14;
}

/// Entries of the file-change table: the operation ([`file_op`]) in the low
/// nibble, where its arguments are in the high nibble.
pub mod change {
    /// Name in argument 0, relative to the working directory.
    pub const PATH: u8 = 0x10;
    /// dirfd in argument 0, name in argument 1.
    pub const DIRFD_PATH: u8 = 0x20;
    /// The file behind the fd in argument 0.
    pub const FD: u8 = 0x30;
    /// Old name in argument 0, new name in argument 1.
    pub const PATH_PAIR: u8 = 0x40;
    /// dirfd 0, name 1, dirfd 2, name 3.
    pub const DIRFD_PAIR: u8 = 0x50;
    /// dirfd 0, name 1, `AT_REMOVEDIR` in argument 2.
    pub const UNLINKAT: u8 = 0x60;
    /// The new name in argument 1 (symlink, link).
    pub const PATH_ARG1: u8 = 0x70;
    /// dirfd in argument 1, name in argument 2 (symlinkat).
    pub const DIRFD_ARG1: u8 = 0x80;
    /// dirfd in argument 2, name in argument 3 (linkat).
    pub const DIRFD_ARG2: u8 = 0x90;
    /// A socket address in argument 1: an `AF_UNIX` path makes a file.
    pub const UNIX_BIND: u8 = 0xa0;
}

/// Access bits of an open.
pub mod access {
    /// Opened for reading.
    pub const READ: u32 = 1;
    /// Opened for writing.
    pub const WRITE: u32 = 2;
    /// The open created the file.
    pub const CREATE: u32 = 4;
    /// The open truncated the file.
    pub const TRUNCATE: u32 = 8;
}

/// Flags of a path in an event.
pub mod path_flags {
    /// The walk stopped before the root: the path is a suffix.
    pub const TRUNCATED: u16 = 1;
    /// The components are of the directory a relative name starts from.
    pub const RELATIVE_TO_DIR: u16 = 2;
}

/// `enum net_kind`.
pub mod net_kind {
    /// Outbound connect.
    pub const CONNECT: u8 = 1;
    /// Unconnected datagram send.
    pub const SEND: u8 = 2;
    /// Local address bound.
    pub const BIND: u8 = 3;
    /// TCP socket listening.
    pub const LISTEN: u8 = 4;
    /// Inbound TCP connection accepted.
    pub const ACCEPT: u8 = 5;
}

/// Audit class of a capability check.
pub mod cap_audit {
    /// An audited check: a denial would be logged.
    pub const AUDITED: u32 = 1;
    /// A no-audit probe (the kernel asks without requiring).
    pub const NOAUDIT: u32 = 2;
    /// Unknown (no kernel symbols to tell).
    pub const UNKNOWN: u32 = 3;
}

/// Flags of an entry in the recorded cgroup map.
pub mod cgroup_flags {
    /// Record this cgroup and cgroups made below it.
    pub const RECORDED: u32 = 1;
    /// Never record this cgroup (imprint's own).
    pub const IGNORED: u32 = 2;
    /// A program was executed in the cgroup (set in the kernel).
    pub const EXECUTED: u32 = 4;
}

/// Indexes of the global counters.
pub mod counter {
    /// Events sent.
    pub const EVENTS: usize = 0;
    /// Events lost to a full ring buffer.
    pub const RINGBUF_DROPS: usize = 1;
    /// Cgroup storage that could not be created.
    pub const STORAGE_FAILS: usize = 2;
    /// Map updates that failed because the map was full.
    pub const MAP_FULL: usize = 3;
    /// Paths cut at the walk limit.
    pub const PATH_TRUNCATED: usize = 4;
    /// Syscall numbers beyond the bitmap.
    pub const SYSCALL_OUT_OF_RANGE: usize = 5;
    /// Kernel reads that failed.
    pub const READ_FAILS: usize = 6;
    /// Losses no cgroup could be charged with (the per-cgroup loss map
    /// was full).
    pub const DROPS_UNATTRIBUTED: usize = 7;
    /// Cgroups outside the loader's view of the hierarchy (recording every
    /// cgroup), ignored from their first syscall on.
    pub const OUT_OF_VIEW: usize = 8;
    /// Number of counters.
    pub const COUNT: usize = 9;
}

/// `struct event_header`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    /// One of [`kind`].
    pub kind: u32,
    /// Process id (tgid) of the actor; 0 when not known.
    pub pid: u32,
    /// cgroup v2 id.
    pub cgroup_id: u64,
    /// `CLOCK_BOOTTIME` in nanoseconds.
    pub timestamp_ns: u64,
}

/// `struct syscall_event`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SyscallEvent {
    /// Common header.
    pub header: EventHeader,
    /// Syscall number of the kernel's native ABI.
    pub nr: u32,
    /// Padding.
    pub _pad: u32,
}

/// `struct arg_event`: a value of a recorded syscall argument, new in its
/// cgroup (see [`arg`]).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ArgEvent {
    /// Common header.
    pub header: EventHeader,
    /// Syscall number of the kernel's native ABI.
    pub nr: u32,
    /// [`arg::OVERFLOW`].
    pub flags: u32,
    /// The value (its layout per [`arg`] kind).
    pub value: u64,
}

/// `struct arg_key`: a value already sent for a syscall of a cgroup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArgKey {
    /// The cgroup.
    pub cgroup_id: u64,
    /// The syscall number.
    pub nr: u64,
    /// The value.
    pub value: u64,
}

/// `struct exec_event`: a fixed part followed by `args_len` bytes of argv,
/// then `path_len` bytes of path components (only the bytes used are sent).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecEvent {
    /// Common header.
    pub header: EventHeader,
    /// Capability bounding set after the exec (bit n: capability n).
    pub cap_bset: u64,
    /// Capabilities gained from the file's capabilities (non-root).
    pub cap_gained: u64,
    /// Hash of what makes the exec distinct in its cgroup (file, argv,
    /// credentials): the key of its repeats in the `execs_seen` map.
    pub key_hash: u64,
    /// Parent's process id.
    pub ppid: u32,
    /// Real uid after the exec.
    pub uid: u32,
    /// Effective uid after the exec.
    pub euid: u32,
    /// Real gid after the exec.
    pub gid: u32,
    /// Effective gid after the exec.
    pub egid: u32,
    /// Mode bits of the executed file.
    pub file_mode: u32,
    /// Bytes of path components after the argv in `data`.
    pub path_len: u16,
    /// Bytes of argv at the start of `data`.
    pub args_len: u16,
    /// [`path_flags`] of the path.
    pub path_flags: u16,
    /// Non-zero when argv was longer than [`ARGS_BUF`].
    pub args_truncated: u16,
    /// [`exec_flags`] of the process executing.
    pub exec_flags: u32,
    /// Padding.
    pub _pad: u32,
    /// argv (NUL separated), then the executed file's components, leaf first.
    pub data: [u8; ARGS_BUF + PATH_BUF + NAME_BUF],
}

/// `struct exec_key`: the key of the `execs_seen` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ExecKey {
    /// The cgroup that executed.
    pub cgroup_id: u64,
    /// [`ExecEvent::key_hash`].
    pub key_hash: u64,
}

/// `struct file_event`: a fixed part followed by up to `data.len()` bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FileEvent {
    /// Common header.
    pub header: EventHeader,
    /// One of [`file_op`].
    pub op: u32,
    /// [`access`] bits of an open.
    pub access: u32,
    /// Flags the process passed to open.
    pub open_flags: u32,
    /// Bytes of leaf-first components at the start of `data`.
    pub dir_len: u16,
    /// Bytes of the raw name at [`RAW_NAME_OFFSET`] in `data`.
    pub name_len: u16,
    /// [`path_flags`].
    pub path_flags: u16,
    /// Padding.
    pub _pad: [u16; 3],
    /// Path components, then the raw name.
    pub data: [u8; PATH_BUF + NAME_BUF + RAW_NAME_BUF],
}

/// `struct net_event`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NetEvent {
    /// Common header.
    pub header: EventHeader,
    /// One of [`net_kind`].
    pub kind: u8,
    /// `AF_INET` or `AF_INET6`.
    pub family: u8,
    /// IP protocol number.
    pub protocol: u8,
    /// Padding.
    pub _pad: u8,
    /// Local port, network byte order.
    pub local_port: u16,
    /// Remote port, network byte order.
    pub remote_port: u16,
    /// Local address, network byte order (IPv4 in the first 4 bytes).
    pub local_addr: [u8; 16],
    /// Remote address, network byte order (IPv4 in the first 4 bytes).
    pub remote_addr: [u8; 16],
}

/// `struct cap_event`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CapEvent {
    /// Common header.
    pub header: EventHeader,
    /// Capability number.
    pub cap: i32,
    /// 0 when granted, else a negative errno.
    pub ret: i32,
    /// One of [`cap_audit`].
    pub audit: u32,
    /// Padding.
    pub _pad: u32,
}

/// `struct process_info`: a process as the kernel's process table (the
/// `processes` map, keyed by thread group id) keeps it while processes are
/// tracked.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessInfo {
    /// The key of the program it runs ([`ExecEvent::key_hash`]; 0: unknown).
    pub key_hash: u64,
    /// Its cgroup when it forked or last executed.
    pub cgroup_id: u64,
    /// The parent's process id.
    pub ppid: u32,
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// Padding.
    pub _pad: u32,
}

/// `struct cgroup_event`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CgroupEvent {
    /// Common header; `cgroup_id` is the cgroup made or removed.
    pub header: EventHeader,
    /// Id of the parent cgroup.
    pub parent_id: u64,
    /// Path of the cgroup in the unified hierarchy, NUL-ended.
    pub path: [u8; CGROUP_PATH_BUF],
}

/// `struct cgroup_state`: the value of the per-cgroup local storage.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupState {
    /// One bit per syscall number seen.
    pub syscalls: [u64; MAX_SYSCALLS / 64],
    /// [`cgroup_flags`].
    pub flags: u32,
    /// Padding.
    pub _pad: u32,
    /// Distinct argument values sent, per slot of the argument table.
    pub arg_values: [u8; arg::SLOTS],
    /// The last value known per slot (valid where its bit is set in
    /// `arg_last_set`).
    pub arg_last: [u64; arg::SLOTS],
    /// Which slots' `arg_last` is valid.
    pub arg_last_set: u16,
    /// Padding.
    pub _pad2: [u8; 6],
}

/// `struct drop_counts`: losses of one cgroup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// Events lost to a full ring buffer.
    pub ringbuf: u64,
    /// Entries lost to a full map.
    pub map_full: u64,
    /// Paths cut at the walk limit.
    pub truncated: u64,
    /// Kernel reads that failed.
    pub read_fails: u64,
}

impl DropCounts {
    /// Every loss counted.
    pub fn total(&self) -> u64 {
        self.ringbuf + self.map_full + self.truncated + self.read_fails
    }
}

/// `struct counters`: the global per-CPU counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    /// Indexed by [`counter`].
    pub values: [u64; counter::COUNT],
}

#[cfg(test)]
mod layout;
