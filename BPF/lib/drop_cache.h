/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The per-CPU drop cache: a source that is being dropped (empty bucket, deny
 * list, ban, blocked class) is dropped again without the shared lookups or a
 * read of the precise clock.
 *
 * Under a flood almost every packet is a drop, and a drop's cost was the
 * shared LRU lookup and bpf_ktime_get_ns (together about 60 ns here, against
 * about 7 ns for everything else). When a drop is decided, this CPU remembers
 * (source, class, limit, reason, until-jiffy) in a direct-mapped slot and drops
 * that source's packets of that class while the jiffy count is before it,
 * counting them in the slot (the held source's in the CPU's state, below,
 * until they go to its slot); they reach fg_sources every FG_DROP_CACHE_FLUSH
 * drops, when the slot is reused, or (a (source, class) slot) when the source
 * next takes the slow path; `top` adds what is still pending.
 *
 * For an empty bucket, the jiffy is the one in which its next token comes due,
 * rounded up, so the cache may hold a source back for up to one jiffy after its
 * token is due. It is used only when the bucket can hold at least a jiffy's
 * worth of tokens (tau >= one jiffy), so the tokens that come due meanwhile are
 * admitted at the next packet and never lost: the admitted rate is unchanged.
 * For a ban it is the jiffy of its expiry, rounded down. Every change of a
 * limit or a list, and every ban removed, bumps settings.policy_generation,
 * which makes every slot filled before it stale at once: a cached drop is
 * checked against one number, not against the limits it was decided under.
 * Slots are per CPU, so they need no atomics.
 *
 * Each slot's key also has a tag, 16 bits of its hash, in fg_cpu's value after
 * the state (8 KiB a CPU, which stays in cache where the slots' 256 KiB does
 * not; found from the state the packet has already looked up). A packet
 * whose tag differs from its slot's has no slot of its own, and goes on
 * without a read of the slot's line: the packets of a source that is not being
 * dropped (a new source, most of a random-source flood under its limits) took
 * a miss there, a quarter of the worst case's samples in the filter. (A source
 * with state still has its slot read by the policy, for its pending drops.)
 * A tag is written whenever its slot is filled; a tag and slot that disagree
 * (a run on this CPU cut into by another between the two writes) can only send
 * a packet on to the policy, never drop it: a match still compares the key.
 * (The held source, below, drops only its own source, by its own jiffy and
 * generation; a fill of its slot spoils the slot's tag before it moves the
 * held source's drops there: fg_cache_unhold.)
 */
#ifndef FG_LIB_DROP_CACHE_H
#define FG_LIB_DROP_CACHE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "../floodgate.h"
#include "parse.h"
#include "clock.h"
#include "state.h"
#include "autoban.h"
#include "known.h"

/* fg_drop_cache: see above; its entries are groups of slots (floodgate.h). */
struct fg_drop_group {
	struct fg_drop_slot slots[FG_DROP_CACHE_GROUP];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FG_DROP_CACHE_GROUPS);
	__type(key, __u32);
	__type(value, struct fg_drop_group);
} fg_drop_cache SEC(".maps");

/* The key of fg_settings' and fg_cpu's one entry, in read-only data: not a
 * word of the deciding functions' stacks, which are at the verifier's limit. */
static const __u32 fg_entry_zero = 0;

static __always_inline int fg_same_key(const struct fg_source_key *a, const struct fg_source_key *b)
{
	return a->addr.words[0] == b->addr.words[0] && a->addr.words[1] == b->addr.words[1] &&
	       a->addr.words[2] == b->addr.words[2] && a->addr.words[3] == b->addr.words[3] &&
	       a->traffic_class == b->traffic_class;
}

static __always_inline struct fg_drop_slot *fg_slot_at(__u32 index)
{
	__u32 entry = index / FG_DROP_CACHE_GROUP;
	struct fg_drop_group *group = bpf_map_lookup_elem(&fg_drop_cache, &entry);

	return group ? &group->slots[index & (FG_DROP_CACHE_GROUP - 1)] : NULL;
}

/* The slot of `key`, whatever it holds (to fill it). */
static __always_inline struct fg_drop_slot *fg_cache_slot(const struct fg_source_key *key)
{
	return fg_slot_at(fg_hash_slot(fg_slot_hash(key)));
}

/* The slot of `key` if its tag on this CPU (whose state is `cpu`) is key's,
 * else NULL: the slot holds another key, and its line is not read. */
static __always_inline struct fg_drop_slot *fg_cache_tagged(const struct fg_cpu_state *cpu,
							     const struct fg_source_key *key)
{
	__u32 hash = fg_slot_hash(key), index = fg_hash_slot(hash);

	if (fg_cpu_tags(cpu)[index & (FG_DROP_CACHE_SLOTS - 1)] != fg_hash_tag(hash))
		return NULL;
	return fg_slot_at(index);
}

