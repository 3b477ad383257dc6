// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Floodgate: SIP-aware load shedding at XDP.
 *
 * Every packet is parsed (lib/parse.h) into a source address and a traffic
 * class: the SIP method, response, SYN or stream, RTP, ICMP, fragment, other.
 * The policy then runs in this order, and the first step that drops decides:
 *
 *   0. the per-CPU drop cache: a source this CPU is already dropping
 *   1. the deny list (lib/lists.h)
 *   2. bans: an explicit ban beats the allow list; other bans do not (XDP
 *      itself bans scanners, and sources that keep exceeding their bucket:
 *      lib/autoban.h)
 *   3. the allow list: no per-source or prefix limits, highest priority in 6
 *   4. the per-source bucket of the class (lib/bucket.h)
 *   5. for SIP classes, the per-prefix aggregate bucket (/24, /64 by default);
 *      a source new to fg_sources must also get past the new-source budget.
 *      Known-good sources (lib/trust.h) skip both: a flood of spoofed
 *      sources from their prefix does not shut them out
 *   6. scanner signatures in SIP requests (lib/scanner.h)
 *   7. for SIP classes, the interface budget, shed by class priority
 *      (known-good sources just before allow-listed ones)
 *
 * A second program, floodgate_inside, runs on the interface facing the SIP
 * server and watches its answers go out (lib/trust.h): failed
 * authentications ban a source, successful ones make it known-good.
 *
 * Why the class is in the fg_sources key rather than one value holding every
 * class's bucket: almost every source, and every spoofed one, uses a single
 * class, so a value with a bucket per class would spend FG_CLASS_MAX times the
 * memory on each tracked source; with the class in the key a source costs only
 * for what it sends, and the LRU evicts (source, class) pairs that went quiet.
 * Unlimited classes are not tracked.
 *
 * Random-source floods: a source enters fg_sources only when its prefix bucket
 * and the new-source budget (FG_LIMIT_NEW_SOURCES, per second) both have room.
 * A flood of spoofed addresses therefore inserts at most that many entries a
 * second, however many addresses it uses, and the sources already tracked (the
 * phones and peers that keep sending, refreshed in the LRU by every packet)
 * are not pushed out; the sources refused are counted as dropped-new-source.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "floodgate.h"
#include "lib/parse.h"
#include "lib/bucket.h"
#include "lib/lists.h"
#include "lib/scanner.h"
#include "lib/tiers.h"
#include "lib/trust.h"
#include "lib/state.h"
#include "lib/drop_cache.h"
#include "lib/destinations.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Counts the packet in this CPU's counters; returns its action. `seen`, if
 * given, gets this CPU's count of the class and reason, this packet included. */
static __always_inline int fg_count_seen(struct fg_cpu_state *cpu, __u32 traffic_class, __u32 reason, __u64 bytes,
					 __u64 *seen)
{
	/* The verifier knows nothing of what the global fg_decide returns, but the
	 * compiler does and would drop the mask: hide the value from it. */
	asm volatile("" : "+r"(reason));
	reason &= FG_REASON_SLOTS - 1;
	if (traffic_class < FG_COUNTER_ROWS) {
		struct fg_class_counters *c = &cpu->counters[traffic_class];

		c->reasons[reason].packets++;
		c->reasons[reason].bytes += bytes;
		if (seen)
			*seen = c->reasons[reason].packets;
	}
	switch (reason) {
	case FG_REASON_PASSED:
	case FG_REASON_PASSED_ALLOW:
	case FG_REASON_PASSED_MALFORMED:
	case FG_REASON_PASSED_UNTRACKED:
		return XDP_PASS;
	default:
		return XDP_DROP;
	}
}

static __always_inline int fg_count(__u32 traffic_class, __u32 reason, __u64 bytes)
{
	struct fg_cpu_state *cpu = bpf_map_lookup_elem(&fg_cpu, &fg_entry_zero);

	return cpu ? fg_count_seen(cpu, traffic_class, reason, bytes, 0) : XDP_PASS;
}


static __always_inline int fg_is_sip(__u32 traffic_class)
{
	return traffic_class <= FG_CLASS_SIP_LAST;
}

/* An interface-wide bucket; `level` of `levels` sets how deep into the burst
 * the caller may reach (the budget keeps the rest for higher priorities). */
static __always_inline int fg_global_admit(struct fg_ctx *c, __u32 global, __u32 limit, __u32 level, __u32 levels)
{
	struct fg_global_bucket *g = bpf_map_lookup_elem(&fg_global, &global);
	struct fg_limit *lim = bpf_map_lookup_elem(&fg_limits, &limit);
	struct fg_bucket_call *call = &c->call;

	if (!g || !lim)
		return 1;
	call->interval = READ_ONCE(lim->interval);
	call->tau_max = READ_ONCE(lim->tau);
	if (call->interval == FG_INTERVAL_UNLIMITED)
		return 1;
	if (call->interval == FG_INTERVAL_BLOCK)
		return 0;
	call->now = fg_bucket_now(c, call->tau_max);
	call->tau = call->tau_max / levels * (level + 1);
	return fg_bucket_admit(&g->tat, call);
}

/* Would an interface-wide bucket refuse a packet now? A look that takes no
 * token: with `clamp`, it writes what a refusal by fg_bucket_admit writes
 * (the clamp of a TAT left far ahead by a slower limit); without, nothing. */
static __always_inline int fg_global_refuses(struct fg_ctx *c, __u32 global, __u32 limit, int clamp)
{
	struct fg_global_bucket *g = bpf_map_lookup_elem(&fg_global, &global);
	struct fg_limit *lim = bpf_map_lookup_elem(&fg_limits, &limit);
	__u64 interval, tau, tat, base, now;

	if (!g || !lim)
		return 0;
	interval = READ_ONCE(lim->interval);
	if (interval == FG_INTERVAL_UNLIMITED)
		return 0;
	if (interval == FG_INTERVAL_BLOCK)
		return 1;
	tau = READ_ONCE(lim->tau);
	now = fg_bucket_now(c, tau);
	tat = READ_ONCE(g->tat);
	base = tat > now ? tat : now;
	if (base - now <= tau)
		return 0;
	if (clamp && fg_bucket_clamps(base - now, tau + interval))
		__sync_val_compare_and_swap(&g->tat, tat, now + tau + interval);
	return 1;
}

/* Does the source have no state (fg_known)? Asked only while the new-source
 * budget is empty: then a source without state is refused, and the bit saves
 * the lookups that would miss; otherwise the lookups are made anyway (a known
 * source needs them, a new one is admitted), and a read of the bit would only
 * add a miss. Worked out once per decision with the budget's look, whose
 * answer the new-source step reuses (c->unknown, FG_UNKNOWN_*). The look
 * clamps as a refusal does: a clamp lowers a TAT left far ahead by a slower
 * limit to one that still refuses, whoever's packet makes it. */
static __always_inline int fg_source_unknown(struct fg_ctx *c)
{
	if (!c->unknown) {
		if (!fg_global_refuses(c, FG_GLOBAL_NEW_SOURCES, FG_LIMIT_NEW_SOURCES, 1))
			c->unknown = FG_UNKNOWN_ROOM;
		else
			c->unknown = fg_known_maybe(&c->pkt->src) ? FG_UNKNOWN_REFUSED_MAYBE : FG_UNKNOWN_NONE;
	}
	return c->unknown == FG_UNKNOWN_NONE;
}

