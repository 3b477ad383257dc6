/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Calls in progress per source (settings.calls_tracked), for the concurrent
 * call limit per tier (settings.concurrent_calls) and for `floodgate calls`.
 *
 * A call is counted from the moment its new INVITE is let in (lib/
 * destinations.h judges it; the main program begins it once the budget has
 * passed it too), so that a burst of INVITEs can't all be ringing before the
 * first is answered: a limit of N means N calls ringing or up. It ends:
 *
 * - when the SIP server answers that INVITE (its CSeq) with 300-699, seen
 *   by floodgate_inside on its way out, or the source CANCELs it while it
 *   rings;
 * - on a BYE either way: from the source through the filter (a BYE the
 *   filter drops never reached the server and ends nothing), or from the
 *   server through floodgate_inside;
 * - on its timer: ring_seconds without a 2xx, or call_seconds after its
 *   last 2xx (a re-INVITE's 2xx renews it), for the calls whose end the
 *   filter never saw.
 *
 * A call's end is taken off its source's count once, whoever sees it first
 * (an atomic exchange of its state), and only from the fg_callers entry that
 * counted it (its generation): an entry evicted and made again starts from
 * zero, never below.
 *
 * Forged sources: a call let in from another hop distance than its
 * address's pin (FG_NOTE_SPOOFED) is counted under the address's claimed
 * entry, so forgeries can't fill the real source's calls; a forged BYE or
 * CANCEL (UDP from another hop distance) never gets this far. A forger at
 * the source's own hop distance can start calls in its name, which the
 * server answers to the real address: a challenge (407) ends them at once.
 */
#ifndef FG_LIB_CALLS_H
#define FG_LIB_CALLS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "../floodgate.h"
#include "clock.h"
#include "parse.h"
#include "scanner.h"

#define FG_CALL_RINGING 1
#define FG_CALL_UP 2
#define FG_CALL_ENDED 3

#ifndef CLOCK_MONOTONIC
#define CLOCK_MONOTONIC 1
#endif

struct fg_active_call {
	struct bpf_timer timer; /* ends the call when it runs out */
	__u32 generation;	/* its fg_callers entry's when it was counted */
	__u32 cseq;		/* its INVITE's CSeq number: answers to a re-INVITE don't end it */
	__u32 state;		/* FG_CALL_* */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FG_MAX_ACTIVE_CALLS);
	__type(key, struct fg_active_call_key);
	__type(value, struct fg_active_call);
} fg_active_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FG_MAX_CALLERS);
	__type(key, struct fg_caller_key);
	__type(value, struct fg_caller);
} fg_callers SEC(".maps");

/* Takes an ended call off its source's count, once. */
static __always_inline void fg_call_finish(const struct fg_active_call_key *key, struct fg_active_call *call)
{
	struct fg_caller_key ckey = {.addr = key->addr, .claimed = key->claimed};
	struct fg_caller *caller;
	__u32 old = __sync_lock_test_and_set(&call->state, FG_CALL_ENDED);

	if (old != FG_CALL_RINGING && old != FG_CALL_UP)
		return;
	caller = bpf_map_lookup_elem(&fg_callers, &ckey);
	if (!caller || caller->generation != call->generation)
		return;
	__sync_fetch_and_add(&caller->calls, -1);
	if (old == FG_CALL_UP)
		__sync_fetch_and_add(&caller->up, -1);
}

/* A call's timer ran out: its end was never seen. */
static int fg_call_expired(void *map, struct fg_active_call_key *key, struct fg_active_call *call)
{
	fg_call_finish(key, call);
	bpf_map_delete_elem(map, key);
	return 0;
}

/* Ends the call under `key`, if there is one. */
static __always_inline void fg_call_end(struct fg_active_call_key *key)
{
	struct fg_active_call *call = bpf_map_lookup_elem(&fg_active_calls, key);

	if (!call)
		return;
	fg_call_finish(key, call);
	bpf_map_delete_elem(&fg_active_calls, key);
}

/* Is `addr` (claimed or not) at its tier's limit of calls in progress? A
 * retransmission of a call already counted is not a new one. */
static __always_inline int fg_calls_full(const struct fg_settings *s, struct fg_active_call_key *key, __u32 tier)
{
	struct fg_caller_key ckey = {.addr = key->addr, .claimed = key->claimed};
	struct fg_caller *caller;
	__u32 limit = s->concurrent_calls[tier < 3 ? tier : 0];

	if (!limit)
		return 0;
	caller = bpf_map_lookup_elem(&fg_callers, &ckey);
	if (!caller || READ_ONCE(caller->calls) < limit)
		return 0;
	return bpf_map_lookup_elem(&fg_active_calls, key) == NULL;
}

/* Counts a new call let in, under `key`, with its INVITE's CSeq `cseq`.
 * Returns 0, or -1 if the table of calls is full (the call goes on,
 * uncounted). */
