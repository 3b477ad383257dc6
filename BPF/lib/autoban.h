/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Auto-ban: a source whose own bucket keeps dropping its packets (at least
 * settings.autoban_drops drops within autoban_window_ms) is banned right here,
 * at the drop that crosses the threshold, so the reaction takes no round trip
 * through the agent. The ban lasts autoban_seconds[offence - 1] (the last
 * level repeats), plus 0 to autoban_jitter_pct percent at random so that
 * sources banned together do not all return in the same second; fg_offences
 * remembers each offender's count until offence_forget_s pass without a ban.
 * Every ban XDP issues (auto-ban or scanner) is also written to the fg_events
 * ring buffer for the agent to log and count.
 *
 * A verified or allow-listed source (lib/tiers.h) is never auto-banned: its
 * address can be forged, and a forger must not be able to ban it. The agent
 * is told instead (FG_EVENT_SPARED).
 *
 * Drops are counted where they reach fg_sources: at each slow-path drop and at
 * each flush of the drop cache (every FG_DROP_CACHE_FLUSH cached drops, or
 * when the source next takes the slow path), so a flood crosses the threshold
 * within a jiffy or FG_DROP_CACHE_FLUSH packets of doing so. Only drops by the
 * source's own bucket count: a spoofed random source never gets that far.
 */
#ifndef FG_LIB_AUTOBAN_H
#define FG_LIB_AUTOBAN_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "../floodgate.h"
#include "clock.h"
#include "lists.h"
#include "tiers.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FG_MAX_OFFENDERS);
	__type(key, struct fg_addr);
	__type(value, struct fg_offence);
} fg_offences SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, FG_EVENTS_BYTES);
} fg_events SEC(".maps");

/* Per-CPU room for the values fg_autoban writes: it runs at the end of a
 * deep call chain, whose stack must stay within 512 bytes. */
struct fg_autoban_scratch {
	struct fg_ban ban;
	struct fg_offence offence;
	struct fg_auth_state auth;
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fg_autoban_scratch);
} fg_autoban_scratch SEC(".maps");

static __always_inline void fg_event(__u32 type, __u32 traffic_class, const struct fg_addr *addr, __u64 expires_ns,
				     __u32 offence, __u32 drops)
{
	struct fg_event *e = bpf_ringbuf_reserve(&fg_events, sizeof(*e), 0);

	/* A full ring (an agent that is down or behind) loses the record, never the ban. */
	if (!e)
		return;
	e->type = type;
	e->traffic_class = traffic_class;
	e->addr = *addr;
	e->expires_ns = expires_ns;
	e->offence = offence;
	e->drops = drops;
	bpf_ringbuf_submit(e, 0);
}

/*
 * Bans `addr` for `length` ns with `flags`, unless it is under a ban that has
 * not expired (an operator's, a scanner's, an earlier one), and tells the
 * agent (`event`, with the offence number and the count that triggered it).
 * Returns 1 if it banned.
 */
static __always_inline int fg_issue_ban(struct fg_settings *s, const struct fg_addr *addr, __u64 length, __u32 flags,
					__u32 event, __u32 traffic_class, __u32 offence, __u32 count)
{
	struct fg_autoban_scratch *w;
	struct fg_ban *old;
	__u64 now = fg_clock_ns();
	__u32 zero = 0;

	w = bpf_map_lookup_elem(&fg_autoban_scratch, &zero);
	if (!w || !length)
		return 0;
	old = s->bans_present ? bpf_map_lookup_elem(&fg_bans, addr) : NULL;
	if (old && (old->expires_ns == 0 || old->expires_ns > now))
		return 0;
	old = bpf_map_lookup_elem(&fg_auto_bans, addr);
	if (old && (old->expires_ns == 0 || old->expires_ns > now))
		return 0;
	w->ban.expires_ns = now + length;
	w->ban.flags = flags;
	w->ban.pad = 0;
	/* An expired ban is replaced: a source that offends again is banned again. */
	if (bpf_map_update_elem(&fg_auto_bans, addr, &w->ban, BPF_ANY))
		return 0;
	/* After the insert: see FilterMaps.updateSettings. */
	s->auto_bans_present = 1;
	fg_event(event, traffic_class, addr, w->ban.expires_ns, offence, count);
	return 1;
}

