// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * Exec: every program a recorded cgroup runs, with the absolute path of the
 * file the kernel executed (symlinks resolved), its mode bits (setuid),
 * the credentials after the exec and a bounded copy of argv.
 */
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

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
	e->file_mode = BPF_CORE_READ(file, f_inode, i_mode);
	e->path_flags = 0;
	e->path_len = walk_path(&file->f_path, e->path, &e->path_flags);
	if (e->path_flags & PATH_TRUNCATED)
		count_drop(cgroup_id, DROP_TRUNCATED);

	unsigned long arg_start = BPF_CORE_READ(task, mm, arg_start);
	unsigned long arg_end = BPF_CORE_READ(task, mm, arg_end);
	unsigned long len = arg_end - arg_start;
	e->args_truncated = 0;
	if (len > ARGS_BUF) {
		len = ARGS_BUF;
		e->args_truncated = 1;
	}
	e->args_len = 0;
	if (len > 0 && bpf_probe_read_user(e->args, len, (void *)arg_start) == 0)
		e->args_len = len;
	send(e, sizeof(*e), cgroup_id);
	return 0;
}
