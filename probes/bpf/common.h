/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Maps, load-time settings and helpers shared by every probe file.
 *
 * Each `.bpf.c` file includes this header; the maps and settings are weak
 * definitions, so the static linker keeps one copy of each in the object.
 */
#ifndef IMPRINT_COMMON_H
#define IMPRINT_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

#include "imprint.h"

#define SHARED __attribute__((weak))

/* Set by the loader before the object is loaded. */
/* Record every cgroup (true) or only those in `cgroup_ids` and below. */
SHARED const volatile __u32 record_all_cgroups = 0;
/*
 * When recording every cgroup: the id of the cgroup every recorded one
 * descends from (the top of the cgroup2 hierarchy the loader sees, which is
 * below the machine's top where it runs in a cgroup namespace, as in a kind
 * node); 0 for no limit. Cgroups outside it are ignored from their first
 * syscall on and counted (COUNTER_OUT_OF_VIEW): user space could not name
 * them.
 */
SHARED const volatile __u64 view_cgroup_id = 0;
/* Keep the process table (`processes`) for the ancestry of alerts. */
SHARED const volatile __u32 track_processes = 0;
/* The kernel's FMODE_CREATED bit (stable since 4.19 at 1 << 20). */
SHARED const volatile __u32 fmode_created_bit = 1 << 20;
/* Kernel text ranges of the functions that check capabilities without audit. */
SHARED const volatile __u64 noaudit_start[NOAUDIT_RANGES] = {};
SHARED const volatile __u64 noaudit_end[NOAUDIT_RANGES] = {};
SHARED const volatile __u32 noaudit_count = 0;
/* Per syscall number: the file change it makes (see CHANGE_* in imprint.h). */
SHARED const volatile __u8 file_change_syscalls[MAX_SYSCALLS] = {};
/* Per syscall number: the argument recorded and its slot (see ARG_* in imprint.h). */
SHARED const volatile __u8 arg_syscalls[MAX_SYSCALLS] = {};

/* Records a file change of a recorded cgroup (files.bpf.c). */
int imprint_file_change(__u32 change, __u64 arg0, __u64 arg1, __u64 arg2, __u64 arg3);

struct {
	__uint(type, BPF_MAP_TYPE_CGRP_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct cgroup_state);
} cgroup_states SHARED SEC(".maps");

/* Recorded (or ignored) cgroups by id, for probes without a cgroup pointer. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u32);
} cgroup_ids SHARED SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024);
} events SHARED SEC(".maps");

struct counters {
	__u64 values[COUNTER_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct counters);
} counters SHARED SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct drop_counts);
} cgroup_drops SHARED SEC(".maps");

/*
 * The processes of recorded cgroups by thread group id, while processes are
 * tracked (the loader sets one entry otherwise). Exited processes stay
 * until newer ones push them out, so an alert can still name the parents
 * that are gone; a reused pid is overwritten by its fork.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	__type(key, __u32);
	__type(value, struct process_info);
} processes SHARED SEC(".maps");

/* Scratch space for events too large for the BPF stack. */
union scratch {
	struct exec_event exec;
	struct file_event file;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, union scratch);
} scratch SHARED SEC(".maps");

/* Keeps the small event structs in the object's BTF, for the layout test. */
SHARED struct {
	struct syscall_event syscall;
	struct net_event net;
	struct cap_event cap;
	struct cgroup_event cgroup;
	struct process_info process;
	struct arg_event arg;
	struct arg_key arg_key;
} event_types;

static __always_inline void count(enum counter which)
{
	__u32 zero = 0;
	struct counters *c = bpf_map_lookup_elem(&counters, &zero);
	if (c && which < COUNTER_MAX)
		c->values[which]++;
}

/* Fields of `struct drop_counts`, as indexes of its __u64s. */
enum drop_field {
	DROP_RINGBUF = 0,
	DROP_MAP_FULL = 1,
	DROP_TRUNCATED = 2,
	DROP_READ_FAILS = 3,
};

/* The global counter of each drop field. */
static const enum counter drop_counter[] = {
	COUNTER_RINGBUF_DROPS,
	COUNTER_MAP_FULL,
	COUNTER_PATH_TRUNCATED,
	COUNTER_READ_FAILS,
};

