/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The walk of a SIP message's header block (up to its blank line, at most
 * FG_SIP_SCAN_BYTES bytes): scanner signatures in the User-Agent and From
 * headers against the prefixes in fg_signatures, credentials, and the
 * Call-ID and CSeq that tie a response to its request (lib/tiers.h).
 *
 * The message is copied into a per-CPU scratch buffer (by direct loads where
 * the frame's linear part holds it, else with bpf_xdp_load_bytes, which also
 * reads multi-buffer frames) and walked with bpf_loop, a word or more at a
 * time where it can (header names, values, the rest of uninteresting lines,
 * parameters not read, the nonce, a CSeq's runs), a byte at a time elsewhere:
 * after each LF, a header named User-Agent, From or its compact form f (any
 * case, blanks allowed around the colon, a value folded onto the next line
 * followed) has its value lower-cased into an LPM key of kind + value, and one
 * trie lookup finds the longest signature it starts with. The start line is
 * never a header; a value must end (CR, LF, or its 31st byte) within the
 * scanned bytes to be looked up. The same walk notes an Authorization or
 * Proxy-Authorization header (credentials), hashes the nonce of those and of
 * WWW-/Proxy-Authenticate (and notes stale=true), hashes the Call-ID (FNV-1a)
 * and reads the CSeq number and method.
 */
#ifndef FG_LIB_SCANNER_H
#define FG_LIB_SCANNER_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "../floodgate.h"
#include "bucket.h"
#include "numbers.h"
#include "parse.h"

#define FG_SCAN_MASK (FG_SIP_SCAN_BYTES - 1)
/* The words of a value (Call-ID, User-Agent, From) one step may take: a
 * 31-byte key's four in one step. */
#define FG_SCAN_VALUE_WORDS 4
/* The turns over a credentials or challenge header's parameters one step
 * may take (a byte, or a word of a parameter that is not read or of the
 * nonce's value, a turn). */
#define FG_SCAN_PARAM_TURNS 8
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
	FG_SCAN_LEAD,	    /* CR, LF, SP or HT before the start line, as many as there are */
	FG_SCAN_NAME,	    /* inside a header name that may still match */
	FG_SCAN_BLANKS,	    /* blanks between the name and the colon */
	FG_SCAN_COLON,	    /* blanks after the colon (a fold included) */
	FG_SCAN_FOLD,	    /* after an LF that ended an empty value: a fold if SP or HT follows */
	FG_SCAN_VALUE,	    /* reading the value */
	FG_SCAN_SKIP,	    /* rest of an uninteresting line */
	FG_SCAN_PARAMS,	    /* the parameters of a credentials or challenge header (nonce, stale) */
	FG_SCAN_TO_VALUE,   /* a To header's value: is there a tag parameter? */
};

struct fg_scan {
	__u32 len;    /* bytes copied into the scratch buffer */
	__u32 at;     /* the next byte to look at */
	__u32 state;  /* enum fg_scan_state */
	__u32 kind;   /* FG_SIGNATURE_* or FG_NAME_* of the header being read */
	__u32 pos;    /* bytes of its name matched, or of its value read (not kept for a Call-ID) */
	__u32 found;  /* FG_SCAN_* */
	__u32 callid; /* the Call-ID value's hash, folded to 32 bits */
	__u32 cseq;   /* the CSeq number */
	__u64 method; /* the CSeq method's first 8 bytes, little-endian, zero-filled */
	__u64 callid_hash; /* FNV-1a over the Call-ID value's 8-byte words */
	__u64 nonce_hash;  /* over the nonce parameter being read, by its 8-byte words (fg_nonce_mix) */
	__u64 nonce;	   /* the hash of the first nonce of a credentials or challenge header; 0: none */
	__u64 nonce2;	   /* of the first nonce after it that differs (a second challenge, RFC 8760); 0: none */
	__u32 param;	   /* FG_PARAM_* in the parameters, and how far; FG_TO_* in a To value */
	__u32 want_to;	   /* read the To header (an INVITE, with fraud checks on): in-dialog or not */
	/* Where the caller's URIs are (lib/callerid.h): the first byte of the
	 * From value, and of the first and the last P-Asserted-Identity value;
	 * 0: none. */
	__u32 from_at;
	__u32 pai_at;
	__u32 pai_last;
	__u32 pai_count;
	__u32 rpid_at;	   /* the first Remote-Party-ID value */
	__u32 rpid_count;
	__u32 ppi_at;	   /* the first P-Preferred-Identity value */
	__u32 ppi_count;
};

/* The walk over a From value for its tag parameter (lib/calls.h). */
struct fg_tag_walk {
	__u32 at;     /* the next byte of the copy */
	__u32 end;    /* the bytes that may be read */
	__u32 quoted; /* FG_NUM_QUOTED, FG_NUM_BACKSLASH (lib/numbers.h) */
	__u32 angle;  /* inside the URI's angle brackets */
	__u32 match;  /* how far ";tag=" is matched (FG_TAG_*) */
	__u32 done;
	__u64 hash;   /* FNV-1a over the tag's bytes; 0: no tag */
};

/* The frame walk over a message of a TCP stream (lib/stream.h). */
struct fg_frame {
	__u32 at;     /* the next byte to look at */
	__u32 len;    /* bytes copied */
	__u32 state;  /* enum fg_frame_state */
	__u32 found;  /* FG_FRAME_* */
	__u32 length; /* the Content-Length read */
	__u32 end;    /* where the header block ends, past its blank line; 0: not found */
	__u32 start;  /* where the start line starts, past CRs, LFs and blanks */
	__u32 matched; /* bytes of "content-length" matched at a line's start (FG_FRAME_NAME_PART) */
	/* A message of the segment to read as an answer (lib/stream.h,
	 * fg_stream_step): its start line's offset in the packet, and the bytes
	 * of the segment from there; 0: none. */
	__u32 answer;
	__u32 answer_len;
};

/* What floodgate_inside is to read of its packet (fg_inside_packet). */
enum { FG_INSIDE_READ_NONE, FG_INSIDE_READ_ANSWER, FG_INSIDE_READ_SEGMENT };
struct fg_inside_read {
	struct fg_addr dst; /* the packet's destination: the server's peer */
	__u32 off;	    /* its UDP or TCP payload's offset in the packet */
	__u32 len;	    /* the payload's length */
	__u32 how;	    /* an answer over UDP: FG_ANSWER_* (lib/stream.h) */
	__u32 at;	    /* a TCP segment: where in it the stream's next byte to read is */
	__u32 seq;	    /* its sequence number */
	__u32 fin;	    /* the server's FIN */
};

/*
 * Per CPU: the copy of the message being walked and the walk's state. The
 * state lives here rather than on the stack so that the verifier sees it as
 * unknown values and checks one step of the walk, not each combination of
 * states a message could lead it through.
 */