/* Does the new-source budget refuse a source now? The look fg_source_unknown
 * made in this decision, if it made one (at the same clock read; since then
 * other CPUs can only have taken tokens or clamped, which refuse as well),
 * else one now. */
static __always_inline int fg_new_source_refused(struct fg_ctx *c)
{
	if (c->unknown)
		return c->unknown != FG_UNKNOWN_ROOM;
	return fg_global_refuses(c, FG_GLOBAL_NEW_SOURCES, FG_LIMIT_NEW_SOURCES, 1);
}

/* The allow entry's own bucket, over all SIP classes of its addresses. */
static __always_inline int fg_allow_admit(struct fg_ctx *c, struct fg_allow_entry *entry)
{
	struct fg_bucket_call *call = &c->call;

	call->interval = READ_ONCE(entry->interval);
	call->tau_max = READ_ONCE(entry->tau);
	if (call->interval == FG_INTERVAL_UNLIMITED)
		return 1;
	if (call->interval == FG_INTERVAL_BLOCK)
		return 0;
	call->now = fg_bucket_now(c, call->tau_max);
	call->tau = call->tau_max;
	return fg_bucket_admit(&entry->tat, call);
}

/* The key of the source's prefix bucket (in fg_prefixes and the drop cache);
 * returns its prefix length over the 128-bit address. */
static __always_inline __u32 fg_prefix_key(const struct fg_ctx *c, struct fg_source_key *key)
{
	const struct fg_addr *a = &c->pkt->src;
	__u32 keylen = fg_prefix_len(a, c->s->prefix_v4, c->s->prefix_v6);

	key->addr = *a;
	key->traffic_class = FG_CLASS_MAX;
	fg_mask(&key->addr, keylen);
	return keylen;
}

/* The key of aggregate `level` (0: the prefix `narrow`; 1: its wider network). */
static __always_inline void fg_aggregate_key(const struct fg_ctx *c, __u32 level, const struct fg_source_key *narrow,
					     struct fg_source_key *key)
{
	*key = *narrow;
	if (level) {
		fg_mask(&key->addr, fg_prefix_len(&key->addr, c->s->wide_v4, c->s->wide_v6));
		key->traffic_class = FG_CLASS_MAX + 1;
	}
}

/* A new bucket for aggregate `level`: full, less this packet. Another CPU's
 * entry, if it made one first, stands. */
static __always_inline void fg_create_aggregate(struct fg_ctx *c, __u32 level, const struct fg_source_key *narrow)
{
	__u32 index = level ? FG_LIMIT_WIDE_PREFIX : FG_LIMIT_PREFIX;
	struct fg_limit *lim = bpf_map_lookup_elem(&fg_limits, &index);
	struct fg_source_state init = {.packets = 1};
	struct fg_source_key key;

	if (!lim)
		return;
	fg_aggregate_key(c, level, narrow, &key);
	init.tat = fg_bucket_now(c, READ_ONCE(lim->tau)) + READ_ONCE(lim->interval);
	bpf_map_update_elem(&fg_prefixes, &key, &init, BPF_NOEXIST);
}

/* Holds a drained aggregate (whose bucket's tolerance is `tau` and whose next
 * token c->call judged) in the drop cache: at level 1 its wider network
 * `wide`, if that holds no allow-listed or verified source, until its next
 * token; else the prefix `narrow`, if that holds none, for at least
 * FG_PREFIX_HOLD_NS (fg_prefix_cache_until). The network only until its next
 * token: held longer, the tokens that came due meanwhile would go to the
 * first packets after the hold, a flood's, rather than to whichever of its
 * prefixes sent the packet they came due for. One slot's expiry a jiffy costs
 * a packet or two a jiffy down the slow path, not a prefix's 256. (A source
 * verified while either is held has the slot ended: fg_release_held.) */
static __always_inline void fg_cache_aggregate(struct fg_ctx *c, __u32 level, const struct fg_source_key *wide,
					       const struct fg_source_key *narrow, __u32 narrow_len, __u64 tau)
{
	const struct fg_source_key *key = narrow;
	struct fg_cpu_state *cpu;
	__u64 until, now_ns = c->call.now >> FG_TICK_SHIFT;

	if (level && !fg_prefix_holds_allowed(c->s, wide, fg_prefix_len(&wide->addr, c->s->wide_v4, c->s->wide_v6)) &&
	    !fg_prefix_holds_trusted(c->s, wide, now_ns)) {
		key = wide;
		until = fg_cache_until(c->s, tau, c->call.next, c->call.now);
	} else if (fg_prefix_holds_allowed(c->s, narrow, narrow_len) || fg_prefix_holds_trusted(c->s, narrow, now_ns)) {
		return;
	} else {
		until = fg_prefix_cache_until(c->s, tau, c->call.next, c->call.now);
	}
	if (!until)
		return;
	fg_cache_fill(fg_cache_slot(key), key, c->s, c->generation, until, FG_REASON_DROPPED_PREFIX);
	cpu = bpf_map_lookup_elem(&fg_cpu, &fg_entry_zero);
	if (!cpu)
		return;
	if (key == wide) {
		if (cpu->wide_until_jiffies < until)
			cpu->wide_until_jiffies = until;
	} else if (cpu->prefix_until_jiffies < until) {
		cpu->prefix_until_jiffies = until;
	}
}

/*
 * One aggregate bucket of the source: `level` 0 is its prefix (/24, /64),
 * level 1 the wider one (/16, /48). A drop of either fills a drop-cache slot
 * (fg_cache_aggregate: the drained aggregate's, or for a wider network holding
 * an allow-listed or verified source the prefix's) until the drained bucket's
 * next token: a random-source flood then ends in the cache.
 *
 * `defer_new`: for a source not yet tracked. An aggregate with no entry would
 * admit the packet (a new bucket is full), so none is made yet: the level is
 * noted in c->deferred and made only if the new-source budget admits the
 * source too. A flood of sources from ever new prefixes, which the budget
 * refuses, then costs lookups, not LRU inserts that evict.
 */
static __always_inline __u32 fg_police_aggregate(struct fg_ctx *c, __u32 level, const struct fg_source_key *narrow,
						 __u32 narrow_len, int defer_new)
{
	__u32 index = level ? FG_LIMIT_WIDE_PREFIX : FG_LIMIT_PREFIX;
	struct fg_limit *lim = bpf_map_lookup_elem(&fg_limits, &index);
	struct fg_source_key key;
	struct fg_source_state *st;
	struct fg_bucket_call *call = &c->call;
	__u64 interval, tau;

	if (!lim)
		return FG_REASON_PASSED;
	interval = READ_ONCE(lim->interval);
	tau = READ_ONCE(lim->tau);
	if (interval == FG_INTERVAL_UNLIMITED)
		return FG_REASON_PASSED;
	if (interval == FG_INTERVAL_BLOCK)
		return FG_REASON_DROPPED_PREFIX;
	fg_aggregate_key(c, level, narrow, &key);

	st = bpf_map_lookup_elem(&fg_prefixes, &key);
	if (!st && defer_new) {
		c->deferred |= 1 << level;
		return FG_REASON_PASSED;
	}
	if (!st) {
		struct fg_source_state init = {.tat = fg_bucket_now(c, tau) + interval, .packets = 1};

		if (bpf_map_update_elem(&fg_prefixes, &key, &init, BPF_NOEXIST) == 0)
			return FG_REASON_PASSED;
		st = bpf_map_lookup_elem(&fg_prefixes, &key);
		if (!st)
			return FG_REASON_PASSED_UNTRACKED;
	}
	__sync_fetch_and_add(&st->packets, 1);
	call->now = fg_bucket_now(c, tau);
	call->interval = interval;
	call->tau = call->tau_max = tau;
	if (fg_bucket_decide(&st->tat, call))
		return FG_REASON_PASSED;
	__sync_fetch_and_add(&st->drops, 1);
	/* A flood of random sources from one prefix then stops in the drop
	 * cache's prefix check, before the policy: unless an allow-listed or a
	 * known-good source is in the prefix, which must still get to its check.
	 * A drained wider network is held as one slot of its own (a flood spread
	 * over its prefixes then reads one slot, not one per prefix), unless it
	 * holds such a source: then, as a drop of the level below, by prefix.
	 * Either slot is checked against the policy generation for staleness. */
	fg_cache_aggregate(c, level, &key, narrow, narrow_len, tau);
	return FG_REASON_DROPPED_PREFIX;
}

