// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * Processes: the forks of a recorded cgroup's processes (thread groups, not
 * threads) go into the kernel's process table (`processes`), which the
 * exec probe updates at every exec, so an alert can name the process's
 * ancestry. Nothing is sent: user space reads the table only for an alert.
 * Not attached at all when nothing is detected.
 */
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tp_btf/sched_process_fork")
int BPF_PROG(imprint_fork, struct task_struct *parent, struct task_struct *child)
{
	if (!track_processes)
		return 0;
	/* A new thread of a process is not a new process. */
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	/* The child is in its parent's (the current task's) cgroup. */
	if (!current_state())
		return 0;
	__u32 ppid = BPF_CORE_READ(parent, tgid);
	__u32 pid = BPF_CORE_READ(child, tgid);
	struct process_info p = {};
	struct process_info *known = bpf_map_lookup_elem(&processes, &ppid);
	/* It runs its parent's program until it executes one. */
	if (known)
		p.key_hash = known->key_hash;
	p.cgroup_id = bpf_get_current_cgroup_id();
	p.ppid = ppid;
	p.uid = BPF_CORE_READ(child, cred, uid.val);
	p.gid = BPF_CORE_READ(child, cred, gid.val);
	bpf_map_update_elem(&processes, &pid, &p, BPF_ANY);
	return 0;
}
