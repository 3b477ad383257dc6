internal import CFloodgate
import Foundation

/// The filter's fixed capacities and defaults, as the shared header (BPF/floodgate.h) sets them.
public enum FilterCapacity {
    /// SIP ports the filter can watch.
    public static let sipPorts = Int(FG_MAX_SIP_PORTS)
    /// Networks in each of the deny and allow lists.
    public static let listEntries = Int(FG_MAX_LIST_ENTRIES)
    /// SIP server addresses whose answers count (`sip.servers`).
    public static let servers = Int(FG_MAX_SERVERS)
    /// Scanner signatures.
    public static let signatures = Int(FG_MAX_SIGNATURES)
    /// (source, class) pairs tracked unless `--max-sources` says otherwise.
    public static let defaultSources = Int(FG_DEFAULT_MAX_SOURCES)
    /// The filter's own bans unless `--max-bans` says otherwise.
    public static let defaultAutoBans = Int(FG_DEFAULT_MAX_AUTO_BANS)
    /// Networks banned on other routers' word (learned over BGP).
    public static let peerBans = Int(FG_MAX_PEER_BANS)
    /// One drop in this many, per CPU, class and reason, reaches the agent with its source.
    public static let dropSampleEvery = Int(FG_DROP_SAMPLE_EVERY)
}

/// A record the filter writes to its event ring buffer (`struct fg_event`).
public struct FilterEvent: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// A source crossed the auto-ban threshold and was banned (`offence`: which offence; `drops`: its drops).
        case autoBan
        /// A scanner signature banned a source.
        case scanner
        /// Failed authentications banned a source (`drops`: the failures).
        case bruteForce
        /// The SIP server accepted a source's credentialed REGISTER: verified (`offence`: the pinned TTL).
        case verified
        /// One drop in ``FilterCapacity/dropSampleEvery`` (`reason`; `drops`: the count so far).
        case dropSample
        /// A verified or allow-listed source that UDP evidence would have banned was not (`sparedScanner`: by a
        /// scanner signature, else by auto-ban).
        case spared
        /// Packets claiming a verified or allow-listed address at another hop distance (`offence`: their TTL).
        case spoofed
        /// A source crossed a fraud threshold and is blocked for new calls until `expiresNS` (``fraudKind``;
        /// `drops`: the threshold, calls a minute).
        case fraud
        /// A new call presented a caller number its source may not (``callerNumber``; `offence`: the mode,
        /// ``callerIDEnforced``).
        case callerID
        /// A verified source's credentials failed as many times as a ban takes while answering no challenge the
        /// registrar sent to it: until `expiresNS` its credentialed requests must answer one sent to it
        /// (`dropped-unproven`; at its pin or from other hop distances: ``FilterEvent/quarantineAway``). With
        /// ``FilterEvent/quarantineMadeStrict``, the quarantine was in force and they failed answering challenges to
        /// other methods: made strict, only credentials answering a challenge to a REGISTER pass there. `drops`: the
        /// failures.
        case quarantine
        case unknown(UInt32)
    }

    public var kind: Kind
    public var trafficClass: TrafficClass?
    public var address: SourceAddress
    /// The ban's expiry or the trust's end (CLOCK_MONOTONIC nanoseconds), where there is one.
    public var expiresNS: UInt64
    public var offence: UInt32
    public var drops: UInt32

    /// A drop sample's reason.
    public var reason: Reason? { kind == .dropSample ? Reason.all.first { $0.index == offence } : nil }
    /// A fraud block's threshold: "international" or "high-risk".
    public var fraudKind: String? {
        kind == .fraud ? FraudBlock.kindName(offence) : nil
    }
    /// A caller-ID mismatch's number, E.164 digits with "+" (nil: it presented none in range, or none readable).
    public var callerNumber: String? {
        guard kind == .callerID, drops > 0 else { return nil }
        // fg_destination_key.digits, copied into expires_ns (little-endian: its first byte first).
        return "+" + FilterMaps.unpackDigits(expiresNS.littleEndian, count: Int(drops))
    }
    /// Whether a caller-ID mismatch was refused (enforce), not only flagged.
    public var callerIDEnforced: Bool { kind == .callerID && offence == FG_CALLER_ID_ENFORCE.rawValue }
    /// Whether a spared ban would have been a scanner's (else an auto-ban).
    public var sparedScanner: Bool { kind == .spared && offence == UInt32(FG_BAN_SCANNER) }
    /// Whether a quarantine is of credentials from other hop distances than the pin (else at the pin).
    public var quarantineAway: Bool { kind == .quarantine && offence & UInt32(FG_QUARANTINE_AWAY) != 0 }
    /// Whether a quarantine in force was made strict (``Kind/quarantine``).
    public var quarantineMadeStrict: Bool { kind == .quarantine && offence & UInt32(FG_QUARANTINE_MADE_STRICT) != 0 }

    init(_ raw: fg_event) {
        switch raw.type {
        case FG_EVENT_AUTOBAN.rawValue: kind = .autoBan
        case FG_EVENT_SCANNER.rawValue: kind = .scanner
        case FG_EVENT_BRUTE_FORCE.rawValue: kind = .bruteForce
        case FG_EVENT_TRUSTED.rawValue: kind = .verified
        case FG_EVENT_DROP_SAMPLE.rawValue: kind = .dropSample
        case FG_EVENT_SPARED.rawValue: kind = .spared
        case FG_EVENT_SPOOFED.rawValue: kind = .spoofed
        case FG_EVENT_FRAUD.rawValue: kind = .fraud
        case FG_EVENT_CALLER_ID.rawValue: kind = .callerID
        case FG_EVENT_QUARANTINE.rawValue: kind = .quarantine
        default: kind = .unknown(raw.type)
        }
        trafficClass = TrafficClass(counterRow: raw.traffic_class)
        address = SourceAddress(raw.addr)
        expiresNS = raw.expires_ns
        offence = raw.offence
        drops = raw.drops
    }
}

/// Reads the records the XDP program writes to its `fg_events` ring buffer (libbpf's ring_buffer API).
public final class EventReader: @unchecked Sendable {
    private var ring: OpaquePointer?
    fileprivate var pending: [FilterEvent] = []

    public init(_ maps: FilterMaps) throws {
        let callback: ring_buffer_sample_fn = { context, data, size in
            guard let context, let data, size >= MemoryLayout<fg_event>.size else { return 0 }
            let reader = Unmanaged<EventReader>.fromOpaque(context).takeUnretainedValue()
            reader.pending.append(FilterEvent(data.loadUnaligned(as: fg_event.self)))
            return 0
        }
        guard let ring = ring_buffer__new(maps.fd(FG_MAP_EVENTS), callback, Unmanaged.passUnretained(self).toOpaque(), nil)
        else {
            throw FloodgateError("open the event ring buffer \(FG_MAP_EVENTS)", errno: errno)
        }
        self.ring = ring
    }

    deinit { ring_buffer__free(ring) }

    /// Every record written since the last call (without waiting).
    public func drain() -> [FilterEvent] {
        _ = ring_buffer__consume(ring)
        defer { pending.removeAll(keepingCapacity: true) }
        return pending
    }
}
