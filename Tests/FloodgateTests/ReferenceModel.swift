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

    enum Parsed {
        case malformed
        case nonIP
        case packet(cls: TrafficClass, src: SourceAddress, essential: Bool, sipRequest: Bool, payload: ArraySlice<UInt8>)
    }

    mutating func verdict(_ frame: [UInt8]) -> (TrafficClass, Reason) {
        switch parse(frame) {
        case .malformed:
            return (.other, settings.malformed == .pass ? .passedMalformed : .droppedMalformed)
        case .nonIP:
            return (.other, .passed)
        case .packet(let cls, let src, let essential, let sipRequest, let payload):
            if essential { return (cls, .passed) }
            if deny.contains(where: { $0.contains(src) }) { return (cls, .droppedDeny) }
            let ban = bans[src]
            if ban == true { return (cls, .droppedBan) }
            if allow.contains(where: { $0.contains(src) }) { return (cls, .passedAllow) }
            if ban != nil { return (cls, .droppedBan) }
            if sipRequest && !signatures.isEmpty && scannerSignature(in: payload) {
                if settings.scannerBanSeconds > 0 && bans[src] == nil { bans[src] = false }
                return (cls, .droppedScanner)
            }
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
            if be16(off + 6) & 0x1FFF != 0 { return .packet(cls: .fragment, src: src, essential: false, sipRequest: false, payload: []) }
            return layer4(b, proto: Int(b[off + 9]), at: off + hl, src: src)
        }
        if proto == 0x86DD {
            guard off + 40 <= n, b[off] >> 4 == 6 else { return .malformed }
            let src = SourceAddress(bytes: Array(b[(off + 8)..<(off + 24)]))
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
                        return .packet(cls: .fragment, src: src, essential: false, sipRequest: false, payload: [])
                    }
                    next = Int(b[cur])
                    cur += 8
                default:
                    return layer4(b, proto: next, at: cur, src: src)
                }
            }
            return .malformed
        }
        return .nonIP
    }

    func layer4(_ b: [UInt8], proto: Int, at: Int, src: SourceAddress) -> Parsed {
        let n = b.count
        func be16(_ i: Int) -> Int { Int(b[i]) << 8 | Int(b[i + 1]) }
        func plain(_ cls: TrafficClass, essential: Bool = false) -> Parsed {
            .packet(cls: cls, src: src, essential: essential, sipRequest: false, payload: [])
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
            let cls = sipClass(Array(payload.prefix(16)))
            return .packet(cls: cls, src: src, essential: false, sipRequest: cls.index <= TrafficClass.inDialog.index,
                           payload: payload)
        case 6:
            guard at + 20 <= n, b[at + 12] >> 4 >= 5 else { return .malformed }
            guard isSIPPort(be16(at + 2)) else { return plain(.other) }
            let flags = b[at + 13]
            return plain(flags & 0x02 != 0 && flags & 0x10 == 0 ? .sipSyn : .sipStream)
        case 1:
            guard at + 8 <= n else { return .malformed }
            return plain(.icmp)
        case 58:
            guard at + 4 <= n else { return .malformed }
            return plain(.icmp, essential: (133...137).contains(b[at]))
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

    // MARK: Scanner signatures

    /// The header lines of the first 512 bytes, after the request line: a User-Agent, From or f header whose
    /// value (after blanks, a colon and blanks) ends with CR or LF, or reaches 31 bytes, within those bytes, and
    /// starts (case-insensitively) with a signature of its kind.
    func scannerSignature(in payload: ArraySlice<UInt8>) -> Bool {
        let window = Array(payload.prefix(Int(FG_SIP_SCAN_BYTES)))
        guard window.count >= 2 else { return false }
        let lower = window.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }
        var lineStart = window.firstIndex(of: 10).map { $0 + 1 }
        while let start = lineStart, start < window.count {
            let end = window[start...].firstIndex(of: 10)
            defer { lineStart = end.map { $0 + 1 } }
            var i = start
            var kind: Signature.Header?
            if lower[i...].starts(with: Array("user-agent".utf8)) {
                kind = .userAgent
                i += 10
            } else if lower[i...].starts(with: Array("from".utf8)) {
                kind = .from
                i += 4
            } else if lower[i] == UInt8(ascii: "f") {
                kind = .from
                i += 1
            }
            guard let header = kind else { continue }
            let blank: (UInt8) -> Bool = { $0 == 32 || $0 == 9 }
            while i < window.count && blank(window[i]) { i += 1 }
            guard i < window.count, window[i] == UInt8(ascii: ":") else { continue }
            i += 1
            while i < window.count && blank(window[i]) { i += 1 }
            guard i < window.count, window[i] != 13, window[i] != 10 else { continue }
            // The value: up to 31 bytes, ended by CR or LF; it counts only if its end is within the window.
            var value: [UInt8] = []
            while value.count < Int(FG_SIGNATURE_BYTES) - 1, i < window.count, window[i] != 13, window[i] != 10 {
                value.append(lower[i])
                i += 1
            }
            guard i < window.count else { continue }
            if signatures.contains(where: { $0.header == header && value.starts(with: Array($0.prefix.utf8)) }) {
                return true
            }
        }
        return false
    }
}