/* The slot of `key` if it holds key's drop now: its tag and whole key are
 * key's, its jiffy has not come and no policy change came after its fill;
 * else NULL. */
static __always_inline struct fg_drop_slot *fg_cache_live(const struct fg_settings *s, const struct fg_cpu_state *cpu,
							   const struct fg_source_key *key, __u64 jiffies)
{
	struct fg_drop_slot *slot = fg_cache_tagged(cpu, key);

	if (!slot || jiffies >= slot->until_jiffies || !fg_same_key(&slot->key, key) ||
	    slot->generation != READ_ONCE(s->policy_generation))
		return NULL;
	return slot;
}

/* Writes the tag of the slot `key` has just been put in. A global function:
 * inlined, its hash took stack in the deciding function, which is at the
 * verifier's limit of 512 bytes over a chain of calls. */
__noinline int fg_cache_tag(const struct fg_source_key *key)
{
	struct fg_cpu_state *cpu = bpf_map_lookup_elem(&fg_cpu, &fg_entry_zero);
	__u32 hash;

	if (!key || !cpu)
		return 0;
	hash = fg_slot_hash(key);
	fg_cpu_tags(cpu)[fg_hash_slot(hash) & (FG_DROP_CACHE_SLOTS - 1)] = fg_hash_tag(hash);
	/* A fill of the held source's slot ends the copy (fg_held_source), as
	 * fg_cache_unhold did before it; again here, for a run that cut in. */
	if (cpu->held_source_slot == fg_hash_slot(hash))
		cpu->held_source_until = 0;
	return 0;
}

/*
 * Adds a source-keyed slot's pending drops to one of its source's entries in
 * fg_sources, if the LRU holds one; a source without any gets none, as in
 * fg_flush. The entry is (source, slot->source_class), the class of the frame
 * that filled the slot; if the source has none for it (a first frame to an
 * unlimited class, say), the first other class it has one for, which is then
 * kept in the slot. Their drops are bans and denials, which count nothing
 * toward an auto-ban. What it costs a forger's spoofed sources: a source
 * without state (a clear bit in fg_known) none of the lookups; the search over
 * the classes only for FG_SOURCE_SEARCH_PENDING drops or more, so a spoofed
 * source whose slot is reused after a few drops costs one lookup at most (and
 * those few drops of a source whose filling class has no entry are not added:
 * `unparsed` has them). Fragments are not a source's: their entries are keyed
 * by the prefix. The count is taken before the lookups. A global function: the
 * deciding function's stack, from which it may be reached, has no room for the
 * key inlined.
 */
__noinline int fg_flush_source(struct fg_drop_slot *slot)
{
	struct fg_source_state *st;
	struct fg_source_key key;
	__u32 c, first;
	__u64 n;

	if (!slot || !slot->pending)
		return 0;
	n = slot->pending;
	slot->pending = 0;
	key = slot->key;
	if (!fg_known_maybe(&key.addr))
		return 0;
	first = slot->source_class;
	key.traffic_class = first;
	st = bpf_map_lookup_elem(&fg_sources, &key);
	if (!st && n >= FG_SOURCE_SEARCH_PENDING) {
		for (c = 0; c < FG_CLASS_MAX; c++) {
			if (c == first || c == FG_CLASS_FRAGMENT)
				continue;
			key.traffic_class = c;
			st = bpf_map_lookup_elem(&fg_sources, &key);
			if (st) {
				slot->source_class = c;
				break;
			}
		}
	}
	if (st) {
		__sync_fetch_and_add(&st->packets, n);
		__sync_fetch_and_add(&st->drops, n);
	}
	return 0;
}

/* Moves the held source's pending drops (fg_cpu_state.held_source_pending)
 * to its slot, which holds its key while there are any (fg_cache_unhold moves
 * them before a fill of the slot); returns the slot, or NULL if there were
 * none. */
static __always_inline struct fg_drop_slot *fg_move_held_drops(struct fg_cpu_state *cpu)
{
	struct fg_drop_slot *slot;

	if (!cpu->held_source_pending)
		return NULL;
	slot = fg_slot_at(cpu->held_source_slot & (FG_DROP_CACHE_SLOTS - 1));
	if (slot)
		slot->pending += cpu->held_source_pending;
	cpu->held_source_pending = 0;
	return slot;
}

/* The same, and the slot's pending drops flushed at FG_DROP_CACHE_FLUSH: when
 * the held source's reach it, and when another source is held. A global
 * function: cold, and called from the main program's drop path, whose
 * verification is near its limit. */
__noinline int fg_unhold_source_drops(void)
{
	struct fg_cpu_state *cpu = bpf_map_lookup_elem(&fg_cpu, &fg_entry_zero);
	struct fg_drop_slot *slot = cpu ? fg_move_held_drops(cpu) : NULL;

	if (slot && slot->pending >= FG_DROP_CACHE_FLUSH)
		fg_flush_source(slot);
	return 0;
}

