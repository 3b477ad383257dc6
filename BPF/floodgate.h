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
#define FG_MAP_PREFIXES "fg_prefixes"
#define FG_MAP_GLOBAL "fg_global"
#define FG_MAP_DROP_CACHE "fg_drop_cache"
#define FG_MAP_DENY "fg_deny"
#define FG_MAP_ALLOW "fg_allow"
#define FG_MAP_ALLOW_PREFIXES "fg_allow_prefixes"
#define FG_MAP_BANS "fg_bans"
#define FG_MAP_AUTO_BANS "fg_auto_bans"
#define FG_MAP_PEER_BANS "fg_peer_bans"
#define FG_MAP_SIGNATURES "fg_signatures"
#define FG_MAP_SCRATCH "fg_scratch"
#define FG_MAP_CPU "fg_cpu"
#define FG_MAP_OFFENCES "fg_offences"
#define FG_MAP_AUTH "fg_auth"
#define FG_MAP_TRUSTED "fg_trusted"
#define FG_MAP_TRUSTED_PREFIXES "fg_trusted_prefixes"
#define FG_MAP_TXNS "fg_txns"
#define FG_MAP_SERVERS "fg_servers"
#define FG_MAP_FRAGMENTS "fg_fragments"
#define FG_MAP_CHALLENGES "fg_challenges"
#define FG_INSIDE_PROG_NAME "floodgate_inside"
#define FG_MAP_EVENTS "fg_events"
#define FG_MAP_DESTINATIONS "fg_destinations"
#define FG_MAP_DESTINATION_SOURCES "fg_destination_sources"
#define FG_MAP_DESTINATION_TOTALS "fg_destination_totals"
#define FG_MAP_CALLS "fg_calls"
#define FG_MAP_DESTINATION_OUTCOMES "fg_destination_outcomes"
#define FG_MAP_FRAUD_BLOCKS "fg_fraud_blocks"
#define FG_MAP_DIALOGS "fg_dialogs"
#define FG_MAP_ACTIVE_CALLS "fg_active_calls"
#define FG_MAP_CALLERS "fg_callers"
#define FG_MAP_CALLER_SOURCES "fg_caller_sources"
#define FG_MAP_CALLER_RANGES "fg_caller_ranges"
#define FG_MAP_INSIDE_COUNTS "fg_inside_counts"
#define FG_MAP_STREAMS "fg_streams"
#define FG_MAP_STREAM_OPENS "fg_stream_opens"
#define FG_MAP_KNOWN "fg_known"
/* The test clock (lib/clock.h): the switch, set before load, and the time
 * (struct fg_test_time). */
#define FG_TEST_CLOCK_SWITCH ".rodata.test_clock"
#define FG_TEST_CLOCK_TIME ".data.test_clock"
#define FG_PROG_NAME "floodgate_xdp"

/* Pinned-object names under <pin root>/<interface>/. */
#define FG_PIN_LINK "link"
#define FG_PIN_INSIDE_PROG "inside-prog" /* the program for the inside interface */
#define FG_PIN_INSIDE_LINK "inside-link" /* its link, when an inside interface is set */

/* Default sizes of the maps the agent sizes at load time. */
#define FG_DEFAULT_MAX_SOURCES 1000000
#define FG_MAX_LIST_ENTRIES 262144 /* each of the deny and allow lists */
#define FG_MAX_BANS 262144	    /* explicit bans (the operator's) */
#define FG_MAX_PEER_BANS 65536	    /* bans learned from peers over BGP (networks) */
#define FG_DEFAULT_MAX_AUTO_BANS 262144 /* the filter's own bans: an LRU, sized at load */
#define FG_MAX_OFFENDERS 65536
#define FG_MAX_AUTH_SOURCES 65536
#define FG_MAX_TRUSTED 262144
#define FG_MAX_TXNS 65536
#define FG_MAX_SERVERS 1024
#define FG_MAX_FRAGMENTS 65536
#define FG_MAX_CHALLENGES 65536
#define FG_MAX_STREAMS 65536 /* the server's TCP streams followed, and those opening (each an LRU) */
/* Non-first fragments let through for each admitted first fragment: a 64 KiB
 * datagram in 1,480-byte fragments is 45 of them. */
#define FG_FRAGMENT_BUDGET 44
/* Ban lengths by offence (auto-ban): the first, second, ... the last repeats. */
#define FG_AUTOBAN_LEVELS 4
#define FG_EVENTS_BYTES (256 * 1024)
#define FG_MAX_SIGNATURES 256
#define FG_MAX_SIP_PORTS 4
/* Destination rules (lib/destinations.h): trie entries (one per prefix, tier
 * and bank), and the ids of rules with a limit (their buckets' index). */
#define FG_MAX_DESTINATIONS 65536
#define FG_MAX_DESTINATION_IDS 65536
/* (source, rule) buckets of limited destinations, and recent calls. LRU. */
#define FG_MAX_DESTINATION_SOURCES 65536
#define FG_MAX_CALLS 65536
/* Sources blocked for new calls, and the calls let in (LRU). */
#define FG_MAX_FRAUD_BLOCKS 65536
#define FG_MAX_DIALOGS 65536
#define FG_MAX_ACTIVE_CALLS 65536 /* calls in progress, over all sources */
#define FG_MAX_CALLERS 131072	   /* sources with calls counted (LRU) */
#define FG_MAX_CALLER_SOURCES 65536 /* caller-ID source prefixes */
#define FG_MAX_CALLER_RANGES 262144 /* caller-ID number ranges, over all source prefixes */
/* Digits of a number the rules see (E.164 numbers have at most 15). */
#define FG_NUMBER_DIGITS 16
/* A Request-URI's user part must end within this many bytes of the request
 * for its number to be read (lib/numbers.h). */
#define FG_RURI_BYTES 256
/* A retransmitted INVITE (same source and Call-ID) within this long is
 * judged as its first copy was, not charged again (RFC 3261 timer B: 32 s). */
#define FG_CALL_MEMORY_NS 32000000000ULL
/* Bounded walk of the IPv6 extension-header chain. */
#define FG_IPV6_MAX_EXT 8
/* A SIP message's header block is scanned (signatures, credentials, Call-ID,
 * CSeq) up to its blank line or this many bytes, whichever comes first. */
#define FG_SIP_SCAN_BYTES 2048
/* Leading CR, LF, SP or HT bytes skipped before a request line (RFC 3261
 * section 7.5: servers ignore CRLFs before a request; Kamailio does). */
#define FG_SIP_MAX_LEADING 4
/* A signature: one byte of kind, then up to 31 bytes of lower-cased prefix. */
#define FG_SIGNATURE_BYTES 32
#define FG_SIGNATURE_USER_AGENT 0x75 /* 'u' */
#define FG_SIGNATURE_FROM 0x66	     /* 'f' */
/* Slots of the per-CPU drop cache (a power of two), and how many drops a slot
 * holds before it adds them to the source's entry in fg_sources. The map's
 * entries are groups of FG_DROP_CACHE_GROUP slots (see struct fg_drop_slot). */
#define FG_DROP_CACHE_SLOTS 4096
#define FG_DROP_CACHE_GROUP 512
#define FG_DROP_CACHE_GROUPS 8 /* FG_DROP_CACHE_SLOTS / FG_DROP_CACHE_GROUP */
#define FG_DROP_CACHE_FLUSH 256
/* A source-keyed slot's drops are looked for a home among all its source's
 * classes only when at least this many are added at once (lib/drop_cache.h). */
#define FG_SOURCE_SEARCH_PENDING 16
/* log2 of FG_DROP_CACHE_SLOTS: a slot's index is the top bits of its key's
 * hash, its tag (in fg_cpu's value, FG_CPU_TAGS_OFFSET) the 16 below them. */
#define FG_DROP_CACHE_SLOTS_LOG 12
/* A drained prefix stays in the drop cache for at least this long (or its
 * bucket's tau, if shorter): see fg_prefix_cache_until. */
#define FG_PREFIX_HOLD_NS 25000000ULL
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
/*
 * A bucket whose tolerance (tau, its burst less one packet, in time) is at
 * least this many jiffies (64 ms at HZ 250) is judged at the coarse clock's
 * time, which is cheaper to read than the precise clock's (lib/clock.h); any
 * other bucket at the precise clock's. The coarse clock lags by less than a
 * jiffy. The tokens that come due meanwhile stay in the bucket, which holds
 * more than a jiffy of them, so the long-run rate is exact; and a window of
 * any length gets at most one jiffy's worth of the rate more than the exact
 * bucket would give it: under 1/16 of the burst.
 */
#define FG_COARSE_JIFFIES 16

