// swift-tools-version:6.0
// Postroom ships with no package dependencies: the Swift toolchain only (customer requirement).
import PackageDescription

let package = Package(
    name: "Postroom",
    products: [
        .executable(name: "postroom", targets: ["postroom"]),
        .library(name: "Postroom", targets: ["Postroom"]),
        .library(name: "Inotify", targets: ["Inotify"]),
    ],
    targets: [
        .target(name: "Inotify"),
        .target(name: "Postroom", dependencies: ["Inotify"]),
        .executableTarget(name: "postroom", dependencies: ["Postroom"]),
        .testTarget(name: "InotifyTests", dependencies: ["Inotify"]),
        .testTarget(name: "PostroomTests", dependencies: ["Postroom"]),
        .testTarget(name: "EndToEndTests", dependencies: ["Postroom", "postroom"]),
    ],
    swiftLanguageModes: [.v6]
)
