/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The walk of a SIP message's header block (up to its blank line, at most
 * FG_SIP_SCAN_BYTES bytes): scanner signatures in the User-Agent and From
 * headers against the prefixes in fg_signatures, credentials, and the
 * Call-ID and CSeq that tie a response to its request (lib/tiers.h).
 *
 * The message is copied into a per-CPU scratch buffer (bpf_xdp_load_bytes also
 * reads multi-buffer frames) and walked with bpf_loop, one byte per step:
 * after each LF, a header named User-Agent, From or its compact form f (any
 * case, blanks allowed around the colon, a value folded onto the next line
 * followed) has its value lower-cased into an LPM key of kind + value, and one
 * trie lookup finds the longest signature it starts with. The start line is
 * never a header; a value must end (CR, LF, or its 31st byte) within the
 * scanned bytes to be looked up. The same walk notes an Authorization or
 * Proxy-Authorization header (credentials), hashes the Call-ID (FNV-1a) and
 * reads the CSeq number and method.
 */
#ifndef FG_LIB_SCANNER_H
#define FG_LIB_SCANNER_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "../floodgate.h"

#define FG_SCAN_MASK (FG_SIP_SCAN_BYTES - 1)
_Static_assert((FG_SIP_SCAN_BYTES & FG_SCAN_MASK) == 0, "scan size: a power of two");

/* Signature prefixes by header kind; written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, FG_MAX_SIGNATURES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fg_signature_key);
	__type(value, __u32);
} fg_signatures SEC(".maps");


/* Where the byte-at-a-time walk is within a line. */
enum fg_scan_state {
	FG_SCAN_LINE_START, /* at the first byte of a header line */
	FG_SCAN_NAME,	    /* inside a header name that may still match */
	FG_SCAN_BLANKS,	    /* blanks between the name and the colon */
	FG_SCAN_COLON,	    /* blanks after the colon (a fold included) */
	FG_SCAN_FOLD,	    /* after an LF that ended an empty value: a fold if SP or HT follows */
	FG_SCAN_VALUE,	    /* reading the value */
	FG_SCAN_SKIP,	    /* rest of an uninteresting line */
};

struct fg_scan {
	__u32 len;    /* bytes copied into the scratch buffer */
	__u32 at;     /* the next byte to look at */
	__u32 state;  /* enum fg_scan_state */
	__u32 kind;   /* FG_SIGNATURE_* or FG_NAME_* of the header being read */
	__u32 pos;    /* bytes of its name matched, or of its value read */
	__u32 found;  /* FG_SCAN_* */
	__u32 callid; /* FNV-1a of the Call-ID value */
	__u32 cseq;   /* the CSeq number */
	__u64 method; /* the CSeq method's first 8 bytes, little-endian, zero-filled */
};

/*
 * Per CPU: the copy of the message being walked and the walk's state. The
 * state lives here rather than on the stack so that the verifier sees it as
 * unknown values and checks one step of the walk, not each combination of
 * states a message could lead it through.
 */
struct fg_walk {
	struct fg_scratch scratch;
	struct fg_scan scan;
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fg_walk);
} fg_scratch SEC(".maps");

#define FG_SCAN_SIGNATURE 1   /* a scanner signature matched */
#define FG_SCAN_CREDENTIALS 2 /* an Authorization or Proxy-Authorization header */
#define FG_SCAN_CALLID 4      /* a Call-ID header was read */
#define FG_SCAN_CSEQ 8	      /* a CSeq header was read */
#define FG_SCAN_AMBIGUOUS 16  /* a second Call-ID or CSeq: the message names no one transaction */
#define FG_SCAN_END 32	      /* the blank line that ends the header block was reached */
#define FG_NAME_AUTHORIZATION 'a'
#define FG_NAME_PROXY_AUTHORIZATION 'p'
#define FG_NAME_CALL_ID 'c'
#define FG_NAME_CALL_ID_COMPACT 'i'
#define FG_NAME_CSEQ 'q'
#define FG_FNV_OFFSET 2166136261U
#define FG_FNV_PRIME 16777619U

static __always_inline int fg_is_credentials(__u32 kind)
{
	return kind == FG_NAME_AUTHORIZATION || kind == FG_NAME_PROXY_AUTHORIZATION;
}

