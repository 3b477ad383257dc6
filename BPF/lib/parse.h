/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Header parsing and classification: Ethernet, VLAN, IPv4, IPv6, L4. */
#ifndef FG_LIB_PARSE_H
#define FG_LIB_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "../floodgate.h"

#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif
#define FG_IP_MF 0x2000
#define FG_IP_OFFSET 0x1FFF

/* The frame's EtherType, network order, in one load: struct ethhdr is packed,
 * so eth->h_proto is read a byte at a time (two loads, a shift and an OR on
 * every frame). The caller has checked that the header is in the frame. */
static __always_inline __be16 fg_eth_proto(const struct ethhdr *eth)
{
	return *(const __be16 *)((const __u8 *)eth + __builtin_offsetof(struct ethhdr, h_proto));
}

enum fg_parse_status {
	FG_PARSE_OK,
	FG_PARSE_NON_IP,    /* ARP, LLDP, ...: no source address to limit */
	FG_PARSE_MALFORMED, /* truncated or invalid header */
};

struct fg_packet {
	struct fg_addr src;
	__u32 traffic_class;
	__u16 payload_off; /* UDP (or TCP) payload: offset from the frame start */
	__u16 payload_len; /* and length (within the frame and the UDP or IP length: 16 bits) */
	union {
		__u32 frag_id;		 /* a fragment's IP identification */
		__u32 source_generation; /* see source_until: a plain frame's, or a later fragment's
					  * once the policy dropped it (its ID is not read after that) */
	};
	__u8 ttl;	   /* IPv4 TTL or IPv6 hop limit */
	__u8 inspected;	   /* its header block was walked (fg_inspect): the scan in fg_scratch is its */
	__u8 plain;	   /* read by fg_parse_plain_udp4 or 6: fg_source_cache_check looks at such frames */
	__u8 txn_note;	   /* FG_TXN_NOTE | FG_TXN_*: a credentialed request fg_inspect walked, noted if it passes */
	/* The time fg_decide (or fg_decide_spoofed) read for this packet, in
	 * ticks (struct fg_ctx's now), or 0: the steps after it (its content,
	 * the destination rules, the budget) start from it rather than read the
	 * clock again (fg_now: the coarse clock, or the precise one, a read of
	 * which costs about as much here as a whole cached drop). */
	__u64 now_ticks;
	/* One word, cleared with one store for every packet. */
	union {
		__u64 flags;
		struct {
			__u8 icmp_essential; /* ICMPv6 neighbour discovery: never limited */
			__u8 sip_request;    /* a SIP request, or what might be taken for one: its header block is walked */
			__u8 sip_skip;	     /* leading CR/LF/SP/HT bytes before the start line */
			__u8 note;	     /* FG_NOTE_*: what the agent is told with the verdict */
			__u8 tier;	     /* FG_TIER_*, once the policy knows it (lib/tiers.h) */
			__u8 frag_first;     /* a first fragment with more to come */
			__u8 stream;	     /* a TCP segment to a SIP port (not a SYN): more of its message may follow */
			__u8 fragmented;     /* an IPv6 packet with a fragment header (an atomic fragment too) */
		};
	};
	/* A ban or a denial the policy found for a plain frame, or a later
	 * fragment's drop by its prefix's drained bucket: the jiffy until which
	 * its source-keyed slot (its prefix's fragment slot) is to drop (0:
	 * none), and (source_generation) the policy generation it was decided
	 * under; the main program fills the slot (fg_cache_source,
	 * fg_cache_fragments), off the deciding function's stack. */
	__u64 source_until;
};
#define FG_NOTE_SPARED 1  /* a verified or allow-listed source's scanner-signed packet: dropped, not banned */
#define FG_NOTE_SPOOFED 2 /* a verified or allow-listed address at another hop distance */

static __always_inline int fg_is_v4(const struct fg_addr *a)
{
	return a->words[0] == 0 && a->words[1] == 0 && a->words[2] == bpf_htonl(0xffff);
}

/* Keeps the first `prefixlen` bits of the 128-bit address. */
static __always_inline void fg_mask(struct fg_addr *a, __u32 prefixlen)
{
	int w;

#pragma unroll
	for (w = 0; w < 4; w++) {
		__s32 bits = (__s32)prefixlen - 32 * w;

		if (bits <= 0)
			a->words[w] = 0;
		else if (bits < 32)
			a->words[w] &= bpf_htonl(~0U << (32 - bits));
	}
}

