/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Scanner signatures: the User-Agent and From headers of a SIP request, in its
 * first FG_SIP_SCAN_BYTES bytes, against the prefixes in fg_signatures.
 *
 * The message is copied into a per-CPU scratch buffer (bpf_xdp_load_bytes also
 * reads multi-buffer frames) and walked with bpf_loop, one byte per step:
 * after each LF, a header named User-Agent, From or its compact form f (any
 * case, blanks allowed around the colon) has its value lower-cased into an LPM
 * key of kind + value, and one trie lookup finds the longest signature it
 * starts with. The request line is never a header; a value must end (CR, LF,
 * or its 31st byte) within the scanned bytes to be looked up. The same walk
 * notes an Authorization or Proxy-Authorization header (credentials), for the
 * brute-force count of the inside interface.
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

/* Per-CPU copy of the message being scanned; XDP only. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fg_scratch);
} fg_scratch SEC(".maps");

/* Where the byte-at-a-time walk is within a line. */
enum fg_scan_state {
	FG_SCAN_LINE_START, /* at the first byte of a header line */
	FG_SCAN_NAME,	    /* inside a header name that may still match */
	FG_SCAN_BLANKS,	    /* blanks between the name and the colon */
	FG_SCAN_COLON,	    /* blanks after the colon */
	FG_SCAN_VALUE,	    /* copying the value into the key */
	FG_SCAN_SKIP,	    /* rest of an uninteresting line */
};

struct fg_scan {
	__u32 len;   /* bytes copied into the scratch buffer */
	__u32 at;    /* the next byte to look at */
	__u32 state; /* enum fg_scan_state */
	__u32 kind;  /* FG_SIGNATURE_* of the header being read */
	__u32 pos;   /* bytes of its name matched, or of its value copied */
	__u32 found; /* FG_SCAN_SIGNATURE | FG_SCAN_CREDENTIALS */
};

#define FG_SCAN_SIGNATURE 1   /* a scanner signature matched */
#define FG_SCAN_CREDENTIALS 2 /* an Authorization or Proxy-Authorization header */
#define FG_NAME_AUTHORIZATION 'a'
#define FG_NAME_PROXY_AUTHORIZATION 'p'

static __always_inline int fg_is_credentials(__u32 kind)
{
	return kind == FG_NAME_AUTHORIZATION || kind == FG_NAME_PROXY_AUTHORIZATION;
}

static __always_inline __u8 fg_lower(__u8 c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* The next byte of "user-agent", "from", "authorization" or
 * "proxy-authorization" after `pos` bytes; 0 = name complete. */
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
	switch (pos) {
	case 1: return 'r';
	case 2: return 'o';
	case 3: return 'm';
	default: return 0;
	}
}

/*
 * One byte of the walk: a small state machine, so the verifier checks one
 * step rather than every path through a header. Lines are the bytes after an
 * LF; a value ends at CR or LF or after FG_SIGNATURE_BYTES - 1 bytes, and only
 * then is it looked up, so a value cut off by the end of the scan never is.
 */
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

static long fg_scan_step(__u32 i, struct fg_scan *scan)
{
	__u32 zero = 0, at = scan->at;
	struct fg_scratch *s = bpf_map_lookup_elem(&fg_scratch, &zero);
	__u8 b, lb, expected;

	if (!s || at >= scan->len)
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
	case FG_SCAN_LINE_START:
		if (lb == 'u' || lb == 'f' || lb == 'a' || lb == 'p') {
			scan->state = FG_SCAN_NAME;
			scan->kind = lb == 'u' ? FG_SIGNATURE_USER_AGENT
				   : lb == 'f' ? FG_SIGNATURE_FROM
				   : lb == 'a' ? FG_NAME_AUTHORIZATION
					       : FG_NAME_PROXY_AUTHORIZATION;
			scan->pos = 1;
		} else if (b != '\n') {
			scan->state = FG_SCAN_SKIP;
		}
		return 0;
	case FG_SCAN_NAME:
		expected = fg_name_byte(scan->kind, scan->pos);
		/* "f" alone is From's compact form. */
		if (expected && lb == expected) {
			scan->pos++;
		} else if (!expected || (scan->kind == FG_SIGNATURE_FROM && scan->pos == 1)) {
			if (b == ':' && fg_is_credentials(scan->kind)) {
				scan->found |= FG_SCAN_CREDENTIALS;
				scan->state = FG_SCAN_SKIP;
			} else if (b == ':')
				scan->state = FG_SCAN_COLON;
			else if (b == ' ' || b == '\t')
				scan->state = FG_SCAN_BLANKS;
			else
				scan->state = b == '\n' ? FG_SCAN_LINE_START : FG_SCAN_SKIP;
		} else {
			scan->state = b == '\n' ? FG_SCAN_LINE_START : FG_SCAN_SKIP;
		}
		return 0;
	case FG_SCAN_BLANKS:
		if (b == ':' && fg_is_credentials(scan->kind)) {
			scan->found |= FG_SCAN_CREDENTIALS;
			scan->state = FG_SCAN_SKIP;
		} else if (b == ':')
			scan->state = FG_SCAN_COLON;
		else if (b != ' ' && b != '\t')
			scan->state = b == '\n' ? FG_SCAN_LINE_START : FG_SCAN_SKIP;
		return 0;
	case FG_SCAN_COLON:
		if (b == ' ' || b == '\t')
			return 0;
		if (b == '\r' || b == '\n') {
			scan->state = b == '\n' ? FG_SCAN_LINE_START : FG_SCAN_SKIP;
			return 0;
		}
		s->key.data[0] = scan->kind;
		s->key.data[1] = lb;
		scan->pos = 1;
		scan->state = FG_SCAN_VALUE;
		return 0;
	case FG_SCAN_VALUE:
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
		scan->state = b == '\n' ? FG_SCAN_LINE_START : FG_SCAN_SKIP;
		return 0;
	default:
		return 0;
	}
}

/* What the SIP request in pkt carries: FG_SCAN_SIGNATURE (a scanner's),
 * FG_SCAN_CREDENTIALS. */
static __always_inline __u32 fg_scan_request(struct xdp_md *ctx, const struct fg_packet *pkt)
{
	struct fg_scan scan = {.state = FG_SCAN_SKIP};
	struct fg_scratch *s;
	__u32 zero = 0, len = pkt->payload_len;

	if (len > FG_SIP_SCAN_BYTES)
		len = FG_SIP_SCAN_BYTES;
	if (len < 2)
		return 0;
	s = bpf_map_lookup_elem(&fg_scratch, &zero);
	if (!s || bpf_xdp_load_bytes(ctx, pkt->payload_off, s->buf, len))
		return 0;
	scan.len = len;
	bpf_loop(len, fg_scan_step, &scan, 0);
	return scan.found;
}

#endif /* FG_LIB_SCANNER_H */
