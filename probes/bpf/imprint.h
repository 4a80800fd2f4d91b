/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Events the probes send to user space, and the constants both sides share.
 *
 * Every struct here has a `#[repr(C)]` mirror in `probes/src/events.rs`; the
 * layout test there compares the two through the compiled object's BTF.
 * Keep fields naturally aligned and padding explicit.
 */
#ifndef IMPRINT_H
#define IMPRINT_H

/* Largest syscall number + 1 the per-cgroup bitmap holds (x86_64, aarch64). */
#define MAX_SYSCALLS 512
#define SYSCALL_WORDS (MAX_SYSCALLS / 64)

/* Bytes of a resolved path: components from leaf to root, each NUL-ended. */
#define PATH_BUF 4096
/* Bytes of one path component (NAME_MAX + NUL). */
#define NAME_BUF 256
/* Bytes of a raw, user-given path name (relative or absolute). */
#define RAW_NAME_BUF 256
/* Bytes of a cgroup path in a cgroup event. */
#define CGROUP_PATH_BUF 512
/* Bytes of the argument vector kept per exec (NUL separated). */
#define ARGS_BUF 1024
/* Path components walked at most before a path is marked truncated. */
#define PATH_DEPTH 64
/* Kernel stack frames inspected to tell audited from no-audit checks. */
#define CAP_STACK_DEPTH 16
/* Address ranges of kernel functions that make no-audit capability checks. */
#define NOAUDIT_RANGES 8

enum event_kind {
	EVENT_SYSCALL = 1,
	EVENT_EXEC = 2,
	EVENT_FILE = 3,
	EVENT_NET = 4,
	EVENT_CAP = 5,
	EVENT_CGROUP_MKDIR = 6,
	EVENT_CGROUP_RMDIR = 7,
	EVENT_SYSCALL_ARG = 8,
};

/* Traits of an exec (`exec_event.exec_flags`), part of its key. */
#define EXEC_TTY 1           /* the process has a controlling terminal */
#define EXEC_STDIN_SOCKET 2  /* its standard input is a socket */
#define EXEC_STDOUT_SOCKET 4 /* its standard output is a socket */

/* What happened to a file. */
enum file_op {
	FILE_OPEN = 1,
	FILE_UNLINK = 2,
	FILE_RMDIR = 3,
	FILE_MKDIR = 4,
	FILE_RENAME_FROM = 5,
	FILE_RENAME_TO = 6,
	FILE_CHMOD = 7,
	FILE_CHOWN = 8,
	FILE_SYMLINK = 9,
	FILE_LINK = 10,
	FILE_MKNOD = 11,
	FILE_TRUNCATE = 12,
	FILE_XATTR = 13,
	FILE_UTIME = 14,
};

/*
 * The file-change table (`file_change_syscalls`, one byte per syscall
 * number, filled by the loader from its syscall table): the operation in the
 * low nibble, where its arguments are in the high nibble. 0: not a change.
 */
#define CHANGE_OP_MASK 0x0f
#define CHANGE_PATH 0x10        /* name in arg 0, relative to the cwd */
#define CHANGE_DIRFD_PATH 0x20  /* dirfd in arg 0, name in arg 1 */
#define CHANGE_FD 0x30          /* the file behind the fd in arg 0 */
#define CHANGE_PATH_PAIR 0x40   /* rename: old name arg 0, new name arg 1 */
#define CHANGE_DIRFD_PAIR 0x50  /* renameat: dirfd 0, name 1, dirfd 2, name 3 */
#define CHANGE_UNLINKAT 0x60    /* unlinkat: dirfd 0, name 1, AT_REMOVEDIR in 2 */
#define CHANGE_PATH_ARG1 0x70   /* symlink, link: the new name in arg 1 */
#define CHANGE_DIRFD_ARG1 0x80  /* symlinkat: dirfd in arg 1, name in arg 2 */
#define CHANGE_DIRFD_ARG2 0x90  /* linkat: dirfd in arg 2, name in arg 3 */
#define CHANGE_UNIX_BIND 0xa0   /* bind: a sockaddr in arg 1; AF_UNIX paths make a file */
#define CHANGE_LAYOUT_MASK 0xf0

