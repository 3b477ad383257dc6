/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The number an INVITE dials: the user part of its Request-URI, read from
 * the copy of the message the header walk made (lib/scanner.h), and made an
 * E.164 number with the site's dialling prefixes.
 *
 *   INVITE sip:+44-20-7946-0000;isub=1@trunk.example;user=phone SIP/2.0
 *   INVITE sips:00442079460000@trunk.example SIP/2.0
 *   INVITE tel:+44(20)79460000;phone-context=example.com SIP/2.0
 *
 * The scheme is sip, sips or tel (any case). A sip or sips URI's user part
 * runs to its '@' (a URI without one has no user part; ? and , may be in
 * it); a tel URI's number runs to its first parameter or its end. In it: a leading '+', digits, the
 * visual separators - . ( ) and percent-escapes of any of these (a server
 * unescapes them, so must we). The number is the run of digits from the
 * start; a user part that goes on with anything else (letters, '*', '#')
 * after at least one digit still dials those digits as far as the rules are
 * concerned, and one that starts with anything else is "not a number": no
 * rule applies to it (sip:alice@example.com). A Request-URI whose user part
 * does not end within the bytes read (FG_RURI_BYTES, the packet, the
 * segment) is "unreadable": its number could be anything.
 *
 * Then, in order: a '+' means the digits are E.164 already; else an
 * international prefix (00, 011) is taken off; else the national prefix (0)
 * is replaced by the country code; else settings.bare_numbers says what the
 * digits are. The rules see the first FG_NUMBER_DIGITS digits: all of any
 * E.164 number, and of a longer string at least as many as any rule has.
 */
#ifndef FG_LIB_NUMBERS_H
#define FG_LIB_NUMBERS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "../floodgate.h"

/* How far the reading of a Request-URI got. */
enum fg_number_state {
	FG_NUM_LEAD,	/* CR, LF, SP, HT before the start line */
	FG_NUM_METHOD,	/* the method, up to its blank */
	FG_NUM_GAP,	/* blanks before the URI */
	FG_NUM_SCHEME,	/* the scheme, up to its colon */
	FG_NUM_USER,	/* the number: +, digits, separators */
	FG_NUM_PCT1,	/* a percent-escape's first hex digit */
	FG_NUM_PCT2,	/* and its second */
	FG_NUM_REST,	/* sip, sips: the rest of the user part (parameters, or what ended the digits), up to '@' */
	FG_NUM_DONE,
	FG_NUM_DISPLAY, /* a caller's From or P-Asserted-Identity value: its display name, up to '<' */
	FG_NUM_TAIL,	/* a caller's value after its number: to the line's end, for a second URI */
};

/* fg_number_walk.caller: reading a caller's URI (lib/callerid.h), from the
 * first byte of a From or P-Asserted-Identity value (FG_NUM_GAP): either a
 * bare URI, or a display name (a token, or quoted with backslash escapes)
 * and the URI in angle brackets. */
#define FG_NUM_CALLER 1
#define FG_NUM_BRACKET 2 /* the '<' was read: the scheme must follow */
#define FG_NUM_QUOTED 1	 /* in .escape, in FG_NUM_DISPLAY: inside quotes */
#define FG_NUM_BACKSLASH 2 /* after a backslash inside them */

/* What was read. */
enum fg_number_result {
	FG_NUMBER_UNREADABLE = 0, /* the user part did not end within the bytes read */
	FG_NUMBER_NONE = 1,	  /* not a number: no rule applies */
	FG_NUMBER_FOUND = 2,	  /* digits[0..count) (up to FG_RAW_DIGITS kept), plus */
};

#define FG_SCHEME_SIP 1
#define FG_SCHEME_TEL 2
#define FG_RAW_DIGITS 32

