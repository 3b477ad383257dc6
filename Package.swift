// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Floodgate",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "floodgate", targets: ["floodgate"]),
        .library(name: "FloodgateCore", targets: ["FloodgateCore", "FloodgateBPF"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // libbpf and the shared BPF header (BPF/floodgate.h), for Swift. No logic.
        .target(
            name: "CFloodgate",
            linkerSettings: [.linkedLibrary("bpf")]
        ),
        // The lab's BPF layouts (BPF/lab/lab.h), for Swift. No logic.
        .target(name: "CLabLayouts"),
        // Turns the compiled BPF object into a Swift source; run by the BuildBPF plugin.
        .executableTarget(name: "floodgate-embed"),
        // Compiles a target's BPF programs with clang -target bpf and embeds them.
        .plugin(
            name: "BuildBPF",
            capability: .buildTool(),
            dependencies: ["floodgate-embed"]
        ),
        // The boundary with the kernel, and the only product target that imports CFloodgate (internally: no C
        // type in its API): the filter's object (embedded by BuildBPF) and its lifecycle, typed maps, pins and
        // links, the header's enums and capacities, the event stream.
        .target(
            name: "FloodgateBPF",
            dependencies: [
                "CFloodgate",
                .product(name: "Logging", package: "swift-log"),
            ],
            plugins: ["BuildBPF"]
        ),
        // The filter's policy as one value (validate, diff, apply and undo), reports, durations, the version; it
        // re-exports FloodgateBPF.
        .target(
            name: "FloodgateCore",
            dependencies: [
                "FloodgateBPF",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The namespace lab: veths and namespaces, the flood generator, the oracle and trivial programs, nftables
        // and xdp-filter beside the filter, sipp. For the demo, `floodgate flood`, the tests and the benchmarks;
        // nothing of the filter's own path uses it.
        .target(
            name: "FloodgateLab",
            dependencies: ["FloodgateCore", "CLabLayouts"],
            plugins: ["BuildBPF"]
        ),
        // The agent of `floodgate run`: config file, reloads, events, anomalies, Prometheus metrics.
        .target(
            name: "FloodgateAgent",
            dependencies: [
                "FloodgateCore",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [
                .embedInCode("Resources/floodgate.yaml"), .embedInCode("Resources/floodgate.service"),
                .embedInCode("Resources/high-risk.txt"), .embedInCode("Resources/alerts.yml"),
                .embedInCode("Resources/grafana-dashboard.json"), .embedInCode("Resources/fail2ban.conf"),
                .embedInCode("Resources/fetch-list.sh"), .embedInCode("Resources/fetch-list.service"),
                .embedInCode("Resources/fetch-list.timer"),
            ]
        ),
        .executableTarget(
            name: "floodgate",
            dependencies: [
                "FloodgateCore",
                "FloodgateAgent",
                "FloodgateLab",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "floodgate-bench",
            dependencies: [
                "FloodgateCore", "FloodgateLab", "CFloodgate", "CLabLayouts",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/FloodgateBench"
        ),
        .testTarget(
            name: "FloodgateTests",
            dependencies: ["FloodgateCore", "FloodgateBPF", "FloodgateAgent", "FloodgateLab", "CFloodgate", "CLabLayouts", "floodgate"]
        ),
    ],
    swiftLanguageModes: [.v5]
)
