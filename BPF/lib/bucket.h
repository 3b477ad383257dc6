/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-source token buckets, shared by all CPUs without locks or lost updates. */
#ifndef FG_LIB_BUCKET_H
#define FG_LIB_BUCKET_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "../floodgate.h"
#include "once.h"

/*
 * The bucket is GCRA (the generic cell rate algorithm), which is a token bucket
 * kept as one number: the theoretical arrival time (TAT) of the next packet.
 * A bucket of rate r and burst b has interval T = 1/r and tolerance
 * tau = (b - 1) * T; a packet at time now is admitted when
 * max(TAT, now) - now <= tau, and then TAT becomes max(TAT, now) + T. An idle
 * bucket (TAT <= now) holds b tokens; each admission takes one; time refills
 * them at r. Keeping the whole state in one u64 is what makes it safe on many
 * CPUs at once:
 *
 * - A drop writes nothing, so a flood that is over its limit only reads the
 *   shared cache line.
 * - An admission commits with a 64-bit compare-and-swap. Plain read-modify-
 *   write loses updates when two CPUs hit one bucket (both admit on the same
 *   token), and per-CPU buckets admit N_CPUs times the rate; a failed CAS means
 *   another CPU committed, so we re-read and decide again.
 * - After FG_CAS_RETRIES failed attempts (each one another CPU's success) we
 *   fall back to an atomic add of T, undone if the bucket turns out to be
 *   empty. Adds commute, so no admission is ever lost. The one inexactness is
 *   a fallback on an idle bucket (TAT < now): it charges T to the stale TAT
 *   instead of to now, which can admit one extra packet. Worst case: one packet
 *   above the configured burst per fallback, and none at all while the source
 *   is over its limit (then TAT >= now and the add is exact).
 *
 * Under one limit TAT never runs further ahead of now than tau + T. A TAT
 * beyond that, by more than 1/16 of it, was left by a slower limit before a
 * change: it is clamped to "empty under the new limit", so raising a throttled
 * source's limit lets it in after one new interval instead of after the old
 * limit's debt has run out. (The clamp uses the bucket's full tolerance, never
 * a priority's share of it.) The 1/16 is at least a jiffy for a bucket judged
 * at the coarse clock (FG_COARSE_JIFFIES): a decision whose coarse time was read
 * before a tick, judged after another CPU's from after it, finds TAT up to a
 * jiffy further ahead than tau + T, and must not clamp away that CPU's charges.
 */
/* Is a TAT `ahead` ticks ahead of now so far beyond `limit` (tau + T) that a
 * slower limit left it (see above), and it is to be clamped to limit? */
static __always_inline int fg_bucket_clamps(__u64 ahead, __u64 limit)
{
	return ahead > limit + limit / FG_COARSE_JIFFIES;
}

/* One bucket decision: inputs, and on a drop the time of the next token. */
struct fg_bucket_call {
	__u64 now;	/* ticks */
	__u64 interval; /* ticks per packet */
	__u64 tau;	/* how far ahead of now TAT may be for this packet to pass */
	__u64 tau_max;	/* the bucket's full tolerance (the budget gives lower priorities less) */
	__u64 next;	/* out, on a drop: when the bucket next holds a token for this packet */
};

/* The decision: 1 admitted, 0 not (c->next set). */
static __always_inline int fg_bucket_decide(__u64 *tat_p, struct fg_bucket_call *c)
{
	__u64 tat, base, old, now, interval, tau, limit;
	int i;

	now = c->now;
	interval = c->interval;
	tau = c->tau;
	limit = c->tau_max + interval;

	for (i = 0; i < FG_CAS_RETRIES; i++) {
		tat = READ_ONCE(*tat_p);
		base = tat > now ? tat : now;
		if (base - now > tau) {
			if (fg_bucket_clamps(base - now, limit)) {
				__sync_val_compare_and_swap(tat_p, tat, now + limit);
				base = now + limit;
			}
			c->next = base - tau;
			return 0;
		}
		if (__sync_val_compare_and_swap(tat_p, tat, base + interval) == tat)
			return 1;
	}
	old = __sync_fetch_and_add(tat_p, interval);
	if (old > now && old - now > tau) {
		__sync_fetch_and_sub(tat_p, interval);
		c->next = old - tau;
		return 0;
	}
	return 1;
}

/*
 * fg_bucket_decide as a global (not static) function: the verifier checks it
 * once on its own rather than again at each of the call sites, whose states it
 * would otherwise multiply. Its pointer arguments may therefore be NULL to it.
 * A call costs a return through the SRSO return thunk on this project's VM
 * (about 7 ns): the buckets every tracked packet asks, its source's and (SIP
 * from an unverified source) its prefixes', have the decision inlined instead
 * (fg_police_source, fg_police_aggregate).
 */
__noinline int fg_bucket_admit(__u64 *tat_p, struct fg_bucket_call *c)
{
	if (!tat_p || !c)
		return 1;
	return fg_bucket_decide(tat_p, c);
}

#endif /* FG_LIB_BUCKET_H */