/* The prefix length over the 128-bit key of a /v4 or /v6 aggregate. */
static __always_inline __u32 fg_prefix_len(const struct fg_addr *a, __u32 v4, __u32 v6)
{
	return fg_is_v4(a) ? 96 + v4 : v6;
}

/*
 * Source addresses no packet from the outside can really have: IPv4 0/8,
 * 127/8, multicast and limited broadcast; IPv6 unspecified, loopback,
 * multicast and IPv4-mapped (which would share an IPv4 address's buckets,
 * bans and trust).
 */
static __always_inline int fg_bogus_v4_source(__be32 saddr)
{
	__u32 a = bpf_ntohl(saddr);

	return (a >> 24) == 0 || (a >> 24) == 127 || (a >> 28) == 0xe || a == 0xffffffff;
}

static __always_inline int fg_bogus_v6_source(const struct fg_addr *a)
{
	if ((bpf_ntohl(a->words[0]) >> 24) == 0xff)
		return 1;
	if (a->words[0] || a->words[1])
		return 0;
	return a->words[2] == bpf_htonl(0xffff) || (!a->words[2] && (!a->words[3] || a->words[3] == bpf_htonl(1)));
}

/*
 * Eight bytes at `p`, which may not be 8-aligned, in one load (and the same
 * for a store). At an address it cannot prove aligned, clang's BPF backend
 * (which assumes no misaligned access) splits a u64 load or a memcpy into
 * eight byte loads and fourteen shifts and ORs, and a store into eight byte
 * stores. The verifier allows a misaligned access (unless loaded with
 * BPF_F_STRICT_ALIGNMENT, or on an architecture without efficient unaligned
 * access) and checks its bounds as the byte accesses'. The "m" operand tells
 * the compiler which bytes the assembly reads or writes.
 */
static __always_inline __u64 fg_load_word(const void *p)
{
	__u64 word;

	asm("%0 = *(u64 *)(%1 + 0)" : "=r"(word) : "r"(p), "m"(*(const __u8(*)[8])p));
	return word;
}

static __always_inline void fg_store_word(void *p, __u64 word)
{
	asm("*(u64 *)(%1 + 0) = %2" : "=m"(*(__u8(*)[8])p) : "r"(p), "r"(word));
}

/* Eight bytes of text as a little-endian u64 (pad short tokens with \0). */
#define FG_W8(t)                                                                                         \
	((__u64)(t)[0] | (__u64)(t)[1] << 8 | (__u64)(t)[2] << 16 | (__u64)(t)[3] << 24 |                 \
	 (__u64)(t)[4] << 32 | (__u64)(t)[5] << 40 | (__u64)(t)[6] << 48 | (__u64)(t)[7] << 56)
#define FG_LOW(n) ((1ULL << ((n) * 8)) - 1)

/*
 * The class of a SIP message over UDP from its first 16 bytes (zero-filled
 * past the payload): the request method, which RFC 3261 makes case-sensitive
 * and follows by one space, or the status line "SIP/2.0 NNN ".
 */
static __always_inline __u32 fg_sip_class(__u64 w0, __u64 w1)
{
	if ((w0 & FG_LOW(7)) == FG_W8("INVITE \0"))
		return FG_CLASS_INVITE;
	if (w0 == FG_W8("REGISTER") && (w1 & FG_LOW(1)) == ' ')
		return FG_CLASS_REGISTER;
	if (w0 == FG_W8("OPTIONS "))
		return FG_CLASS_OPTIONS;
	if ((w0 & FG_LOW(4)) == FG_W8("ACK \0\0\0\0") || (w0 & FG_LOW(4)) == FG_W8("BYE \0\0\0\0") ||
	    (w0 & FG_LOW(7)) == FG_W8("CANCEL \0"))
		return FG_CLASS_IN_DIALOG;
	if ((w0 == FG_W8("SUBSCRIB") && (w1 & FG_LOW(2)) == FG_W8("E \0\0\0\0\0\0")) ||
	    (w0 & FG_LOW(7)) == FG_W8("NOTIFY \0") || w0 == FG_W8("MESSAGE ") ||
	    (w0 & FG_LOW(5)) == FG_W8("INFO \0\0\0") || (w0 & FG_LOW(7)) == FG_W8("UPDATE \0") ||
	    (w0 & FG_LOW(6)) == FG_W8("PRACK \0\0") || (w0 & FG_LOW(6)) == FG_W8("REFER \0\0") ||
	    w0 == FG_W8("PUBLISH "))
		return FG_CLASS_OTHER_REQUEST;
	if (w0 == FG_W8("SIP/2.0 ")) {
		__u8 c0 = w1, c1 = w1 >> 8, c2 = w1 >> 16, sp = w1 >> 24;

		if (c0 >= '1' && c0 <= '6' && c1 >= '0' && c1 <= '9' && c2 >= '0' && c2 <= '9' && sp == ' ')
			return FG_CLASS_RESPONSE;
	}
	return FG_CLASS_SIP_OTHER;
}

