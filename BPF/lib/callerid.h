/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Caller ID: the numbers a source may present. The agent maps source
 * prefixes (an allow-listed trunk, a PBX's network) to a set of number
 * ranges (fg_caller_sources, fg_caller_ranges). A new call from a source in
 * one of those prefixes presents a caller number in its From header and,
 * from a trunk, in P-Asserted-Identity; each is read like a dialled number
 * (lib/numbers.h) and made E.164 the same way. The call matches when:
 *
 * - every number it presents (From, the first and the last P-Asserted-
 *   Identity) is within the ranges, and at least one is there: an
 *   anonymous From ("sip:anonymous@anonymous.invalid") is fine beside a PAI
 *   in range, and a URI that is no number counts for nothing;
 * - nothing is ambiguous: one From, at most two P-Asserted-Identity headers
 *   (a sip and a tel URI, RFC 3325), and each URI readable within the bytes
 *   the walk copied.
 *
 * A display name is skipped with its quotes and escapes, so a number written
 * in it ("+44 20 7946 0000" <sip:+900...@x>) is not taken for the URI's.
 * settings.caller_id_mode says what a mismatch does: FG_CALLER_ID_FLAG
 * counts it and tells the agent, FG_CALLER_ID_ENFORCE also refuses the call.
 * Sources outside every prefix are not checked.
 */
#ifndef FG_LIB_CALLERID_H
#define FG_LIB_CALLERID_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "../floodgate.h"
#include "autoban.h"
#include "numbers.h"
#include "scanner.h"
#include "state.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, FG_MAX_CALLER_SOURCES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fg_cidr_key);
	__type(value, __u32);
} fg_caller_sources SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, FG_MAX_CALLER_RANGES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fg_caller_range_key);
	__type(value, __u32);
} fg_caller_ranges SEC(".maps");

#define FG_CALLER_OK 0
#define FG_CALLER_MISMATCH 1
#define FG_CALLER_NOT_LISTED 2

/* Sixteen bytes of a URI (the Request-URI, a caller's) a call of bpf_loop's
 * callback: the walk in fg_scratch's num. */
static long fg_number_step(__u32 i, void *unused)
{
	__u32 zero = 0, j, at;
	struct fg_walk *w = bpf_map_lookup_elem(&fg_scratch, &zero);
	struct fg_number_walk *n;

	if (!w)
		return 1;
	n = &w->num;
#pragma unroll
	for (j = 0; j < 16; j++) {
		at = n->at;
		if (at >= n->end)
			return 1; /* out of bytes: result stays unreadable */
		n->at = at + 1;
		if (fg_number_byte(n, w->scratch.buf[at & FG_SCAN_MASK]))
			return 1;
	}
	return 0;
}

/*
 * The caller URI whose value starts at `at` of the copy, against the ranges
 * of `id`: FG_CALLER_OK in range, FG_CALLER_MISMATCH out of range or
 * unreadable (a second URI on the line included), FG_CALLER_NOT_LISTED not
 * a number. The number read is left in the scratch's caller_key. A global
 * function: verified once, whatever calls it.
 */
__noinline int fg_caller_uri(__u32 at, __u32 id)
{
	__u32 zero = 0, i, angle;
	struct fg_settings *s = bpf_map_lookup_elem(&fg_settings, &zero);
	struct fg_walk *w = bpf_map_lookup_elem(&fg_scratch, &zero);
	struct fg_number_walk *n;
	__u8 last;

	if (!s || !w)
		return FG_CALLER_MISMATCH;
	n = &w->num;
	__builtin_memset(n, 0, sizeof(*n));
	n->end = w->scan.len;
	n->at = at;
	n->state = FG_NUM_GAP;
	n->caller = FG_NUM_CALLER;
	n->result = FG_NUMBER_UNREADABLE;
	bpf_loop(FG_RURI_BYTES / 16 + 1, fg_number_step, NULL, 0);
	if (n->state != FG_NUM_DONE || n->result == FG_NUMBER_UNREADABLE)
		return FG_CALLER_MISMATCH;
	/* The rest of the line: no second URI in the value, and where the
	 * next value starts, if a ',' ends this one. Still inside the angle
	 * brackets unless the byte that ended the number closed them; a bare
	 * URI (a tel number) may have ended at the ',' or '<' itself. */
	last = w->scratch.buf[(n->at - 1) & FG_SCAN_MASK];
	angle = n->caller == FG_NUM_BRACKET && last != '>';
	n->next = 0;
	if (n->caller != FG_NUM_BRACKET && last == '<')
		return FG_CALLER_MISMATCH;
	if (n->caller != FG_NUM_BRACKET && last == ',') {
		n->next = n->at;
	} else {
		n->state = FG_NUM_TAIL;
		n->pos = angle;
		n->escape = 0;
		bpf_loop(FG_SIP_SCAN_BYTES / 16, fg_number_step, NULL, 0);
		if (n->state != FG_NUM_DONE || n->result == FG_NUMBER_UNREADABLE)
			return FG_CALLER_MISMATCH;
	}
	if (n->result != FG_NUMBER_FOUND || !fg_number_key(s, n, 0, &w->caller_number))
		return FG_CALLER_NOT_LISTED;
	w->caller_key.prefixlen = 32 + (w->caller_number.prefixlen - 8);
	w->caller_key.id = bpf_htonl(id);
#pragma unroll
	for (i = 0; i < FG_NUMBER_DIGITS / 2; i++)
		w->caller_key.digits[i] = w->caller_number.digits[i];
	return bpf_map_lookup_elem(&fg_caller_ranges, &w->caller_key) ? FG_CALLER_OK : FG_CALLER_MISMATCH;
}