/* Bans `addr` for its next offence (auto-ban); returns 1 if it did. */
static __always_inline int fg_autoban(struct fg_settings *s, const struct fg_addr *addr, __u32 traffic_class,
				      __u32 drops)
{
	struct fg_autoban_scratch *w;
	struct fg_offence *o;
	__u64 now = fg_clock_ns(), length, forget;
	__u32 zero = 0, level, seconds, jitter, count;

	w = bpf_map_lookup_elem(&fg_autoban_scratch, &zero);
	if (!w)
		return 0;
	/* A verified or allow-listed source's excess is dropped by its bucket,
	 * never punished with a ban: its packets may be a forger's. */
	if (fg_is_vouched_for(s, addr)) {
		fg_event(FG_EVENT_SPARED, traffic_class, addr, 0, FG_BAN_AUTO, drops);
		return 0;
	}
	forget = (__u64)s->offence_forget_s * 1000000000ULL;
	o = bpf_map_lookup_elem(&fg_offences, addr);
	count = o && now - o->last_ns < forget ? o->count : 0;
	level = count < FG_AUTOBAN_LEVELS ? count : FG_AUTOBAN_LEVELS - 1;
	/* Levels left at 0 repeat the last one configured. */
	seconds = s->autoban_seconds[level & (FG_AUTOBAN_LEVELS - 1)];
	while (!seconds && level > 0) {
		level--;
		seconds = s->autoban_seconds[level & (FG_AUTOBAN_LEVELS - 1)];
	}
	if (!seconds)
		return 0;
	length = (__u64)seconds * 1000000000ULL;
	jitter = s->autoban_jitter_pct;
	if (jitter)
		length += length / 100 * (bpf_get_prandom_u32() % (jitter + 1));
	if (!fg_issue_ban(s, addr, length, FG_BAN_AUTO, FG_EVENT_AUTOBAN, traffic_class, count + 1, drops))
		return 0;
	w->offence.last_ns = now;
	w->offence.count = count + 1;
	w->offence.pad = 0;
	bpf_map_update_elem(&fg_offences, addr, &w->offence, BPF_ANY);
	return 1;
}

/* `n` more drops of a source by its own bucket, counted in its auto-ban
 * window; returns the drops in the window. */
static __always_inline __u32 fg_window_add(const struct fg_settings *s, struct fg_source_state *st, __u64 n)
{
	__u32 now_ms, drops;

	now_ms = s->jiffy_ns ? fg_clock_jiffies(s) * s->jiffy_ns / 1000000 : fg_clock_ns() / 1000000;
	if (now_ms - st->window_start_ms >= s->autoban_window_ms) {
		st->window_start_ms = now_ms;
		st->window_drops = 0;
	}
	drops = st->window_drops + n;
	st->window_drops = drops;
	return drops;
}

/*
 * Counts `n` more drops and bans key's source if its window holds enough. A
 * global function, verified once; called only where the call chain is
 * shallow (the main program), since the stack of fg_decide's chain is full:
 * drops counted inside fg_decide (fg_window_add) are acted on when it returns.
 */
__noinline int fg_note_drops(struct fg_settings *s, struct fg_source_state *st, struct fg_source_key *key, __u64 n)
{
	__u32 drops;

	if (!s || !st || !key || !s->autoban_drops || key->traffic_class == FG_CLASS_FRAGMENT)
		return 0;
	drops = fg_window_add(s, st, n);
	if (drops < s->autoban_drops)
		return 0;
	st->window_drops = 0;
	return fg_autoban(s, &key->addr, key->traffic_class, drops);
}

#endif /* FG_LIB_AUTOBAN_H */
