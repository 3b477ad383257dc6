/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Where the SIP server's messages start in the TCP streams it sends on
 * (floodgate_inside).
 *
 * A TCP segment may start anywhere in its stream. Someone with an account
 * can have the server relay to a phone connected over TCP a MESSAGE (or an
 * INVITE with a body) padded so that one of the relay's segments starts with
 * a made-up `SIP/2.0 401` naming REGISTER, with a nonce of their choosing.
 * Read as an answer, it would note that nonce as the registrar's, and
 * requests forged in the phone's name answering it would fail as proven;
 * one naming a transaction a forged segment had noted would count as a
 * failure. So a server segment is read only where a message of the stream
 * starts, as the phone's own parser finds it: from the stream's first byte,
 * each message's header block and Content-Length (RFC 3261 18.3) give where
 * the next one starts.
 *
 * - The server's SYN or SYN-ACK gives the stream's first byte
 *   (fg_stream_opens). A forged SYN makes the server send one, so that LRU is
 *   apart: it churns, not the streams followed. The first data segment, at
 *   that byte, which only an established connection carries, moves the
 *   stream to fg_streams.
 * - A segment that holds the next message's first byte (at its start, or
 *   past the end of the last message it carries on: the bytes at a sequence
 *   number never change) is framed from there: CR, LF and blanks before a
 *   start line (keep-alives), the header block to its blank line, and the
 *   body its one Content-Length gives; up to FG_STREAM_FRAMES of them. The
 *   first message is read as an answer if its header block ends in the
 *   segment. A segment wholly before that
 *   byte (the rest of a body, a retransmission) is not read, nor one after it
 *   (a gap: counted unread).
 * - A stream whose next start can't be found is lost, and nothing more on it
 *   is read: a header block that goes on past its segment or past the walk's
 *   2,048 bytes, no Content-Length or two, one folded or above 2^24, more
 *   frames in a segment than FG_STREAM_FRAMES.
 * - Nothing is read on a stream the filter did not see open: one opened
 *   before the inside program was attached, or whose entry an LRU pushed out.
 *   The server's FIN or RST ends the stream's entry.
 *
 * What is left (the README's threat model): a TCP phone is verified only on a
 * connection opened while the filter watched; anyone who can have the server
 * send a phone a message with a header block past a segment can lose its
 * stream, after which nothing more on that connection is read; of messages
 * coalesced in a segment only the first is read as an answer.
 */
#ifndef FG_LIB_STREAM_H
#define FG_LIB_STREAM_H

#include <linux/bpf.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "../floodgate.h"
#include "scanner.h"
#include "trust.h"

/* Frames one segment may hold (each a message with the keep-alives before
 * it, or keep-alives after the last message): more, and the stream is lost. */
#define FG_STREAM_FRAMES 5
/* A Content-Length above this is not a SIP message's: the stream is lost. */
#define FG_STREAM_MAX_BODY (1U << 24)

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FG_MAX_STREAMS);
	__type(key, struct fg_stream_key);
	__type(value, __u32);
} fg_stream_opens SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FG_MAX_STREAMS);
	__type(key, struct fg_stream_key);
	__type(value, struct fg_stream);
} fg_streams SEC(".maps");

/* Where the frame walk is (struct fg_frame's state). */
enum fg_frame_state {
	FG_FRAME_LEAD,	     /* CR, LF, SP or HT before the start line */
	FG_FRAME_LINE,	     /* in a line: on to its LF */
	FG_FRAME_LINE_START, /* at a header line's first byte */
	FG_FRAME_NAME_END,   /* Content-Length's name read: blanks, then its colon */
	FG_FRAME_VALUE,	     /* its colon read: blanks, then digits */
	FG_FRAME_DIGITS,     /* in its digits */
	FG_FRAME_AFTER,	     /* past them: blanks, then the line's end */
	FG_FRAME_FAILED,     /* the message's length can't be told */
};
#define FG_FRAME_LENGTH 1   /* a Content-Length was read */
#define FG_FRAME_LAST_CL 2  /* the last header line read was it (a fold after it is refused) */

/* Does a line end at byte `at` (`b`) of the copy's `len`: an LF, or a CR
 * followed by one? A CR alone is no line end to every parser. */
static __always_inline int fg_frame_line_end(const struct fg_scratch *s, __u8 b, __u32 at, __u32 len)
{
	return b == '\n' || (b == '\r' && at + 1 < len && s->buf[(at + 1) & FG_SCAN_MASK] == '\n');
}

/* One step of the frame walk over the copy in this CPU's fg_scratch
 * (struct fg_walk's frame): returns 1 when it ends (end set: the header
 * block's length, its blank line included; or FG_FRAME_FAILED). */