static __always_inline int fg_call_begin(const struct fg_settings *s, struct fg_active_call_key *key, __u32 cseq,
					 __u64 now)
{
	struct fg_caller_key ckey = {.addr = key->addr, .claimed = key->claimed};
	struct fg_caller fresh = {}, *caller;
	struct fg_active_call call = {.cseq = cseq, .state = FG_CALL_RINGING}, *c;
	__u32 now_s = now / 1000000000ULL;

	caller = bpf_map_lookup_elem(&fg_callers, &ckey);
	if (!caller) {
		fresh.generation = bpf_get_prandom_u32() | 1;
		fresh.window_s = now_s;
		bpf_map_update_elem(&fg_callers, &ckey, &fresh, BPF_NOEXIST);
		caller = bpf_map_lookup_elem(&fg_callers, &ckey);
		if (!caller)
			return -1;
	}
	call.generation = caller->generation;
	/* Counted first, so that an end seen before the count can't take the
	 * count below zero. */
	__sync_fetch_and_add(&caller->calls, 1);
	if (bpf_map_update_elem(&fg_active_calls, key, &call, BPF_NOEXIST)) {
		__sync_fetch_and_add(&caller->calls, -1);
		/* Already counted (a copy that came on another CPU): not full. */
		return bpf_map_lookup_elem(&fg_active_calls, key) ? 0 : -1;
	}
	if (now_s - caller->window_s >= 60) {
		caller->window_s = now_s;
		caller->window_calls = 0;
	}
	__sync_fetch_and_add(&caller->window_calls, 1);
	c = bpf_map_lookup_elem(&fg_active_calls, key);
	if (!c)
		return 0; /* ended already */
	bpf_timer_init(&c->timer, &fg_active_calls, CLOCK_MONOTONIC);
	bpf_timer_set_callback(&c->timer, fg_call_expired);
	bpf_timer_start(&c->timer, (__u64)s->ring_seconds * 1000000000ULL, 0);
	return 0;
}

/*
 * The SIP server's answer `code` to an INVITE (CSeq `cseq`) of the call
 * `key` (claimed or not: the answer goes to the address either way): a 2xx
 * to the INVITE that began it puts it up; any 2xx keeps it up for
 * call_seconds more; 300-699 to that INVITE while it rings ends it.
 */
static __always_inline void fg_call_answered(const struct fg_settings *s, struct fg_active_call_key *key,
					     __u32 cseq, __u32 code)
{
	struct fg_caller_key ckey = {};
	struct fg_active_call *call = bpf_map_lookup_elem(&fg_active_calls, key);
	struct fg_caller *caller;

	if (!call) {
		key->claimed = 1;
		call = bpf_map_lookup_elem(&fg_active_calls, key);
		if (!call)
			return;
	}
	if (code >= 300) {
		if (call->cseq == cseq && READ_ONCE(call->state) == FG_CALL_RINGING)
			fg_call_end(key);
		return;
	}
	if (code < 200)
		return;
	if (call->cseq == cseq &&
	    __sync_val_compare_and_swap(&call->state, FG_CALL_RINGING, FG_CALL_UP) == FG_CALL_RINGING) {
		ckey.addr = key->addr;
		ckey.claimed = key->claimed;
		caller = bpf_map_lookup_elem(&fg_callers, &ckey);
		if (caller && caller->generation == call->generation)
			__sync_fetch_and_add(&caller->up, 1);
	}
	if (READ_ONCE(call->state) == FG_CALL_UP)
		bpf_timer_start(&call->timer, (__u64)s->call_seconds * 1000000000ULL, 0);
}

/*
 * A BYE (any state) or CANCEL (while ringing, with its INVITE's CSeq
 * number) for the call `key`: from its source, let through the filter, or
 * from the server. `method` is the request's first 8 bytes, lower-cased.
 * A request from the server tries the claimed call too.
 */
static __always_inline void fg_call_request(struct fg_active_call_key *key, __u64 method, __u32 cseq, int both)
{
	struct fg_active_call *call;
	int cancel;

	if ((method & fg_low_bytes(4)) == FG_W8("bye \0\0\0\0") || (method & fg_low_bytes(4)) == FG_W8("bye\t\0\0\0\0"))
		cancel = 0;
	else if ((method & fg_low_bytes(7)) == FG_W8("cancel \0") || (method & fg_low_bytes(7)) == FG_W8("cancel\t\0"))
		cancel = 1;
	else
		return;
	call = bpf_map_lookup_elem(&fg_active_calls, key);
	if (!call && both) {
		key->claimed = 1;
		call = bpf_map_lookup_elem(&fg_active_calls, key);
	}
	if (!call)
		return;
	if (cancel && (call->cseq != cseq || READ_ONCE(call->state) != FG_CALL_RINGING))
		return;
	fg_call_end(key);
}

#endif /* FG_LIB_CALLS_H */