/* Before a fill of `key`'s slot: if it is the held source's, the copy ends
 * and its pending drops go to the slot (flushed with the slot's own if the
 * fill's key is another), so that they reach the held source's entry and not
 * the next key's. The slot's tag is spoilt first, until the fill writes its
 * own: a run on this CPU that cuts in from here on finds neither the copy nor
 * the slot, and goes to the policy, so it cannot hold the source again and
 * take its drops back from the slot before the fill. (Called twice by
 * fg_cache_source's fill, whose second call finds nothing to move.) Calls no
 * function of ours: it is reached from the deciding function, at the
 * verifier's limit of stack over a chain of calls. */
__noinline int fg_cache_unhold(const struct fg_source_key *key)
{
	struct fg_cpu_state *cpu = bpf_map_lookup_elem(&fg_cpu, &fg_entry_zero);
	__u32 index;

	if (!key || !cpu)
		return 0;
	index = fg_hash_slot(fg_slot_hash(key)) & (FG_DROP_CACHE_SLOTS - 1);
	if (cpu->held_source_slot != index)
		return 0;
	fg_cpu_tags(cpu)[index] ^= 1;
	cpu->held_source_until = 0;
	fg_move_held_drops(cpu);
	return 0;
}

/* Add a slot's pending drops to its source's entry. A source the LRU has
 * evicted meanwhile (or never held: denied, banned) is not inserted: its
 * class counters (a source-keyed slot's: the unparsed row) already hold those
 * drops. */
/* `may_ban`: whether this call site may call fg_note_drops (see there);
 * elsewhere the drops are only counted in the auto-ban window. */
static __always_inline void fg_flush(const struct fg_settings *s, struct fg_drop_slot *slot,
				     struct fg_source_state *st, int may_ban)
{
	if (!slot->pending)
		return;
	if (slot->key.traffic_class == FG_SLOT_SOURCE) {
		fg_flush_source(slot);
		return;
	}
	if (!st)
		st = bpf_map_lookup_elem(&fg_sources, &slot->key);
	if (st) {
		__sync_fetch_and_add(&st->packets, slot->pending);
		__sync_fetch_and_add(&st->drops, slot->pending);
		if (slot->reason == FG_REASON_DROPPED_RATE && s->autoban_drops) {
			if (may_ban)
				fg_note_drops((struct fg_settings *)s, st, &slot->key, slot->pending);
			else
				fg_window_add(s, st, slot->pending);
		}
	}
	slot->pending = 0;
}


/*
 * Is this packet's source being dropped on this CPU? Returns the cached drop
 * reason, or FG_REASON_PASSED. Not for later fragments: their bucket key is
 * the prefix, not the source, and a verdict cached for one source must not
 * reach another (an allow-listed one, say); a drained fragment bucket is held
 * by its prefix (fg_cache_fragments, fg_fragment_cache_check).
 */
static __always_inline __u32 fg_cache_check(const struct fg_settings *s, const struct fg_cpu_state *cpu,
					     const struct fg_packet *pkt, __u64 jiffies)
{
	struct fg_source_key key = {.addr = pkt->src, .traffic_class = pkt->traffic_class};
	struct fg_drop_slot *slot;

	if (pkt->traffic_class == FG_CLASS_FRAGMENT)
		return FG_REASON_PASSED;
	slot = fg_cache_live(s, cpu, &key, jiffies);
	if (!slot)
		return FG_REASON_PASSED;
	if (++slot->pending >= FG_DROP_CACHE_FLUSH)
		fg_flush(s, slot, NULL, 1);
	return slot->reason;
}


/* Remember on this CPU that key's packets are dropped, for `reason`, until
 * jiffy `until`, as decided under policy generation `generation`. */
static __always_inline void fg_cache_fill(struct fg_drop_slot *slot, const struct fg_source_key *key,
					  const struct fg_settings *s, __u32 generation, __u64 until, __u32 reason)
{
	if (!slot || !s->jiffy_ns)
		return;
	if (!fg_same_key(&slot->key, key)) {
		fg_cache_unhold(key);
		fg_flush(s, slot, NULL, 0);
		slot->key = *key;
	}
	slot->generation = generation;
	slot->reason = reason;
	slot->until_jiffies = until;
	/* Last: a run that cuts in before it finds the old tag, and goes on to the policy. */
	fg_cache_tag(key);
}

static __always_inline void fg_cache_drop(struct fg_drop_slot *slot, const struct fg_source_key *key,
					  const struct fg_ctx *c, __u64 until, __u32 reason)
{
	fg_cache_fill(slot, key, c->s, c->generation, until, reason);
}

