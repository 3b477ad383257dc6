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
#include "autoban.h"
#include "bucket.h"
#include "calls.h"
#include "callerid.h"
#include "clock.h"
#include "numbers.h"
#include "scanner.h"
#include "state.h"

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

/* Sources blocked for new calls (fraud checks); the calls let in are in
 * fg_dialogs (lib/calls.h). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FG_MAX_FRAUD_BLOCKS);
	__type(key, struct fg_addr);
	__type(value, struct fg_fraud_block);
} fg_fraud_blocks SEC(".maps");


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

/* A limited rule's verdict on a new call, at the packet's time `now` (ticks). */
static __always_inline __u32 fg_destination_limit(const struct fg_settings *s, struct fg_walk *w,
						  const struct fg_packet *pkt, const struct fg_destination_rule *rule,
						  __u64 now)
{
	struct fg_bucket_call *call = &w->call;
	__u32 id = rule->id;
	__u64 *total;

	call->interval = READ_ONCE(rule->interval);
	call->tau = call->tau_max = READ_ONCE(rule->tau);
	call->now = fg_bucket_ticks(s, now, call->tau_max);
	if (call->interval && !fg_destination_source_admit(w, pkt, rule, call))
		return FG_REASON_DROPPED_DESTINATION_LIMIT;
	call->interval = READ_ONCE(rule->total_interval);
	call->tau = call->tau_max = READ_ONCE(rule->total_tau);
	call->now = fg_bucket_ticks(s, now, call->tau_max);
	total = bpf_map_lookup_elem(&fg_destination_totals, &id);
	if (call->interval && total && !fg_bucket_admit(total, call))
		return FG_REASON_DROPPED_DESTINATION_LIMIT;
	return FG_REASON_PASSED;
}

/*
 * A new call to an international or high-risk number, against the source's
 * threshold of that kind in its tier: over it, the call is refused and (but
 * for a packet that claims its address from another hop distance) the source
 * is blocked for new calls, and the agent told. Returns FG_REASON_PASSED or
 * FG_REASON_DROPPED_FRAUD.
 */
__noinline int fg_fraud_velocity(const struct fg_packet *pkt, __u32 kind, __u64 now)
{
	__u32 zero = 0, index;
	struct fg_settings *s = bpf_map_lookup_elem(&fg_settings, &zero);
	struct fg_walk *w = bpf_map_lookup_elem(&fg_scratch, &zero);
	struct fg_bucket_call *call;
	struct fg_limit *lim;

	if (!s || !w || !pkt)
		return FG_REASON_PASSED;
	call = &w->call;
	index = (kind == FG_FRAUD_INTERNATIONAL ? FG_LIMIT_FRAUD_INTERNATIONAL : FG_LIMIT_FRAUD_HIGH_RISK) +
		(pkt->tier < 3 ? pkt->tier : 0);
	lim = bpf_map_lookup_elem(&fg_limits, &index);
	if (!lim)
		return FG_REASON_PASSED;
	call->interval = READ_ONCE(lim->interval);
	call->tau = call->tau_max = READ_ONCE(lim->tau);
	call->now = fg_bucket_ticks(s, now << FG_TICK_SHIFT, call->tau_max);
	if (call->interval == FG_INTERVAL_UNLIMITED)
		return FG_REASON_PASSED;
	w->fraud_rule.id = FG_DEST_FRAUD_ID | (kind & 3);
	if (call->interval != FG_INTERVAL_BLOCK && fg_destination_source_admit(w, pkt, &w->fraud_rule, call))
		return FG_REASON_PASSED;
	/* The forger of an address is refused; the address is not blocked. */
	if (pkt->note == FG_NOTE_SPOOFED)
		return FG_REASON_DROPPED_FRAUD;
	w->block.until_ns = now + (__u64)s->fraud_block_seconds * 1000000000ULL;
	w->block.kind = kind;
	w->block.per_minute = READ_ONCE(lim->rate);
	bpf_map_update_elem(&fg_fraud_blocks, &pkt->src, &w->block, BPF_ANY);
	fg_event(FG_EVENT_FRAUD, pkt->traffic_class, &pkt->src, w->block.until_ns, kind, w->block.per_minute);
	return FG_REASON_DROPPED_FRAUD;
}

/*
 * The destination rules' and fraud thresholds' verdict on a SIP request whose
 * message fg_inspect has just copied and walked: FG_REASON_PASSED, or why it
 * is dropped. Only INVITEs are judged, and only when there are rules or fraud
 * checks. A global function, so that its stack is its own.
 *
 * With fraud checks on, in order: a source blocked for new calls has its
 * INVITEs refused but those within one of its calls this program let in (a
 * To tag, and a Call-ID noted in fg_dialogs); the rules; then a new call
 * (not within such a call, not a retransmission) to an international
 * number, or to a prefix a rule marks high-risk, is counted against the
 * source's threshold of that kind. The INVITE that crosses it is the first
 * refused, and the block is in place before the next one is judged.
 */
