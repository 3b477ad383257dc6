/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the SIP server's answers say about external sources, seen without its
 * logs: floodgate_inside runs on the interface facing the server and reads
 * the status line (and CSeq) of each SIP response going out to a source.
 *
 * Brute force: the external program notes every REGISTER or INVITE that
 * carries credentials (an Authorization or Proxy-Authorization header,
 * lib/scanner.h) in fg_auth. A 401 or 407 answering such a request is a
 * failed authentication (the first REGISTER of every real phone gets a 401
 * without having sent credentials: that is not one), and so is any 403.
 * settings.bruteforce_failures failures within bruteforce_window_s ban the
 * source for bruteforce_ban_s (fail2ban's SIP jails, at line rate).
 *
 * Learned trust: a 2xx answering a REGISTER or INVITE makes its destination
 * known-good for trust_seconds (fg_trusted), and marks its aggregate prefix
 * (fg_trusted_prefixes) so that a drained prefix holding it is never dropped
 * in the drop cache before the policy sees the trusted source. Known-good
 * sources skip the prefix bucket and the new-source budget and are shed last
 * but for the allow list; their own per-source limits still apply.
 */
#ifndef FG_LIB_TRUST_H
#define FG_LIB_TRUST_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "../floodgate.h"
#include "autoban.h"
#include "scanner.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FG_MAX_AUTH_SOURCES);
	__type(key, struct fg_addr);
	__type(value, struct fg_auth_state);
} fg_auth SEC(".maps");

/* Known-good sources: CLOCK_MONOTONIC ns until which they are. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FG_MAX_TRUSTED);
	__type(key, struct fg_addr);
	__type(value, __u64);
} fg_trusted SEC(".maps");

/* Aggregate prefixes (fg_prefixes keys) holding a known-good source. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FG_MAX_TRUSTED);
	__type(key, struct fg_source_key);
	__type(value, __u64);
} fg_trusted_prefixes SEC(".maps");

static __always_inline int fg_counts_credentials(const struct fg_settings *s, __u32 traffic_class)
{
	return s->bruteforce_failures && (traffic_class == FG_CLASS_REGISTER || traffic_class == FG_CLASS_INVITE);
}

/* addr's entry in fg_auth, made if it has none; NULL if the map refuses. */
static __always_inline struct fg_auth_state *fg_auth_entry(const struct fg_addr *addr)
{
	struct fg_auth_state *st = bpf_map_lookup_elem(&fg_auth, addr);
	struct fg_autoban_scratch *w;
	__u32 zero = 0;

	if (st)
		return st;
	w = bpf_map_lookup_elem(&fg_autoban_scratch, &zero);
	if (!w)
		return NULL;
	w->auth.creds = 0;
	w->auth.failures = 0;
	w->auth.window_start_s = 0;
	w->auth.pad = 0;
	bpf_map_update_elem(&fg_auth, addr, &w->auth, BPF_NOEXIST);
	return bpf_map_lookup_elem(&fg_auth, addr);
}

/* A REGISTER or INVITE with credentials from `addr` is on its way in. */
static __always_inline void fg_note_credentials(const struct fg_addr *addr)
{
	struct fg_auth_state *st = fg_auth_entry(addr);

	if (st && st->creds < 64)
		__sync_fetch_and_add(&st->creds, 1);
}

/* Is the packet's source known-good? (The lookup only when trust is on.) */
static __always_inline int fg_is_trusted(struct fg_ctx *c)
{
	__u64 *until;

	if (!c->s->trust_seconds)
		return 0;
	until = bpf_map_lookup_elem(&fg_trusted, &c->pkt->src);
	return until && *until > (fg_now(c) >> FG_TICK_SHIFT);
}

/* Does the (masked) aggregate prefix `key` hold a known-good source? */
static __always_inline int fg_prefix_holds_trusted(const struct fg_settings *s, const struct fg_source_key *key)
{
	return s->trust_seconds && bpf_map_lookup_elem(&fg_trusted_prefixes, key) != NULL;
}

/* The CSeq method of the response in fg_scratch: REGISTER or INVITE? */
struct fg_cseq_walk {
	__u32 len;
	__u32 found; /* 1: REGISTER or INVITE */
};