struct fg_number_walk {
	__u32 at;     /* the next byte of the copy */
	__u32 end;    /* the bytes that may be read */
	__u32 state;  /* enum fg_number_state */
	__u32 result; /* enum fg_number_result, once state is FG_NUM_DONE */
	__u32 scheme; /* its lower-cased bytes as read, then FG_SCHEME_* */
	__u32 pos;    /* bytes of the scheme read; in the user part: any byte read */
	__u32 count;  /* digits read (more than are kept, for a long one) */
	__u32 plus;   /* it began with + */
	__u32 escape; /* the first hex digit of a percent-escape */
	__u32 caller; /* FG_NUM_CALLER, FG_NUM_BRACKET */
	__u32 next;   /* FG_NUM_TAIL: where a value after a ',' starts; 0: none */
	__u8 digits[FG_RAW_DIGITS]; /* values 0-9 */
};

static __always_inline int fg_number_blank(__u8 b)
{
	return b == ' ' || b == '\t';
}

static __always_inline int fg_hex_value(__u8 b)
{
	if (b >= '0' && b <= '9')
		return b - '0';
	b |= 0x20;
	if (b >= 'a' && b <= 'f')
		return b - 'a' + 10;
	return -1;
}

static __always_inline void fg_number_end(struct fg_number_walk *n, __u32 result)
{
	n->result = result;
	n->state = FG_NUM_DONE;
}

/* The user part (or tel number) ended here, cleanly. */
static __always_inline void fg_number_complete(struct fg_number_walk *n)
{
	fg_number_end(n, n->count ? FG_NUMBER_FOUND : FG_NUMBER_NONE);
}

/* A byte of the number, `escaped` if it came from a percent-escape. */
static __always_inline void fg_number_char(struct fg_number_walk *n, __u8 b, int escaped)
{
	int tel = n->scheme == FG_SCHEME_TEL;

	if (b >= '0' && b <= '9') {
		/* Only the first FG_RAW_DIGITS are kept; all are counted. */
		if (n->count < FG_RAW_DIGITS)
			n->digits[n->count & (FG_RAW_DIGITS - 1)] = b - '0';
		n->count++;
		n->pos++;
		return;
	}
	if (b == '+' && !n->pos && !n->plus) {
		n->plus = 1;
		return;
	}
	if (b == '-' || b == '.' || b == '(' || b == ')') {
		n->pos++;
		return;
	}
	if (!escaped) {
		if (b == '@') {
			/* A sip user part ends here; a tel URI has no '@'. */
			if (tel)
				fg_number_end(n, FG_NUMBER_NONE);
			else
				fg_number_complete(n);
			return;
		}
		if (b == ';' && tel) {
			fg_number_complete(n);
			return;
		}
		/* The URI ends: a tel number with it; a sip URI had no user part.
		 * (A sip user part may hold ? and , — RFC 3261 user-unreserved.) */
		if (fg_number_blank(b) || b == '\r' || b == '\n' || b == '>' || (tel && (b == '?' || b == ','))) {
			if (tel)
				fg_number_complete(n);
			else
				fg_number_end(n, FG_NUMBER_NONE);
			return;
		}
	}
	/* Anything else ends the digits: those read still count, if any. */
	if (!n->count) {
		fg_number_end(n, FG_NUMBER_NONE);
		return;
	}
	if (tel)
		fg_number_complete(n);
	else
		n->state = FG_NUM_REST;
}

/* Quotes in a header value (a display name, a quoted parameter), with
 * backslash escapes: *quoted holds FG_NUM_QUOTED and FG_NUM_BACKSLASH.
 * Returns 1 if `b` is taken by them (inside the quotes, or one of them). */
static __always_inline int fg_quoted_byte(__u32 *quoted, __u8 b)
{
	if (*quoted & FG_NUM_BACKSLASH) {
		*quoted = FG_NUM_QUOTED;
		return 1;
	}
	if (*quoted & FG_NUM_QUOTED) {
		if (b == '\\')
			*quoted = FG_NUM_QUOTED | FG_NUM_BACKSLASH;
		else if (b == '"')
			*quoted = 0;
		return 1;
	}
	if (b == '"') {
		*quoted = FG_NUM_QUOTED;
		return 1;
	}
	return 0;
}

