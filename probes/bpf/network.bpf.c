// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * Network: outbound connects (TCP and UDP) and unconnected UDP sends from
 * the cgroup socket-address hooks, which see the address the process asked
 * for; binds from the same hooks; listening sockets and inbound TCP accepts
 * from `sock/inet_sock_set_state`, attributed through the socket's own
 * cgroup (accepts complete in softirq, where the current task is unrelated).
 * De-duplicated per cgroup on (kind, protocol, address, port).
 * The socket-address programs always return 1: imprint observes, never denies.
 */
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define TCP_ESTABLISHED 1
#define TCP_SYN_RECV 3
#define TCP_LISTEN 10

struct net_key {
	__u64 cgroup_id;
	__u8 kind;
	__u8 family;
	__u8 protocol;
	__u8 _pad;
	__u16 port;
	__u16 _pad2;
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct net_key);
	__type(value, __u8);
} net_seen SEC(".maps");

/* Sends `e` unless the same (kind, protocol, remote or local end) was seen. */
static __always_inline void record_endpoint(struct net_event *e, bool remote)
{
	struct net_key key = {
		.cgroup_id = e->header.cgroup_id,
		.kind = e->kind,
		.family = e->family,
		.protocol = e->protocol,
		.port = remote ? e->remote_port : e->local_port,
	};
	__builtin_memcpy(key.addr, remote ? e->remote_addr : e->local_addr, 16);
	if (bpf_map_lookup_elem(&net_seen, &key))
		return;
	if (send(e, sizeof(*e), e->header.cgroup_id)) {
		__u8 one = 1;
		bpf_map_update_elem(&net_seen, &key, &one, BPF_ANY);
	}
}

static __always_inline void record_sock_addr(struct bpf_sock_addr *ctx, __u8 kind, bool v6)
{
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	if (!recorded(cgroup_id))
		return;
	struct net_event e = {};
	fill_header(&e.header, EVENT_NET, cgroup_id);
	e.kind = kind;
	e.family = v6 ? AF_INET6 : AF_INET;
	e.protocol = ctx->protocol;
	__u16 port = ctx->user_port;
	__u8 *addr = kind == NET_BIND ? e.local_addr : e.remote_addr;
	if (v6) {
		__u32 words[4];
		words[0] = ctx->user_ip6[0];
		words[1] = ctx->user_ip6[1];
		words[2] = ctx->user_ip6[2];
		words[3] = ctx->user_ip6[3];
		__builtin_memcpy(addr, words, 16);
	} else {
		__u32 ip = ctx->user_ip4;
		__builtin_memcpy(addr, &ip, 4);
	}
	if (kind == NET_BIND)
		e.local_port = port;
	else
		e.remote_port = port;
	record_endpoint(&e, kind != NET_BIND);
}

SEC("cgroup/connect4")
int imprint_connect4(struct bpf_sock_addr *ctx)
{
	record_sock_addr(ctx, NET_CONNECT, false);
	return 1;
}

SEC("cgroup/connect6")
int imprint_connect6(struct bpf_sock_addr *ctx)
{
	record_sock_addr(ctx, NET_CONNECT, true);
	return 1;
}

SEC("cgroup/sendmsg4")
int imprint_sendmsg4(struct bpf_sock_addr *ctx)
{
	record_sock_addr(ctx, NET_SEND, false);
	return 1;
}

SEC("cgroup/sendmsg6")
int imprint_sendmsg6(struct bpf_sock_addr *ctx)
{
	record_sock_addr(ctx, NET_SEND, true);
	return 1;
}

SEC("cgroup/bind4")
int imprint_bind4(struct bpf_sock_addr *ctx)
{
	record_sock_addr(ctx, NET_BIND, false);
	return 1;
}

SEC("cgroup/bind6")
int imprint_bind6(struct bpf_sock_addr *ctx)
{
	record_sock_addr(ctx, NET_BIND, true);
	return 1;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(imprint_sock_state, const struct sock *sk, const int oldstate, const int newstate)
{
	__u8 kind;
	if (newstate == TCP_LISTEN)
		kind = NET_LISTEN;
	else if (oldstate == TCP_SYN_RECV && newstate == TCP_ESTABLISHED)
		kind = NET_ACCEPT;
	else
		return 0;
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	struct cgroup *cgrp = BPF_CORE_READ(sk, sk_cgrp_data.cgroup);
	__u64 cgroup_id = BPF_CORE_READ(cgrp, kn, id);
	if (!recorded(cgroup_id) || !in_view(cgrp))
		return 0;
	struct net_event e = {};
	fill_header(&e.header, EVENT_NET, cgroup_id);
	if (kind == NET_ACCEPT)
		e.header.pid = 0; /* softirq: the current task is not the owner */
	e.kind = kind;
	e.protocol = IPPROTO_TCP;
	e.family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e.local_port = bpf_htons(BPF_CORE_READ(sk, __sk_common.skc_num));
	e.remote_port = BPF_CORE_READ(sk, __sk_common.skc_dport);
	if (e.family == AF_INET6) {
		BPF_CORE_READ_INTO(&e.local_addr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&e.remote_addr, sk, __sk_common.skc_v6_daddr);
	} else {
		BPF_CORE_READ_INTO((__u32 *)e.local_addr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)e.remote_addr, sk, __sk_common.skc_daddr);
	}
	/* Accepts are keyed by the peer address and the local port. */
	if (kind == NET_ACCEPT) {
		struct net_key key = {
			.cgroup_id = cgroup_id,
			.kind = kind,
			.family = e.family,
			.protocol = e.protocol,
			.port = e.local_port,
		};
		__builtin_memcpy(key.addr, e.remote_addr, 16);
		if (bpf_map_lookup_elem(&net_seen, &key))
			return 0;
		if (send(&e, sizeof(e), cgroup_id)) {
			__u8 one = 1;
			bpf_map_update_elem(&net_seen, &key, &one, BPF_ANY);
		}
		return 0;
	}
	record_endpoint(&e, false);
	return 0;
}
