// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The oracle of the flood benchmark: it knows which sources are the attack
 * (oracle_config: one IPv4 and one IPv6 prefix, set per scenario) and drops
 * exactly those, passing everything else. No real filter can know that; it is
 * the ceiling for legitimate traffic beside a flood, as the trivial XDP_DROP
 * program is the ceiling for speed. Attached only to lab interfaces.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
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
	if (lab_eth_proto(eth) == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || !cfg->v4_mask)
			return XDP_PASS;
		return (ip->saddr & cfg->v4_mask) == cfg->v4_net ? XDP_DROP : XDP_PASS;
	}
	if (lab_eth_proto(eth) == bpf_htons(ETH_P_IPV6)) {
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