/* The jiffy by which a bucket whose next token is due at `next` (ticks) may
 * take packets again, rounded up; 0 if the cache must not be used: rounding up
 * is only harmless if the bucket can hold the tokens that come due meanwhile. */
static __always_inline __u64 fg_cache_until(const struct fg_settings *s, __u64 tau, __u64 next, __u64 now)
{
	__u64 jiffy = (__u64)s->jiffy_ns << FG_TICK_SHIFT;

	if (!jiffy || tau < jiffy || next <= now)
		return 0;
	return fg_clock_jiffies(s) + (next - now + jiffy - 1) / jiffy;
}

/*
 * The same for a drained prefix, held for at least FG_PREFIX_HOLD_NS. A
 * random-source flood over a /16 whose network is not held whole (it holds an
 * allow-listed or verified source: fg_cache_aggregate) gets its 256 /24s held,
 * whose slots would each expire every jiffy (the next token of a 200/s bucket
 * is due within one) and send 256 packets a jiffy down the slow path: 3% of a
 * CPU here. Holding them longer changes nothing in what the prefix admits, as
 * long as the tokens that come due meanwhile fit in the bucket (the hold never
 * exceeds tau):
 * they are taken by the first packets after it, a burst of at most
 * FG_PREFIX_HOLD_NS worth of the prefix's rate.
 */
static __always_inline __u64 fg_prefix_cache_until(const struct fg_settings *s, __u64 tau, __u64 next, __u64 now)
{
	__u64 jiffy = (__u64)s->jiffy_ns << FG_TICK_SHIFT, hold = FG_PREFIX_HOLD_NS << FG_TICK_SHIFT;
	__u64 due;

	if (!jiffy || tau < jiffy || next <= now)
		return 0;
	/* Rounding up to a jiffy adds less than one: hold + jiffy <= tau. */
	if (hold + jiffy > tau)
		hold = tau - jiffy;
	due = next - now;
	if (due < hold)
		due = hold;
	return fg_clock_jiffies(s) + (due + jiffy - 1) / jiffy;
}

/* Is the aggregate `key` (a prefix or a wider network, already masked) being
 * dropped on this CPU? Only read: an aggregate has no entry in fg_sources to
 * flush drops to (the class counters have them), so its slot counts nothing
 * and stays clean in cache. */
static __always_inline int fg_prefix_cached(const struct fg_settings *s, const struct fg_cpu_state *cpu,
					    const struct fg_source_key *key, __u64 jiffies)
{
	return fg_cache_live(s, cpu, key, jiffies) != NULL;
}

/* An empty bucket whose next token comes due at `next` (ticks), as judged
 * at c->call.now. */
static __always_inline void fg_cache_drop_until(struct fg_ctx *c, __u64 next)
{
	__u64 until = fg_cache_until(c->s, c->tau, next, c->call.now);

	if (until)
		fg_cache_drop(c->slot, &c->key, c, until, FG_REASON_DROPPED_RATE);
}

/*
 * The held aggregate: the prefix or wider network whose slot last dropped a
 * packet on this CPU, copied into the CPU's state with its mask, its slot's
 * jiffy and its policy generation. A random-source flood from one drained
 * network then ends in a masked compare of the source against two lines the
 * packet has already looked up, without the slot's key, hash, tag and lookup
 * (in test runs an IPv4 drop 3-5 ns less, an IPv6 one 3-9: "The held
 * aggregate as a mask in the CPU's state" in Benchmarks/README.md). It drops
 * only sources its slot held: it is copied from a live slot, ends with the
 * slot's jiffy or at a policy change, and a source verified in it ends it on
 * every CPU with the slot (fg_release_held). A network whose slot another key
 * takes over stays held here until its jiffy (in its slot alone its packets
 * would have gone to the policy, which could let through a token that came
 * due in a prefix's minimum hold). An IPv6 aggregate that holds the
 * IPv4-mapped addresses is never matched here (fg_hold_aggregate). Plain
 * SIP datagrams (what a random-source flood sends) ask it before the parse
 * (fg_held_unparsed); every other frame, and one that misses there, after it
 * (fg_prefix_cache_check).
 *
 * fg_held_contains: whether `addr` is in it, whatever its jiffy. Branch-free:
 * each branch of a plain compare multiplied the verifier's states.
 */
static __always_inline int fg_held_contains_words(const struct fg_cpu_state *cpu, __u32 w0, __u32 w1, __u32 w2,
						  __u32 w3)
{
	const struct fg_addr *net = &cpu->held_network, *mask = &cpu->held_mask;

	return !(((w0 & mask->words[0]) ^ net->words[0]) | ((w1 & mask->words[1]) ^ net->words[1]) |
		 ((w2 & mask->words[2]) ^ net->words[2]) | ((w3 & mask->words[3]) ^ net->words[3]));
}

