/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The deny and allow lists (CIDRs in LPM tries) and the bans (source -> expiry). */
#ifndef FG_LIB_LISTS_H
#define FG_LIB_LISTS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "../floodgate.h"
#include "parse.h"

/* CIDRs whose packets are all dropped; written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, FG_MAX_LIST_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fg_cidr_key);
	__type(value, __u32);
} fg_deny SEC(".maps");

/* Trusted peers (trunks, carrier SBCs): no per-source or prefix limits and the
 * highest shedding priority; written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, FG_MAX_LIST_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fg_cidr_key);
	__type(value, struct fg_allow_entry);
} fg_allow SEC(".maps");

/*
 * The aggregates (fg_prefixes keys of both levels: masked address, class
 * FG_CLASS_MAX for a prefix, FG_CLASS_MAX + 1 for a wider network) that hold
 * an allow-list entry narrower than themselves, such as a trunk's /32 in a
 * /24; written by the agent with the allow list. With fg_allow (for entries
 * as wide as the aggregate or wider) it tells whether a drained aggregate may
 * be dropped before the allow check (lib/drop_cache.h). Two keys an entry at
 * most, four while a change of lengths adds the new ones before the old go.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4 * FG_MAX_LIST_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fg_source_key);
	__type(value, __u32);
} fg_allow_prefixes SEC(".maps");

/* Explicit bans, the operator's; written by the agent and the CLI only, so a
 * flood that makes the filter ban can never leave them without room. Expired
 * entries pass and are removed by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FG_MAX_BANS);
	__type(key, struct fg_addr);
	__type(value, struct fg_ban);
} fg_bans SEC(".maps");

/* Bans learned from other Floodgate routers over BGP (FlowSpec routes with
 * Floodgate's community): networks (a host, or an aggregate such as a /24),
 * written by the agent as the routes come and go. Like an integration's ban
 * they never drop an allow-listed or verified source. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, FG_MAX_PEER_BANS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fg_cidr_key);
	__type(value, struct fg_ban);
} fg_peer_bans SEC(".maps");

/* The filter's own bans (scanners, auto-bans, brute force); written by XDP.
 * An LRU, sized by the agent at load: when a flood of forged scanner sources
 * fills it, a new ban evicts the least recently used one rather than failing,
 * so a real scanner is always banned. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FG_DEFAULT_MAX_AUTO_BANS);
	__type(key, struct fg_addr);
	__type(value, struct fg_ban);
} fg_auto_bans SEC(".maps");

static __always_inline int fg_in_list(void *list, const struct fg_addr *addr)
{
	struct fg_cidr_key key = {.prefixlen = 128, .addr = *addr};

	return bpf_map_lookup_elem(list, &key) != NULL;
}

/* Could an allow entry hold addr? A clear bit of the first bytes the
 * entries start with (fg_settings) says no without the trie's lookup: a
 * random-source flood's packets are mostly from elsewhere. */
static __always_inline int fg_allow_maybe(const struct fg_settings *s, const struct fg_addr *addr)
{
	const __u64 *bits = s->allow_v6_first;
	__u32 first = bpf_ntohl(addr->words[0]) >> 24;

	if (!s->allow_entries)
		return 0;
	if (fg_is_v4(addr)) {
		bits = s->allow_v4_first;
		first = bpf_ntohl(addr->words[3]) >> 24;
	}
	return (bits[(first >> 6) & 3] >> (first & 63)) & 1;
}

/* The allow entry that covers addr, if any. */
static __always_inline struct fg_allow_entry *fg_allow_entry(const struct fg_settings *s, const struct fg_addr *addr)
{
	struct fg_cidr_key key = {.prefixlen = 128, .addr = *addr};

	if (!fg_allow_maybe(s, addr))
		return NULL;
	return bpf_map_lookup_elem(&fg_allow, &key);
}

/* Does the aggregate prefix `key` (masked, of prefix length `keylen` over
 * the 128-bit address) hold any allow-listed address? */
static __always_inline int fg_prefix_holds_allowed(const struct fg_settings *s, const struct fg_source_key *key,
						   __u32 keylen)
{
	struct fg_cidr_key wide = {.prefixlen = keylen, .addr = key->addr};

	if (!s->allow_entries)
		return 0;
	return bpf_map_lookup_elem(&fg_allow, &wide) != NULL || bpf_map_lookup_elem(&fg_allow_prefixes, key) != NULL;
}

#endif /* FG_LIB_LISTS_H */