/*
 * The argument table (`arg_syscalls`, one byte per syscall number, filled by
 * the loader): which integer argument of the syscall is recorded (the value
 * kind, low nibble) and the syscall's slot in a cgroup's value counts (high
 * nibble). 0: its arguments are not recorded. Only plain integers, never
 * pointed-to memory (a filter on memory is racy, seccomp cannot see it).
 */
#define ARG_KIND_MASK 0x0f
#define ARG_FIRST 1   /* arg 0 as is: personality, prctl's option, unshare's flags */
#define ARG_SOCKET 2  /* socket, socketpair: family (arg 0, 16 bits) | type (arg 1 without SOCK_NONBLOCK
                         * and SOCK_CLOEXEC, 16 bits) << 16 | protocol (arg 2) << 32 */
#define ARG_CLONE 3   /* clone: the namespace bits of its flags (arg 0) */
#define ARG_SECOND 4  /* arg 1's low 32 bits: ioctl's request */
#define ARG_PROT 5    /* arg 2's PROT_WRITE | PROT_EXEC bits: mmap's, mprotect's, pkey_mprotect's prot */
#define ARG_SLOT_SHIFT 4
/* Syscalls whose arguments are recorded, at most (the high nibble). */
#define ARG_SLOTS 16
/* Distinct values sent per syscall and cgroup; past it one overflow event. */
#define ARG_VALUES_MAX 64
/* clone's namespace flags: NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET. */
#define CLONE_NAMESPACE_BITS 0x7E020000ULL
#define SOCK_TYPE_FLAGS 0x80800ULL /* SOCK_CLOEXEC | SOCK_NONBLOCK */
#define PROT_WRITE_EXEC 0x6ULL     /* PROT_WRITE | PROT_EXEC */
/* `arg_event.flags`: too many distinct values, no more are sent. */
#define ARG_OVERFLOW 1

/* Access bits of a FILE_OPEN event. */
#define ACCESS_READ 1
#define ACCESS_WRITE 2
#define ACCESS_CREATE 4
#define ACCESS_TRUNCATE 8

/* Flags of a path in a file or exec event. */
#define PATH_TRUNCATED 1
#define PATH_RELATIVE_TO_DIR 2

enum net_kind {
	NET_CONNECT = 1,
	NET_SEND = 2,
	NET_BIND = 3,
	NET_LISTEN = 4,
	NET_ACCEPT = 5,
};

/* Capability check audit classes. */
#define CAP_AUDITED 1
#define CAP_NOAUDIT 2
#define CAP_AUDIT_UNKNOWN 3

/* Flags of a recorded cgroup (value of `cgroup_ids`, field of the state). */
#define CGROUP_RECORDED 1
#define CGROUP_IGNORED 2
/* A program was executed in the cgroup (set by the exec probe). */
#define CGROUP_EXECUTED 4

/* Deepest cgroup level searched for the cgroup of `view_cgroup_id`. */
#define VIEW_DEPTH_MAX 32

/* Indexes of the global per-CPU counters in `counters`. */
enum counter {
	COUNTER_EVENTS = 0,
	COUNTER_RINGBUF_DROPS = 1,
	COUNTER_STORAGE_FAILS = 2,
	COUNTER_MAP_FULL = 3,
	COUNTER_PATH_TRUNCATED = 4,
	COUNTER_SYSCALL_OUT_OF_RANGE = 5,
	COUNTER_READ_FAILS = 6,
	COUNTER_DROPS_UNATTRIBUTED = 7,
	COUNTER_OUT_OF_VIEW = 8,
	COUNTER_MAX = 9,
};

/* Header of every event. */
struct event_header {
	__u32 kind;
	__u32 pid;
	__u64 cgroup_id;
	__u64 timestamp_ns;
};

/* First use of syscall `nr` in a cgroup. */
struct syscall_event {
	struct event_header header;
	__u32 nr;
	__u32 _pad;
};

/*
 * A program executed: a fixed part followed by `args_len` bytes of argv (NUL
 * separated), then `path_len` bytes of the executed file's components, leaf
 * first. Only the bytes used are sent.
 */
