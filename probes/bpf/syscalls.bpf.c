// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * Syscalls: one bit per syscall number in each recorded cgroup's local
 * storage. A known syscall costs a storage lookup and a bit test; only the
 * first use of a syscall in a cgroup sets the bit and sends an event.
 * Syscalls that change files (unlink, mkdir, rename, chmod, chown...) of a
 * recorded cgroup are handed to the files probe from here, so cgroups that
 * are not recorded pay nothing for them.
 */
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define CASE_SLOT(i)                                                                              \
	case i:                                                                                   \
		sdata = ls->cache[i];                                                             \
		break
#define CASE_WORD(i)                                                                              \
	case i:                                                                                   \
		word = *(const __u64 *)(data + (i) * 8);                                          \
		break

/*
 * Whether syscall `id` is already known in the cgroup (or the cgroup is
 * ignored), read straight from the cgroup's local storage cache without a
 * helper call. False when the cache does not hold this map's data: the
 * caller then takes the helper path, which also fills the cache.
 */
static __always_inline bool known_from_cache(struct cgroup *cgrp, long id)
{
	struct bpf_local_storage *ls = cgrp->bpf_cgrp_storage;
	if (!ls)
		return false;
	struct bpf_local_storage_map *smap = (struct bpf_local_storage_map *)&cgroup_states;
	struct bpf_local_storage_data *sdata = NULL;
	switch (smap->cache_idx) {
		CASE_SLOT(0); CASE_SLOT(1); CASE_SLOT(2); CASE_SLOT(3);
		CASE_SLOT(4); CASE_SLOT(5); CASE_SLOT(6); CASE_SLOT(7);
		CASE_SLOT(8); CASE_SLOT(9); CASE_SLOT(10); CASE_SLOT(11);
		CASE_SLOT(12); CASE_SLOT(13); CASE_SLOT(14); CASE_SLOT(15);
	default:
		return false;
	}
	if (!sdata || sdata->smap != smap)
		return false;
	/* The map value (struct cgroup_state) follows the smap pointer. */
	const __u8 *data = (const __u8 *)sdata->data;
	__u32 flags = *(const __u32 *)(data + SYSCALL_WORDS * 8);
	if (flags & CGROUP_IGNORED)
		return true;
	__u64 word = 0;
	switch ((id >> 6) & (SYSCALL_WORDS - 1)) {
		CASE_WORD(0); CASE_WORD(1); CASE_WORD(2); CASE_WORD(3);
		CASE_WORD(4); CASE_WORD(5); CASE_WORD(6); CASE_WORD(7);
	}
	return word & (1ULL << (id & 63));
}

SEC("tp_btf/sys_enter")
int BPF_PROG(imprint_sys_enter, struct pt_regs *regs, long id)
{
	if (id < 0 || id >= MAX_SYSCALLS) {
		count(COUNTER_SYSCALL_OUT_OF_RANGE);
		return 0;
	}
	/* Steady state: a known syscall that changes no file, read from the cache. */
	struct task_struct *task = bpf_get_current_task_btf();
	if (!file_change_syscalls[id & (MAX_SYSCALLS - 1)] && known_from_cache(task->cgroups->dfl_cgrp, id))
		return 0;
	struct cgroup_state *state = current_state();
	if (!state)
		return 0;
	__u8 change = file_change_syscalls[id & (MAX_SYSCALLS - 1)];
	if (change)
		imprint_file_change(change, PT_REGS_PARM1_SYSCALL(regs), PT_REGS_PARM2_SYSCALL(regs),
				    PT_REGS_PARM3_SYSCALL(regs), PT_REGS_PARM4_SYSCALL(regs));

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
