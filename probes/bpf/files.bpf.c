// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * Files: opens (openat, openat2, open, creat) resolved at syscall exit from
 * the new file descriptor, so relative names, dirfds and symlinks come out as
 * the kernel resolved them; and changes (unlink, rmdir, mkdir, rename,
 * chmod, chown families) at syscall entry, handed over by the syscall probe
 * for recorded cgroups only, with the directory a relative name starts from
 * resolved in the kernel and the name kept as given.
 *
 * Both are de-duplicated per cgroup before any path walk: opens on (inode,
 * device, name hash, access), mutations on (operation, name hash, directory
 * inode), in bounded LRU maps. A repeated open costs two map lookups.
 */
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AT_FDCWD -100
#define AT_REMOVEDIR 0x200
#define O_ACCMODE 00000003
#define O_WRONLY 00000001
#define O_CREAT 00000100
#define O_TRUNC 00001000
#define FMODE_READ 0x1
#define FMODE_WRITE 0x2

/* Offset in `file_event.data` of the raw name of a mutation. */
#define RAW_NAME_OFFSET (PATH_BUF + NAME_BUF)

/*
 * De-duplication key of an open. The inode's address and number with the
 * name's hash identify a file while it is open or cached; a recreated file
 * under another name differs by the name hash.
 */
struct open_key {
	__u64 cgroup_id;
	__u64 inode;
	__u64 ino;
	__u32 name_hash;
	__u32 access;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct open_key);
	__type(value, __u8);
} opens_seen SEC(".maps");

struct mutation_key {
	__u64 cgroup_id;
	__u64 name_hash;
	__u64 dir_ino;
	__u32 dir_dev;
	__u32 op;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct mutation_key);
	__type(value, __u8);
} mutations_seen SEC(".maps");

enum open_kind {
	OPEN_OPENAT,
	OPEN_OPENAT2,
	OPEN_OPEN,
	OPEN_CREAT,
};

/* The flags the process passed, read back from its saved registers. */
static __always_inline __u64 open_flags(struct task_struct *task, enum open_kind kind)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	switch (kind) {
	case OPEN_OPENAT:
		return PT_REGS_PARM3_SYSCALL(regs);
	case OPEN_OPEN:
		return PT_REGS_PARM2_SYSCALL(regs);
	case OPEN_OPENAT2: {
		struct open_how *how = (struct open_how *)PT_REGS_PARM3_SYSCALL(regs);
		__u64 flags = 0;
		bpf_probe_read_user(&flags, sizeof(flags), &how->flags);
		return flags;
	}
	case OPEN_CREAT:
		return O_CREAT | O_WRONLY | O_TRUNC;
	}
	return 0;
}

/* Bytes of the start of `struct file` read at once: mode, inode and path. */
#define FILE_HEAD 192

