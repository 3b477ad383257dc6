import CFloodgate
import FloodgateCore
import Foundation

/// A reference model of the XDP programs, written from the specification (README: "Traffic classes", "The policy,
/// in order", "Threat model", "How the limits work"; RFC 3261 and RFC 5626 for the framing) in plain Swift, with no
/// code shared with the C beyond the header's constants and names: what class and reason each frame must be counted
/// under, at the time `now` of the model's clock, and what the SIP server's answers on the inside do.
///
/// It has no drop cache: the program it is compared with runs without one (`Settings.dropCache`), so that every
/// packet takes the whole policy; or, with `dropSlots`, only the part of it that changes a count (bans and
/// denials held by source alone, counted as "unparsed"), for a run with every limit unlimited. Time is
/// CLOCK_MONOTONIC nanoseconds; buckets count it in ticks of 1/16 ns.
struct ReferenceModel {
    var settings: Settings
    var deny: [CIDR] = []
    var allow: [CIDR] = []
    var signatures: [Signature] = []
    /// Per-source limits of unverified and of verified sources; a class missing has the README's default.
    var limits: [TrafficClass: Limit] = [:]
    var verifiedLimits: [TrafficClass: Limit] = [:]
    /// The aggregates and budgets, by default the README's.
    var prefix: Limit = .rate(200, burst: 400)
    var widePrefix: Limit = .rate(2000, burst: 4000)
    var newSources: Limit = .rate(20000, burst: 20000)
    var budget: Limit = .unlimited
    /// Each allow entry's own bucket and TTL range (missing: 2000/s burst 4000, no range).
    var allowOptions: [CIDR: AllowOptions] = [:]

    // MARK: The model's state

    /// The clock, CLOCK_MONOTONIC nanoseconds.
    var now: UInt64 = 0
    /// The operator's bans (`floodgate ban`): when each expires, nil never.
    var explicitBans: [SourceAddress: UInt64?] = [:]
    /// The filter's own bans (scanner, auto-ban, brute force): when each expires.
    var bans: [SourceAddress: UInt64] = [:]
    /// Auto-ban offences per source: how many, and when the last was.
    var offences: [SourceAddress: (count: UInt32, last: UInt64)] = [:]

    struct Key: Hashable {
        var address: SourceAddress
        var slot: Int  // a class's index; for aggregates, a level past the classes
    }

    /// A tracked (source, class): its bucket's theoretical arrival time (ticks) and its auto-ban window.
    struct Tracked {
        var tat: UInt64
        var windowStartMS: UInt32 = 0
        var windowDrops: UInt32 = 0
    }

    var sources: [Key: Tracked] = [:]
    var aggregates: [Key: UInt64] = [:]
    var allowTAT: [CIDR: UInt64] = [:]
    var budgetTAT: UInt64 = 0
    var newSourcesTAT: UInt64 = 0

    /// A pinned TTL, and a new TTL that accepted REGISTERs came with, how many in a row.
    struct Pin: Equatable {
        var ttl: UInt8
        var candidate: UInt8 = 0
        var count = 0
    }

    /// Host allow entries' pins (set by their first SIP packet, moved like a verified source's).
    var pins: [CIDR: Pin] = [:]
    /// Verified sources: until when, and their pin.
    var trusted: [SourceAddress: (until: UInt64, pin: Pin)] = [:]

    struct Transaction: Hashable {
        var address: SourceAddress
        var callID: [UInt8]
        var cseq: UInt32
        /// The CSeq method as the program keys it: its bytes as a little-endian word, zero-filled, or ~0 for every
        /// method longer than 8 bytes.
        var method: UInt64

        init(address: SourceAddress, callID: [UInt8], cseq: UInt32, method: [UInt8]) {
            self.address = address
            self.callID = callID
            self.cseq = cseq
            self.method = Transaction.word(method)
        }

        static func word(_ method: [UInt8]) -> UInt64 {
            method.count > 8 ? ~0 : method.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        }

        /// An ACK or a CANCEL: never noted, nor refused by a quarantine.
        static func neverAnswered(_ method: [UInt8]?) -> Bool {
            guard let method else { return false }
            return word(method) == word(Array("ACK".utf8)) || word(method) == word(Array("CANCEL".utf8))
        }
    }

    /// Credentialed requests let in, of any method: the TTL they came at, whether at another TTL than the
    /// address's pin, their class, the nonce their credentials answer, and how many under the key await an answer.
    var transactions: [Transaction: (ttl: UInt8, repin: Bool, cls: TrafficClass, nonce: [UInt8]?, pending: Int)] = [:]
    /// Per address, its credentialed requests noted and not yet answered (at most FG_AUTH_PENDING_MAX), and when
    /// (seconds) the last was noted: what an unreadable refusal counts against, for FG_AUTH_PENDING_SECONDS.
    var pendingCredentials: [SourceAddress: (n: Int, at: UInt32)] = [:]

    /// `address`'s credentialed requests pending now: none once FG_AUTH_PENDING_SECONDS passed since the last.
    func pending(_ address: SourceAddress) -> Int {
        guard let p = pendingCredentials[address] else { return 0 }
        let nowSeconds = UInt32(truncatingIfNeeded: now / 1_000_000_000)
        return Int32(bitPattern: nowSeconds &- p.at) <= Int32(FG_AUTH_PENDING_SECONDS) ? p.n : 0
    }
    /// (address, nonce) of every challenge the server sent: whether it answered a REGISTER (the registrar's own; a
    /// challenge to another method may be a phone's the server relayed).
    var challenges: [[UInt8]: Bool] = [:]
    /// Failed authentications per source: how many in the window that started at `start` (seconds), and how many
    /// were unproven (their credentials answered no challenge to a REGISTER sent to it): a verified source's at its
    /// pin, and from another TTL than its pin (`away`).
    var failures: [SourceAddress: (count: UInt32, start: UInt32, unproven: UInt32, away: UInt32)] = [:]
    /// Until when (seconds) a verified source's unproven failures have its credentials quarantined, at its pin and
    /// from other TTLs; kept with its trust entry.
    var quarantines: [SourceAddress: UInt32] = [:]
    var awayQuarantines: [SourceAddress: UInt32] = [:]
    /// Which of them are strict (FG_STRICT_* bits): only credentials answering a challenge to a REGISTER pass.
    var strictQuarantines: [SourceAddress: UInt32] = [:]
    /// First fragments admitted, by (source, IP ID): how many of their later fragments may still pass.
    var fragments: [[UInt8]: Int] = [:]