struct exec_event {
	struct event_header header;
	/* Capability bounding set after the exec (bit n: capability n). */
	__u64 cap_bset;
	/* Capabilities the exec gained from the file's capabilities (a
	 * non-root process: permitted beyond the ambient set). */
	__u64 cap_gained;
	/* Hash of what makes this exec distinct in its cgroup (file, argv,
	 * credentials): the key of its repeats in `execs_seen`. */
	__u64 key_hash;
	__u32 ppid;
	__u32 uid;
	__u32 euid;
	__u32 gid;
	__u32 egid;
	__u32 file_mode;
	__u16 path_len;
	__u16 args_len;
	__u16 path_flags;
	__u16 args_truncated;
	__u32 exec_flags;
	__u32 _pad;
	char data[ARGS_BUF + PATH_BUF + NAME_BUF];
};

/* Key of an exec's repeats: its cgroup and `exec_event.key_hash`. */
struct exec_key {
	__u64 cgroup_id;
	__u64 key_hash;
};

/*
 * A file access. `data` holds `dir_len` bytes of leaf-first components of
 * the resolved path (or of the directory a relative `name` starts from),
 * then `name_len` bytes of the raw name the process gave (mutations only).
 */
struct file_event {
	struct event_header header;
	__u32 op;
	__u32 access;
	__u32 open_flags;
	__u16 dir_len;
	__u16 name_len;
	__u16 path_flags;
	__u16 _pad[3];
	char data[PATH_BUF + NAME_BUF + RAW_NAME_BUF];
};

/* A network endpoint used. Addresses are in network byte order. */
struct net_event {
	struct event_header header;
	__u8 kind;
	__u8 family;
	__u8 protocol;
	__u8 _pad;
	__u16 local_port;
	__u16 remote_port;
	__u8 local_addr[16];
	__u8 remote_addr[16];
};

/*
 * A value of a recorded syscall argument (see `arg_syscalls`), new in its
 * cgroup; with ARG_OVERFLOW, the syscall had more distinct values than are
 * sent and `value` is the first one left out.
 */
struct arg_event {
	struct event_header header;
	__u32 nr;
	__u32 flags;
	__u64 value;
};

/* Key of `args_seen`: a value already sent for a syscall of a cgroup. */
struct arg_key {
	__u64 cgroup_id;
	__u64 nr;
	__u64 value;
};

/* A capability check. `ret` is 0 when granted. */
struct cap_event {
	struct event_header header;
	__s32 cap;
	__s32 ret;
	__u32 audit;
	__u32 _pad;
};

/* A cgroup made below a recorded one, or a recorded cgroup removed. */
struct cgroup_event {
	struct event_header header;
	__u64 parent_id;
	char path[CGROUP_PATH_BUF];
};

/*
 * A process of a recorded cgroup as the kernel's process table (the
 * `processes` map, keyed by its thread group id) keeps it while processes
 * are tracked: set at fork (the parent's program) and at every exec.
 */
struct process_info {
	/* The key of the program it runs (`exec_event.key_hash`; 0: unknown). */
	__u64 key_hash;
	/* Its cgroup when it forked or last executed. */
	__u64 cgroup_id;
	__u32 ppid;
	__u32 uid;
	__u32 gid;
	__u32 _pad;
};

/* Per-cgroup state on the hot path: the syscall bitmap and the flags. */
struct cgroup_state {
	__u64 syscalls[SYSCALL_WORDS];
	__u32 flags;
	__u32 _pad;
	/* Distinct argument values sent, per slot of `arg_syscalls`. */
	__u8 arg_values[ARG_SLOTS];
	/* The last value known (sent or found in `args_seen`) per slot, valid
	 * where its bit is set in `arg_last_set`: a loop of the same call
	 * costs a compare, not a map lookup. */
	__u64 arg_last[ARG_SLOTS];
	__u16 arg_last_set;
	__u8 _pad2[6];
};

/* Per-cgroup drop counters, written only when something is lost. */
struct drop_counts {
	__u64 ringbuf;
	__u64 map_full;
	__u64 truncated;
	__u64 read_fails;
};

#endif /* IMPRINT_H */