/* The aggregate buckets of the source's prefix and wider prefix (SIP classes);
 * `defer_new` as in fg_police_aggregate. */
static __always_inline __u32 fg_police_prefix(struct fg_ctx *c, int defer_new)
{
	struct fg_source_key narrow = {};
	__u32 narrow_len = fg_prefix_key(c, &narrow), reason;

	reason = fg_police_aggregate(c, 0, &narrow, narrow_len, defer_new);
	if (reason != FG_REASON_PASSED)
		return reason;
	return fg_police_aggregate(c, 1, &narrow, narrow_len, defer_new);
}

/* The aggregate entries a new source deferred, now that it is admitted. */
static __always_inline void fg_create_deferred(struct fg_ctx *c)
{
	struct fg_source_key narrow = {};

	if (!c->deferred)
		return;
	fg_prefix_key(c, &narrow);
	if (c->deferred & 1)
		fg_create_aggregate(c, 0, &narrow);
	if (c->deferred & 2)
		fg_create_aggregate(c, 1, &narrow);
}

/* The source's own bucket for its class, then its prefix (SIP classes). */
static __always_inline __u32 fg_police_source(struct fg_ctx *c)
{
	struct fg_source_state *st;
	struct fg_bucket_call *call = &c->call;
	__u64 interval = c->interval;
	__u32 reason;

	if (interval == FG_INTERVAL_UNLIMITED)
		return fg_is_sip(c->key.traffic_class) && !c->trusted ? fg_police_prefix(c, 0) : FG_REASON_PASSED;

	/* A fragment's key is its prefix's, not the source whose state fg_known tells. */
	st = c->key.traffic_class != FG_CLASS_FRAGMENT && fg_source_unknown(c) ? NULL
									       : bpf_map_lookup_elem(&fg_sources, &c->key);
	if (!st) {
		struct fg_source_state init = {.packets = 1};

		/* Only a source whose prefix and the new-source budget have room
		 * gets an entry: see the top of this file. The budget is looked at
		 * first: while it is empty, a new source is refused without a
		 * lookup of its prefixes (two misses to memory on a random-source
		 * flood) and without charging them, so a forger's sources the
		 * budget refuses do not drain a real caller's prefix. */
		if (!c->trusted && fg_new_source_refused(c))
			return FG_REASON_DROPPED_NEW_SOURCE;
		if (fg_is_sip(c->key.traffic_class) && !c->trusted) {
			reason = fg_police_prefix(c, 1);
			if (reason != FG_REASON_PASSED)
				return reason;
		}
		if (!c->trusted && !fg_global_admit(c, FG_GLOBAL_NEW_SOURCES, FG_LIMIT_NEW_SOURCES, 0, 1))
			return FG_REASON_DROPPED_NEW_SOURCE;
		fg_create_deferred(c);
		/* Its time only now: a source refused above reads no clock for it. */
		if (interval == FG_INTERVAL_BLOCK) {
			init.tat = fg_now(c);
			init.drops = 1;
		} else {
			init.tat = fg_bucket_now(c, c->tau) + interval;
		}
		/* A new source starts with a full bucket, less this packet. */
		if (bpf_map_update_elem(&fg_sources, &c->key, &init, BPF_NOEXIST) == 0) {
			fg_known_add(&c->key.addr);
			if (interval != FG_INTERVAL_BLOCK)
				return FG_REASON_PASSED;
			fg_cache_drop(c->slot, &c->key, c, ~0ULL, FG_REASON_DROPPED_BLOCKED);
			return FG_REASON_DROPPED_BLOCKED;
		}
		/* Another CPU inserted it first: use theirs. */
		st = bpf_map_lookup_elem(&fg_sources, &c->key);
		if (!st)
			return FG_REASON_PASSED_UNTRACKED;
	}

	/* Its slot's drops, if it has one. (Asking the tag first here, as the fast
	 * path does, measured +26 to +32 ns on a passed INVITE and nothing on an
	 * OPTIONS in the cost section; not kept.) */
	if (c->slot && fg_same_key(&c->slot->key, &c->key))
		fg_flush(c->s, c->slot, st, 0);
	__sync_fetch_and_add(&st->packets, 1);
	if (interval == FG_INTERVAL_BLOCK) {
		__sync_fetch_and_add(&st->drops, 1);
		fg_cache_drop(c->slot, &c->key, c, ~0ULL, FG_REASON_DROPPED_BLOCKED);
		return FG_REASON_DROPPED_BLOCKED;
	}
	call->now = fg_bucket_now(c, c->tau);
	call->interval = interval;
	call->tau = call->tau_max = c->tau;
	if (!fg_bucket_decide(&st->tat, call)) {
		__sync_fetch_and_add(&st->drops, 1);
		if (c->s->autoban_drops)
			fg_window_add(c->s, st, 1);
		fg_cache_drop_until(c, call->next);
		return FG_REASON_DROPPED_RATE;
	}
	return fg_is_sip(c->key.traffic_class) && !c->trusted ? fg_police_prefix(c, 0) : FG_REASON_PASSED;
}

/* First fragments the policy admitted, so their later fragments can follow;
 * written by XDP. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FG_MAX_FRAGMENTS);
	__type(key, struct fg_fragment_key);
	__type(value, __u32);
} fg_fragments SEC(".maps");

/* A non-first fragment of a first fragment the policy admitted (within its
 * budget)? Non-first fragments carry no ports, so a flood of them can only be
 * bounded by where they come from; this lets the real ones through it. */
static __always_inline int fg_fragment_admitted(const struct fg_packet *pkt)
{
	struct fg_fragment_key key = {.addr = pkt->src, .id = pkt->frag_id};
	__u32 *left = bpf_map_lookup_elem(&fg_fragments, &key);

	return left && (__s32)__sync_fetch_and_sub(left, 1) > 0;
}