struct fg_walk {
	struct fg_scratch scratch;
	__u8 spill[8]; /* a value's last word, stored whole at the key's end, may run into this */
	struct fg_scan scan;
	struct fg_number_walk num; /* the Request-URI's number (lib/destinations.h) */
	/* Keys lib/destinations.h looks up, here rather than on the stack. */
	struct fg_destination_key dest_key;
	struct fg_call_key call_key;
	struct fg_destination_source_key source_key;
	struct fg_destination_rule fraud_rule; /* a fraud threshold's bucket id, as a rule */
	struct fg_fraud_block block;
	struct fg_call memo;
	struct fg_bucket_call call;
	struct fg_active_call_key active_key; /* the call an INVITE begins or a BYE ends (lib/calls.h) */
	__u32 begin_call;		      /* fg_destination let in a new call: count it if the budget passes it */
	__u32 begin_cseq;
	__u32 begin_tag;
	struct fg_tag_walk tag;			 /* the From tag of a call (lib/calls.h) */
	struct fg_destination_key caller_number; /* a caller's number (lib/callerid.h) */
	struct fg_caller_range_key caller_key;
	__u32 caller_at[8];			 /* where each caller value starts (lib/callerid.h), off its stack */
	struct fg_frame frame; /* the frame walk of a TCP stream's segment (lib/stream.h) */
	struct fg_stream_key stream_key; /* the stream floodgate_inside is reading, here rather than on its stack */
	struct fg_packet inside_packet;	 /* the packet floodgate_inside is reading: its record (parse.h) */
	struct fg_inside_read inside;		 /* and what of it is the server's to read */
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
#define FG_SCAN_STALE 64      /* a challenge says stale=true (an old nonce, not a wrong password) */
#define FG_SCAN_TO 128	      /* a To header was read (with want_to) */
#define FG_SCAN_TO_TAG 256    /* it has a tag parameter: the request is in a dialog */
#define FG_SCAN_TO_TWICE 512  /* a second To header: which one a server reads is anyone's guess */
#define FG_SCAN_FROM_TWICE 1024 /* a second From header */

/* Where the walk is in a To value (scan->param): in a quoted display name (and
 * after a backslash in it), in the <URI>; above them, how far ";tag=" is matched. */
#define FG_TO_QUOTED 1
#define FG_TO_ESCAPE 2
#define FG_TO_ANGLE 4

/* Where the walk is in a header's parameters (scan->param: the state in the
 * low byte, how far into a name above it). */
#define FG_PARAM_BOUNDARY 0 /* after a separator: a name may start */
#define FG_PARAM_OTHER 1    /* in a parameter we do not read */
#define FG_PARAM_NONCE 2    /* matching "nonce" */
#define FG_PARAM_STALE 3    /* matching "stale" */
#define FG_PARAM_EQUALS 4   /* "nonce" read: blanks, then = */
#define FG_PARAM_OPEN 5	    /* = read: blanks, then a value, quoted or not */
#define FG_PARAM_QUOTED 6   /* in the nonce's quoted value */
#define FG_PARAM_TOKEN 7    /* in the nonce's unquoted value */
#define FG_PARAM_STALE_EQ 8 /* "stale" read: =, then true */
#define FG_PARAM_TRUE 9	    /* matching "true" (a quote allowed before it) */

#define FG_NAME_AUTHORIZATION 'a'
#define FG_NAME_PROXY_AUTHORIZATION 'p'
#define FG_NAME_CALL_ID 'c'
#define FG_NAME_CALL_ID_COMPACT 'i'
#define FG_NAME_CSEQ 'q'
#define FG_NAME_WWW_AUTHENTICATE 'w'
#define FG_NAME_PROXY_AUTHENTICATE 'P'
#define FG_NAME_FROM_COMPACT 'F'
#define FG_NAME_TO 'T'
#define FG_NAME_TO_COMPACT 't'
#define FG_NAME_PAI 'I'
#define FG_NAME_PPI 'Y'
#define FG_NAME_RPID 'R'
#define FG_FNV64_OFFSET 0xcbf29ce484222325ULL
#define FG_FNV64_PRIME 0x100000001b3ULL

static __always_inline int fg_is_credentials(__u32 kind)
{
	return kind == FG_NAME_AUTHORIZATION || kind == FG_NAME_PROXY_AUTHORIZATION;
}

static __always_inline int fg_is_challenge(__u32 kind)
{
	return kind == FG_NAME_WWW_AUTHENTICATE || kind == FG_NAME_PROXY_AUTHENTICATE;
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

/* The lower-cased header names, as little-endian words of up to 8 bytes. */
static __always_inline __u32 fg_name_length(__u32 kind)
{
	switch (kind) {
	case FG_SIGNATURE_USER_AGENT: return 10;	 /* user-agent */
	case FG_SIGNATURE_FROM: return 4;		 /* from */
	case FG_NAME_FROM_COMPACT: return 1;		 /* f */
	case FG_NAME_AUTHORIZATION: return 13;		 /* authorization */
	case FG_NAME_PROXY_AUTHORIZATION: return 19;	 /* proxy-authorization */
	case FG_NAME_CALL_ID: return 7;			 /* call-id */
	case FG_NAME_CALL_ID_COMPACT: return 1;		 /* i */
	case FG_NAME_WWW_AUTHENTICATE: return 16;	 /* www-authenticate */
	case FG_NAME_PROXY_AUTHENTICATE: return 18;	 /* proxy-authenticate */
	case FG_NAME_TO: return 2;			 /* to */
	case FG_NAME_TO_COMPACT: return 1;		 /* t */
	case FG_NAME_PAI: return 19;			 /* p-asserted-identity */
	case FG_NAME_PPI: return 20;			 /* p-preferred-identity */
	case FG_NAME_RPID: return 15;			 /* remote-party-id */
	default: return 4;				 /* cseq */
	}
}

static __always_inline __u64 fg_name_chunk(__u32 kind, __u32 pos)
{
	switch (kind) {
	case FG_SIGNATURE_USER_AGENT: return pos ? FG_W8("nt\0\0\0\0\0\0") : FG_W8("user-age");
	case FG_SIGNATURE_FROM: return FG_W8("from\0\0\0\0");
	case FG_NAME_FROM_COMPACT: return 'f';
	case FG_NAME_AUTHORIZATION: return pos ? FG_W8("ation\0\0\0") : FG_W8("authoriz");
	case FG_NAME_PROXY_AUTHORIZATION:
		return pos == 0 ? FG_W8("proxy-au") : pos == 8 ? FG_W8("thorizat") : FG_W8("ion\0\0\0\0\0");
	case FG_NAME_CALL_ID: return FG_W8("call-id\0");
	case FG_NAME_CALL_ID_COMPACT: return 'i';
	case FG_NAME_WWW_AUTHENTICATE: return pos ? FG_W8("enticate") : FG_W8("www-auth");
	case FG_NAME_PROXY_AUTHENTICATE:
		return pos == 0 ? FG_W8("proxy-au") : pos == 8 ? FG_W8("thentica") : FG_W8("te\0\0\0\0\0\0");
	case FG_NAME_TO: return FG_W8("to\0\0\0\0\0\0");
	case FG_NAME_TO_COMPACT: return 't';
	case FG_NAME_PAI: return pos == 0 ? FG_W8("p-assert") : pos == 8 ? FG_W8("ed-ident") : FG_W8("ity\0\0\0\0\0");
	case FG_NAME_PPI: return pos == 0 ? FG_W8("p-prefer") : pos == 8 ? FG_W8("red-iden") : FG_W8("tity\0\0\0\0");
	case FG_NAME_RPID: return pos == 0 ? FG_W8("remote-p") : FG_W8("arty-id\0");
	default: return FG_W8("cseq\0\0\0\0");
	}
}

/* The low n (0-8) bytes of a word. */
static __always_inline __u64 fg_low_bytes(__u32 n)
{
	return n >= 8 ? ~0ULL : (1ULL << (8 * n)) - 1;
}

/* The 8 bytes of w with A-Z lower-cased, at once. */
static __always_inline __u64 fg_lower8(__u64 w)
{
	__u64 h = w & 0x7f7f7f7f7f7f7f7fULL;
	__u64 ge_a = h + 0x3f3f3f3f3f3f3f3fULL; /* bit 7 set where a byte is 'A' (0x41) or above */
	__u64 gt_z = h + 0x2525252525252525ULL; /* bit 7 set where it is above 'Z' (0x5a) */
	__u64 upper = ge_a & ~gt_z & ~w & 0x8080808080808080ULL;

	return w | (upper >> 2);
}

/* Bit 7 set in each byte of x that is zero: exact for the lowest one (a
 * borrow only runs upwards from a zero byte), which is all we take. */
static __always_inline __u64 fg_zero_bytes(__u64 x)
{
	return (x - 0x0101010101010101ULL) & ~x & 0x8080808080808080ULL;
}

/* The index (0-7) of the lowest flagged byte, or 8 if none is. BPF has no
 * count of trailing zeros: the lowest flag, 0x80 << 8k, shifted down to
 * 1 << 8k, multiplies the constant (whose byte i is 7 - i) into a copy of it
 * shifted up k bytes, whose top byte is then k. No branch on k: a search by
 * halves took three, which a line's LF, anywhere in its word, mispredicts. */
static __always_inline __u32 fg_first_flag(__u64 t)
{
	if (!t)
		return 8;
	return ((((t & -t) >> 7) * 0x0001020304050607ULL) >> 56) & 7;
}

/* The index (0-7) of the first LF among the 8 bytes of w, or 8. */
static __always_inline __u32 fg_first_lf(__u64 w)
{
	return fg_first_flag(fg_zero_bytes(w ^ 0x0A0A0A0A0A0A0A0AULL));
}

/* The CRs and LFs among the 8 bytes of w, flagged as fg_zero_bytes flags. */
static __always_inline __u64 fg_crlf_bytes(__u64 w)
{
	return fg_zero_bytes(w ^ 0x0A0A0A0A0A0A0A0AULL) | fg_zero_bytes(w ^ 0x0D0D0D0D0D0D0D0DULL);
}

/* The index (0-7) of the first CR or LF among the 8 bytes of w, or 8. */
static __always_inline __u32 fg_first_crlf(__u64 w)
{
	return fg_first_flag(fg_crlf_bytes(w));
}

/* The word at byte `at` of the copy (bytes past the copied ones are
 * stale: every caller bounds what it takes by the length), in one load. */
static __always_inline __u64 fg_word_at(const struct fg_scratch *s, __u32 at)
{
	return fg_load_word(&s->buf[at & FG_SCAN_MASK]);
}

/* The bytes of a value's word at `at` that belong to it: up to its first CR
 * or LF, and within the `len` bytes copied. */
static __always_inline __u32 fg_value_take(__u64 word, __u32 at, __u32 len)
{
	__u32 take = fg_first_crlf(word);

	return take > len - at ? len - at : take;
}

/* A header name complete and followed by a colon: what its value is for. */
static __always_inline void fg_scan_colon(struct fg_scan *scan)
{
	if (scan->kind == FG_NAME_TO || scan->kind == FG_NAME_TO_COMPACT) {
		if (scan->found & FG_SCAN_TO)
			scan->found |= FG_SCAN_TO_TWICE;
		scan->found |= FG_SCAN_TO;
		scan->state = FG_SCAN_TO_VALUE;
		scan->param = 0;
		return;
	}
	if (fg_is_credentials(scan->kind) || fg_is_challenge(scan->kind)) {
		if (fg_is_credentials(scan->kind))
			scan->found |= FG_SCAN_CREDENTIALS;
		scan->state = FG_SCAN_PARAMS;
		scan->param = FG_PARAM_BOUNDARY;
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

/*
 * The first byte b of a value, at `at` (scan->at is there): where it starts,
 * and what reads it. Most values are read from this byte by the next step; a
 * CSeq's first digit is taken here.
 */
static __always_inline void fg_scan_value_start(struct fg_scan *scan, __u32 at, __u8 b)
{
	scan->state = FG_SCAN_VALUE;
	scan->pos = 0;
	/* The caller's URIs: where they start, for lib/callerid.h. */
	if (scan->kind == FG_SIGNATURE_FROM || scan->kind == FG_NAME_FROM_COMPACT) {
		if (scan->from_at)
			scan->found |= FG_SCAN_FROM_TWICE;
		scan->from_at = at;
	} else if (scan->kind == FG_NAME_PAI) {
		if (!scan->pai_at)
			scan->pai_at = at;
		scan->pai_last = at;
		scan->pai_count++;
		scan->state = FG_SCAN_SKIP;
		return;
	} else if (scan->kind == FG_NAME_RPID) {
		if (!scan->rpid_at)
			scan->rpid_at = at;
		scan->rpid_count++;
		scan->state = FG_SCAN_SKIP;
		return;
	} else if (scan->kind == FG_NAME_PPI) {
		if (!scan->ppi_at)
			scan->ppi_at = at;
		scan->ppi_count++;
		scan->state = FG_SCAN_SKIP;
		return;
	}
	scan->callid_hash = FG_FNV64_OFFSET;
	if (scan->kind == FG_NAME_CSEQ) {
		scan->cseq = 0;
		scan->method = 0;
		scan->at = at + 1;
		/* pos: 1 in the number, 2 in the blanks after it, 3 + n in the method. */
		if (b >= '0' && b <= '9') {
			scan->cseq = b - '0';
			scan->pos = 1;
		} else {
			scan->state = FG_SCAN_SKIP;
		}
	}
}

/*
 * A header name has just been matched, up to `at`: if a colon follows at
 * once, with at most one space after it, and then a value's first byte (not
 * a blank, CR or LF), all within the copied bytes, take them in this step: what
 * the BLANKS step (the colon) and the COLON steps (the space, the first
 * byte) would do, one after another. Anything else (blanks before the colon,
 * more after it, an empty or folded value, the copy's end) is left to them.
 * A To value and a header's parameters are read from the colon on: for them
 * only the colon is taken. In the form almost every message has, the name's
 * step now does the work of three more (two after a bare colon).
 */
static __always_inline void fg_scan_colon_now(const struct fg_scratch *s, struct fg_scan *scan, __u32 at, __u32 len)
{
	__u64 w = fg_word_at(s, at);
	__u32 n = (__u8)(w >> 8) == ' ' ? 2 : 1;
	__u8 b = (__u8)(w >> (8 * n));

	if ((__u8)w != ':' || at + n >= len || fg_is_blank(b) || b == '\r' || b == '\n')
		return;
	fg_scan_colon(scan);
	scan->at = at + 1;
	/* A To value and a header's parameters are read from the colon on. */
	if (scan->state != FG_SCAN_COLON)
		return;
	scan->at = at + n;
	fg_scan_value_start(scan, at + n, b);
}

/* After the byte b that ended a value (consumed; `next` follows it): the next
 * line, or the rest of this one. A CR with its LF within the copied bytes is
 * taken with it (the step the rest of the line would take, saved: it would
 * find that LF first and go to the next line). */
static __always_inline void fg_scan_after_value(const struct fg_scratch *s, struct fg_scan *scan, __u8 b,
						__u32 next, __u32 len)
{
	if (b == '\r' && next < len && s->buf[next & FG_SCAN_MASK] == '\n') {
		scan->at = next + 1;
		b = '\n';
	}
	scan->state = b == '\n' ? FG_SCAN_LINE_START : FG_SCAN_SKIP;
}

static __always_inline int fg_param_separator(__u8 b)
{
	return b == ',' || b == ' ' || b == '\t';
}

/* The same among the 8 bytes of w, flagged as fg_zero_bytes flags. */
static __always_inline __u64 fg_param_separators(__u64 w)
{
	return fg_zero_bytes(w ^ 0x2C2C2C2C2C2C2C2CULL) | fg_zero_bytes(w ^ 0x2020202020202020ULL) |
	       fg_zero_bytes(w ^ 0x0909090909090909ULL);
}

/* The index (0-7) of the first byte of w that ends a parameter not read (a
 * separator, or the LF that ends the line), or 8. */
static __always_inline __u32 fg_first_param_end(__u64 w)
{
	return fg_first_flag(fg_param_separators(w) | fg_zero_bytes(w ^ 0x0A0A0A0A0A0A0A0AULL));
}

/* Bit 7 set in each byte of x that is zero, and in no other: no carry
 * crosses a byte, so a byte above a zero one is not flagged with it. */
static __always_inline __u64 fg_zero_bytes_exact(__u64 x)
{
	return ~(((x & 0x7F7F7F7F7F7F7F7FULL) + 0x7F7F7F7F7F7F7F7FULL) | x | 0x7F7F7F7F7F7F7F7FULL);
}

/* The blanks (SP, HT) among the 8 bytes of w, flagged exactly. */
static __always_inline __u64 fg_blank_bytes_exact(__u64 w)
{
	return fg_zero_bytes_exact(w ^ 0x2020202020202020ULL) | fg_zero_bytes_exact(w ^ 0x0909090909090909ULL);
}

/* The index (0-7) of the first byte of w that is not a separator, or 8. */
static __always_inline __u32 fg_first_non_separator(__u64 w)
{
	__u64 separators = fg_zero_bytes_exact(w ^ 0x2C2C2C2C2C2C2C2CULL) | fg_blank_bytes_exact(w);

	return fg_first_flag(~separators & 0x8080808080808080ULL);
}

/* The index (0-7) of the first byte of w that is not a blank, or 8. */
static __always_inline __u32 fg_first_non_blank(__u64 w)
{
	return fg_first_flag(~fg_blank_bytes_exact(w) & 0x8080808080808080ULL);
}

/* Powers of ten by exponent, for a CSeq number read by words. */
static const __u64 fg_pow10[16] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000};

/* Bit 7 set in each byte of w that is not an ASCII digit, and in no other:
 * w ^ '0' leaves a digit 0-9, whose high nibble is 0 and whose low one plus 6
 * stays below 0x10 (no carry leaves a byte). */
static __always_inline __u64 fg_non_digits(__u64 w)
{
	__u64 x = w ^ 0x3030303030303030ULL;
	__u64 nd = (x & 0xF0F0F0F0F0F0F0F0ULL) | (((x & 0x0F0F0F0F0F0F0F0FULL) + 0x0606060606060606ULL) &
						 0x1010101010101010ULL);

	return (((nd & 0x7F7F7F7F7F7F7F7FULL) + 0x7F7F7F7F7F7F7F7FULL) | nd) & 0x8080808080808080ULL;
}

/* The number the first k (1-8) bytes of w spell, all of them digits, the
 * first the most significant: the digits moved to the word's top bytes (the
 * bytes below them read as leading zeros), then pairs, quadruples and the
 * whole combined by three multiplications. */
static __always_inline __u64 fg_digits_value(__u64 w, __u32 k)
{
	__u64 v = ((w ^ 0x3030303030303030ULL) & fg_low_bytes(k)) << (8 * (8 - k));

	v = ((v & 0x0F0F0F0F0F0F0F0FULL) * 2561) >> 8;
	v = ((v & 0x00FF00FF00FF00FFULL) * 6553601) >> 16;
	return ((v & 0x0000FFFF0000FFFFULL) * 42949672960001ULL) >> 32;
}

/*
 * A CSeq value from `at` (its first digit already read: pos is 1), by words,
 * up to FG_SCAN_VALUE_WORDS a step. pos: 1 in the number, 2 in the blanks
 * after it, 3 + n after n bytes of the method. A word's run of digits, of
 * blanks or of the method's bytes is taken at once; the byte that ends it
 * decides what follows, as a byte at a time did: a blank after the number
 * starts the blanks; any other byte after it, a CR or LF after the blanks,
 * and a CR, LF or blank after the method end the value. The number wraps at
 * 32 bits as a byte at a time did (cseq * 10 + digit, modulo 2^32); a method
 * of more than 8 bytes is ~0, neither REGISTER nor INVITE. Returns the byte
 * that ended the value (consumed, at scan->at - 1), or -1 if the value goes
 * on (scan->at is where), or ran past the copied bytes.
 */
static __always_inline int fg_scan_cseq(const struct fg_scratch *s, struct fg_scan *scan, __u32 at, __u32 len)
{
	__u32 j, k, avail, n, pos = scan->pos;
	__u64 word;
	__u8 b;

#pragma nounroll
	for (j = 0; j < FG_SCAN_VALUE_WORDS; j++) {
		if (at >= len)
			break;
		word = fg_word_at(s, at);
		avail = len - at < 8 ? len - at : 8;
		if (pos == 1)
			k = fg_first_flag(fg_non_digits(word));
		else if (pos == 2)
			k = fg_first_non_blank(word);
		else
			k = fg_first_flag(fg_crlf_bytes(word) | fg_zero_bytes(word ^ 0x2020202020202020ULL) |
					  fg_zero_bytes(word ^ 0x0909090909090909ULL));
		if (k > avail)
			k = avail;
		if (k && pos == 1) {
			scan->cseq = (__u32)(scan->cseq * fg_pow10[k & 15] + fg_digits_value(word, k));
		} else if (k && pos >= 3) {
			n = pos - 3;
			if (n + k <= 8) {
				scan->method |= (word & fg_low_bytes(k)) << (8 * (n & 7));
				pos = 3 + n + k;
			} else {
				scan->method = ~0ULL;
				pos = 11;
			}
		}
		at += k;
		if (k == avail)
			continue;
		/* Byte k ends the run. */
		b = (__u8)(word >> (8 * (k & 7)));
		if (pos == 1 && fg_is_blank(b)) {
			pos = 2;
			at++;
			continue;
		}
		if (pos == 2 && b != '\r' && b != '\n') {
			/* The method's first byte: read by the next turn. */
			pos = 3;
			continue;
		}
		scan->pos = pos;
		scan->at = at + 1;
		return b;
	}
	scan->pos = pos;
	scan->at = at;
	return -1;
}

/* The nonce's hash with its next `k` bytes (1-8), the low ones of `word`:
 * FNV-1a's step over the value's 8-byte words, counted from its first byte
 * whatever the steps and turns that read it, and then over the word's length.
 * With the length in a round of its own, a last word that is shorter does not
 * hash as a longer one whose bytes past it are NULs or the length itself. */
static __always_inline __u64 fg_nonce_mix(__u64 hash, __u64 word, __u32 k)
{
	return (((hash ^ (word & fg_low_bytes(k))) * FG_FNV64_PRIME) ^ k) * FG_FNV64_PRIME;
}

/* The nonce's value ended: the first one is kept, and the first after it
 * that differs (nonce2, which only a challenge's reader takes). */
static __always_inline void fg_nonce_done(struct fg_scan *scan)
{
	__u64 hash = scan->nonce_hash ? scan->nonce_hash : 1;

	if (!scan->nonce)
		scan->nonce = hash;
	else if (!scan->nonce2 && hash != scan->nonce)
		scan->nonce2 = hash;
	scan->param = FG_PARAM_OTHER;
}

/*
 * One byte (not LF) of a credentials or challenge header's parameters,
 * e.g. Digest username="100",realm="x",nonce="4b4c",uri="sip:x",response=..:
 * stale=true noted, and the nonce's value begun and ended (fg_scan_params
 * hashes its bytes by words, and takes a token's first byte with them). A
 * name counts only after a separator, so cnonce is not nonce.
 */
static __always_inline void fg_scan_param(struct fg_scan *scan, __u8 b)
{
	__u32 state = scan->param & 0xff, pos = scan->param >> 8;
	__u8 lb = fg_lower(b);

	switch (state) {
	case FG_PARAM_BOUNDARY:
		if (lb == 'n')
			scan->param = FG_PARAM_NONCE | 1 << 8;
		else if (lb == 's')
			scan->param = FG_PARAM_STALE | 1 << 8;
		else if (!fg_param_separator(b))
			scan->param = FG_PARAM_OTHER;
		return;
	case FG_PARAM_OTHER:
		if (fg_param_separator(b))
			scan->param = FG_PARAM_BOUNDARY;
		return;
	case FG_PARAM_NONCE:
	case FG_PARAM_STALE: {
		/* "nonce" and "stale" from their second byte. */
		__u64 name = state == FG_PARAM_NONCE ? FG_W8("nonce\0\0\0") : FG_W8("stale\0\0\0");

		if (pos < 5 && lb == (__u8)(name >> (8 * (pos & 7)))) {
			scan->param = state | (pos + 1) << 8;
			return;
		}
		if (pos == 5 && (b == '=' || fg_is_blank(b))) {
			scan->param = state == FG_PARAM_NONCE ? (b == '=' ? FG_PARAM_OPEN : FG_PARAM_EQUALS)
							      : FG_PARAM_STALE_EQ | (b == '=') << 8;
			return;
		}
		scan->param = fg_param_separator(b) ? FG_PARAM_BOUNDARY : FG_PARAM_OTHER;
		return;
	}
	case FG_PARAM_EQUALS:
		if (b == '=')
			scan->param = FG_PARAM_OPEN;
		else if (!fg_is_blank(b))
			scan->param = FG_PARAM_OTHER;
		return;
	case FG_PARAM_OPEN:
		/* Only these reach here: fg_scan_params begins a token on its
		 * first byte without taking it. */
		if (fg_is_blank(b))
			return;
		if (b == '"') {
			scan->nonce_hash = FG_FNV64_OFFSET;
			scan->param = FG_PARAM_QUOTED;
			return;
		}
		scan->param = FG_PARAM_BOUNDARY;
		return;
	case FG_PARAM_QUOTED:
		/* Its end (fg_scan_params hashes the bytes before it). */
		if (b == '"' || b == '\r')
			fg_nonce_done(scan);
		return;
	case FG_PARAM_TOKEN:
		if (fg_param_separator(b) || b == '\r') {
			fg_nonce_done(scan);
			scan->param = FG_PARAM_BOUNDARY;
		}
		return;
	case FG_PARAM_STALE_EQ:
		/* pos 0: before =; then 1 + bytes of "true" matched; a quote may open it. */
		if (pos == 0) {
			if (b == '=')
				scan->param = FG_PARAM_STALE_EQ | 1 << 8;
			else if (!fg_is_blank(b))
				scan->param = FG_PARAM_OTHER;
			return;
		}
		if (pos == 1 && (b == '"' || fg_is_blank(b)))
			return;
		if (pos < 5 && lb == (__u8)(FG_W8("true\0\0\0\0") >> (8 * ((pos - 1) & 7)))) {
			scan->param = FG_PARAM_STALE_EQ | (pos + 1) << 8;
			if (pos + 1 == 5)
				scan->found |= FG_SCAN_STALE;
			return;
		}
		scan->param = fg_param_separator(b) ? FG_PARAM_BOUNDARY : FG_PARAM_OTHER;
		return;
	default:
		return;
	}
}

/*
 * Up to FG_SCAN_PARAM_TURNS turns over a credentials or challenge header's
 * parameters, to the LF that ends the line: a step of the walk in
 * FG_SCAN_PARAMS. A turn takes a byte (fg_scan_param), or up to a word of a
 * parameter that is not read, or up to a word of the nonce's value, hashed
 * (fg_nonce_mix), or up to a word of separators and the name after them
 * ("nonce" or "stale" with the byte that ends it, or up to a word of another).
 * They run to a few hundred bytes, which took a step a byte. Every turn takes
 * a byte at least but two, each followed by one that does: the one that
 * begins a token nonce on its first byte, and a name's that finds the LF
 * where the name would begin. A global function, so
 * that the verifier checks its loop once rather than on every path to it (its
 * result is not read).
 */
__noinline int fg_scan_params(struct fg_walk *w)
{
	struct fg_scan *scan;
	__u32 at, len, j;
	__u8 b;

	if (!w)
		return 0;
	scan = &w->scan;
	at = scan->at;
	len = scan->len;
#pragma nounroll
	for (j = 0; j < FG_SCAN_PARAM_TURNS; j++) {
		if (at >= len)
			break;
		if (scan->param == FG_PARAM_OTHER) {
			/* Inside a parameter that is not read, only its end
			 * counts (a separator, or the LF): up to a word at once.
			 * Bytes past the copy are stale; the walk ends there. */
			__u64 word = fg_word_at(&w->scratch, at);
			__u32 k = fg_first_param_end(word);

			if (k) {
				at += k;
				continue;
			}
			/* A separator (the LF takes the byte path): a name may
			 * follow, in this turn. */
			if ((__u8)word != '\n')
				scan->param = FG_PARAM_BOUNDARY;
		}
		if (scan->param == FG_PARAM_BOUNDARY) {
			/* Separators, up to a word of them; then the name that
			 * follows, if it is "nonce" or "stale" (any case) and
			 * the byte that ends it, its sixth, is within the copy. */
			__u64 word = fg_word_at(&w->scratch, at);
			__u32 k = fg_first_non_separator(word);

			at += k;
			if (k == 8 || at >= len)
				continue;
			if (len - at >= 6) {
				__u64 name = fg_word_at(&w->scratch, at);
				__u64 lname = (name | 0x2020202020ULL) & fg_low_bytes(5);
				__u8 end = name >> 40;

				if (lname == FG_W8("nonce\0\0\0") || lname == FG_W8("stale\0\0\0")) {
					/* What follows the name, as the byte path
					 * takes it after "nonce" or "stale"; any
					 * other byte is the next turn's, in a
					 * parameter that is not read. */
					int nonce = lname == FG_W8("nonce\0\0\0");

					if (end == '=')
						scan->param = nonce ? FG_PARAM_OPEN : FG_PARAM_STALE_EQ | 1 << 8;
					else if (fg_is_blank(end))
						scan->param = nonce ? FG_PARAM_EQUALS : FG_PARAM_STALE_EQ;
					else
						scan->param = FG_PARAM_OTHER;
					at += scan->param == FG_PARAM_OTHER ? 5 : 6;
					continue;
				}
				/* Another name: a parameter that is not read,
				 * passed up to its end (none but the LF, as
				 * the name's first byte, is one). */
				scan->param = FG_PARAM_OTHER;
				at += fg_first_param_end(name);
				continue;
			}
			/* A name that may run past the copy: a byte at a time. */
		} else if (scan->param == FG_PARAM_QUOTED || scan->param == FG_PARAM_TOKEN) {
			/* The nonce's value, up to its end: a quote, or for a
			 * token a separator; CR or LF for either. Within the copy
			 * (past it, the walk ends). */
			__u64 word = fg_word_at(&w->scratch, at);
			__u64 ends = scan->param == FG_PARAM_QUOTED ? fg_zero_bytes(word ^ 0x2222222222222222ULL)
								    : fg_param_separators(word);
			__u32 k = fg_first_flag(fg_crlf_bytes(word) | ends);

			if (k > len - at)
				k = len - at;
			if (k) {
				scan->nonce_hash = fg_nonce_mix(scan->nonce_hash, word, k);
				at += k;
				continue;
			}
		} else if (scan->param == FG_PARAM_OPEN) {
			/* A token's first byte: the token begins here, and the
			 * next turn takes the byte with its word. */
			b = w->scratch.buf[at & FG_SCAN_MASK];
			if (!fg_is_blank(b) && b != '"' && b != ',' && b != '\r' && b != '\n') {
				scan->nonce_hash = FG_FNV64_OFFSET;
				scan->param = FG_PARAM_TOKEN;
				continue;
			}
		}
		b = w->scratch.buf[at & FG_SCAN_MASK];
		at++;
		if (b == '\n') {
			scan->at = at;
			scan->state = FG_SCAN_LINE_START;
			return 0;
		}
		fg_scan_param(scan, b);
	}
	scan->at = at < len ? at : len;
	return 0;
}

/*
 * One byte (not LF) of a To value: a tag parameter counts only outside the
 * quoted display name and the <URI> (";tag=" inside either is not one: a
 * server would see no tag), with blanks allowed around ';' and '='.
 */
static __always_inline void fg_scan_to(struct fg_scan *scan, __u8 b)
{
	__u32 p = scan->param & 0xff, m = scan->param >> 8;
	__u8 lb = fg_lower(b);

	if (p & FG_TO_QUOTED) {
		if (p & FG_TO_ESCAPE)
			p &= ~FG_TO_ESCAPE;
		else if (b == '\\')
			p |= FG_TO_ESCAPE;
		else if (b == '"')
			p &= ~FG_TO_QUOTED;
		scan->param = p;
		return;
	}
	if (p & FG_TO_ANGLE) {
		if (b == '>')
			p &= ~FG_TO_ANGLE;
		scan->param = p;
		return;
	}
	if (b == '"' || b == '<') {
		scan->param = p | (b == '"' ? FG_TO_QUOTED : FG_TO_ANGLE);
		return;
	}
	if (b == ';')
		m = 1;
	else if (fg_is_blank(b) && (m == 1 || m == 4))
		; /* blanks around the separator */
	else if (m == 1 && lb == 't')
		m = 2;
	else if (m == 2 && lb == 'a')
		m = 3;
	else if (m == 3 && lb == 'g')
		m = 4;
	else if (m == 4 && b == '=')
		m = 5;
	else if (m == 5 && fg_is_blank(b))
		; /* blanks before the value */
	else if (m == 5 && b != ';' && b != ',' && b != '\r' && b != '>') {
		/* An empty tag is none (servers take ";tag=" alone for no tag). */
		scan->found |= FG_SCAN_TO_TAG;
		m = 0;
	} else
		m = 0;
	scan->param = p | m << 8;
}

/*
 * One step of the walk: a small state machine, so the verifier checks one step
 * rather than every path through a header. A step takes a word where it can
 * (up to 64 bytes of an uninteresting line, 8 of a header name, 32 of a value,
 * up to 4 runs of a CSeq's digits, blanks or method), up to 8 turns over
 * parameters (fg_scan_params), and a byte elsewhere (blanks around the colon,
 * a To value). The step that ends a header's name also takes ":" or ": " and
 * the value's first byte when they follow (fg_scan_colon_now), and a value's
 * CR takes its LF. Lines are the bytes after an LF. A value ends at CR or LF
 * (User-Agent and From: or at FG_SIGNATURE_BYTES - 1 bytes) and only a value
 * whose end is within the copied bytes counts.
 */
static __always_inline long fg_scan_one(struct fg_walk *w)
{
	__u32 at, len, k, take, j, pos;
	struct fg_scratch *s;
	struct fg_scan *scan;
	__u64 word, lw;
	__u8 b;

	s = &w->scratch;
	scan = &w->scan;
	at = scan->at;
	len = scan->len;
	if (at >= len)
		return 1;

	switch (scan->state) {
	case FG_SCAN_LEAD:
		/* Servers skip CRLFs before the start line: so does the walk, up
		 * to eight bytes a step. */
#pragma unroll
		for (j = 0; j < 8; j++) {
			b = s->buf[(at + j) & FG_SCAN_MASK];
			if (at + j >= len || (b != '\r' && b != '\n' && !fg_is_blank(b)))
				break;
		}
		scan->at = at + j;
		if (j < 8)
			scan->state = FG_SCAN_SKIP;
		return 0;
	case FG_SCAN_SKIP:
skip:
		/* The rest of an uninteresting line: up to eight words a step
		 * (a step's own cost is about that of four words). */
#pragma unroll
		for (j = 0; j < 8; j++) {
			k = fg_first_lf(fg_word_at(s, at));
			if (k < 8) {
				at += k + 1;
				scan->state = FG_SCAN_LINE_START;
				break;
			}
			at += 8;
			if (at >= len)
				break;
		}
		/* An LF found past the copied bytes was stale: the walk ends. */
		scan->at = at <= len ? at : len;
		if (at > len)
			scan->state = FG_SCAN_SKIP;
		return 0;
	case FG_SCAN_LINE_START:
		b = s->buf[at & FG_SCAN_MASK];
		if (b == '\r' || b == '\n') {
			/* The blank line: the header block ends here. */
			scan->found |= FG_SCAN_END;
			return 1;
		}
		/* Only the copied bytes choose the header: past them lie an
		 * earlier message's. */
		lw = fg_lower8(fg_word_at(s, at));
		if (len - at < 8)
			lw &= fg_low_bytes(len - at);
		switch ((__u8)lw) {
		case 'u': scan->kind = FG_SIGNATURE_USER_AGENT; break;
		case 'a': scan->kind = FG_NAME_AUTHORIZATION; break;
		case 'p':
			scan->kind = (__u8)(lw >> 8) != '-' ? FG_NAME_PROXY_AUTHORIZATION
				     : (__u8)(lw >> 16) == 'p' ? FG_NAME_PPI
								: FG_NAME_PAI;
			break;
		case 'r': scan->kind = FG_NAME_RPID; break;
		case 'w': scan->kind = FG_NAME_WWW_AUTHENTICATE; break;
		case 'i': scan->kind = FG_NAME_CALL_ID_COMPACT; break;
		case 'c': scan->kind = (__u8)(lw >> 8) == 's' ? FG_NAME_CSEQ : FG_NAME_CALL_ID; break;
		/* "f" alone is From's compact form: "fr" is on its way to "from". */
		case 'f': scan->kind = (__u8)(lw >> 8) == 'r' ? FG_SIGNATURE_FROM : FG_NAME_FROM_COMPACT; break;
		case 't':
			if (!scan->want_to) {
				scan->state = FG_SCAN_SKIP;
				goto skip;
			}
			scan->kind = (__u8)(lw >> 8) == 'o' ? FG_NAME_TO : FG_NAME_TO_COMPACT;
			break;
		default:
			scan->state = FG_SCAN_SKIP;
			goto skip;
		}
		scan->pos = 0;
		scan->state = FG_SCAN_NAME;
		/* fall through: its first word now */
	case FG_SCAN_NAME:
		k = fg_name_length(scan->kind) - scan->pos;
		take = k < 8 ? k : 8;
		/* Fewer bytes left than the name: not that header. The line may
		 * still end (and a blank line follow) within them. */
		if (at + take > len) {
			scan->state = FG_SCAN_SKIP;
			goto skip;
		}
		lw = fg_lower8(fg_word_at(s, at));
		if ((lw ^ fg_name_chunk(scan->kind, scan->pos)) & fg_low_bytes(take)) {
			/* "proxy-au" goes on as "thorizat" or as "thentica". */
			if (scan->kind == FG_NAME_PROXY_AUTHORIZATION && scan->pos == 8 &&
			    !((lw ^ FG_W8("thentica")) & fg_low_bytes(8))) {
				scan->kind = FG_NAME_PROXY_AUTHENTICATE;
			} else {
				scan->state = FG_SCAN_SKIP;
				goto skip;
			}
		}
		scan->pos += take;
		scan->at = at + take;
		if (scan->pos >= fg_name_length(scan->kind)) {
			scan->state = FG_SCAN_BLANKS;
			fg_scan_colon_now(s, scan, at + take, len);
		}
		return 0;
	default:
		break;
	}

	b = s->buf[at & FG_SCAN_MASK];
	switch (scan->state) {
	case FG_SCAN_BLANKS:
		scan->at = at + 1;
		if (b == ':')
			fg_scan_colon(scan);
		else if (!fg_is_blank(b))
			scan->state = b == '\n' ? FG_SCAN_LINE_START : FG_SCAN_SKIP;
		return 0;
	case FG_SCAN_FOLD:
		if (!fg_is_blank(b)) {
			/* Not a fold: this byte starts a line. */
			scan->state = FG_SCAN_LINE_START;
			return 0;
		}
		scan->at = at + 1;
		scan->state = FG_SCAN_COLON;
		return 0;
	case FG_SCAN_COLON:
		/* An empty value may go on in a folded line (RFC 3261 7.3.1). */
		if (fg_is_blank(b) || b == '\r') {
			scan->at = at + 1;
			return 0;
		}
		if (b == '\n') {
			scan->at = at + 1;
			scan->state = FG_SCAN_FOLD;
			return 0;
		}
		fg_scan_value_start(scan, at, b);
		return 0;
	case FG_SCAN_PARAMS:
		fg_scan_params(w);
		return 0;
	case FG_SCAN_TO_VALUE:
		scan->at = at + 1;
		if (b == '\n') {
			scan->state = FG_SCAN_LINE_START;
			return 0;
		}
		fg_scan_to(scan, b);
		return 0;
	case FG_SCAN_VALUE:
		break;
	default:
		return 0;
	}

	/* A value. */
	if (scan->kind == FG_NAME_CSEQ) {
		int end = fg_scan_cseq(s, scan, at, len);

		if (end >= 0) {
			scan->found |= FG_SCAN_CSEQ;
			fg_scan_after_value(s, scan, (__u8)end, scan->at, len);
		}
		return 0;
	}
	/* Up to FG_SCAN_VALUE_WORDS words a step, each taken as a step of its
	 * own took it before: a whole word (no CR or LF, within the copy, and
	 * for a key within its 31 bytes) lets the next one follow. Loops, not
	 * unrolled: unrolled, the step's spills took the walk past the
	 * verifier's 512 bytes of stack over its chain of calls. (A Call-ID's
	 * pos is not kept: nothing reads it.) */
	if (fg_is_call_id(scan->kind)) {
		__u64 hash = scan->callid_hash;

#pragma nounroll
		for (j = 0; j < FG_SCAN_VALUE_WORDS; j++) {
			word = fg_word_at(s, at);
			take = fg_value_take(word, at, len);
			hash = (hash ^ (word & fg_low_bytes(take))) * FG_FNV64_PRIME;
			at += take;
			if (take < 8 || at >= len)
				break;
		}
		scan->callid_hash = hash;
	} else {
		/* User-Agent or From: lower-cased into the key, at most 31 bytes. */
		s->key.data[0] = scan->kind == FG_NAME_FROM_COMPACT ? FG_SIGNATURE_FROM : scan->kind;
		pos = scan->pos;
#pragma nounroll
		for (j = 0; j < FG_SCAN_VALUE_WORDS; j++) {
			word = fg_word_at(s, at);
			take = fg_value_take(word, at, len);
			if (take > FG_SIGNATURE_BYTES - 1 - pos)
				take = FG_SIGNATURE_BYTES - 1 - pos;
			fg_store_word(&s->key.data[(1 + pos) & (FG_SIGNATURE_BYTES - 1)], fg_lower8(word));
			pos += take;
			at += take;
			if (take < 8 || at >= len || pos >= FG_SIGNATURE_BYTES - 1)
				break;
		}
		scan->pos = pos;
	}
	scan->at = at;
	/* The value runs past the copied bytes: it counts for nothing. */
	if (at >= len)
		return 1;
	/* Every word whole: the value goes on in the next step. */
	if (j == FG_SCAN_VALUE_WORDS)
		return 0;
	/* Ended (by CR or LF, or at the 31st byte): this byte is taken with it. */
	b = s->buf[at & FG_SCAN_MASK];
	scan->at = at + 1;
	if (fg_is_call_id(scan->kind)) {
		scan->callid = scan->callid_hash ^ (scan->callid_hash >> 32);
		scan->found |= FG_SCAN_CALLID;
	} else {
		s->key.prefixlen = 8 * (1 + scan->pos);
		if (bpf_map_lookup_elem(&fg_signatures, &s->key)) {
			scan->found |= FG_SCAN_SIGNATURE;
			return 1;
		}
	}
	fg_scan_after_value(s, scan, b, at + 1, len);
	return 0;
}

/* One call of bpf_loop's callback: two steps of the walk. A call costs about
 * as much as the work of a step (the call, loading and storing the state),
 * so two a call take about a quarter off a REGISTER's walk. `walk` is the
 * caller's pointer to this CPU's fg_walk (bpf_loop's context), read from its
 * stack rather than looked up again in each call. */
static long fg_scan_step(__u32 i, void *walk)
{
	struct fg_walk *w = *(struct fg_walk **)walk;

	if (fg_scan_one(w))
		return 1;
	return fg_scan_one(w);
}

/* Beyond any header stack the parse takes: keeps a payload pointer's offset
 * bounded for the verifier. */
#define FG_MAX_PAYLOAD_OFF 4096

/*
 * Copies the message's `len` bytes at `off` in the frame (2 to
 * FG_SIP_SCAN_BYTES) into `buf`; 0 on success. Where they are all in the
 * frame's linear part, by direct loads: 32 bytes a turn, then up to three
 * words, then, for a length that is not a multiple of 8, the word that ends at
 * the message's last byte (over bytes already copied). Else (a multi-buffer
 * frame, or fewer than 8 bytes) with bpf_xdp_load_bytes. That helper is a
 * call that makes two more (bpf_xdp_pointer, memcpy), and on this project's
 * VM, where every return goes through the SRSO return thunk, a call cost about
 * 7 ns (Benchmarks/README, "Calls off the legitimate path"). Each load's
 * bounds check is the verifier's: the first check already tells that the
 * message is in the frame.
 */
static __always_inline int fg_copy_message(struct xdp_md *ctx, __u32 off, __u32 len, __u8 *buf)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 i, at, turns;
	void *msg;

	if (off > FG_MAX_PAYLOAD_OFF || len < 8 || len > FG_SIP_SCAN_BYTES)
		return bpf_xdp_load_bytes(ctx, off, buf, len);
	msg = data + off;
	if (msg + len > data_end)
		return bpf_xdp_load_bytes(ctx, off, buf, len);
	/* Else the compiler drops the checks below, which the verifier needs,
	 * as implied by this one. */
	asm volatile("" : "+r"(msg));
	turns = len / 32;
#pragma nounroll
	for (i = 0; i < FG_SIP_SCAN_BYTES / 32; i++) {
		void *from = msg + 32 * i;
		__u8 *to = buf + 32 * i;

		if (i >= turns)
			break;
		if (from + 32 > data_end)
			return -1;
		*(__u64 *)to = *(__u64 *)from;
		*(__u64 *)(to + 8) = *(__u64 *)(from + 8);
		*(__u64 *)(to + 16) = *(__u64 *)(from + 16);
		*(__u64 *)(to + 24) = *(__u64 *)(from + 24);
	}
	/* From the length again, not from the loop's counters: every way out
	 * of the loop then leaves the same state to verify what follows. */
	at = len & ~31U;
#pragma unroll
	for (i = 0; i < 3; i++) {
		if (at + 8 > len)
			break;
		if (msg + at + 8 > data_end)
			return -1;
		*(__u64 *)(buf + at) = *(__u64 *)(msg + at);
		at += 8;
	}
	if (len & 7) {
		at = len - 8;
		if (msg + at + 8 > data_end)
			return -1;
		*(__u64 *)(buf + at) = *(__u64 *)(msg + at);
	}
	return 0;
}

/*
 * Walks the SIP message of `len` bytes at `off` in the frame, from byte
 * `skip` (past CRLFs already skipped). Returns the walk's result (in
 * this CPU's fg_scratch: found has the FG_SCAN_* bits, with the Call-ID hash
 * and CSeq), or NULL if the message could not be read.
 */
static __always_inline struct fg_scan *fg_scan_message(struct xdp_md *ctx, __u32 off, __u32 len, __u32 skip,
						       __u32 want_to)
{
	struct fg_walk *w;
	__u32 zero = 0;

	w = bpf_map_lookup_elem(&fg_scratch, &zero);
	if (!w)
		return NULL;
	/* Nothing copied: what is in the buffer is another packet's. */
	w->scan.len = 0;
	if (len > FG_SIP_SCAN_BYTES)
		len = FG_SIP_SCAN_BYTES;
	/* Keep the compiler from handing the verifier an unclamped copy. */
	asm volatile("" : "+r"(len));
	if (len < 2 || len > FG_SIP_SCAN_BYTES)
		return NULL;
	if (fg_copy_message(ctx, off, len, w->scratch.buf))
		return NULL;
	__builtin_memset(&w->scan, 0, sizeof(w->scan));
	w->scan.len = len;
	w->scan.at = skip;
	w->scan.want_to = want_to;
	/* Blanks before the start line need the LEAD steps; a letter starts
	 * the start line, which the SKIP steps pass over (one step saved). */
	w->scan.state = fg_is_lead_byte(w->scratch.buf[skip & FG_SCAN_MASK]) ? FG_SCAN_LEAD : FG_SCAN_SKIP;
	/* Each step takes at least a byte, but for a few that only change
	 * state (a value's start, the end of a fold): twice the bytes bound it.
	 * The walk ends itself at the last byte copied (fg_scan_one), so the
	 * loop is given the bound of the longest message: a constant, so that
	 * the message's length, whose range differs by the way it was copied,
	 * does not split the verifier's states before the walk. */
	bpf_loop(2 * FG_SIP_SCAN_BYTES, fg_scan_step, &w, 0);
	return &w->scan;
}

/*
 * The walk as a global function, for floodgate_inside's calls: the verifier
 * checks it once, not once for each path of the program that reaches it.
 * Returns 1 if the message was walked (the result is in this CPU's
 * fg_scratch: fg_scan_result), 0 if it could not be read.
 */
__noinline int fg_walk_message(struct xdp_md *ctx, __u32 off, __u32 len)
{
	return fg_scan_message(ctx, off, len, 0, 0) != NULL;
}

/* The last walk's result on this CPU. */
static __always_inline struct fg_scan *fg_scan_result(void)
{
	__u32 zero = 0;
	struct fg_walk *w = bpf_map_lookup_elem(&fg_scratch, &zero);

	return w ? &w->scan : NULL;
}

#endif /* FG_LIB_SCANNER_H */
