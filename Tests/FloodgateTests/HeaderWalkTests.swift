import CFloodgate
import FloodgateBPF
import FloodgateCore
import FloodgateLab
import Testing

/// The header walk (BPF/lib/scanner.h) takes the forms almost every message has in fewer steps: after a header name, a
/// colon with at most one space and the value's first byte in the same step; a CSeq by words (its digits, blanks and
/// method a run at a time); the CR that ends a value with its LF. A forger chooses every byte of a message and where it
/// ends. These tests cut messages in those forms, and in the forms beside them that must take the long way, at every
/// byte, and ask that the program judge each cut as the reference model does. The verdicts show what the walk decides
/// (a scanner's signature, a CSeq's method, two Call-IDs or CSeqs); they do not show the Call-ID's hash, the CSeq
/// number or where the caller's URIs start, which the verdicts of these settings do not depend on.
@Suite(.serialized) struct HeaderWalkTests {
    /// Header lines in the walk's short forms and beside them: blanks before the colon, two or a tab after it, an
    /// empty or folded value, a lone CR inside a line (it ends the value but does not start a line), a CSeq longer
    /// than a step, a method too long to be one.
    static let headers = [
        "User-Agent: friendly-scanner", "User-Agent:friendly-scanner", "User-Agent:  friendly-scanner",
        "User-Agent :friendly-scanner", "User-Agent:\tfriendly-scanner", "User-Agent:\r\n friendly-scanner",
        "User-Agent: \r\n friendly-scanner", "User-Agent:", "User-Agent: ", "user-agent: Linphone/5.2",
        // A name's second word: wrong in its last byte, in capitals, and followed by more of a name.
        "User-Agenx: friendly-scanner", "USER-AGENT: friendly-scanner", "User-Agentx: friendly-scanner",
        // Lines longer than a skip step's words: the LF that ends them, and the scanner after it.
        "Allow: PRACK, INVITE, ACK, BYE, CANCEL, UPDATE, INFO, SUBSCRIBE, NOTIFY, REFER, MESSAGE, OPTIONS\r\n"
            + "User-Agent: friendly-scanner",
        "Via: SIP/2.0/UDP 198.18.1.1:5060;rport;branch=z9hG4bKPj5c7b2d0e8f1a4b3c9d6e5c7b2d0e8f1a4b3c9d6e5c7b2d0e8f1a4b3c9d6e"
            + "5c7b2d0e8f1a4b3c9d6e5c7b2d0e8f1a4b3c9\r\nUser-Agent: friendly-scanner",
        "From: \"sipvicious\"<sip:100@1.1.1.1>;tag=1", "f:\"sipvicious\"<sip:1@x>", "From:  \"sipvicious\"<sip:1@x>",
        "From: <sip:200@x>;tag=2",
        "CSeq: 4711 REGISTER", "CSeq:4711 REGISTER", "CSeq: 4711 INVITE", "CSeq:  1 REGISTER", "CSeq: 1 REGISTERXYZ",
        "CSeq: 12345678901234 INVITE", "CSeq: 1 OPTIONS \t", "CSeq: x REGISTER", "CSeq:\r\n 7 INVITE",
        "CSeq: 1\rUser-Agent: friendly-scanner", "Call-ID: a@x\rUser-Agent: friendly-scanner",
        // A CSeq read by words: runs of digits, blanks and the method that end at a word's last byte, cross it, or
        // fill it (eight digits, a method of eight bytes), and a number's leading zeros.
        "CSeq: 12345678 REGISTER", "CSeq: 1234567 REGISTER", "CSeq: 1 \t  \t   REGISTER", "CSeq: 1 REGISTEX",
        "CSeq: 0000000000000000001 INVITE", "CSeq: 42 INVITE  \t ", "CSeq: 7\tINVITE\tx",
        "Call-ID: 3c9d6e5c7b2d0e8f1a4b@198.18.1.1",
        "Call-ID: 3c9d6e5c7b2d0e8f1a4b-5c7b2d0e8f1a4b3c9d6e@198.18.1.1\r\nUser-Agent: friendly-scanner",
        "Call-ID: 3c9d6e5c7b2d0e8f1a4b-5c7b2d0e8f1a4b3c9d6e@198.18.1.1\rUser-Agent: friendly-scanner",
        "i:1", "Call-ID: a\r\nCall-ID: b",
        // Headers whose values the walk reads from the colon on: the shortcut takes only the colon.
        "To: <sip:100@x>;tag=1", "t:<sip:1@x>", "Authorization: Digest username=\"100\",nonce=\"4b4c\"",
        "Proxy-Authorization:Digest nonce=1", "WWW-Authenticate: Digest realm=\"x\",nonce=\"n\",stale=true",
        // Parameters the walk passes over a word at a time, then a scanner on the next line: where each one ends
        // (a comma, a blank, a tab, the LF) is found inside a word.
        "Authorization: Digest username=\"1001\", realm=\"198.18.0.2\", nonce=\"5f2c9a1e7b3d4c60\", uri=\"sip:x\","
            + " response=\"0a4f113eb5c6d7e8f9a0\",cnonce=\"4b5c\",nc=00000001,\tqop=auth\r\nUser-Agent: friendly-scanner",
        "WWW-Authenticate: Digest realm=\"a-realm-longer-than-a-word\",qop=\"auth\",algorithm=MD5,stale=TRUE\r\n"
            + "User-Agent: friendly-scanner",
    ]

