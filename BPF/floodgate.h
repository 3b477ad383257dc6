/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one source of truth for every layout shared by the XDP program
 * (BPF/floodgate.bpf.c) and the Swift agent (imported through the CFloodgate
 * module): map names, keys, values, enums and limits. Swift never retypes any
 * of these; Tests/FloodgateTests/LayoutTests.swift checks sizes and offsets.
 */
#ifndef FLOODGATE_H
#define FLOODGATE_H

#include <linux/types.h>

/* Map names, as the ELF object names them and as they are pinned. */
#define FG_MAP_SETTINGS "fg_settings"
#define FG_MAP_LIMITS "fg_limits"
#define FG_MAP_SOURCES "fg_sources"
#define FG_MAP_COUNTERS "fg_counters"
#define FG_MAP_STATS_MARK "fg_stats_mark"
#define FG_MAP_DROP_CACHE "fg_drop_cache"
#define FG_PROG_NAME "floodgate_xdp"

/* Pinned-object names under <pin root>/<interface>/. */
#define FG_PIN_LINK "link"

/* Default size of the per-source LRU map; set at load time. */
#define FG_DEFAULT_MAX_SOURCES 1000000
#define FG_MAX_SIP_PORTS 4
/* Bounded walk of the IPv6 extension-header chain. */
#define FG_IPV6_MAX_EXT 8
/* Slots of the per-CPU drop cache (a power of two), and how many drops a slot
 * holds before it adds them to the source's entry in fg_sources. */
#define FG_DROP_CACHE_SLOTS 4096
#define FG_DROP_CACHE_FLUSH 256
/* Compare-and-swap attempts on a bucket before the atomic-add fallback. */
#define FG_CAS_RETRIES 4

/*
 * Bucket time is kept in ticks of 1/16 ns (ktime << FG_TICK_SHIFT): the
 * interval between admitted packets is then exact to 1/16 ns, so rounding
 * costs under 0.01% of the rate up to 10M packets/s, and a u64 of ticks lasts
 * 36 years of uptime.
 */
#define FG_TICK_SHIFT 4
#define FG_TICKS_PER_SEC (1000000000ULL << FG_TICK_SHIFT)
/* Highest configurable rate (packets/s per source and class) and burst. */
#define FG_MAX_RATE 100000000U
#define FG_MAX_BURST 100000000U
/* fg_limit.interval values with a special meaning. */
#define FG_INTERVAL_UNLIMITED 0ULL
#define FG_INTERVAL_BLOCK (~0ULL)

/* Traffic classes: the index of fg_limits and fg_counters. */
enum fg_class {
	FG_CLASS_SIP = 0,	/* UDP or TCP to a SIP port */
	FG_CLASS_RTP = 1,	/* UDP to the RTP port range */
	FG_CLASS_ICMP = 2,	/* ICMP and ICMPv6 (but neighbour discovery) */
	FG_CLASS_FRAGMENT = 3,	/* non-first IPv4/IPv6 fragments */
	FG_CLASS_OTHER = 4,	/* everything else, non-IP frames included */
	FG_CLASS_MAX = 5,
};

/* Why a packet got its verdict: the second index of the counters. */
enum fg_reason {
	FG_REASON_PASSED = 0,		  /* within its bucket, or class unlimited */
	FG_REASON_DROPPED_RATE = 1,	  /* bucket empty */
	FG_REASON_DROPPED_MALFORMED = 2,  /* truncated or invalid header, action drop */
	FG_REASON_PASSED_MALFORMED = 3,	  /* truncated or invalid header, action pass */
	FG_REASON_DROPPED_BLOCKED = 4,	  /* class limit is "block" */
	FG_REASON_PASSED_UNTRACKED = 5,	  /* the source map refused a new entry */
	FG_REASON_MAX = 6,
};

/* What to do with a packet whose headers are truncated or invalid. */
enum fg_action {
	FG_ACTION_DROP = 0,
	FG_ACTION_PASS = 1,
};

/* fg_settings[0]: written by the agent at attach and on change. */
struct fg_settings {
	__be16 sip_ports[FG_MAX_SIP_PORTS]; /* network order; 0 = unused slot */
	__u16 rtp_port_min;		    /* host order, inclusive */
	__u16 rtp_port_max;		    /* host order, inclusive; 0 = no RTP class */
	__u32 malformed_action;		    /* enum fg_action */
	__u32 jiffy_ns;			    /* length of a jiffy (clock_getres of CLOCK_MONOTONIC_COARSE); 0 = no drop cache */
};

