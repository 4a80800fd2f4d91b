// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * Exec: every program a recorded cgroup runs, with the absolute path of the
 * file the kernel executed (symlinks resolved), its mode bits (setuid),
 * the credentials after the exec and a bounded copy of argv.
 *
 * De-duplicated per cgroup before the path walk: an exec of the same file
 * (device, inode) with the same argv, credentials and mode as one already
 * sent only counts a repeat in `execs_seen`, so a fork/exec loop sends one
 * event, not one per iteration. Only the bytes used are sent.
 */
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct exec_key);
	__type(value, __u64);
} execs_seen SEC(".maps");

#define HASH_PRIME 0x100000001b3ULL

static __always_inline __u64 mix(__u64 hash, __u64 word)
{
	return (hash ^ word) * HASH_PRIME;
}

struct hash_state {
	__u64 hash;
	__u32 len;
};

/* One step of hashing the argv in the scratch exec event: its word `index`
 * (bytes past `len` are stale and masked off). */
static long hash_step(__u32 index, void *data)
{
	struct hash_state *s = data;
	__u32 start = index * 8;
	if (start >= s->len)
		return 1;
	union scratch *space = scratch_space();
	if (!space)
		return 1;
	/* Bounded here, where the verifier sees it (the compiler would
	 * otherwise reuse a check made before the lookup). */
	asm volatile("" : "+r"(start));
	start &= ARGS_BUF - 8;
	__u64 word;
	__builtin_memcpy(&word, &space->exec.data[start], sizeof(word));
	__u32 left = s->len - start;
	if (left < 8)
		word &= (1ULL << ((left & 7) * 8)) - 1;
	s->hash = mix(s->hash, word);
	return 0;
}

#define MODE_TYPE 0170000
#define MODE_SOCKET 0140000

/* Whether the file behind `fd` of `task` is a socket. */
static __always_inline bool fd_is_socket(struct task_struct *task, long fd)
{
	struct file *file = file_of_fd(task, fd);
	if (!file)
		return false;
	__u16 mode = BPF_CORE_READ(file, f_inode, i_mode);
	return (mode & MODE_TYPE) == MODE_SOCKET;
}

/* EXEC_* traits of the process executing: a terminal, socket stdio. */
static __always_inline __u32 exec_traits(struct task_struct *task)
{
	__u32 flags = 0;
	if (BPF_CORE_READ(task, signal, tty))
		flags |= EXEC_TTY;
	if (fd_is_socket(task, 0))
		flags |= EXEC_STDIN_SOCKET;
	if (fd_is_socket(task, 1))
		flags |= EXEC_STDOUT_SOCKET;
	return flags;
}

/* Keeps in the process table what `task` runs now. */
static __always_inline void note_process(struct exec_event *e, __u64 hash, __u64 cgroup_id)
{
	struct process_info p = {
		.key_hash = hash,
		.cgroup_id = cgroup_id,
		.ppid = e->ppid,
		.uid = e->uid,
		.gid = e->gid,
	};
	__u32 pid = e->header.pid;
	bpf_map_update_elem(&processes, &pid, &p, BPF_ANY);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(imprint_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	struct cgroup_state *state = current_state();
	if (!state)
		return 0;
	/* Capability checks before this are the runtime's (runc init); after
	 * it, the workload's: the capability probe de-duplicates them apart. */
	state->flags |= CGROUP_EXECUTED;
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	union scratch *space = scratch_space();
	if (!space)
		return 0;
	struct exec_event *e = &space->exec;
	fill_header(&e->header, EVENT_EXEC, cgroup_id);
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = BPF_CORE_READ(task, cred, uid.val);
	e->euid = BPF_CORE_READ(task, cred, euid.val);
	e->gid = BPF_CORE_READ(task, cred, gid.val);
	e->egid = BPF_CORE_READ(task, cred, egid.val);
	e->cap_bset = BPF_CORE_READ(task, cred, cap_bset.val);
	/* Without file capabilities a non-root exec's permitted set is its
	 * ambient set; anything beyond came from the file (what
	 * no_new_privs, allowPrivilegeEscalation: false, would refuse). */
	__u64 permitted = BPF_CORE_READ(task, cred, cap_permitted.val);
	__u64 ambient = BPF_CORE_READ(task, cred, cap_ambient.val);
	e->cap_gained = e->euid != 0 ? permitted & ~ambient : 0;

	struct file *file = BPF_CORE_READ(bprm, file);
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	e->file_mode = BPF_CORE_READ(inode, i_mode);

	unsigned long arg_start = BPF_CORE_READ(task, mm, arg_start);
	unsigned long arg_end = BPF_CORE_READ(task, mm, arg_end);
	unsigned long len = arg_end - arg_start;
	e->args_truncated = 0;
	if (len > ARGS_BUF) {
		len = ARGS_BUF;
		e->args_truncated = 1;
	}
	__u32 args_len = 0;
	if (len > 0 && bpf_probe_read_user(e->data, len, (void *)arg_start) == 0)
		args_len = len;
	e->args_len = args_len;

	__u64 hash = 0xcbf29ce484222325ULL;
	hash = mix(hash, BPF_CORE_READ(inode, i_ino));
	hash = mix(hash, BPF_CORE_READ(inode, i_sb, s_dev));
	hash = mix(hash, ((__u64)e->uid << 32) | e->euid);
	hash = mix(hash, ((__u64)e->gid << 32) | e->egid);
	hash = mix(hash, ((__u64)e->file_mode << 32) | e->args_truncated);
	hash = mix(hash, e->cap_gained);
	hash = mix(hash, e->cap_bset);
	e->exec_flags = exec_traits(task);
	e->_pad = 0;
	hash = mix(hash, e->exec_flags);
	struct hash_state hashing = {.hash = hash, .len = args_len};
	bpf_loop(ARGS_BUF / 8, hash_step, &hashing, 0);
	hash = mix(hashing.hash, args_len);
	if (track_processes)
		note_process(e, hash, cgroup_id);
	struct exec_key key = {.cgroup_id = cgroup_id, .key_hash = hash};
	__u64 *repeats = bpf_map_lookup_elem(&execs_seen, &key);
	if (repeats) {
		__sync_fetch_and_add(repeats, 1);
		return 0;
	}
	e->key_hash = hash;

	__u32 path_at = args_len;
	if (path_at > ARGS_BUF)
		path_at = ARGS_BUF;
	e->path_flags = 0;
	__u32 path_len = walk_path(&file->f_path, e->data + path_at, &e->path_flags);
	if (e->path_flags & PATH_TRUNCATED)
		count_drop(cgroup_id, DROP_TRUNCATED);
	if (path_len > PATH_BUF + NAME_BUF)
		path_len = PATH_BUF + NAME_BUF;
	e->path_len = path_len;
	if (send(e, offsetof(struct exec_event, data) + path_at + path_len, cgroup_id)) {
		__u64 zero = 0;
		bpf_map_update_elem(&execs_seen, &key, &zero, BPF_NOEXIST);
	}
	return 0;
}