    /// What the run went through, for the test to check that it exercised the policy.
    var verifiedDecisions = 0
    var sparedBans = 0
    var issued: [String: Int] = [:]

    init(settings: Settings, deny: [CIDR] = [], allow: [CIDR] = [], signatures: [Signature] = []) {
        self.settings = settings
        self.deny = deny
        self.allow = allow
        self.signatures = signatures
    }

    enum Tier { case unverified, verified, allowed }

    struct Frame {
        var cls: TrafficClass
        var src: SourceAddress
        var ttl: UInt8
        var essential = false
        var sipRequest = false
        var payload: ArraySlice<UInt8> = []
        var skip = 0
        var firstFragment = false
        var fragmentID: [UInt8] = []
        var tcp = false
    }

    enum Parsed {
        case malformed
        case nonIP
        case packet(Frame)
    }

    // MARK: The policy

    var ticks: UInt64 { now << UInt64(FG_TICK_SHIFT) }

    mutating func verdict(_ bytes: [UInt8]) -> (TrafficClass, Reason) {
        if let slots = dropSlots, let src = Self.sourceSlotAsked(bytes),
           let held = slots[Self.dropSlot(src, UInt32(FG_SLOT_SOURCE))], held.address == src,
           held.keyClass == UInt32(FG_SLOT_SOURCE) {
            return (.unparsed, held.reason)
        }
        switch parse(bytes) {
        case .malformed:
            return (.other, settings.malformed == .pass ? .passedMalformed : .droppedMalformed)
        case .nonIP:
            return (.other, .passed)
        case .packet(let frame):
            // A (source, class) slot a ban or a denial filled drops the frame before the policy, which is what
            // would fill the source's own slot.
            if let slots = dropSlots, !frame.essential, frame.cls != .fragment,
               let held = slots[Self.dropSlot(frame.src, frame.cls.index)], held.address == frame.src,
               held.keyClass == frame.cls.index {
                return (frame.cls, held.reason)
            }
            let reason = decide(frame)
            if dropSlots != nil, !frame.essential, reason == .droppedBan || reason == .droppedDeny {
                if isPlainUDP(bytes) {
                    dropSlots![Self.dropSlot(frame.src, UInt32(FG_SLOT_SOURCE))] = (frame.src, UInt32(FG_SLOT_SOURCE), reason)
                } else if frame.cls != .fragment {
                    dropSlots![Self.dropSlot(frame.src, frame.cls.index)] = (frame.src, frame.cls.index, reason)
                }
            }
            // The later fragments of a first fragment the policy let in may follow it (up to 44).
            if frame.firstFragment && (reason == .passed || reason == .passedAllow) {
                fragments[frame.src.bytes + frame.fragmentID] = Int(FG_FRAGMENT_BUDGET)
            }
            return (frame.cls, reason)
        }
    }

    func active(_ expiry: UInt64?) -> Bool { expiry.map { $0 > now } ?? true }

    func near(_ pinned: UInt8, _ ttl: UInt8) -> Bool { abs(Int(pinned) - Int(ttl)) <= Int(settings.ttlTolerance) }

    /// The longest allow entry holding `address`.
    func allowEntry(_ address: SourceAddress) -> CIDR? {
        allow.filter { $0.contains(address) }.max { $0.keyLength < $1.keyLength }
    }

    func verified(_ address: SourceAddress) -> (until: UInt64, pin: Pin)? {
        guard settings.trustSeconds > 0, let t = trusted[address], t.until > now else { return nil }
        return t
    }

    var notesTransactions: Bool { settings.bruteForce != nil || settings.trustSeconds > 0 }

    mutating func decide(_ f: Frame) -> Reason {
        if f.essential { return .passed }
        if deny.contains(where: { $0.contains(f.src) }) { return .droppedDeny }
        if let ban = explicitBans[f.src], active(ban) { return .droppedBan }
        if let entry = allowEntry(f.src) {
            guard allowedTTL(entry, f) else { return spoofed(f) }
            let allowLimit = allowOptions[entry]?.limit ?? .rate(2000, burst: 4000)
            if f.cls.isSIP, case .rate(let rate, let burst) = allowLimit {
                var tat = allowTAT[entry] ?? 0
                defer { allowTAT[entry] = tat }
                if !admit(&tat, rate: rate, burst: burst) { return .droppedAllowLimit }
            } else if f.cls.isSIP, case .block = allowLimit {
                return .droppedAllowLimit
            }
            return content(f, tier: .allowed)
        }
        if let ban = bans[f.src], active(ban) { return .droppedBan }
        var tier = Tier.unverified
        if let t = verified(f.src) {
            guard near(t.pin.ttl, f.ttl) else { return spoofed(f) }
            tier = .verified
            verifiedDecisions += 1
        }
        var key = Key(address: f.src, slot: Int(f.cls.index))
        if f.cls == .fragment {
            // Later fragments of an admitted first fragment pass; the rest share their prefix's bucket.
            let id = f.src.bytes + f.fragmentID
            if let left = fragments[id] {
                fragments[id] = left - 1
                if left > 0 { return .passed }
            }
            key.address = masked(f.src, level: 0)
        }
        let reason = police(f, key: key, tier: tier)
        if reason == .droppedRate, settings.autoBan.enabled, f.cls != .fragment, sources[key]!.windowDrops >= settings.autoBan.drops {
            sources[key]!.windowDrops = 0
            autoBan(f.src)
        }
        guard reason == .passed else { return reason }
        return content(f, tier: tier)
    }

    /// GCRA (README "How the limits work"): a bucket of `rate`/s and `burst` has interval T = 1/rate and
    /// tolerance tau = (burst - 1) T; a packet is admitted when TAT is no more than `share` of tau ahead of now, and
    /// then moves TAT to max(TAT, now) + T. A TAT more than (tau + T) * 17/16 ahead (left by another limit) is
    /// pulled back to tau + T ahead on a drop.
    func admit(_ tat: inout UInt64, rate: UInt32, burst: UInt32, level: Int = 0, of levels: Int = 1) -> Bool {
        let interval = UInt64(FG_TICKS_PER_SEC) / UInt64(rate)
        let tauMax = UInt64(burst - 1) * interval
        let tau = tauMax / UInt64(levels) * UInt64(level + 1)
        let base = max(tat, ticks)
        if base - ticks > tau {
            let limit = tauMax + interval
            if base - ticks > limit + limit / UInt64(FG_COARSE_JIFFIES) { tat = ticks + limit }
            return false
        }
        tat = base + interval
        return true
    }