/*
 * fg_limits[class]: one GCRA/token bucket definition per class, written by the
 * agent. The XDP program reads interval and tau as two separate 64-bit words,
 * so a concurrent update can at worst pair the old interval with the new tau:
 * still a finite limit between old and new, never "unlimited" or "block"
 * unless the old or the new limit was.
 */
struct fg_limit {
	__u64 interval; /* ticks per admitted packet; 0 unlimited, ~0 block */
	__u64 tau;	/* burst tolerance in ticks: (burst - 1) * interval */
	__u32 rate;	/* packets/s as configured (display only) */
	__u32 burst;	/* packets as configured (display only) */
};

/* An IPv6 address, or an IPv4 one mapped as ::ffff:a.b.c.d; network order. */
struct fg_addr {
	__be32 words[4];
};

/* fg_sources key: one bucket per source and class. */
struct fg_source_key {
	struct fg_addr addr;
	__u8 traffic_class; /* enum fg_class */
	__u8 pad[3];
};

/* fg_sources value; every field is updated with atomics by all CPUs. */
struct fg_source_state {
	__u64 tat;     /* GCRA theoretical arrival time, in ticks */
	__u64 packets; /* packets seen from this source in this class */
	__u64 drops;   /* of which dropped by the bucket */
};

/*
 * fg_drop_cache[slot], per CPU: a source whose bucket is empty, and the jiffy
 * until which its packets can be dropped without touching fg_sources. Written
 * by XDP; read by the agent only to add the pending drops to `top`.
 */
struct fg_drop_slot {
	struct fg_source_key key;
	__u32 pad;
	__u64 until_jiffies; /* drop while jiffies < this; 0 = empty slot */
	__u64 interval;	     /* the limit the slot was filled under: */
	__u64 tau;	     /* a different limit now makes the slot stale */
	__u64 pending;	     /* drops (and packets) not yet added to fg_sources */
};

/* fg_counters[class], per CPU: packets and bytes by reason. */
struct fg_class_counters {
	__u64 packets[FG_REASON_MAX];
	__u64 bytes[FG_REASON_MAX];
};

/*
 * fg_stats_mark[0]: totals at the last `floodgate stats` read, written by the
 * CLI so the next read can print packets/s since then. Never read by XDP.
 */
struct fg_stats_mark {
	__u64 ktime_ns; /* CLOCK_MONOTONIC of the read; 0 = never read */
	__u64 packets[FG_CLASS_MAX * FG_REASON_MAX];
};

_Static_assert(sizeof(struct fg_settings) == 20, "fg_settings layout");
_Static_assert(sizeof(struct fg_limit) == 24, "fg_limit layout");
_Static_assert(sizeof(struct fg_addr) == 16, "fg_addr layout");
_Static_assert(sizeof(struct fg_source_key) == 20, "fg_source_key layout");
_Static_assert(sizeof(struct fg_source_state) == 24, "fg_source_state layout");
_Static_assert(sizeof(struct fg_drop_slot) == 56, "fg_drop_slot layout");
_Static_assert((FG_DROP_CACHE_SLOTS & (FG_DROP_CACHE_SLOTS - 1)) == 0, "slots: a power of two");
_Static_assert(sizeof(struct fg_class_counters) == 16 * FG_REASON_MAX, "fg_class_counters layout");
_Static_assert(sizeof(struct fg_stats_mark) == 8 + 8 * FG_CLASS_MAX * FG_REASON_MAX, "fg_stats_mark layout");

#ifndef __bpf__
/* Names used by the CLI, JSON and metrics; userspace only. */
static inline const char *fg_class_name(__u32 c)
{
	switch (c) {
	case FG_CLASS_SIP: return "sip";
	case FG_CLASS_RTP: return "rtp";
	case FG_CLASS_ICMP: return "icmp";
	case FG_CLASS_FRAGMENT: return "fragment";
	case FG_CLASS_OTHER: return "other";
	default: return (const char *)0;
	}
}

static inline const char *fg_reason_name(__u32 r)
{
	switch (r) {
	case FG_REASON_PASSED: return "passed";
	case FG_REASON_DROPPED_RATE: return "dropped-rate";
	case FG_REASON_DROPPED_MALFORMED: return "dropped-malformed";
	case FG_REASON_PASSED_MALFORMED: return "passed-malformed";
	case FG_REASON_DROPPED_BLOCKED: return "dropped-blocked";
	case FG_REASON_PASSED_UNTRACKED: return "passed-untracked";
	default: return (const char *)0;
	}
}
#endif

#endif /* FLOODGATE_H */