/* Calls in progress (lib/calls.h) for a new call the rules let on:
 * FG_REASON_PASSED, and the call noted to be counted once the budget passes
 * it too (fg_calls_after), or why it is refused: its source has as many
 * calls in progress as it may, or its Call-ID is a call's in progress. A
 * forgery from another hop distance counts apart from the address. */
static __always_inline int fg_calls_judge(const struct fg_settings *s, struct fg_walk *w, const struct fg_packet *pkt,
					  __u64 now)
{
	__u32 found = w->scan.found, admit;

	if ((found & (FG_SCAN_CALLID | FG_SCAN_CSEQ | FG_SCAN_AMBIGUOUS)) != (FG_SCAN_CALLID | FG_SCAN_CSEQ))
		return FG_REASON_PASSED;
	w->active_key.addr = pkt->src;
	w->active_key.callid = w->scan.callid;
	w->active_key.claimed = pkt->note == FG_NOTE_SPOOFED;
	w->active_key.pad = 0;
	w->begin_cseq = w->scan.cseq;
	w->begin_tag = fg_from_tag();
	admit = fg_calls_admit(s, &w->active_key, pkt->tier, w->scan.cseq, w->begin_tag);
	if (admit == FG_CALLS_ROOM) {
		w->begin_call = 1;
		return FG_REASON_PASSED;
	}
	/* Over the limit, where the config says so, the source is blocked for
	 * new calls like one over a fraud threshold (but not by a forgery from
	 * another hop distance). */
	if (admit == FG_CALLS_FULL && (s->calls_tracked & FG_CALLS_BLOCK_WHEN_FULL) && s->fraud_block_seconds &&
	    pkt->note != FG_NOTE_SPOOFED) {
		w->block.until_ns = now + (__u64)s->fraud_block_seconds * 1000000000ULL;
		w->block.kind = FG_FRAUD_CONCURRENT;
		w->block.per_minute = s->concurrent_calls[pkt->tier < 3 ? pkt->tier : 0];
		bpf_map_update_elem(&fg_fraud_blocks, &pkt->src, &w->block, BPF_ANY);
		fg_event(FG_EVENT_FRAUD, pkt->traffic_class, &pkt->src, w->block.until_ns, FG_FRAUD_CONCURRENT,
			 w->block.per_minute);
	}
	return FG_REASON_DROPPED_CONCURRENT;
}

/* Are INVITEs judged here at all? */
static __always_inline int fg_judges_calls(const struct fg_settings *s)
{
	return s->destination_entries || s->fraud_block_seconds || s->calls_tracked || s->caller_id_entries;
}