/* The test clock's time (FG_TEST_CLOCK_TIME): what the precise clock and the
 * coarse clock read, in CLOCK_MONOTONIC nanoseconds. A test sets the coarse
 * one behind the precise one, as the kernel's lags, to see which is read. */
struct fg_test_time {
	__u64 now_ns;
	__u64 coarse_ns;
};

/* Highest configurable rate (packets/s) and burst. */
#define FG_MAX_RATE 100000000U
#define FG_MAX_BURST 100000000U
/* fg_limit.interval values with a special meaning. */
#define FG_INTERVAL_UNLIMITED 0ULL
#define FG_INTERVAL_BLOCK (~0ULL)

/* Traffic classes: the first index of fg_limits and of fg_cpu_state.counters. */
enum fg_class {
	FG_CLASS_INVITE = 0,	    /* SIP request INVITE */
	FG_CLASS_REGISTER = 1,	    /* SIP request REGISTER */
	FG_CLASS_OPTIONS = 2,	    /* SIP request OPTIONS */
	FG_CLASS_OTHER_REQUEST = 3, /* SUBSCRIBE NOTIFY MESSAGE INFO UPDATE PRACK REFER PUBLISH */
	FG_CLASS_IN_DIALOG = 4,	    /* ACK BYE CANCEL */
	FG_CLASS_RESPONSE = 5,	    /* status line "SIP/2.0 NNN " */
	FG_CLASS_SIP_OTHER = 6,	    /* anything else over UDP to a SIP port */
	FG_CLASS_SIP_SYN = 7,	    /* TCP SYN without ACK to a SIP port */
	FG_CLASS_SIP_STREAM = 8,    /* other TCP segments to a SIP port (established SIP/TLS) */
	FG_CLASS_KEEPALIVE = 9,	    /* a UDP datagram of only CR and LF (RFC 5626 keep-alive) */
	FG_CLASS_FRAGMENT = 10,	    /* non-first IPv4/IPv6 fragments: a bucket per source prefix */
	FG_CLASS_RTP = 11,	    /* UDP to the RTP port range */
	FG_CLASS_ICMP = 12,	    /* ICMP and ICMPv6 (but neighbour discovery) */
	FG_CLASS_OTHER = 13,	    /* everything else, non-IP frames included */
	FG_CLASS_MAX = 14,
};

/* Classes up to this one are SIP: prefix buckets and the budget apply. */
enum { FG_CLASS_SIP_LAST = FG_CLASS_KEEPALIVE };

/*
 * The counters have a row after the classes: "unparsed", the packets dropped
 * before their class was read, from their source alone (a ban or a denial
 * held in a source-keyed slot of the drop cache). It has no limit: the limits'
 * indices count the classes only.
 */
enum { FG_COUNTER_UNPARSED = FG_CLASS_MAX, FG_COUNTER_ROWS = FG_CLASS_MAX + 1 };

/* The class in the key of a drop-cache slot that holds a source alone (after
 * FG_CLASS_MAX and FG_CLASS_MAX + 1, the prefix buckets' keys). */
enum { FG_SLOT_SOURCE = FG_CLASS_MAX + 2 };

/* fg_limits entries after the per-class ones. */
enum fg_limit_index {
	FG_LIMIT_PREFIX = FG_CLASS_MAX,	 /* per-prefix aggregate bucket (SIP classes) */
	FG_LIMIT_BUDGET = FG_CLASS_MAX + 1,	 /* interface-wide SIP budget, shed by priority */
	FG_LIMIT_NEW_SOURCES = FG_CLASS_MAX + 2, /* new (source, class) entries per second */
	FG_LIMIT_WIDE_PREFIX = FG_CLASS_MAX + 3, /* the wider aggregate bucket (/16, /48) over its prefixes */
	FG_LIMIT_VERIFIED = FG_CLASS_MAX + 4,	 /* then one per class again: the per-source limits of verified sources */
	/* Fraud thresholds (lib/destinations.h), per source, one per tier
	 * (FG_TIER_*): new calls to international numbers, and to destinations a
	 * rule marks high-risk. */
	FG_LIMIT_FRAUD_INTERNATIONAL = 2 * FG_CLASS_MAX + 4,
	FG_LIMIT_FRAUD_HIGH_RISK = 2 * FG_CLASS_MAX + 7,
	FG_LIMIT_MAX = 2 * FG_CLASS_MAX + 10,
};

/* fg_global entries: the shared state of the interface-wide buckets. */
enum fg_global_index {
	FG_GLOBAL_BUDGET = 0,
	FG_GLOBAL_NEW_SOURCES = 1,
	FG_GLOBAL_MAX = 2,
};

/*
 * Load-shedding priority of each class when the budget runs short: lowest is
 * shed first. Verified sources rank above every class of a stranger's, and
 * allow-listed sources above them. Level L of FG_PRIORITY_LEVELS may take the
 * budget's bucket (L + 1) / FG_PRIORITY_LEVELS of the way into its burst.
 */
#define FG_PRIORITY_VERIFIED 6
#define FG_PRIORITY_ALLOWED 7
#define FG_PRIORITY_LEVELS 8
static inline __attribute__((always_inline)) __u32 fg_shed_priority(__u32 c)
{
	switch (c) {
	case FG_CLASS_OPTIONS: return 0;
	case FG_CLASS_REGISTER: return 1;
	case FG_CLASS_SIP_OTHER: return 2;
	case FG_CLASS_SIP_SYN: return 2;
	case FG_CLASS_KEEPALIVE: return 2;
	case FG_CLASS_INVITE: return 3;
	case FG_CLASS_OTHER_REQUEST: return 4;
	default: return 5; /* in-dialog, response, established streams */
	}
}

/* Why a packet got its verdict: the second index of the counters. */
enum fg_reason {
	FG_REASON_PASSED = 0,		   /* within its limits, or class unlimited */
	FG_REASON_PASSED_ALLOW = 1,	   /* allow-listed: no per-source or prefix limit */
	FG_REASON_DROPPED_RATE = 2,	   /* per-source bucket empty */
	FG_REASON_DROPPED_PREFIX = 3,	   /* per-prefix bucket empty */
	FG_REASON_DROPPED_NEW_SOURCE = 4,  /* too many new sources per second */
	FG_REASON_DROPPED_SHED = 5,	   /* budget short: shed by priority */
	FG_REASON_DROPPED_DENY = 6,	   /* source in the deny list */
	FG_REASON_DROPPED_BAN = 7,	   /* source banned */
	FG_REASON_DROPPED_SCANNER = 8,	   /* scanner signature */
	FG_REASON_DROPPED_MALFORMED = 9,   /* truncated or invalid header, action drop */
	FG_REASON_PASSED_MALFORMED = 10,   /* truncated or invalid header, action pass */
	FG_REASON_DROPPED_BLOCKED = 11,	   /* class limit is "block" */
	FG_REASON_PASSED_UNTRACKED = 12,   /* the source map refused a new entry */
	FG_REASON_DROPPED_SPOOFED = 13,	   /* a verified or allow-listed address at another hop distance */
	FG_REASON_DROPPED_ALLOW_LIMIT = 14, /* an allow-list entry's own bucket empty */
	FG_REASON_DROPPED_OVERSIZE = 15,   /* a SIP header block that goes on past what the walk can read */
	FG_REASON_DROPPED_DESTINATION = 16, /* an INVITE to a number a destination rule blocks, or whose number can't be read */
	FG_REASON_DROPPED_DESTINATION_LIMIT = 17, /* an INVITE over a destination rule's calls per minute */
	FG_REASON_DROPPED_FRAUD = 18,	   /* a new call over a fraud threshold, or from a source blocked for new calls */
	FG_REASON_DROPPED_CONCURRENT = 19, /* a new call over its source's calls in progress */
	FG_REASON_DROPPED_CALLER_ID = 20,  /* a new call presenting a caller number its source may not (enforce) */
	FG_REASON_DROPPED_UNPROVEN = 21,   /* a quarantined verified source's credentials answering no challenge sent to it */
	FG_REASON_MAX = 22,
};

/* What to do with a packet whose headers are truncated or invalid. */
enum fg_action {
	FG_ACTION_DROP = 0,
	FG_ACTION_PASS = 1,
};

/* A dialling prefix or country code: up to 7 digits, as values 0-9. */
#define FG_MAX_INTERNATIONAL_PREFIXES 2
struct fg_dial_prefix {
	__u8 len;
	__u8 digits[7];
};

/* What a number without + or a dialling prefix is. */
enum fg_bare {
	FG_BARE_E164 = 0,     /* already international: what carriers' trunks expect */
	FG_BARE_NATIONAL = 1, /* national without its prefix: the country code goes in front */
	FG_BARE_LOCAL = 2,    /* an extension or local number: no rule applies */
};

