import ArgumentParser
import EdgeAI
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct ChatOptions: ParsableArguments {
    @Argument(help: "The prompt. Without one (on a terminal): an interactive chat.")
    var prompt: String?

    @Option(help: "Model id from the catalog, or the path of a GGUF file (default: the catalog's default).")
    var model: String?

    @Option(help: "System message.")
    var system: String?

    @Option(name: .customLong("max-tokens"), help: "Maximum tokens to generate (default 256).")
    var maxTokens: Int?

    @Option(help: "Sampling temperature 0…5; 0 is greedy (default 0.6).")
    var temperature: Double?

    @Option(name: .customLong("top-p"), help: "Nucleus sampling threshold 0.001…1.")
    var topP: Double?

    @Option(name: .customLong("top-k"), help: "Sample from the k most likely tokens, 1…50.")
    var topK: Int?

    @Option(help: "Random seed 1…9999999999 (same seed, same answer).")
    var seed: Int?

    @Flag(help: "Send the prompt as is: no chat template, special tokens in it are parsed.")
    var raw = false

    @Flag(help: "Print the Workers AI response JSON instead of streaming text.")
    var json = false

    @Option(help: "A Workers AI request body: inline JSON ('{…}'), a file, or '-' for standard input; prints the response JSON (SSE when it says \"stream\": true). An embedding model takes {\"text\": …}.")
    var input: String?

    @Option(name: .customShort("t"), help: "Compute threads (0: all cores).")
    var threads: Int = 0

    @Flag(help: "Print timings (time to first token, tokens/s, reused prompt tokens) to standard error.")
    var stats = false

    static let helpText = """
        chat [PROMPT] [--model ID|PATH] [--system S] [--max-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S] [--raw] [--json] [--input REQUEST.json|-] [-t THREADS]
        """
}

@main
enum Chat {
    static func main() async {
        let options: ChatOptions
        do {
            options = try ChatOptions.parse()
        } catch {
            if ChatOptions.exitCode(for: error) == .success { ChatOptions.exit(withError: error) }
            fail(AIError.invalidInput(ChatOptions.message(for: error)))
        }
        do {
            try await run(options)
        } catch {
            fail(error)
        }
    }

    static func fail(_ error: any Error) -> Never {
        let e = (error as? AIError) ?? AIError(code: AIError.internalCode, message: String(describing: error))
        let line = "error \(e.code): \(e.message)\n"
        FileHandle.standardError.write(Data(line.utf8))
        exit(1)
    }

    static func write(_ s: String) { FileHandle.standardOutput.write(Data(s.utf8)) }
    static func write(_ b: [UInt8]) { FileHandle.standardOutput.write(Data(b)) }

    static func run(_ o: ChatOptions) async throws {
        let ai = try AI(threads: o.threads)
        let model: String
        if let m = o.model, m.hasSuffix(".gguf") || m.hasPrefix("/") || m.hasPrefix(".") || FileManager.default.fileExists(atPath: m) {
            ai.register(m, path: m)
            model = m
        } else if let m = o.model ?? ai.defaultModel {
            model = m
        } else {
            throw AIError.internal("No model catalog found and no --model given")
        }

        if let source = o.input {
            let data: Data?
            if source.first == "{" {
                data = Data(source.utf8)   // the request body itself
            } else if source == "-" {
                data = FileHandle.standardInput.readDataToEndOfFile()
            } else {
                data = FileManager.default.contents(atPath: source)
            }
            guard let data else { throw AIError.invalidInput("Cannot read the request file \(source)") }
            switch try await ai.respond(model, json: data) {
            case .json(let bytes):
                write(bytes)
                write("\n")
            case .eventStream(let events):
                for try await e in events { write(e) }
            }
            return
        }

        if o.raw && o.system != nil {
            throw AIError.invalidInput("--system cannot be combined with --raw (write the system turn into the raw prompt)")
        }
        var prompt = o.prompt
        if prompt == nil && isatty(0) == 0 {
            // Piped input: the whole of standard input is the prompt.
            let data = FileHandle.standardInput.readDataToEndOfFile()
            var text = String(decoding: data, as: UTF8.self)
            while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
            prompt = text
        }
        if let prompt {
            let input = makeInput(o, conversation: nil, prompt: prompt)
            if o.json {
                let out = try await ai.run(model, input)
                write(out.jsonBytes)
                write("\n")
                if o.stats, let s = out.stats { report(s, usage: out.usage) }
            } else {
                _ = try await streamAnswer(ai, model, input, stats: o.stats)
            }
            return
        }
        try await interactive(ai, model, o)
    }

    static func makeInput(_ o: ChatOptions, conversation: [AIMessage]?, prompt: String) -> AIInput {
        var input = AIInput(maxTokens: o.maxTokens, temperature: o.temperature, topP: o.topP, topK: o.topK, seed: o.seed)
        if let conversation {
            input.messages = conversation
        } else if o.raw {
            input.prompt = prompt
            input.raw = true
        } else if let system = o.system {
            input.messages = [.system(system), .user(prompt)]
        } else {
            input.prompt = prompt
        }
        return input
    }

    /// Streams the answer to standard output; returns its text.
    static func streamAnswer(_ ai: AI, _ model: String, _ input: AIInput, stats: Bool) async throws -> String {
        var text = ""
        for try await chunk in try await ai.stream(model, input) {
            if !chunk.response.isEmpty {
                write(chunk.response)
                text += chunk.response
            }
            if stats, let s = chunk.stats, let usage = chunk.usage {
                write("\n")
                report(s, usage: usage)
                return text
            }
        }
        write("\n")
        return text
    }

    static func report(_ s: GenerationStats, usage: AIUsage) {
        let line = String(
            format: "[prompt %d tokens (%d reused, %d prefilled) | first token %.0f ms | %d tokens, %.1f tokens/s | seed %llu]\n",
            usage.promptTokens, s.reusedPromptTokens, s.prefilledTokens, s.timeToFirstToken * 1000,
            usage.completionTokens, s.tokensPerSecond, s.seed)
        FileHandle.standardError.write(Data(line.utf8))
    }

    static func interactive(_ ai: AI, _ model: String, _ o: ChatOptions) async throws {
        FileHandle.standardError.write(Data("EdgeAI chat with \(model). /reset starts over, /exit quits.\n".utf8))
        try await ai.preload(model)
        let start: [AIMessage] = o.system.map { [.system($0)] } ?? []
        var conversation = start
        while true {
            write("> ")
            guard let line = readLine(strippingNewline: true) else {
                write("\n")
                return
            }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            if trimmed == "/exit" || trimmed == "/quit" { return }
            if trimmed == "/reset" {
                conversation = start
                FileHandle.standardError.write(Data("(new conversation)\n".utf8))
                continue
            }
            conversation.append(.user(line))
            do {
                let answer = try await streamAnswer(ai, model, makeInput(o, conversation: conversation, prompt: line), stats: o.stats)
                conversation.append(.assistant(answer.isEmpty ? " " : answer))
            } catch let e as AIError {
                conversation.removeLast()
                FileHandle.standardError.write(Data("error \(e.code): \(e.message)\n".utf8))
                if e.code == AIError.contextWindowCode {
                    FileHandle.standardError.write(Data("(the conversation is too long: /reset to start over)\n".utf8))
                }
            }
        }
    }
}