static __always_inline int fg_held_contains(const struct fg_cpu_state *cpu, const struct fg_addr *addr)
{
	return fg_held_contains_words(cpu, addr->words[0], addr->words[1], addr->words[2], addr->words[3]);
}

static __always_inline int fg_held_aggregate(const struct fg_settings *s, const struct fg_cpu_state *cpu,
					     const struct fg_addr *src, __u64 jiffies)
{
	return jiffies < cpu->held_until_jiffies && fg_held_contains(cpu, src) &&
	       cpu->held_generation == READ_ONCE(s->policy_generation);
}

/* ::ffff:0.0.0.0, where the IPv4 sources' addresses begin. */
static const struct fg_addr fg_v4_mapped = {.words = {0, 0, __bpf_constant_htonl(0xffff), 0}};

/* Copies the live slot `slot`, the aggregate `key` whose prefix length is
 * `len` (over the 128-bit address), into the CPU's held aggregate; an IPv4
 * aggregate if `v4`. The copy's compare knows no family: an IPv6 aggregate
 * that holds the IPv4-mapped addresses (::/64 and ::/48 do, and their other
 * sources are not bogus) would match every IPv4 source, and a forger who
 * drained ::/64 would have all IPv4 SIP dropped. Such a copy gets a bit in
 * its network's last word, where its mask is zero (it is: a longer mask than
 * /96 would make the network ::ffff:0:0/96's, whose sources are bogus), so
 * that it matches nothing and the slot alone holds the aggregate. Without a
 * branch: one more took the verifier's count past 910,000. */
static __always_inline void fg_hold_aggregate(struct fg_cpu_state *cpu, const struct fg_drop_slot *slot,
					      const struct fg_source_key *key, __u32 len, int v4)
{
	cpu->held_mask.words[0] = ~0U;
	cpu->held_mask.words[1] = ~0U;
	cpu->held_mask.words[2] = ~0U;
	cpu->held_mask.words[3] = ~0U;
	fg_mask(&cpu->held_mask, len);
	cpu->held_network = key->addr;
	cpu->held_network.words[3] |= (__u32)(!v4) & (__u32)fg_held_contains(cpu, &fg_v4_mapped);
	cpu->held_generation = slot->generation;
	cpu->held_until_jiffies = slot->until_jiffies;
}

/*
 * The prefix part of the cache: a random-source flood from a drained prefix,
 * or from a drained wider network, ends here, before the policy. An aggregate
 * is cached only if it holds no allow-listed or verified address
 * (fg_cache_aggregate), so no source the allow list would pass is dropped
 * here; a denied or banned source in it would be dropped by the policy too,
 * and is counted as dropped-prefix instead. The wider network first: a flood
 * spread over its prefixes then reads its one slot, which stays in cache,
 * rather than one slot per prefix (a random /16's 256, a miss each). If it is
 * not held, the source's prefix. A loop of two turns, not two copies of the
 * check: the verifier's count for the main program doubled with two.
 */
static __always_inline __u32 fg_prefix_cache_check(const struct fg_settings *s, struct fg_cpu_state *cpu,
						   const struct fg_packet *pkt, __u64 jiffies)
{
	struct fg_source_key key = {.addr = pkt->src, .traffic_class = FG_CLASS_MAX + 1};
	struct fg_drop_slot *slot;
	int v4 = fg_is_v4(&key.addr);
	/* The level's prefix lengths, IPv4's in the low byte and IPv6's above it. */
	__u32 lengths = s->wide_v4 | (__u32)s->wide_v6 << 8;

	if (pkt->traffic_class > FG_CLASS_SIP_LAST)
		return FG_REASON_PASSED;
	if (fg_held_aggregate(s, cpu, &pkt->src, jiffies))
		return FG_REASON_DROPPED_PREFIX;
	/* Most of the time no aggregate is drained on this CPU: skip the masking and the slot. */
	if (jiffies >= cpu->wide_until_jiffies)
		goto prefix;
check:
	if (v4) {
		/* Only the last word of an IPv4-mapped address is masked. */
		__u32 bits = lengths & 0xff;

		if (bits == 0)
			key.addr.words[3] = 0;
		else if (bits < 32)
			key.addr.words[3] &= bpf_htonl(~0U << (32 - bits));
	} else {
		fg_mask(&key.addr, lengths >> 8);
	}
	slot = fg_cache_live(s, cpu, &key, jiffies);
	if (slot) {
		fg_hold_aggregate(cpu, slot, &key, v4 ? 96 + (lengths & 0xff) : lengths >> 8, v4);
		return FG_REASON_DROPPED_PREFIX;
	}
	if (key.traffic_class == FG_CLASS_MAX)
		return FG_REASON_PASSED;
	/* The wider network is not held here: the source's prefix may be. */
prefix:
	if (jiffies >= cpu->prefix_until_jiffies)
		return FG_REASON_PASSED;
	key.addr = pkt->src;
	key.traffic_class = FG_CLASS_MAX;
	lengths = s->prefix_v4 | (__u32)s->prefix_v6 << 8;
	goto check;
}