static __always_inline int fg_is_lead_byte(__u8 b)
{
	return b == '\r' || b == '\n' || b == ' ' || b == '\t';
}

/* How many of the first FG_SIP_MAX_LEADING bytes of w are CR, LF, SP or HT. */
static __always_inline __u32 fg_leading_blanks(__u64 w)
{
	__u32 k;

	/* The usual case, a letter first, in one compare. */
	if ((__u8)w > ' ')
		return 0;

#pragma unroll
	for (k = 0; k < FG_SIP_MAX_LEADING; k++) {
		__u8 b = w >> (8 * k);

		if (b != '\r' && b != '\n' && b != ' ' && b != '\t')
			return k;
	}
	return FG_SIP_MAX_LEADING;
}

/* Is the whole of w (its first n bytes) CR and LF? */
static __always_inline int fg_only_crlf(__u64 w, __u32 n)
{
	__u32 k;

#pragma unroll
	for (k = 0; k < 8; k++) {
		__u8 b = w >> (8 * k);

		if (k < n && b != '\r' && b != '\n')
			return 0;
	}
	return 1;
}

/*
 * The class of a SIP message of `len` bytes (within the frame) at `payload`:
 * a datagram's, or (`stream`) a TCP segment's, where bytes that begin no
 * message are the rest of one (or TLS): sip-stream.
 */
static __always_inline void fg_parse_sip(struct xdp_md *ctx, void *payload, __u32 len, void *data_end,
					 struct fg_packet *pkt, int stream)
{
	void *data = (void *)(long)ctx->data;
	__u32 k;
	__u64 w[3] = {};

	pkt->payload_off = payload - data;
	pkt->payload_len = len;
	if (len >= 24 && payload + 24 <= data_end) {
		w[0] = fg_load_word(payload);
		w[1] = fg_load_word(payload + 8);
		/* The third word only matters after leading blanks. */
		if (fg_is_lead_byte((__u8)w[0]))
			w[2] = fg_load_word(payload + 16);
	} else {
		/* A short payload: the verifier needs a bounded, non-zero size. */
		__u32 n = len < 24 ? len : 24;

		asm volatile("" : "+r"(n));
		if (n > 24)
			return;
		if (n && bpf_xdp_load_bytes(ctx, pkt->payload_off, w, n))
			return;
	}
	/* A RFC 5626 keep-alive ("\r\n\r\n" ping, "\r\n" pong). */
	if (len && len <= 8 && fg_only_crlf(w[0], len)) {
		pkt->traffic_class = FG_CLASS_KEEPALIVE;
		return;
	}
	/* Servers skip CRLFs before a request line (RFC 3261 7.5), so the
	 * class is read after them, and after blanks, as a server might. */
	k = fg_leading_blanks(w[0]);
	if (k) {
		w[0] = w[0] >> (8 * k) | w[1] << (64 - 8 * k);
		w[1] = w[1] >> (8 * k) | w[2] << (64 - 8 * k);
	}
	pkt->sip_skip = k;
	pkt->traffic_class = fg_sip_class(w[0], w[1]);
	if (stream && pkt->traffic_class == FG_CLASS_SIP_OTHER)
		pkt->traffic_class = FG_CLASS_SIP_STREAM;
	/* Walked: requests, and datagrams that are neither requests nor
	 * responses as RFC 3261 spells them, but that a lenient server may
	 * still take for one (a lower-case method, five CRLFs in front). */
	pkt->sip_request = pkt->traffic_class <= FG_CLASS_IN_DIALOG || pkt->traffic_class == FG_CLASS_SIP_OTHER;
}

struct vlan_tag {
	__be16 tci;
	__be16 proto;
};

/* The bytes from `payload` to the end of the IP packet at offset `l3_end`
 * (not the frame's padding), within the frame. */