/* fg_settings[0]: written by the agent at attach and on change. */
struct fg_settings {
	__be16 sip_ports[FG_MAX_SIP_PORTS]; /* network order; 0 = unused slot */
	__u16 rtp_port_min;		    /* host order, inclusive */
	__u16 rtp_port_max;		    /* host order, inclusive; 0 = no RTP class */
	__u32 malformed_action;		    /* enum fg_action */
	__u32 jiffy_ns;			    /* clock_getres(CLOCK_MONOTONIC_COARSE); 0 = no drop cache */
	__u8 prefix_v4;			    /* prefix length of IPv4 aggregate buckets */
	__u8 prefix_v6;			    /* prefix length of IPv6 aggregate buckets */
	__u8 wide_v4;			    /* prefix length of the wider IPv4 aggregate (<= prefix_v4) */
	__u8 wide_v6;			    /* prefix length of the wider IPv6 aggregate (<= prefix_v6) */
	__u32 policy_generation;	    /* bumped on every limit or list change and ban removal: drop-cache slots go stale */
	__u32 deny_entries;		    /* 0: skip the deny lookup */
	__u32 allow_entries;		    /* 0: skip the allow lookup */
	__u32 signature_entries;	    /* 0: skip the scanner scan */
	__u32 scanner_ban_seconds;	    /* XDP bans a scanner for this long; 0 = no */
	__u32 bans_present;		    /* 0: fg_bans (explicit bans) is empty, skip its lookup; set by the agent */
	/* Auto-ban: a source whose own bucket drops this many of its packets
	 * within the window is banned by XDP, for longer on each offence. */
	__u32 autoban_drops;		    /* 0 = no auto-ban */
	__u32 autoban_window_ms;
	__u32 autoban_seconds[FG_AUTOBAN_LEVELS]; /* ban length per offence; 0 = unused level */
	__u32 autoban_jitter_pct;	    /* each ban is 0 to this % longer, at random */
	__u32 offence_forget_s;		    /* an offender with no offence for this long starts over */
	/* Seen on the inside interface (floodgate_inside): failed
	 * authentications ban a source; successful ones make it known-good. */
	__u32 bruteforce_failures;	    /* failures within the window that ban; 0 = off */
	__u32 bruteforce_window_s;
	__u32 bruteforce_ban_s;
	__u32 trust_seconds;		    /* how long a source stays known-good; 0 = no learned trust */
	/* Hop-count pinning (lib/tiers.h): a verified or allow-listed address
	 * arriving with a TTL / hop limit further than this from its pinned one
	 * is taken as forged. */
	__u32 ttl_tolerance;
	__u32 layout_version;		    /* FG_LAYOUT_VERSION of the build that loaded the program */
	__u32 server_entries;		    /* 0: any address on the inside answers for the SIP server */
	__u32 auto_bans_present;	    /* 0: fg_auto_bans is empty, skip its lookup; set by XDP, cleared by the agent */
	/* Dialled numbers (lib/numbers.h) and destination rules (lib/destinations.h). */
	struct fg_dial_prefix international[FG_MAX_INTERNATIONAL_PREFIXES]; /* e.g. 00, 011; len 0: unused */
	struct fg_dial_prefix national;	    /* the national (trunk) prefix, e.g. 0; len 0: none */
	struct fg_dial_prefix country;	    /* the site's country code, e.g. 44 */
	__u32 bare_numbers;		    /* enum fg_bare: what digits without a prefix or + are */
	__u32 destination_entries;	    /* 0: no rules, INVITEs' numbers are not read */
	__u32 destination_bank;		    /* the bank of rules in force (0 or 1) */
	__u32 fraud_block_seconds;	    /* a source over a fraud threshold gets no new calls this long; 0: no fraud checks */
	/* Calls in progress (lib/calls.h), counted per source when calls_tracked. */
	__u32 calls_tracked;		    /* FG_CALLS_*; 0: calls are not counted */
	__u32 concurrent_calls[3];	    /* per tier (FG_TIER_*): calls in progress a source may have; 0: no limit */
	__u32 ring_seconds;		    /* a call let in and not answered is counted this long */
	__u32 call_seconds;		    /* an answered call with no BYE is counted this long after its last 2xx */
	/* Caller ID (lib/callerid.h). */
	__u32 caller_id_mode;		    /* enum fg_caller_id_mode */
	__u32 caller_id_entries;	    /* 0: no source prefix has caller-ID ranges */
	/* Never read by XDP. */
	__u32 agent_pid;		    /* the `floodgate run` keeping this filter in step with its config; 0: none */
	/* Read by XDP again. */
	__u32 peer_bans;		    /* 0: fg_peer_bans (bans learned over BGP) is empty, skip its lookup */
	/* Where the allow list's entries lie, by the first byte of the address
	 * (an IPv4 source's first octet; an IPv6 one's first byte): bit b of
	 * the 256 is set if some entry holds an address that starts with b. A
	 * source whose bit is clear is on no entry and skips the trie lookup
	 * (fg_allow_maybe). Written with allow_entries. */
	__u64 allow_v4_first[4];
	__u64 allow_v6_first[4];
};

/* settings.calls_tracked */
#define FG_CALLS_TRACKED 1
#define FG_CALLS_BLOCK_WHEN_FULL 2 /* a new call over the limit blocks its source for new calls (fraud_block_seconds) */

/* What floodgate_inside read in the SIP server's answers: per-CPU counts,
 * fg_inside_counts[index] (lib/trust.h). */
enum fg_inside_count {
	FG_INSIDE_ANSWERS = 0,		/* SIP answers from the server read */
	FG_INSIDE_CHALLENGES = 1,	/* 401 and 407 with a nonce: challenges sent to sources */
	FG_INSIDE_AUTH_FAILURES = 2,	/* failed authentications of noted credentialed requests */
	FG_INSIDE_AUTH_NOT_COUNTED = 3, /* failures not held against the source: a stale nonce, a 403 to a request
					 * of another method than REGISTER or INVITE, an unreadable refusal (below)
					 * to a verified source */
	FG_INSIDE_VERIFIED = 4,		/* accepted credentials that verified a source */
	FG_INSIDE_SERVER_BYES = 5,	/* the server's BYEs */
	FG_INSIDE_AUTH_UNPROVEN = 6,	/* failures whose credentials answered no challenge sent to the address, of a
					 * verified source or from another hop distance than its pin */
	FG_INSIDE_AUTH_UNREADABLE = 7,	/* refusals (401, 403, 407) over UDP whose Call-ID and CSeq could not be
					 * read (in a first fragment, past the walk's reach), counted as failures
					 * of the address they went to, against a credentialed request of its
					 * still unanswered (lib/trust.h) */
	FG_INSIDE_TCP_UNREAD = 8,	/* the server's TCP segments with data not read: on a stream the filter did
					 * not see open, or lost (lib/stream.h) */
	FG_INSIDE_TCP_STREAMS_LOST = 9, /* TCP streams where the next message's start could not be told */
	FG_INSIDE_COUNT_MAX = 10,
};

/* Bumped whenever a pinned map's layout or meaning changes: a filter pinned by
 * a build with another version is not adopted. 10: fg_known's halves of 2^22
 * bits, fg_drop_cache's entries of FG_DROP_CACHE_GROUP slots. 11: the allow
 * list's first bytes in fg_settings. 12: fg_drop_tags, the drop-cache slots'
 * tags. 13: fg_cpu_state's unparsed row and source-keyed gate. 14: a
 * source-keyed slot's pending drops and their class (source_class). 15:
 * fg_known sized by the source map, the log in its seed's low byte, the
 * first index of the half XDP reads in [FG_KNOWN_ACTIVE]. 16: XDP writes
 * fg_known's other half only while [FG_KNOWN_REBUILDING] is set (an older
 * agent's rebuild does not set it). 17: the drop cache's tags in fg_cpu's
 * value, after the state (FG_CPU_TAGS_OFFSET); no fg_drop_tags. 18: wider
 * networks' keys (class FG_CLASS_MAX + 1) in fg_allow_prefixes and
 * fg_trusted_prefixes, and their drop-cache gate in fg_cpu_state (an older
 * agent's sync would remove the allow list's). 19: fg_auth's unproven
 * failures, fg_trust's quarantines (24 bytes); fg_inside_counts' seventh
 * count; fg_txns keyed by the CSeq method too, for credentialed requests of
 * every method, with a count of those pending. 20: fg_inside_counts'
 * eighth count (unreadable refusals); fg_auth's count of credentialed
 * requests pending, and when the last was noted (24 bytes). 21: fg_trust's
 * strict quarantines (its former pad); fg_challenges valued by the method
 * challenged (FG_CHALLENGE_*). 22: fg_streams and fg_stream_opens (the
 * server's TCP streams, read only where a message starts); fg_inside_counts'
 * ninth and tenth counts. 23: fg_stream carries the frame walk of a header
 * block that goes on in the next segment (32 bytes). 24: fg_cpu_state's held
 * aggregate (its jiffy and generation on the first line, its network and
 * mask on a second), the counters a line further on. 25: the held source's
 * drops pending in fg_cpu_state (held_source_pending), not in its slot; `top`
 * adds them to the slot's. */
