// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * Syscalls: one bit per syscall number in each recorded cgroup's local
 * storage. A known syscall costs a storage lookup and a bit test; only the
 * first use of a syscall in a cgroup sets the bit and sends an event.
 */
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Storage of the current cgroup, created on first use when recording all. */
static __always_inline struct cgroup_state *current_state(struct cgroup *cgrp)
{
	struct cgroup_state *state = bpf_cgrp_storage_get(&cgroup_states, cgrp, 0, 0);
	if (state || !record_all_cgroups)
		return state;
	state = bpf_cgrp_storage_get(&cgroup_states, cgrp, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!state) {
		count(COUNTER_STORAGE_FAILS);
		return NULL;
	}
	__u64 id = BPF_CORE_READ(cgrp, kn, id);
	__u32 *flags = bpf_map_lookup_elem(&cgroup_ids, &id);
	if (flags)
		state->flags = *flags;
	return state;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(imprint_sys_enter, struct pt_regs *regs, long id)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct cgroup_state *state = current_state(task->cgroups->dfl_cgrp);
	if (!state || (state->flags & CGROUP_IGNORED))
		return 0;
	if (id < 0 || id >= MAX_SYSCALLS) {
		count(COUNTER_SYSCALL_OUT_OF_RANGE);
		return 0;
	}
	__u64 bit = 1ULL << (id & 63);
	__u64 *word = &state->syscalls[(id >> 6) & (SYSCALL_WORDS - 1)];
	if (*word & bit)
		return 0;
	if (__sync_fetch_and_or(word, bit) & bit)
		return 0;

	__u64 cgroup_id = bpf_get_current_cgroup_id();
	struct syscall_event event = {};
	fill_header(&event.header, EVENT_SYSCALL, cgroup_id);
	event.nr = id;
	if (!send(&event, sizeof(event), cgroup_id))
		__sync_fetch_and_and(word, ~bit); /* retry on the next call */
	return 0;
}