static __always_inline int fg_frame_one(struct fg_walk *w)
{
	struct fg_frame *f = &w->frame;
	const struct fg_scratch *s = &w->scratch;
	__u32 at = f->at, len = f->len, k;
	__u64 lw;
	__u8 b;

	if (at >= len || len > FG_SIP_SCAN_BYTES)
		return 1;
	b = s->buf[at & FG_SCAN_MASK];
	switch (f->state) {
	case FG_FRAME_LEAD:
		if (fg_is_lead_byte(b)) {
			f->at = at + 1;
			return 0;
		}
		f->start = at;
		f->state = FG_FRAME_LINE;
		return 0;
	case FG_FRAME_LINE:
		k = fg_first_lf(fg_word_at(s, at));
		if (k == 8) {
			f->at = at + 8;
			return 0;
		}
		/* An LF past the copied bytes is an earlier message's. */
		f->at = at + k < len ? at + k + 1 : len;
		f->state = FG_FRAME_LINE_START;
		return 0;
	case FG_FRAME_LINE_START:
		if (fg_frame_line_end(s, b, at, len)) {
			f->end = at + (b == '\r' ? 2 : 1);
			return 1;
		}
		if (b == '\r' || (fg_is_blank(b) && (f->found & FG_FRAME_LAST_CL))) {
			f->state = FG_FRAME_FAILED;
			return 1;
		}
		f->found &= ~FG_FRAME_LAST_CL;
		f->state = FG_FRAME_LINE;
		if (fg_is_blank(b))
			return 0;
		lw = fg_lower8(fg_word_at(s, at));
		if (len - at < 8)
			lw &= fg_low_bytes(len - at);
		if (lw == FG_W8("content-") && len - at >= 14 &&
		    (fg_lower8(fg_word_at(s, at + 8)) & fg_low_bytes(6)) == FG_W8("length\0\0")) {
			f->at = at + 14;
			f->state = FG_FRAME_NAME_END;
		} else if ((__u8)lw == 'l') {
			f->at = at + 1;
			f->state = FG_FRAME_NAME_END;
		}
		return 0;
	case FG_FRAME_NAME_END:
		if (fg_is_blank(b)) {
			f->at = at + 1;
		} else if (b == ':') {
			if (f->found & FG_FRAME_LENGTH) {
				f->state = FG_FRAME_FAILED;
				return 1;
			}
			f->at = at + 1;
			f->state = FG_FRAME_VALUE;
		} else {
			/* Another header whose name starts alike. */
			f->state = FG_FRAME_LINE;
		}
		return 0;
	case FG_FRAME_VALUE:
		if (fg_is_blank(b)) {
			f->at = at + 1;
			return 0;
		}
		if (b < '0' || b > '9') {
			f->state = FG_FRAME_FAILED;
			return 1;
		}
		f->state = FG_FRAME_DIGITS;
		return 0;
	case FG_FRAME_DIGITS:
		if (b >= '0' && b <= '9') {
			f->length = f->length * 10 + (b - '0');
			if (f->length > FG_STREAM_MAX_BODY) {
				f->state = FG_FRAME_FAILED;
				return 1;
			}
			f->at = at + 1;
			return 0;
		}
		f->state = FG_FRAME_AFTER;
		return 0;
	case FG_FRAME_AFTER:
		if (fg_is_blank(b)) {
			f->at = at + 1;
			return 0;
		}
		if (!fg_frame_line_end(s, b, at, len)) {
			f->state = FG_FRAME_FAILED;
			return 1;
		}
		f->found |= FG_FRAME_LENGTH | FG_FRAME_LAST_CL;
		f->state = FG_FRAME_LINE;
		return 0;
	default:
		return 1;
	}
}

static long fg_frame_step(__u32 i, void *walk)
{
	return fg_frame_one(*(struct fg_walk **)walk);
}

/*
 * The bytes the message at `off` in the frame takes in its stream, counting
 * from `off`: the CR, LF and blanks before it, its header block and its
 * body (which may go on past the `len` bytes of the segment left); `len` if
 * those bytes are all CR, LF and blanks; 0 if that can't be told. Copies
 * into this CPU's fg_scratch, as the answer's walk does: the frame state
 * (fg_frame_lead) outlasts that walk, the copy does not.
 */
__noinline int fg_frame_message(struct xdp_md *ctx, __u32 off, __u32 len)
{
	struct fg_walk *w;
	__u32 zero = 0, copy = len;

	w = bpf_map_lookup_elem(&fg_scratch, &zero);
	if (!w || !len)
		return 0;
	if (copy > FG_SIP_SCAN_BYTES)
		copy = FG_SIP_SCAN_BYTES;
	/* Nothing copied: what is in the buffer is another packet's. */
	w->scan.len = 0;
	asm volatile("" : "+r"(copy));
	if (copy < 1 || copy > FG_SIP_SCAN_BYTES || fg_copy_message(ctx, off, copy, w->scratch.buf))
		return 0;
	__builtin_memset(&w->frame, 0, sizeof(w->frame));
	w->frame.len = copy;
	/* Each step takes a byte or a word, or changes state: twice the bytes
	 * bound it. */
	bpf_loop(2 * FG_SIP_SCAN_BYTES + 2, fg_frame_step, &w, 0);
	if (w->frame.state == FG_FRAME_LEAD && w->frame.at >= copy && copy == len) {
		w->frame.start = len;
		return len;
	}
	if (!w->frame.end || !(w->frame.found & FG_FRAME_LENGTH) || w->frame.state == FG_FRAME_FAILED)
		return 0;
	return w->frame.end + w->frame.length;
}