/*
 * The held aggregate asked before the parse, for the frames fg_parse_plain_udp4
 * and 6 read whole to a SIP port (untagged; IPv4 without options and not a
 * fragment, or IPv6 whose next header is UDP; a source that is not bogus; 24
 * bytes of payload or more within the UDP length, the first not CR, LF, space
 * or tab). Each such frame is of a SIP class, which the aggregates' buckets
 * limit, and the parse would give it the class fg_sip_class reads here: the
 * check after the parse (fg_prefix_cache_check) would drop it as
 * dropped-prefix in that class's row. Returns that class if the held aggregate
 * holds the source now (the caller has asked its jiffy), else FG_CLASS_MAX,
 * and the frame goes on to the parse. The conditions are the plain parse's,
 * read without its writes to the packet's record (what this saves), and must
 * stay in step with them: PolicyOrderTests send reframed bytes from a held
 * network, fixed and at random, and compare each verdict with the parse's.
 */
static __always_inline __u32 fg_held_unparsed(struct xdp_md *ctx, const struct fg_settings *s,
					      const struct fg_cpu_state *cpu)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct udphdr *udp;
	void *payload;
	__u32 len, avail;
	__u8 first;

	if ((void *)(eth + 1) > data_end || cpu->held_generation != READ_ONCE(s->policy_generation))
		return FG_CLASS_MAX;
	if (fg_eth_proto(eth) == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		udp = (void *)(ip + 1);
		payload = udp + 1;
		if (payload + 24 > data_end || *(__u8 *)ip != 0x45 || (ip->frag_off & bpf_htons(FG_IP_MF | FG_IP_OFFSET)) ||
		    ip->protocol != IPPROTO_UDP || fg_bogus_v4_source(ip->saddr) ||
		    !fg_held_contains_words(cpu, 0, 0, bpf_htonl(0x0000ffff), ip->saddr))
			return FG_CLASS_MAX;
	} else if (fg_eth_proto(eth) == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		const struct fg_addr *src;

		udp = (void *)(ip6 + 1);
		payload = udp + 1;
		src = (const struct fg_addr *)&ip6->saddr;
		if (payload + 24 > data_end || ip6->version != 6 || ip6->nexthdr != IPPROTO_UDP || fg_bogus_v6_source(src) ||
		    !fg_held_contains_words(cpu, src->words[0], src->words[1], src->words[2], src->words[3]))
			return FG_CLASS_MAX;
	} else {
		return FG_CLASS_MAX;
	}
	len = bpf_ntohs(udp->len);
	avail = data_end - payload;
	first = *(__u8 *)payload;
	if (len < 8 || !fg_is_sip_port(s, udp->dest))
		return FG_CLASS_MAX;
	if (len - 8 < avail)
		avail = len - 8;
	if (avail < 24 || fg_is_lead_byte(first))
		return FG_CLASS_MAX;
	return fg_sip_class(*(__u64 *)payload, *(__u64 *)(payload + 8));
}

/* The source of a frame fg_held_unparsed held, in `addr` (for a sampled
 * drop's event): an IPv4 frame's as the parse writes it, IPv4-mapped. Any
 * other frame is taken for IPv6: the only other kind that check holds. */
static __always_inline void fg_plain_source(struct xdp_md *ctx, struct fg_addr *addr)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return;
	if (fg_eth_proto(eth) == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end)
			return;
		addr->words[0] = 0;
		addr->words[1] = 0;
		addr->words[2] = bpf_htonl(0x0000ffff);
		addr->words[3] = ip->saddr;
	} else {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return;
		__builtin_memcpy(addr, &ip6->saddr, sizeof(*addr));
	}
}

/*
 * Source-keyed slots: a denial, an operator's ban or one of the filter's own
 * does not depend on the packet's class (nor on its ports or its payload), so
 * it is remembered by source alone, under the key class FG_SLOT_SOURCE, and
 * asked before the frame is parsed: such a source's frames skip the class's
 * parse and its (source, class) slot, and are counted in the counters'
 * "unparsed" row. (An integration's or a peer's ban spares a source that is
 * verified, which it may become while banned: those stay by class.)
 *
 * Asked only for untagged IPv4 (no options) and IPv6 frames whose next header
 * is UDP, and filled only by a frame fg_parse_plain_udp4 or 6 read (pkt->plain),
 * each of which is such a frame: a slot is filled only where it is asked. Every
 * other frame of that source (TCP, ICMP, a fragment, a VLAN tag, IPv6
 * extension headers) takes the (source, class) slot, as before. ICMPv6
 * neighbour discovery never reaches these slots, so a banned address still
 * resolves. A plain frame that a (source, class) slot drops does not fill one.
 *
 * A source-keyed slot counts its drops pending, as a (source, class) slot
 * does (those of the source held in the CPU's state are counted there and go
 * to the slot at each flush, when another source is held and before the slot
 * is filled: fg_held_source), and they go to one of the source's entries in
 * fg_sources (slot->source_class; fg_flush_source): every FG_DROP_CACHE_FLUSH
 * drops, when the slot is reused, and in `top` for what is still pending (a
 * slot whose ban has ended keeps its count until it is reused). The entry is
 * that of the filling frame's class if the source has one, else, for 16 drops
 * or more, its first other class that has one (fg_flush_source). A source
 * with none (an untracked one, or evicted) gets nothing added.
 * cpu->source_until_jiffies is the latest jiffy any of them holds on this CPU,
 * under cpu->source_generation: until one is filled, and after any change of
 * policy until the next, frames skip the check without reading the headers
 * twice.
 */
