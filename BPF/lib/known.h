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
	index = FG_KNOWN_ACTIVE;
	word = bpf_map_lookup_elem(&fg_known, &index);
	if (!word)
		return 1;
	index = (__u32)*word + (bit >> 6);
	word = bpf_map_lookup_elem(&fg_known, &index);
	return !word || (READ_ONCE(*word) >> (bit & 63)) & 1;
}

/* Notes an entry just made for `addr`, in both halves. The OR is made even
 * when the bit reads set, and in its fetching (fully ordered) form: a plain
 * read of the word could see a bit the agent has just cleared, and skip the
 * OR, while the agent's walk does not yet see the new entry. */
static __always_inline void fg_known_add(const struct fg_addr *addr)
{
	__u32 index = FG_KNOWN_SEED, bit, half;
	__u64 *seed = bpf_map_lookup_elem(&fg_known, &index), *word, old;

	if (!seed)
		return;
	bit = fg_known_bit(addr, *seed);
	for (half = 0; half < 2; half++) {
		index = fg_known_half(*seed, half) + (bit >> 6);
		word = bpf_map_lookup_elem(&fg_known, &index);
		if (word) {
			old = __sync_fetch_and_or(word, 1ULL << (bit & 63));
			asm volatile("" ::"r"(old));
		}
	}
}

#endif /* FG_LIB_KNOWN_H */