__noinline int fg_destination(struct fg_packet *pkt)
{
	struct fg_destination_rule *rule = NULL;
	struct fg_settings *s;
	struct fg_number_walk *n;
	struct fg_call *known, *dialog;
	struct fg_fraud_block *blocked;
	struct fg_walk *w;
	__u32 zero = 0, reason = FG_REASON_PASSED, end, outcome, action = 0, found, at;
	int international = 0, fraud, dialogs, known_dialog = 0, number, tagged;
	__u64 now, method;

	s = bpf_map_lookup_elem(&fg_settings, &zero);
	if (!s || !pkt || !fg_judges_calls(s))
		return FG_REASON_PASSED;
	w = bpf_map_lookup_elem(&fg_scratch, &zero);
	if (!w)
		return FG_REASON_PASSED;
	w->begin_call = 0;
	found = w->scan.len ? w->scan.found : 0;
	/* An INVITE, or a request a lenient server takes for one: the method in
	 * any case ("invite sip:..." is an INVITE to pjsip). */
	if (pkt->traffic_class != FG_CLASS_INVITE) {
		at = pkt->sip_skip;
		if (!pkt->sip_request || !w->scan.len || at + 7 > w->scan.len)
			return FG_REASON_PASSED;
		method = fg_lower8(fg_word_at(&w->scratch, at)) & fg_low_bytes(7);
		if (method != FG_W8("invite \0") && method != FG_W8("invite\t\0"))
			return FG_REASON_PASSED;
	}
	fraud = s->fraud_block_seconds != 0;
	/* One To header with a non-empty tag: a request within a dialog, as a
	 * server takes it. */
	tagged = (found & (FG_SCAN_TO_TAG | FG_SCAN_TO_TWICE)) == FG_SCAN_TO_TAG;
	/* Calls let in are noted (fg_dialogs) for the fraud checks and for the
	 * count of calls in progress: neither counts a request within one. */
	dialogs = fraud || s->calls_tracked;
	now = fg_packet_ns(s, pkt);
	if (found & FG_SCAN_CALLID) {
		w->call_key.addr = pkt->src;
		w->call_key.callid = w->scan.callid;
	}

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
	number = n->result == FG_NUMBER_FOUND &&
		 fg_number_key(s, n, FG_DEST_SET(s->destination_bank & 1, pkt->tier & 3), &w->dest_key);
	if (number && fraud)
		international = fg_international(s, &w->dest_key);
	if (number && s->destination_entries)
		rule = bpf_map_lookup_elem(&fg_destinations, &w->dest_key);
	if (rule)
		action = READ_ONCE(rule->action);
	if (!number)
		outcome = FG_DEST_OUT_NOT_A_NUMBER;
	else if (!rule)
		outcome = FG_DEST_OUT_NO_RULE;
	else if ((action & FG_DEST_ACTION_MASK) == FG_DEST_BLOCK)
		return fg_destination_outcome(FG_DEST_OUT_BLOCKED, FG_REASON_DROPPED_DESTINATION);
	else
		outcome = (action & FG_DEST_ACTION_MASK) == FG_DEST_LIMIT ? FG_DEST_OUT_LIMIT_PASSED : FG_DEST_OUT_ALLOWED;
	w->memo.digits = 0;
	if (number)
		__builtin_memcpy(&w->memo.digits, w->dest_key.digits, sizeof(w->memo.digits));

	/* Within one of the calls this program let in (one To header with a
	 * non-empty tag, its Call-ID noted when it was let in, dialling the same
	 * number or none): not a new call. A tag alone proves nothing: a
	 * stateless proxy may relay a tagged request that is no dialog's. */
	if (dialogs && (found & (FG_SCAN_TO_TAG | FG_SCAN_TO_TWICE | FG_SCAN_CALLID)) == (FG_SCAN_TO_TAG | FG_SCAN_CALLID)) {
		dialog = bpf_map_lookup_elem(&fg_dialogs, &w->call_key);
		known_dialog = dialog && dialog->until_ns > now &&
			       (!number || (dialog->digits == w->memo.digits && dialog->prefixlen == w->dest_key.prefixlen));
	}
	if (fraud && !known_dialog) {
		blocked = bpf_map_lookup_elem(&fg_fraud_blocks, &pkt->src);
		if (blocked && blocked->until_ns > now)
			return fg_destination_outcome(FG_DEST_OUT_FRAUD, FG_REASON_DROPPED_FRAUD);
	}
	if (known_dialog)
		return fg_destination_outcome(outcome, FG_REASON_PASSED);
	/* The caller's number, where its source has ranges (lib/callerid.h):
	 * every copy of a call, since a copy may present another; not for a
	 * request with a To tag, whose From may be the far end's (a re-INVITE
	 * on a call the server placed), and which a server refuses (481) if it
	 * is no dialog's. */
	if (s->caller_id_entries && !tagged && fg_caller_id(pkt) == FG_CALLER_MISMATCH) {
		__u64 digits = 0;

		__builtin_memcpy(&digits, w->caller_key.digits, sizeof(digits));
		fg_event(FG_EVENT_CALLER_ID, pkt->traffic_class, &pkt->src, digits, s->caller_id_mode,
			 w->caller_key.prefixlen > 32 ? (w->caller_key.prefixlen - 32) / 4 : 0);
		if (s->caller_id_mode == FG_CALLER_ID_ENFORCE)
			return fg_destination_outcome(FG_DEST_OUT_CALLER_ID_REFUSED, FG_REASON_DROPPED_CALLER_ID);
		fg_destination_outcome(FG_DEST_OUT_CALLER_ID_FLAGGED, 0);
	}
	/* A retransmission of a call judged lately (same Call-ID, CSeq and
	 * number, within 32 s, at most FG_CALL_COPIES of them): its first copy's
	 * verdict, not another charge (but counted as a call in progress if the
	 * first copy never was). Anything else on that Call-ID is a new call,
	 * judged and counted as one. */
	if (number && (found & (FG_SCAN_CALLID | FG_SCAN_CSEQ)) == (FG_SCAN_CALLID | FG_SCAN_CSEQ)) {
		known = bpf_map_lookup_elem(&fg_calls, &w->call_key);
		if (known && known->until_ns > now && known->digits == w->memo.digits &&
		    known->prefixlen == w->dest_key.prefixlen && known->cseq == w->scan.cseq &&
		    known->copies < FG_CALL_COPIES) {
			__sync_fetch_and_add(&known->copies, 1);
			reason = known->reason; /* counted once, with its first copy */
			if (reason == FG_REASON_PASSED && s->calls_tracked && !tagged) {
				reason = fg_calls_judge(s, w, pkt, now);
				if (reason != FG_REASON_PASSED)
					return fg_destination_outcome(FG_DEST_OUT_CONCURRENT, reason);
			}
			return reason;
		}
	}
	/* Nothing more to count: not a number, or a rule that lets it on, with
	 * no threshold to charge and no calls counted. */
	if (!s->calls_tracked && (!number || (!fraud && outcome != FG_DEST_OUT_LIMIT_PASSED)))
		return fg_destination_outcome(outcome, FG_REASON_PASSED);

	if (reason == FG_REASON_PASSED && outcome == FG_DEST_OUT_LIMIT_PASSED)
		reason = fg_destination_limit(s, w, pkt, rule, now << FG_TICK_SHIFT);
	if (reason == FG_REASON_PASSED && fraud && international)
		reason = fg_fraud_velocity(pkt, FG_FRAUD_INTERNATIONAL, now);
	if (reason == FG_REASON_PASSED && fraud && (action & FG_DEST_HIGH_RISK))
		reason = fg_fraud_velocity(pkt, FG_FRAUD_HIGH_RISK, now);
	/* Calls in progress (a request with a To tag is no new call). */
	if (reason == FG_REASON_PASSED && s->calls_tracked && !tagged)
		reason = fg_calls_judge(s, w, pkt, now);
	if ((found & (FG_SCAN_CALLID | FG_SCAN_CSEQ)) == (FG_SCAN_CALLID | FG_SCAN_CSEQ)) {
		w->memo.until_ns = now + FG_CALL_MEMORY_NS;
		w->memo.reason = reason;
		w->memo.prefixlen = number ? w->dest_key.prefixlen : 0;
		w->memo.cseq = w->scan.cseq;
		w->memo.copies = 0;
		if (number)
			bpf_map_update_elem(&fg_calls, &w->call_key, &w->memo, BPF_ANY);
		/* A call let in: its re-INVITEs pass a later block and are no new
		 * calls, and its late answer is counted. */
		if (reason == FG_REASON_PASSED && dialogs && pkt->note != FG_NOTE_SPOOFED) {
			w->memo.until_ns = now + FG_DIALOG_MEMORY_NS;
			bpf_map_update_elem(&fg_dialogs, &w->call_key, &w->memo, BPF_ANY);
		}
	}
	if (reason == FG_REASON_DROPPED_DESTINATION_LIMIT)
		outcome = FG_DEST_OUT_LIMITED;
	else if (reason == FG_REASON_DROPPED_FRAUD)
		outcome = FG_DEST_OUT_FRAUD;
	else if (reason == FG_REASON_DROPPED_CONCURRENT)
		outcome = FG_DEST_OUT_CONCURRENT;
	else if (reason == FG_REASON_DROPPED_CALLER_ID)
		outcome = FG_DEST_OUT_CALLER_ID_REFUSED;
	return fg_destination_outcome(outcome, reason);
}