#define FG_LAYOUT_VERSION 25
#define FG_DEFAULT_TTL_TOLERANCE 2

/*
 * fg_limits[class or enum fg_limit_index]: one GCRA/token bucket definition,
 * written by the agent. The XDP program reads interval and tau as two
 * separate 64-bit words, so a concurrent update can at worst pair the old
 * interval with the new tau: still a finite limit between old and new, never
 * "unlimited" or "block" unless the old or the new limit was.
 */
struct fg_limit {
	__u64 interval; /* ticks per admitted packet; 0 unlimited, ~0 block */
	__u64 tau;	/* burst tolerance in ticks: (burst - 1) * interval */
	__u32 rate;	/* packets/s as configured (display only) */
	__u32 burst;	/* packets as configured (display only) */
};

/* fg_global[enum fg_global_index]: a shared bucket, one per cache line. */
struct fg_global_bucket {
	__u64 tat;	/* GCRA theoretical arrival time, in ticks */
	__u64 pad[7];
};

/* An IPv6 address, or an IPv4 one mapped as ::ffff:a.b.c.d; network order. */
struct fg_addr {
	__be32 words[4];
};

/*
 * fg_known: which addresses may have state, so that a packet from one that
 * has none is known to be new without a lookup that misses in a map of a
 * million entries (a trip to memory): a bit per address hash, two halves of
 * 2^log bits, after FG_KNOWN_HEADER words of which [FG_KNOWN_SEED] is the
 * hash's seed (random, set when the maps are made) whose low byte is the log
 * (from the map's size), and [FG_KNOWN_ACTIVE] the index of the first word of
 * the half XDP reads (fg_known_half).
 * Every entry made in fg_sources (XDP) or fg_trusted (floodgate_inside) sets
 * its address's bit in the half XDP reads, after the entry is made, and in
 * both halves while [FG_KNOWN_REBUILDING] is set; the agent sets that word,
 * rebuilds the half XDP does not read (zeroes it, then sets the bits of every
 * address in the two maps), makes it the one XDP reads and clears the word,
 * so that bits of evicted entries go. A bit may be set for an address without
 * state (another address's hash, an entry since evicted): then the lookups are
 * made as before. A clear bit in the half XDP reads always means no state: the
 * only way to a wrong "new".
 *
 * Its size: 2^FG_KNOWN_BITS_LOG_MIN bits a half (512 KiB), the default
 * million sources' size, or for a bigger fg_sources the power of two that
 * gives it four to eight bits a source, up to 2^FG_KNOWN_BITS_LOG_MAX (32 MiB
 * a half: 2.7 bits a source at the agent's most, 100 million); the agent
 * sizes the map when it loads the program (fg_known_entries). Bits set: 1 -
 * e^(-n/bits), with n the entries after a rebuild, and before the next those
 * plus the sources the new-source budget admitted since (their bits stay when
 * the LRU evicts them: 1.2 million a minute at the default 20,000/s). At the
 * default million, 21% after a rebuild and up to 41% before the next; a set
 * bit costs a refused source the lookups. The floor is that size because a
 * smaller map churns as fast: with 2^16 bits a map of 4,096 sources would be
 * all set within a minute of a flood. At 2^23 bits for a million sources (11%
 * and 23%) the half did not stay in a core's 1 MiB L2 beside a flood's
 * frames: half of the worst case's samples in the filter were on this load;
 * at 2^22, a sixth to a third (Benchmarks/README.md, "The known-source
 * filter's size"). A bigger map gets a bigger filter all the same: a miss in
 * it is one trip to memory, where a set bit costs the lookups' two or more.
 */
#define FG_KNOWN_BITS_LOG_MIN 22
#define FG_KNOWN_BITS_LOG_MAX 28
#define FG_KNOWN_HEADER 8
#define FG_KNOWN_SEED 0
#define FG_KNOWN_ACTIVE 1
/* Non-zero while the agent rebuilds a half (KnownSources.rebuild): only then
 * does XDP set an entry's bit in the half it does not read (lib/known.h). */
#define FG_KNOWN_REBUILDING 2
/* The map's entries as the object declares them (the agent sizes it at load). */
#define FG_KNOWN_ENTRIES_MIN 131080 /* FG_KNOWN_HEADER + 2 * 2^(FG_KNOWN_BITS_LOG_MIN - 6) */
_Static_assert(FG_KNOWN_ENTRIES_MIN == FG_KNOWN_HEADER + 2 * (1u << (FG_KNOWN_BITS_LOG_MIN - 6)), "fg_known: its entries");

/* fg_known's entries for halves of 2^log bits. */
static inline __u32 fg_known_entries(__u32 log)
{
	return FG_KNOWN_HEADER + 2 * (1u << (log - 6));
}

/* The log of a half's bits: the seed's low byte. The agent checks it against
 * the map's entries when it seeds the map and whenever it maps it; XDP trusts
 * it. */
static inline __attribute__((always_inline)) __u32 fg_known_log(__u64 seed)
{
	return seed & 0xff;
}

/* The index of the first word of half 0 or 1. */
static inline __attribute__((always_inline)) __u32 fg_known_half(__u64 seed, __u32 half)
{
	return FG_KNOWN_HEADER + half * (1u << (fg_known_log(seed) - 6));
}

/* The bit of `a` in a half of fg_known under `seed` (both sides compute it;
 * inlined always: with a shift by the log, clang made it a call). */
static inline __attribute__((always_inline)) __u32 fg_known_bit(const struct fg_addr *a, __u64 seed)
{
	__u64 x = (((__u64)a->words[0] << 32) | a->words[1]) ^ seed;
	__u64 y = (((__u64)a->words[2] << 32) | a->words[3]) + seed;

	x = (x ^ (y * 0x9E3779B97F4A7C15ULL)) * 0xBF58476D1CE4E5B9ULL;
	return (__u32)(x >> (64 - fg_known_log(seed)));
}

/* fg_sources key: one bucket per source and class. fg_prefixes uses the same
 * key with the masked address and FG_CLASS_MAX as the class (the prefix
 * bucket), or FG_CLASS_MAX + 1 (the wide prefix bucket). */
struct fg_source_key {
	struct fg_addr addr;
	__u8 traffic_class; /* enum fg_class */
	__u8 pad[3];
};

/* The drop cache's hash of a key (lib/drop_cache.h): its top
 * FG_DROP_CACHE_SLOTS_LOG bits are the key's slot, the 16 below them its tag
 * in fg_cpu's value. Both sides compute it: the tests look for keys that share
 * a slot and a tag. */
static inline __u32 fg_addr_hash(const struct fg_addr *addr, __u32 traffic_class)
{
	__u32 h = addr->words[0] ^ addr->words[1] ^ addr->words[2] ^ addr->words[3];

	h ^= traffic_class;
	/* Fibonacci hashing: the top bits of the product are well mixed. */
	return h * 2654435761U;
}

static inline __u32 fg_slot_hash(const struct fg_source_key *key)
{
	return fg_addr_hash(&key->addr, key->traffic_class);
}

static inline __u32 fg_hash_slot(__u32 hash)
{
	return hash >> (32 - FG_DROP_CACHE_SLOTS_LOG);
}

static inline __u16 fg_hash_tag(__u32 hash)
{
	return (__u16)(hash >> (16 - FG_DROP_CACHE_SLOTS_LOG));
}

/* fg_sources / fg_prefixes value; the counts are updated with atomics, the
 * auto-ban window without (an approximate count is enough there). */
struct fg_source_state {
	__u64 tat;		/* GCRA theoretical arrival time, in ticks */
	__u64 packets;		/* packets seen from this source in this class */
	__u64 drops;		/* of which dropped by this bucket */
	__u32 window_start_ms;	/* jiffies in ms (wrapping) when the auto-ban window began */
	__u32 window_drops;	/* drops by this bucket in that window */
};

/* fg_offences[source]: how often XDP auto-banned it; LRU. */
struct fg_offence {
	__u64 last_ns; /* CLOCK_MONOTONIC of the last ban */
	__u32 count;   /* bans so far, reset after settings.offence_forget_s without one */
	__u32 pad;
};