    /// An interface-wide bucket.
    func admitGlobal(_ tat: inout UInt64, _ limit: Limit, level: Int = 0, of levels: Int = 1) -> Bool {
        switch limit {
        case .unlimited: return true
        case .block: return false
        case .rate(let rate, let burst): return admit(&tat, rate: rate, burst: burst, level: level, of: levels)
        }
    }

    /// `address` masked to its prefix (level 0: /24, /64) or wider network (level 1: /16, /48).
    func masked(_ address: SourceAddress, level: Int) -> SourceAddress {
        let bits = address.isIPv4 ? 96 + Int(level == 0 ? settings.prefixV4 : settings.wideV4)
            : Int(level == 0 ? settings.prefixV6 : settings.wideV6)
        var bytes = address.bytes
        for i in 0..<16 {
            let keep = max(0, min(8, bits - 8 * i))
            bytes[i] &= keep == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - keep))
        }
        return SourceAddress(bytes: bytes)
    }

    /// The aggregate buckets of the source's prefix, then of its wider network (SIP classes of unverified sources).
    /// With `deferring` (a source not yet tracked), a bucket that does not exist yet is not made: it would admit
    /// the packet, and is made (into `deferring`, for the caller to store) only if the new-source budget admits it.
    mutating func policePrefix(_ address: SourceAddress, deferring: UnsafeMutablePointer<[(Key, UInt64)]>? = nil)
        -> Reason
    {
        for level in 0..<2 {
            switch level == 0 ? prefix : widePrefix {
            case .unlimited: continue
            case .block: return .droppedPrefix
            case .rate(let rate, let burst):
                let key = Key(address: masked(address, level: level), slot: Int(FG_CLASS_MAX.rawValue) + level)
                if let deferring, aggregates[key] == nil {
                    var fresh: UInt64 = 0
                    _ = admit(&fresh, rate: rate, burst: burst)
                    deferring.pointee.append((key, fresh))
                    continue
                }
                var tat = aggregates[key] ?? 0
                defer { aggregates[key] = tat }
                if !admit(&tat, rate: rate, burst: burst) { return .droppedPrefix }
            }
        }
        return .passed
    }

    /// The per-source bucket of the class, then (SIP, unverified) the prefix; a source not yet tracked needs room
    /// in its prefix and in the new-source budget first (verified sources skip both).
    mutating func police(_ f: Frame, key: Key, tier: Tier) -> Reason {
        let limit = tier == .verified ? verifiedLimits[f.cls] ?? Limit.verifiedDefaults[f.cls]!
            : limits[f.cls] ?? Limit.defaults[f.cls]!
        let aggregated = f.cls.isSIP && tier == .unverified
        if case .unlimited = limit { return aggregated ? policePrefix(f.src) : .passed }
        guard let tracked = sources[key] else {
            // The budget is looked at first: while it is empty a new source is refused before its prefixes are
            // read or charged (a look takes no token; a refusal writes only the clamp).
            if tier == .unverified {
                var probe = newSourcesTAT
                if !admitGlobal(&probe, newSources) {
                    newSourcesTAT = probe
                    return .droppedNewSource
                }
            }
            var deferred: [(Key, UInt64)] = []
            if aggregated {
                let reason = withUnsafeMutablePointer(to: &deferred) { policePrefix(f.src, deferring: $0) }
                if reason != .passed { return reason }
            }
            if tier == .unverified {
                var tat = newSourcesTAT
                defer { newSourcesTAT = tat }
                if !admitGlobal(&tat, newSources) { return .droppedNewSource }
            }
            for (k, tat) in deferred { aggregates[k] = tat }
            guard case .rate(let rate, _) = limit else {
                sources[key] = Tracked(tat: ticks)
                return .droppedBlocked
            }
            // A new source's bucket is full, less this packet.
            sources[key] = Tracked(tat: ticks + UInt64(FG_TICKS_PER_SEC) / UInt64(rate))
            return .passed
        }
        guard case .rate(let rate, let burst) = limit else { return .droppedBlocked }
        var state = tracked
        defer { sources[key] = state }
        if !admit(&state.tat, rate: rate, burst: burst) {
            if settings.autoBan.enabled {
                // The auto-ban window: drops by the source's own bucket within windowMilliseconds.
                let ms = UInt32(truncatingIfNeeded: now / 1_000_000)
                if ms &- state.windowStartMS >= settings.autoBan.windowMilliseconds {
                    state.windowStartMS = ms
                    state.windowDrops = 0
                }
                state.windowDrops += 1
            }
            return .droppedRate
        }
        return aggregated ? policePrefix(f.src) : .passed
    }

    /// Shed order when the SIP budget runs short (README's table), then verified, then allow-listed sources.
    static func shedLevel(_ cls: TrafficClass) -> Int {
        switch cls {
        case .options: return 0
        case .register: return 1
        case .sipOther, .sipSyn, .keepalive: return 2
        case .invite: return 3
        case .otherRequest: return 4
        default: return 5
        }
    }

    mutating func budgetVerdict(_ cls: TrafficClass, tier: Tier) -> Reason {
        let pass: Reason = tier == .allowed ? .passedAllow : .passed
        guard cls.isSIP else { return pass }
        let level = tier == .allowed ? 7 : tier == .verified ? 6 : ReferenceModel.shedLevel(cls)
        var tat = budgetTAT
        defer { budgetTAT = tat }
        return admitGlobal(&tat, budget, level: level, of: 8) ? pass : .droppedShed
    }

    /// A request's content (its header block walked), then the SIP budget; its credentials noted if it passes.
    mutating func content(_ f: Frame, tier: Tier) -> Reason {
        var walked: Inspection?
        if f.sipRequest && (!signatures.isEmpty || notesTransactions) {
            let found = walk(f, repin: false, tier: tier)
            if found.signature {
                // UDP evidence bans only the unverified.
                if tier == .unverified && settings.scannerBanSeconds > 0 {
                    issueBan(f.src, seconds: settings.scannerBanSeconds, why: "scanner")
                } else if tier != .unverified {
                    sparedBans += 1
                }
                return .droppedScanner
            }
            if found.malformed { return .droppedMalformed }
            if found.oversize { return .droppedOversize }
            if found.unproven { return .droppedUnproven }
            walked = found
        }
        return noted(f, walked, repin: false, budgetVerdict(f.cls, tier: tier))
    }

    /// Walks a request. A quarantined source's credentials that answer no challenge sent to it (from its hop
    /// distance, or from another) are refused; in a strict quarantine, those that answer no challenge to a REGISTER.
    mutating func walk(_ f: Frame, repin: Bool, tier: Tier = .unverified) -> Inspection {
        var found = inspect(f.payload, skip: f.skip, firstFragment: f.firstFragment)
        if !found.signature, !found.malformed, !found.oversize, tier == .verified || repin, found.credentials,
           !Transaction.neverAnswered(found.method), settings.bruteForce != nil, settings.trustSeconds > 0,
           let until = repin ? awayQuarantines[f.src] : quarantines[f.src],
           UInt32(truncatingIfNeeded: now / 1_000_000_000) < until
        {
            let registrar = found.nonce.flatMap { challenges[f.src.bytes + $0] }
            let strict = (strictQuarantines[f.src] ?? 0) & UInt32(repin ? FG_STRICT_AWAY : FG_STRICT_AT_PIN) != 0
            if strict ? registrar != true : registrar == nil { found.unproven = true }
        }
        return found
    }

    /// Returns `reason` after noting the request walked (`found`) if `reason` passes it, it carries credentials
    /// and its header block ended: a request shed or refused never reaches the server. Under a key already
    /// pending: one more pending; the TTL of one at the pin wins, the excuse of another TTL stays only if every one
    /// had it, and a nonce sent to the address stays.
    mutating func noted(_ f: Frame, _ found: Inspection?, repin: Bool, _ reason: Reason) -> Reason {
        guard reason == .passed || reason == .passedAllow, let found else { return reason }
        if !found.signature, !found.malformed, !found.oversize, !found.unproven, notesTransactions, found.ended,
           found.credentials, !found.ambiguous, let callID = found.callID, let cseq = found.cseq,
           !Transaction.neverAnswered(found.method)
        {
            let key = Transaction(address: f.src, callID: callID, cseq: cseq, method: found.method ?? [])
            if settings.bruteForce != nil {
                pendingCredentials[f.src] = (min(pending(f.src) + 1, Int(FG_AUTH_PENDING_MAX)),
                                             UInt32(truncatingIfNeeded: now / 1_000_000_000))
            }
            if var old = transactions[key] {
                if !repin { old.ttl = f.ttl }
                old.repin = old.repin && repin
                if !(old.nonce.map { challenges[f.src.bytes + $0] == true } ?? false) { old.nonce = found.nonce }
                old.pending = min(old.pending + 1, 255)
                transactions[key] = old
            } else {
                transactions[key] = (f.ttl, repin, f.cls, found.nonce, 1)
            }
        }
        return reason
    }

    /// A packet claiming a verified or allow-listed address at another TTL: charged to its prefix as a
    /// stranger's and dropped, but for a REGISTER or INVITE (or TCP) the prefix admits, which goes on to the
    /// server unverified, so that a real route change can be confirmed.
    mutating func spoofed(_ f: Frame) -> Reason {
        guard f.cls.isSIP, policePrefix(f.src) == .passed else { return .droppedSpoofed }
        if f.cls == .sipSyn || (f.tcp && !f.sipRequest) { return budgetVerdict(f.cls, tier: .unverified) }
        guard f.tcp || f.cls == .register || f.cls == .invite else { return .droppedSpoofed }
        let found = walk(f, repin: true)
        if found.signature || found.malformed || found.oversize || found.unproven { return .droppedSpoofed }
        return noted(f, found, repin: true, budgetVerdict(f.cls, tier: .unverified))
    }

    /// Is an allow-listed address's packet at its entry's TTL? A range decides; a host entry is pinned by its
    /// first SIP packet; a wider entry is not pinned.
    mutating func allowedTTL(_ entry: CIDR, _ f: Frame) -> Bool {
        if let range = allowOptions[entry]?.ttl { return range.contains(f.ttl) }
        guard entry.keyLength == 128 else { return true }
        guard let pin = pins[entry] else {
            if f.cls.isSIP { pins[entry] = Pin(ttl: f.ttl) }
            return true
        }
        return near(pin.ttl, f.ttl)
    }

    /// Bans `address` unless a ban of either kind is in force; returns whether it did.
    @discardableResult
    mutating func issueBan(_ address: SourceAddress, seconds: UInt32, why: String) -> Bool {
        if let ban = explicitBans[address], active(ban) { return false }
        if let ban = bans[address], ban > now { return false }
        bans[address] = now + UInt64(seconds) * 1_000_000_000
        issued[why, default: 0] += 1
        return true
    }

    /// A source whose bucket dropped enough within the window: banned for its offence's length, unless it is
    /// allow-listed or verified (spared: its address may be a forger's).
    mutating func autoBan(_ address: SourceAddress) {
        if allow.contains(where: { $0.contains(address) }) || verified(address) != nil {
            sparedBans += 1
            return
        }
        let forget = UInt64(settings.autoBan.forgetSeconds) * 1_000_000_000
        let count = offences[address].map { now - $0.last < forget ? $0.count : 0 } ?? 0
        let durations = settings.autoBan.durations
        let seconds = durations[min(Int(count), durations.count - 1)]
        precondition(settings.autoBan.jitterPercent == 0, "the model has no jitter")
        if issueBan(address, seconds: seconds, why: "auto") { offences[address] = (count + 1, now) }
    }

    // MARK: The inside program: the SIP server's answers

    /// An answer of the server to `destination`: its status code, the transaction it names (Call-ID, CSeq number
    /// and method), the nonce of its challenge and whether that says stale=true.
    mutating func answer(to destination: SourceAddress, code: Int, callID: String, cseq: UInt32, method: String,
                         nonce: String? = nil, stale: Bool = false)
    {
        guard notesTransactions, (200...699).contains(code) else { return }
        let key = Transaction(address: destination, callID: Array(callID.utf8), cseq: cseq, method: Array(method.utf8))
        let txn = transactions[key]
        // Whether the credentials answered a nonce sent to this address (and whether to a REGISTER: proven), asked
        // before this answer's challenge counts. A challenge to a REGISTER is the registrar's, and stays so.
        let registrar = txn?.nonce.flatMap { challenges[destination.bytes + $0] }
        let proven = registrar == true
        if code == 401 || code == 407, let nonce {
            let key = destination.bytes + Array(nonce.utf8)
            if method == "REGISTER" { challenges[key] = true } else if challenges[key] == nil { challenges[key] = false }
        }
        guard let txn else { return }
        // One of the requests pending under the key is answered.
        transactions[key] = txn.pending > 1 ? (txn.ttl, txn.repin, txn.cls, txn.nonce, txn.pending - 1) : nil
        answeredPending(destination)
        if (200...299).contains(code) {
            // Accepted credentials of a REGISTER that answered a nonce sent to this address: verified. No failures
            // are cleared.
            guard txn.cls == .register, proven else { return }
            verify(destination, ttl: txn.ttl, repin: txn.repin)
            return
        }
        // A 403 counts only to a REGISTER or INVITE.
        guard (code == 401 || code == 407) && !stale || code == 403 && (txn.cls == .register || txn.cls == .invite)
        else { return }
        if !proven && txn.repin {
            unprovenFailure(destination, away: true, other: registrar == false)
        } else if !proven && verified(destination) != nil {
            unprovenFailure(destination, away: false, other: registrar == false)
        } else {
            failure(destination)
        }
    }

    /// One of `address`'s pending credentialed requests is answered: whether one was pending.
    @discardableResult
    mutating func answeredPending(_ address: SourceAddress) -> Bool {
        let n = pending(address)
        guard n > 0, let at = pendingCredentials[address]?.at else { return false }
        pendingCredentials[address] = (n - 1, at)
        return true
    }

    /// A refusal over UDP (401, 403, 407, not a stale challenge) to `destination` whose Call-ID and CSeq could not
    /// be read: a failure of the address if it has a credentialed request pending, which it uses up, but not of a
    /// verified one, in whose name a forger could have sent that request.
    mutating func unreadableRefusal(to destination: SourceAddress) {
        guard notesTransactions, answeredPending(destination), verified(destination) == nil else { return }
        failure(destination)
    }

    /// A pin and an accepted REGISTER at `ttl`: the pin moves after FG_REPIN_CONFIRMATIONS in a row at one new TTL.
    func confirmed(_ pin: Pin, ttl: UInt8, repin: Bool) -> Pin {
        var pin = pin
        guard repin else {
            pin.count = 0
            return pin
        }
        if pin.count > 0 && near(pin.candidate, ttl) {
            pin.count += 1
        } else {
            pin.candidate = ttl
            pin.count = 1
        }
        if pin.count >= Int(FG_REPIN_CONFIRMATIONS) {
            pin.ttl = pin.candidate
            pin.count = 0
        }
        return pin
    }

    mutating func verify(_ address: SourceAddress, ttl: UInt8, repin: Bool) {
        if let entry = allowEntry(address), allowOptions[entry]?.ttl == nil, let pin = pins[entry] {
            pins[entry] = confirmed(pin, ttl: ttl, repin: repin)
        }
        guard settings.trustSeconds > 0 else { return }
        let until = now + UInt64(settings.trustSeconds) * 1_000_000_000
        if let t = trusted[address], t.until > now {
            trusted[address] = (until, confirmed(t.pin, ttl: ttl, repin: repin))
        } else {
            trusted[address] = (until, Pin(ttl: ttl))
            (quarantines[address], awayQuarantines[address], strictQuarantines[address]) = (nil, nil, nil)  // a fresh entry
            issued["verified", default: 0] += 1
        }
    }

    mutating func failure(_ address: SourceAddress) {
        guard let bruteForce = settings.bruteForce else { return }
        var state = authWindow(address, bruteForce)
        state.count += 1
        if state.count >= bruteForce.failures {
            state.count = 0
            issueBan(address, seconds: bruteForce.banSeconds, why: "brute-force")
        }
        failures[address] = state
    }

    /// A source's failure state, both counts begun again if their window has passed.
    func authWindow(_ address: SourceAddress, _ bruteForce: BruteForce)
        -> (count: UInt32, start: UInt32, unproven: UInt32, away: UInt32)
    {
        let seconds = UInt32(truncatingIfNeeded: now / 1_000_000_000)
        var state = failures[address] ?? (0, seconds, 0, 0)
        if seconds &- state.start >= bruteForce.windowSeconds { state = (0, seconds, 0, 0) }
        return state
    }

    /// A verified source's failure whose credentials answered no challenge to a REGISTER sent to it (`other`: they
    /// answered another method's): at the threshold, quarantined for the ban's length rather than banned. In a
    /// quarantine in force there, only failures answering another method's challenge count, and at the threshold
    /// make it strict.
    mutating func unprovenFailure(_ address: SourceAddress, away: Bool, other: Bool) {
        guard let bruteForce = settings.bruteForce else { return }
        var state = authWindow(address, bruteForce)
        defer { failures[address] = state }
        let seconds = UInt32(truncatingIfNeeded: now / 1_000_000_000)
        let quarantined = (away ? awayQuarantines[address] : quarantines[address]).map { $0 != 0 && seconds < $0 } ?? false
        if quarantined && !other { return }
        if away { state.away += 1 } else { state.unproven += 1 }
        if (away ? state.away : state.unproven) >= bruteForce.failures {
            if away { state.away = 0 } else { state.unproven = 0 }
            // Kept with the trust entry: none, no quarantine.
            if trusted[address] != nil {
                let until = seconds &+ bruteForce.banSeconds
                if away { awayQuarantines[address] = until } else { quarantines[address] = until }
                let bit = UInt32(away ? FG_STRICT_AWAY : FG_STRICT_AT_PIN), bits = strictQuarantines[address] ?? 0
                strictQuarantines[address] = quarantined ? bits | bit : bits & ~bit
                issued[quarantined ? "strict" : "quarantine", default: 0] += 1
            }
        }
    }

    // MARK: The drop cache's slots, for bans and denials

    /// The drop cache's slots on the program's one CPU, if the model keeps them: by slot, the source and key class
    /// a ban or a denial filled it with (FG_SLOT_SOURCE: held by source alone), and the reason. Only bans and denials
    /// are kept, so it is for a run whose limits are all unlimited (and whose lists do not change).
    var dropSlots: [Int: (address: SourceAddress, keyClass: UInt32, reason: Reason)]?

    /// The slot of (address, key class): the header's hash, the index the program computes.
    static func dropSlot(_ address: SourceAddress, _ keyClass: UInt32) -> Int {
        var addr = fg_addr()
        withUnsafeMutableBytes(of: &addr) { $0.copyBytes(from: address.bytes) }
        return Int(fg_hash_slot(fg_addr_hash(&addr, keyClass)))
    }

    /// The source of a frame whose source-keyed slot is asked before it is parsed (README, policy step 1): untagged
    /// IPv4 without options, or IPv6, whose next header is UDP, with a whole IP header.
    static func sourceSlotAsked(_ b: [UInt8]) -> SourceAddress? {
        guard b.count >= 14 else { return nil }
        switch Int(b[12]) << 8 | Int(b[13]) {
        case 0x0800:
            guard b.count >= 34, b[14] == 0x45, b[23] == 17 else { return nil }
            return SourceAddress(bytes: [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + b[26..<30])
        case 0x86DD:
            guard b.count >= 54, b[14] >> 4 == 6, b[20] == 17 else { return nil }
            // Not an IPv4-mapped source: bogus, not the IPv4 address's.
            guard b[22..<34] != [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] else { return nil }
            return SourceAddress(bytes: Array(b[22..<38]))
        default:
            return nil
        }
    }

    /// A plain UDP frame, whose ban or denial is held by source alone: as above, IPv4 not a fragment, a UDP length
    /// of 8 or more, 24 bytes of payload within the frame, and to a SIP port 24 bytes within the UDP length too, the
    /// first not CR, LF, SP or HT. (For a frame that parses.)
    func isPlainUDP(_ b: [UInt8]) -> Bool {
        let n = b.count
        func be16(_ i: Int) -> Int { Int(b[i]) << 8 | Int(b[i + 1]) }
        guard Self.sourceSlotAsked(b) != nil else { return false }
        let l4 = be16(12) == 0x0800 ? 34 : 54
        if l4 == 34 && be16(20) & 0x3FFF != 0 { return false }
        guard n >= l4 + 8, be16(l4 + 4) >= 8, l4 + 8 + 24 <= n else { return false }
        guard isSIPPort(be16(l4 + 2)) else { return true }
        return min(be16(l4 + 4) - 8, n - l4 - 8) >= 24 && ![13, 10, 32, 9].contains(b[l4 + 8])
    }

    // MARK: Parsing

    func parse(_ b: [UInt8]) -> Parsed {
        let n = b.count
        func be16(_ i: Int) -> Int { Int(b[i]) << 8 | Int(b[i + 1]) }
        guard n >= 14 else { return .malformed }
        var proto = be16(12)
        var off = 14
        for _ in 0..<2 where proto == 0x8100 || proto == 0x88A8 {
            guard off + 4 <= n else { return .malformed }
            proto = be16(off + 2)
            off += 4
        }
        if proto == 0x0800 {
            guard off + 20 <= n, b[off] >> 4 == 4, b[off] & 0x0F >= 5 else { return .malformed }
            let hl = Int(b[off] & 0x0F) * 4
            guard off + hl <= n else { return .malformed }
            let src = SourceAddress(bytes: [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + b[(off + 12)..<(off + 16)])
            // No packet from outside comes from 0/8, 127/8, multicast or the limited broadcast address.
            let first = b[off + 12]
            if first == 0 || first == 127 || first >> 4 == 0xE || b[(off + 12)..<(off + 16)].allSatisfy({ $0 == 0xFF }) {
                return .malformed
            }
            let ttl = b[off + 8]
            if be16(off + 6) & 0x1FFF != 0 {
                return .packet(Frame(cls: .fragment, src: src, ttl: ttl, fragmentID: Array(b[(off + 4)..<(off + 6)])))
            }
            return layer4(b, proto: Int(b[off + 9]), at: off + hl, src: src, ttl: ttl, v6: false,
                          firstFragment: be16(off + 6) & 0x2000 != 0, fragmentID: Array(b[(off + 4)..<(off + 6)]),
                          l3End: off + be16(off + 2))
        }
        if proto == 0x86DD {
            guard off + 40 <= n, b[off] >> 4 == 6 else { return .malformed }
            let source = Array(b[(off + 8)..<(off + 24)])
            let src = SourceAddress(bytes: source)
            // Unspecified, loopback, multicast and IPv4-mapped sources are not real (but for neighbour discovery's
            // unspecified source of duplicate address detection).
            let bogus = source[0] == 0xFF || (source[0..<10].allSatisfy { $0 == 0 }
                && ((source[10] == 0xFF && source[11] == 0xFF)
                    || (source[10..<15].allSatisfy { $0 == 0 } && source[15] <= 1)))
            let ttl = b[off + 7]
            var firstFragment = false, fragmented = false
            var fragmentID: [UInt8] = []
            var next = Int(b[off + 6])
            var cur = off + 40
            for _ in 0..<Int(FG_IPV6_MAX_EXT) {
                switch next {
                case 0, 43, 60, 135:
                    guard cur + 2 <= n else { return .malformed }
                    next = Int(b[cur])
                    cur += (Int(b[cur + 1]) + 1) * 8
                case 51:
                    guard cur + 2 <= n else { return .malformed }
                    next = Int(b[cur])
                    cur += (Int(b[cur + 1]) + 2) * 4
                case 44:
                    guard cur + 8 <= n else { return .malformed }
                    if be16(cur + 2) & 0xFFF8 != 0 {
                        if bogus { return .malformed }
                        return .packet(Frame(cls: .fragment, src: src, ttl: ttl, fragmentID: Array(b[(cur + 4)..<(cur + 8)])))
                    }
                    firstFragment = be16(cur + 2) & 1 != 0
                    fragmented = true
                    fragmentID = Array(b[(cur + 4)..<(cur + 8)])
                    next = Int(b[cur])
                    cur += 8
                default:
                    let parsed = layer4(b, proto: next, at: cur, src: src, ttl: ttl, v6: true, firstFragment: firstFragment,
                                        fragmented: fragmented, fragmentID: fragmentID, l3End: off + 40 + be16(off + 4))
                    if bogus, case .packet(let frame) = parsed, !frame.essential { return .malformed }
                    return parsed
                }
            }
            return .malformed
        }
        return .nonIP
    }

    func layer4(_ b: [UInt8], proto: Int, at: Int, src: SourceAddress, ttl: UInt8, v6: Bool, firstFragment: Bool,
                fragmented: Bool = false, fragmentID: [UInt8], l3End: Int)
        -> Parsed
    {
        let n = b.count
        func be16(_ i: Int) -> Int { Int(b[i]) << 8 | Int(b[i + 1]) }
        func frame(_ cls: TrafficClass, essential: Bool = false, sipRequest: Bool = false, payload: ArraySlice<UInt8> = [],
                   skip: Int = 0, tcp: Bool = false) -> Parsed {
            .packet(Frame(cls: cls, src: src, ttl: ttl, essential: essential, sipRequest: sipRequest, payload: payload,
                          skip: skip, firstFragment: firstFragment, fragmentID: fragmentID, tcp: tcp))
        }
        func plain(_ cls: TrafficClass, essential: Bool = false) -> Parsed { frame(cls, essential: essential) }
        switch proto {
        case 17:
            guard at + 8 <= n, be16(at + 4) >= 8 else { return .malformed }
            let dport = be16(at + 2)
            guard isSIPPort(dport) else {
                if let rtp = settings.rtpPorts, rtp.contains(UInt16(dport)) { return plain(.rtp) }
                return plain(.other)
            }
            let length = min(be16(at + 4) - 8, n - (at + 8))
            let payload = b[(at + 8)..<(at + 8 + length)]
            let crlf: Set<UInt8> = [13, 10], blanks: Set<UInt8> = [13, 10, 32, 9]
            // RFC 5626: a keep-alive is CRLFs alone.
            if (1...8).contains(length) && payload.allSatisfy(crlf.contains) {
                return frame(.keepalive, payload: payload)
            }
            // RFC 3261 7.5: CRLFs before a request line are skipped; so are up to four blanks of any kind.
            let skip = payload.prefix(Int(FG_SIP_MAX_LEADING)).prefix(while: blanks.contains).count
            let cls = sipClass(Array(payload.dropFirst(skip).prefix(16)))
            // Walked: requests, and what a lenient server might still take for one.
            return frame(cls, sipRequest: cls.index <= TrafficClass.inDialog.index || cls == .sipOther, payload: payload,
                         skip: skip)
        case 6:
            guard at + 20 <= n, b[at + 12] >> 4 >= 5 else { return .malformed }
            guard isSIPPort(be16(at + 2)) else { return plain(.other) }
            let flags = b[at + 13]
            if flags & 0x02 != 0 && flags & 0x10 == 0 { return plain(.sipSyn) }
            // SIP over TCP: a segment's payload (up to the IP length) that starts a message is read like a
            // datagram (a header block going on in the next segment is let through, unnoted); other bytes continue a
            // message (or TLS).
            let start = at + Int(b[at + 12] >> 4) * 4
            guard start <= n else { return .malformed }
            let length = max(0, min(l3End, n) - start)
            guard length > 0 else {
                return frame(.sipStream, tcp: true)
            }
            let payload = b[start..<(start + length)]
            if (1...8).contains(length) && payload.allSatisfy({ $0 == 13 || $0 == 10 }) {
                return frame(.keepalive, payload: payload, tcp: true)
            }
            let blanks: Set<UInt8> = [13, 10, 32, 9]
            let skip = payload.prefix(Int(FG_SIP_MAX_LEADING)).prefix(while: blanks.contains).count
            var cls = sipClass(Array(payload.dropFirst(skip).prefix(16)))
            if cls == .sipOther { cls = .sipStream }
            return frame(cls, sipRequest: cls.index <= TrafficClass.inDialog.index, payload: payload, skip: skip, tcp: true)
        case 1:
            guard at + 8 <= n else { return .malformed }
            return plain(.icmp)
        case 58:
            guard at + 4 <= n else { return .malformed }
            // RFC 4861: neighbour discovery is IPv6 with hop limit 255; nothing else is. RFC 6980: nor is anything
            // that comes with a fragment header.
            return plain(.icmp, essential: v6 && ttl == 255 && !fragmented && (133...137).contains(b[at]))
        default:
            return plain(.other)
        }
    }

    func isSIPPort(_ port: Int) -> Bool { port != 0 && settings.sipPorts.contains(UInt16(port)) }

    /// RFC 3261 request methods are case-sensitive tokens followed by one space; a response starts with
    /// "SIP/2.0 " and a status code of 1xx to 6xx and a space.
    func sipClass(_ head: [UInt8]) -> TrafficClass {
        let text = head + [UInt8](repeating: 0, count: 16 - head.count)
        func starts(_ s: String) -> Bool { text.starts(with: Array(s.utf8)) }
        if starts("INVITE ") { return .invite }
        if starts("REGISTER ") { return .register }
        if starts("OPTIONS ") { return .options }
        if ["ACK ", "BYE ", "CANCEL "].contains(where: starts) { return .inDialog }
        if ["SUBSCRIBE ", "NOTIFY ", "MESSAGE ", "INFO ", "UPDATE ", "PRACK ", "REFER ", "PUBLISH "].contains(where: starts) {
            return .otherRequest
        }
        if starts("SIP/2.0 "), (UInt8(ascii: "1")...UInt8(ascii: "6")).contains(text[8]),
           (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(text[9]), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(text[10]),
           text[11] == UInt8(ascii: " ")
        {
            return .response
        }
        return .sipOther
    }

    // MARK: The header walk

    struct Inspection {
        var signature = false
        /// CSeq names REGISTER or INVITE and the start line another method (or the reverse), or two Call-IDs or
        /// CSeqs.
        var malformed = false
        /// A header block that does not end within the bytes walked while more of the message follows.
        var oversize = false
        /// What ties the request to the server's answer (BPF/lib/trust.h): its credentials (an Authorization or
        /// Proxy-Authorization header) and the first nonce they answer, its Call-ID and CSeq number, and whether
        /// the walk reached the blank line that ends the header block.
        var credentials = false
        var nonce: [UInt8]? = nil
        var callID: [UInt8]? = nil
        var cseq: UInt32? = nil
        /// The CSeq method, when a CSeq was read.
        var method: [UInt8]? = nil
        var ended = false
        var ambiguous = false
        /// A quarantined source's credentials, answering no challenge sent to it (set by `walk`).
        var unproven = false
    }

    /// The nonce parameter of a credentials header's value (RFC 7616: `nonce="..."` or a token), if any.
    static func nonceParameter(_ value: [UInt8]) -> [UInt8]? {
        let lower = value.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }
        let name = Array("nonce".utf8)
        var i = 0
        while i + name.count <= value.count {
            let boundary = i == 0 || [32, 9, 44].contains(value[i - 1])
            if boundary && Array(lower[i..<(i + name.count)]) == name {
                var j = i + name.count
                while j < value.count, [32, 9].contains(value[j]) { j += 1 }
                if j < value.count, value[j] == UInt8(ascii: "=") {
                    j += 1
                    while j < value.count, [32, 9].contains(value[j]) { j += 1 }
                    if j < value.count, value[j] == UInt8(ascii: "\"") {
                        let rest = value[(j + 1)...]
                        return Array(rest.prefix { $0 != UInt8(ascii: "\"") })
                    }
                    return Array(value[j...].prefix { ![44, 59, 32, 9].contains($0) })
                }
            }
            i += 1
        }
        return nil
    }

    /// The header block of a request, from the line after its start line (which begins after `skip` leading
    /// bytes) to its blank line, within its first FG_SIP_SCAN_BYTES bytes; stopped at the first scanner signature.
    /// A header block that does not end there while more of the message follows (past the bytes walked, or in
    /// later fragments of a `firstFragment`) is malformed.
    /// A header is a name (User-Agent, From or f, Authorization, Proxy-Authorization, Call-ID or i, CSeq; any
    /// case), blanks, a colon, then blanks, CRs and folds (LF then SP or HT) before its value; a value ends at CR
    /// or LF (User-Agent and From: or at 31 bytes) and counts only if that end is within the scanned bytes.
    func inspect(_ payload: ArraySlice<UInt8>, skip: Int, firstFragment: Bool) -> Inspection {
        let w = Array(payload.prefix(Int(FG_SIP_SCAN_BYTES)))
        let len = w.count
        var result = Inspection()
        guard len >= 2 else {
            // Nothing to walk here, but the message goes on in later fragments.
            result.oversize = firstFragment
            return result
        }
        let lower = w.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }
        func isBlank(_ c: UInt8) -> Bool { c == 32 || c == 9 }
        func nextLine(after i: Int) -> Int? { w[min(i, len)...].firstIndex(of: 10).map { $0 + 1 } }
        var callIDs = 0, cseqs = 0, ambiguous = false, ended = false
        var method: [UInt8]? = nil  // the CSeq method read, once a CSeq value ended
        // CRLFs (and blanks) before the start line, as many as there are, then the start line.
        var first = skip
        while first < len, [13, 10, 32, 9].contains(w[first]) { first += 1 }
        var line = nextLine(after: first)
        walk: while let start = line, start < len {
            if w[start] == 13 || w[start] == 10 {
                ended = true
                break
            }
            // The header name.
            let names: [(String, String)] = [("user-agent", "u"), ("from", "f"), ("proxy-authorization", "a"),
                                             ("authorization", "a"), ("call-id", "c"), ("cseq", "q"), ("f", "f"), ("i", "c")]
            var kind: String?
            var i = start
            for (name, k) in names where lower[start...].starts(with: Array(name.utf8)) {
                let after = start + name.utf8.count
                if after < len && (isBlank(w[after]) || w[after] == UInt8(ascii: ":")) {
                    kind = k
                    i = after
                    break
                }
            }
            guard let header = kind else {
                line = nextLine(after: start)
                continue
            }
            while i < len && isBlank(w[i]) { i += 1 }
            guard i < len, w[i] == UInt8(ascii: ":") else {
                line = i < len && w[i] == 10 ? i + 1 : nextLine(after: i)
                continue
            }
            i += 1
            if header == "a" {
                // Credentials: the first such header's nonce is what they answer.
                var end = i
                while end < len, w[end] != 13, w[end] != 10 { end += 1 }
                if !result.credentials { result.nonce = ReferenceModel.nonceParameter(Array(w[i..<end])) }
                result.credentials = true
                line = nextLine(after: i)
                continue
            }
            if header == "c" && callIDs > 0 || header == "q" && cseqs > 0 { ambiguous = true }
            // Blanks, CRs and folds before the value.
            while i < len {
                if isBlank(w[i]) || w[i] == 13 {
                    i += 1
                } else if w[i] == 10 {
                    guard i + 1 < len else { break walk }
                    if isBlank(w[i + 1]) {
                        i += 2
                    } else {
                        line = i + 1  // not a fold: a new line starts
                        continue walk
                    }
                } else {
                    break
                }
            }
            guard i < len else { break }
            switch header {
            case "u", "f":
                var value: [UInt8] = []
                while value.count < Int(FG_SIGNATURE_BYTES) - 1, i < len, w[i] != 13, w[i] != 10 {
                    value.append(lower[i])
                    i += 1
                }
                guard i < len else { break walk }
                let kind: Signature.Header = header == "u" ? .userAgent : .from
                if signatures.contains(where: { $0.header == kind && value.starts(with: Array($0.prefix.utf8)) }) {
                    result.signature = true
                    return result
                }
                line = w[i] == 10 ? i + 1 : nextLine(after: i + 1)
            case "c":
                let value = i
                while i < len, w[i] != 13, w[i] != 10 { i += 1 }
                guard i < len else { break walk }
                callIDs += 1
                result.callID = Array(w[value..<i])
                line = w[i] == 10 ? i + 1 : nextLine(after: i + 1)
            default:  // CSeq: digits, blanks, a method; anything else ends it
                guard (48...57).contains(w[i]) else {
                    line = nextLine(after: i + 1)
                    continue
                }
                var number: UInt32 = 0
                while i < len, (48...57).contains(w[i]) {
                    number = number &* 10 &+ UInt32(w[i] - 48)
                    i += 1
                }
                var m: [UInt8] = []
                if i < len, isBlank(w[i]) {
                    while i < len, isBlank(w[i]) { i += 1 }
                    while i < len, w[i] != 13, w[i] != 10, !isBlank(w[i]) {
                        m.append(w[i])
                        i += 1
                    }
                }
                guard i < len else { break walk }
                cseqs += 1
                method = m
                result.cseq = number
                line = w[i] == 10 ? i + 1 : nextLine(after: i + 1)
            }
        }
        result.ended = ended
        result.ambiguous = ambiguous
        result.method = method
        if ambiguous {
            result.malformed = true
        } else if let method {
            let named = method == Array("REGISTER".utf8) ? "REGISTER" : method == Array("INVITE".utf8) ? "INVITE" : nil
            let start = payload.dropFirst(skip)
            let own = start.starts(with: Array("REGISTER ".utf8)) ? "REGISTER"
                : start.starts(with: Array("INVITE ".utf8)) ? "INVITE" : nil
            if own != nil ? named != own : named != nil { result.malformed = true }
        }
        if !result.malformed && !ended && (firstFragment || payload.count > len) { result.oversize = true }
        return result
    }
}
