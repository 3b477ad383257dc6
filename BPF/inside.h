/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * floodgate_inside: the program for the interface facing the SIP server. It
 * watches the server's answers go out to external sources (over UDP, and TCP:
 * a segment that starts a message of a stream it followed from its start,
 * lib/stream.h) and passes every packet; what the answers verify or count as
 * failures is lib/trust.h's. Included by
 * floodgate.bpf.c: the two programs are one object and share its maps.
 */
#ifndef FG_INSIDE_H
#define FG_INSIDE_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "floodgate.h"
#include "lib/lists.h"
#include "lib/parse.h"
#include "lib/state.h"
#include "lib/tiers.h"
#include "lib/trust.h"
#include "lib/stream.h"
#include "lib/calls.h"

/*
 * Reads the packet: what of it floodgate_inside is to read as the server's
 * (in this CPU's fg_scratch: `inside`, and for a TCP segment `stream_key`),
 * and notes the streams the server opens and ends (fg_stream_segment).
 * Returns FG_INSIDE_READ_*. A global function: floodgate_inside then keeps a
 * frame small enough for the answer's (fg_server_answer), which takes most of
 * the verifier's 512 bytes of stack over its chain of calls.
 */
__noinline int fg_inside_packet(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct fg_settings *s;
	struct fg_packet *pkt;
	struct fg_inside_read *r;
	struct fg_l3 l3 = {};
	struct tcphdr *tcp = NULL;
	struct fg_walk *w;
	__u32 zero = 0, off, len, seq;
	int at;
	__be16 sport;
	void *payload;

	if (!ctx)
		return FG_INSIDE_READ_NONE;
	s = bpf_map_lookup_elem(&fg_settings, &zero);
	if (!s || (!fg_notes_transactions(s) && !s->calls_tracked))
		return FG_INSIDE_READ_NONE;
	w = bpf_map_lookup_elem(&fg_scratch, &zero);
	if (!w)
		return FG_INSIDE_READ_NONE;
	/* The packet's record in the per-CPU scratch, off the stack. */
	pkt = &w->inside_packet;
	r = &w->inside;
	__builtin_memset(&r->dst, 0, sizeof(r->dst));
	/* The same walk as the filter's, IPv6 extension headers included. Of
	 * an answer in fragments only the first is read (lib/trust.h says
	 * what of it), over UDP; an IPv6 atomic fragment not at all. */
	if (fg_walk(ctx, pkt, &r->dst, &l3) != FG_PARSE_OK || !l3.l4 || (pkt->fragmented && !pkt->frag_first))
		return FG_INSIDE_READ_NONE;
	if (l3.proto == IPPROTO_UDP) {
		struct udphdr *udp = l3.l4;

		if ((void *)(udp + 1) > data_end)
			return FG_INSIDE_READ_NONE;
		sport = udp->source;
		payload = udp + 1;
	} else if (l3.proto == IPPROTO_TCP) {
		tcp = l3.l4;
		if (pkt->frag_first || (void *)(tcp + 1) > data_end || tcp->doff < 5)
			return FG_INSIDE_READ_NONE;
		sport = tcp->source;
		payload = l3.l4 + tcp->doff * 4;
	} else {
		return FG_INSIDE_READ_NONE;
	}
	if (payload > data_end || !fg_is_sip_port(s, sport))
		return FG_INSIDE_READ_NONE;
	/* Only the SIP server's answers count. */
	if (s->server_entries && !fg_in_list(&fg_servers, &pkt->src))
		return FG_INSIDE_READ_NONE;
	/* ctx->data read again for the offset: without it, clang stored 32
	 * bits of a packet pointer on the stack during the walk, which the
	 * verifier refuses ("invalid size of register spill"). */
	data = (void *)(long)ctx->data;
	off = payload - data;
	r->off = off;
	if (!tcp) {
		r->len = fg_payload_len(data, data_end, payload, l3.end);
		r->how = FG_ANSWER_UDP | (pkt->frag_first ? FG_ANSWER_PARTIAL : 0);
		return FG_INSIDE_READ_ANSWER;
	}
	/* Over TCP, only from the stream's next byte to read: a message's start,
	 * or where a header block an earlier segment cut goes on (lib/stream.h);
	 * the stream's bytes are the IP packet's (a frame cut short of them
	 * fails to copy). */
	if ((void *)(tcp + 1) > data_end)
		return FG_INSIDE_READ_NONE;
	seq = bpf_ntohl(tcp->seq);
	fg_stream_key_of(&w->stream_key, &pkt->src, &r->dst, tcp);
	len = l3.end > off ? l3.end - off : 0;
	at = fg_stream_segment(&w->stream_key, tcp, seq, len);
	if (at < 0)
		return FG_INSIDE_READ_NONE;
	r->len = len;
	r->at = at;
	r->seq = seq;
	r->fin = tcp->fin;
	return FG_INSIDE_READ_SEGMENT;
}

SEC("xdp")
int floodgate_inside(struct xdp_md *ctx)
{
	struct fg_walk *w;
	__u32 zero = 0;
	int what = fg_inside_packet(ctx);

	if (what == FG_INSIDE_READ_NONE)
		return XDP_PASS;
	w = bpf_map_lookup_elem(&fg_scratch, &zero);
	if (!w)
		return XDP_PASS;
	if (what == FG_INSIDE_READ_ANSWER)
		fg_server_answer(ctx, &w->inside.dst, w->inside.off, w->inside.len, w->inside.how);
	else
		fg_stream_read(ctx, w);
	return XDP_PASS;
}

#endif /* FG_INSIDE_H */
