// swift-tools-version: 6.0
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
        .library(name: "SealboxJail", targets: ["SealboxJail"]),
        .library(name: "SealboxProfiles", targets: ["SealboxProfiles"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // Child side of the clone: raw syscalls only, links nothing but libc.
        .target(name: "CSealboxSpawn"),
        // Parent side only: compiles OCI profiles to BPF with libseccomp.
        .target(
            name: "CSealboxSeccomp",
            linkerSettings: [.linkedLibrary("seccomp")]
        ),
        .target(
            name: "SealboxProfiles",
            dependencies: ["CSealboxSeccomp"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SealboxJail",
            dependencies: ["CSealboxSpawn", "SealboxProfiles"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "sealbox",
            dependencies: [
                "SealboxJail",
                "SealboxProfiles",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: swiftSettings
        ),
        // try-syscall style containment probe, copied into jails by the tests.
        // Fully static, so it runs in any jail rootfs (no libswiftCore, no libc from the host).
        .executableTarget(name: "SealboxProbe", linkerSettings: [.unsafeFlags(["-static-executable"])]),
        .testTarget(
            name: "SealboxProfilesTests",
            dependencies: ["SealboxProfiles"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SealboxJailTests",
            dependencies: ["SealboxJail", "SealboxProfiles"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SealboxCLITests",
            dependencies: [],
            swiftSettings: swiftSettings
        ),
    ]
)