/* The segment's key: the server's address and port, the peer's. */
static __always_inline void fg_stream_key_of(struct fg_stream_key *key, const struct fg_addr *server,
					     const struct fg_addr *peer, const struct tcphdr *tcp)
{
	key->server = *server;
	key->peer = *peer;
	key->server_port = tcp->source;
	key->peer_port = tcp->dest;
}

/*
 * A TCP segment from the server (`tcp`, sequence number `seq`, `len` bytes of
 * data): notes where a stream starts, or follows it. Returns where in the
 * segment the stream's next message starts, which the caller then reads
 * (fg_stream_read); -1 if it does not hold that byte, or the stream is not
 * followed.
 */
static __always_inline int fg_stream_segment(const struct fg_stream_key *key, const struct tcphdr *tcp, __u32 seq,
					     __u32 len)
{
	struct fg_stream *st, fresh = {};
	__u32 *open, ahead;

	if (tcp->rst) {
		bpf_map_delete_elem(&fg_stream_opens, key);
		bpf_map_delete_elem(&fg_streams, key);
		return -1;
	}
	if (tcp->syn) {
		/* A new connection: its first byte follows the SYN's. */
		fresh.next = seq + 1;
		bpf_map_update_elem(&fg_stream_opens, key, &fresh.next, BPF_ANY);
		bpf_map_delete_elem(&fg_streams, key);
		return -1;
	}
	if (!len) {
		if (tcp->fin)
			bpf_map_delete_elem(&fg_streams, key);
		return -1;
	}
	st = bpf_map_lookup_elem(&fg_streams, key);
	if (!st) {
		open = bpf_map_lookup_elem(&fg_stream_opens, key);
		if (!open || *open != seq) {
			fg_inside_count(FG_INSIDE_TCP_UNREAD);
			return -1;
		}
		/* The stream's first data: only an established connection
		 * carries it. */
		fresh.next = seq;
		fresh.state = FG_STREAM_FOLLOWED;
		if (bpf_map_update_elem(&fg_streams, key, &fresh, BPF_ANY))
			return -1;
		bpf_map_delete_elem(&fg_stream_opens, key);
		return 0;
	}
	if (st->state != FG_STREAM_FOLLOWED) {
		fg_inside_count(FG_INSIDE_TCP_UNREAD);
		return -1;
	}
	/* How far into the segment the next message starts (wrapping). */
	ahead = st->next - seq;
	if (ahead < len)
		return ahead;
	/* Before it (the rest of a body, a retransmission), or after it: a
	 * segment past one the filter has not seen yet. */
	if ((__s32)ahead < 0)
		fg_inside_count(FG_INSIDE_TCP_UNREAD);
	return -1;
}

/* Where the last frame walk on this CPU found its start line, from the
 * bytes it was given (past their CRs, LFs and blanks). */
static __always_inline __u32 fg_frame_lead(void)
{
	__u32 zero = 0;
	struct fg_walk *w = bpf_map_lookup_elem(&fg_scratch, &zero);

	return w ? w->frame.start : 0;
}

/*
 * Reads a segment of a stream followed whose next message starts `at` bytes
 * into its `len` bytes of data (at `payload_off`): frames the messages from
 * there, reads the first as an answer if its header block ends in the
 * segment, and notes where the next message starts, or that the stream is
 * lost. The server's FIN ends the stream's entry.
 */
static __always_inline void fg_stream_read(struct xdp_md *ctx, struct fg_settings *s, const struct fg_addr *dst,
					   const struct fg_stream_key *key, const struct tcphdr *tcp, __u32 seq,
					   __u32 payload_off, __u32 len, __u32 at)
{
	struct fg_stream *st;
	__u32 i, lead, fin = tcp->fin;
	int m;

	if (at >= len)
		return;
	m = fg_frame_message(ctx, payload_off + at, len - at);
	lead = fg_frame_lead();
	/* An answer whose header block goes on in the next segment is not
	 * read: what ends it (stale=true) could lie there. */
	if (m > 0 && lead < len - at)
		fg_inside_answer(ctx, s, dst, payload_off + at + lead, len - at - lead, 0, 0);
	if (m > 0)
		at += m;
#pragma unroll
	for (i = 1; i < FG_STREAM_FRAMES; i++) {
		if (m <= 0 || at >= len)
			break;
		m = fg_frame_message(ctx, payload_off + at, len - at);
		if (m > 0)
			at += m;
	}
	st = bpf_map_lookup_elem(&fg_streams, key);
	if (!st)
		return;
	if (fin) {
		bpf_map_delete_elem(&fg_streams, key);
		return;
	}
	if (m <= 0 || at < len) {
		st->state = FG_STREAM_LOST;
		fg_inside_count(FG_INSIDE_TCP_STREAMS_LOST);
		return;
	}
	st->next = seq + at;
}

#endif /* FG_LIB_STREAM_H */
