// swift-tools-version:6.0
// Postroom ships with no package dependencies: the Swift toolchain only (customer requirement).
import PackageDescription

let package = Package(
    name: "Postroom",
    products: [
        .executable(name: "postroom", targets: ["postroom"]),
        .library(name: "Postroom", targets: ["Postroom"]),
        .library(name: "PostroomSystem", targets: ["PostroomSystem"]),
        .library(name: "Inotify", targets: ["Inotify"]),
    ],
    targets: [
        // The kernel boundary: every syscall Postroom makes, wrapped once (with Inotify, the only Glibc importers).
        .target(name: "PostroomSystem"),
        .target(name: "Inotify"),
        // The engine: pipeline file, runner, stages, queue, connectors, telemetry. No command line.
        .target(name: "Postroom", dependencies: ["PostroomSystem", "Inotify"]),
        // The operator's commands (run, check, explain, queue, stats, trace, bench) over the engine.
        .target(name: "PostroomCommands", dependencies: ["Postroom", "PostroomSystem", "Inotify"]),
        .executableTarget(name: "postroom", dependencies: ["PostroomCommands"]),
        // Helpers the unit test targets share (temporary folders); not a test target itself.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "InotifyTests", dependencies: ["Inotify"]),
        .testTarget(name: "PostroomSystemTests", dependencies: ["PostroomSystem", "TestSupport"]),
        .testTarget(name: "PostroomTests", dependencies: ["Postroom", "PostroomSystem", "TestSupport"]),
        .testTarget(name: "PostroomCommandsTests", dependencies: ["PostroomCommands", "Postroom", "PostroomSystem"]),
        .testTarget(name: "StageExtensionTests", dependencies: ["Postroom", "PostroomSystem"]),
        .testTarget(name: "EndToEndTests", dependencies: ["Postroom", "PostroomSystem", "Inotify", "postroom"]),
    ],
    swiftLanguageModes: [.v6]
)
