/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the SIP server's answers say about external sources, seen without its
 * logs: floodgate_inside runs on the interface facing the server and reads
 * each SIP response going out to a source (lib/tiers.h has the tiers).
 *
 * On the way in, the external program notes every request that carries
 * credentials (an Authorization or Proxy-Authorization header), of any method,
 * in fg_txns under (source, Call-ID hash, CSeq number and method), with the
 * TTL it came at. A request whose CSeq names REGISTER or INVITE but whose
 * start line is another method never gets that far (RFC 3261 8.1.1.5: the
 * methods match; a server that copies the CSeq into its answer would
 * otherwise answer an OPTIONS as if it were a REGISTER). An answer from a SIP server address
 * (settings.server_entries, fg_servers) counts only if it names a noted
 * transaction of its destination (the same method included):
 *
 * - a 2xx to a REGISTER verifies the source (and pins its TTL; see
 *   lib/tiers.h for how a pin moves), if its credentials answered a nonce
 *   the server had sent that address in a challenge to a REGISTER
 *   (fg_challenges, noted from every 401 and 407 on its way out). It clears
 *   no failures: an account holder guessing at other accounts would log in
 *   between its guesses;
 * - a 401 or 407 is a failed authentication, unless its challenge header
 *   says stale=true (an old nonce, not a wrong password), and so is a 403 to
 *   a REGISTER or INVITE (to another method it is as often policy);
 * - settings.bruteforce_failures failures within bruteforce_window_s ban the
 *   source for bruteforce_ban_s (fail2ban's SIP jails, at line rate);
 * - but a failure whose credentials answered no nonce the registrar sent
 *   the address is unproven if the address is verified, or if the request
 *   came from another hop distance than its pin: someone forging it from
 *   its own hop distance (which its pin cannot tell apart) never sees its
 *   challenges, and could otherwise get it banned with made-up credentials.
 *   One that answered the address's own challenge to a REGISTER counts
 *   wherever it came from. A challenge to another method proves nothing: a
 *   server relays a phone's challenge to an INVITE it proxied, so someone
 *   with a phone behind it can forge an INVITE in the address's name and
 *   have a nonce of its own choosing noted as sent to the address. As many
 *   unproven failures in the window quarantine a verified source for
 *   bruteforce_ban_s instead (kept in its fg_trusted entry), counted apart
 *   at its pin and from other hop distances and quarantining only there: its
 *   credentialed requests from there that answer no nonce sent to it are
 *   dropped on the way in (dropped-unproven at the pin), the rest of its
 *   traffic is not touched. In a quarantine, as many failures of
 *   credentials answering another method's challenge make it strict: then
 *   only credentials answering a challenge to a REGISTER pass there, so a
 *   forger with a phone behind the server can have the address's
 *   authenticated calls dropped there, not get it banned. A guesser holding
 *   an account (and so verified) that fetches nonces at another address gets
 *   as many unproven guesses (at its pin and from elsewhere), then, if it
 *   answers challenges to other methods, as many again, then only ones
 *   answering its own challenges to REGISTERs, which count towards a ban.
 *   Whatever nonce the walk reads (a decoy header's included) decides both
 *   the quarantine's check and whether the failure is proven, so no reading
 *   escapes both.
 *
 * All of it rests on a nonce going to one address only: a server that sends
 * one nonce to every source challenged in the same second (Kamailio's
 * default) lets a forger hold a nonce "sent to" the address it forges. It
 * rests too on every answer leaving the server being its own or one it
 * relays in a transaction: a server that forwards answers matching none of
 * its transactions to their next Via (Kamailio's default) lets anyone send
 * the address a challenge to a REGISTER with a nonce of their choosing. The
 * README's threat model says how to configure both.
 *
 * A first REGISTER without credentials (every phone's, challenged with a 401)
 * is noted nowhere and counts for nothing, and so does a forged one: its
 * answer goes to the address the forger claimed.
 *
 * A refusal (401, 403, 407) over UDP whose Call-ID and CSeq cannot be read
 * (in the first fragment of an answer pushed past the MTU by the headers it
 * echoes, past the walk's reach) is a failure of the address it goes to, if
 * the address has a credentialed request noted and not yet answered
 * (fg_auth_state.pending; none once FG_AUTH_PENDING_SECONDS have passed since
 * the last was noted), which it then uses up: otherwise a guesser could hide
 * every failure by making the answers unreadable. A first challenge (no
 * credentials) that fragments counts for nothing, as a readable one does, and
 * a refusal sent again counts once per request. A refusal in a first
 * fragment that names a noted transaction but whose header block goes on past
 * it (a stale=true could hide there) is taken the same way, against that
 * transaction. To a verified address neither is counted: a forger could
 * send credentialed requests in its name. An unverified address a forger can
 * get banned that way, as it could with made-up credentials. Of a first fragment that names a noted transaction,
 * any answer uses it up; one whose header block ends in it is read as a whole
 * refusal would be. A challenge's nonce read whole in a first fragment is
 * noted, as a whole answer's is (a phone whose challenges fragment can still
 * verify, if the CSeq naming REGISTER is in that fragment too, and answer them
 * in a quarantine); nothing else of an answer in
 * fragments is read (a 200 verifies nothing). Over TCP, where a segment may
 * start anywhere in the stream (in the body of a message someone else had
 * relayed to the address), only a segment where one of the stream's
 * messages starts is read (lib/stream.h); a refusal in it that names no
 * transaction counts for nothing.
 */
#ifndef FG_LIB_TRUST_H
#define FG_LIB_TRUST_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "../floodgate.h"
#include "parse.h"
#include "autoban.h"
#include "calls.h"
#include "drop_cache.h"
#include "scanner.h"
#include "tiers.h"
#include "known.h"

/* Failed authentications per external source, and its credentialed
 * requests pending; LRU. Entries are made by a noted credentialed request
 * and by a failure. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FG_MAX_AUTH_SOURCES);
	__type(key, struct fg_addr);
	__type(value, struct fg_auth_state);
} fg_auth SEC(".maps");

/* What the inside program read, per CPU (enum fg_inside_count). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FG_INSIDE_COUNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} fg_inside_counts SEC(".maps");

static __always_inline void fg_inside_count(__u32 index)
{
	__u64 *n = bpf_map_lookup_elem(&fg_inside_counts, &index);

	if (n)
		*n += 1;
}

/* Are transactions noted? (Brute-force counting or learned trust is on.) */
static __always_inline int fg_notes_transactions(const struct fg_settings *s)
{
	return s->bruteforce_failures || s->trust_seconds;
}

/* The CSeq method read by the scan, for a REGISTER or INVITE: its class, or
 * FG_CLASS_MAX for any other. */
static __always_inline __u32 fg_cseq_class(__u64 method)
{
	if (method == FG_W8("REGISTER"))
		return FG_CLASS_REGISTER;
	if (method == FG_W8("INVITE\0\0"))
		return FG_CLASS_INVITE;
	return FG_CLASS_MAX;
}

/* A request's CSeq method contradicts its start line (only REGISTER and
 * INVITE matter here: they are what an answer can verify), or it names two
 * transactions. */
static __always_inline int fg_cseq_mismatch(const struct fg_scan *scan, __u32 traffic_class)
{
	__u32 named;

	/* Two Call-IDs or CSeqs: which one would a server copy? */
	if (scan->found & FG_SCAN_AMBIGUOUS)
		return 1;
	if (!(scan->found & FG_SCAN_CSEQ))
		return 0;
	named = fg_cseq_class(scan->method);
	if (traffic_class == FG_CLASS_REGISTER || traffic_class == FG_CLASS_INVITE)
		return named != traffic_class;
	return named != FG_CLASS_MAX;
}

/* What the challenge the server sent `addr` with the nonce hashing to
 * `nonce` answered (FG_CHALLENGE_*), or 0 if it sent none. */
static __always_inline __u32 fg_challenge(const struct fg_addr *addr, __u64 nonce)
{
	struct fg_challenge_key key = {.addr = *addr, .nonce = nonce};
	__u32 *what;

	if (!nonce)
		return 0;
	what = bpf_map_lookup_elem(&fg_challenges, &key);
	return what ? *what : 0;
}

/* An ACK is never answered, and a CANCEL's answer is no verdict on its
 * credentials (an ACK to a 2xx carries the INVITE's): neither is noted, nor
 * refused by a quarantine. */
static __always_inline int fg_never_answered(__u64 cseq_method)
{
	return cseq_method == FG_W8("ACK\0\0\0\0\0") || cseq_method == FG_W8("CANCEL\0\0");
}

/* Makes `addr`'s fg_auth entry (if it has none: BPF_NOEXIST), its window
 * begun at `window_start_s`, with `pending` credentialed requests noted at
 * `pending_s`; written through the per-CPU scratch, off the stack. */
static __always_inline void fg_auth_make(const struct fg_addr *addr, __u32 window_start_s, __u32 pending,
					 __u32 pending_s)
{
	struct fg_autoban_scratch *w;
	__u32 zero = 0;

	w = bpf_map_lookup_elem(&fg_autoban_scratch, &zero);
	if (!w)
		return;
	w->auth.failures = 0;
	w->auth.window_start_s = window_start_s;
	w->auth.unproven = 0;
	w->auth.away = 0;
	w->auth.pending = pending;
	w->auth.pending_s = pending_s;
	bpf_map_update_elem(&fg_auth, addr, &w->auth, BPF_NOEXIST);
}

/* `st`'s credentialed requests pending at `now_s`: none once
 * FG_AUTH_PENDING_SECONDS have passed since the last was noted (requests the
 * server absorbs or never answers, or that are lost on the way, leave their
 * count; the external program notes only those it lets in). */
static __always_inline __u32 fg_pending(const struct fg_auth_state *st, __u32 now_s)
{
	__u32 n = READ_ONCE(st->pending);

	return n && (__s32)(now_s - READ_ONCE(st->pending_s)) <= FG_AUTH_PENDING_SECONDS ? n : 0;
}

/* One more credentialed request of pkt's source noted and not yet answered
 * (fg_auth_state.pending), against which an unreadable refusal may count;
 * only with brute-force detection on. A new entry's window has passed, so
 * that its first failure begins one. Read once and written once, not
 * atomically: two CPUs at once (this and the inside program's use) may lose
 * one, never go below none. */
static __always_inline void fg_note_pending(const struct fg_settings *s, const struct fg_packet *pkt)
{
	struct fg_auth_state *st;
	__u32 now_s, n;

	if (!s->bruteforce_failures)
		return;
	/* The packet's time, if the policy read it (in ticks), else the coarse clock's. */
	now_s = (pkt->now_ticks ? pkt->now_ticks >> FG_TICK_SHIFT : fg_clock_coarse_ns()) / 1000000000ULL;
	st = bpf_map_lookup_elem(&fg_auth, &pkt->src);
	if (st) {
		n = fg_pending(st, now_s);
		WRITE_ONCE(st->pending, n < FG_AUTH_PENDING_MAX ? n + 1 : n);
		WRITE_ONCE(st->pending_s, now_s);
		return;
	}
	fg_auth_make(&pkt->src, now_s - s->bruteforce_window_s, 1, now_s);
}

/*
 * Notes a credentialed request the external program lets in, of any method:
 * a server that challenges a SUBSCRIBE, a MESSAGE or an OPTIONS checks the
 * password its credentials carry as it would a REGISTER's, so a guess in one
 * must count too. Keyed by the CSeq method as well, so that one method's
 * request does not take another's place. Requests under one key not yet
 * answered (a retransmission, or a guesser's guesses sent under one Call-ID
 * and CSeq) are counted, and each answer is one of them; of their TTLs,
 * flags and nonces, what keeps a failure the address's wins: the flag that
 * excuses a request from another hop distance stays only if every one had it,
 * and a nonce the registrar sent the address stays once one answered it.
 */
static __always_inline void fg_note_transaction(const struct fg_settings *s, const struct fg_packet *pkt,
						const struct fg_scan *scan, __u32 flags)
{
	struct fg_txn_key key = {.addr = pkt->src, .callid = scan->callid, .cseq = scan->cseq, .method = scan->method};
	struct fg_txn txn = {.ttl = pkt->ttl, .flags = flags, .traffic_class = pkt->traffic_class, .pending = 1,
			     .nonce = scan->nonce};
	__u32 need = FG_SCAN_CREDENTIALS | FG_SCAN_CALLID | FG_SCAN_CSEQ;
	struct fg_txn *found;

	if ((scan->found & need) != need || (scan->found & FG_SCAN_AMBIGUOUS) || fg_never_answered(scan->method))
		return;
	fg_note_pending(s, pkt);
	if (!bpf_map_update_elem(&fg_txns, &key, &txn, BPF_NOEXIST))
		return;
	found = bpf_map_lookup_elem(&fg_txns, &key);
	if (!found) {
		bpf_map_update_elem(&fg_txns, &key, &txn, BPF_ANY);
		return;
	}
	if (!(flags & FG_TXN_REPIN))
		found->ttl = txn.ttl;
	found->flags &= flags;
	if (fg_challenge(&pkt->src, found->nonce) != FG_CHALLENGE_REGISTER)
		found->nonce = txn.nonce;
	if (found->pending < 255)
		found->pending++;
}

/* `addr`'s failures, made if it has none (NULL if that fails), with both
 * counts begun again if their window has passed; the quarantine is kept. */
static __always_inline struct fg_auth_state *fg_auth_window(const struct fg_settings *s, const struct fg_addr *addr,
							    __u32 now_s)
{
	struct fg_auth_state *st;

	st = bpf_map_lookup_elem(&fg_auth, addr);
	if (!st) {
		fg_auth_make(addr, now_s, 0, 0);
		st = bpf_map_lookup_elem(&fg_auth, addr);
		if (!st)
			return NULL;
	}
	if (now_s - st->window_start_s >= s->bruteforce_window_s) {
		st->window_start_s = now_s;
		st->failures = 0;
		st->unproven = 0;
		st->away = 0;
	}
	return st;
}

/* An unproven failure of `addr`: its credentials answered no nonce the
 * registrar sent it (`other`: they answered another method's challenge sent
 * to it), and it is verified (`away` 0), or the request came from another hop
 * distance than its pin (`away` 1). At the threshold, a verified source's
 * credentials are quarantined, at its pin or from other hop distances; in a
 * quarantine in force there, only failures answering another method's
 * challenge are counted (the rest are of requests let in before it began),
 * and at the threshold make it strict (see the top of this file). */
static __always_inline void fg_unproven_failure(const struct fg_settings *s, const struct fg_addr *addr, int away,
						int other)
{
	__u64 now = fg_clock_ns();
	__u32 now_s = now / 1000000000ULL, n, until, bit = away ? FG_STRICT_AWAY : FG_STRICT_AT_PIN;
	struct fg_auth_state *st;
	struct fg_trust *t;
	int quarantined;

	if (!s->bruteforce_failures)
		return;
	st = fg_auth_window(s, addr, now_s);
	if (!st)
		return;
	t = bpf_map_lookup_elem(&fg_trusted, addr);
	until = !t ? 0 : away ? READ_ONCE(t->away_until_s) : READ_ONCE(t->quarantine_until_s);
	quarantined = until && now_s < until;
	if (quarantined && !other)
		return;
	n = away ? ++st->away : ++st->unproven;
	if (n < s->bruteforce_failures)
		return;
	if (away)
		st->away = 0;
	else
		st->unproven = 0;
	if (!t)
		return;
	/* Atomic: the other bit may change on another CPU meanwhile. */
	if (quarantined)
		__sync_fetch_and_or(&t->strict, bit);
	else
		__sync_fetch_and_and(&t->strict, ~bit);
	if (away)
		WRITE_ONCE(t->away_until_s, now_s + s->bruteforce_ban_s);
	else
		WRITE_ONCE(t->quarantine_until_s, now_s + s->bruteforce_ban_s);
	fg_event(FG_EVENT_QUARANTINE, FG_CLASS_RESPONSE, addr, now + (__u64)s->bruteforce_ban_s * 1000000000ULL,
		 (away ? FG_QUARANTINE_AWAY : 0) | (quarantined ? FG_QUARANTINE_MADE_STRICT : 0), n);
}

/* Is `addr` (verified at its pin, or claimed from another hop distance:
 * `away`) quarantined there, and do its credentials (their nonce hashed
 * `nonce`, as the walk read it) answer no challenge sent to it, or, in a
 * strict quarantine, no challenge to a REGISTER? Then its credentialed
 * request is dropped on the way in. */
static __always_inline int fg_unproven_refused(const struct fg_settings *s, const struct fg_addr *addr, __u64 nonce,
					       int away)
{
	struct fg_trust *t;
	__u32 until, what;

	if (!s->bruteforce_failures || !s->trust_seconds)
		return 0;
	t = bpf_map_lookup_elem(&fg_trusted, addr);
	if (!t)
		return 0;
	until = away ? READ_ONCE(t->away_until_s) : READ_ONCE(t->quarantine_until_s);
	if (!until || fg_clock_ns() / 1000000000ULL >= until)
		return 0;
	what = fg_challenge(addr, nonce);
	if (READ_ONCE(t->strict) & (away ? FG_STRICT_AWAY : FG_STRICT_AT_PIN))
		return what != FG_CHALLENGE_REGISTER;
	return !what;
}

/* A failed authentication of `addr` in its window; bans it at the threshold. */
static __always_inline void fg_auth_failure(struct fg_settings *s, const struct fg_addr *addr)
{
	struct fg_auth_state *st;
	__u32 now_s = fg_clock_ns() / 1000000000ULL, failures;

	if (!s->bruteforce_failures)
		return;
	st = fg_auth_window(s, addr, now_s);
	if (!st)
		return;
	failures = ++st->failures;
	if (failures < s->bruteforce_failures)
		return;
	st->failures = 0;
	fg_issue_ban(s, addr, (__u64)s->bruteforce_ban_s * 1000000000ULL, FG_BAN_BRUTE_FORCE, FG_EVENT_BRUTE_FORCE,
		     FG_CLASS_RESPONSE, 1, failures);
}

/* A pin and a REGISTER accepted at `ttl`, flagged `repin` if it came at
 * another TTL than the pin: the pin moves after FG_REPIN_CONFIRMATIONS of
 * those in a row at one new TTL. For a verified source's pin and an allow
 * entry's alike. */
static __always_inline void fg_confirm_pin(const struct fg_settings *s, struct fg_pin *pin, __u32 ttl, int repin)
{
	if (!repin) {
		pin->candidate_count = 0;
		return;
	}
	if (pin->candidate_count && fg_ttl_near(s, pin->candidate_ttl, ttl)) {
		pin->candidate_count++;
	} else {
		pin->candidate_ttl = ttl;
		pin->candidate_count = 1;
	}
	if (pin->candidate_count >= FG_REPIN_CONFIRMATIONS) {
		pin->ttl = pin->candidate_ttl;
		pin->candidate_count = 0;
	}
}

/* The CPUs whose drop caches fg_release_held looks at, at most (a machine with
 * more has the slots of the CPUs past these end on their own, as before).
 * bpf_map_lookup_percpu_elem needs Linux 5.19 or later. */
#define FG_RELEASE_CPUS 1024

/* The slot that holds the aggregate `key` (a prefix or a wider network, whose
 * mark has just been made) ends now on every CPU: a drop cache holding it
 * since before the mark would otherwise keep dropping a source just verified
 * in it, before the policy, for the rest of the hold (a prefix's lasts 25 ms
 * at least, or until its next token; a network's until its next token). A
 * CPU that read the marks before they were made and fills the slot after this
 * release keeps that one hold; its later fills see the marks. */
struct fg_release {
	struct fg_source_key key;
	__u32 index, entry;
};

/* bpf_loop's step of fg_release_held: CPU `cpu`'s copy of the slot; 1 (stop)
 * past the last possible CPU. */
static int fg_release_one(__u32 cpu, void *ctx)
{
	struct fg_release *r = ctx;
	struct fg_drop_group *group = bpf_map_lookup_percpu_elem(&fg_drop_cache, &r->entry, cpu);
	struct fg_cpu_state *state = bpf_map_lookup_percpu_elem(&fg_cpu, &fg_entry_zero, cpu);
	struct fg_drop_slot *slot;

	if (!group)
		return 1;
	slot = &group->slots[r->index & (FG_DROP_CACHE_GROUP - 1)];
	if (fg_same_key(&slot->key, &r->key))
		WRITE_ONCE(slot->until_jiffies, 0);
	/* And the CPU's held aggregate (lib/drop_cache.h), if this one's
	 * address is in it: this aggregate, or the network of a prefix released
	 * (fg_verify releases both). A held prefix whose network is released
	 * ends with its own release. A CPU that found the slot live just before
	 * this and writes its copy just after keeps that hold until its jiffy,
	 * as a slot filled after the release does. */
	if (state && fg_held_contains(state, &r->key.addr))
		WRITE_ONCE(state->held_until_jiffies, 0);
	return 0;
}

static __always_inline void fg_release_held(const struct fg_source_key *key)
{
	struct fg_release r = {.key = *key};

	r.index = fg_hash_slot(fg_slot_hash(key));
	r.entry = r.index / FG_DROP_CACHE_GROUP;
	bpf_loop(FG_RELEASE_CPUS, fg_release_one, &r, 0);
}

/* `addr` proved real (an accepted credentialed REGISTER) at `ttl`, flagged
 * `repin` if that is not its pinned TTL:
 * verified, and its prefix and wider network marked (so a drained prefix or
 * network holding it is never dropped in the drop cache before the policy
 * sees it). */
static __always_inline void fg_verify(struct fg_settings *s, const struct fg_addr *addr, __u32 ttl, int repin)
{
	struct fg_source_key prefix = {.addr = *addr, .traffic_class = FG_CLASS_MAX};
	__u64 now = fg_clock_ns(), until = now + (__u64)s->trust_seconds * 1000000000ULL;
	struct fg_trust *t = bpf_map_lookup_elem(&fg_trusted, addr);
	struct fg_trust fresh = {.until_ns = until, .pin = {.ttl = ttl, .set = 1}};
	struct fg_allow_entry *entry = fg_allow_entry(s, addr);
	int renewal = t && t->until_ns > now;

	/* An allow entry's pin moves on the same evidence. */
	if (entry && !entry->ttl_max && entry->pin.set)
		fg_confirm_pin(s, &entry->pin, ttl, repin);
	if (!s->trust_seconds)
		return;
	fg_mask(&prefix.addr, fg_prefix_len(addr, s->prefix_v4, s->prefix_v6));
	fg_mark_trusted_prefix(&prefix, until);
	fg_release_held(&prefix);
	/* And its prefix's fragment bucket, which the drop cache may hold
	 * (fg_cache_fragments). */
	prefix.traffic_class = FG_CLASS_FRAGMENT;
	fg_release_held(&prefix);
	/* And its wider network's, which the drop cache may hold as one slot. */
	fg_mask(&prefix.addr, fg_prefix_len(addr, s->wide_v4, s->wide_v6));
	prefix.traffic_class = FG_CLASS_MAX + 1;
	fg_mark_trusted_prefix(&prefix, until);
	fg_release_held(&prefix);
	if (renewal) {
		fg_known_add(addr); /* set when it was made; an entry written by other hands gets it here */
		t->until_ns = until;
		fg_confirm_pin(s, &t->pin, ttl, repin);
		return;
	}
	/* Newly verified: its TTL is pinned now; tell the agent. */
	bpf_map_update_elem(&fg_trusted, addr, &fresh, BPF_ANY);
	fg_known_add(addr);
	fg_event(FG_EVENT_TRUSTED, FG_CLASS_RESPONSE, addr, until, ttl, 0);
}

/* One of `addr`'s pending credentialed requests is answered: 1 if one was
 * pending (fg_note_pending: not atomic, never below none). */
static __always_inline int fg_answered_pending(const struct fg_addr *addr)
{
	struct fg_auth_state *st = bpf_map_lookup_elem(&fg_auth, addr);
	__u32 n;

	if (!st)
		return 0;
	n = fg_pending(st, fg_clock_ns() / 1000000000ULL);
	if (!n)
		return 0;
	WRITE_ONCE(st->pending, n - 1);
	return 1;
}

/* A refusal over UDP to `dst` that can't be read whole (see the top of this
 * file), against a credentialed request of its pending, which it uses up
 * (`used`: the transaction it names was found, and used up already). */
static __always_inline void fg_unreadable_refusal(struct fg_settings *s, const struct fg_addr *dst, int used)
{
	if (!used && !fg_answered_pending(dst))
		return;
	if (fg_verified(s, dst, fg_clock_ns())) {
		fg_inside_count(FG_INSIDE_AUTH_NOT_COUNTED);
		return;
	}
	fg_inside_count(FG_INSIDE_AUTH_UNREADABLE);
	fg_auth_failure(s, dst);
}

/* The server's message to `dst` at payload_off, over UDP (`udp`) or TCP:
 * an answer, or its BYE; `partial`: the first fragment of an answer (see
 * the top of this file for what is read of it). */
static __always_inline void fg_inside_answer(struct xdp_md *ctx, struct fg_settings *s, const struct fg_addr *dst,
					     __u32 payload_off, __u32 payload_len, int udp, int partial)
{
	struct fg_scan *scan;
	struct fg_txn_key key = {.addr = *dst};
	struct fg_txn *found, txn = {};
	int proven = 0, refusal;
	__u32 flags, what = 0;
	__u8 line[12];
	__u32 code;

	if (payload_len < sizeof(line) || bpf_xdp_load_bytes(ctx, payload_off, line, sizeof(line)))
		return;
	/* The server's BYE ends a call it had with `dst` (lib/calls.h). */
	if (s->calls_tracked && !partial && line[0] == 'B' && line[1] == 'Y' && line[2] == 'E' && line[3] == ' ') {
		scan = fg_walk_message(ctx, payload_off, payload_len) ? fg_scan_result() : NULL;
		if (scan && (scan->found & (FG_SCAN_CALLID | FG_SCAN_AMBIGUOUS)) == FG_SCAN_CALLID) {
			struct fg_active_call_key call = {.addr = *dst, .callid = scan->callid};

			fg_call_bye(&call);
		}
		fg_inside_count(FG_INSIDE_SERVER_BYES);
		return;
	}
	if (line[0] != 'S' || line[1] != 'I' || line[2] != 'P' || line[3] != '/' || line[4] != '2' || line[5] != '.' ||
	    line[6] != '0' || line[7] != ' ' || line[11] != ' ')
		return;
	if (line[8] < '2' || line[8] > '6' || line[9] < '0' || line[9] > '9' || line[10] < '0' || line[10] > '9')
		return;
	code = (line[8] - '0') * 100 + (line[9] - '0') * 10 + (line[10] - '0');
	if (partial && !fg_notes_transactions(s))
		return;
	refusal = code == 401 || code == 403 || code == 407;

	scan = fg_walk_message(ctx, payload_off, payload_len) ? fg_scan_result() : NULL;
	if (!scan)
		return;
	fg_inside_count(FG_INSIDE_ANSWERS);
	flags = scan->found;
	/* An answer to an INVITE puts a call up or ends it; a 2xx to a BYE
	 * ends it (lib/calls.h). From the first answer read, the server's word
	 * is what ends calls. */
	if (s->calls_tracked && !partial &&
	    (flags & (FG_SCAN_CALLID | FG_SCAN_CSEQ | FG_SCAN_AMBIGUOUS)) == (FG_SCAN_CALLID | FG_SCAN_CSEQ)) {
		struct fg_active_call_key call = {.addr = *dst, .callid = scan->callid};

		fg_server_heard();
		if (fg_cseq_class(scan->method) == FG_CLASS_INVITE)
			fg_call_answered(s, &call, scan->cseq, code >= 200 && code <= 299 ? fg_from_tag() : 0, code,
					 fg_clock_ns());
		else if (scan->method == FG_W8("BYE\0\0\0\0\0") && code >= 200 && code <= 299)
			fg_call_bye(&call);
	}
	if (!fg_notes_transactions(s))
		return;
	/* The noted transaction the answer names, and whether its credentials
	 * answered a nonce sent to `dst`: asked before this answer's own
	 * challenge is noted, which they cannot have answered. */
	found = NULL;
	if ((flags & (FG_SCAN_CALLID | FG_SCAN_CSEQ)) == (FG_SCAN_CALLID | FG_SCAN_CSEQ) && !(flags & FG_SCAN_AMBIGUOUS)) {
		key.callid = scan->callid;
		key.cseq = scan->cseq;
		key.method = scan->method;
		found = bpf_map_lookup_elem(&fg_txns, &key);
	}
	if (found) {
		/* One of the requests pending under the key is answered. */
		txn = *found;
		if (txn.pending > 1)
			found->pending = txn.pending - 1;
		else
			bpf_map_delete_elem(&fg_txns, &key);
		fg_answered_pending(dst);
		what = fg_challenge(dst, txn.nonce);
		proven = what == FG_CHALLENGE_REGISTER;
	}
	/* A challenge: its nonce is what credentials from `dst` must answer.
	 * In a first fragment too: the walk takes a nonce only once its end is
	 * read, so one the fragment cuts is not taken. Noted as the
	 * registrar's only if it answers a REGISTER: a challenge to another
	 * method may come from a phone behind the server, which the server
	 * relays (RFC 3261 22.3), and whose nonce that phone's holder chose; a
	 * server that keeps the transaction matches the answer's CSeq method
	 * to the request's (RFC 3261 17.1.3), so a relayed one names the
	 * method it answers. A nonce the registrar sent stays its. */
	if ((code == 401 || code == 407) && scan->nonce) {
		struct fg_challenge_key challenge = {.addr = *dst, .nonce = scan->nonce};
		__u32 what_noted = (flags & (FG_SCAN_CSEQ | FG_SCAN_AMBIGUOUS)) == FG_SCAN_CSEQ &&
					   scan->method == FG_W8("REGISTER")
				       ? FG_CHALLENGE_REGISTER
				       : FG_CHALLENGE_OTHER;
		__u64 how = what_noted == FG_CHALLENGE_REGISTER ? BPF_ANY : BPF_NOEXIST;

		bpf_map_update_elem(&fg_challenges, &challenge, &what_noted, how);
		/* A second challenge, as a server offering two algorithms sends
		 * (RFC 8760), may carry a nonce of its own, which a phone that
		 * takes that algorithm answers. */
		if (scan->nonce2) {
			challenge.nonce = scan->nonce2;
			bpf_map_update_elem(&fg_challenges, &challenge, &what_noted, how);
		}
		fg_inside_count(FG_INSIDE_CHALLENGES);
	}
	if (!found) {
		/* A refusal over UDP naming no one transaction that can be
		 * read (the walk finds a value only whole, within the bytes it
		 * has), but not a stale challenge. One naming a transaction
		 * never noted (a first challenge) is no failure. */
		if (udp && refusal && !(code != 403 && (flags & FG_SCAN_STALE)) &&
		    (flags & (FG_SCAN_CALLID | FG_SCAN_CSEQ | FG_SCAN_AMBIGUOUS)) != (FG_SCAN_CALLID | FG_SCAN_CSEQ))
			fg_unreadable_refusal(s, dst, 0);
		return;
	}
	/* A first fragment that names a noted transaction uses it up, as any
	 * answer does; only a refusal counts for more (a 200 in fragments
	 * verifies nothing). */
	if (partial && !refusal)
		return;

	if (code >= 200 && code <= 299) {
		/* Accepted credentials prove the address real only if they
		 * answered the registrar's nonce sent to it (a REGISTER's
		 * challenge), and only for a REGISTER, whose
		 * credentials a server always checks: an INVITE it may accept
		 * without (to voicemail, from a trunk). */
		if (txn.traffic_class != FG_CLASS_REGISTER || !proven)
			return;
		fg_verify(s, dst, txn.ttl, txn.flags & FG_TXN_REPIN);
		fg_inside_count(FG_INSIDE_VERIFIED);
		return;
	}
	if (!refusal)
		return;
	/* stale=true in the challenge (not anywhere in the answer, which echoes
	 * what the request said) is an old nonce, not a wrong password. A 403
	 * is a refusal ("authorization will not help", RFC 3261 21.4.4): to a
	 * REGISTER or INVITE it is what servers answer a bad password with, but
	 * to a SUBSCRIBE or MESSAGE it is as often policy, which a phone that
	 * sends its credentials with every request would otherwise be banned for. */
	if ((code != 403 && (flags & FG_SCAN_STALE)) ||
	    (code == 403 && txn.traffic_class != FG_CLASS_REGISTER && txn.traffic_class != FG_CLASS_INVITE)) {
		fg_inside_count(FG_INSIDE_AUTH_NOT_COUNTED);
		return;
	}
	/* A first fragment whose header block goes on past it may hide the
	 * stale=true that would excuse the failure: an unreadable refusal,
	 * its request used up above. */
	if (partial && !(flags & FG_SCAN_END)) {
		fg_unreadable_refusal(s, dst, 1);
		return;
	}
	/* A verified source's failure is its own only if its credentials
	 * answered a nonce the registrar sent it; otherwise it is unproven, and
	 * quarantines rather than bans (see the top of this file). So is a
	 * failure of a request from another hop distance than the address's
	 * pin, which may be a forger's anywhere: it counts apart, and
	 * quarantines only credentials from other hop distances, so that a
	 * forger elsewhere cannot touch the address at its pin. One whose
	 * credentials answered the address's own challenge is the address's,
	 * wherever it came from (a guesser that sends at another TTL must not go
	 * uncounted). */
	if (!proven && (txn.flags & FG_TXN_REPIN)) {
		fg_inside_count(FG_INSIDE_AUTH_UNPROVEN);
		fg_unproven_failure(s, dst, 1, what == FG_CHALLENGE_OTHER);
		return;
	}
	if (!proven && fg_verified(s, dst, fg_clock_ns())) {
		fg_inside_count(FG_INSIDE_AUTH_UNPROVEN);
		fg_unproven_failure(s, dst, 0, what == FG_CHALLENGE_OTHER);
		return;
	}
	fg_inside_count(FG_INSIDE_AUTH_FAILURES);
	fg_auth_failure(s, dst);
}

#endif /* FG_LIB_TRUST_H */
