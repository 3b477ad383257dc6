import CFloodgate
import FloodgateCore
import Foundation

/// A reference model of the XDP program's classification and of the time-free part of its policy, written from
/// the specification in plain Swift (no shared code with the C beyond the header's constants and names): what
/// class and reason each frame must be counted under when every bucket is unlimited.
struct ReferenceModel {
    var settings: Settings
    var deny: [CIDR] = []
    var allow: [CIDR] = []
    /// Active bans; true for explicit ones. The model adds the bans the program adds for scanners.
    var bans: [SourceAddress: Bool] = [:]
    var signatures: [Signature] = []
    /// The TTL each host allow entry's first SIP packet arrived with (hop-count pinning; no entry has a fixed
    /// range, and wider entries are not pinned).
    var pins: [CIDR: UInt8] = [:]

    enum Parsed {
        case malformed
        case nonIP
        case packet(cls: TrafficClass, src: SourceAddress, ttl: UInt8, essential: Bool, sipRequest: Bool,
                    payload: ArraySlice<UInt8>, skip: Int, firstFragment: Bool = false, tcp: Bool = false)
    }

    mutating func verdict(_ frame: [UInt8]) -> (TrafficClass, Reason) {
        switch parse(frame) {
        case .malformed:
            return (.other, settings.malformed == .pass ? .passedMalformed : .droppedMalformed)
        case .nonIP:
            return (.other, .passed)
        case .packet(let cls, let src, let ttl, let essential, let sipRequest, let payload, let skip, let firstFragment,
                     let tcp):
            if essential { return (cls, .passed) }
            if deny.contains(where: { $0.contains(src) }) { return (cls, .droppedDeny) }
            let ban = bans[src]
            if ban == true { return (cls, .droppedBan) }
            // No trust in this model's settings and no credentials among its frames, so: unverified or allow-listed.
            let inspected = sipRequest && !signatures.isEmpty ? inspect(payload, skip: skip, firstFragment: firstFragment) : Inspection()
            if let entry = allow.filter({ $0.contains(src) }).max(by: { $0.keyLength < $1.keyLength }) {
                if let pin = pins[entry] {
                    if abs(Int(pin) - Int(ttl)) > Int(settings.ttlTolerance) {
                        // Taken as forged: only a REGISTER or INVITE goes on (to be challenged), and TCP (which a
                        // forger cannot complete), as a stranger's.
                        guard cls.isSIP else { return (cls, .droppedSpoofed) }
                        if cls == .sipSyn || (tcp && !sipRequest) { return (cls, .passed) }
                        guard tcp || cls == .register || cls == .invite, !inspected.signature, !inspected.malformed,
                              !inspected.oversize else {
                            return (cls, .droppedSpoofed)
                        }
                        return (cls, .passed)
                    }
                } else if cls.isSIP && entry.keyLength == 128 {
                    pins[entry] = ttl  // only a host entry is pinned without a range
                }
                // Scanner-signed: dropped, but an allow-listed address is never banned by what it sends.
                if inspected.signature { return (cls, .droppedScanner) }
                if inspected.malformed { return (cls, .droppedMalformed) }
                if inspected.oversize { return (cls, .droppedOversize) }
                return (cls, .passedAllow)
            }
            if ban != nil { return (cls, .droppedBan) }
            if inspected.signature {
                if settings.scannerBanSeconds > 0 && bans[src] == nil { bans[src] = false }
                return (cls, .droppedScanner)
            }
            if inspected.malformed { return (cls, .droppedMalformed) }
            if inspected.oversize { return (cls, .droppedOversize) }
            return (cls, .passed)
        }
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
                return .packet(cls: .fragment, src: src, ttl: ttl, essential: false, sipRequest: false, payload: [], skip: 0)
            }
            return layer4(b, proto: Int(b[off + 9]), at: off + hl, src: src, ttl: ttl, v6: false,
                          firstFragment: be16(off + 6) & 0x2000 != 0, l3End: off + be16(off + 2))
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
            var firstFragment = false
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
                        return .packet(cls: .fragment, src: src, ttl: ttl, essential: false, sipRequest: false,
                                       payload: [], skip: 0)
                    }
                    firstFragment = be16(cur + 2) & 1 != 0
                    next = Int(b[cur])
                    cur += 8
                default:
                    let parsed = layer4(b, proto: next, at: cur, src: src, ttl: ttl, v6: true, firstFragment: firstFragment,
                                        l3End: off + 40 + be16(off + 4))
                    if bogus, case .packet(_, _, _, false, _, _, _, _, _) = parsed { return .malformed }
                    return parsed
                }
            }
            return .malformed
        }
        return .nonIP
    }

    func layer4(_ b: [UInt8], proto: Int, at: Int, src: SourceAddress, ttl: UInt8, v6: Bool, firstFragment: Bool,
                l3End: Int)
        -> Parsed
    {
        let n = b.count
        func be16(_ i: Int) -> Int { Int(b[i]) << 8 | Int(b[i + 1]) }
        func plain(_ cls: TrafficClass, essential: Bool = false) -> Parsed {
            .packet(cls: cls, src: src, ttl: ttl, essential: essential, sipRequest: false, payload: [], skip: 0)
        }
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
                return .packet(cls: .keepalive, src: src, ttl: ttl, essential: false, sipRequest: false, payload: payload,
                               skip: 0)
            }
            // RFC 3261 7.5: CRLFs before a request line are skipped; so are up to four blanks of any kind.
            let skip = payload.prefix(Int(FG_SIP_MAX_LEADING)).prefix(while: blanks.contains).count
            let cls = sipClass(Array(payload.dropFirst(skip).prefix(16)))
            // Walked: requests, and what a lenient server might still take for one.
            return .packet(cls: cls, src: src, ttl: ttl, essential: false,
                           sipRequest: cls.index <= TrafficClass.inDialog.index || cls == .sipOther, payload: payload,
                           skip: skip, firstFragment: firstFragment)
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
                return .packet(cls: .sipStream, src: src, ttl: ttl, essential: false, sipRequest: false, payload: [],
                               skip: 0, tcp: true)
            }
            let payload = b[start..<(start + length)]
            if (1...8).contains(length) && payload.allSatisfy({ $0 == 13 || $0 == 10 }) {
                return .packet(cls: .keepalive, src: src, ttl: ttl, essential: false, sipRequest: false, payload: payload,
                               skip: 0, tcp: true)
            }
            let blanks: Set<UInt8> = [13, 10, 32, 9]
            let skip = payload.prefix(Int(FG_SIP_MAX_LEADING)).prefix(while: blanks.contains).count
            var cls = sipClass(Array(payload.dropFirst(skip).prefix(16)))
            if cls == .sipOther { cls = .sipStream }
            return .packet(cls: cls, src: src, ttl: ttl, essential: false,
                           sipRequest: cls.index <= TrafficClass.inDialog.index, payload: payload, skip: skip,
                           firstFragment: firstFragment, tcp: true)
        case 1:
            guard at + 8 <= n else { return .malformed }
            return plain(.icmp)
        case 58:
            guard at + 4 <= n else { return .malformed }
            // RFC 4861: neighbour discovery is IPv6 with hop limit 255; nothing else is.
            return plain(.icmp, essential: v6 && ttl == 255 && (133...137).contains(b[at]))
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
                while i < len, w[i] != 13, w[i] != 10 { i += 1 }
                guard i < len else { break walk }
                callIDs += 1
                line = w[i] == 10 ? i + 1 : nextLine(after: i + 1)
            default:  // CSeq: digits, blanks, a method; anything else ends it
                guard (48...57).contains(w[i]) else {
                    line = nextLine(after: i + 1)
                    continue
                }
                while i < len, (48...57).contains(w[i]) { i += 1 }
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
                line = w[i] == 10 ? i + 1 : nextLine(after: i + 1)
            }
        }
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