/* Counts a loss for one cgroup and globally. */
static __always_inline void count_drop(__u64 cgroup_id, enum drop_field field)
{
	__u32 index = field & 3;
	count(drop_counter[index]);
	struct drop_counts *d = bpf_map_lookup_elem(&cgroup_drops, &cgroup_id);
	if (!d) {
		struct drop_counts zero = {};
		bpf_map_update_elem(&cgroup_drops, &cgroup_id, &zero, BPF_NOEXIST);
		d = bpf_map_lookup_elem(&cgroup_drops, &cgroup_id);
		if (!d) {
			/* The map is full: no cgroup can be charged with it. */
			count(COUNTER_DROPS_UNATTRIBUTED);
			return;
		}
	}
	__sync_fetch_and_add(&((__u64 *)d)[index], 1);
}

/*
 * Whether `view_cgroup_id` is `cgrp` or one of its ancestors. A function of
 * its own: its loop then takes no registers on the hot paths of the
 * programs that call it (once per cgroup, or per rare event).
 */
static __noinline bool under_view(struct cgroup *cgrp)
{
	int level = BPF_CORE_READ(cgrp, level);
	for (int i = 0; i < VIEW_DEPTH_MAX; i++) {
		if (i > level)
			break;
		struct cgroup *ancestor = NULL;
		bpf_core_read(&ancestor, sizeof(ancestor), &cgrp->ancestors[i]);
		if (ancestor && BPF_CORE_READ(ancestor, kn, id) == view_cgroup_id)
			return true;
	}
	return false;
}

/* Whether `cgrp` is in view: always, unless recording every cgroup with a
 * `view_cgroup_id`. */
static __always_inline bool in_view(struct cgroup *cgrp)
{
	return !record_all_cgroups || !view_cgroup_id || under_view(cgrp);
}

/* Whether events of this cgroup are recorded. */
static __always_inline bool recorded(__u64 cgroup_id)
{
	__u32 *flags = bpf_map_lookup_elem(&cgroup_ids, &cgroup_id);
	if (record_all_cgroups)
		return !(flags && (*flags & CGROUP_IGNORED));
	return flags && (*flags & CGROUP_RECORDED) && !(*flags & CGROUP_IGNORED);
}

/*
 * State of the current task's cgroup when it is recorded (created on first
 * use when recording every cgroup), NULL when it is not or is ignored. A
 * cgroup storage lookup: cheaper than a hash lookup by id.
 */
static __always_inline struct cgroup_state *current_state(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct cgroup *cgrp = task->cgroups->dfl_cgrp;
	/* A cgroup without any local storage is not recorded: one load, no helper call. */
	if (!record_all_cgroups && bpf_core_field_exists(cgrp->bpf_cgrp_storage) && !cgrp->bpf_cgrp_storage)
		return NULL;
	struct cgroup_state *state = bpf_cgrp_storage_get(&cgroup_states, cgrp, 0, 0);
	if (!state && record_all_cgroups) {
		state = bpf_cgrp_storage_get(&cgroup_states, cgrp, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (!state) {
			count(COUNTER_STORAGE_FAILS);
			return NULL;
		}
		if (!in_view(cgrp)) {
			/* Once per cgroup: its storage says so from now on. */
			state->flags = CGROUP_IGNORED;
			count(COUNTER_OUT_OF_VIEW);
			return NULL;
		}
		__u64 id = cgrp->kn->id;
		__u32 *flags = bpf_map_lookup_elem(&cgroup_ids, &id);
		if (flags)
			state->flags = *flags;
	}
	if (!state || (state->flags & CGROUP_IGNORED))
		return NULL;
	return state;
}

static __always_inline void fill_header(struct event_header *h, __u32 kind, __u64 cgroup_id)
{
	h->kind = kind;
	h->pid = bpf_get_current_pid_tgid() >> 32;
	h->cgroup_id = cgroup_id;
	h->timestamp_ns = bpf_ktime_get_boot_ns();
}

/* Sends an event; counts a drop for the cgroup when the ring buffer is full. */
static __always_inline bool send(void *event, __u64 size, __u64 cgroup_id)
{
	if (bpf_ringbuf_output(&events, event, size, 0)) {
		count_drop(cgroup_id, DROP_RINGBUF);
		return false;
	}
	count(COUNTER_EVENTS);
	return true;
}

static __always_inline union scratch *scratch_space(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&scratch, &zero);
}