static __always_inline struct fg_drop_slot *fg_source_cache_check(struct xdp_md *ctx, const struct fg_settings *s,
								    const struct fg_cpu_state *cpu, __u64 jiffies,
								    struct fg_source_key *key)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return NULL;
	key->traffic_class = FG_SLOT_SOURCE;
	if (fg_eth_proto(eth) == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || *(__u8 *)ip != 0x45 || ip->protocol != IPPROTO_UDP)
			return NULL;
		key->addr.words[0] = 0;
		key->addr.words[1] = 0;
		key->addr.words[2] = bpf_htonl(0x0000ffff);
		key->addr.words[3] = ip->saddr;
	} else if (fg_eth_proto(eth) == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end || ip6->version != 6 || ip6->nexthdr != IPPROTO_UDP)
			return NULL;
		__builtin_memcpy(&key->addr, &ip6->saddr, sizeof(key->addr));
		/* An IPv4-mapped source is bogus (malformed), not the IPv4 address's. */
		if (!key->addr.words[0] && !key->addr.words[1] && key->addr.words[2] == bpf_htonl(0x0000ffff))
			return NULL;
	} else {
		return NULL;
	}
	return fg_cache_live(s, cpu, key, jiffies);
}

/*
 * The held source: the source whose source-keyed slot last dropped a frame on
 * this CPU, copied into the CPU's state with its slot's index, reason, jiffy
 * and policy generation (fg_hold_source). Its next frames are dropped by a
 * compare of their source against it, without the key, hash, tag, lookups and
 * whole-key compare of fg_source_cache_check, and are counted pending in the
 * CPU's state, not in the slot, whose line they do not touch (a banned
 * source's flood 2-3 ns less of the filter's own time for the copy, and more
 * for the count: Benchmarks/README.md, "The banned source held in the CPU's
 * state" and "Its drops pending in the CPU's state"). The pending drops go to
 * the slot, which holds the source's key while there are any, at
 * FG_DROP_CACHE_FLUSH, when another source is held, and before any fill of
 * the slot (fg_unhold_source_drops, fg_cache_unhold); `top` adds what is
 * left. The copy says no more than its slot: the caller asks its jiffy and
 * generation (the check's gate is the latest slot's and the last fill's), the
 * frame must be one fg_source_cache_check reads (an IPv4-mapped IPv6 source
 * never is), the whole address must match, and any fill of its slot ends it
 * (fg_cache_unhold, and fg_cache_tag again for a run that cut in before it).
 * `top` reads the CPUs' states before the slots: a hold or a fill between the
 * two reads may show a CPU's pending drops twice or not at all in that one
 * reading (the map's counts are not touched).
 *
 * fg_held_source: 1 if the frame is a plain UDP one from the held source;
 * else 0.
 */
static __always_inline int fg_held_source(struct xdp_md *ctx, const struct fg_cpu_state *cpu)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	const struct fg_addr *h = &cpu->held_source;
	__u32 miss;
	__be16 proto;

	/* Else the compiler may take the frame's pointer as the 32-bit load it
	 * came from, which the verifier does not take for a pointer. */
	asm volatile("" : "+r"(eth));
	if ((void *)(eth + 1) > data_end)
		return 0;
	proto = fg_eth_proto(eth);
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || *(__u8 *)ip != 0x45 || ip->protocol != IPPROTO_UDP)
			return 0;
		miss = h->words[0] | h->words[1] | (h->words[2] ^ bpf_htonl(0x0000ffff)) | (h->words[3] ^ ip->saddr);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		const struct fg_addr *src = (const struct fg_addr *)&ip6->saddr;

		if ((void *)(ip6 + 1) > data_end || ip6->version != 6 || ip6->nexthdr != IPPROTO_UDP)
			return 0;
		/* An IPv4-mapped source is bogus (malformed), not the IPv4 address's. */
		if (!src->words[0] && !src->words[1] && src->words[2] == bpf_htonl(0x0000ffff))
			return 0;
		miss = (h->words[0] ^ src->words[0]) | (h->words[1] ^ src->words[1]) | (h->words[2] ^ src->words[2]) |
		       (h->words[3] ^ src->words[3]);
	} else {
		return 0;
	}
	return !miss;
}

