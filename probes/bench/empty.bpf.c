// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * Empty programs on imprint's hooks: the floor the overhead benchmark
 * measures imprint's probes against (the cost of the hook itself).
 */
#include "../bpf/vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tp_btf/sys_enter")
int BPF_PROG(empty_sys_enter, struct pt_regs *regs, long id)
{
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat")
int empty_exit_openat(void *ctx)
{
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(empty_fork, struct task_struct *parent, struct task_struct *child)
{
	return 0;
}
