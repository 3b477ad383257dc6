// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Floodgate",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "floodgate", targets: ["floodgate"]),
        .library(name: "FloodgateCore", targets: ["FloodgateCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // libbpf and the shared BPF header (BPF/floodgate.h), for Swift. No logic.
        .target(
            name: "CFloodgate",
            linkerSettings: [.linkedLibrary("bpf")]
        ),
        // Turns the compiled BPF object into a Swift source; run by the BuildBPF plugin.
        .executableTarget(name: "floodgate-embed"),
        // Compiles BPF/floodgate.bpf.c with clang -target bpf and embeds it.
        .plugin(
            name: "BuildBPF",
            capability: .buildTool(),
            dependencies: ["floodgate-embed"]
        ),
        .target(
            name: "FloodgateCore",
            dependencies: [
                "CFloodgate",
                .product(name: "Logging", package: "swift-log"),
            ],
            plugins: ["BuildBPF"]
        ),
        .executableTarget(
            name: "floodgate",
            dependencies: [
                "FloodgateCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "floodgate-bench",
            dependencies: ["FloodgateCore", "CFloodgate"],
            path: "Benchmarks/FloodgateBench"
        ),
        .testTarget(
            name: "FloodgateTests",
            dependencies: ["FloodgateCore", "CFloodgate", "floodgate"]
        ),
    ],
    swiftLanguageModes: [.v5]
)