/* Records in the fg_events ring buffer, from XDP to the agent. */
enum fg_event_type {
	FG_EVENT_AUTOBAN = 1, /* a source crossed the auto-ban threshold */
	FG_EVENT_SCANNER = 2, /* a scanner signature banned a source */
	FG_EVENT_BRUTE_FORCE = 3, /* failed authentications banned a source */
	FG_EVENT_TRUSTED = 4, /* a source became known-good (a 2xx to its REGISTER or INVITE) */
	FG_EVENT_DROP_SAMPLE = 5, /* one drop in FG_DROP_SAMPLE_EVERY: offence = its reason, drops = the count */
	FG_EVENT_SPARED = 6, /* a verified or allow-listed source that UDP evidence would have banned was not:
			      * offence = FG_BAN_SCANNER or FG_BAN_AUTO, drops = the count that triggered it */
	FG_EVENT_SPOOFED = 7, /* packets claiming a verified or allow-listed address at another hop distance:
			       * offence = the TTL seen (at most one a second per CPU) */
	FG_EVENT_FRAUD = 8, /* a source crossed a fraud threshold and is blocked for new calls until expires_ns:
			     * offence = FG_FRAUD_*, drops = the threshold in calls a minute */
	FG_EVENT_CALLER_ID = 9, /* a new call presented a caller number its source may not: offence =
				 * FG_CALLER_ID_FLAG or _ENFORCE, expires_ns = the number's digits (as
				 * fg_destination_key has them), drops = their count */
	FG_EVENT_QUARANTINE = 10, /* a verified source's credentials failed settings.bruteforce_failures times
				   * answering no challenge sent to it (a forger, or a guesser with nonces
				   * fetched elsewhere): until expires_ns, its credentialed requests must answer
				   * one; offence = 0 at its pin, 1 from other hop distances; drops = the
				   * failures */
};
#define FG_FRAUD_INTERNATIONAL 1
#define FG_FRAUD_HIGH_RISK 2
#define FG_FRAUD_CONCURRENT 3 /* calls in progress over the limit, with fraud.concurrent_action block */
/* Events that could come with every packet of a flood are sent at most once
 * in this many ns on each CPU. */
#define FG_NOISY_EVENT_NS 1000000000ULL
/* Each CPU reports one drop in this many of each class and reason (a power of two). */
#define FG_DROP_SAMPLE_EVERY 65536

/* fg_auth[external source]: its failed authentications, as the inside
 * interface sees the SIP server answer its noted requests (lib/trust.h). LRU. */
struct fg_auth_state {
	__u32 failures;	       /* 401/407s (but stale ones), and 403s to REGISTERs and INVITEs, in the window */
	__u32 window_start_s;  /* CLOCK_MONOTONIC seconds when the window began */
	__u32 unproven;	       /* a verified source's failures whose credentials answered no challenge sent to it,
				* in the window (lib/trust.h): they quarantine it at its pin, never ban it */
	__u32 away;	       /* the same, of requests from another hop distance than the address's pin: they
				* quarantine its credentials from other hop distances only */
	__u32 pending;	       /* its credentialed requests noted on the way in and not yet answered (at most
				* FG_AUTH_PENDING_MAX): an unreadable refusal counts only against one */
	__u32 pending_s;       /* CLOCK_MONOTONIC seconds when the last was noted: FG_AUTH_PENDING_SECONDS later,
				* pending counts for nothing (requests dropped after their note, or never answered) */
};
#define FG_AUTH_PENDING_MAX 1024
#define FG_AUTH_PENDING_SECONDS 32 /* 64 T1: a UDP transaction's timeout (RFC 3261 17.1.2.2) */
/* A pinned TTL / hop limit (lib/tiers.h), of a verified source or an allow
 * entry, and the evidence on its way to moving it. */
struct fg_pin {
	__u8 ttl;	      /* the TTL its packets must arrive with (within settings.ttl_tolerance) */
	__u8 set;	      /* 1 once ttl is pinned */
	__u8 candidate_ttl;   /* another TTL that accepted REGISTERs came with */
	__u8 candidate_count; /* how many in a row: FG_REPIN_CONFIRMATIONS move the pin */
};
#define FG_REPIN_CONFIRMATIONS 3

/* fg_trusted[source]: a verified source. */
struct fg_trust {
	__u64 until_ns;	    /* CLOCK_MONOTONIC ns until which it is verified */
	struct fg_pin pin;  /* pinned when it is verified */
	__u32 quarantine_until_s; /* CLOCK_MONOTONIC seconds until which its credentials, at its pin, must answer a
				   * challenge sent to it (0: not quarantined; lib/trust.h). Here, not in fg_auth,
				   * whose LRU a flood of forged failures could churn: only verifications make
				   * entries here */
	__u32 away_until_s; /* the same for credentials from another hop distance than its pin */
	__u32 strict;	    /* FG_STRICT_* bits: where a quarantine in force lets only credentials answering a challenge
			     * to a REGISTER pass, its credentials having failed there answering other challenges */
};
#define FG_STRICT_AT_PIN 1
#define FG_STRICT_AWAY 2
/* An FG_EVENT_QUARANTINE's offence bits. */
#define FG_QUARANTINE_AWAY 1	    /* from other hop distances than the pin (else at the pin) */
#define FG_QUARANTINE_MADE_STRICT 2 /* a quarantine in force there made strict */

struct fg_event {
	__u32 type;	     /* enum fg_event_type */
	__u32 traffic_class; /* enum fg_class of the packet that triggered it */
	struct fg_addr addr;
	__u64 expires_ns;    /* the ban's expiry (CLOCK_MONOTONIC) */
	__u32 offence;	     /* 1 for a first offence, ... */
	__u32 drops;	     /* drops in the window that triggered it */
};

/*
 * fg_allow value: the entry's own aggregate bucket over every SIP class of
 * all its addresses (so a forged allow-listed address is not unlimited), and
 * an optional fixed TTL range. Written by the agent; tat by XDP.
 */
struct fg_allow_entry {
	__u8 ttl_min;	   /* with ttl_max: the TTLs / hop limits its packets may arrive with */
	__u8 ttl_max;	   /* 0: no fixed range */
	__u8 host;	   /* a single address (/32, /128): only such an entry is pinned without a range */
	__u8 pad;
	__u32 rate;	   /* packets/s as configured (display only) */
	__u32 burst;	   /* packets as configured (display only) */
	struct fg_pin pin; /* without a range, a host entry's first SIP packet pins it (written by XDP) */
	__u64 interval;	 /* ticks per packet; FG_INTERVAL_UNLIMITED: no bucket */
	__u64 tau;	 /* burst tolerance in ticks */
	__u64 tat;	 /* the bucket's theoretical arrival time, in ticks */
};

/*
 * fg_txns[source, Call-ID hash, CSeq number and method]: a SIP request with
 * credentials that the external program let in, of any method, so that the
 * server's answer (seen by floodgate_inside) can be matched to it. LRU.
 */
struct fg_txn_key {
	struct fg_addr addr;
	__u32 callid; /* FNV-1a of the Call-ID value */
	__u32 cseq;   /* the CSeq number */
	__u64 method; /* the CSeq method's first 8 bytes (~0: a longer one), as the header walk reads it */
};
#define FG_TXN_REPIN 1 /* it came at another TTL than the source's pinned one (all of them did, if several) */
struct fg_txn {
	__u8 ttl;	    /* the TTL / hop limit it arrived with */
	__u8 flags;	    /* FG_TXN_* */
	__u8 traffic_class; /* its class (enum fg_class): a REGISTER's answer may verify */
	__u8 pending;	    /* requests noted under this key and not yet answered (1-255): each answer is one */
	__u8 pad[4];
	__u64 nonce;	    /* the hash of the nonce its credentials answer (0: none read) */
};

/* fg_challenges[destination, nonce hash]: a nonce the SIP server sent to an
 * external address in a 401 or 407 (floodgate_inside), valued by what the
 * challenge answered. Credentials that answer a REGISTER's challenge prove
 * the address real: only its holder saw it. Another method's challenge may
 * be a phone's behind the server, which the server relays, and whose nonce
 * that phone's holder chose (lib/trust.h). LRU. */
struct fg_challenge_key {
	struct fg_addr addr;
	__u64 nonce;
};
#define FG_CHALLENGE_OTHER 1	/* a challenge to another method, or one whose CSeq could not be read */
#define FG_CHALLENGE_REGISTER 2 /* a challenge to a REGISTER: the registrar's own */