static __always_inline __u32 fg_payload_len(void *data, void *data_end, void *payload, __u32 l3_end)
{
	__u32 off = payload - data, len = 0;

	if (l3_end > off)
		len = l3_end - off;
	if (len > data_end - payload)
		len = data_end - payload;
	return len;
}

static __always_inline int fg_is_sip_port(const struct fg_settings *s, __be16 port)
{
	/* Unused slots are 0 and port 0 is never a SIP port. */
	if (port == 0)
		return 0;
	return port == s->sip_ports[0] || port == s->sip_ports[1] || port == s->sip_ports[2] ||
	       port == s->sip_ports[3];
}

static __always_inline __u32 fg_class_for_port(const struct fg_settings *s, __u8 proto, __be16 dport)
{
	__u16 port = bpf_ntohs(dport);

	/* Refined by the caller into a method, response, SYN or stream class. */
	if (fg_is_sip_port(s, dport))
		return FG_CLASS_SIP_OTHER;
	if (proto == IPPROTO_UDP && port >= s->rtp_port_min && port <= s->rtp_port_max && s->rtp_port_max)
		return FG_CLASS_RTP;
	return FG_CLASS_OTHER;
}

/*
 * The layer-4 header at l4 decides the class. For class purposes only the
 * destination port matters, but a truncated UDP/TCP/ICMP header is malformed:
 * the kernel would drop it too, and we must not guess its class.
 */
static __always_inline int fg_parse_l4(struct xdp_md *ctx, void *l4, void *data_end, __u8 proto, int v6,
				       __u32 l3_end, const struct fg_settings *s, struct fg_packet *pkt)
{
	void *data = (void *)(long)ctx->data;

	switch (proto) {
	case IPPROTO_UDP: {
		struct udphdr *udp = l4;
		__u32 len, avail;

		if ((void *)(udp + 1) > data_end || bpf_ntohs(udp->len) < 8)
			return FG_PARSE_MALFORMED;
		pkt->traffic_class = fg_class_for_port(s, proto, udp->dest);
		if (pkt->traffic_class == FG_CLASS_SIP_OTHER) {
			len = bpf_ntohs(udp->len) - 8;
			avail = data_end - (void *)(udp + 1);
			fg_parse_sip(ctx, udp + 1, len < avail ? len : avail, data_end, pkt, 0);
		}
		return FG_PARSE_OK;
	}
	case IPPROTO_TCP: {
		struct tcphdr *tcp = l4;
		void *payload;
		__u32 len;

		if ((void *)(tcp + 1) > data_end || tcp->doff < 5)
			return FG_PARSE_MALFORMED;
		pkt->traffic_class = fg_class_for_port(s, proto, tcp->dest);
		if (pkt->traffic_class != FG_CLASS_SIP_OTHER)
			return FG_PARSE_OK;
		if (tcp->syn && !tcp->ack) {
			pkt->traffic_class = FG_CLASS_SIP_SYN;
			return FG_PARSE_OK;
		}
		pkt->traffic_class = FG_CLASS_SIP_STREAM;
		pkt->stream = 1;
		/* The segment's payload, up to the IP length (not the frame's padding). */
		payload = l4 + tcp->doff * 4;
		if (payload > data_end)
			return FG_PARSE_MALFORMED;
		len = fg_payload_len(data, data_end, payload, l3_end);
		if (len)
			/* SIP over TCP: a segment that starts a message is read like a datagram. */
			fg_parse_sip(ctx, payload, len, data_end, pkt, 1);
		return FG_PARSE_OK;
	}
	case IPPROTO_ICMP: {
		/* type, code, checksum and 4 bytes of rest-of-header. */
		if (l4 + 8 > data_end)
			return FG_PARSE_MALFORMED;
		pkt->traffic_class = FG_CLASS_ICMP;
		return FG_PARSE_OK;
	}
	case IPPROTO_ICMPV6: {
		__u8 *type = l4;

		if (l4 + 4 > data_end)
			return FG_PARSE_MALFORMED;
		pkt->traffic_class = FG_CLASS_ICMP;
		/* RS, RA, NS, NA, redirect: IPv6 stops working without them. Only
		 * over IPv6 and with hop limit 255, as RFC 4861 has receivers
		 * check (nothing forwarded is neighbour discovery), and never
		 * fragmented: RFC 6980 has hosts drop neighbour discovery that
		 * comes with a fragment header, so such a packet is no reason to
		 * pass by the policy. */
		pkt->icmp_essential = v6 && pkt->ttl == 255 && !pkt->fragmented && *type >= 133 && *type <= 137;
		return FG_PARSE_OK;
	}
	default:
		pkt->traffic_class = FG_CLASS_OTHER;
		return FG_PARSE_OK;
	}
}