/*
 * A drained fragment bucket (its prefix's, class FG_CLASS_FRAGMENT) held in
 * the drop cache until its next token (jiffy pkt->source_until, as decided
 * under policy generation pkt->source_generation: fg_policy notes them), as a
 * drained prefix is (fg_cache_aggregate), if the prefix holds no allow-listed
 * or verified address: the later fragments of its sources then end before
 * the policy (fg_fragment_cache_check), after one hash lookup (the admitted
 * first fragments') rather than two, a clock read and the bucket. The policy
 * would do the same with them: a source neither allow-listed nor verified in
 * that prefix has its later fragments charged to the drained bucket, unless
 * a first fragment the policy admitted opened their way, which the check
 * asks. (A denied or banned source's are dropped either way, and counted as
 * dropped by rate here.) A source verified while the slot is held ends it
 * (fg_verify); a change of policy makes it stale. A global function, called
 * by the main program after the policy.
 */
__noinline int fg_cache_fragments(const struct fg_packet *pkt)
{
	struct fg_settings *s = bpf_map_lookup_elem(&fg_settings, &fg_entry_zero);
	struct fg_cpu_state *cpu = bpf_map_lookup_elem(&fg_cpu, &fg_entry_zero);
	struct fg_source_key key = {.traffic_class = FG_CLASS_MAX};
	__u32 len;

	if (!pkt || !s || !cpu || !pkt->source_until)
		return 0;
	key.addr = pkt->src;
	len = fg_prefix_len(&key.addr, s->prefix_v4, s->prefix_v6);
	fg_mask(&key.addr, len);
	/* The trust marks at the policy's time, which judged the source's own. */
	if (fg_prefix_holds_allowed(s, &key, len) || fg_prefix_holds_trusted(s, &key, fg_packet_ns(s, pkt)))
		return 0;
	key.traffic_class = FG_CLASS_FRAGMENT;
	fg_cache_fill(fg_cache_slot(&key), &key, s, pkt->source_generation, pkt->source_until, FG_REASON_DROPPED_RATE);
	/* The prefixes' gate: while it is open, the main program asks. */
	if (cpu->prefix_until_jiffies < pkt->source_until)
		cpu->prefix_until_jiffies = pkt->source_until;
	return 0;
}

/* A later fragment whose prefix's fragment bucket the drop cache holds
 * (fg_cache_fragments), and that no admitted first fragment let through:
 * FG_REASON_DROPPED_RATE; else FG_REASON_PASSED (the policy decides). The
 * admitted first fragments' budget is only read here: the policy spends it.
 * A global function, called only while the prefixes' gate is open: its keys
 * stay off the main program's stack, whose deepest chain of calls is at the
 * verifier's 512 bytes. */
__noinline int fg_fragment_cache_check(const struct fg_packet *pkt, __u64 jiffies)
{
	struct fg_source_key key = {.traffic_class = FG_CLASS_FRAGMENT};
	struct fg_fragment_key admitted = {};
	struct fg_settings *s = bpf_map_lookup_elem(&fg_settings, &fg_entry_zero);
	struct fg_cpu_state *cpu = bpf_map_lookup_elem(&fg_cpu, &fg_entry_zero);
	struct fg_drop_slot *slot;
	__u32 *left;

	if (!pkt || !s || !cpu)
		return FG_REASON_PASSED;
	key.addr = pkt->src;
	admitted.addr = pkt->src;
	admitted.id = pkt->frag_id;
	fg_mask(&key.addr, fg_prefix_len(&key.addr, s->prefix_v4, s->prefix_v6));
	slot = fg_cache_live(s, cpu, &key, jiffies);
	if (!slot)
		return FG_REASON_PASSED;
	left = bpf_map_lookup_elem(&fg_fragments, &admitted);
	if (left && (__s32)READ_ONCE(*left) > 0)
		return FG_REASON_PASSED;
	/* Its drops go to the bucket's entry, as a (source, class) slot's do;
	 * never toward a ban (its key is a prefix, not a source). */
	if (++slot->pending >= FG_DROP_CACHE_FLUSH)
		fg_flush(s, slot, NULL, 0);
	return FG_REASON_DROPPED_RATE;
}

/* A first fragment the policy admitted: its later fragments may follow. */
static __noinline void fg_note_fragment(const struct fg_packet *pkt)
{
	struct fg_fragment_key key = {};
	__u32 budget = FG_FRAGMENT_BUDGET;

	if (!pkt)
		return;
	key.addr = pkt->src;
	key.id = pkt->frag_id;
	bpf_map_update_elem(&fg_fragments, &key, &budget, BPF_ANY);
}

/* fg_inspect's verdicts beside the scan's FG_SCAN_* bits. */
#define FG_INSPECT_MISMATCH (1U << 16) /* CSeq names REGISTER or INVITE, the start line another method */
#define FG_INSPECT_OVERSIZE (1U << 17) /* the header block does not end within the bytes walked, and more may follow */
#define FG_INSPECT_UNPROVEN (1U << 18) /* a quarantined verified source's credentials, answering no challenge sent to it */
/* In fg_packet.txn_note beside the FG_TXN_* flags (which fit under it): the
 * request is to be noted if it passes. */
#define FG_TXN_NOTE 0x80
_Static_assert(FG_TXN_REPIN < FG_TXN_NOTE, "the FG_TXN_* flags fit under FG_TXN_NOTE");

/*
 * Walks a SIP request's header block (lib/scanner.h) and marks it to be noted
 * in fg_txns with `txn_flags` if it carries credentials (lib/trust.h), once it
 * passes (fg_noted_if_passed).
 * Returns FG_SCAN_* and FG_INSPECT_* bits. Inlined into fg_decide_content,
 * its one caller, a global function whose frame is not fg_decide's.
 */
static __always_inline __u32 fg_inspect(struct xdp_md *ctx, struct fg_packet *pkt, __u32 txn_flags)
{
	struct fg_scan *scan;
	__u32 zero = 0, found;
	struct fg_settings *s = bpf_map_lookup_elem(&fg_settings, &zero);

	if (!s || !pkt)
		return 0;
	scan = fg_scan_message(ctx, pkt->payload_off, pkt->payload_len, pkt->sip_skip,
			       (s->fraud_block_seconds || s->calls_tracked || s->caller_id_entries) &&
				       (pkt->traffic_class == FG_CLASS_INVITE || pkt->traffic_class == FG_CLASS_SIP_OTHER));
	/* Nothing to walk: fine, unless more of it comes in later fragments. */
	if (!scan)
		return pkt->frag_first ? FG_INSPECT_OVERSIZE : 0;
	pkt->inspected = 1;
	found = scan->found;
	if (found & FG_SCAN_SIGNATURE)
		return found;
	if (fg_cseq_mismatch(scan, pkt->traffic_class))
		return found | FG_INSPECT_MISMATCH;
	/* Its CSeq could hide past the walk, where a server would still read
	 * it: beyond the bytes walked, or in a later fragment. */
	if (!(found & FG_SCAN_END) && (pkt->frag_first || pkt->payload_len > scan->len))
		return found | FG_INSPECT_OVERSIZE;
	/* A verified source quarantined for unproven failures (lib/trust.h),
	 * from its hop distance or another: its credentials must answer a
	 * challenge sent to it. */
	if ((pkt->tier == FG_TIER_VERIFIED || (txn_flags & FG_TXN_REPIN)) && (found & FG_SCAN_CREDENTIALS) &&
	    !fg_never_answered(scan->method) && fg_unproven_refused(s, &pkt->src, scan->nonce, txn_flags & FG_TXN_REPIN))
		return found | FG_INSPECT_UNPROVEN;
	/* Over TCP a header block may go on in the next segment: the request is
	 * let through (its connection would stall otherwise), but not noted.
	 * Noted only once it has passed every step (fg_noted_if_passed). */
	if (fg_notes_transactions(s) && (found & FG_SCAN_END))
		pkt->txn_note = FG_TXN_NOTE | (txn_flags & 0xff);
	return found;
}

