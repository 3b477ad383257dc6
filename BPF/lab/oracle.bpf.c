// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The oracle of the flood benchmark: it knows which sources are the attack
 * (oracle_config: one IPv4 and one IPv6 prefix, set per scenario) and drops
 * exactly those, passing everything else. No real filter can know that; it is
 * the ceiling for legitimate traffic beside a flood, as the trivial XDP_DROP
 * program is the ceiling for speed. Attached only to lab interfaces.
 *
 * Beside it, the cost benchmark's floors (at the end of this file), which are
 * only run with BPF_PROG_TEST_RUN.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lab.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fg_oracle_config);
} oracle_config SEC(".maps");

SEC("xdp")
int floodgate_oracle(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct fg_oracle_config *cfg;
	__u32 zero = 0;
	int w;

	cfg = bpf_map_lookup_elem(&oracle_config, &zero);
	if (!cfg || (void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || !cfg->v4_mask)
			return XDP_PASS;
		return (ip->saddr & cfg->v4_mask) == cfg->v4_net ? XDP_DROP : XDP_PASS;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		__u32 differ = 0;

		if ((void *)(ip6 + 1) > data_end || !cfg->v6_mask[0])
			return XDP_PASS;
#pragma unroll
		for (w = 0; w < 4; w++)
			differ |= (ip6->saddr.in6_u.u6_addr32[w] & cfg->v6_mask[w]) ^ cfg->v6_net[w];
		return differ ? XDP_PASS : XDP_DROP;
	}
	return XDP_PASS;
}

/*
 * The floors of the cost benchmark: the least a real filter's cached drop can
 * do, as issue 11's lean drop path describes it ("one per-CPU lookup and one
 * per-CPU counter write"). Each reads the packet's source (and, for the
 * class's floor, its UDP port and the payload's first word, which is where a
 * SIP method is named), hashes it to a slot of a per-CPU direct-mapped array,
 * compares the whole key and, on a hit, counts the packet in the slot and
 * drops it. A miss fills the slot and passes, so the first run of a packet on
 * a CPU makes the runs after it hits. What a real filter needs beyond this is
 * left out on purpose: an expiry, a check that the policy has not changed,
 * counters an operator can read by class and reason, an event now and then.
 * The floor is what the trivial program's ratio can't go under, and the cost
 * section prints how far the filter's cached drops are above it.
 */
struct floor_slot {
	__u32 key[6]; /* the source (IPv4 mapped into IPv6), then the port and the payload's first word, or zeros */
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FG_FLOOR_SLOTS);
	__type(key, __u32);
	__type(value, struct floor_slot);
} floor_slots SEC(".maps");

/* The packet's key: 1 if it has one (an untagged IPv4 frame without options,
 * or an IPv6 frame; with `by_class`, UDP with four payload bytes). */
static __always_inline int floor_key(struct xdp_md *ctx, __u32 key[6], int by_class)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct udphdr *udp;
	__u8 protocol;

	if ((void *)(eth + 1) > data_end)
		return 0;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || *(__u8 *)ip != 0x45)
			return 0;
		key[0] = 0;
		key[1] = 0;
		key[2] = bpf_htonl(0x0000ffff);
		key[3] = ip->saddr;
		protocol = ip->protocol;
		udp = (void *)(ip + 1);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return 0;
		__builtin_memcpy(key, &ip6->saddr, 16);
		protocol = ip6->nexthdr;
		udp = (void *)(ip6 + 1);
	} else {
		return 0;
	}
	key[4] = 0;
	key[5] = 0;
	if (by_class) {
		if (protocol != IPPROTO_UDP || (void *)(udp + 1) + 4 > data_end)
			return 0;
		key[4] = udp->dest;
		key[5] = *(__u32 *)(udp + 1);
	}
	return 1;
}

static __always_inline int floor_drop(struct xdp_md *ctx, int by_class)
{
	__u32 key[6], index, i;
	struct floor_slot *slot;

	if (!floor_key(ctx, key, by_class))
		return XDP_PASS;
	index = ((key[0] ^ key[1] ^ key[2] ^ key[3] ^ key[4] ^ key[5]) * 2654435761U) >> (32 - FG_FLOOR_SLOTS_LOG);
	slot = bpf_map_lookup_elem(&floor_slots, &index);
	if (!slot)
		return XDP_PASS;
	if (slot->key[0] != key[0] || slot->key[1] != key[1] || slot->key[2] != key[2] || slot->key[3] != key[3] ||
	    slot->key[4] != key[4] || slot->key[5] != key[5]) {
#pragma unroll
		for (i = 0; i < 6; i++)
			slot->key[i] = key[i];
		slot->packets = 0;
		slot->bytes = 0;
		return XDP_PASS;
	}
	slot->packets++;
	slot->bytes += ctx->data_end - ctx->data;
	return XDP_DROP;
}

SEC("xdp")
int floodgate_floor_source(struct xdp_md *ctx)
{
	return floor_drop(ctx, 0);
}

SEC("xdp")
int floodgate_floor_class(struct xdp_md *ctx)
{
	return floor_drop(ctx, 1);
}
