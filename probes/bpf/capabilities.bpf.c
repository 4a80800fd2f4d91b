// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * Capabilities: every distinct (capability, granted, audited) check of a
 * recorded cgroup. Only granted, audited checks make a capability needed;
 * no-audit probes (for example the CAP_SYS_ADMIN probe behind every mmap's
 * overcommit check) are recorded as such.
 *
 * The `capability/cap_capable` tracepoint (Linux >= 6.14) carries no audit
 * option, so the kernel stack is compared with the text ranges of the
 * no-audit callers, which the loader reads from kallsyms. On older kernels
 * the fexit program, which sees the option, is used when trampolines work.
 */
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define CAP_OPT_NOAUDIT 0x2

struct cap_key {
	__u64 cgroup_id;
	__s32 cap;
	__u8 granted;
	__u8 executed;
	__u16 audit;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct cap_key);
	__type(value, __u8);
} caps_seen SEC(".maps");

/* De-duplicated per cgroup, separately before and after the cgroup's first
 * exec: a container runtime checks capabilities in the container's cgroup
 * before it executes the container's program, and user space tells the
 * two apart by the order of events. */
static __always_inline int record_cap(struct cgroup_state *state, int cap, int ret, __u32 audit)
{
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	struct cap_key key = {
		.cgroup_id = cgroup_id,
		.cap = cap,
		.granted = ret == 0,
		.executed = (state->flags & CGROUP_EXECUTED) ? 1 : 0,
		.audit = audit,
	};
	if (bpf_map_lookup_elem(&caps_seen, &key))
		return 0;
	struct cap_event event = {};
	fill_header(&event.header, EVENT_CAP, cgroup_id);
	event.cap = cap;
	event.ret = ret;
	event.audit = audit;
	if (send(&event, sizeof(event), cgroup_id)) {
		__u8 one = 1;
		bpf_map_update_elem(&caps_seen, &key, &one, BPF_ANY);
	}
	return 0;
}

SEC("tp_btf/cap_capable")
int BPF_PROG(imprint_cap_capable, const struct cred *cred, struct user_namespace *target_ns,
	     const struct user_namespace *capable_ns, int cap, int ret)
{
	struct cgroup_state *state = current_state();
	if (!state)
		return 0;
	__u32 audit = CAP_AUDIT_UNKNOWN;
	__u32 ranges = noaudit_count;
	if (ranges > 0) {
		__u64 stack[CAP_STACK_DEPTH] = {};
		long size = bpf_get_stack(ctx, stack, sizeof(stack), 0);
		audit = CAP_AUDITED;
		for (int i = 0; i < CAP_STACK_DEPTH; i++) {
			if (i * 8 >= size)
				break;
			for (int r = 0; r < NOAUDIT_RANGES; r++) {
				if (r >= ranges)
					break;
				if (stack[i] >= noaudit_start[r] && stack[i] < noaudit_end[r])
					audit = CAP_NOAUDIT;
			}
		}
	}
	return record_cap(state, cap, ret, audit);
}

SEC("fexit/cap_capable")
int BPF_PROG(imprint_cap_capable_exit, const struct cred *cred, struct user_namespace *target_ns,
	     int cap, unsigned int opts, int ret)
{
	struct cgroup_state *state = current_state();
	if (!state)
		return 0;
	return record_cap(state, cap, ret, (opts & CAP_OPT_NOAUDIT) ? CAP_NOAUDIT : CAP_AUDITED);
}
