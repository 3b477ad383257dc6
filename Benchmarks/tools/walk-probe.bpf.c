// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The header walk alone, for walk-diff.sh: the frame's bytes from offset 64
 * are walked as a SIP message (lib/scanner.h, as Floodgate's object of the
 * same tree has it), and what the walk found is written over the frame's
 * first 48 bytes, which BPF_PROG_TEST_RUN hands back. The prefix's first
 * byte is want_to (bit 0); its second fills the copy's buffer before the walk.
 */
#include "floodgate.bpf.c"

SEC("xdp")
int walk_probe(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct fg_scan *scan;
	struct fg_walk *w;
	__u32 *out, zero = 0, i;
	__u64 fill;

	if (data + 64 > data_end)
		return XDP_ABORTED;
	/* The prefix's second byte fills the copy's buffer first: what the walk
	 * finds must not depend on the bytes past the message (an earlier
	 * message's, in the filter). */
	w = bpf_map_lookup_elem(&fg_scratch, &zero);
	if (!w)
		return XDP_ABORTED;
	fill = ((__u8 *)data)[1] * 0x0101010101010101ULL;
	for (i = 0; i < FG_SIP_SCAN_BYTES / 8; i++)
		*(__u64 *)&w->scratch.buf[i * 8] = fill;
	/* The prefix's first byte: want_to (read the To header). */
	scan = fg_scan_message(ctx, 64, (__u32)(data_end - data) - 64, 0, *(__u8 *)data & 1);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	out = data;
	if (data + 64 > data_end || !scan)
		return XDP_ABORTED;
	out[0] = scan->found;
	out[1] = scan->cseq;
	out[2] = (__u32)scan->method;
	out[3] = (__u32)(scan->method >> 32);
	out[4] = scan->at;
	out[5] = scan->state;
	out[6] = scan->pos;
	out[7] = scan->callid;
	out[8] = (__u32)scan->nonce;
	out[9] = (__u32)(scan->nonce >> 32);
	out[10] = scan->from_at;
	out[11] = scan->pai_count;
	return XDP_PASS;
}
