import FloodgateCore
import FloodgateLab
import Foundation
import Testing

/// The Debian package `.ci/package` builds (`.ci/run package`), tried as an operator would on a router without
/// the Swift toolchain: it installs, its binary starts with /opt/swift hidden, it attaches and detaches on a lab
/// veth, an upgrade leaves the filter attached, and removal detaches it and leaves no file. This test installs the
/// package on this machine and purges it afterwards.
@Suite(.serialized) struct PackageTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Builds (incrementally) and returns the package's path.
    static func buildPackage() throws -> String {
        let built = try run(["bash", repository.appendingPathComponent(".ci/package").path])
        try #require(built.status == 0, "the package build failed: \(built.out.suffix(2000)) \(built.err.suffix(3000))")
        let deb = String(built.out.split(separator: "\n").last ?? "")
        try #require(deb.hasSuffix(".deb") && FileManager.default.fileExists(atPath: deb), "\(built.out.suffix(500))")
        return deb
    }

    /// Runs a shell script in a private mount namespace where /opt/swift (the toolchain, with the Swift runtime
    /// the development builds load) is an empty directory.
    static func withoutSwift(_ script: String) throws -> (status: Int32, out: String, err: String) {
        try run(["unshare", "--mount", "sh", "-ec",
                 "mount --make-rprivate / && mount -t tmpfs -o size=1m,mode=0755 empty /opt/swift && " + script])
    }

    @Test func thePackageInstallsRunsWithoutSwiftAndRemovesCleanly() throws {
        try requireRoot()
        try requireTool("/usr/bin/dpkg-deb", package: "dpkg")
        let installed = try run(["dpkg-query", "-W", "-f=${Status}", "floodgate"])
        try #require(!installed.out.contains("installed"),
                     "a floodgate package is installed on this machine; this test would replace and then purge it")
        // The package's removal detaches what is pinned under the default pin root: nothing of another's may be there.
        try #require(!FileManager.default.fileExists(atPath: PinRoot.defaultPath),
                     "\(PinRoot.defaultPath) exists: a Floodgate is running here; this test would detach it")
        let groupBefore = try run(["getent", "group", "floodgate"]).status == 0
        defer { if !groupBefore { _ = try? run(["groupdel", "floodgate"]) } }
        let deb = try PackageTests.buildPackage()

        // The package's metadata, from the one version source.
        let info = try run(["dpkg-deb", "--field", deb, "Package", "Version", "Depends"])
        #expect(info.out.contains("Package: floodgate") && info.out.contains("Version: \(floodgateVersion)"), "\(info.out)")
        // Depends as dpkg-shlibdeps reads the binary: versioned by the symbols it uses.
        #expect(info.out.contains("libbpf1 (>= ") && info.out.contains("libc6 (>= ") && info.out.contains("libelf1"),
                "\(info.out)")
        #expect(!info.out.lowercased().contains("swift"), "\(info.out)")

        // The binary needs the distribution's C and C++ runtimes, libbpf and libelf; nothing of Swift's.
        let unpacked = FileManager.default.temporaryDirectory.appendingPathComponent("fgdeb-\(uniqueID())")
        defer { try? FileManager.default.removeItem(at: unpacked) }
        #expect(try run(["dpkg-deb", "-x", deb, unpacked.path]).status == 0)
        let dynamic = try run(["readelf", "-d", unpacked.appendingPathComponent("usr/bin/floodgate").path])
        let needed = dynamic.out.split(separator: "\n").filter { $0.contains("(NEEDED)") || $0.contains("PATH)") }
        #expect(!needed.isEmpty && !needed.contains { $0.lowercased().contains("swift") }, "\(needed)")
        let allowed = ["libc.so.6", "libm.so.6", "ld-linux-x86-64.so.2", "libstdc++.so.6", "libgcc_s.so.1", "libbpf.so.1",
                       "libelf.so.1", "libz.so.1"]
        for line in needed where line.contains("(NEEDED)") {
            #expect(allowed.contains { line.contains("[\($0)]") }, "an unexpected dependency: \(line)")
        }

        #expect(try run(["dpkg", "-i", deb]).status == 0)
        var purged = false
        defer { if !purged { _ = try? run(["dpkg", "--purge", "floodgate"]) } }
        let files = try run(["dpkg", "-L", "floodgate"]).out.split(separator: "\n").map(String.init)
        for path in ["/usr/bin/floodgate", "/usr/lib/systemd/system/floodgate.service", "/etc/floodgate/floodgate.yaml",
                     "/usr/share/man/man1/floodgate.1.gz", "/usr/share/man/man1/floodgate.ban.1.gz",
                     "/usr/share/bash-completion/completions/floodgate", "/usr/share/zsh/vendor-completions/_floodgate",
                     "/usr/share/fish/vendor_completions.d/floodgate.fish", "/usr/share/floodgate/grafana-dashboard.json",
                     "/usr/share/floodgate/alerts.yml", "/usr/share/floodgate/fail2ban/floodgate.conf",
                     "/usr/libexec/floodgate/fetch-list", "/usr/lib/systemd/system/floodgate-fetch-list@.service",
                     "/usr/lib/systemd/system/floodgate-fetch-list@.timer",
                     "/usr/share/doc/floodgate/copyright"] {
            #expect(files.contains(path) && FileManager.default.fileExists(atPath: path), "\(path) is not installed")
        }
        let conffiles = try run(["dpkg-query", "-W", "-f=${Conffiles}", "floodgate"])
        #expect(conffiles.out.contains("/etc/floodgate/floodgate.yaml"), "\(conffiles.out)")
        #expect(try run(["getent", "group", "floodgate"]).status == 0, "the API socket's group")
        let page = try run(["sh", "-c", "zcat /usr/share/man/man1/floodgate.ban.1.gz"])
        #expect(page.out.contains(".Dt FLOODGATE.BAN 1") && page.out.contains("Fl -for"), "\(page.out.prefix(300))")
        #expect(try run(["bash", "-n", "/usr/share/bash-completion/completions/floodgate"]).status == 0)
        let verify = try run(["systemd-analyze", "verify", "/usr/lib/systemd/system/floodgate.service"])
        #expect(verify.status == 0 && verify.err.isEmpty, "\(verify.out)\(verify.err)")
        // The fetcher's template, as an instance (its EnvironmentFile is optional to verify: it names a list).
        let fetcher = try run(["systemd-analyze", "verify", "/usr/lib/systemd/system/floodgate-fetch-list@drop.service",
                               "/usr/lib/systemd/system/floodgate-fetch-list@drop.timer"])
        #expect(fetcher.status == 0 && fetcher.err.isEmpty, "\(fetcher.out)\(fetcher.err)")
        #expect(FileManager.default.isExecutableFile(atPath: "/usr/libexec/floodgate/fetch-list"))

        // With the toolchain hidden, the development build can't start (it proves the hiding) and the package's can.
        let dev = try PackageTests.withoutSwift("exec \(floodgateBinary) --version")
        #expect(dev.status != 0, "the development build started without /opt/swift: \(dev.out)")
        let version = try PackageTests.withoutSwift("ls -A /opt/swift; /usr/bin/floodgate --version")
        #expect(version.status == 0 && version.out == "\(floodgateVersion)\n", "\(version.out) \(version.err)")
        let check = try PackageTests.withoutSwift("/usr/bin/floodgate config check /etc/floodgate/floodgate.yaml")
        #expect(check.status == 0 && check.out.contains("OK"), "\(check.out) \(check.err)")
        try withLab { lab in
            let inRouter = "nsenter --net=/run/netns/\(lab.routerNS) /usr/bin/floodgate"
            let attach = try PackageTests.withoutSwift("\(inRouter) attach \(lab.routerInterface) --pin-root \(lab.pinRoot)")
            #expect(attach.status == 0, "\(attach.out) \(attach.err)")
            #expect(try lab.routerXDPProgram() != nil)
            let status = try PackageTests.withoutSwift("\(inRouter) status --json --pin-root \(lab.pinRoot)")
            #expect(status.status == 0 && status.out.contains(lab.routerInterface), "\(status.out) \(status.err)")
            let detach = try PackageTests.withoutSwift("\(inRouter) detach \(lab.routerInterface) --pin-root \(lab.pinRoot)")
            #expect(detach.status == 0, "\(detach.out) \(detach.err)")
            #expect(try lab.routerXDPProgram() == nil)

            // A filter under the default pin root, as the service leaves it: an upgrade (the same package again)
            // leaves it attached; removing the package detaches it.
            defer { _ = try? run(["rm", "-rf", PinRoot.defaultPath]) }
            #expect(try run(["sh", "-c", "\(inRouter) attach \(lab.routerInterface)"]).status == 0)
            let program = try lab.routerXDPProgram()
            #expect(program != nil)
            let upgrade = try run(["dpkg", "-i", deb])
            #expect(upgrade.status == 0, "\(upgrade.out) \(upgrade.err)")
            #expect(try lab.routerXDPProgram() == program, "an upgrade leaves the filter attached")

            purged = true
            let purge = try run(["dpkg", "--purge", "floodgate"])
            #expect(purge.status == 0, "\(purge.out) \(purge.err)")
            #expect(try lab.routerXDPProgram() == nil, "removing the package detached the filter: \(purge.out) \(purge.err)")
            #expect(!FileManager.default.fileExists(atPath: "\(PinRoot.defaultPath)/\(lab.routerInterface)"))
        }
        for path in files where !path.isEmpty {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
                Issue.record("\(path) is left after purge")
            }
        }
        #expect(!FileManager.default.fileExists(atPath: "/etc/floodgate"))
        #expect(try run(["getent", "group", "floodgate"]).status == 0, "the system group stays, as Debian leaves them")
        #expect(try run(["dpkg-query", "-W", "-f=${Status}", "floodgate"]).out.contains("installed") == false)
    }
}
