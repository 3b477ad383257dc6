// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Floodgate: per-source, per-class rate limiting at XDP.
 *
 * Every packet is parsed (lib/parse.h) into a source address and a traffic
 * class; the class's limit comes from fg_limits; the source's bucket for that
 * class lives in the fg_sources LRU map (lib/bucket.h). Counters per class and
 * reason go to the per-CPU fg_counters.
 *
 * Why the class is in the key rather than one value holding every class's
 * bucket: almost every source, and every spoofed one, uses a single class, so
 * a value with a bucket per class would spend FG_CLASS_MAX times the memory on
 * each of the million tracked sources; with the class in the key a source costs
 * only for what it sends, and the LRU evicts (source, class) pairs that went
 * quiet. Unlimited classes are not tracked at all.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "floodgate.h"
#include "lib/parse.h"
#include "lib/bucket.h"
#include "lib/drop_cache.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Ports and malformed-packet action; written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fg_settings);
} fg_settings SEC(".maps");

/* One limit per class (enum fg_class); written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FG_CLASS_MAX);
	__type(key, __u32);
	__type(value, struct fg_limit);
} fg_limits SEC(".maps");

/* Bucket and counts per (source, class); written by XDP, read by the agent.
 * max_entries is set by the agent at load time. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FG_DEFAULT_MAX_SOURCES);
	__type(key, struct fg_source_key);
	__type(value, struct fg_source_state);
} fg_sources SEC(".maps");

/* Packets and bytes per class and reason, per CPU; written by XDP. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FG_CLASS_MAX);
	__type(key, __u32);
	__type(value, struct fg_class_counters);
} fg_counters SEC(".maps");

/* Totals at the last `floodgate stats`; written and read by the CLI only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fg_stats_mark);
} fg_stats_mark SEC(".maps");

static __always_inline int fg_count(__u32 traffic_class, __u32 reason, __u64 bytes)
{
	struct fg_class_counters *c = bpf_map_lookup_elem(&fg_counters, &traffic_class);

	if (c && reason < FG_REASON_MAX) {
		c->packets[reason]++;
		c->bytes[reason] += bytes;
	}
	switch (reason) {
	case FG_REASON_PASSED:
	case FG_REASON_PASSED_MALFORMED:
	case FG_REASON_PASSED_UNTRACKED:
		return XDP_PASS;
	default:
		return XDP_DROP;
	}
}

/* Add a drop-cache slot's pending drops to its source's entry. A source the
 * LRU has evicted meanwhile is not re-inserted (that would refill its bucket):
 * its class counters already hold those drops. */
static __always_inline void fg_flush(struct fg_drop_slot *slot, struct fg_source_state *st)
{
	if (!slot->pending)
		return;
	if (!st)
		st = bpf_map_lookup_elem(&fg_sources, &slot->key);
	if (st) {
		__sync_fetch_and_add(&st->packets, slot->pending);
		__sync_fetch_and_add(&st->drops, slot->pending);
	}
	slot->pending = 0;
}

/* Remember on this CPU that key's bucket has no token before `next`. */
static __always_inline void fg_cache_drop(struct fg_drop_slot *slot, const struct fg_source_key *key, __u64 interval,
					  __u64 tau, __u64 next, __u64 now, __u32 jiffy_ns)
{
	__u64 jiffy = (__u64)jiffy_ns << FG_TICK_SHIFT;
	__u64 until = ~0ULL;

	if (!slot || !jiffy)
		return;
	if (interval != FG_INTERVAL_BLOCK) {
		/* Rounding up to a jiffy is only harmless if the bucket can hold
		 * the tokens that come due during that jiffy. */
		if (tau < jiffy || next <= now)
			return;
		until = bpf_jiffies64() + (next - now + jiffy - 1) / jiffy;
	}
	if (!fg_same_key(&slot->key, key)) {
		fg_flush(slot, NULL);
		slot->key = *key;
	}
	slot->interval = interval;
	slot->tau = tau;
	slot->until_jiffies = until;
}