/* What the walk of a frame's L2 and L3 headers (fg_walk) finds beside the
 * fg_packet fields it fills (source, TTL, fragment ID and flags). */
struct fg_l3 {
	void *l4;  /* the upper-layer header; NULL for a non-first fragment */
	__u32 end; /* where the IP packet ends, as an offset from the frame's start */
	__u8 proto; /* the upper-layer protocol */
	__u8 v6;
};

static __always_inline int fg_walk_ipv4(void *data, void *l3, void *data_end, struct fg_packet *pkt,
					struct fg_addr *dst, struct fg_l3 *out)
{
	struct iphdr *ip = l3;
	__u32 hlen;

	if ((void *)(ip + 1) > data_end)
		return FG_PARSE_MALFORMED;
	if (ip->version != 4 || ip->ihl < 5)
		return FG_PARSE_MALFORMED;
	hlen = ip->ihl * 4;
	if (l3 + hlen > data_end)
		return FG_PARSE_MALFORMED;

	pkt->src.words[0] = 0;
	pkt->src.words[1] = 0;
	pkt->src.words[2] = bpf_htonl(0x0000ffff);
	pkt->src.words[3] = ip->saddr;
	if (dst) {
		dst->words[0] = 0;
		dst->words[1] = 0;
		dst->words[2] = bpf_htonl(0x0000ffff);
		dst->words[3] = ip->daddr;
	}
	pkt->ttl = ip->ttl;
	pkt->frag_id = bpf_ntohs(ip->id);
	out->v6 = 0;
	out->proto = ip->protocol;
	out->end = (__u32)(l3 - data) + bpf_ntohs(ip->tot_len);
	/* Non-first fragments carry no layer-4 header. */
	if (ip->frag_off & bpf_htons(FG_IP_OFFSET)) {
		out->l4 = NULL;
		return FG_PARSE_OK;
	}
	pkt->frag_first = !!(ip->frag_off & bpf_htons(FG_IP_MF));
	out->l4 = l3 + hlen;
	return FG_PARSE_OK;
}

struct fg_ipv6_opt {
	__u8 nexthdr;
	__u8 hdrlen;
};

struct fg_ipv6_frag {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off; /* offset << 3 | M flag */
	__be32 id;
};

/* Fills pkt's fragment fields from an IPv6 fragment header. Nonzero for a
 * non-first fragment, which carries no upper-layer header (nor is it a first
 * fragment, whatever an earlier fragment header in the chain said). */
static __always_inline int fg_ipv6_frag_fields(struct fg_packet *pkt, const struct fg_ipv6_frag *frag)
{
	pkt->frag_id = bpf_ntohl(frag->id);
	pkt->fragmented = 1;
	if (frag->frag_off & bpf_htons(0xFFF8)) {
		pkt->frag_first = 0;
		return 1;
	}
	pkt->frag_first = !!(frag->frag_off & bpf_htons(1));
	return 0;
}

/* IPv6 extension headers, which fg_ipv6_ext walks past. */
static __always_inline int fg_ipv6_ext_header(__u8 next)
{
	return next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING || next == IPPROTO_DSTOPTS || next == IPPROTO_MH ||
	       next == IPPROTO_AH || next == IPPROTO_FRAGMENT;
}

/* fg_ipv6_ext's answers beside an upper-layer header's offset from the
 * frame's start (its low 16 bits) and protocol (the next 8). The offset is at
 * most FG_EXT_MAX_OFF: the chain starts at most 64 bytes in (62: Ethernet,
 * two VLAN tags, IPv6) and the walk passes at most FG_IPV6_MAX_EXT - 1 headers,
 * each of at most 2,048 bytes, before the upper layer. The caller masks it
 * with FG_EXT_MAX_OFF all the same, for the verifier, which takes a packet
 * pointer's variable offset for a bound only if it and the constant added to
 * it stay within 0xffff. */
#define FG_EXT_MALFORMED (-1)
#define FG_EXT_NO_L4 (1 << 24) /* a non-first fragment: no upper-layer header */
#define FG_EXT_MAX_OFF 0x3fff
_Static_assert(64 + (FG_IPV6_MAX_EXT - 1) * 2048 <= FG_EXT_MAX_OFF, "an upper layer's offset past the mask");

