// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * Cgroups: a cgroup made below a recorded one is recorded from its creation,
 * before its first syscall (a container's cgroup is made by the runtime and
 * joined by its init). Removal of a recorded cgroup is announced so user
 * space can close its report; everything it did was already sent. The
 * entries of removed cgroups leave `cgroup_ids`, so it holds the living.
 */
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Only cgroups of the unified (v2) hierarchy carry the ids the probes see. */
static __always_inline bool on_default_hierarchy(struct cgroup *cgrp)
{
	return BPF_CORE_READ(cgrp, root, hierarchy_id) == 0;
}

static __always_inline void announce(__u32 kind, __u64 id, __u64 parent_id, const char *path)
{
	struct cgroup_event *event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);
	if (!event) {
		count_drop(id, DROP_RINGBUF);
		return;
	}
	fill_header(&event->header, kind, id);
	event->parent_id = parent_id;
	if (bpf_probe_read_kernel_str(event->path, sizeof(event->path), path) < 0)
		event->path[0] = 0;
	bpf_ringbuf_submit(event, 0);
	count(COUNTER_EVENTS);
}

SEC("tp_btf/cgroup_mkdir")
int BPF_PROG(imprint_cgroup_mkdir, struct cgroup *cgrp, const char *path)
{
	if (!on_default_hierarchy(cgrp))
		return 0;
	__u64 id = BPF_CORE_READ(cgrp, kn, id);
	struct cgroup *parent = (struct cgroup *)BPF_CORE_READ(cgrp, self.parent);
	__u64 parent_id = BPF_CORE_READ(parent, kn, id);
	if (!record_all_cgroups) {
		__u32 *parent_flags = bpf_map_lookup_elem(&cgroup_ids, &parent_id);
		if (!parent_flags || !(*parent_flags & CGROUP_RECORDED))
			return 0;
		__u32 flags = *parent_flags;
		if (bpf_map_update_elem(&cgroup_ids, &id, &flags, BPF_ANY)) {
			count_drop(parent_id, DROP_MAP_FULL);
			return 0;
		}
		struct cgroup_state *state = bpf_cgrp_storage_get(
			&cgroup_states, cgrp, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (!state) {
			count(COUNTER_STORAGE_FAILS);
			return 0;
		}
		state->flags = flags;
	} else if (!recorded(id) || !in_view(cgrp)) {
		return 0;
	}
	announce(EVENT_CGROUP_MKDIR, id, parent_id, path);
	return 0;
}

SEC("tp_btf/cgroup_rmdir")
int BPF_PROG(imprint_cgroup_rmdir, struct cgroup *cgrp, const char *path)
{
	if (!on_default_hierarchy(cgrp))
		return 0;
	__u64 id = BPF_CORE_READ(cgrp, kn, id);
	if (!recorded(id) || !in_view(cgrp)) {
		/* A cgroup user space stopped recording leaves no entry behind. */
		if (record_all_cgroups)
			bpf_map_delete_elem(&cgroup_ids, &id);
		return 0;
	}
	struct cgroup *parent = (struct cgroup *)BPF_CORE_READ(cgrp, self.parent);
	__u64 parent_id = BPF_CORE_READ(parent, kn, id);
	if (!record_all_cgroups)
		bpf_map_delete_elem(&cgroup_ids, &id);
	announce(EVENT_CGROUP_RMDIR, id, parent_id, path);
	return 0;
}
