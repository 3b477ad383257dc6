/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The filter's clocks: nanoseconds of CLOCK_MONOTONIC for buckets, bans and
 * trust, and jiffies (bpf_jiffies64) for the drop cache. The nanoseconds come
 * from the precise clock (bpf_ktime_get_ns), or from the coarse one
 * (bpf_ktime_get_coarse_ns: the time at the last tick, less than a jiffy
 * behind) where a jiffy's lag is harmless (fg_now, FG_COARSE_JIFFIES). On this
 * project's VM a read of the precise clock (the TSC, fenced) cost 32 ns over a
 * trivial program, one of the coarse clock 14 (Benchmarks/README, "The coarse
 * clock for buckets that bank 16 jiffies").
 *
 * A test that compares the filter with a model of it over time must give both
 * the same clock. A program loaded with fg_test_clock set (before load; it is
 * read-only after) reads the time from fg_test_time, which the test writes
 * before each packet, and counts jiffies from its precise time. For everyone
 * else the verifier knows fg_test_clock is 0 and removes the branch: what is
 * left of it is one load of a constant.
 */
#ifndef FG_LIB_CLOCK_H
#define FG_LIB_CLOCK_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "../floodgate.h"

const volatile __u32 fg_test_clock SEC(FG_TEST_CLOCK_SWITCH) = 0;
struct fg_test_time fg_test_time SEC(FG_TEST_CLOCK_TIME) = {};

static __always_inline __u64 fg_clock_ns(void)
{
	if (fg_test_clock)
		return *(volatile __u64 *)&fg_test_time.now_ns;
	return bpf_ktime_get_ns();
}

static __always_inline __u64 fg_clock_coarse_ns(void)
{
	if (fg_test_clock)
		return *(volatile __u64 *)&fg_test_time.coarse_ns;
	return bpf_ktime_get_coarse_ns();
}

/* Jiffies: under the test clock, its nanoseconds in settings.jiffy_ns. */
static __always_inline __u64 fg_clock_jiffies(const struct fg_settings *s)
{
	if (fg_test_clock) {
		__u32 jiffy = s->jiffy_ns;

		return jiffy ? *(volatile __u64 *)&fg_test_time.now_ns / jiffy : 0;
	}
	return bpf_jiffies64();
}

#endif /* FG_LIB_CLOCK_H */
