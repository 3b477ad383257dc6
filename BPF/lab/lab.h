/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The lab's layouts, shared by its BPF programs (this directory) and the Swift
 * lab (Sources/FloodgateLab, through CLabLayouts): the flood generator and
 * the benchmark's oracle. Nothing of the filter's is here, and nothing of
 * this is in the filter's header (BPF/floodgate.h).
 */
#ifndef FG_LAB_H
#define FG_LAB_H

#include <linux/types.h>

#ifdef __bpf__
#include <linux/if_ether.h>

/* The frame's EtherType in one load, as the filter reads it (fg_eth_proto in
 * BPF/lib/parse.h): struct ethhdr is packed, so eth->h_proto is read a byte
 * at a time. The baselines do no more work than they must. */
static __always_inline __be16 lab_eth_proto(const struct ethhdr *eth)
{
	return *(const __be16 *)((const __u8 *)eth + __builtin_offsetof(struct ethhdr, h_proto));
}
#endif

/*
 * The flood generator (flood.bpf.c): flood_config[0] says how to rewrite each
 * frame before XDP_TX in live-frames test runs.
 */
#define FG_MAP_FLOOD_CONFIG "flood_config"
#define FG_FLOOD_PROG_NAME "floodgate_flood"
/* The same for a fixed frame: XDP_TX and nothing else (no map lookup). */
#define FG_FLOOD_FIXED_PROG_NAME "floodgate_flood_fixed"
enum fg_flood_mode {
	FG_FLOOD_FIXED = 0,	  /* send the frame as it is */
	FG_FLOOD_RANDOM_V4 = 1,	  /* randomise the low bits of the IPv4 source, fix the checksum */
	FG_FLOOD_RANDOM_V6 = 2,	  /* randomise the low bits of the IPv6 source */
};
struct fg_flood_config {
	__u32 mode;	   /* enum fg_flood_mode */
	__u32 src_offset;  /* offset of the source address in the frame */
	__u32 random_bits; /* how many low bits of the source to randomise: 1..32 (v4), 1..96 (v6) */
	__u32 csum_offset; /* offset of the IPv4 header checksum */
	/* Pacing: at most one frame each interval_ns (0: as fast as it goes). A
	 * frame whose time has not come is dropped where it was made (XDP_DROP
	 * recycles it at once), so the generator spins rather than overruns the
	 * receiver's ring. next_ns is the program's own: when the next may go. */
	__u64 interval_ns;
	__u64 next_ns;
};
/* How far behind its schedule a paced flood may fall before it starts over:
 * the largest burst it sends to catch up. */
#define FG_FLOOD_PACE_SLACK_NS 20000

/*
 * The benchmark's oracle (oracle.bpf.c): oracle_config[0] names the attack
 * sources, which it drops; everything else passes. A zero mask matches nothing.
 */
#define FG_MAP_ORACLE_CONFIG "oracle_config"
#define FG_ORACLE_PROG_NAME "floodgate_oracle"
struct fg_oracle_config {
	__be32 v4_net, v4_mask;
	__be32 v6_net[4], v6_mask[4];
};

/*
 * The cost benchmark's floors (floor.bpf.c): a drop by source, and by source
 * and class, with one per-CPU slot looked up and its packets and bytes
 * counted, and nothing else; and a new source's lookup and insert.
 */
#define FG_FLOOR_SOURCE_PROG_NAME "floodgate_floor_source"
#define FG_FLOOR_CLASS_PROG_NAME "floodgate_floor_class"
#define FG_FLOOR_NEW_SOURCE_PROG_NAME "floodgate_floor_new_source"
#define FG_FLOOR_NEW_SOURCE_MAP "floor_sources"
#define FG_FLOOR_SLOTS 4096
#define FG_FLOOR_SLOTS_LOG 12

/*
 * The floods' floor (floor.bpf.c, floodgate_floor_held): the oracle's
 * knowledge of the attack, the network that holds its sources, with the least
 * that a filter keeping state adds to the oracle's drop: its policy and its
 * per-CPU state looked up, the clock read, the hold's end and policy
 * generation compared, the frame checked to be a UDP datagram (not an IPv4
 * fragment) to the one SIP port, the source compared masked, and its packets
 * and bytes counted. floor_policy[0] is shared; floor_held[0] is per CPU, each
 * CPU's written alike before the flood. A held network's drop, which must
 * know the frame is SIP over UDP, does at least this (a ban's, which needs no
 * port, a few instructions less): Benchmarks/README.md, "The filter's own
 * time in a flood; the floods' floor".
 */
#define FG_FLOOR_HELD_PROG_NAME "floodgate_floor_held"
#define FG_FLOOR_POLICY_MAP "floor_policy"
#define FG_FLOOR_HELD_MAP "floor_held"
struct fg_floor_policy {
	__u32 generation; /* the policy's: a hold made under another is over */
	__be16 sip_port;  /* the datagrams a hold drops go to this port */
	__u16 reserved;
};
struct fg_floor_held {
	__u64 until_jiffies; /* the hold ends at this jiffy (the lab's never: compared all the same) */
	__u32 generation;    /* the policy generation it was made under */
	__u32 reserved;
	__be32 network[4]; /* the held network, IPv4 mapped into IPv6 (::ffff:0:0/96), masked */
	__be32 mask[4];
	__u64 packets; /* what it dropped on this CPU */
	__u64 bytes;
};

_Static_assert(sizeof(struct fg_flood_config) == 32, "fg_flood_config layout");
_Static_assert(sizeof(struct fg_floor_policy) == 8, "fg_floor_policy layout");
/* 64 bytes; on one cache line only where the per-CPU value lands on one (a
 * per-CPU array's values are aligned to 8). */
_Static_assert(sizeof(struct fg_floor_held) == 64, "fg_floor_held layout");
_Static_assert(sizeof(struct fg_oracle_config) == 40, "fg_oracle_config layout");
_Static_assert(1u << FG_FLOOR_SLOTS_LOG == FG_FLOOR_SLOTS, "floor slots: their log");

#endif /* FG_LAB_H */
