/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Evidence tiers. A UDP source address costs nothing to forge, so every
 * source is one of three, by what proves it real:
 *
 * - unverified: nothing does. Its own buckets, its prefix's, the new-source
 *   budget; UDP evidence (a scanner signature, a bucket it keeps emptying)
 *   bans it.
 * - verified (fg_trusted): the SIP server accepted a REGISTER that it sent
 *   with credentials answering a nonce the server had sent to that address
 *   (fg_challenges), matched to that request by Call-ID and CSeq (fg_txns,
 *   noted on the way in; lib/trust.h reads the answers). Only the holder of
 *   the address saw the nonce, and a server checks a REGISTER's credentials
 *   (an INVITE it may accept without, to voicemail say: its 2xx proves
 *   nothing), so the address is real and its holder has an account. It
 *   skips the prefix bucket and the new-source budget, has limits of its
 *   own, and is shed after every stranger; UDP evidence never bans it.
 * - allow-listed (fg_allow): the operator's word. UDP evidence never bans it.
 *
 * Hop-count pinning (Jin, Wang and Shin, CCS 2003): a verified source's TTL
 * (or hop limit) is pinned when it is verified, a host allow entry's (/32,
 * /128) when its first SIP packet arrives, or fixed by the entry's range; a
 * wider entry without a range is not pinned (its hosts need not share one
 * hop distance, nor one initial TTL). A packet that claims either
 * address at a TTL more than settings.ttl_tolerance away is taken as forged:
 * dropped-spoofed, charged to the unverified bucket of its prefix and never
 * to the address's own buckets, ban counts or trust; its failed credentials
 * count against the address only if they answered the address's own
 * challenge, and otherwise apart, quarantining only credentials from other
 * hop distances (lib/trust.h). A forger
 * at the same hop distance as the real source is not caught, and a route
 * change moves the real source: its pin moves only on evidence from the
 * verified path, FG_REPIN_CONFIRMATIONS credentialed REGISTERs in a row,
 * each at the same new TTL and each accepted by the server (lib/trust.h).
 * While they are on their way, a verified or allow-listed address's REGISTERs
 * and INVITEs at another TTL, and its TCP (which a forger cannot complete),
 * are let through at its prefix's unverified rate and a stranger's place in
 * the budget, so that they can be challenged and answered.
 */
#ifndef FG_LIB_TIERS_H
#define FG_LIB_TIERS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "../floodgate.h"
#include "clock.h"
#include "once.h"
#include "parse.h"
#include "lists.h"

/* Verified sources: until when, and their pinned TTL; written by
 * floodgate_inside, read by XDP and the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FG_MAX_TRUSTED);
	__type(key, struct fg_addr);
	__type(value, struct fg_trust);
} fg_trusted SEC(".maps");

/* Aggregate prefixes (fg_prefixes keys, of both levels) holding a verified
 * source, each with the latest end of its sources' trust (ns): two for each
 * verified source at most. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 2 * FG_MAX_TRUSTED);
	__type(key, struct fg_source_key);
	__type(value, __u64);
} fg_trusted_prefixes SEC(".maps");

/* Credentialed requests (of every method but ACK and CANCEL) on their way to
 * the server; written by XDP, matched and removed by floodgate_inside. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FG_MAX_TXNS);
	__type(key, struct fg_txn_key);
	__type(value, struct fg_txn);
} fg_txns SEC(".maps");

/* Nonces the SIP server sent to external addresses in its challenges;
 * written by floodgate_inside. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FG_MAX_CHALLENGES);
	__type(key, struct fg_challenge_key);
	__type(value, __u32);
} fg_challenges SEC(".maps");

/* The SIP server addresses whose answers count (empty: any address on the
 * inside interface); written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, FG_MAX_SERVERS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fg_cidr_key);
	__type(value, __u32);
} fg_servers SEC(".maps");

/* Is `ttl` within the tolerance of `pinned`? */
static __always_inline int fg_ttl_near(const struct fg_settings *s, __u32 pinned, __u32 ttl)
{
	__u32 d = pinned > ttl ? pinned - ttl : ttl - pinned;

	return d <= s->ttl_tolerance;
}

/* addr's verified entry, if it is verified at `now_ns`. */
static __always_inline struct fg_trust *fg_verified(const struct fg_settings *s, const struct fg_addr *addr,
						    __u64 now_ns)
{
	struct fg_trust *t;

	if (!s->trust_seconds)
		return NULL;
	t = bpf_map_lookup_elem(&fg_trusted, addr);
	return t && t->until_ns > now_ns ? t : NULL;
}

/*
 * Does an allow-listed address's packet come at its entry's TTL? A range in
 * the entry decides; without one, a host entry's first SIP packet pins it
 * (non-SIP packets neither pin nor, before the pin, are checked), and a wider
 * entry is not pinned. Re-adding the entry clears the pin.
 */
static __always_inline int fg_allowed_ttl_ok(const struct fg_settings *s, struct fg_allow_entry *entry, __u32 ttl,
					     int sip)
{
	if (entry->ttl_max)
		return ttl >= entry->ttl_min && ttl <= entry->ttl_max;
	if (!entry->host)
		return 1;
	if (!READ_ONCE(entry->pin.set)) {
		if (sip) {
			entry->pin.ttl = ttl;
			WRITE_ONCE(entry->pin.set, 1);
		}
		return 1;
	}
	return fg_ttl_near(s, entry->pin.ttl, ttl);
}

/* Does the (masked) aggregate prefix `key` hold a source verified at
 * `now_ns`? Its mark holds the latest end of its sources' trust
 * (fg_mark_trusted_prefix); an expired mark is as good as none, so a network
 * whose phones have all lapsed is held whole again before the LRU drops it. */
static __always_inline int fg_prefix_holds_trusted(const struct fg_settings *s, const struct fg_source_key *key,
						   __u64 now_ns)
{
	__u64 *until;

	if (!s->trust_seconds)
		return 0;
	until = bpf_map_lookup_elem(&fg_trusted_prefixes, key);
	return until && READ_ONCE(*until) > now_ns;
}

/* Marks the aggregate prefix `key` as holding a source verified until
 * `until` (ns), keeping a later end another of its sources gave it. Not
 * atomic: two verifications in it at once may leave the earlier end, which is
 * then short by the time between them (each end is its verification's time
 * plus the same trust), until the next verification in it. */
static __always_inline void fg_mark_trusted_prefix(const struct fg_source_key *key, __u64 until)
{
	__u64 *mark = bpf_map_lookup_elem(&fg_trusted_prefixes, key);

	if (!mark) {
		bpf_map_update_elem(&fg_trusted_prefixes, key, &until, BPF_ANY);
		return;
	}
	if (READ_ONCE(*mark) < until)
		WRITE_ONCE(*mark, until);
}

/* Is `addr` (a source) verified or allow-listed? What UDP evidence must never
 * ban. */
static __always_inline int fg_is_vouched_for(const struct fg_settings *s, const struct fg_addr *addr)
{
	if (fg_allow_maybe(s, addr) && fg_in_list(&fg_allow, addr))
		return 1;
	return fg_verified(s, addr, fg_clock_ns()) != NULL;
}

#endif /* FG_LIB_TIERS_H */