/*
 * The caller-ID check of a new call from pkt->src, whose message the walk
 * has copied: FG_CALLER_OK (or not checked) or FG_CALLER_MISMATCH. The
 * identities read: From; the first and the last P-Asserted-Identity, the
 * first Remote-Party-ID and the first P-Preferred-Identity, each with every
 * value of its line (RFC 3325: a sip and a tel URI, after a ','). At most
 * FG_CALLER_VALUES values in all. Where each starts is kept in the
 * scratch: on this function's stack those offsets took 32 of the 512 bytes
 * the verifier allows the chain of calls from the main program through
 * fg_destination, fg_caller_uri and fg_number_step, which a main program 16
 * bytes larger took past 512 (Benchmarks/README, "A drained aggregate's
 * datagrams dropped before the parse"). A global function: its stack is its
 * own.
 */
#define FG_CALLER_VALUES 8
_Static_assert(sizeof(((struct fg_walk *)0)->caller_at) == FG_CALLER_VALUES * sizeof(__u32),
	       "the scratch holds where each caller value starts");
__noinline int fg_caller_id(struct fg_packet *pkt)
{
	__u32 zero = 0, *id, found, ids, seen = 0, *at, count = 0, i, next;
	struct fg_settings *s = bpf_map_lookup_elem(&fg_settings, &zero);
	struct fg_walk *w = bpf_map_lookup_elem(&fg_scratch, &zero);
	struct fg_cidr_key key = {.prefixlen = 128};
	int r;

	if (!s || !w || !pkt || !s->caller_id_entries || s->caller_id_mode == FG_CALLER_ID_OFF)
		return FG_CALLER_OK;
	key.addr = pkt->src;
	id = bpf_map_lookup_elem(&fg_caller_sources, &key);
	if (!id)
		return FG_CALLER_OK;
	ids = *id;
	at = w->caller_at;
	__builtin_memset(at, 0, sizeof(w->caller_at));
	found = w->scan.found;
	w->caller_key.prefixlen = 0;
	/* Which of two a server reads is anyone's guess. */
	if ((found & FG_SCAN_FROM_TWICE) || w->scan.pai_count > 2 || w->scan.rpid_count > 1 || w->scan.ppi_count > 1 ||
	    !(found & FG_SCAN_END))
		return FG_CALLER_MISMATCH;
	at[1] = w->scan.pai_at;
	at[2] = w->scan.pai_last != w->scan.pai_at ? w->scan.pai_last : 0;
	at[3] = w->scan.rpid_at;
	at[4] = w->scan.ppi_at;
	count = 5;
	/* The From value first: one URI, no ',' after it. */
	if (w->scan.from_at) {
		r = fg_caller_uri(w->scan.from_at, ids);
		if (r == FG_CALLER_MISMATCH || w->num.next)
			return FG_CALLER_MISMATCH;
		seen |= r == FG_CALLER_OK;
	}
	for (i = 1; i < FG_CALLER_VALUES; i++) {
		if (i >= count)
			break;
		if (!at[i])
			continue;
		r = fg_caller_uri(at[i], ids);
		if (r == FG_CALLER_MISMATCH)
			return r;
		seen |= r == FG_CALLER_OK;
		next = w->num.next;
		if (next) {
			if (count >= FG_CALLER_VALUES)
				return FG_CALLER_MISMATCH;
			at[count & (FG_CALLER_VALUES - 1)] = next;
			count++;
		}
	}
	return seen ? FG_CALLER_OK : FG_CALLER_MISMATCH;
}

#endif /* FG_LIB_CALLERID_H */