static long fg_cseq_step(__u32 i, struct fg_cseq_walk *w)
{
	__u32 zero = 0, j;
	struct fg_scratch *s = bpf_map_lookup_elem(&fg_scratch, &zero);
	__u8 *b;
	int k;

	if (!s || i + 24 > w->len)
		return 1;
	b = s->buf;
	if (b[i & FG_SCAN_MASK] != '\n' || fg_lower(b[(i + 1) & FG_SCAN_MASK]) != 'c' ||
	    fg_lower(b[(i + 2) & FG_SCAN_MASK]) != 's' || fg_lower(b[(i + 3) & FG_SCAN_MASK]) != 'e' ||
	    fg_lower(b[(i + 4) & FG_SCAN_MASK]) != 'q')
		return 0;
	j = i + 5;
#pragma unroll
	for (k = 0; k < 3; k++)
		if (b[j & FG_SCAN_MASK] == ' ' || b[j & FG_SCAN_MASK] == '\t')
			j++;
	if (b[j & FG_SCAN_MASK] != ':')
		return 1;
	j++;
#pragma unroll
	for (k = 0; k < 3; k++)
		if (b[j & FG_SCAN_MASK] == ' ' || b[j & FG_SCAN_MASK] == '\t')
			j++;
#pragma unroll
	for (k = 0; k < 10; k++)
		if (b[j & FG_SCAN_MASK] >= '0' && b[j & FG_SCAN_MASK] <= '9')
			j++;
#pragma unroll
	for (k = 0; k < 3; k++)
		if (b[j & FG_SCAN_MASK] == ' ' || b[j & FG_SCAN_MASK] == '\t')
			j++;
	if (j + 8 > FG_SIP_SCAN_BYTES)
		return 1;
	if (b[j & FG_SCAN_MASK] == 'R' && b[(j + 1) & FG_SCAN_MASK] == 'E' && b[(j + 2) & FG_SCAN_MASK] == 'G' &&
	    b[(j + 3) & FG_SCAN_MASK] == 'I' && b[(j + 7) & FG_SCAN_MASK] == 'R')
		w->found = 1;
	if (b[j & FG_SCAN_MASK] == 'I' && b[(j + 1) & FG_SCAN_MASK] == 'N' && b[(j + 2) & FG_SCAN_MASK] == 'V' &&
	    b[(j + 5) & FG_SCAN_MASK] == 'E')
		w->found = 1;
	return 1;
}

/* A failed authentication of `addr` in its window; bans it at the threshold. */
static __always_inline void fg_auth_failure(struct fg_settings *s, struct fg_auth_state *st, const struct fg_addr *addr)
{
	__u32 now_s = bpf_ktime_get_ns() / 1000000000ULL, failures;

	if (now_s - st->window_start_s >= s->bruteforce_window_s) {
		st->window_start_s = now_s;
		st->failures = 0;
	}
	failures = ++st->failures;
	if (failures < s->bruteforce_failures)
		return;
	st->failures = 0;
	fg_issue_ban(s, addr, (__u64)s->bruteforce_ban_s * 1000000000ULL, FG_BAN_BRUTE_FORCE, FG_EVENT_BRUTE_FORCE,
		     FG_CLASS_RESPONSE, 1, failures);
}

/* `addr` had a REGISTER or INVITE accepted: known-good, and so its prefix. */
static __always_inline void fg_trust(struct fg_settings *s, const struct fg_addr *addr)
{
	struct fg_source_key prefix = {.addr = *addr, .traffic_class = FG_CLASS_MAX};
	int v4 = addr->words[0] == 0 && addr->words[1] == 0 && addr->words[2] == bpf_htonl(0xffff);
	__u64 now = bpf_ktime_get_ns(), until = now + (__u64)s->trust_seconds * 1000000000ULL;
	__u64 *old = bpf_map_lookup_elem(&fg_trusted, addr);
	int renewal = old && *old > now;

	fg_mask(&prefix.addr, v4 ? 96 + s->prefix_v4 : s->prefix_v6);
	bpf_map_update_elem(&fg_trusted, addr, &until, BPF_ANY);
	bpf_map_update_elem(&fg_trusted_prefixes, &prefix, &until, BPF_ANY);
	/* Newly trusted (not a renewal): tell the agent. */
	if (!renewal)
		fg_event(FG_EVENT_TRUSTED, FG_CLASS_RESPONSE, addr, until, 0, 0);
}

#endif /* FG_LIB_TRUST_H */
