/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Destination rules: what an INVITE may dial, by the longest prefix of its
 * E.164 number (lib/numbers.h) in the rule set of its tier (unverified,
 * verified, allow-listed) in the bank in force. A rule allows, blocks, or
 * limits calls per minute per source and over all sources; no rule: the call
 * goes on. The agent fills the bank not in force and switches
 * settings.destination_bank (time-of-day rule sets): this program never reads
 * wall time.
 *
 * A limited rule charges a call once: a retransmission of an INVITE (same
 * source, same Call-ID) within FG_CALL_MEMORY_NS gets the verdict its first
 * copy got (fg_calls), so a call over lossy UDP is not counted four times.
 * A forged copy can at worst repeat the verdict the real one got.
 *
 * Packets that claim a verified or allow-listed address from another hop
 * distance (fg_decide_spoofed) are judged as a stranger's and charged to a
 * bucket of their own (FG_DEST_CLAIMED), never to the address's.
 */
#ifndef FG_LIB_DESTINATIONS_H
#define FG_LIB_DESTINATIONS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "../floodgate.h"
#include "bucket.h"
#include "clock.h"
#include "numbers.h"
#include "scanner.h"
#include "state.h"

#define FG_DEST_CLAIMED 0x80000000U

/* Written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, FG_MAX_DESTINATIONS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fg_destination_key);
	__type(value, struct fg_destination_rule);
} fg_destinations SEC(".maps");

/* A limited rule's bucket per source, and over all sources (by rule id):
 * written by XDP. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FG_MAX_DESTINATION_SOURCES);
	__type(key, struct fg_destination_source_key);
	__type(value, __u64);
} fg_destination_sources SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FG_MAX_DESTINATION_IDS);
	__type(key, __u32);
	__type(value, __u64);
} fg_destination_totals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FG_MAX_CALLS);
	__type(key, struct fg_call_key);
	__type(value, struct fg_call);
} fg_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FG_DEST_OUT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} fg_destination_outcomes SEC(".maps");

/* Counts an outcome; returns `reason`. */
static __always_inline int fg_destination_outcome(__u32 outcome, int reason)
{
	__u64 *n = bpf_map_lookup_elem(&fg_destination_outcomes, &outcome);

	if (n)
		*n += 1;
	return reason;
}

/* Sixteen bytes of the Request-URI a call of bpf_loop's callback. */
static long fg_number_step(__u32 i, void *unused)
{
	__u32 zero = 0, j, at;
	struct fg_walk *w = bpf_map_lookup_elem(&fg_scratch, &zero);
	struct fg_number_walk *n;

	if (!w)
		return 1;
	n = &w->num;
#pragma unroll
	for (j = 0; j < 16; j++) {
		at = n->at;
		if (at >= n->end)
			return 1; /* out of bytes: result stays unreadable */
		n->at = at + 1;
		if (fg_number_byte(n, w->scratch.buf[at & FG_SCAN_MASK]))
			return 1;
	}
	return 0;
}

/* The bucket a limited rule keeps for one source: made full, less this call. */
static __always_inline int fg_destination_source_admit(struct fg_walk *w, const struct fg_packet *pkt,
						       const struct fg_destination_rule *rule,
						       struct fg_bucket_call *call)
{
	struct fg_destination_source_key *key = &w->source_key;
	__u64 *tat, init;

	key->addr = pkt->src;
	/* A packet that claims the address from another hop distance has a
	 * bucket of its own: forgeries can't spend the real source's calls. */
	key->id = rule->id | (pkt->note == FG_NOTE_SPOOFED ? FG_DEST_CLAIMED : 0);
	tat = bpf_map_lookup_elem(&fg_destination_sources, key);
	if (!tat) {
		init = call->now + call->interval;
		if (bpf_map_update_elem(&fg_destination_sources, key, &init, BPF_NOEXIST) == 0)
			return 1;
		tat = bpf_map_lookup_elem(&fg_destination_sources, key);
		if (!tat)
			return 1;
	}
	return fg_bucket_admit(tat, call);
}

