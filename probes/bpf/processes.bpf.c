// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * Processes: forks and exits of a recorded cgroup's processes (thread
 * groups, not threads), sent only while processes are tracked (detection
 * on), so user space keeps a process table and an alert can name the
 * process's ancestry. Not attached at all when nothing is detected.
 */
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline void send_lineage(__u32 op, struct task_struct *task)
{
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	struct lineage_event p = {};
	fill_header(&p.header, EVENT_LINEAGE, cgroup_id);
	p.header.pid = BPF_CORE_READ(task, tgid);
	p.op = op;
	p.ppid = BPF_CORE_READ(task, real_parent, tgid);
	p.uid = BPF_CORE_READ(task, cred, uid.val);
	p.gid = BPF_CORE_READ(task, cred, gid.val);
	send_quietly(&p, sizeof(p), cgroup_id);
}

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
	send_lineage(LINEAGE_FORK, child);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(imprint_process_exit, struct task_struct *task, bool group_dead)
{
	if (!track_processes || !group_dead)
		return 0;
	if (!current_state())
		return 0;
	send_lineage(LINEAGE_EXIT, task);
	return 0;
}