/*
 * The last step's `reason` for a request, after noting it (lib/trust.h) if
 * fg_inspect marked it and it passes. A request the budget sheds or the
 * destination rules refuse never reaches the server, so nothing answers it:
 * noted, it would leave an fg_txns entry and a pending count (against which an
 * unreadable refusal counts) for a forger's flood of credentialed requests,
 * which the budget sheds, to churn and to keep up.
 */
static __always_inline __u32 fg_noted_if_passed(const struct fg_settings *s, const struct fg_packet *pkt,
						__u32 reason)
{
	struct fg_scan *scan;

	if (!(pkt->txn_note & FG_TXN_NOTE) || (reason != FG_REASON_PASSED && reason != FG_REASON_PASSED_ALLOW))
		return reason;
	/* The walk's result is still this packet's: nothing walks again on the way. */
	scan = fg_scan_result();
	if (scan)
		fg_note_transaction(s, pkt, scan, pkt->txn_note & ~FG_TXN_NOTE);
	return reason;
}

/* What an inspected request's own content earns it: a scanner signature
 * drops it (and bans its source, if `may_ban`), a request that contradicts
 * itself is malformed, one that could hide its CSeq past the walk is
 * oversize; FG_REASON_PASSED otherwise. */
static __always_inline __u32 fg_inspect_verdict(struct fg_ctx *c, struct fg_packet *pkt, __u32 found, int may_ban)
{
	struct fg_settings *s = (struct fg_settings *)c->s;

	if (found & FG_SCAN_SIGNATURE) {
		if (!may_ban) {
			pkt->note = FG_NOTE_SPARED;
			return FG_REASON_DROPPED_SCANNER;
		}
		if (s->scanner_ban_seconds) {
			/* An expired ban is replaced: a scanner that comes back is banned again. */
			fg_issue_ban(s, &pkt->src, s->scanner_ban_seconds * 1000000000ULL, FG_BAN_SCANNER,
				     FG_EVENT_SCANNER, pkt->traffic_class, 1, 0);
		}
		return FG_REASON_DROPPED_SCANNER;
	}
	if (found & FG_INSPECT_MISMATCH)
		return FG_REASON_DROPPED_MALFORMED;
	if (found & FG_INSPECT_OVERSIZE)
		return FG_REASON_DROPPED_OVERSIZE;
	if (found & FG_INSPECT_UNPROVEN)
		return FG_REASON_DROPPED_UNPROVEN;
	return FG_REASON_PASSED;
}

/* Has the ban not expired yet? */
static __always_inline int fg_ban_active(struct fg_ctx *c, const struct fg_ban *ban)
{
	__u64 expires = ban->expires_ns;

	return expires == 0 || expires > (fg_now(c) >> FG_TICK_SHIFT);
}

/* fg_decide's answers that leave the rest of the decision to the main
 * program, which then calls the function named (each a global function of
 * its own, so that its stack is not added to fg_decide's):
 * FG_DECIDE_SPOOFED for a packet that claims a verified or allow-listed
 * address at another hop distance (fg_decide_spoofed), FG_DECIDE_INSPECT
 * for a SIP request whose content is still to be judged (fg_decide_content). */
#define FG_DECIDE_SPOOFED (FG_REASON_SLOTS + 1)
#define FG_DECIDE_INSPECT (FG_REASON_SLOTS + 2)
/* An INVITE whose content passed: the destination rules and fraud checks
 * next (fg_destination, lib/destinations.h), then the budget
 * (fg_decide_budget). Called from the main program, so that their stacks
 * are not added to the deciding function's. */
#define FG_DECIDE_DESTINATION (FG_REASON_SLOTS + 3)
/* A spoofed REGISTER or INVITE (or request over TCP) its prefix admitted: its
 * content next (fg_decide_content, spoofed), from a frame of its own, so that
 * the header walk's stack is not added to fg_decide_spoofed's. */
#define FG_DECIDE_SPOOFED_CONTENT (FG_REASON_SLOTS + 4)

/* Does an INVITE face the destination rules or fraud checks? */
static __always_inline int fg_judges_destination(const struct fg_settings *s, const struct fg_packet *pkt)
{
	/* A request in another class may still be an INVITE in lower case, which
	 * a lenient server takes for one: fg_destination looks. */
	return (pkt->traffic_class == FG_CLASS_INVITE || (pkt->sip_request && pkt->traffic_class == FG_CLASS_SIP_OTHER)) &&
	       fg_judges_calls(s);
}

/* The last step for a SIP packet that passed everything else: the interface
 * budget, shed by priority; verified sources just before allow-listed ones,
 * which come last. Returns the reason for a packet that passes it. */
static __always_inline __u32 fg_budget(struct fg_ctx *c, __u32 tier)
{
	__u32 traffic_class = c->pkt->traffic_class, level;

	if (!fg_is_sip(traffic_class))
		return tier == FG_TIER_ALLOWED ? FG_REASON_PASSED_ALLOW : FG_REASON_PASSED;
	level = tier == FG_TIER_ALLOWED	   ? FG_PRIORITY_ALLOWED
		: tier == FG_TIER_VERIFIED ? FG_PRIORITY_VERIFIED
					   : fg_shed_priority(traffic_class);
	if (!fg_global_admit(c, FG_GLOBAL_BUDGET, FG_LIMIT_BUDGET, level, FG_PRIORITY_LEVELS))
		return FG_REASON_DROPPED_SHED;
	return tier == FG_TIER_ALLOWED ? FG_REASON_PASSED_ALLOW : FG_REASON_PASSED;
}

/* Does this packet's content need a walk (signatures, transactions, the
 * number an INVITE dials)? */
static __always_inline int fg_needs_inspection(const struct fg_settings *s, const struct fg_packet *pkt)
{
	return pkt->sip_request &&
	       (s->signature_entries || fg_notes_transactions(s) ||
		(fg_judges_calls(s) && (pkt->traffic_class == FG_CLASS_INVITE || pkt->traffic_class == FG_CLASS_SIP_OTHER)) ||
		(s->calls_tracked && pkt->traffic_class == FG_CLASS_IN_DIALOG));
}

/*
 * A packet that claims a verified or allow-listed address at another hop
 * distance (lib/tiers.h): charged to its prefix's unverified bucket and
 * dropped, except a REGISTER or INVITE, or TCP, that the bucket admits, which
 * goes on to the server so that a real route change can be confirmed.
 * Nothing of the address's own (buckets, bans, trust) is touched; failures
 * are lib/trust.h's to judge (the address's if they answered its own
 * challenge, else counted apart).
 * A global function called by the main program, so that its stack is not
 * added to fg_decide's.
 */
