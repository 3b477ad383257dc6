// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The floors of the cost benchmark: a minimal cached drop, as issue 11's lean
 * drop path describes it ("one per-CPU lookup and one per-CPU counter write").
 * Each reads the packet's key, hashes it to a slot of a per-CPU direct-mapped
 * array, compares the whole key and, on a hit, adds the packet to the slot's
 * packets and bytes (side by side, as the filter's counters are) and drops it.
 * A miss fills the slot and passes, so after a packet's first run on a CPU the
 * runs that follow hit. (An all-zero key, the IPv6 source ::, finds an empty
 * slot its own.) The source floor's key is the source alone, as a ban's drop
 * is; the class floor's adds the UDP destination port and the payload's first
 * four bytes, where a SIP method is named, as a rate drop is keyed by class.
 *
 * What a filter needs besides is left out on purpose: an expiry, a check that
 * the policy has not changed, counters by class and reason, an event now and
 * then, and (for the class) the checks that let a frame's first bytes decide
 * it. A cached drop of the filter is expected to cost at least its floor.
 *
 * The new-source floor is what a filter that keeps a bucket per source does
 * for a source it has not seen: a lookup in a hash map that misses, then an
 * insert. (The lookup is what a known source's packet needs. Inserting first,
 * BPF_NOEXIST, would skip it for a new source, but an LRU hash takes a free
 * element and the bucket's lock before it finds the key there, so every known
 * source's packet would pay for that instead.) Its map has the filter's
 * fg_sources' shape (an LRU hash, a 20-byte key, a 32-byte value; its size is
 * set at load to the filter's), and nothing else is done: no clock, no prefix,
 * no budget, no content.
 * These three are only ever run with BPF_PROG_TEST_RUN; never attached.
 *
 * The floods' floor (floodgate_floor_held, at the end; lab.h) is attached
 * like the oracle, in a flood's lab: it knows the attack as the oracle does,
 * and adds to the oracle's drop the least that a filter keeping state adds to
 * a held network's drop. The floods section prints its ns over the oracle
 * beside Floodgate's, for the drop path's target (within 5 ns of the oracle).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lab.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct floor_slot {
	__u32 key[6]; /* the source (IPv4 mapped into IPv6); then, by class, the port and the payload's first word */
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
 * or an IPv6 frame; by class, UDP with at least four payload bytes). */
static __always_inline int floor_key(struct xdp_md *ctx, __u32 key[6], int by_class)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct udphdr *udp;
	__u8 protocol;

	if ((void *)(eth + 1) > data_end)
		return 0;
	if (lab_eth_proto(eth) == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || *(__u8 *)ip != 0x45)
			return 0;
		key[0] = 0;
		key[1] = 0;
		key[2] = bpf_htonl(0x0000ffff);
		key[3] = ip->saddr;
		protocol = ip->protocol;
		udp = (void *)(ip + 1);
	} else if (lab_eth_proto(eth) == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return 0;
		__builtin_memcpy(key, &ip6->saddr, 16);
		protocol = ip6->nexthdr;
		udp = (void *)(ip6 + 1);
	} else {
		return 0;
	}
	if (by_class) {
		if (protocol != IPPROTO_UDP || (void *)(udp + 1) + 4 > data_end)
			return 0;
		key[4] = udp->dest;
		key[5] = *(__u32 *)(udp + 1);
	}
	return 1;
}

/* `by_class` is a constant in each program: the source floor hashes and
 * compares the four words of its key, and nothing of the other two. */
static __always_inline int floor_drop(struct xdp_md *ctx, int by_class)
{
	__u32 key[6] = {}, index, hash, i;
	struct floor_slot *slot;

	if (!floor_key(ctx, key, by_class))
		return XDP_PASS;
	hash = key[0] ^ key[1] ^ key[2] ^ key[3];
	if (by_class)
		hash ^= key[4] ^ key[5];
	index = (hash * 2654435761U) >> (32 - FG_FLOOR_SLOTS_LOG);
	slot = bpf_map_lookup_elem(&floor_slots, &index);
	if (!slot)
		return XDP_PASS;
	if (slot->key[0] != key[0] || slot->key[1] != key[1] || slot->key[2] != key[2] || slot->key[3] != key[3] ||
	    (by_class && (slot->key[4] != key[4] || slot->key[5] != key[5]))) {
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

/* The new-source floor's map: fg_sources' shape, not its layouts (the lab
 * shares nothing with the filter's header). */
struct floor_source_key {
	__u32 addr[4];
	__u32 traffic_class;
};

struct floor_source_state {
	__u64 tat, packets, drops;
	__u32 window_start_ms, window_drops;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1); /* sized at load */
	__type(key, struct floor_source_key);
	__type(value, struct floor_source_state);
} floor_sources SEC(".maps");

/* A source the map has: dropped (the floor expects none); a new one: inserted
 * and passed, as the filter passes a new source's OPTIONS. */
SEC("xdp")
int floodgate_floor_new_source(struct xdp_md *ctx)
{
	struct floor_source_state init = {.packets = 1}, *st;
	struct floor_source_key key = {.traffic_class = 1};
	__u32 k[6] = {};

	if (!floor_key(ctx, k, 0))
		return XDP_ABORTED;
	__builtin_memcpy(key.addr, k, sizeof(key.addr));
	st = bpf_map_lookup_elem(&floor_sources, &key);
	if (st)
		return XDP_DROP;
	bpf_map_update_elem(&floor_sources, &key, &init, BPF_NOEXIST);
	return XDP_PASS;
}

/* The floods' floor (lab.h): configured by the lab before the flood. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fg_floor_policy);
} floor_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fg_floor_held);
} floor_held SEC(".maps");

/* Drops a UDP datagram to the SIP port from the held network while the hold
 * lasts under the policy it was made under, and counts it; passes the rest.
 * The source is compared branch-free, as the filter's held aggregate is. */
SEC("xdp")
int floodgate_floor_held(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct fg_floor_policy *policy;
	struct fg_floor_held *held;
	struct udphdr *udp;
	__u32 zero = 0, src[4];
	__u64 jiffies;

	policy = bpf_map_lookup_elem(&floor_policy, &zero);
	held = bpf_map_lookup_elem(&floor_held, &zero);
	if (!policy || !held)
		return XDP_PASS;
	jiffies = bpf_jiffies64();
	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (lab_eth_proto(eth) == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || *(__u8 *)ip != 0x45 || (ip->frag_off & bpf_htons(0x3fff)) ||
		    ip->protocol != IPPROTO_UDP)
			return XDP_PASS;
		src[0] = 0;
		src[1] = 0;
		src[2] = bpf_htonl(0x0000ffff);
		src[3] = ip->saddr;
		udp = (void *)(ip + 1);
	} else if (lab_eth_proto(eth) == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end || ip6->nexthdr != IPPROTO_UDP)
			return XDP_PASS;
		__builtin_memcpy(src, &ip6->saddr, sizeof(src));
		udp = (void *)(ip6 + 1);
	} else {
		return XDP_PASS;
	}
	if ((void *)(udp + 1) > data_end || udp->dest != policy->sip_port)
		return XDP_PASS;
	if (jiffies >= held->until_jiffies || held->generation != policy->generation ||
	    (((src[0] & held->mask[0]) ^ held->network[0]) | ((src[1] & held->mask[1]) ^ held->network[1]) |
	     ((src[2] & held->mask[2]) ^ held->network[2]) | ((src[3] & held->mask[3]) ^ held->network[3])))
		return XDP_PASS;
	held->packets++;
	held->bytes += data_end - data;
	return XDP_DROP;
}
