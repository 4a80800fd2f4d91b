// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * Syscalls: one bit per syscall number in each recorded cgroup's local
 * storage. A known syscall costs a storage lookup and a bit test; only the
 * first use of a syscall in a cgroup sets the bit and sends an event.
 * Syscalls that change files (unlink, mkdir, rename, chmod, chown...) of a
 * recorded cgroup are handed to the files probe from here, so cgroups that
 * are not recorded pay nothing for them.
 *
 * For the few syscalls in `arg_syscalls`, one integer argument is recorded
 * too: each value new in the cgroup is sent once (`args_seen`), at most
 * ARG_VALUES_MAX per syscall and cgroup, then one overflow event and no
 * more lookups.
 */
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct arg_key);
	__type(value, __u8);
} args_seen SEC(".maps");

static __always_inline __u64 argument_value(__u8 kind, struct pt_regs *regs)
{
	__u64 first = PT_REGS_PARM1_SYSCALL(regs);
	switch (kind) {
	case ARG_SOCKET:
		return (first & 0xffffULL) | ((PT_REGS_PARM2_SYSCALL(regs) & ~SOCK_TYPE_FLAGS & 0xffffULL) << 16) |
		       ((PT_REGS_PARM3_SYSCALL(regs) & 0xffffffffULL) << 32);
	case ARG_CLONE:
		return first & CLONE_NAMESPACE_BITS;
	case ARG_SECOND:
		return PT_REGS_PARM2_SYSCALL(regs) & 0xffffffffULL;
	case ARG_PROT:
		return PT_REGS_PARM3_SYSCALL(regs) & PROT_WRITE_EXEC;
	default:
		return first;
	}
}

/* Sends the argument value of syscall `id` when it is new in the cgroup. */
static __always_inline void note_argument(struct cgroup_state *state, long id, __u8 arg,
					  struct pt_regs *regs)
{
	__u32 slot = (arg >> ARG_SLOT_SHIFT) & (ARG_SLOTS - 1);
	__u8 *sent = &state->arg_values[slot];
	if (*sent > ARG_VALUES_MAX)
		return;
	__u64 value = argument_value(arg & ARG_KIND_MASK, regs);
	__u16 bit = 1 << slot;
	if ((state->arg_last_set & bit) && state->arg_last[slot] == value)
		return;
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	struct arg_key key = {.cgroup_id = cgroup_id, .nr = id, .value = value};
	if (bpf_map_lookup_elem(&args_seen, &key)) {
		state->arg_last[slot] = value;
		state->arg_last_set |= bit;
		return;
	}
	struct arg_event event = {};
	fill_header(&event.header, EVENT_SYSCALL_ARG, cgroup_id);
	event.nr = id;
	event.value = key.value;
	/* Not atomic (no 8-bit atomics): two CPUs may both send a value, which
	 * the reader de-duplicates. */
	__u8 count = *sent;
	if (count > ARG_VALUES_MAX)
		return;
	if (count == ARG_VALUES_MAX)
		event.flags = ARG_OVERFLOW;
	if (!send(&event, sizeof(event), cgroup_id))
		return; /* retry on the next call */
	*sent = count + 1;
	__u8 one = 1;
	bpf_map_update_elem(&args_seen, &key, &one, BPF_ANY);
	state->arg_last[slot] = value;
	state->arg_last_set |= bit;
}

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
	__u8 arg = arg_syscalls[id & (MAX_SYSCALLS - 1)];
	if (arg)
		note_argument(state, id, arg, regs);
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
