// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "EdgeAI",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "EdgeAI", targets: ["EdgeAI"]),
        .library(name: "GGUF", targets: ["GGUF"]),
        .library(name: "Tokenizer", targets: ["Tokenizer"]),
        .library(name: "ChatTemplate", targets: ["ChatTemplate"]),
        .library(name: "Transformer", targets: ["Transformer"]),
        .executable(name: "gguf", targets: ["gguf"]),
        .executable(name: "chat", targets: ["chat"]),
        .executable(name: "worker", targets: ["worker"]),
        .executable(name: "bench", targets: ["bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Only the `worker` example uses an HTTP server; no library product depends on it.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
    ],
    targets: [
        // C: OpenBLAS from the system (apt: libopenblas-dev).
        .systemLibrary(
            name: "COpenBLAS",
            path: "Sources/COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        // C: SIMD kernels, chosen at run time (AVX-512 VNNI, AVX2, portable).
        .target(name: "CKernels", path: "Sources/CKernels"),

        // Stage 1: the file format.
        .target(name: "GGUF", dependencies: ["CKernels"]),
        // Stage 2: text.
        .target(name: "Tokenizer", dependencies: ["GGUF"]),
        .target(name: "CStackPointer", path: "Sources/CStackPointer"),
        .target(name: "ChatTemplate", dependencies: ["CStackPointer"]),
        // Stage 3: the model.
        .target(name: "Transformer", dependencies: ["GGUF", "CKernels", "COpenBLAS"]),
        // Stage 4: choosing tokens.
        .target(name: "Sampling"),
        // JSON mode: JSON Schema -> grammar, the byte automaton, token masks over a vocabulary trie.
        .target(name: "Grammar"),
        // Stage 5: the Workers AI facade.
        .target(name: "EdgeAI", dependencies: ["GGUF", "Tokenizer", "ChatTemplate", "Transformer", "Sampling", "Grammar"]),

        // Executables.
        .executableTarget(name: "gguf", dependencies: [
            "GGUF", "Tokenizer", "ChatTemplate",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Examples/gguf"),
        .executableTarget(name: "chat", dependencies: [
            "EdgeAI",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Examples/chat"),
        .target(name: "WorkerApp", dependencies: [
            "EdgeAI",
            .product(name: "Hummingbird", package: "hummingbird"),
        ], path: "Examples/worker/WorkerApp"),
        .executableTarget(name: "worker", dependencies: [
            "WorkerApp",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Examples/worker/Main"),
        .executableTarget(name: "bench", dependencies: [
            "GGUF", "Tokenizer", "Transformer", "EdgeAI",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Benchmarks/bench"),

        // Fuzzing: in-process targets (seeded mutation loops), the `fuzz` tool (Tests/fuzz.sh), and
        // short runs of each target as tests.
        .target(name: "EdgeAIFuzz", dependencies: ["GGUF", "Tokenizer", "ChatTemplate", "Transformer", "EdgeAI"],
                path: "Tests/Fuzz/Targets"),
        .executableTarget(name: "fuzz", dependencies: ["EdgeAIFuzz"], path: "Tests/Fuzz/Main"),

        // Tests.
        .testTarget(name: "FuzzingTests", dependencies: ["EdgeAIFuzz", "GGUF"]),
        .testTarget(name: "GGUFTests", dependencies: ["GGUF"]),
        .testTarget(name: "KernelsTests", dependencies: ["CKernels"]),
        .testTarget(name: "TokenizerTests", dependencies: ["Tokenizer", "GGUF"]),
        .testTarget(name: "ChatTemplateTests", dependencies: ["ChatTemplate"]),
        .testTarget(name: "TransformerTests", dependencies: ["Transformer", "GGUF", "Tokenizer"]),
        .testTarget(name: "SamplingTests", dependencies: ["Sampling"]),
        .testTarget(name: "GrammarTests", dependencies: ["Grammar", "EdgeAI"]),
        .testTarget(name: "EdgeAITests", dependencies: [
            "EdgeAI", "WorkerApp",
            .product(name: "Hummingbird", package: "hummingbird"),
        ]),
    ]
)