__noinline int fg_decide_spoofed(struct fg_packet *pkt)
{
	__u32 zero = 0;
	struct fg_settings *s = bpf_map_lookup_elem(&fg_settings, &zero);
	struct fg_ctx c = {.s = s, .pkt = pkt, .now = pkt ? pkt->now_ticks : 0};

	if (!s || !pkt)
		return FG_REASON_DROPPED_SPOOFED;
	pkt->note = FG_NOTE_SPOOFED;
	c.generation = READ_ONCE(s->policy_generation);
	asm volatile("" ::: "memory");
	if (!fg_is_sip(pkt->traffic_class) || fg_police_prefix(&c, 0) != FG_REASON_PASSED)
		return FG_REASON_DROPPED_SPOOFED;
	/* TCP cannot be forged past its handshake: a moved client reconnects. */
	if (pkt->traffic_class == FG_CLASS_SIP_SYN || (pkt->stream && !pkt->sip_request)) {
		pkt->note = 0;
		return fg_budget(&c, FG_TIER_UNVERIFIED);
	}
	if (!pkt->stream && pkt->traffic_class != FG_CLASS_REGISTER && pkt->traffic_class != FG_CLASS_INVITE)
		return FG_REASON_DROPPED_SPOOFED;
	/* A REGISTER or INVITE (or any request over TCP) goes on: its
	 * challenge, then its credentialed retry, are how a moved phone proves
	 * itself; at the prefix's unverified rate and a stranger's place in
	 * the budget. The steps after this one start from the time fg_decide
	 * or this one read (0: none yet). */
	pkt->now_ticks = c.now;
	return FG_DECIDE_SPOOFED_CONTENT;
}

/*
 * The rest of fg_decide for a SIP request of tier pkt->tier that passed its
 * buckets (spoofed 0), or of fg_decide_spoofed for a spoofed REGISTER or
 * INVITE (or request over TCP) its prefix admitted (spoofed 1): the request's
 * content, where it may call, then the budget. A spoofed request is judged as
 * a stranger's, and nothing of the address it claims is touched: its evidence
 * bans no one (but its failed credentials, lib/trust.h), its transaction is
 * noted to be pinned again, and any refusal
 * is dropped-spoofed and reported as spoofed (FG_EVENT_SPOOFED).
 */
__noinline int fg_decide_content(struct xdp_md *ctx, struct fg_packet *pkt, __u32 spoofed)
{
	__u32 zero = 0, reason;
	struct fg_settings *s = bpf_map_lookup_elem(&fg_settings, &zero);
	struct fg_ctx c = {.s = s, .pkt = pkt, .now = pkt ? pkt->now_ticks : 0};

	if (!s || !pkt)
		return spoofed ? FG_REASON_DROPPED_SPOOFED : FG_REASON_PASSED;
	/* UDP evidence bans only the unverified, and never from a spoofed packet. */
	reason = fg_inspect_verdict(&c, pkt, fg_inspect(ctx, pkt, spoofed ? FG_TXN_REPIN : 0),
				    !spoofed && pkt->tier == FG_TIER_UNVERIFIED);
	if (reason != FG_REASON_PASSED && spoofed) {
		/* Reported as what it was counted as: a packet from another hop
		 * distance than the address's (a scanner's signature too). */
		pkt->note = FG_NOTE_SPOOFED;
		return FG_REASON_DROPPED_SPOOFED;
	}
	if (reason != FG_REASON_PASSED)
		return reason;
	/* Where it may call is judged as for any stranger, with buckets kept
	 * apart from the claimed address's own (lib/destinations.h); the note
	 * stays until it passes. */
	if (spoofed)
		pkt->tier = FG_TIER_UNVERIFIED;
	if (fg_judges_destination(s, pkt))
		return FG_DECIDE_DESTINATION;
	if (spoofed)
		pkt->note = 0;
	return fg_noted_if_passed(s, pkt, fg_budget(&c, pkt->tier));
}

/* fg_decide's policy, on its context. */
static __always_inline __u32 fg_policy(struct fg_ctx *c, struct fg_packet *pkt)
{
	const struct fg_settings *s = c->s;
	__u32 zero = 0, index, reason;
	struct fg_allow_entry *allow = NULL;
	struct fg_trust *trust;
	struct fg_limit *lim;
	struct fg_ban *ban;

	/* Read before any limit or list: a change made after this read bumps
	 * the generation, so a slot this decision fills goes stale at once. */
	c->generation = READ_ONCE(s->policy_generation);
	asm volatile("" ::: "memory");
	index = pkt->traffic_class;
	lim = bpf_map_lookup_elem(&fg_limits, &index);
	if (!lim)
		return FG_REASON_PASSED;
	c->interval = READ_ONCE(lim->interval);
	c->tau = READ_ONCE(lim->tau);
	c->key.addr = pkt->src;
	c->key.traffic_class = pkt->traffic_class;

	/* The drop cache was consulted before this call; fill the same slot. */
	if (pkt->traffic_class != FG_CLASS_FRAGMENT)
		c->slot = fg_cache_slot(&c->key);
	if (s->deny_entries && fg_in_list(&fg_deny, &pkt->src)) {
		fg_cache_source_drop(c, ~0ULL, FG_REASON_DROPPED_DENY);
		return FG_REASON_DROPPED_DENY;
	}
	/* The operator's bans beat the allow list; the filter's own do not, nor
	 * does an integration's (fail2ban, the local API: a log line's word,
	 * which a forger can provoke) when the source is allow-listed or
	 * verified, even if it became so after the ban. */
	ban = s->bans_present ? bpf_map_lookup_elem(&fg_bans, &pkt->src) : NULL;
	if (ban && fg_ban_active(c, ban) && !((ban->flags & FG_BAN_INTEGRATION) && fg_is_vouched_for(s, &pkt->src))) {
		fg_cache_ban(c, ban->expires_ns, !(ban->flags & FG_BAN_INTEGRATION));
		return FG_REASON_DROPPED_BAN;
	}
	/* A ban another router learned (BGP): a peer's word, so like an
	 * integration's it spares allow-listed and verified sources. */
	if (s->peer_bans) {
		struct fg_cidr_key key = {.prefixlen = 128, .addr = pkt->src};

		ban = bpf_map_lookup_elem(&fg_peer_bans, &key);
		if (ban && fg_ban_active(c, ban) && !fg_is_vouched_for(s, &pkt->src)) {
			fg_cache_ban(c, ban->expires_ns, 0);
			return FG_REASON_DROPPED_BAN;
		}
	}
	allow = fg_allow_entry(s, &pkt->src);
	if (allow) {
		/* Not cached: the address's own packets must still reach this check. */
		if (!fg_allowed_ttl_ok(s, allow, pkt->ttl, fg_is_sip(pkt->traffic_class)))
			return FG_DECIDE_SPOOFED;
		if (fg_is_sip(pkt->traffic_class) && !fg_allow_admit(c, allow))
			return FG_REASON_DROPPED_ALLOW_LIMIT;
		pkt->tier = FG_TIER_ALLOWED;
		if (fg_needs_inspection(s, pkt))
			return FG_DECIDE_INSPECT;
		return fg_budget(c, FG_TIER_ALLOWED);
	}
	ban = s->auto_bans_present ? bpf_map_lookup_elem(&fg_auto_bans, &pkt->src) : NULL;
	if (ban && fg_ban_active(c, ban)) {
		fg_cache_ban(c, ban->expires_ns, 1);
		return FG_REASON_DROPPED_BAN;
	}
	/* The clock only when trust is on: a read of it costs more than the rest of a plain packet's decision.
	 * An address without state (fg_known) has no entry to look up. */
	trust = s->trust_seconds && !fg_source_unknown(c) ? fg_verified(s, &pkt->src, fg_now(c) >> FG_TICK_SHIFT) : NULL;
	if (trust) {
		if (!fg_ttl_near(s, trust->pin.ttl, pkt->ttl))
			return FG_DECIDE_SPOOFED;
		c->trusted = 1;
		pkt->tier = FG_TIER_VERIFIED;
		/* Verified sources have limits of their own (a registered PBX is
		 * not throttled like a stranger); same bucket, other interval. */
		index = FG_LIMIT_VERIFIED + pkt->traffic_class;
		lim = bpf_map_lookup_elem(&fg_limits, &index);
		if (lim) {
			c->interval = READ_ONCE(lim->interval);
			c->tau = READ_ONCE(lim->tau);
		}
	}
	/* Non-first fragments carry no ports: those of an admitted first
	 * fragment pass; the rest share a bucket per source prefix. */
	if (pkt->traffic_class == FG_CLASS_FRAGMENT) {
		struct fg_source_key prefix = {};

		if (fg_fragment_admitted(pkt))
			return FG_REASON_PASSED;
		fg_prefix_key(c, &prefix);
		c->key.addr = prefix.addr;
	}
	/* An empty prefix bucket drops every packet it would be charged for:
	 * check it before the per-source lookup a random source would miss. */
	if (fg_is_sip(pkt->traffic_class) && !c->trusted) {
		struct fg_cpu_state *cpu = bpf_map_lookup_elem(&fg_cpu, &zero);
		struct fg_source_key prefix = {};
		__u64 jiffies = fg_clock_jiffies(s);

		/* The prefix's slot only (the fast path, which asks the wider
		 * network's too, asked it before this call): no prefix drained on
		 * this CPU, no slot to read (a miss for a random source). */
		if (cpu && jiffies < cpu->prefix_until_jiffies) {
			fg_prefix_key(c, &prefix);
			if (fg_prefix_cached(s, cpu, &prefix, jiffies))
				return FG_REASON_DROPPED_PREFIX;
		}
	}

	reason = fg_police_source(c);
	if (reason != FG_REASON_PASSED) {
		/* A fragment bucket's drop: noted for fg_cache_fragments, which
		 * the main program calls (this function's stack has no room for
		 * its keys). */
		if (reason == FG_REASON_DROPPED_RATE && pkt->traffic_class == FG_CLASS_FRAGMENT && !c->trusted) {
			pkt->source_until = fg_cache_until(s, c->tau, c->call.next, c->call.now);
			pkt->source_generation = c->generation;
		}
		return reason;
	}

	if (fg_needs_inspection(s, pkt))
		return FG_DECIDE_INSPECT;
	return fg_budget(c, pkt->tier);
}