/*
 * After the verdict on a SIP request that passed, with calls counted
 * (lib/calls.h): `judged`, an INVITE fg_destination let in, which begins a
 * call if it was a new one; otherwise a BYE or CANCEL from its source, which
 * ends one. A global function, called by the main program.
 */
__noinline int fg_calls_after(struct fg_packet *pkt, int judged)
{
	__u32 zero = 0, found;
	struct fg_settings *s = bpf_map_lookup_elem(&fg_settings, &zero);
	struct fg_walk *w = bpf_map_lookup_elem(&fg_scratch, &zero);
	__u64 method;

	if (!s || !w || !pkt)
		return 0;
	if (judged) {
		if (w->begin_call && fg_call_begin(s, &w->active_key, w->begin_cseq, w->begin_tag, fg_packet_ns(s, pkt), 0) < 0)
			fg_destination_outcome(FG_DEST_OUT_UNTRACKED, 0);
		return 0;
	}
	found = w->scan.found;
	if (!pkt->inspected || (found & (FG_SCAN_CALLID | FG_SCAN_CSEQ | FG_SCAN_AMBIGUOUS)) != (FG_SCAN_CALLID | FG_SCAN_CSEQ) ||
	    pkt->sip_skip + 8 > w->scan.len)
		return 0;
	method = fg_lower8(fg_word_at(&w->scratch, pkt->sip_skip));
	w->active_key.addr = pkt->src;
	w->active_key.callid = w->scan.callid;
	w->active_key.claimed = 0;
	w->active_key.pad = 0;
	/* Over TCP, past its handshake, the source is real even if it moved. */
	fg_call_request(&w->active_key, method, w->scan.cseq, pkt->stream);
	return 0;
}

#endif /* FG_LIB_DESTINATIONS_H */