/*
 * The chain of IPv6 extension headers that starts at `off` (at most 64) in the
 * frame with a header of type `next`: up to FG_IPV6_MAX_EXT - 1 of them before
 * the upper layer. Fills pkt's fragment fields from a fragment header. Returns
 * where the upper-layer header (or ESP, or no-next-header) starts and its
 * type, FG_EXT_NO_L4 for a non-first fragment, or FG_EXT_MALFORMED for a
 * header cut by the frame or a longer chain than any real stack sends.
 *
 * A global function, called only for a packet that has such a chain (other
 * than a lone fragment header, which fg_walk_ipv6 reads itself): the
 * verifier checks it once, and what it returns is one unknown number to the
 * caller. Inlined, each way through the chain (up to seven headers, each
 * moving the upper layer's pointer by one of three ranges) reached the
 * layer-4 parse as a state of its own, which the verifier walked again: over
 * a quarter of the main program's count, half the inside program's
 * (Benchmarks/README.md, "The IPv6 extension headers out of line").
 */
__noinline int fg_ipv6_ext(struct xdp_md *ctx, __u32 off, __u32 next, struct fg_packet *pkt)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	void *cur;
	int i;

	if (!pkt || off > 64)
		return FG_EXT_MALFORMED;
	cur = data + off;
	for (i = 0; i < FG_IPV6_MAX_EXT; i++) {
		if (!fg_ipv6_ext_header(next))
			/* Upper-layer header, ESP or no-next-header; past the
			 * frame's end, the layer-4 parse finds it cut. */
			return (next & 0xff) << 16 | (__u32)(cur - data);
		if (next == IPPROTO_FRAGMENT) {
			struct fg_ipv6_frag *frag = cur;

			if ((void *)(frag + 1) > data_end)
				return FG_EXT_MALFORMED;
			if (fg_ipv6_frag_fields(pkt, frag))
				return FG_EXT_NO_L4;
			next = frag->nexthdr;
			cur = frag + 1;
		} else {
			/* Hop-by-hop, routing, destination options, mobility:
			 * 8-byte units past the first; the authentication
			 * header: 4-byte units past the first two. */
			struct fg_ipv6_opt *opt = cur;

			if ((void *)(opt + 1) > data_end)
				return FG_EXT_MALFORMED;
			cur += next == IPPROTO_AH ? (opt->hdrlen + 2) * 4 : (opt->hdrlen + 1) * 8;
			next = opt->nexthdr;
		}
	}
	/* A chain longer than any real stack sends: treat it as malformed. */
	return FG_EXT_MALFORMED;
}

static __always_inline int fg_walk_ipv6(struct xdp_md *ctx, void *data, void *l3, void *data_end,
					struct fg_packet *pkt, struct fg_addr *dst, struct fg_l3 *out)
{
	struct ipv6hdr *ip6 = l3;
	int chain;

	if ((void *)(ip6 + 1) > data_end)
		return FG_PARSE_MALFORMED;
	if (ip6->version != 6)
		return FG_PARSE_MALFORMED;
	__builtin_memcpy(&pkt->src, &ip6->saddr, sizeof(pkt->src));
	if (dst)
		__builtin_memcpy(dst, &ip6->daddr, sizeof(*dst));
	pkt->ttl = ip6->hop_limit;
	out->v6 = 1;
	out->end = (__u32)((void *)(ip6 + 1) - data) + bpf_ntohs(ip6->payload_len);
	out->proto = ip6->nexthdr;
	out->l4 = ip6 + 1;
	if (!fg_ipv6_ext_header(out->proto))
		return FG_PARSE_OK;
	if (out->proto == IPPROTO_FRAGMENT) {
		/* A lone fragment header, the chain of a fragment from most
		 * hosts, read here: a fragment flood's frames spare the call.
		 * A first fragment with more headers after it is walked by
		 * fg_ipv6_ext from the start (which fills the same fields). */
		struct fg_ipv6_frag *frag = (void *)(ip6 + 1);

		if ((void *)(frag + 1) > data_end)
			return FG_PARSE_MALFORMED;
		if (fg_ipv6_frag_fields(pkt, frag)) {
			out->l4 = NULL;
			return FG_PARSE_OK;
		}
		if (!fg_ipv6_ext_header(frag->nexthdr)) {
			out->proto = frag->nexthdr;
			out->l4 = frag + 1;
			return FG_PARSE_OK;
		}
	}
	chain = fg_ipv6_ext(ctx, (void *)(ip6 + 1) - data, out->proto, pkt);
	if (chain < 0)
		return FG_PARSE_MALFORMED;
	if (chain & FG_EXT_NO_L4) {
		out->l4 = NULL;
		return FG_PARSE_OK;
	}
	out->proto = chain >> 16;
	out->l4 = data + (chain & FG_EXT_MAX_OFF);
	return FG_PARSE_OK;
}