/*
 * The policy for a parsed packet; returns an enum fg_reason. A global function,
 * so the verifier checks it once for any packet rather than once for each way
 * the parser can reach it.
 */
__noinline int fg_decide(struct fg_packet *pkt)
{
	__u32 zero = 0, reason;
	struct fg_settings *s = bpf_map_lookup_elem(&fg_settings, &zero);
	struct fg_ctx c = {.s = s, .pkt = pkt};

	if (!s || !pkt)
		return FG_REASON_PASSED;
	reason = fg_policy(&c, pkt);
	/* The steps after this one start from the time it read, if it read one. */
	pkt->now_ticks = c.now;
	return reason;
}

/* The budget, after the destination rules passed an INVITE. */
__noinline int fg_decide_budget(struct fg_packet *pkt)
{
	__u32 zero = 0;
	struct fg_settings *s = bpf_map_lookup_elem(&fg_settings, &zero);
	struct fg_ctx c = {.s = s, .pkt = pkt, .now = pkt ? pkt->now_ticks : 0};

	if (!s || !pkt)
		return FG_REASON_PASSED;
	return fg_noted_if_passed(s, pkt, fg_budget(&c, pkt->tier));
}

/* Counts a packet the policy judged; one drop in FG_DROP_SAMPLE_EVERY of each
 * class and reason on each CPU is reported to the agent with its source. */
static __always_inline int fg_verdict(struct fg_cpu_state *cpu, const struct fg_packet *pkt, __u32 reason,
				      __u64 bytes)
{
	__u64 seen = 1, now;
	int action = fg_count_seen(cpu, pkt->traffic_class, reason, bytes, &seen);

	if (action == XDP_DROP && !(seen & (FG_DROP_SAMPLE_EVERY - 1)))
		fg_event(FG_EVENT_DROP_SAMPLE, pkt->traffic_class, &pkt->src, 0, reason, seen);
	/* A forger can make these at line rate: at most one of each a second per
	 * CPU, timed by the coarse clock, which a forger's flood of them then
	 * reads instead of the precise one. */
	if (pkt->note) {
		__u64 *last = pkt->note == FG_NOTE_SPARED ? &cpu->spared_event_ns : &cpu->spoofed_event_ns;

		now = fg_clock_coarse_ns();
		if (now - *last >= FG_NOISY_EVENT_NS) {
			*last = now;
			if (pkt->note == FG_NOTE_SPARED)
				fg_event(FG_EVENT_SPARED, pkt->traffic_class, &pkt->src, 0, FG_BAN_SCANNER, 1);
			else
				fg_event(FG_EVENT_SPOOFED, pkt->traffic_class, &pkt->src, 0, pkt->ttl, 0);
		}
	}
	return action;
}

/* Counts a drop the cache decided, in counters row `row` (the packet's class,
 * or FG_COUNTER_UNPARSED when a source-keyed slot decided before the class was
 * read): fg_verdict without what only the policy sets (notes), and without
 * working out the action (every cached reason is a drop). */
static __always_inline int fg_cached_drop(struct fg_cpu_state *cpu, __u32 row, const struct fg_addr *src,
					  __u32 reason, __u64 bytes)
{
	__u64 seen = 1;

	fg_count_seen(cpu, row, reason, bytes, &seen);
	if (!(seen & (FG_DROP_SAMPLE_EVERY - 1)))
		fg_event(FG_EVENT_DROP_SAMPLE, row, src, 0, reason, seen);
	return XDP_DROP;
}

/* Counts a drop decided before the parse in counters row `row`; a sampled
 * drop's event names the source, read again from the frame into `addr`
 * (zeroed first for the verifier, which cannot see that the frame is as long
 * as the check proved it). */
static __always_inline int fg_unparsed_drop(struct xdp_md *ctx, struct fg_cpu_state *cpu, __u32 row, __u32 reason,
					    __u64 bytes, struct fg_addr *addr)
{
	__u64 seen = 1;

	fg_count_seen(cpu, row, reason, bytes, &seen);
	if (!(seen & (FG_DROP_SAMPLE_EVERY - 1))) {
		*addr = (struct fg_addr){};
		fg_plain_source(ctx, addr);
		fg_event(FG_EVENT_DROP_SAMPLE, row, addr, 0, reason, seen);
	}
	return XDP_DROP;
}

/* A frame whose source a source-keyed slot drops: counted, XDP_DROP; else
 * XDP_PASS, and the frame goes on to be parsed. The held source first
 * (lib/drop_cache.h, fg_held_source), counted pending in the CPU's state;
 * then the slots. Inlined: as a global function
 * (verified once) its call cost a banned frame 11-12 ns, all it saved; inlined,
 * the verifier's count for the main program rose from 566,000 to 791,000 of
 * its 1,000,000 (535,865 with the later changes: the IPv6 extension headers
 * out of line, lib/parse.h). */