/* A byte of a caller's display name: a '<' outside quotes opens the URI;
 * the line's end first means there is none. Returns 1 once done. */
static __always_inline int fg_number_display(struct fg_number_walk *n, __u8 b)
{
	/* No URI on the line: folded onto the next one, or none at all. */
	if (b == '\r' || b == '\n') {
		fg_number_end(n, FG_NUMBER_UNREADABLE);
		return 1;
	}
	if (fg_quoted_byte(&n->escape, b))
		return 0;
	if (b == '<') {
		/* Blanks may follow it, as parsers skip them. */
		n->caller = FG_NUM_BRACKET;
		n->scheme = 0;
		n->pos = 0;
		n->state = FG_NUM_GAP;
	}
	return 0;
}

/* A byte of a caller's value after its number (FG_NUM_TAIL; .pos: still
 * inside the URI's angle brackets; .escape: quotes as in FG_NUM_DISPLAY). A
 * '<' outside quotes and brackets is a second URI in the value, which makes
 * it unreadable (which one a server takes is anyone's guess); a ',' ends the
 * value, and .next says where the next one starts. Returns 1 at the line's
 * end or at either (state FG_NUM_DONE, but for a second URI). */
static __always_inline int fg_number_tail(struct fg_number_walk *n, __u8 b)
{
	if (b == '\r' || b == '\n') {
		n->state = FG_NUM_DONE;
		return 1;
	}
	if (n->pos) {
		if (b == '>')
			n->pos = 0;
		return 0;
	}
	if (fg_quoted_byte(&n->escape, b))
		return 0;
	if (b == '<') {
		fg_number_end(n, FG_NUMBER_UNREADABLE);
		return 1;
	}
	if (b == ',') {
		n->next = n->at;
		n->state = FG_NUM_DONE;
		return 1;
	}
	return 0;
}

/* One byte of the request. Returns 1 once the reading is done. */
static __always_inline int fg_number_byte(struct fg_number_walk *n, __u8 b)
{
	int v;

	switch (n->state) {
	case FG_NUM_LEAD:
		if (b == '\r' || b == '\n' || fg_number_blank(b))
			return 0;
		n->state = FG_NUM_METHOD;
		return 0;
	case FG_NUM_METHOD:
		if (fg_number_blank(b))
			n->state = FG_NUM_GAP;
		else if (b == '\r' || b == '\n')
			fg_number_end(n, FG_NUMBER_NONE);
		return 0;
	case FG_NUM_GAP:
		if (fg_number_blank(b))
			return 0;
		n->state = FG_NUM_SCHEME;
		/* fall through: the scheme's first byte */
	case FG_NUM_SCHEME:
		if (b == ':') {
			/* "sip", "sips", "tel", lower-cased, little-endian. */
			if (n->scheme == 0x706973 || n->scheme == 0x73706973)
				n->scheme = FG_SCHEME_SIP;
			else if (n->scheme == 0x6c6574)
				n->scheme = FG_SCHEME_TEL;
			else {
				fg_number_end(n, FG_NUMBER_NONE);
				return 1;
			}
			n->pos = 0;
			n->state = FG_NUM_USER;
			return 0;
		}
		if (n->pos >= 4 || b < 'A') {
			/* A caller's value that doesn't start with a scheme
			 * starts with a display name: the URI is in brackets. */
			if (n->caller == FG_NUM_CALLER) {
				n->state = FG_NUM_DISPLAY;
				n->escape = 0;
				return fg_number_display(n, b);
			}
			fg_number_end(n, FG_NUMBER_NONE);
			return 1;
		}
		n->scheme |= (__u32)(b | 0x20) << (8 * (n->pos & 3));
		n->pos++;
		return 0;
	case FG_NUM_DISPLAY:
		return fg_number_display(n, b);
	case FG_NUM_TAIL:
		return fg_number_tail(n, b);
	case FG_NUM_USER:
		if (b == '%') {
			n->state = FG_NUM_PCT1;
			return 0;
		}
		fg_number_char(n, b, 0);
		return n->state == FG_NUM_DONE;
	case FG_NUM_PCT1:
	case FG_NUM_PCT2:
		v = fg_hex_value(b);
		if (v < 0) {
			/* Not an escape: a server would refuse the URI. */
			fg_number_end(n, FG_NUMBER_NONE);
			return 1;
		}
		if (n->state == FG_NUM_PCT1) {
			n->escape = v;
			n->state = FG_NUM_PCT2;
			return 0;
		}
		n->state = FG_NUM_USER;
		fg_number_char(n, (__u8)(n->escape << 4 | v), 1);
		return n->state == FG_NUM_DONE;
	case FG_NUM_REST:
		if (b == '@') {
			fg_number_complete(n);
			return 1;
		}
		if (fg_number_blank(b) || b == '\r' || b == '\n' || b == '>') {
			fg_number_end(n, FG_NUMBER_NONE);
			return 1;
		}
		return 0;
	default:
		return 1;
	}
}

