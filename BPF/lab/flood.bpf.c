// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The flood generator: run with BPF_PROG_TEST_RUN in live-frames mode on a
 * veth end inside a lab namespace, it rewrites each frame's source address as
 * flood_config says and transmits it to the peer (XDP_TX), where the filter
 * under test sees it. Never attached to an interface.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lab.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* How to rewrite the frames; written by the generator before the run. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fg_flood_config);
} flood_config SEC(".maps");

static __always_inline __u16 fg_csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum;
}

/* A frame sent as it is: nothing to read, so nothing is (the generator's
 * ceiling is then the kernel's, not this program's). */
SEC("xdp")
int floodgate_flood_fixed(struct xdp_md *ctx)
{
	return XDP_TX;
}

SEC("xdp")
int floodgate_flood(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct fg_flood_config *cfg;
	__u32 zero = 0, off, bits;

	cfg = bpf_map_lookup_elem(&flood_config, &zero);
	if (!cfg)
		return XDP_TX;
	if (cfg->interval_ns) {
		__u64 now = bpf_ktime_get_ns();

		if (now < cfg->next_ns)
			return XDP_DROP;
		if (now - cfg->next_ns > FG_FLOOD_PACE_SLACK_NS)
			cfg->next_ns = now;
		cfg->next_ns += cfg->interval_ns;
	}
	if (cfg->mode == FG_FLOOD_FIXED)
		return XDP_TX;
	/* The verifier needs the offsets bounded. */
	off = cfg->src_offset & 0xff;
	bits = cfg->random_bits;

	if (cfg->mode == FG_FLOOD_RANDOM_V4) {
		__u32 csum_off = cfg->csum_offset & 0xff;
		__be32 *src = data + off;
		__u16 *csum = data + csum_off;
		__u32 mask, old, new, sum;

		if ((void *)(src + 1) > data_end || (void *)(csum + 1) > data_end || bits == 0 || bits > 32)
			return XDP_TX;
		mask = bits == 32 ? ~0U : (1U << bits) - 1;
		old = *src;
		new = (old & ~bpf_htonl(mask)) | (bpf_htonl(bpf_get_prandom_u32() & mask));
		*src = new;
		/* RFC 1624: HC' = ~(~HC + ~m + m'), over the two 16-bit halves. */
		sum = (__u16)~*csum;
		sum += (__u16)~old + (__u16)~(old >> 16);
		sum += (__u16)new + (__u16)(new >> 16);
		*csum = ~fg_csum_fold(sum);
	} else if (cfg->mode == FG_FLOOD_RANDOM_V6) {
		__u64 *low = data + off + 8;
		__u64 mask, value;

		__be32 *middle = data + off + 4;

		if ((void *)(low + 1) > data_end || bits == 0 || bits > 96)
			return XDP_TX;
		mask = bits >= 64 ? ~0ULL : (1ULL << bits) - 1;
		value = ((__u64)bpf_get_prandom_u32() << 32) | bpf_get_prandom_u32();
		/* The low 64 bits, in network order. */
		*low = (*low & ~bpf_cpu_to_be64(mask)) | bpf_cpu_to_be64(value & mask);
		/* Bits 64 to 95 from the end: the address's second word (after a /32). */
		if (bits > 64) {
			__u32 high = bits == 96 ? ~0U : (1U << (bits - 64)) - 1;

			*middle = (*middle & ~bpf_htonl(high)) | bpf_htonl(bpf_get_prandom_u32() & high);
		}
	}
	return XDP_TX;
}