/* Copies the live source-keyed slot `slot`, whose key is `key`, into the
 * CPU's held source, after the pending drops of the one held before go to
 * its slot; the slot's own pending drops go with the copy. */
static __always_inline void fg_hold_source(struct fg_cpu_state *cpu, struct fg_drop_slot *slot,
					   const struct fg_source_key *key)
{
	if (cpu->held_source_pending)
		fg_unhold_source_drops();
	cpu->held_source_pending = slot->pending;
	slot->pending = 0;
	cpu->held_source = key->addr;
	cpu->held_source_reason = slot->reason;
	cpu->held_source_until = slot->until_jiffies;
	cpu->held_source_generation = slot->generation;
	cpu->held_source_slot = fg_hash_slot(fg_slot_hash(key));
}

/* Remember on this CPU that pkt's source is dropped for `reason` (a ban or a
 * denial) until jiffy pkt->source_until, as decided under policy generation
 * pkt->source_generation: in its source-keyed slot. A global function, called
 * by the main program after the policy: the deciding function's stack has no
 * room for another key. */
__noinline int fg_cache_source(const struct fg_packet *pkt, __u32 reason)
{
	struct fg_settings *s = bpf_map_lookup_elem(&fg_settings, &fg_entry_zero);
	struct fg_cpu_state *cpu = bpf_map_lookup_elem(&fg_cpu, &fg_entry_zero);
	struct fg_source_key key = {.traffic_class = FG_SLOT_SOURCE};
	struct fg_drop_slot *slot;
	int fresh;

	if (!pkt || !s || !cpu || !pkt->source_until)
		return 0;
	key.addr = pkt->src;
	slot = fg_cache_slot(&key);
	if (!slot)
		return 0;
	/* The class whose entry its drops go to: this frame's (fg_flush_source
	 * looks further if the source has none), unless the slot already holds
	 * drops of this source for another (the held source's pending drops
	 * moved to it first). Set after the fill, which first adds another key's
	 * pending drops to that key's entry. */
	fg_cache_unhold(&key);
	fresh = !fg_same_key(&slot->key, &key) || !slot->pending;
	fg_cache_fill(slot, &key, s, pkt->source_generation, pkt->source_until, reason);
	if (fresh && fg_same_key(&slot->key, &key))
		slot->source_class = pkt->traffic_class;
	if (!s->jiffy_ns)
		return 0;
	/* A CPU's fills come in the order of their decisions, so of non-decreasing
	 * generations: once the generation moves past the last fill's, every slot is
	 * stale, and the main program stops asking until the next fill. */
	if (cpu->source_generation != pkt->source_generation) {
		cpu->source_generation = pkt->source_generation;
		cpu->source_until_jiffies = pkt->source_until;
	} else if (cpu->source_until_jiffies < pkt->source_until) {
		cpu->source_until_jiffies = pkt->source_until;
	}
	return 0;
}

/* A ban's or a denial's drop, until jiffy `until`: for a plain frame, noted
 * for fg_cache_source; else in the (source, class) slot. */
static __always_inline void fg_cache_source_drop(struct fg_ctx *c, __u64 until, __u32 reason)
{
	if (c->pkt->plain) {
		/* The packet is the policy's to write; the context holds it read-only for everything else. */
		struct fg_packet *pkt = (struct fg_packet *)c->pkt;

		pkt->source_until = until;
		pkt->source_generation = c->generation;
	} else {
		fg_cache_drop(c->slot, &c->key, c, until, reason);
	}
}

/* A ban that expires at `expires_ns` (CLOCK_MONOTONIC; 0 never); held by
 * source alone if `by_source`: not for a ban that spares vouched-for sources
 * (an integration's, a peer's), as a source may become verified while banned
 * without a change of the policy generation, and its other classes must then
 * reach the policy again. */
static __always_inline void fg_cache_ban(struct fg_ctx *c, __u64 expires_ns, int by_source)
{
	__u64 now_ns = c->now >> FG_TICK_SHIFT, until = ~0ULL;

	if (!c->s->jiffy_ns)
		return;
	if (expires_ns) {
		if (expires_ns <= now_ns)
			return;
		until = fg_clock_jiffies(c->s) + (expires_ns - now_ns) / c->s->jiffy_ns;
	}
	if (by_source)
		fg_cache_source_drop(c, until, FG_REASON_DROPPED_BAN);
	else
		fg_cache_drop(c->slot, &c->key, c, until, FG_REASON_DROPPED_BAN);
}

#endif /* FG_LIB_DROP_CACHE_H */