/*
 * The header after Ethernet and up to two VLAN tags (802.1Q and 802.1ad, in
 * either order); *proto gets its EtherType. NULL: the frame ends before it.
 */
static __always_inline void *fg_skip_l2(void *data, void *data_end, __be16 *proto)
{
	struct ethhdr *eth = data;
	void *cur;
	int i;

	if ((void *)(eth + 1) > data_end)
		return NULL;
	*proto = fg_eth_proto(eth);
	cur = eth + 1;
#pragma unroll
	for (i = 0; i < 2; i++) {
		struct vlan_tag *tag = cur;

		if (*proto != bpf_htons(ETH_P_8021Q) && *proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(tag + 1) > data_end)
			return NULL;
		*proto = tag->proto;
		cur = tag + 1;
	}
	return cur;
}

/*
 * The walk of a frame's headers that both programs share: Ethernet, up to two
 * VLAN tags, IPv4 (options) or IPv6 (fg_ipv6_ext: its extension headers):
 * fills pkt's source, TTL and fragment fields, `dst` (if given) with the
 * destination, and `out` with where the upper layer is.
 */
static __always_inline int fg_walk(struct xdp_md *ctx, struct fg_packet *pkt, struct fg_addr *dst, struct fg_l3 *out)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__be16 proto = 0;
	void *cur;

	pkt->traffic_class = FG_CLASS_OTHER;
	pkt->payload_off = 0;
	pkt->payload_len = 0;
	pkt->ttl = 0;
	pkt->frag_id = 0;
	pkt->flags = 0; /* tier FG_TIER_UNVERIFIED, no note, ... */
	pkt->inspected = 0;
	pkt->plain = 0;
	cur = fg_skip_l2(data, data_end, &proto);
	if (!cur)
		return FG_PARSE_MALFORMED;
	if (proto == bpf_htons(ETH_P_IP))
		return fg_walk_ipv4(data, cur, data_end, pkt, dst, out);
	if (proto == bpf_htons(ETH_P_IPV6))
		return fg_walk_ipv6(ctx, data, cur, data_end, pkt, dst, out);
	return FG_PARSE_NON_IP; /* a third VLAN tag is beyond what we look into, too */
}

/*
 * The UDP datagram of a plain frame (below), the first 24 bytes of whose
 * payload are within the frame: its class from the destination port and, to
 * a SIP port, from its first 16 bytes. Returns 0 for a datagram that
 * fg_parse_sip must read (shorter than 24 bytes, or blanks first).
 */
static __always_inline int fg_parse_plain_datagram(const struct fg_settings *s, struct fg_packet *pkt, void *data,
						   void *data_end, struct udphdr *udp)
{
	void *payload = udp + 1;
	__u64 w0, w1;
	__u32 len, avail;

	if (payload + 24 > data_end)
		return 0;
	pkt->traffic_class = fg_class_for_port(s, IPPROTO_UDP, udp->dest);
	pkt->payload_off = 0;
	pkt->payload_len = 0;
	pkt->flags = 0;
	pkt->inspected = 0;
	pkt->plain = 1;
	if (pkt->traffic_class == FG_CLASS_SIP_OTHER) {
		w0 = *(__u64 *)payload;
		w1 = *(__u64 *)(payload + 8);
		len = bpf_ntohs(udp->len) - 8;
		avail = data_end - payload;
		if (len < avail)
			avail = len;
		/* Short datagrams (keep-alives among them) and leading blanks: fg_parse_sip. */
		if (avail < 24 || fg_is_lead_byte((__u8)w0))
			return 0;
		pkt->payload_off = payload - data;
		pkt->payload_len = avail;
		pkt->traffic_class = fg_sip_class(w0, w1);
		pkt->sip_request = pkt->traffic_class <= FG_CLASS_IN_DIALOG || pkt->traffic_class == FG_CLASS_SIP_OTHER;
	}
	return 1;
}