/* A limited rule's verdict on a new call. */
static __always_inline __u32 fg_destination_limit(struct fg_walk *w, const struct fg_packet *pkt,
						  const struct fg_destination_rule *rule, __u64 now)
{
	struct fg_bucket_call call = {.now = now};
	__u32 id = rule->id;
	__u64 *total;

	call.interval = READ_ONCE(rule->interval);
	call.tau = call.tau_max = READ_ONCE(rule->tau);
	if (call.interval && !fg_destination_source_admit(w, pkt, rule, &call))
		return FG_REASON_DROPPED_DESTINATION_LIMIT;
	call.interval = READ_ONCE(rule->total_interval);
	call.tau = call.tau_max = READ_ONCE(rule->total_tau);
	total = bpf_map_lookup_elem(&fg_destination_totals, &id);
	if (call.interval && total && !fg_bucket_admit(total, &call))
		return FG_REASON_DROPPED_DESTINATION_LIMIT;
	return FG_REASON_PASSED;
}

/*
 * The destination rules' verdict on a SIP request whose message fg_inspect
 * has just copied and walked: FG_REASON_PASSED, or why it is dropped. Only
 * INVITEs are judged, and only when there are rules. A global function, so
 * that its stack is its own.
 */
__noinline int fg_destination(struct fg_packet *pkt)
{
	struct fg_destination_rule *rule;
	struct fg_settings *s;
	struct fg_number_walk *n;
	struct fg_call *known, memo = {};
	struct fg_walk *w;
	__u32 zero = 0, reason, end;
	__u64 now;

	s = bpf_map_lookup_elem(&fg_settings, &zero);
	if (!s || !pkt || !s->destination_entries || pkt->traffic_class != FG_CLASS_INVITE)
		return FG_REASON_PASSED;
	w = bpf_map_lookup_elem(&fg_scratch, &zero);
	if (!w)
		return FG_REASON_PASSED;
	n = &w->num;
	__builtin_memset(n, 0, sizeof(*n));
	end = w->scan.len < FG_RURI_BYTES ? w->scan.len : FG_RURI_BYTES;
	n->end = end;
	n->at = pkt->sip_skip;
	n->state = FG_NUM_LEAD;
	n->result = FG_NUMBER_UNREADABLE;
	bpf_loop(FG_RURI_BYTES / 16 + 1, fg_number_step, NULL, 0);
	if (n->state != FG_NUM_DONE || n->result == FG_NUMBER_UNREADABLE)
		return fg_destination_outcome(FG_DEST_OUT_UNREADABLE, FG_REASON_DROPPED_DESTINATION);
	if (n->result != FG_NUMBER_FOUND ||
	    !fg_number_key(s, n, FG_DEST_SET(s->destination_bank & 1, pkt->tier & 3), &w->dest_key))
		return fg_destination_outcome(FG_DEST_OUT_NOT_A_NUMBER, FG_REASON_PASSED);
	rule = bpf_map_lookup_elem(&fg_destinations, &w->dest_key);
	if (!rule)
		return fg_destination_outcome(FG_DEST_OUT_NO_RULE, FG_REASON_PASSED);
	switch (READ_ONCE(rule->action)) {
	case FG_DEST_BLOCK: return fg_destination_outcome(FG_DEST_OUT_BLOCKED, FG_REASON_DROPPED_DESTINATION);
	case FG_DEST_LIMIT: break;
	default: return fg_destination_outcome(FG_DEST_OUT_ALLOWED, FG_REASON_PASSED);
	}
	now = fg_clock_ns();
	/* A retransmission: the first copy's verdict, not another charge. */
	if (w->scan.found & FG_SCAN_CALLID) {
		w->call_key.addr = pkt->src;
		w->call_key.callid = w->scan.callid;
		known = bpf_map_lookup_elem(&fg_calls, &w->call_key);
		if (known && known->until_ns > now) {
			reason = known->reason;
			goto out;
		}
	}
	reason = fg_destination_limit(w, pkt, rule, now << FG_TICK_SHIFT);
	if (w->scan.found & FG_SCAN_CALLID) {
		memo.until_ns = now + FG_CALL_MEMORY_NS;
		memo.reason = reason;
		bpf_map_update_elem(&fg_calls, &w->call_key, &memo, BPF_ANY);
	}
out:
	return fg_destination_outcome(reason == FG_REASON_PASSED ? FG_DEST_OUT_LIMIT_PASSED : FG_DEST_OUT_LIMITED, reason);
}

#endif /* FG_LIB_DESTINATIONS_H */