/* fg_streams[server, peer, ports]: a TCP stream the SIP server sends on,
 * followed from its first byte, and where its next message starts
 * (floodgate_inside, lib/stream.h); fg_stream_opens[same key]: the first
 * byte of a stream that has carried no data yet (the server's SYN or SYN-ACK
 * sequence number + 1). LRUs. */
struct fg_stream_key {
	struct fg_addr server;
	struct fg_addr peer;
	__be16 server_port;
	__be16 peer_port;
};
struct fg_stream {
	__u32 next;  /* the sequence number of the next byte to read (host order): a message's first, or (walk set)
		      * where a header block read in part goes on */
	__u32 state; /* FG_STREAM_* */
	/* A header block that went on past the bytes read (a segment's end, or
	 * a copy's 2,048 bytes): where the frame walk stood, to go on from at
	 * next. walk: its state + 1 (enum fg_frame_state, lib/stream.h); 0: next
	 * is a message's first byte, and the rest is unused. */
	__u32 walk;
	__u32 found;   /* the walk's FG_FRAME_* flags */
	__u32 length;  /* the Content-Length read */
	__u32 matched; /* bytes of "content-length" matched at the line's start */
	__u32 header;  /* bytes of the header block read so far (the stream is lost past FG_STREAM_MAX_HEADER) */
	__u32 pad;
};
/* Steps of the frame walk one segment may take (each a message with the
 * keep-alives before it, the rest of a header block an earlier segment cut,
 * keep-alives after the last message, or 2,048 bytes of a header block or of
 * keep-alives that go on): more, and the stream is lost. */
#define FG_STREAM_STEPS 8
/* A header block that has gone on over this many bytes of copies (with the
 * keep-alives before it; 1 MiB) without ending is taken for no SIP message's,
 * and the stream is lost. Far above what a server sends or takes (a relay
 * adds its Via and Record-Route lines to what it was sent): it bounds no
 * work (FG_STREAM_STEPS does, a segment at a time), only how long a walk
 * that can never end is kept. */
#define FG_STREAM_MAX_HEADER (1U << 20)
#define FG_STREAM_FOLLOWED 1 /* segments that start at next are read */
#define FG_STREAM_LOST 2     /* where a message starts could not be told: nothing more is read */

/* fg_fragments[source, IP ID]: a first fragment the policy admitted, whose
 * later fragments pass without a bucket (up to FG_FRAGMENT_BUDGET of them);
 * written by XDP. LRU. */
struct fg_fragment_key {
	struct fg_addr addr;
	__u32 id;  /* IPv4 identification (16 bits) or IPv6 fragment identification, host order */
	__u32 pad;
};

/* fg_deny / fg_allow key (LPM trie): IPv4 as ::ffff:0:0/96 plus its length. */
struct fg_cidr_key {
	__u32 prefixlen; /* 0..128, host order */
	struct fg_addr addr;
};

/* fg_bans[source] (explicit bans) and fg_auto_bans[source] (the filter's own). */
#define FG_BAN_EXPLICIT 1 /* set by an operator: beats the allow list */
#define FG_BAN_SCANNER 2  /* set by XDP on a scanner signature */
#define FG_BAN_AUTO 4	  /* set by XDP when a source keeps exceeding its limit (auto-ban) */
#define FG_BAN_BRUTE_FORCE 8 /* set by XDP on repeated failed authentications (inside interface) */
#define FG_BAN_INTEGRATION 16 /* with FG_BAN_EXPLICIT: set through an integration (the local API, fail2ban), which
			       * lifts only its own; XDP reads no flag of fg_bans */
struct fg_ban {
	__u64 expires_ns; /* CLOCK_MONOTONIC; 0 = never */
	__u32 flags;	  /* FG_BAN_* */
	__u32 pad;
};

/* fg_signatures key (LPM trie over bytes): kind, then the lower-cased prefix. */
struct fg_signature_key {
	__u32 prefixlen; /* bits: 8 * (1 + prefix length) */
	__u8 data[FG_SIGNATURE_BYTES];
};

/* Destination rules (lib/destinations.h). */
enum fg_destination_action {
	FG_DEST_ALLOW = 1, /* the call goes on (a longer prefix can carve out of a block) */
	FG_DEST_BLOCK = 2, /* the INVITE is dropped */
	FG_DEST_LIMIT = 3, /* calls per minute per source and in total */
};
/* In fg_destination_rule.action beside the action: calls to the prefix count
 * as high-risk for the fraud thresholds. */
#define FG_DEST_HIGH_RISK 0x100
#define FG_DEST_ACTION_MASK 0xff
/* A source's tier: what the policy knows of it (lib/tiers.h). */
#define FG_TIER_UNVERIFIED 0
#define FG_TIER_VERIFIED 1
#define FG_TIER_ALLOWED 2
/* The rule sets: one per tier (FG_TIER_*) in each of two banks; the agent
 * fills the bank not in force and switches settings.destination_bank. */
#define FG_DEST_SET(bank, tier) ((bank) << 2 | (tier))
/* fg_destinations key (LPM trie): the set, then the number's digits, four
 * bits each, the first in the high half of digits[0]. */
struct fg_destination_key {
	__u32 prefixlen; /* bits: 8 for the set, 4 per digit */
	__u8 set;	 /* FG_DEST_SET */
	__u8 digits[FG_NUMBER_DIGITS / 2];
	__u8 pad[3];
};
struct fg_destination_rule {
	__u32 action;		/* enum fg_destination_action */
	__u32 id;		/* FG_DEST_LIMIT: its buckets' index (< FG_MAX_DESTINATION_IDS) */
	__u64 interval;		/* per source: ticks per call; 0: no per-source limit */
	__u64 tau;		/* per source: burst tolerance in ticks */
	__u64 total_interval;	/* over all sources: ticks per call; 0: none */
	__u64 total_tau;
	__u32 per_minute;	/* as configured (display only) */
	__u32 total_per_minute; /* as configured (display only) */
};
/* fg_destination_outcomes[outcome], per CPU: what the rules made of the INVITEs
 * they judged (the verdicts' reasons are in the counters; these say why). A
 * retransmission given its first copy's verdict is not counted again. */
enum fg_destination_outcome {
	FG_DEST_OUT_NOT_A_NUMBER = 0, /* the user part is not a number (or a local one): no rule applies */
	FG_DEST_OUT_UNREADABLE = 1,   /* the user part did not end within the bytes read: dropped */
	FG_DEST_OUT_NO_RULE = 2,      /* a number no rule covers: the call goes on */
	FG_DEST_OUT_ALLOWED = 3,      /* an allow rule */
	FG_DEST_OUT_BLOCKED = 4,      /* a block rule */
	FG_DEST_OUT_LIMIT_PASSED = 5, /* a limited rule with room (a retransmission included) */
	FG_DEST_OUT_LIMITED = 6,      /* a limited rule without room */
	FG_DEST_OUT_FRAUD = 7,	      /* refused by a fraud block or threshold */
	FG_DEST_OUT_CONCURRENT = 8,   /* refused: its source has as many calls in progress as it may */
	FG_DEST_OUT_UNTRACKED = 9,    /* let in, not counted: the table of calls in progress was full */
	FG_DEST_OUT_CALLER_ID_FLAGGED = 10, /* a caller number its source may not present, let in (flag) */
	FG_DEST_OUT_CALLER_ID_REFUSED = 11, /* the same, refused (enforce) */
	FG_DEST_OUT_MAX = 12,
};

/* fg_destination_sources key: a source's bucket for one limited rule. */
struct fg_destination_source_key {
	struct fg_addr addr;
	__u32 id;
};
/* fg_calls[source, Call-ID hash]: an INVITE judged lately, so that its
 * retransmissions get its verdict without being charged again. LRU. */
struct fg_call_key {
	struct fg_addr addr;
	__u32 callid;
};
struct fg_call {
	__u64 until_ns;	 /* CLOCK_MONOTONIC: the memory ends */
	__u64 digits;	 /* the number it dialled (fg_destination_key.digits): a copy must dial the same */
	__u32 reason;	 /* enum fg_reason the first copy got from the rules */
	__u32 prefixlen; /* and its length (fg_destination_key.prefixlen) */
	__u32 cseq;	 /* its CSeq number: a retransmission has the same */
	__u32 copies;	 /* retransmissions given its verdict so far (at most FG_CALL_COPIES) */
};
/* A UDP INVITE is resent at most 6 times (RFC 3261 timer A doubling from
 * 500 ms until timer B, 32 s): more copies than this are new calls. */
#define FG_CALL_COPIES 7
/* How long a call let in is remembered in fg_dialogs (its re-INVITEs pass a
 * fraud block): calls longer than this lose it. */