/*
 * The frame almost every flood sends, and most SIP: Ethernet without a VLAN
 * tag, IPv4 without options and not a fragment, from a source that is not
 * bogus, UDP, and (to a SIP port) a datagram of 24 bytes or more that starts
 * with a letter. Classified in a few loads and compares, with exactly the
 * result fg_walk, fg_parse_l4 and fg_parse_sip would give; their loops and
 * branches cost a cached drop 9 ns, this 2. Returns 0, having written
 * nothing that fg_walk does not write again, for every other frame.
 */
static __always_inline int fg_parse_plain_udp4(struct xdp_md *ctx, const struct fg_settings *s,
					       struct fg_packet *pkt)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);

	if ((void *)(udp + 1) > data_end || fg_eth_proto(eth) != bpf_htons(ETH_P_IP) || *(__u8 *)ip != 0x45 ||
	    (ip->frag_off & bpf_htons(FG_IP_MF | FG_IP_OFFSET)) || ip->protocol != IPPROTO_UDP ||
	    bpf_ntohs(udp->len) < 8 || fg_bogus_v4_source(ip->saddr) ||
	    !fg_parse_plain_datagram(s, pkt, data, data_end, udp))
		return 0;
	pkt->src.words[0] = 0;
	pkt->src.words[1] = 0;
	pkt->src.words[2] = bpf_htonl(0x0000ffff);
	pkt->src.words[3] = ip->saddr;
	pkt->ttl = ip->ttl;
	pkt->frag_id = bpf_ntohs(ip->id);
	return 1;
}

/*
 * The same for IPv6: Ethernet without a VLAN tag, IPv6 whose next header is
 * UDP (no extension header, so no fragment), from a source that is not bogus.
 * Random IPv6 floods, and the worst case's REGISTERs, are such frames.
 */
static __always_inline int fg_parse_plain_udp6(struct xdp_md *ctx, const struct fg_settings *s,
					       struct fg_packet *pkt)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip6 + 1);

	if ((void *)(udp + 1) > data_end || fg_eth_proto(eth) != bpf_htons(ETH_P_IPV6) || ip6->version != 6 ||
	    ip6->nexthdr != IPPROTO_UDP || bpf_ntohs(udp->len) < 8)
		return 0;
	__builtin_memcpy(&pkt->src, &ip6->saddr, sizeof(pkt->src));
	if (fg_bogus_v6_source(&pkt->src) || !fg_parse_plain_datagram(s, pkt, data, data_end, udp))
		return 0;
	pkt->ttl = ip6->hop_limit;
	pkt->frag_id = 0;
	return 1;
}

/* Classify the frame and extract its source. */
static __always_inline int fg_parse(struct xdp_md *ctx, const struct fg_settings *s, struct fg_packet *pkt)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct fg_l3 l3 = {};
	int status;

	if (fg_parse_plain_udp4(ctx, s, pkt) || fg_parse_plain_udp6(ctx, s, pkt))
		return FG_PARSE_OK;
	status = fg_walk(ctx, pkt, NULL, &l3);

	if (status != FG_PARSE_OK)
		goto out;
	if (!l3.v6) {
		/* No packet from outside comes from these. */
		if (fg_bogus_v4_source(pkt->src.words[3])) {
			status = FG_PARSE_MALFORMED;
			goto out;
		}
		if (!l3.l4) {
			pkt->traffic_class = FG_CLASS_FRAGMENT;
			return FG_PARSE_OK;
		}
		status = fg_parse_l4(ctx, l3.l4, data_end, l3.proto, 0, l3.end, s, pkt);
		goto out;
	}
	if (!l3.l4) {
		pkt->traffic_class = FG_CLASS_FRAGMENT;
		status = fg_bogus_v6_source(&pkt->src) ? FG_PARSE_MALFORMED : FG_PARSE_OK;
		goto out;
	}
	status = fg_parse_l4(ctx, l3.l4, data_end, l3.proto, 1, l3.end, s, pkt);
	/* The unspecified source of duplicate address detection is neighbour
	 * discovery's; every other bogus source is malformed. */
	if (status == FG_PARSE_OK && !pkt->icmp_essential && fg_bogus_v6_source(&pkt->src))
		status = FG_PARSE_MALFORMED;
out:
	/* A malformed packet has no class: whatever was learnt before is void. */
	if (status == FG_PARSE_MALFORMED)
		pkt->traffic_class = FG_CLASS_OTHER;
	return status;
}

#endif /* FG_LIB_PARSE_H */