    @Test func everyCutOfAHeaderIsJudgedAsTheModelJudgesIt() throws {
        try onOneCPU { try judgeEveryCut() }
    }

    func judgeEveryCut() throws {
        // No time in the verdicts: every bucket unlimited, no scanner bans (each cut is judged on its own).
        var settings = Settings.defaults
        settings.scannerBanSeconds = 0
        var policy = FilterPolicy()
        policy.prefix = .unlimited
        policy.widePrefix = .unlimited
        policy.newSources = .unlimited
        let unlimited = Dictionary(uniqueKeysWithValues: TrafficClass.all.map { ($0, Limit.unlimited) })
        let program = try loadProgram(limits: unlimited, settings: settings, policy: policy)
        var model = ReferenceModel(settings: settings, deny: [], allow: [], signatures: Signature.defaults)
        model.dropSlots = [:]
        model.limits = unlimited
        model.verifiedLimits = unlimited
        (model.prefix, model.widePrefix, model.newSources) = (.unlimited, .unlimited, .unlimited)

        var mismatches: [String] = []
        var seen = Set<String>()
        var frames = 0
        for method in ["REGISTER", "INVITE", "OPTIONS"] {
            let start = "\(method) sip:100@198.18.0.2 SIP/2.0\r\n"
            for header in Self.headers {
                let message = Array((start + header + "\r\nMax-Forwards: 70\r\n\r\n").utf8)
                // Every cut from the end of the start line to the whole message, shortest first, then longest
                // first: the bytes the program's copy holds past a cut are then another message's, then this
                // message's own next ones (what the walk must never read as if they had arrived).
                let cuts = Array(start.utf8.count...message.count)
                for n in cuts + cuts.reversed() {
                    let frame = Packet.sipRaw(Array(message.prefix(n)))
                    let (cls, reason) = model.verdict(frame)
                    let (action, gotClass, gotReason) = try program.judge(frame)
                    frames += 1
                    seen.insert("\(cls.name)/\(reason.name)")
                    let wantAction = reason.isDrop ? XDP_DROP_ACTION : XDP_PASS_ACTION
                    if gotClass != cls || gotReason != reason || action != wantAction {
                        mismatches.append(
                            "\(method) with \(header.debugDescription) cut at \(n) of \(message.count): model "
                                + "\(cls.name)/\(reason.name), program \(gotClass?.name ?? "-")/\(gotReason?.name ?? "-")")
                    }
                }
            }
        }
        let differing = mismatches.count
        #expect(differing == 0, "cuts judged otherwise than the model:\n\(mismatches.prefix(10).joined(separator: "\n"))")
        #expect(frames > 8000)
        // The cuts must reach the verdicts the header forms decide, or they prove little.
        for needed in ["register/dropped-scanner", "invite/dropped-scanner", "options/dropped-scanner",
                       "register/passed", "invite/passed", "options/passed", "register/dropped-malformed",
                       "invite/dropped-malformed"] {
            #expect(seen.contains(needed), "no cut was \(needed): \(seen.sorted())")
        }
    }
}
