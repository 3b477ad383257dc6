import Foundation
import PackagePlugin

/// Compiles a target's BPF programs with the toolchain's `clang -target bpf` — for FloodgateBPF the filter
/// (`BPF/floodgate.bpf.c`), for FloodgateLab the flood generator, the benchmark's oracle and its floors
/// (`BPF/lab/`) — then has `floodgate-embed` turn the objects into a Swift source of the target, so `swift build`
/// always embeds objects built from the sources here, and the filter's library carries no lab program.
@main
struct BuildBPF: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) async throws -> [Command] {
        let bpfDirectory = context.package.directoryURL.appending(path: "BPF")
        let headers = try headerFiles(under: bpfDirectory)
        let programs: [(name: String, file: String)]
        switch target.name {
        case "FloodgateBPF": programs = [("filter", "floodgate")]
        case "FloodgateLab": programs = [("flood", "lab/flood"), ("oracle", "lab/oracle"), ("floor", "lab/floor")]
        default: throw PluginError.unknownTarget(target.name)
        }
        let generated = context.pluginWorkDirectoryURL.appending(path: "EmbeddedBPFObject.swift")

        #if arch(x86_64)
        let multiarch = "/usr/include/x86_64-linux-gnu"
        #elseif arch(arm64)
        let multiarch = "/usr/include/aarch64-linux-gnu"
        #else
        let multiarch = "/usr/include"
        #endif

        let clang = try context.tool(named: "clang").url
        var commands: [Command] = []
        var objects: [(name: String, url: URL)] = []
        for (name, file) in programs {
            let source = bpfDirectory.appending(path: "\(file).bpf.c")
            let object = context.pluginWorkDirectoryURL.appending(path: "\(name).bpf.o")
            commands.append(.buildCommand(
                displayName: "Compiling BPF program \(file).bpf.c",
                executable: clang,
                arguments: [
                    "-target", "bpf", "-mcpu=v3", "-O2", "-g", "-Wall", "-Werror",
                    "-I", multiarch, "-I", bpfDirectory.path(),
                    "-c", source.path(), "-o", object.path(),
                ],
                inputFiles: [source] + headers,
                outputFiles: [object]
            ))
            objects.append((name, object))
        }
        commands.append(.buildCommand(
            displayName: "Embedding BPF objects",
            executable: try context.tool(named: "floodgate-embed").url,
            arguments: [generated.path()] + objects.map { "\($0.name)=\($0.url.path())" },
            inputFiles: objects.map(\.url),
            outputFiles: [generated]
        ))
        return commands
    }

    enum PluginError: Error, CustomStringConvertible {
        case unknownTarget(String)
        var description: String {
            switch self {
            case .unknownTarget(let name): return "BuildBPF knows no BPF programs for the target \(name)"
            }
        }
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
