import CFloodgate
import CLabLayouts
import Foundation
import Testing

/// The BPF helpers are self-contained: each header under BPF/lib/ compiles on its own, so it includes what it uses
/// and the program may include them in any order.
@Suite struct BPFHeaderTests {
    @Test func everyHelperHeaderCompilesOnItsOwn() throws {
        let bpf = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("BPF")
        let headers = try FileManager.default.contentsOfDirectory(atPath: bpf.appendingPathComponent("lib").path)
            .filter { $0.hasSuffix(".h") }.sorted()
        #expect(headers.count >= 10, "\(headers)")
        #if arch(x86_64)
        let multiarch = "/usr/include/x86_64-linux-gnu"
        #else
        let multiarch = "/usr/include/aarch64-linux-gnu"
        #endif
        for header in headers {
            let result = try run(["sh", "-c", "printf '#include \"lib/\(header)\"\\n' | clang -target bpf -mcpu=v3 -O2 "
                + "-Wall -Werror -I \(multiarch) -I '\(bpf.path)' -fsyntax-only -x c -"])
            #expect(result.status == 0, "\(header) does not compile on its own: \(result.err)")
        }
    }
}
