import CFloodgate
import FloodgateCore
import FloodgateLab
import Foundation
import Testing

extension NetworkLab {
    /// Runs the floodgate CLI in the router namespace (nsenter keeps the mount namespace, so bpffs pins stay
    /// visible), with this lab's pin root.
    @discardableResult
    func floodgate(_ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
        try FloodgateTests.run(["nsenter", "--net=/run/netns/\(routerNS)", floodgateBinary] + arguments + ["--pin-root", pinRoot])
    }

    /// The XDP program id on the router's interface, or nil.
    func routerXDPProgram() throws -> String? {
        let out = try NetworkLab.run(["ip", "-n", routerNS, "-d", "link", "show", routerInterface])
        guard let range = out.range(of: "prog/xdp id ") else { return nil }
        return String(out[range.upperBound...].prefix { $0.isNumber })
    }
}

/// Runs `body` in a fresh lab and always tears it down, even when the body throws.
func withLab(extraAddresses: [String] = [], _ body: (NetworkLab) throws -> Void) throws {
    try requireRoot()
    let lab = try NetworkLab(prefix: "fgt", extraOutsideAddresses: extraAddresses)
    defer { lab.tearDown() }
    try body(lab)
}
