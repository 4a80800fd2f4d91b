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

SEC("tp_btf/sys_enter")
int BPF_PROG(imprint_sys_enter, struct pt_regs *regs, long id)
{
	struct cgroup_state *state = current_state();
	if (!state)
		return 0;
	if (id < 0 || id >= MAX_SYSCALLS) {
		count(COUNTER_SYSCALL_OUT_OF_RANGE);
		return 0;
	}
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
