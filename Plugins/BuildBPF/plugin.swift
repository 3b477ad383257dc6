import Foundation
import PackagePlugin

/// Compiles `BPF/floodgate.bpf.c` with the toolchain's `clang -target bpf`, then has `floodgate-embed` turn the
/// object into a Swift source of the target, so `swift build` always embeds an object built from the sources here.
@main
struct BuildBPF: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) async throws -> [Command] {
        let bpfDirectory = context.package.directoryURL.appending(path: "BPF")
        let source = bpfDirectory.appending(path: "floodgate.bpf.c")
        let headers = try headerFiles(under: bpfDirectory)
        let object = context.pluginWorkDirectoryURL.appending(path: "floodgate.bpf.o")
        let generated = context.pluginWorkDirectoryURL.appending(path: "EmbeddedBPFObject.swift")

        #if arch(x86_64)
        let multiarch = "/usr/include/x86_64-linux-gnu"
        #elseif arch(arm64)
        let multiarch = "/usr/include/aarch64-linux-gnu"
        #else
        let multiarch = "/usr/include"
        #endif

        return [
            .buildCommand(
                displayName: "Compiling BPF program floodgate.bpf.c",
                executable: try context.tool(named: "clang").url,
                arguments: [
                    "-target", "bpf", "-mcpu=v3", "-O2", "-g", "-Wall", "-Werror",
                    "-I", multiarch, "-I", bpfDirectory.path(),
                    "-c", source.path(), "-o", object.path(),
                ],
                inputFiles: [source] + headers,
                outputFiles: [object]
            ),
            .buildCommand(
                displayName: "Embedding BPF object",
                executable: try context.tool(named: "floodgate-embed").url,
                arguments: [object.path(), generated.path()],
                inputFiles: [object],
                outputFiles: [generated]
            ),
        ]
    }

    private func headerFiles(under directory: URL) throws -> [URL] {
        let enumerator = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil)
        var headers: [URL] = []
        while let url = enumerator?.nextObject() as? URL {
            if url.pathExtension == "h" { headers.append(url) }
        }
        return headers.sorted { $0.path() < $1.path() }
    }
}
