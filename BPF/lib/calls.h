/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Calls in progress per source (settings.calls_tracked), for the concurrent
 * call limit per tier (settings.concurrent_calls) and for `floodgate calls`.
 *
 * A call is counted from the moment its new INVITE is let in (lib/
 * destinations.h judges it; the main program begins it once the budget has
 * passed it too), so that a burst of INVITEs can't all be ringing before the
 * first is answered: a limit of N means N calls ringing or up. Once
 * floodgate_inside has read one of the SIP server's answers
 * (fg_inside_seen_ns), the server's word ends calls, not the source's:
 *
 * - its answer 300-699 to the INVITE that began the call (its CSeq), while
 *   the call rings (a 487 after a CANCEL included);
 * - its 2xx to a BYE of the call, or its own BYE;
 * - until then (no inside interface), the source's BYE, or its CANCEL while
 *   the call rings, on trust: a BYE the server refuses would end the count
 *   and not the call;
 * - the call's timer: ring_seconds without a 2xx, or call_seconds after its
 *   last 2xx (a re-INVITE's 2xx renews it), for the ends never seen. While
 *   the server is heard, a call that rings out is taken as up instead (its
 *   2xx may have been unreadable); otherwise a 2xx that comes after the ring
 *   timer ran out counts the call again, as up.
 *
 * A call's end is taken off its source's count once, whoever sees it first
 * (an atomic exchange of its state), and only from the fg_callers entry that
 * counted it (its generation): an entry evicted and made again starts from
 * zero, never below. The entry itself is removed by its timer's callback.
 *
 * Forged sources: a call let in from another hop distance than its
 * address's pin (FG_NOTE_SPOOFED) is counted under the address's claimed
 * entry, so forgeries can't fill the real source's calls; a forged BYE or
 * CANCEL (UDP from another hop distance) never gets this far. A forger at
 * the source's own hop distance can start calls in its name, which the
 * server answers to the real address: a challenge (407) ends them at once.
 * A call is told apart from another on its Call-ID by its From tag: an
 * INVITE with another From tag on a Call-ID in progress is refused (a server
 * takes it for another call); the same caller's next INVITE on it while it
 * rings takes its place (resent with credentials after a challenge); once
 * it is up, a new INVITE without a To tag on it is refused.
 */
#ifndef FG_LIB_CALLS_H
#define FG_LIB_CALLS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "../floodgate.h"
#include "clock.h"
#include "parse.h"
#include "scanner.h"
#include "state.h"

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
	__u32 tag;		/* its From tag's hash: a copy has the same, another call on the Call-ID not */
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

/* The calls this program let in (source, Call-ID hash): their number, and
 * until when; their re-INVITEs pass a fraud block and are not new calls. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FG_MAX_DIALOGS);
	__type(key, struct fg_call_key);
	__type(value, struct fg_call);
} fg_dialogs SEC(".maps");

/* When floodgate_inside last read one of the server's answers (CLOCK_MONOTONIC
 * ns, to the second); 0: never. */
__u64 fg_inside_seen_ns = 0;

/* How long the server counts as heard after its last answer read: after
 * that (an inside interface detached, a quiet night) the source's word is
 * taken again, until the server's next answer. */
#define FG_INSIDE_HEARD_NS (600ULL * 1000000000ULL)

static __always_inline int fg_server_answers_seen(void)
{
	__u64 seen = *(volatile __u64 *)&fg_inside_seen_ns;

	return seen && bpf_ktime_get_ns() - seen < FG_INSIDE_HEARD_NS;
}

/* floodgate_inside read an answer: written at most once a second. */
static __always_inline void fg_server_heard(void)
{
	__u64 now = bpf_ktime_get_ns();

	if (now - *(volatile __u64 *)&fg_inside_seen_ns >= 1000000000ULL)
		*(volatile __u64 *)&fg_inside_seen_ns = now;
}

/* Seconds a call counts in `state`, as configured. */
static __always_inline __u64 fg_call_ns(const struct fg_settings *s, __u32 state)
{
	__u32 seconds = state == FG_CALL_UP ? s->call_seconds : s->ring_seconds;

	if (!seconds)
		seconds = state == FG_CALL_UP ? 14400 : 180;
	return (__u64)seconds * 1000000000ULL;
}

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

/* A call's timer ran out (its end was never seen), or its end was: the
 * callback is what removes the entry, so that a delete by key can never
 * remove a call begun after it under the same key. */
static int fg_call_expired(void *map, struct fg_active_call_key *key, struct fg_active_call *call)
{
	struct fg_caller_key ckey = {.addr = key->addr, .claimed = key->claimed};
	struct fg_settings *s;
	struct fg_caller *caller;
	__u32 zero = 0;

	/* Rang out with no final answer read, though the server's answers are
	 * read: its answer was one the inside program could not read (a 2xx
	 * made long by the caller's own Record-Route, fragmented). Taken as up,
	 * not as over. */
	if (fg_server_answers_seen() && READ_ONCE(call->state) == FG_CALL_RINGING) {
		s = bpf_map_lookup_elem(&fg_settings, &zero);
		if (s && __sync_val_compare_and_swap(&call->state, FG_CALL_RINGING, FG_CALL_UP) == FG_CALL_RINGING) {
			caller = bpf_map_lookup_elem(&fg_callers, &ckey);
			if (caller && caller->generation == call->generation)
				__sync_fetch_and_add(&caller->up, 1);
			bpf_timer_start(&call->timer, fg_call_ns(s, FG_CALL_UP), 0);
			return 0;
		}
	}
	fg_call_finish(key, call);
	bpf_map_delete_elem(map, key);
	return 0;
}

/* Ends `call` (under `key`): off the count now, its entry removed by its
 * timer at once (or here, if it has none). */
static __always_inline void fg_call_end(struct fg_active_call_key *key, struct fg_active_call *call)
{
	fg_call_finish(key, call);
	if (bpf_timer_start(&call->timer, 1, 0))
		bpf_map_delete_elem(&fg_active_calls, key);
}

/* The call under `key`, or under its claimed twin (`both`: for what the
 * server sends, which goes to the address either way); key->claimed says
 * which. */
static __always_inline struct fg_active_call *fg_call_find(struct fg_active_call_key *key, int both)
{
	struct fg_active_call *call = bpf_map_lookup_elem(&fg_active_calls, key);

	if (!call && both) {
		key->claimed = 1;
		call = bpf_map_lookup_elem(&fg_active_calls, key);
	}
	return call;
}

#define FG_CALLS_ROOM 0	   /* a new call may begin */
#define FG_CALLS_FULL 1	   /* the source has as many calls in progress as it may */
#define FG_CALLS_REUSED 2  /* a new INVITE on a Call-ID whose call is in progress, with another CSeq */

/* May a new call (INVITE CSeq `cseq`, From tag `tag`) begin under `key`,
 * from a source of `tier`? A copy of a call already counted may: it is no
 * new call. */
static __always_inline int fg_calls_admit(const struct fg_settings *s, struct fg_active_call_key *key, __u32 tier,
					  __u32 cseq, __u32 tag)
{
	struct fg_caller_key ckey = {.addr = key->addr, .claimed = key->claimed};
	struct fg_active_call *call = bpf_map_lookup_elem(&fg_active_calls, key);
	struct fg_caller *caller;
	__u32 limit = s->concurrent_calls[tier < 3 ? tier : 0], state;

	if (call) {
		state = READ_ONCE(call->state);
		if (state != FG_CALL_ENDED) {
			/* Another From tag on the Call-ID is another call to a
			 * server: refused, it would go uncounted. */
			if (call->tag != tag)
				return FG_CALLS_REUSED;
			if (call->cseq == cseq)
				return FG_CALLS_ROOM;
			/* The same caller's next INVITE while it rings: resent
			 * after a challenge (whether or not the filter read it). */
			if (state == FG_CALL_RINGING) {
				WRITE_ONCE(call->cseq, cseq);
				return FG_CALLS_ROOM;
			}
			return FG_CALLS_REUSED;
		}
	}
	if (!limit)
		return FG_CALLS_ROOM;
	caller = bpf_map_lookup_elem(&fg_callers, &ckey);
	if (!caller || READ_ONCE(caller->calls) < limit)
		return FG_CALLS_ROOM;
	return FG_CALLS_FULL;
}

/* Counts a new call under `key`, with its INVITE's CSeq `cseq` and From tag
 * `tag`, ringing for ring_seconds (or, `up`, answered, for call_seconds).
 * Returns 0, or -1 if the table of calls is full (the call goes on,
 * uncounted). */
static __always_inline int fg_call_begin(const struct fg_settings *s, struct fg_active_call_key *key, __u32 cseq,
					 __u32 tag, __u64 now, int up)
{
	struct fg_caller_key ckey = {.addr = key->addr, .claimed = key->claimed};
	struct fg_caller fresh = {}, *caller;
	struct fg_active_call call = {.cseq = cseq, .tag = tag, .state = up ? FG_CALL_UP : FG_CALL_RINGING}, *c;
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
	if (up)
		__sync_fetch_and_add(&caller->up, 1);
	if (bpf_map_update_elem(&fg_active_calls, key, &call, BPF_NOEXIST)) {
		c = bpf_map_lookup_elem(&fg_active_calls, key);
		/* A call on this key that has just ended, its entry not yet
		 * removed by its timer: taken again, timer and all. Should its
		 * timer's callback have removed it meanwhile, the timer can't be
		 * started and the call is ended again: uncounted, never stuck. */
		if (c && __sync_val_compare_and_swap(&c->state, FG_CALL_ENDED, call.state) == FG_CALL_ENDED) {
			c->generation = call.generation;
			c->cseq = cseq;
			c->tag = tag;
			if (bpf_timer_start(&c->timer, fg_call_ns(s, call.state), 0))
				fg_call_finish(key, c);
			return 0;
		}
		__sync_fetch_and_add(&caller->calls, -1);
		if (up)
			__sync_fetch_and_add(&caller->up, -1);
		/* Already counted (a copy that came on another CPU): not full. */
		return c ? 0 : -1;
	}
	if (!up) {
		if (now_s - caller->window_s >= 60) {
			caller->window_s = now_s;
			caller->window_calls = 0;
		}
		__sync_fetch_and_add(&caller->window_calls, 1);
	}
	c = bpf_map_lookup_elem(&fg_active_calls, key);
	if (!c || READ_ONCE(c->state) == FG_CALL_ENDED)
		return 0; /* ended already */
	/* A call whose timer can't run would never end: not counted. */
	if (bpf_timer_init(&c->timer, &fg_active_calls, CLOCK_MONOTONIC) ||
	    bpf_timer_set_callback(&c->timer, fg_call_expired) ||
	    bpf_timer_start(&c->timer, fg_call_ns(s, call.state), 0)) {
		fg_call_finish(key, c);
		bpf_map_delete_elem(&fg_active_calls, key);
	}
	return 0;
}

/*
 * The SIP server's answer `code` to an INVITE (CSeq `cseq`) of the call
 * `key` (claimed or not: the answer goes to the address either way): a 2xx
 * to the INVITE that began it puts it up; any 2xx keeps it up for
 * call_seconds more; 300-699 to that INVITE while it rings ends it. A 2xx to
 * a call let in (fg_dialogs) whose ring timer ran out counts it again, up.
 */
static __always_inline void fg_call_answered(const struct fg_settings *s, struct fg_active_call_key *key,
					     __u32 cseq, __u32 tag, __u32 code, __u64 now)
{
	struct fg_caller_key ckey = {};
	struct fg_call_key dkey = {.addr = key->addr, .callid = (__u32)key->callid};
	struct fg_active_call *call = fg_call_find(key, 1);
	struct fg_caller *caller;
	struct fg_call *dialog;

	if (!call) {
		if (code < 200 || code > 299)
			return;
		dialog = bpf_map_lookup_elem(&fg_dialogs, &dkey);
		if (!dialog || dialog->until_ns <= now)
			return;
		key->claimed = 0;
		fg_call_begin(s, key, cseq, tag, now, 1);
		return;
	}
	if (code >= 300) {
		if (call->cseq == cseq && READ_ONCE(call->state) == FG_CALL_RINGING)
			fg_call_end(key, call);
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
		bpf_timer_start(&call->timer, fg_call_ns(s, FG_CALL_UP), 0);
}

/* The server's 2xx to a BYE of the call `key`, or its own BYE: it ended,
 * and a late copy of its 2xx must not count it again. */
static __always_inline void fg_call_bye(struct fg_active_call_key *key)
{
	struct fg_call_key dkey = {.addr = key->addr, .callid = (__u32)key->callid};
	struct fg_active_call *call = fg_call_find(key, 1);
	struct fg_call *dialog = bpf_map_lookup_elem(&fg_dialogs, &dkey);

	if (dialog)
		WRITE_ONCE(dialog->until_ns, 0);
	if (call)
		fg_call_end(key, call);
}

/*
 * A BYE (any state) or CANCEL (while ringing, with its INVITE's CSeq
 * number) from the call's source, let through the filter: it ends the call
 * only while the server's answers are not read (they say it then). `method`
 * is the request's first 8 bytes, lower-cased; over TCP (`both`) the
 * claimed call is tried too.
 */
static __always_inline void fg_call_request(struct fg_active_call_key *key, __u64 method, __u32 cseq, int both)
{
	struct fg_active_call *call;
	int cancel;

	if (fg_server_answers_seen())
		return;
	if ((method & fg_low_bytes(4)) == FG_W8("bye \0\0\0\0") || (method & fg_low_bytes(4)) == FG_W8("bye\t\0\0\0\0"))
		cancel = 0;
	else if ((method & fg_low_bytes(7)) == FG_W8("cancel \0") || (method & fg_low_bytes(7)) == FG_W8("cancel\t\0"))
		cancel = 1;
	else
		return;
	call = fg_call_find(key, both);
	if (!call)
		return;
	if (cancel && (call->cseq != cseq || READ_ONCE(call->state) != FG_CALL_RINGING))
		return;
	fg_call_end(key, call);
}

/* How far ";tag=" is matched in a From value (blanks allowed around the
 * ';' and the '=', as parsers allow them). */
#define FG_TAG_IDLE 0
#define FG_TAG_SEMI 1  /* ';' read */
#define FG_TAG_T 2
#define FG_TAG_A 3
#define FG_TAG_G 4     /* "tag" read: blanks, then '=' */
#define FG_TAG_EQ 5    /* '=' read: blanks, then the value */
#define FG_TAG_VALUE 6 /* in the value */

/* A byte of a From value; 1 once the tag is read or the line ends. */
static __always_inline int fg_tag_byte(struct fg_tag_walk *t, __u8 b)
{
	__u8 l = b | 0x20;

	if (t->match == FG_TAG_VALUE) {
		if (b == ';' || b == ',' || b == ' ' || b == '\t' || b == '\r' || b == '\n' || b == '>' || b == '"')
			return 1;
		t->hash = (t->hash ^ b) * FG_FNV64_PRIME;
		return 0;
	}
	if (b == '\r' || b == '\n')
		return 1;
	if (t->angle) {
		if (b == '>')
			t->angle = 0;
		return 0;
	}
	if (fg_quoted_byte(&t->quoted, b)) {
		t->match = FG_TAG_IDLE;
		return 0;
	}
	if (b == '<') {
		t->angle = 1;
		t->match = FG_TAG_IDLE;
		return 0;
	}
	if (b == ' ' || b == '\t') {
		if (t->match == FG_TAG_T || t->match == FG_TAG_A)
			t->match = FG_TAG_IDLE;
		return 0;
	}
	if (b == ';')
		t->match = FG_TAG_SEMI;
	else if (t->match == FG_TAG_SEMI && l == 't')
		t->match = FG_TAG_T;
	else if (t->match == FG_TAG_T && l == 'a')
		t->match = FG_TAG_A;
	else if (t->match == FG_TAG_A && l == 'g')
		t->match = FG_TAG_G;
	else if (t->match == FG_TAG_G && b == '=')
		t->match = FG_TAG_EQ;
	else if (t->match == FG_TAG_EQ) {
		t->match = FG_TAG_VALUE;
		t->hash = (FG_FNV64_OFFSET ^ b) * FG_FNV64_PRIME;
	} else
		t->match = FG_TAG_IDLE;
	return 0;
}

/* Sixteen bytes of a From value a call of bpf_loop's callback. */
static long fg_tag_step(__u32 i, void *unused)
{
	__u32 zero = 0, j, at;
	struct fg_walk *w = bpf_map_lookup_elem(&fg_scratch, &zero);
	struct fg_tag_walk *t;

	if (!w)
		return 1;
	t = &w->tag;
#pragma unroll
	for (j = 0; j < 16; j++) {
		at = t->at;
		if (at >= t->end)
			return 1;
		t->at = at + 1;
		if (fg_tag_byte(t, w->scratch.buf[at & FG_SCAN_MASK])) {
			t->done = 1;
			return 1;
		}
	}
	return 0;
}

/*
 * The hash of the From tag of the message the walk copied (folded to 32
 * bits; 0: none, or not read to its end): what tells two calls on one
 * Call-ID apart, since a server takes another From tag for another call. A
 * global function: verified once.
 */
__noinline __u32 fg_from_tag(void)
{
	__u32 zero = 0;
	struct fg_walk *w = bpf_map_lookup_elem(&fg_scratch, &zero);
	struct fg_tag_walk *t;

	if (!w || !w->scan.from_at)
		return 0;
	t = &w->tag;
	__builtin_memset(t, 0, sizeof(*t));
	t->at = w->scan.from_at;
	t->end = w->scan.len;
	bpf_loop(FG_SIP_SCAN_BYTES / 16, fg_tag_step, NULL, 0);
	if (!t->done || t->match != FG_TAG_VALUE)
		return 0;
	return (__u32)(t->hash ^ (t->hash >> 32)) | 1;
}

#endif /* FG_LIB_CALLS_H */