#define FG_DIALOG_MEMORY_NS (12ULL * 3600 * 1000000000ULL)
/* A fraud threshold's per-source bucket in fg_destination_sources: id
 * FG_DEST_FRAUD_ID | FG_FRAUD_* (ids no rule has). */
#define FG_DEST_FRAUD_ID 0x40000000U
/* In a fg_destination_source_key id: the bucket of packets that claim the
 * address from another hop distance (forgeries are charged apart). */
#define FG_DEST_CLAIMED 0x80000000U
/* fg_fraud_blocks[source]: blocked for new calls (written by XDP; an LRU
 * whose ended entries stay until evicted or `floodgate calls unblock`). */
struct fg_fraud_block {
	__u64 until_ns; /* CLOCK_MONOTONIC */
	__u32 kind;	/* FG_FRAUD_* */
	__u32 per_minute; /* the threshold crossed: calls a minute (FG_FRAUD_CONCURRENT: calls in progress) */
};
/* fg_dialogs[source, Call-ID hash] (key struct fg_call_key, value struct
 * fg_call: until when, and the number): a new call let in; its in-dialog
 * INVITEs (re-INVITEs) pass a fraud block. */

/*
 * Calls in progress (lib/calls.h). fg_active_calls[source, Call-ID hash,
 * claimed]: a new call let in, until it ends (its INVITE answered >= 300 or
 * cancelled while ringing, a BYE either way, or no answer within
 * ring_seconds, no 2xx within call_seconds). Its value (with a bpf_timer) is
 * the program's own. fg_callers[source, claimed]: its calls.
 */
struct fg_active_call_key {
	struct fg_addr addr;
	__u64 callid;  /* the Call-ID's hash (fg_scan.callid) */
	__u32 claimed; /* 1: let in from another hop distance than the address's pin */
	__u32 pad;
};
struct fg_caller_key {
	struct fg_addr addr;
	__u32 claimed; /* as in fg_active_call_key: forgers' calls are counted apart */
};
struct fg_caller {
	__u32 calls;	    /* in progress: ringing or answered */
	__u32 up;	    /* of those, answered */
	__u32 generation;   /* random, made with the entry: a call counted in an evicted entry is not taken off this one */
	__u32 window_s;	    /* CLOCK_MONOTONIC second the minute of window_calls began */
	__u32 window_calls; /* new calls let in during that minute */
	__u32 pad;
};

/*
 * Caller ID (lib/callerid.h): fg_caller_sources (LPM trie, key struct
 * fg_cidr_key) maps a source prefix to its ranges' id; fg_caller_ranges (LPM
 * trie) holds the numbers each id may present in From and
 * P-Asserted-Identity, in E.164 digits as fg_destination_key has them.
 */
enum fg_caller_id_mode {
	FG_CALLER_ID_OFF = 0,
	FG_CALLER_ID_FLAG = 1,	  /* counted and told, let in */
	FG_CALLER_ID_ENFORCE = 2, /* refused */
};
struct fg_caller_range_key {
	__u32 prefixlen; /* bits: 32 for the id, 4 per digit */
	__u32 id;	 /* big-endian: the first bits of the key */
	__u8 digits[FG_NUMBER_DIGITS / 2];
};

/* fg_scratch[0], per CPU: room to copy the start of a SIP message. */
struct fg_scratch {
	__u8 buf[FG_SIP_SCAN_BYTES];
	struct fg_signature_key key;
};

/*
 * A slot of the per-CPU drop cache: a source whose packets are being dropped,
 * and the jiffy until which they can be dropped without the shared lookups.
 * Written by XDP; read by the agent only to add the pending drops to `top`.
 *
 * Slot i is fg_drop_cache[i / FG_DROP_CACHE_GROUP], the
 * (i % FG_DROP_CACHE_GROUP)th of the FG_DROP_CACHE_GROUP slots in that entry's
 * value. A per-CPU array keeps a pointer per entry, which a lookup loads
 * before it gets to the value: with a slot an entry, 4,096 pointers (32 KiB)
 * and a random source's slot two dependent misses; with eight entries the
 * pointers are 64 bytes (one or two cache lines) that stay in cache. (32 KiB
 * is the most a per-CPU value may hold.)
 */
struct fg_drop_slot {
	struct fg_source_key key;
	__u32 generation;    /* settings.policy_generation when the decision began */
	__u64 until_jiffies; /* drop while jiffies < this; 0 = empty slot */
	__u64 pending;	     /* drops (and packets) not yet added to fg_sources */
	__u32 reason;	     /* enum fg_reason of the cached drop */
	/* A source-keyed slot (FG_SLOT_SOURCE): the class whose entry in
	 * fg_sources gets its pending drops; the filling frame's, until a flush
	 * of FG_SOURCE_SEARCH_PENDING or more finds the source has no entry for
	 * it but has one for another class (fg_flush_source). */
	__u32 source_class;
	__u64 reserved[2];   /* keeps a slot one cache line */
};

/* One class's packets and bytes by reason. The array has a power-of-two size
 * so that a masked reason always indexes within it; a reason's packets and
 * bytes sit side by side, so counting a packet writes one cache line, not two
 * (under a flood the kernel's own work between two packets evicts them). */
#define FG_REASON_SLOTS 32
struct fg_reason_counters {
	__u64 packets;
	__u64 bytes;
};
struct fg_class_counters {
	struct fg_reason_counters reasons[FG_REASON_SLOTS];
};

/*
 * fg_cpu[0], per CPU: every class's counters (written by XDP, summed over CPUs
 * by the agent and the CLI) and what this CPU's fast path needs to know. One
 * entry, so XDP finds it with one lookup at the start of a packet, before the
 * packet's class is known, rather than one per class at the end.
 */
struct fg_cpu_state {
	__u64 prefix_until_jiffies; /* some prefix slot may drop until this jiffy: check them */
	__u64 spared_event_ns;	    /* when this CPU last sent a spared event (FG_NOISY_EVENT_NS) */
	__u64 spoofed_event_ns;	    /* and a spoofed one */
	__u64 source_until_jiffies; /* some source-keyed slot (FG_SLOT_SOURCE) may drop until this jiffy, */
	__u32 source_generation;    /* if the policy generation is still this one (the last fill's) */
	__u32 held_generation;	    /* held_network's: its slot's policy generation */
	__u64 wide_until_jiffies;   /* some wider network's slot (FG_CLASS_MAX + 1) may drop until this jiffy */
	__u64 held_until_jiffies;   /* held_network's slot's jiffy (lib/drop_cache.h, fg_held_aggregate) */
	__u32 held_source_pending;  /* drops of the held source (below) not yet in its slot's pending, */
	__u32 held_source_reason;   /* and its slot's reason */
	struct fg_addr held_network; /* the aggregate whose slot last dropped a packet on this CPU, masked, */
	struct fg_addr held_mask;    /* and its prefix length's mask */
	struct fg_addr held_source;  /* the source whose source-keyed slot last dropped a frame on this CPU, */
	__u64 held_source_until;     /* its slot's jiffy (0: the copy has ended; its drops may still be pending), */
	__u32 held_source_generation; /* its slot's policy generation */
	__u32 held_source_slot;	     /* and its slot's index (lib/drop_cache.h, fg_held_source) */
	struct fg_class_counters counters[FG_COUNTER_ROWS];
};

/* fg_cpu's value is the state, then the drop cache's tags: a __u16 for each of
 * the FG_DROP_CACHE_SLOTS slots, by slot (lib/drop_cache.h). In the value the
 * fast path has already looked up, a cached drop finds them without a lookup
 * of its own. (BPF declares the whole value, struct fg_cpu_value in
 * lib/state.h; Swift reads the state and the tags at these offsets.) */
enum {
	FG_CPU_TAGS_OFFSET = sizeof(struct fg_cpu_state),
	FG_CPU_VALUE_SIZE = FG_CPU_TAGS_OFFSET + 2 * FG_DROP_CACHE_SLOTS,
};

