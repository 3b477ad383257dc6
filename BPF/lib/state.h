/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The filter's own state: its settings and limits (written by the agent), the
 * per-source and per-prefix buckets, the interface-wide buckets, the per-CPU
 * counters; and struct fg_ctx, the state of one decision.
 */
#ifndef FG_LIB_STATE_H
#define FG_LIB_STATE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "../floodgate.h"
#include "bucket.h"
#include "clock.h"
#include "parse.h"

/* Ports, prefix lengths, list sizes; written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fg_settings);
} fg_settings SEC(".maps");

/* One limit per class, then the prefix, budget and new-source limits (enum
 * fg_limit_index); written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FG_LIMIT_MAX);
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

/* Aggregate bucket per source prefix; written by XDP, sized by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FG_DEFAULT_MAX_SOURCES / 4);
	__type(key, struct fg_source_key);
	__type(value, struct fg_source_state);
} fg_prefixes SEC(".maps");

/* Interface-wide buckets (enum fg_global_index); written by XDP. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FG_GLOBAL_MAX);
	__type(key, __u32);
	__type(value, struct fg_global_bucket);
} fg_global SEC(".maps");

/* fg_cpu's value (floodgate.h): the state, then the drop cache's tags. A
 * lookup of fg_cpu points at the state, its first member. */
struct fg_cpu_value {
	struct fg_cpu_state state;
	__u16 drop_tags[FG_DROP_CACHE_SLOTS];
};

_Static_assert(__builtin_offsetof(struct fg_cpu_value, drop_tags) == FG_CPU_TAGS_OFFSET, "fg_cpu's tags");
_Static_assert(sizeof(struct fg_cpu_value) == FG_CPU_VALUE_SIZE, "fg_cpu's value");

/* Counters of every class, the fast path's state and the drop cache's tags,
 * per CPU; written by XDP. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fg_cpu_value);
} fg_cpu SEC(".maps");

/* The drop cache's tags of the CPU whose state `cpu` is (the value's first
 * member). */
static __always_inline __u16 *fg_cpu_tags(const struct fg_cpu_state *cpu)
{
	return ((struct fg_cpu_value *)cpu)->drop_tags;
}

/* fg_ctx.unknown: the new-source budget's look and, while it refuses, the
 * source's bit in fg_known (floodgate.bpf.c, fg_source_unknown). */
enum {
	FG_UNKNOWN_ROOM = 1,	      /* the budget has room (the bit not read) */
	FG_UNKNOWN_REFUSED_MAYBE = 2, /* the budget refuses; the source has or may have state */
	FG_UNKNOWN_NONE = 3,	      /* the budget refuses; the source has no state */
};

/* The state of one decision, so helpers share one clock read and one slot. */
struct fg_ctx {
	const struct fg_settings *s;
	const struct fg_packet *pkt;
	struct fg_source_key key;  /* the per-source bucket's key */
	struct fg_drop_slot *slot; /* this key's drop-cache slot on this CPU */
	__u64 interval, tau;	   /* the class limit */
	__u64 now;		   /* the packet's time in ticks (fg_now); 0 until read */
	__u8 trusted;		   /* a known-good source (lib/trust.h) */
	__u8 unknown;		   /* fg_source_unknown's answer, FG_UNKNOWN_*; 0 not asked yet */
	__u16 deferred;		   /* aggregate levels (bit 0 prefix, bit 1 wider) a new source found no entry for */
	__u32 generation;	   /* settings.policy_generation before any limit or list was read */
	/* The arguments of fg_bucket_admit and fg_bucket_decide, one set for
	 * all of their call sites, which run one after another: one stack slot
	 * rather than one each. */
	struct fg_bucket_call call;
};

/* The packet's time in nanoseconds: fg_decide's read, or a read now from the
 * clock fg_now would read. */
static __always_inline __u64 fg_packet_ns(const struct fg_settings *s, const struct fg_packet *pkt)
{
	if (pkt->now_ticks)
		return pkt->now_ticks >> FG_TICK_SHIFT;
	return s->jiffy_ns ? fg_clock_coarse_ns() : fg_clock_ns();
}

/* Is a bucket of tolerance `tau` (ticks) judged at the packet's time (fg_now):
 * does it hold FG_COARSE_JIFFIES jiffies of tokens or more? (With no
 * resolution known, settings.jiffy_ns 0, every bucket is: the packet's time is
 * then the precise clock's.) */
static __always_inline int fg_bucket_coarse(const struct fg_settings *s, __u64 tau)
{
	return tau >= ((__u64)s->jiffy_ns << FG_TICK_SHIFT) * FG_COARSE_JIFFIES;
}

/* The packet's time in ticks, read once: the coarse clock's when its
 * resolution is known (settings.jiffy_ns), else the precise clock's. Less
 * than a jiffy behind: bans and trust may outlast their end by that much.
 * Buckets take it through fg_bucket_now. */
static __always_inline __u64 fg_now(struct fg_ctx *c)
{
	if (!c->now)
		c->now = (c->s->jiffy_ns ? fg_clock_coarse_ns() : fg_clock_ns()) << FG_TICK_SHIFT;
	return c->now;
}

/* The time (ticks) to judge a bucket of tolerance `tau` at, given the
 * packet's time `now` (fg_now's, or fg_packet_ns's in ticks): that time if the
 * bucket is judged at it, else a read of the precise clock. */
static __always_inline __u64 fg_bucket_ticks(const struct fg_settings *s, __u64 now, __u64 tau)
{
	return fg_bucket_coarse(s, tau) ? now : fg_clock_ns() << FG_TICK_SHIFT;
}

/* The same within a decision, where the packet's time is read only if the
 * bucket is judged at it. */
static __always_inline __u64 fg_bucket_now(struct fg_ctx *c, __u64 tau)
{
	return fg_bucket_coarse(c->s, tau) ? fg_now(c) : fg_clock_ns() << FG_TICK_SHIFT;
}

#endif /* FG_LIB_STATE_H */