/* Do the digits read start with the prefix? */
static __always_inline int fg_dialled_with(const struct fg_number_walk *n, const struct fg_dial_prefix *p)
{
	__u32 len = p->len, i;

	if (!len || len > 7 || len > n->count)
		return 0;
#pragma unroll
	for (i = 0; i < 7; i++) {
		if (i < len && n->digits[i] != p->digits[i])
			return 0;
	}
	return 1;
}

/*
 * The E.164 digits of a number read, as a destination key of `set`. Returns
 * 0 if the number has none (a local number; a prefix alone).
 */
static __always_inline int fg_number_key(const struct fg_settings *s, const struct fg_number_walk *n, __u32 set,
					 struct fg_destination_key *key)
{
	const struct fg_dial_prefix *cc = &s->country;
	__u32 from = 0, lead = 0, total, i, count = n->count, k;
	__u8 d;

	if (!n->plus) {
		if (fg_dialled_with(n, &s->international[0]))
			from = s->international[0].len;
		else if (fg_dialled_with(n, &s->international[1]))
			from = s->international[1].len;
		else if (fg_dialled_with(n, &s->national)) {
			from = s->national.len;
			lead = cc->len;
		} else if (s->bare_numbers == FG_BARE_NATIONAL)
			lead = cc->len;
		else if (s->bare_numbers == FG_BARE_LOCAL)
			return 0;
	}
	if (lead > 7)
		lead = 7;
	total = lead + (count - from);
	if (count <= from || !total)
		return 0;
	__builtin_memset(key, 0, sizeof(*key));
	key->set = set;
#pragma unroll
	for (i = 0; i < FG_NUMBER_DIGITS; i++) {
		k = from + i - lead;
		d = i < lead ? cc->digits[i < 7 ? i : 6] : n->digits[k & (FG_RAW_DIGITS - 1)];
		if (i < total)
			key->digits[i / 2] |= i & 1 ? d : d << 4;
	}
	key->prefixlen = 8 + 4 * (total < FG_NUMBER_DIGITS ? total : FG_NUMBER_DIGITS);
	return 1;
}

/*
 * Is the number in `key` international: does it not start with the site's
 * country code? Never, without one. Whole words, without a branch per digit
 * (the verifier would follow each): the code's digits past its length are 0.
 */
static __always_inline int fg_international(const struct fg_settings *s, const struct fg_destination_key *key)
{
	const struct fg_dial_prefix *cc = &s->country;
	__u32 len = cc->len, digits = (key->prefixlen - 8) / 4;
	__u64 code = 0, number = 0, mask;
	int i;

	if (!len || len > 7)
		return 0;
	if (digits < len)
		return 1;
#pragma unroll
	for (i = 0; i < 7; i++)
		code |= (__u64)(cc->digits[i] & 0xf) << (60 - 4 * i);
#pragma unroll
	for (i = 0; i < 8; i++)
		number |= (__u64)key->digits[i] << (56 - 8 * i);
	mask = ~0ULL << (64 - 4 * len);
	return ((code ^ number) & mask) != 0;
}

#endif /* FG_LIB_NUMBERS_H */