static __always_inline int record_open(struct trace_event_raw_sys_exit *ctx, enum open_kind kind)
{
	long fd = ctx->ret;
	if (fd < 0)
		return 0;
	if (!current_state())
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	struct file *file = file_of_fd(task, fd);
	if (!file) {
		count_drop(cgroup_id, DROP_READ_FAILS);
		return 0;
	}
	/* One read for the fields of the file the key needs, at their CO-RE offsets. */
	char head[FILE_HEAD];
	__u32 mode_at = bpf_core_field_offset(struct file, f_mode);
	__u32 inode_at = bpf_core_field_offset(struct file, f_inode);
	__u32 dentry_at = bpf_core_field_offset(struct file, f_path.dentry);
	if (mode_at > FILE_HEAD - 4 || inode_at > FILE_HEAD - 8 || dentry_at > FILE_HEAD - 8 ||
	    bpf_probe_read_kernel(head, sizeof(head), file)) {
		count_drop(cgroup_id, DROP_READ_FAILS);
		return 0;
	}
	__u32 fmode = *(__u32 *)(head + mode_at);
	struct inode *inode = *(struct inode **)(head + inode_at);
	struct dentry *dentry = *(struct dentry **)(head + dentry_at);
	__u64 flags = open_flags(task, kind);
	__u32 access = 0;
	if (fmode & FMODE_READ)
		access |= ACCESS_READ;
	if (fmode & FMODE_WRITE)
		access |= ACCESS_WRITE;
	if (fmode & fmode_created_bit)
		access |= ACCESS_CREATE;
	if ((flags & O_TRUNC) && (access & ACCESS_WRITE))
		access |= ACCESS_TRUNCATE;

	struct open_key key = {
		.cgroup_id = cgroup_id,
		.inode = (__u64)inode,
		.ino = BPF_CORE_READ(inode, i_ino),
		.name_hash = BPF_CORE_READ(dentry, d_name.hash),
		.access = access,
	};
	if (bpf_map_lookup_elem(&opens_seen, &key))
		return 0;

	union scratch *space = scratch_space();
	if (!space)
		return 0;
	struct file_event *e = &space->file;
	fill_header(&e->header, EVENT_FILE, cgroup_id);
	e->op = FILE_OPEN;
	e->access = access;
	e->open_flags = flags;
	e->name_len = 0;
	e->path_flags = 0;
	__u32 len = walk_path(&file->f_path, e->data, &e->path_flags);
	if (e->path_flags & PATH_TRUNCATED)
		count_drop(cgroup_id, DROP_TRUNCATED);
	if (len > PATH_BUF + NAME_BUF)
		len = PATH_BUF + NAME_BUF;
	e->dir_len = len;
	if (send(e, offsetof(struct file_event, data) + len, cgroup_id)) {
		__u8 one = 1;
		bpf_map_update_elem(&opens_seen, &key, &one, BPF_ANY);
	}
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat")
int imprint_exit_openat(struct trace_event_raw_sys_exit *ctx)
{
	return record_open(ctx, OPEN_OPENAT);
}

SEC("tracepoint/syscalls/sys_exit_openat2")
int imprint_exit_openat2(struct trace_event_raw_sys_exit *ctx)
{
	return record_open(ctx, OPEN_OPENAT2);
}

SEC("tracepoint/syscalls/sys_exit_open")
int imprint_exit_open(struct trace_event_raw_sys_exit *ctx)
{
	return record_open(ctx, OPEN_OPEN);
}

SEC("tracepoint/syscalls/sys_exit_creat")
int imprint_exit_creat(struct trace_event_raw_sys_exit *ctx)
{
	return record_open(ctx, OPEN_CREAT);
}

/* FNV-1a over the NUL-ended name in `name`, at most RAW_NAME_BUF bytes. */
static __always_inline __u64 name_hash(const char *name, long len)
{
	__u64 hash = 0xcbf29ce484222325ULL;
	for (int i = 0; i < RAW_NAME_BUF; i++) {
		if (i >= len)
			break;
		hash ^= (__u8)name[i];
		hash *= 0x100000001b3ULL;
	}
	return hash;
}

/*
 * Records a mutation of `name_ptr` (a user pointer, 0 for none) relative to
 * `dirfd`. Without a name, the file behind `dirfd` itself is the target.
 */
static __noinline int record_mutation(__u32 op, long dirfd, __u64 name_ptr)
{
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	union scratch *space = scratch_space();
	if (!space)
		return 0;
	struct file_event *e = &space->file;
	char *name = e->data + RAW_NAME_OFFSET;
	long n = 0;
	if (name_ptr)
		n = bpf_probe_read_user_str(name, RAW_NAME_BUF, (const char *)name_ptr);
	if (n < 0)
		n = 0;
	/* n counts the NUL; a name of "" means the dirfd itself. */
	bool absolute = n > 1 && name[0] == '/';

	struct task_struct *task = bpf_get_current_task_btf();
	const struct path *dir = NULL;
	if (!absolute) {
		if (dirfd == AT_FDCWD) {
			struct fs_struct *fs = BPF_CORE_READ(task, fs);
			dir = &fs->pwd;
		} else {
			struct file *file = file_of_fd(task, dirfd);
			if (file)
				dir = &file->f_path;
		}
		if (!dir) {
			count_drop(cgroup_id, DROP_READ_FAILS);
			return 0;
		}
	}

	struct mutation_key key = {
		.cgroup_id = cgroup_id,
		.name_hash = name_hash(name, n),
		.dir_ino = dir ? BPF_CORE_READ(dir, dentry, d_inode, i_ino) : 0,
		.dir_dev = dir ? BPF_CORE_READ(dir, dentry, d_inode, i_sb, s_dev) : 0,
		.op = op,
	};
	if (bpf_map_lookup_elem(&mutations_seen, &key))
		return 0;

	fill_header(&e->header, EVENT_FILE, cgroup_id);
	e->op = op;
	e->access = 0;
	e->open_flags = 0;
	e->path_flags = dir ? PATH_RELATIVE_TO_DIR : 0;
	e->dir_len = dir ? walk_path(dir, e->data, &e->path_flags) : 0;
	e->name_len = n > 0 ? n - 1 : 0;
	if (e->path_flags & PATH_TRUNCATED)
		count_drop(cgroup_id, DROP_TRUNCATED);
	if (send(e, sizeof(*e), cgroup_id)) {
		__u8 one = 1;
		bpf_map_update_elem(&mutations_seen, &key, &one, BPF_ANY);
	}
	return 0;
}

/*
 * Entry point from the syscall probe: `change` is the syscall's entry in
 * `file_change_syscalls`, arg0..arg3 its first arguments.
 */
__noinline int imprint_file_change(__u32 change, __u64 arg0, __u64 arg1, __u64 arg2, __u64 arg3)
{
	__u32 op = change & CHANGE_OP_MASK;
	switch (change & CHANGE_LAYOUT_MASK) {
	case CHANGE_PATH:
		return record_mutation(op, AT_FDCWD, arg0);
	case CHANGE_DIRFD_PATH:
		return record_mutation(op, (int)arg0, arg1);
	case CHANGE_FD:
		return record_mutation(op, (int)arg0, 0);
	case CHANGE_PATH_PAIR:
		record_mutation(FILE_RENAME_FROM, AT_FDCWD, arg0);
		return record_mutation(FILE_RENAME_TO, AT_FDCWD, arg1);
	case CHANGE_DIRFD_PAIR:
		record_mutation(FILE_RENAME_FROM, (int)arg0, arg1);
		return record_mutation(FILE_RENAME_TO, (int)arg2, arg3);
	case CHANGE_UNLINKAT:
		return record_mutation((arg2 & AT_REMOVEDIR) ? FILE_RMDIR : FILE_UNLINK, (int)arg0, arg1);
	case CHANGE_PATH_ARG1:
		return record_mutation(op, AT_FDCWD, arg1);
	case CHANGE_DIRFD_ARG1:
		return record_mutation(op, (int)arg1, arg2);
	case CHANGE_DIRFD_ARG2:
		return record_mutation(op, (int)arg2, arg3);
	case CHANGE_UNIX_BIND: {
		/* sockaddr_un: a 16-bit family, then the path; an abstract name
		 * (a leading NUL) makes no file. */
		__u16 family = 0;
		char first = 0;
		if (bpf_probe_read_user(&family, sizeof(family), (void *)arg1) ||
		    family != 1 /* AF_UNIX */ ||
		    bpf_probe_read_user(&first, 1, (void *)(arg1 + 2)) || first == 0)
			return 0;
		return record_mutation(op, AT_FDCWD, arg1 + 2);
	}
	}
	return 0;
}
