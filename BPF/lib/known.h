/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Which addresses may have state (fg_known; the layout and its rules are in
 * floodgate.h): a random-source flood's packet from an address without any is
 * refused by the new-source budget without a lookup in fg_sources or
 * fg_trusted, each a miss to memory at a million entries.
 */
#ifndef FG_LIB_KNOWN_H
#define FG_LIB_KNOWN_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "../floodgate.h"
#include "once.h"

/* The seed (with the log of a half's bits), the half XDP reads, and the two
 * halves; the agent sizes it at load and maps it (BPF_F_MMAPABLE) to rebuild
 * a half. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FG_KNOWN_ENTRIES_MIN);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} fg_known SEC(".maps");

/* May `addr` have an entry in fg_sources or fg_trusted? 0 means it has none. */
static __always_inline int fg_known_maybe(const struct fg_addr *addr)
{
	__u32 index = FG_KNOWN_SEED, bit;
	__u64 *seed = bpf_map_lookup_elem(&fg_known, &index), *word;

	if (!seed)
		return 1;
	bit = fg_known_bit(addr, *seed);
	/* Computed here, not after the next lookup: only the bit is then held
	 * across it, not the address's words (spilled, they took fg_flush_source's
	 * frame from 24 bytes to 48, on a chain of calls at the verifier's
	 * limit). */
	asm volatile("" : "+r"(bit));
	index = FG_KNOWN_ACTIVE;
	word = bpf_map_lookup_elem(&fg_known, &index);
	if (!word)
		return 1;
	index = (__u32)*word + (bit >> 6);
	word = bpf_map_lookup_elem(&fg_known, &index);
	return !word || (READ_ONCE(*word) >> (bit & 63)) & 1;
}

/* Sets bit `bit` of the word at `index`, in its fetching (fully ordered)
 * form: a plain read of the word could see a bit the agent has just cleared,
 * and skip the OR, while the agent's walk does not yet see the new entry. */
static __always_inline void fg_known_set(__u32 index, __u32 bit)
{
	__u64 *word = bpf_map_lookup_elem(&fg_known, &index), old;

	if (word) {
		old = __sync_fetch_and_or(word, 1ULL << (bit & 63));
		asm volatile("" ::"r"(old));
	}
}

/*
 * Notes an entry just made for `addr`: its bit in the half XDP reads, and in
 * both halves while the agent rebuilds one (or if the half XDP reads changed
 * meanwhile). Outside a rebuild the other half is not written: the next
 * rebuild zeroes it and sets the bits of every entry its walk reads.
 *
 * Why no entry is missed. At the start of a rebuild the agent sets
 * [FG_KNOWN_REBUILDING], fences, then zeroes the half and walks the maps. Here
 * the entry is made, then the first OR (a full barrier), then the word is
 * read: if it reads clear, the agent's store comes after that read, so its
 * walk, after its fence, finds the entry. At the end the agent makes its
 * half the one XDP reads, fences, then clears the word: if the word reads
 * clear from that store, the half index read after it (loads stay in order
 * on x86; elsewhere this read would need acquire ordering) is the new one.
 * Either the first OR went there too, or the index differs and both halves
 * are written. (If whole rebuilds ran between the two reads, and the index
 * came back to the first one, the last of them zeroed that word before the
 * first OR, and the bit stands, or after it, and its walk finds the entry:
 * on x86 stores reach memory in one order, the entry's before the OR's.)
 */
static __always_inline void fg_known_add(const struct fg_addr *addr)
{
	__u32 index = FG_KNOWN_SEED, bit, first;
	__u64 *seed = bpf_map_lookup_elem(&fg_known, &index), *active, *rebuilding;

	if (!seed)
		return;
	bit = fg_known_bit(addr, *seed);
	/* Computed here, as in fg_known_maybe: only the bit is held across the
	 * next lookup, not the address's words. */
	asm volatile("" : "+r"(bit));
	index = FG_KNOWN_ACTIVE;
	active = bpf_map_lookup_elem(&fg_known, &index);
	index = FG_KNOWN_REBUILDING;
	rebuilding = bpf_map_lookup_elem(&fg_known, &index);
	first = active ? READ_ONCE(*active) : 0;
	if (first)
		fg_known_set(first + (bit >> 6), bit);
	/* (Without the two words, unreachable for an array, both halves.) */
	if (!first || !rebuilding || READ_ONCE(*rebuilding) || (__u32)READ_ONCE(*active) != first) {
		fg_known_set(fg_known_half(*seed, 0) + (bit >> 6), bit);
		fg_known_set(fg_known_half(*seed, 1) + (bit >> 6), bit);
	}
}

#endif /* FG_LIB_KNOWN_H */
