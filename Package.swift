// swift-tools-version: 6.1
import PackageDescription

// Shared by every Swift target: the same strictness hummingbird and swift-subprocess use.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "sealbox",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sealbox", targets: ["sealbox"]),
        .executable(name: "sealbox-probe", targets: ["SealboxProbe"]),
        .executable(name: "sealbox-spawner", targets: ["SealboxSpawner"]),
        .library(name: "SealboxJail", targets: ["SealboxJail"]),
        .library(name: "SealboxProfiles", targets: ["SealboxProfiles"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk", from: "0.12.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Only the OTLP/HTTP exporter: the default traits add gRPC, minutes of build for an
        // exporter sealbox does not offer.
        .package(url: "https://github.com/swift-otel/swift-otel", from: "1.6.0", traits: ["OTLPHTTP"]),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
        .package(url: "https://github.com/swift-otel/swift-w3c-trace-context", from: "1.0.0"),
    ],
    targets: [
        // Child side of the clone: raw syscalls only, links nothing but libc.
        .target(name: "CSealboxSpawn"),
        // Parent side only: compiles OCI profiles to BPF with libseccomp.
        .target(
            name: "CSealboxSeccomp",
            linkerSettings: [.linkedLibrary("seccomp")]
        ),
        // What every module shares: the one JSON value type with its strict reader, decoder
        // and versioned canonical writer; SHA-256 and hex; the length-prefixed hash encoder;
        // size and duration parsing; small-file reads; ids; the EINTR rule. Imports nothing
        // but the standard library and swift-crypto.
        .target(
            name: "SealboxBase",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        // Tracing: the OTLP bootstrap (swift-otel, off unless the OTEL_* variables turn it on)
        // and the W3C trace context carried from the API to the broker and on to the world.
        .target(
            name: "SealboxTracing",
            dependencies: [
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "W3CTraceContext", package: "swift-w3c-trace-context"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SealboxProfiles",
            dependencies: ["CSealboxSeccomp", "SealboxBase", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SealboxJail",
            dependencies: ["CSealboxSpawn", "SealboxBase", "SealboxProfiles"],
            swiftSettings: swiftSettings
        ),
        // Effect records, hash chain, group commit, checkpoints: the semantics over the store
        // protocols (EffectLogStore, CheckpointStore, BlobStore); no storage engine.
        .target(
            name: "SealboxLedger",
            dependencies: [
                "SealboxBase",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // The one-machine stores on SQLite (GRDB, WAL, fsync'd): the effect log, checkpoint and
        // access stores and their schemas (EffectLog/, Checkpoints/, Access/), and
        // `StateStores`, the one place callers open them.
        .target(
            name: "SealboxSQLite",
            dependencies: [
                "SealboxAccess",
                "SealboxBase",
                "SealboxLedger",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // Access state (API keys, which tenant owns which session) behind the `AccessStore`
        // protocol: its records and error, and an in-memory store for tests. The semantics
        // (key text and hashing, names, bootstrap, policy) stay in SealboxServer, above it.
        .target(
            name: "SealboxAccess",
            dependencies: ["SealboxBase"],
            swiftSettings: swiftSettings
        ),
        // The credential broker: config, tokens, tool kinds, the effect semantics, sockets.
        .target(
            name: "SealboxBroker",
            dependencies: [
                "SealboxBase",
                "SealboxLedger",
                "SealboxSQLite",
                "SealboxTracing",
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
                // http tools: event-driven (NIO), so a call waiting on a slow world costs no CPU.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // One run end to end, shared by the CLI, the HTTP API and MCP: session steps (replay,
        // workspace restore and capture, seal) and the broker grant of a run.
        .target(
            name: "SealboxRuntime",
            dependencies: [
                "SealboxBase", "SealboxJail", "SealboxLedger", "SealboxSQLite", "SealboxBroker", "SealboxTracing",
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        // `sealbox serve`: the HTTP API (Hummingbird 2), admission control,
        // the run store, API keys and tenancy (over any `AccessStore`).
        .target(
            name: "SealboxServer",
            dependencies: [
                "SealboxBase",
                "SealboxJail",
                "SealboxProfiles",
                "SealboxRuntime",
                "SealboxLedger",
                "SealboxSQLite",
                "SealboxBroker",
                "SealboxTracing",
                "SealboxAccess",
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // `sealbox mcp` (stdio) and MCP at /mcp on `sealbox serve` (Streamable HTTP), on the
        // official SDK; sealbox keeps its strict reading of every message and its own tools.
        .target(
            name: "SealboxMCP",
            dependencies: [
                "SealboxBase",
                "SealboxJail",
                "SealboxProfiles",
                "SealboxRuntime",
                "SealboxLedger",
                "SealboxSQLite",
                "SealboxServer",
                .product(name: "MCP", package: "swift-sdk"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // What `sealbox bench` measures with: spawn latency through the jail API, sealed effects/s
        // and socket floods against a broker and its own loopback world, HTTP load on a
        // `sealbox serve`; reports, percentile curves and leak counts. The CLI keeps the flags.
        .target(
            name: "SealboxBench",
            dependencies: [
                "SealboxBase",
                "SealboxJail",
                "SealboxProfiles",
                "SealboxBroker",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "sealbox",
            dependencies: [
                // sbx_pidfd_open for `sealbox broker --exit-with` (the one C call the CLI makes).
                "CSealboxSpawn",
                "SealboxBase",
                "SealboxBench",
                "SealboxMCP",
                "SealboxServer",
                "SealboxRuntime",
                "SealboxJail",
                "SealboxProfiles",
                "SealboxLedger",
                "SealboxSQLite",
                "SealboxBroker",
                "SealboxTracing",
                "SealboxAccess",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                // `sealbox sandbox`: a client of a running `sealbox serve`.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: swiftSettings
        ),
        // Clones jails on sealbox's behalf from a small address space (sbx_spawner_start).
        .executableTarget(name: "SealboxSpawner", dependencies: ["CSealboxSpawn"]),
        // try-syscall style containment probe, copied into jails by the tests.
        // Fully static, so it runs in any jail rootfs (no libswiftCore, no libc from the host).
        .executableTarget(name: "SealboxProbe", linkerSettings: [.unsafeFlags(["-static-executable"])]),
        .testTarget(
            name: "SealboxBaseTests",
            dependencies: ["SealboxBase", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SealboxProfilesTests",
            dependencies: ["SealboxProfiles", "SealboxBase"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SealboxJailTests",
            dependencies: ["SealboxJail", "SealboxProfiles", "SealboxBase", "SealboxTestSupport"],
            swiftSettings: swiftSettings
        ),
        // With SealboxSQLite and GRDB: the tests of the SQLite stores stay here.
        .testTarget(
            name: "SealboxLedgerTests",
            dependencies: ["SealboxLedger", "SealboxSQLite", "SealboxBase", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: swiftSettings
        ),
        // Unit tests of the broker module: config, tokens, tool arguments, the tool kinds
        // against the world server.
        .testTarget(
            name: "SealboxBrokerTests",
            dependencies: ["SealboxBroker", "SealboxLedger", "SealboxBase", "SealboxTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SealboxServerTests",
            dependencies: [
                "SealboxBase",
                "SealboxServer",
                "SealboxMCP",
                "SealboxRuntime",
                "SealboxJail",
                "SealboxLedger",
                "SealboxSQLite",
                "SealboxBroker",
                "SealboxAccess",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
        // What the test targets share: the checkout and its built binaries, `needsRoot`, temporary
        // directories, thread and waiting helpers, the world server (Hummingbird), `sealbox
        // serve` processes, byte-exact HTTP. Depends on no sealbox module: the tests use sealbox
        // as users do.
        .target(
            name: "SealboxTestSupport",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/SealboxTestSupport",
            swiftSettings: swiftSettings
        ),
        // End to end: the built `sealbox` (run, broker, session, log), real jails, brokers in
        // and out of process, a loopback world; kill -9 and resume.
        .testTarget(
            name: "SealboxEndToEndTests",
            dependencies: [
                "SealboxTestSupport",
                "SealboxBroker",
                "SealboxLedger",
                "SealboxSQLite",
                "SealboxBase",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SealboxCLITests",
            dependencies: ["SealboxTestSupport"],
            swiftSettings: swiftSettings
        ),
        // Tracing: trace context parsing, and `sealbox serve` exporting into a local OTLP
        // receiver (a Hummingbird server in the test, which is also the broker's world).
        .testTarget(
            name: "SealboxTracingTests",
            dependencies: [
                "SealboxTracing",
                "SealboxTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
        // The hostile API battery: a real `sealbox serve` attacked as a hostile tenant, a
        // buggy client and a bad day would (issue: service security and robustness).
        .testTarget(
            name: "SealboxHostileAPITests",
            dependencies: ["SealboxTestSupport"],
            swiftSettings: swiftSettings
        ),
    ]
)