static __always_inline int fg_is_call_id(__u32 kind)
{
	return kind == FG_NAME_CALL_ID || kind == FG_NAME_CALL_ID_COMPACT;
}

static __always_inline __u8 fg_lower(__u8 c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static __always_inline int fg_is_blank(__u8 c)
{
	return c == ' ' || c == '\t';
}

/* The next byte of "user-agent", "from", "authorization",
 * "proxy-authorization", "call-id" or "cseq" after `pos` bytes; 0 = name
 * complete. */
static __always_inline __u8 fg_name_byte(__u32 kind, __u32 pos)
{
	/* "authorization" is "proxy-authorization" from its 7th byte on. */
	if (kind == FG_NAME_PROXY_AUTHORIZATION) {
		switch (pos) {
		case 1: return 'r';
		case 2: return 'o';
		case 3: return 'x';
		case 4: return 'y';
		case 5: return '-';
		case 6: return 'a';
		default:
			if (pos > 18)
				return 0;
			kind = FG_NAME_AUTHORIZATION;
			pos -= 6;
		}
	}
	if (kind == FG_NAME_AUTHORIZATION) {
		switch (pos) {
		case 1: return 'u';
		case 2: return 't';
		case 3: return 'h';
		case 4: return 'o';
		case 5: return 'r';
		case 6: return 'i';
		case 7: return 'z';
		case 8: return 'a';
		case 9: return 't';
		case 10: return 'i';
		case 11: return 'o';
		case 12: return 'n';
		default: return 0;
		}
	}
	if (kind == FG_SIGNATURE_USER_AGENT) {
		switch (pos) {
		case 1: return 's';
		case 2: return 'e';
		case 3: return 'r';
		case 4: return '-';
		case 5: return 'a';
		case 6: return 'g';
		case 7: return 'e';
		case 8: return 'n';
		case 9: return 't';
		default: return 0;
		}
	}
	if (kind == FG_NAME_CALL_ID) {
		switch (pos) {
		case 1: return 'a';
		case 2: return 'l';
		case 3: return 'l';
		case 4: return '-';
		case 5: return 'i';
		case 6: return 'd';
		default: return 0;
		}
	}
	if (kind == FG_NAME_CSEQ) {
		switch (pos) {
		case 2: return 'e';
		case 3: return 'q';
		default: return 0;
		}
	}
	if (kind == FG_NAME_CALL_ID_COMPACT)
		return 0;
	switch (pos) {
	case 1: return 'r';
	case 2: return 'o';
	case 3: return 'm';
	default: return 0;
	}
}

/* The index (0-7) of the first LF among the 8 bytes of w, or 8. */
static __always_inline __u32 fg_first_lf(__u64 w)
{
	__u64 x = w ^ 0x0A0A0A0A0A0A0A0AULL;
	__u64 t = (x - 0x0101010101010101ULL) & ~x & 0x8080808080808080ULL;
	__u32 k = 0;

	if (!t)
		return 8;
	/* Only the lowest flag is exact, and it is the one wanted. */
	t &= -t;
	if (t > 0x80000000ULL) {
		k += 4;
		t >>= 32;
	}
	if (t > 0x8000ULL) {
		k += 2;
		t >>= 16;
	}
	if (t > 0x80ULL)
		k += 1;
	return k;
}

/* A header name complete and followed by a colon: what its value is for. */
static __always_inline void fg_scan_colon(struct fg_scan *scan)
{
	if (fg_is_credentials(scan->kind)) {
		scan->found |= FG_SCAN_CREDENTIALS;
		scan->state = FG_SCAN_SKIP;
		return;
	}
	if (fg_is_call_id(scan->kind) || scan->kind == FG_NAME_CSEQ) {
		__u32 bit = scan->kind == FG_NAME_CSEQ ? FG_SCAN_CSEQ : FG_SCAN_CALLID;

		/* A message with two of them names no one transaction. */
		if (scan->found & bit)
			scan->found |= FG_SCAN_AMBIGUOUS;
	}
	scan->state = FG_SCAN_COLON;
}

/* The first byte of a value (lb lower-cased). */
static __always_inline void fg_scan_value_start(struct fg_scan *scan, struct fg_scratch *s, __u8 b, __u8 lb)
{
	scan->state = FG_SCAN_VALUE;
	scan->pos = 1;
	if (fg_is_call_id(scan->kind)) {
		scan->callid = (FG_FNV_OFFSET ^ b) * FG_FNV_PRIME;
		return;
	}
	if (scan->kind == FG_NAME_CSEQ) {
		scan->cseq = 0;
		scan->method = 0;
		/* pos: 1 in the number, 2 in the blanks after it, 3 + n in the method. */
		if (b >= '0' && b <= '9')
			scan->cseq = b - '0';
		else
			scan->state = FG_SCAN_SKIP;
		return;
	}
	s->key.data[0] = scan->kind;
	s->key.data[1] = lb;
}

/* A CSeq value byte; returns 1 at the end of the value. pos: 1 in the
 * number, 2 in the blanks after it, 3 + n after n bytes of the method. */
static __always_inline int fg_scan_cseq(struct fg_scan *scan, __u8 b)
{
	__u32 n;

	if (scan->pos == 1 && b >= '0' && b <= '9') {
		scan->cseq = scan->cseq * 10 + (b - '0');
		return 0;
	}
	if (fg_is_blank(b) && scan->pos <= 2) {
		scan->pos = 2;
		return 0;
	}
	if (b == '\r' || b == '\n' || fg_is_blank(b) || scan->pos == 1)
		return 1;
	n = scan->pos < 3 ? 0 : scan->pos - 3;
	/* A method longer than 8 bytes is neither REGISTER nor INVITE. */
	if (n < 8)
		scan->method |= (__u64)b << (8 * (n & 7));
	else
		scan->method = ~0ULL;
	scan->pos = n < 8 ? 3 + n + 1 : 11;
	return 0;
}

/*
 * One byte of the walk: a small state machine, so the verifier checks one
 * step rather than every path through a header. Lines are the bytes after an
 * LF; a value ends at CR or LF or after FG_SIGNATURE_BYTES - 1 bytes, and only
 * then is it looked up, so a value cut off by the end of the scan never is.
 */
static long fg_scan_step(__u32 i, void *unused)
{
	__u32 zero = 0, at;
	struct fg_walk *w = bpf_map_lookup_elem(&fg_scratch, &zero);
	struct fg_scratch *s;
	struct fg_scan *scan;
	__u8 b, lb, expected;

	if (!w)
		return 1;
	s = &w->scratch;
	scan = &w->scan;
	at = scan->at;
	if (at >= scan->len)
		return 1;
	if (scan->state == FG_SCAN_SKIP) {
		/* The rest of an uninteresting line: eight bytes a step. The bytes
		 * past the copied ones (or in the key after buf) are never taken. */
		__u32 k = fg_first_lf(*(__u64 *)&s->buf[at & FG_SCAN_MASK]);

		if (k < 8 && at + k < scan->len) {
			scan->at = at + k + 1;
			scan->state = FG_SCAN_LINE_START;
		} else {
			scan->at = at + 8;
		}
		return 0;
	}
	scan->at = at + 1;
	b = s->buf[at & FG_SCAN_MASK];
	lb = fg_lower(b);

	switch (scan->state) {
	case FG_SCAN_FOLD:
		if (fg_is_blank(b)) {
			scan->state = FG_SCAN_COLON;
			return 0;
		}
		/* Not a fold: this byte starts a line. */
		scan->state = FG_SCAN_LINE_START;
		/* fall through */
	case FG_SCAN_LINE_START:
		if (lb == 'u' || lb == 'f' || lb == 'a' || lb == 'p' || lb == 'c' || lb == 'i') {
			scan->state = FG_SCAN_NAME;
			scan->kind = lb == 'u' ? FG_SIGNATURE_USER_AGENT
				   : lb == 'f' ? FG_SIGNATURE_FROM
				   : lb == 'a' ? FG_NAME_AUTHORIZATION
				   : lb == 'p' ? FG_NAME_PROXY_AUTHORIZATION
				   : lb == 'c' ? FG_NAME_CALL_ID
					       : FG_NAME_CALL_ID_COMPACT;
			scan->pos = 1;
		} else if (b == '\r' || b == '\n') {
			/* The blank line: the header block ends here. */
			scan->found |= FG_SCAN_END;
			return 1;
		} else {
			scan->state = FG_SCAN_SKIP;
		}
		return 0;
	case FG_SCAN_NAME:
		if (scan->kind == FG_NAME_CALL_ID && scan->pos == 1 && lb == 's') {
			scan->kind = FG_NAME_CSEQ;
			scan->pos = 2;
			return 0;
		}
		expected = fg_name_byte(scan->kind, scan->pos);
		/* "f" alone is From's compact form, "i" Call-ID's. */
		if (expected && lb == expected) {
			scan->pos++;
		} else if (!expected || (scan->kind == FG_SIGNATURE_FROM && scan->pos == 1)) {
			if (b == ':')
				fg_scan_colon(scan);
			else if (fg_is_blank(b))
				scan->state = FG_SCAN_BLANKS;
			else
				scan->state = b == '\n' ? FG_SCAN_LINE_START : FG_SCAN_SKIP;
		} else {
			scan->state = b == '\n' ? FG_SCAN_LINE_START : FG_SCAN_SKIP;
		}
		return 0;
	case FG_SCAN_BLANKS:
		if (b == ':')
			fg_scan_colon(scan);
		else if (!fg_is_blank(b))
			scan->state = b == '\n' ? FG_SCAN_LINE_START : FG_SCAN_SKIP;
		return 0;
	case FG_SCAN_COLON:
		/* An empty value may go on in a folded line (RFC 3261 7.3.1). */
		if (fg_is_blank(b) || b == '\r')
			return 0;
		if (b == '\n') {
			scan->state = FG_SCAN_FOLD;
			return 0;
		}
		fg_scan_value_start(scan, s, b, lb);
		return 0;
	case FG_SCAN_VALUE:
		if (fg_is_call_id(scan->kind)) {
			if (b != '\r' && b != '\n') {
				scan->callid = (scan->callid ^ b) * FG_FNV_PRIME;
				return 0;
			}
			scan->found |= FG_SCAN_CALLID;
		} else if (scan->kind == FG_NAME_CSEQ) {
			if (!fg_scan_cseq(scan, b))
				return 0;
			scan->found |= FG_SCAN_CSEQ;
		} else {
			if (b != '\r' && b != '\n' && scan->pos < FG_SIGNATURE_BYTES - 1) {
				scan->pos++;
				s->key.data[scan->pos & (FG_SIGNATURE_BYTES - 1)] = lb;
				return 0;
			}
			s->key.prefixlen = 8 * (1 + scan->pos);
			if (bpf_map_lookup_elem(&fg_signatures, &s->key)) {
				scan->found |= FG_SCAN_SIGNATURE;
				return 1;
			}
		}
		scan->state = b == '\n' ? FG_SCAN_LINE_START : FG_SCAN_SKIP;
		return 0;
	default:
		return 0;
	}
}

/*
 * Walks the SIP message of `len` bytes at `off` in the frame, from byte
 * `skip` (the first byte of its start line). Returns the walk's result (in
 * this CPU's fg_scratch: found has the FG_SCAN_* bits, with the Call-ID hash
 * and CSeq), or NULL if the message could not be read.
 */
static __always_inline struct fg_scan *fg_scan_message(struct xdp_md *ctx, __u32 off, __u32 len, __u32 skip)
{
	struct fg_walk *w;
	__u32 zero = 0;

	if (len > FG_SIP_SCAN_BYTES)
		len = FG_SIP_SCAN_BYTES;
	/* Keep the compiler from handing the verifier an unclamped copy. */
	asm volatile("" : "+r"(len));
	if (len < 2 || len > FG_SIP_SCAN_BYTES)
		return NULL;
	w = bpf_map_lookup_elem(&fg_scratch, &zero);
	if (!w || bpf_xdp_load_bytes(ctx, off, w->scratch.buf, len))
		return NULL;
	__builtin_memset(&w->scan, 0, sizeof(w->scan));
	w->scan.len = len;
	w->scan.at = skip;
	w->scan.state = FG_SCAN_SKIP;
	/* Each step takes one byte, or eight in FG_SCAN_SKIP. */
	bpf_loop(len, fg_scan_step, NULL, 0);
	return &w->scan;
}

#endif /* FG_LIB_SCANNER_H */