_Static_assert(sizeof(struct fg_settings) == 264, "fg_settings layout");
_Static_assert(sizeof(struct fg_caller_key) == 20, "fg_caller_key layout");
_Static_assert(sizeof(struct fg_caller) == 24, "fg_caller layout");
_Static_assert(sizeof(struct fg_active_call_key) == 32, "fg_active_call_key layout");
_Static_assert(sizeof(struct fg_caller_range_key) == 16, "fg_caller_range_key layout");
_Static_assert(sizeof(struct fg_dial_prefix) == 8, "fg_dial_prefix layout");
_Static_assert(sizeof(struct fg_destination_key) == 16, "fg_destination_key layout");
_Static_assert(sizeof(struct fg_destination_rule) == 48, "fg_destination_rule layout");
_Static_assert(sizeof(struct fg_destination_source_key) == 20, "fg_destination_source_key layout");
_Static_assert(sizeof(struct fg_call_key) == 20, "fg_call_key layout");
_Static_assert(sizeof(struct fg_call) == 32, "fg_call layout");
_Static_assert(sizeof(struct fg_fraud_block) == 16, "fg_fraud_block layout");
_Static_assert(sizeof(struct fg_pin) == 4, "fg_pin layout");
_Static_assert(sizeof(struct fg_trust) == 24, "fg_trust layout");
_Static_assert(sizeof(struct fg_txn_key) == 32, "fg_txn_key layout");
_Static_assert(sizeof(struct fg_txn) == 16, "fg_txn layout");
_Static_assert(sizeof(struct fg_fragment_key) == 24, "fg_fragment_key layout");
_Static_assert(sizeof(struct fg_challenge_key) == 24, "fg_challenge_key layout");
_Static_assert(sizeof(struct fg_stream_key) == 36, "fg_stream_key layout");
_Static_assert(sizeof(struct fg_stream) == 32, "fg_stream layout");
_Static_assert(sizeof(struct fg_allow_entry) == 40, "fg_allow_entry layout");
_Static_assert(sizeof(struct fg_auth_state) == 24, "fg_auth_state layout");
_Static_assert(sizeof(struct fg_offence) == 16, "fg_offence layout");
_Static_assert(sizeof(struct fg_event) == 40, "fg_event layout");
_Static_assert(sizeof(struct fg_limit) == 24, "fg_limit layout");
_Static_assert(sizeof(struct fg_global_bucket) == 64, "fg_global_bucket layout");
_Static_assert(sizeof(struct fg_addr) == 16, "fg_addr layout");
_Static_assert(sizeof(struct fg_source_key) == 20, "fg_source_key layout");
_Static_assert(sizeof(struct fg_source_state) == 32, "fg_source_state layout");
_Static_assert(sizeof(struct fg_cidr_key) == 20, "fg_cidr_key layout");
_Static_assert(sizeof(struct fg_ban) == 16, "fg_ban layout");
_Static_assert(sizeof(struct fg_signature_key) == 36, "fg_signature_key layout");
_Static_assert(sizeof(struct fg_drop_slot) == 64, "fg_drop_slot layout");
_Static_assert(FG_DROP_CACHE_GROUP * sizeof(struct fg_drop_slot) <= 32768, "a drop-cache entry fits a per-CPU value");
_Static_assert(FG_DROP_CACHE_GROUPS * FG_DROP_CACHE_GROUP == FG_DROP_CACHE_SLOTS && (FG_DROP_CACHE_GROUP & (FG_DROP_CACHE_GROUP - 1)) == 0,
	       "drop-cache groups");
_Static_assert(sizeof(struct fg_cpu_state) == 128 + FG_COUNTER_ROWS * sizeof(struct fg_class_counters),
	       "fg_cpu_state layout");
_Static_assert((FG_DROP_CACHE_SLOTS & (FG_DROP_CACHE_SLOTS - 1)) == 0, "slots: a power of two");
_Static_assert(1u << FG_DROP_CACHE_SLOTS_LOG == FG_DROP_CACHE_SLOTS && FG_DROP_CACHE_SLOTS_LOG <= 16,
	       "slots: their log, with 16 bits of tag below the index");
_Static_assert(FG_REASON_MAX <= FG_REASON_SLOTS, "a counter slot per reason");
_Static_assert(sizeof(struct fg_class_counters) == 16 * FG_REASON_SLOTS, "fg_class_counters layout");

#ifndef __bpf__
/* Names used by the CLI, JSON and metrics; userspace only. */
static inline const char *fg_class_name(__u32 c)
{
	switch (c) {
	case FG_CLASS_INVITE: return "invite";
	case FG_CLASS_REGISTER: return "register";
	case FG_CLASS_OPTIONS: return "options";
	case FG_CLASS_OTHER_REQUEST: return "other-request";
	case FG_CLASS_IN_DIALOG: return "in-dialog";
	case FG_CLASS_RESPONSE: return "response";
	case FG_CLASS_SIP_OTHER: return "sip-other";
	case FG_CLASS_SIP_SYN: return "sip-syn";
	case FG_CLASS_SIP_STREAM: return "sip-stream";
	case FG_CLASS_KEEPALIVE: return "keepalive";
	case FG_CLASS_FRAGMENT: return "fragment";
	case FG_CLASS_RTP: return "rtp";
	case FG_CLASS_ICMP: return "icmp";
	case FG_CLASS_OTHER: return "other";
	case FG_COUNTER_UNPARSED: return "unparsed";
	default: return (const char *)0;
	}
}

static inline const char *fg_reason_name(__u32 r)
{
	switch (r) {
	case FG_REASON_PASSED: return "passed";
	case FG_REASON_PASSED_ALLOW: return "passed-allow";
	case FG_REASON_DROPPED_RATE: return "dropped-rate";
	case FG_REASON_DROPPED_PREFIX: return "dropped-prefix";
	case FG_REASON_DROPPED_NEW_SOURCE: return "dropped-new-source";
	case FG_REASON_DROPPED_SHED: return "dropped-shed";
	case FG_REASON_DROPPED_DENY: return "dropped-deny";
	case FG_REASON_DROPPED_BAN: return "dropped-ban";
	case FG_REASON_DROPPED_SCANNER: return "dropped-scanner";
	case FG_REASON_DROPPED_MALFORMED: return "dropped-malformed";
	case FG_REASON_PASSED_MALFORMED: return "passed-malformed";
	case FG_REASON_DROPPED_BLOCKED: return "dropped-blocked";
	case FG_REASON_PASSED_UNTRACKED: return "passed-untracked";
	case FG_REASON_DROPPED_SPOOFED: return "dropped-spoofed";
	case FG_REASON_DROPPED_ALLOW_LIMIT: return "dropped-allow-limit";
	case FG_REASON_DROPPED_OVERSIZE: return "dropped-oversize";
	case FG_REASON_DROPPED_DESTINATION: return "dropped-destination";
	case FG_REASON_DROPPED_DESTINATION_LIMIT: return "dropped-destination-limit";
	case FG_REASON_DROPPED_FRAUD: return "dropped-fraud";
	case FG_REASON_DROPPED_CONCURRENT: return "dropped-concurrent";
	case FG_REASON_DROPPED_CALLER_ID: return "dropped-caller-id";
	case FG_REASON_DROPPED_UNPROVEN: return "dropped-unproven";
	default: return (const char *)0;
	}
}

static inline const char *fg_destination_outcome_name(__u32 o)
{
	switch (o) {
	case FG_DEST_OUT_NOT_A_NUMBER: return "not-a-number";
	case FG_DEST_OUT_UNREADABLE: return "unreadable";
	case FG_DEST_OUT_NO_RULE: return "no-rule";
	case FG_DEST_OUT_ALLOWED: return "allowed";
	case FG_DEST_OUT_BLOCKED: return "blocked";
	case FG_DEST_OUT_LIMIT_PASSED: return "limit-passed";
	case FG_DEST_OUT_LIMITED: return "limited";
	case FG_DEST_OUT_FRAUD: return "fraud";
	case FG_DEST_OUT_CONCURRENT: return "concurrent";
	case FG_DEST_OUT_UNTRACKED: return "untracked";
	case FG_DEST_OUT_CALLER_ID_FLAGGED: return "caller-id-flagged";
	case FG_DEST_OUT_CALLER_ID_REFUSED: return "caller-id-refused";
	default: return (const char *)0;
	}
}

static inline const char *fg_inside_count_name(__u32 i)
{
	switch (i) {
	case FG_INSIDE_ANSWERS: return "answers";
	case FG_INSIDE_CHALLENGES: return "challenges";
	case FG_INSIDE_AUTH_FAILURES: return "auth-failures";
	case FG_INSIDE_AUTH_NOT_COUNTED: return "auth-failures-not-counted";
	case FG_INSIDE_VERIFIED: return "verified";
	case FG_INSIDE_SERVER_BYES: return "server-byes";
	case FG_INSIDE_AUTH_UNPROVEN: return "auth-failures-unproven";
	case FG_INSIDE_AUTH_UNREADABLE: return "auth-failures-unreadable";
	case FG_INSIDE_TCP_UNREAD: return "tcp-segments-unread";
	case FG_INSIDE_TCP_STREAMS_LOST: return "tcp-streams-lost";
	default: return (const char *)0;
	}
}
#endif

#endif /* FLOODGATE_H */