/* Charge the packet to its source's bucket; returns an enum fg_reason. */
static __always_inline __u32 fg_police(const struct fg_packet *pkt, const struct fg_limit *lim,
				       const struct fg_settings *s)
{
	__u64 interval = READ_ONCE(lim->interval);
	__u64 tau = READ_ONCE(lim->tau);
	__u32 drop = interval == FG_INTERVAL_BLOCK ? FG_REASON_DROPPED_BLOCKED : FG_REASON_DROPPED_RATE;
	struct fg_source_key key = {};
	struct fg_source_state *st;
	struct fg_drop_slot *slot;
	__u64 now, next = 0;
	__u32 index;

	if (interval == FG_INTERVAL_UNLIMITED)
		return FG_REASON_PASSED;
	key.addr = pkt->src;
	key.traffic_class = pkt->traffic_class;

	index = fg_slot_index(&key);
	slot = bpf_map_lookup_elem(&fg_drop_cache, &index);
	if (slot && slot->until_jiffies && fg_same_key(&slot->key, &key) && slot->interval == interval &&
	    slot->tau == tau && bpf_jiffies64() < slot->until_jiffies) {
		if (++slot->pending >= FG_DROP_CACHE_FLUSH)
			fg_flush(slot, NULL);
		return drop;
	}

	now = bpf_ktime_get_ns() << FG_TICK_SHIFT;
	st = bpf_map_lookup_elem(&fg_sources, &key);
	if (!st) {
		struct fg_source_state init = {
			.tat = now + interval,
			.packets = 1,
			.drops = 0,
		};

		if (interval == FG_INTERVAL_BLOCK) {
			init.tat = now;
			init.drops = 1;
		}
		/* A new source starts with a full bucket, less this packet. */
		if (bpf_map_update_elem(&fg_sources, &key, &init, BPF_NOEXIST) == 0) {
			if (interval != FG_INTERVAL_BLOCK)
				return FG_REASON_PASSED;
			fg_cache_drop(slot, &key, interval, tau, 0, now, s->jiffy_ns);
			return drop;
		}
		/* Another CPU inserted it first: use theirs. */
		st = bpf_map_lookup_elem(&fg_sources, &key);
		if (!st)
			return FG_REASON_PASSED_UNTRACKED;
	}

	if (slot && fg_same_key(&slot->key, &key))
		fg_flush(slot, st);
	__sync_fetch_and_add(&st->packets, 1);
	if (interval != FG_INTERVAL_BLOCK && fg_bucket_admit(&st->tat, now, interval, tau, &next))
		return FG_REASON_PASSED;
	__sync_fetch_and_add(&st->drops, 1);
	fg_cache_drop(slot, &key, interval, tau, next, now, s->jiffy_ns);
	return drop;
}

SEC("xdp")
int floodgate_xdp(struct xdp_md *ctx)
{
	__u64 bytes = ctx->data_end - ctx->data;
	struct fg_packet pkt;
	struct fg_settings *s;
	struct fg_limit *lim;
	__u32 zero = 0;
	int status;

	s = bpf_map_lookup_elem(&fg_settings, &zero);
	if (!s)
		return XDP_PASS; /* unreachable: an array always has index 0 */

	status = fg_parse(ctx, s, &pkt);
	if (status == FG_PARSE_MALFORMED)
		return fg_count(pkt.traffic_class,
				s->malformed_action == FG_ACTION_PASS ? FG_REASON_PASSED_MALFORMED
								      : FG_REASON_DROPPED_MALFORMED,
				bytes);
	if (status == FG_PARSE_NON_IP || pkt.icmp_essential)
		return fg_count(pkt.traffic_class, FG_REASON_PASSED, bytes);

	lim = bpf_map_lookup_elem(&fg_limits, &pkt.traffic_class);
	if (!lim)
		return fg_count(pkt.traffic_class, FG_REASON_PASSED, bytes);
	return fg_count(pkt.traffic_class, fg_police(&pkt, lim, s), bytes);
}
