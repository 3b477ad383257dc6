/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The per-CPU drop cache: a source over its limit is dropped without a lookup
 * in fg_sources or a read of the precise clock.
 *
 * Under a flood almost every packet is a drop, and a drop's cost was the
 * shared LRU lookup and bpf_ktime_get_ns (together about 60 ns here, against
 * about 7 ns for everything else). When the bucket says "no token until time
 * T", this CPU remembers (source, class, limit, T) in a direct-mapped slot and
 * drops that source's packets while bpf_jiffies64() is before T, counting them
 * in the slot; they reach fg_sources every FG_DROP_CACHE_FLUSH drops, when the
 * slot is reused, or when the source next takes the slow path (and `top`
 * adds what is still pending).
 *
 * T is rounded up to a whole jiffy, so the cache may hold a source back for up
 * to one jiffy after its token is due. It is used only when the bucket can hold
 * at least a jiffy's worth of tokens (tau >= one jiffy), so the tokens that
 * come due meanwhile are admitted at the next packet and never lost: the
 * admitted rate is unchanged. A changed limit (different interval or tau)
 * makes the slot stale at once. Slots are per CPU, so they need no atomics.
 */
#ifndef FG_LIB_DROP_CACHE_H
#define FG_LIB_DROP_CACHE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "../floodgate.h"

/* fg_drop_cache: see above. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FG_DROP_CACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct fg_drop_slot);
} fg_drop_cache SEC(".maps");

static __always_inline __u32 fg_slot_index(const struct fg_source_key *key)
{
	__u32 h = key->addr.words[0] ^ key->addr.words[1] ^ key->addr.words[2] ^ key->addr.words[3];

	h ^= key->traffic_class;
	/* Fibonacci hashing: the top bits of the product are well mixed. */
	return (h * 2654435761U) >> (32 - __builtin_ctz(FG_DROP_CACHE_SLOTS));
}

static __always_inline int fg_same_key(const struct fg_source_key *a, const struct fg_source_key *b)
{
	return a->addr.words[0] == b->addr.words[0] && a->addr.words[1] == b->addr.words[1] &&
	       a->addr.words[2] == b->addr.words[2] && a->addr.words[3] == b->addr.words[3] &&
	       a->traffic_class == b->traffic_class;
}

#endif /* FG_LIB_DROP_CACHE_H */