/* Per-CPU buffer the path walk writes into, before the copy into an event. */
struct path_buffer {
	char bytes[PATH_BUF + NAME_BUF];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct path_buffer);
} path_buffers SHARED SEC(".maps");

struct walk_state {
	struct dentry *dentry;
	struct mount *mnt;
	__u32 off;
	__u16 flags;
	__u16 done;
};

/* One step of the walk: one component, or one crossing to a parent mount. */
static long walk_step(__u32 index, void *data)
{
	struct walk_state *s = data;
	__u32 zero = 0;
	struct path_buffer *buf = bpf_map_lookup_elem(&path_buffers, &zero);
	if (!buf)
		return 1;
	struct dentry *dentry = s->dentry;
	struct mount *mnt = s->mnt;
	struct dentry *mnt_root = BPF_CORE_READ(mnt, mnt.mnt_root);
	struct dentry *parent = BPF_CORE_READ(dentry, d_parent);
	if (dentry == mnt_root) {
		struct mount *mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
		if (mnt == mnt_parent) {
			s->done = 1;
			return 1;
		}
		s->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
		s->mnt = mnt_parent;
		return 0;
	}
	__u32 off = s->off;
	if (dentry == parent) {
		/* Its own parent yet not its mount's root: a pseudo file
		 * (`memfd:NAME`, an anonymous inode) in no tree; its name is
		 * all the path it has. */
		s->done = 1;
		if (off == 0) {
			const unsigned char *name = BPF_CORE_READ(dentry, d_name.name);
			long n = bpf_probe_read_kernel_str(&buf->bytes[0], NAME_BUF, name);
			if (n > 0)
				s->off = n;
		}
		return 1;
	}
	if (off >= PATH_BUF)
		return 1;
	const unsigned char *name = BPF_CORE_READ(dentry, d_name.name);
	long n = bpf_probe_read_kernel_str(&buf->bytes[off & (PATH_BUF - 1)], NAME_BUF, name);
	if (n <= 0)
		return 1;
	s->off = off + n;
	s->dentry = parent;
	return 0;
}

/*
 * Writes the components of `path` into `dst`, leaf first, each NUL-ended,
 * crossing mount points up to the root of the caller's mount namespace.
 * Returns the bytes written; sets PATH_TRUNCATED in `flags` when the walk
 * stopped early. `dst` must hold PATH_BUF + NAME_BUF bytes. The walk runs in
 * bpf_loop, so the verifier checks one step, not every unrolled path.
 */
static __always_inline __u32 walk_path(const struct path *path, char *dst, __u16 *flags)
{
	struct vfsmount *vfsmnt = BPF_CORE_READ(path, mnt);
	struct walk_state s = {
		.dentry = BPF_CORE_READ(path, dentry),
		.mnt = container_of(vfsmnt, struct mount, mnt),
	};
	bpf_loop(PATH_DEPTH, walk_step, &s, 0);
	if (!s.done)
		*flags |= PATH_TRUNCATED;
	__u32 zero = 0;
	struct path_buffer *buf = bpf_map_lookup_elem(&path_buffers, &zero);
	__u32 len = s.off;
	if (!buf || len == 0)
		return 0;
	if (len > PATH_BUF + NAME_BUF)
		len = PATH_BUF + NAME_BUF;
	if (bpf_probe_read_kernel(dst, len, buf->bytes))
		return 0;
	return len;
}

/* The open file behind `fd` of `task`, or NULL. */
static __always_inline struct file *file_of_fd(struct task_struct *task, long fd)
{
	struct fdtable *fdt = task->files->fdt;
	if (!fdt || fd < 0 || fd >= fdt->max_fds)
		return NULL;
	struct file **fds = fdt->fd;
	struct file *file = NULL;
	bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
	return file;
}

#endif /* IMPRINT_COMMON_H */
