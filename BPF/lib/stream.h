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
 * - A segment that holds the stream's next byte to read (at its start, or
 *   past the end of the last message it carries on: the bytes at a sequence
 *   number never change) is framed from there: CR, LF and blanks before a
 *   start line (keep-alives), the header block to its blank line, and the
 *   body its one Content-Length gives; in up to FG_STREAM_STEPS steps, each a
 *   message or 2,048 bytes of a header block. Each message whose header block
 *   ends in the segment, within the 2,048 bytes copied from its start (the
 *   keep-alives before it included), is read as an answer. A segment wholly
 *   before that byte (the rest of a body, a retransmission) is not read, nor
 *   one after it (a gap: counted unread).
 * - A header block that goes on past its segment, or past a copy, goes on in
 *   the next: the walk's state where it stopped (its state, flags, the
 *   Content-Length so far and how much of that name a line's start matched)
 *   is kept in the stream's entry, and the walk takes the next bytes from
 *   there: a name cut inside "Content-Length" is matched on a byte at a
 *   time, a CR the bytes ended on waits for its LF. Its message is not read
 *   as an answer: its first lines are not there.
 * - A stream whose next start can't be found is lost, and nothing more on it
 *   is read: no Content-Length or two, one folded or above 2^24, a CR alone,
 *   a header block that goes on past FG_STREAM_MAX_HEADER, more steps in a
 *   segment than FG_STREAM_STEPS.
 * - Nothing is read on a stream the filter did not see open: one opened
 *   before the inside program was attached, or whose entry an LRU pushed out.
 *   The server's FIN or RST ends the stream's entry.
 *
 * What is left (the README's threat model): a TCP phone is verified only on a
 * connection opened while the filter watched; an answer whose header block
 * its segment cuts is not read; a segment of more steps than FG_STREAM_STEPS
 * loses its stream.
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
	/* Where a header line's start needs bytes past the copy's end. */
	FG_FRAME_NAME_PART,	/* a line's start that may be "content-length": its bytes one at a time (matched) */
	FG_FRAME_LINE_START_CR, /* a CR the copy ended on, at a line's start: its LF ends the header block */
	FG_FRAME_AFTER_CR,	/* a CR the copy ended on, past the Content-Length's digits: its LF ends the line */
	FG_FRAME_FAILED,	/* the message's length can't be told */
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
		/* An LF past the copied bytes is stale: the line goes on past them. */
		if (k == 8 || at + k >= len) {
			f->at = at + 8;
			return 0;
		}
		f->at = at + k + 1;
		f->state = FG_FRAME_LINE_START;
		return 0;
	case FG_FRAME_LINE_START:
		if (fg_frame_line_end(s, b, at, len)) {
			f->end = at + (b == '\r' ? 2 : 1);
			return 1;
		}
		/* The copy's last byte: whether an LF follows is the next bytes'. */
		if (b == '\r' && at + 1 == len) {
			f->at = len;
			f->state = FG_FRAME_LINE_START_CR;
			return 0;
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
		} else if (len - at < 14 && (__u8)lw == 'c') {
			/* Cut by the copy's end: matched a byte at a time, on into the next bytes. */
			f->matched = 0;
			f->state = FG_FRAME_NAME_PART;
		}
		return 0;
	case FG_FRAME_NAME_PART:
		if (f->matched >= 14) {
			f->state = FG_FRAME_NAME_END;
			return 0;
		}
		if (fg_lower(b) != (__u8)((f->matched < 8 ? FG_W8("content-") : FG_W8("length\0\0")) >>
					  (8 * (f->matched & 7)))) {
			/* Another header, whose line goes on from this byte. */
			f->state = FG_FRAME_LINE;
			return 0;
		}
		f->matched++;
		f->at = at + 1;
		return 0;
	case FG_FRAME_LINE_START_CR:
		if (b != '\n') {
			f->state = FG_FRAME_FAILED;
			return 1;
		}
		f->end = at + 1;
		return 1;
	case FG_FRAME_AFTER_CR:
		if (b != '\n') {
			f->state = FG_FRAME_FAILED;
			return 1;
		}
		f->found |= FG_FRAME_LENGTH | FG_FRAME_LAST_CL;
		f->state = FG_FRAME_LINE;
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
		if (b == '\r' && at + 1 == len) {
			f->at = len;
			f->state = FG_FRAME_AFTER_CR;
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

/* fg_frame_message's answer when the bytes it was given end inside a
 * header block: the walk's state in fg_scratch's frame goes on in the next. */
#define FG_FRAME_GOES_ON (-1)

/*
 * The bytes the message at `off` in the frame takes in its stream, counting
 * from `off`: the CR, LF and blanks before it, its header block and its
 * body (which may go on past the `len` bytes of the segment left); `len` if
 * those bytes are all CR, LF and blanks; FG_FRAME_GOES_ON if its header
 * block (or the blanks before it) goes on past them or past the 2,048 bytes
 * copied; 0 if it can't be told. `resume`: the bytes go on with a header
 * block whose walk is in this CPU's fg_scratch frame (its state, flags,
 * Content-Length and name matched, which the caller put there), rather than
 * start a message. Copies into fg_scratch, as the answer's walk does: the
 * frame state (its start among them) outlasts that walk, the copy does not.
 */
__noinline int fg_frame_message(struct xdp_md *ctx, __u32 off, __u32 len, __u32 resume)
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
	if (!resume)
		__builtin_memset(&w->frame, 0, sizeof(w->frame));
	w->frame.at = 0;
	w->frame.end = 0;
	w->frame.start = 0;
	w->frame.len = copy;
	/* Each step takes a byte or a word, or changes state: twice the bytes
	 * bound it. */
	bpf_loop(2 * FG_SIP_SCAN_BYTES + 2, fg_frame_step, &w, 0);
	if (w->frame.state == FG_FRAME_LEAD && w->frame.at >= copy && copy == len) {
		w->frame.start = len;
		return len;
	}
	if (w->frame.state == FG_FRAME_FAILED)
		return 0;
	if (!w->frame.end)
		return w->frame.at >= copy ? FG_FRAME_GOES_ON : 0;
	if (!(w->frame.found & FG_FRAME_LENGTH))
		return 0;
	return w->frame.end + w->frame.length;
}

/* The server's message at `off` (`len` bytes of its packet left) to `dst`,
 * read as an answer (lib/trust.h): over UDP (FG_ANSWER_UDP), of a first
 * fragment (FG_ANSWER_PARTIAL), or a TCP stream's message whose header block
 * ends in its segment, within the 2,048 bytes copied from its start. A global
 * function, verified once for every message a segment holds. */
#define FG_ANSWER_UDP 1
#define FG_ANSWER_PARTIAL 2
__noinline int fg_server_answer(struct xdp_md *ctx, const struct fg_addr *dst, __u32 off, __u32 len, __u32 how)
{
	__u32 zero = 0;
	struct fg_settings *s = bpf_map_lookup_elem(&fg_settings, &zero);

	if (!ctx || !dst || !s)
		return 0;
	fg_inside_answer(ctx, s, dst, off, len, how & FG_ANSWER_UDP, (how & FG_ANSWER_PARTIAL) != 0);
	return 0;
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
 * segment the stream's next byte to read is, which the caller then reads
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
	/* How far into the segment the next byte to read is (wrapping). */
	ahead = st->next - seq;
	if (ahead < len)
		return ahead;
	/* Before it (the rest of a body, a retransmission), or after it: a
	 * segment past one the filter has not seen yet. */
	if ((__s32)ahead < 0)
		fg_inside_count(FG_INSIDE_TCP_UNREAD);
	return -1;
}

/*
 * One step of the frame walk over a segment of the stream in this CPU's
 * fg_scratch (stream_key), `left` bytes of which are left from `off`, where
 * the stream's next byte to read is: a message, keep-alives, or up to 2,048
 * bytes of a header block that goes on, whose walk the stream's entry keeps
 * between steps and segments. Returns the bytes it took (a message's may go
 * on past the segment), or 0: the next start can't be told. A message whose
 * header block ends in the segment, within the bytes copied from its start,
 * is to be read as an answer: its bytes from the start line are then in the
 * frame's `answer` and `answer_len` (else answer_len is 0). A global
 * function: inlined in the segment's loop, the verifier's count of
 * floodgate_inside went past its limit; the caller reads the answer, since
 * under this function's frame the answer's would pass the verifier's 512
 * bytes of stack.
 */
__noinline int fg_stream_step(struct xdp_md *ctx, __u32 off, __u32 left)
{
	struct fg_stream *st;
	struct fg_walk *w;
	__u32 zero = 0, resume, copy;
	int m;

	w = bpf_map_lookup_elem(&fg_scratch, &zero);
	if (!ctx || !w || !left)
		return 0;
	w->frame.answer_len = 0;
	st = bpf_map_lookup_elem(&fg_streams, &w->stream_key);
	if (!st)
		return 0;
	resume = st->walk;
	if (resume) {
		w->frame.state = resume - 1;
		w->frame.found = st->found;
		w->frame.length = st->length;
		w->frame.matched = st->matched;
	}
	m = fg_frame_message(ctx, off, left, resume);
	if (m == FG_FRAME_GOES_ON) {
		copy = left < FG_SIP_SCAN_BYTES ? left : FG_SIP_SCAN_BYTES;
		/* Only CRs, LFs and blanks so far: the next byte may start a message. */
		if (w->frame.state == FG_FRAME_LEAD) {
			st->walk = 0;
			return copy;
		}
		st->header = (resume ? st->header : 0) + copy;
		if (st->header > FG_STREAM_MAX_HEADER)
			return 0;
		st->walk = w->frame.state + 1;
		st->found = w->frame.found;
		st->length = w->frame.length;
		st->matched = w->frame.matched;
		return copy;
	}
	if (m <= 0)
		return 0;
	st->walk = 0;
	/* An answer whose header block began in an earlier segment is not read:
	 * its start line and first headers are not here. */
	if (!resume && w->frame.start < left) {
		w->frame.answer = off + w->frame.start;
		w->frame.answer_len = left - w->frame.start;
	}
	return m;
}

/*
 * Reads the segment of a stream followed that fg_inside_packet put in this
 * CPU's fg_scratch `w` (its key, and in `inside` where its data is, where
 * the next byte to read is in it, its sequence number and FIN), step by step
 * (fg_stream_step), reads each message it holds whole as an answer, and
 * notes where the next byte to read is, or that the stream is lost. The
 * server's FIN ends the stream's entry. (fg_stream_segment gives a segment
 * only with its next byte to read in it: `at` is under its length.)
 */
static __always_inline void fg_stream_read(struct xdp_md *ctx, struct fg_walk *w)
{
	struct fg_inside_read *r = &w->inside;
	__u32 i, at = r->at, len = r->len, lost = 0;
	struct fg_stream *st;
	int m;

#pragma unroll
	for (i = 0; i < FG_STREAM_STEPS; i++) {
		if (at >= len)
			break;
		m = fg_stream_step(ctx, r->off + at, len - at);
		if (m <= 0) {
			lost = 1;
			break;
		}
		if (w->frame.answer_len)
			fg_server_answer(ctx, &r->dst, w->frame.answer, w->frame.answer_len, 0);
		at += m;
	}
	st = bpf_map_lookup_elem(&fg_streams, &w->stream_key);
	if (!st)
		return;
	if (r->fin) {
		bpf_map_delete_elem(&fg_streams, &w->stream_key);
		return;
	}
	if (lost || at < len) {
		st->state = FG_STREAM_LOST;
		st->walk = 0;
		fg_inside_count(FG_INSIDE_TCP_STREAMS_LOST);
		return;
	}
	st->next = r->seq + at;
}

#endif /* FG_LIB_STREAM_H */