static __always_inline int fg_unparsed(struct xdp_md *ctx, const struct fg_settings *s, struct fg_cpu_state *cpu,
				       __u64 jiffies, __u64 bytes)
{
	struct fg_source_key key;
	struct fg_drop_slot *slot;
	__u32 reason;
	int held = 0;

	if (jiffies < cpu->held_source_until && cpu->held_source_generation == READ_ONCE(s->policy_generation))
		held = fg_held_source(ctx, cpu);
	if (held) {
		reason = cpu->held_source_reason;
	} else {
		slot = fg_source_cache_check(ctx, s, cpu, jiffies, &key);
		if (!slot)
			return XDP_PASS;
		fg_hold_source(cpu, slot, &key);
		reason = slot->reason;
	}
	/* Counted pending, for the source's entry in fg_sources (lib/drop_cache.h). */
	if (++cpu->held_source_pending >= FG_DROP_CACHE_FLUSH)
		fg_unhold_source_drops();
	return fg_unparsed_drop(ctx, cpu, FG_COUNTER_UNPARSED, reason, bytes, &key.addr);
}

/* A source its own bucket dropped: ban it if it keeps at it. A function of
 * its own, so its key is not on the stack beside fg_decide's. */
static __noinline void fg_autoban_check(struct fg_settings *s, const struct fg_packet *pkt)
{
	struct fg_source_key key = {.addr = pkt->src, .traffic_class = pkt->traffic_class};
	struct fg_source_state *st = bpf_map_lookup_elem(&fg_sources, &key);

	if (st && st->window_drops >= s->autoban_drops)
		fg_note_drops(s, st, &key, 0);
}

SEC("xdp")
int floodgate_xdp(struct xdp_md *ctx)
{
	__u64 bytes = ctx->data_end - ctx->data;
	struct fg_packet pkt;
	struct fg_settings *s;
	struct fg_cpu_state *cpu;
	__u32 reason;
	__u64 jiffies;
	int status;

	s = bpf_map_lookup_elem(&fg_settings, &fg_entry_zero);
	if (!s)
		return XDP_PASS; /* unreachable: an array always has index 0 */
	jiffies = fg_clock_jiffies(s);
	cpu = bpf_map_lookup_elem(&fg_cpu, &fg_entry_zero);
	if (!cpu)
		return XDP_PASS; /* unreachable, as above */
	/* A banned or denied source's frames end here, before they are parsed
	 * (lib/drop_cache.h). */
	if (jiffies < cpu->source_until_jiffies && cpu->source_generation == READ_ONCE(s->policy_generation) &&
	    fg_unparsed(ctx, s, cpu, jiffies, bytes) == XDP_DROP)
		return XDP_DROP;
	/* So do the plain SIP datagrams of the held aggregate's sources, counted
	 * in their class's row as the check after the parse would count them
	 * (lib/drop_cache.h, fg_held_unparsed): a random-source flood from a
	 * drained network skips the parse, 6-7 ns of the filter's own time a
	 * packet (Benchmarks/README.md, "The held aggregate asked before the
	 * parse"). A sampled drop's event names the source, read into the
	 * record's place on the stack. */
	if (jiffies < cpu->held_until_jiffies) {
		__u32 row = fg_held_unparsed(ctx, s, cpu);

		if (row < FG_CLASS_MAX)
			return fg_unparsed_drop(ctx, cpu, row, FG_REASON_DROPPED_PREFIX, bytes, &pkt.src);
		/* The parse reloads the frame's pointers rather than keep the
		 * check's, whose ranges would make this path's state at the parse
		 * differ from the others': without it the verifier walked the
		 * rest of the program again and passed its 1,000,000 instructions. */
		asm volatile("" ::: "memory");
	}

	status = fg_parse(ctx, s, &pkt);
	if (status == FG_PARSE_MALFORMED)
		return fg_count(pkt.traffic_class,
				s->malformed_action == FG_ACTION_PASS ? FG_REASON_PASSED_MALFORMED
								      : FG_REASON_DROPPED_MALFORMED,
				bytes);
	if (status == FG_PARSE_NON_IP || pkt.icmp_essential)
		return fg_count(pkt.traffic_class, FG_REASON_PASSED, bytes);
	/* A flood's packets end here, in the drop cache, before the policy. */
	/* The aggregates first: their few slots stay in cache, while a random
	 * source's own slot is a miss. A packet dropped here would be dropped by
	 * its own bucket or by the aggregate either way; it counts as
	 * dropped-prefix. */
	reason = fg_prefix_cache_check(s, cpu, &pkt, jiffies);
	if (reason == FG_REASON_PASSED)
		reason = pkt.traffic_class != FG_CLASS_FRAGMENT	   ? fg_cache_check(s, cpu, &pkt, jiffies)
			 : jiffies < cpu->prefix_until_jiffies ? fg_fragment_cache_check(&pkt, jiffies)
								   : FG_REASON_PASSED;
	if (reason != FG_REASON_PASSED)
		return fg_cached_drop(cpu, pkt.traffic_class, &pkt.src, reason, bytes);
	pkt.now_ticks = 0;
	pkt.source_until = 0;
	pkt.txn_note = 0;
	reason = fg_decide(&pkt);
	if (pkt.source_until) {
		if (pkt.traffic_class == FG_CLASS_FRAGMENT)
			fg_cache_fragments(&pkt);
		else
			fg_cache_source(&pkt, reason);
	}
	if (reason == FG_DECIDE_SPOOFED) {
		reason = fg_decide_spoofed(&pkt);
		if (reason == FG_DECIDE_SPOOFED_CONTENT)
			reason = fg_decide_content(ctx, &pkt, 1);
	} else if (reason == FG_DECIDE_INSPECT) {
		reason = fg_decide_content(ctx, &pkt, 0);
	}
	if (reason == FG_DECIDE_DESTINATION) {
		reason = fg_destination(&pkt);
		if (reason == FG_REASON_PASSED) {
			pkt.note = 0;
			reason = fg_decide_budget(&pkt);
			if (s->calls_tracked && (reason == FG_REASON_PASSED || reason == FG_REASON_PASSED_ALLOW))
				fg_calls_after(&pkt, 1);
		}
	} else if (s->calls_tracked && pkt.inspected && (reason == FG_REASON_PASSED || reason == FG_REASON_PASSED_ALLOW) &&
		   (pkt.traffic_class == FG_CLASS_IN_DIALOG || pkt.traffic_class == FG_CLASS_SIP_OTHER)) {
		fg_calls_after(&pkt, 0);
	}
	if (pkt.frag_first && (reason == FG_REASON_PASSED || reason == FG_REASON_PASSED_ALLOW))
		fg_note_fragment(&pkt);
	if (reason == FG_REASON_DROPPED_RATE && s->autoban_drops && pkt.traffic_class != FG_CLASS_FRAGMENT)
		fg_autoban_check(s, &pkt);
	return fg_verdict(cpu, &pkt, reason, bytes);
}

/* floodgate_inside, the program for the interface facing the SIP server:
 * in a file of its own, in this object, whose maps the two programs share. */
#include "inside.h"
