import ArgumentParser
import EdgeAI
import Foundation
import GGUF
import Transformer
import Tokenizer

@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measures the forward pass: prompt/generation speed like llama-bench, perplexity like llama-perplexity, raw logits for comparisons, sentence embeddings per second.",
        subcommands: [Speed.self, Perplexity.self, Logits.self, TimeToFirstToken.self, JSONMode.self, Tools.self, Embed.self])
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
}

private func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

private func loadModel(_ path: String, threads: Int, blasFrom: Int?,
                       weights: TransformerModel.WeightStorage = .automatic) throws -> TransformerModel {
    let file = try GGUFFile(path: path)
    var options = TransformerModel.Options()
    options.threads = threads
    options.weightStorage = weights
    if let blasFrom { options.minBatchForBLAS = blasFrom }
    return try TransformerModel(file: file, options: options)
}

/// This process's peak resident memory (VmHWM of /proc/self/status: unlike getrusage's
/// ru_maxrss it does not count the pages of a parent that forked us before exec).
private func peakResidentMiB() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
          let kb = Double(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }
    return kb / 1024
}

/// Small deterministic generator for benchmark token ids (the values do not matter for speed).
private struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func token(_ vocab: Int) -> Int32 { Int32(truncatingIfNeeded: next() % UInt64(vocab)) }
}

extension TransformerModel.WeightStorage: ExpressibleByArgument {}

struct Speed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "pp = one batch of -p tokens into an empty cache (logits of the last token only); tg = -n single-token decodes from an empty cache. Tokens/s mean ± sd over -r repetitions after one warm-up, like llama-bench.")

    @Option(name: .long, help: "GGUF model file") var model: String
    @Option(name: .short, help: "prompt tokens (0 = skip the pp test)") var p: Int = 512
    @Option(name: .short, help: "generated tokens (0 = skip the tg test)") var n: Int = 128
    @Option(name: .short, help: "threads (default: number of cores)") var t: Int = 0
    @Option(name: .short, help: "repetitions") var r: Int = 5
    @Option(name: .long, help: "batches of at least this many tokens use OpenBLAS (default: the model's, 64)") var blasFrom: Int?
    @Flag(name: .long, help: "print a JSON array with llama-bench's keys") var json = false
    @Option(name: .long, help: "batches of up to this many tokens use the single-token kernels block by block (default 4)") var smallBatch: Int?
    @Option(name: .long, help: "kernel set instead of this CPU's best: scalar, avx2 or avx512vnni") var kernel: String?
    @Option(name: .long, help: "where the weight matrices live: mapping (the file's pages), hugePages (a copy on 2 MiB pages) or automatic") var weights: TransformerModel.WeightStorage = .automatic
    @Option(name: .long, help: "also decode -n tokens for each of S sequences together (continuous batching, one forward pass per step), for each S of this comma-separated list; aggregate t/s") var sequences: String = ""

    func validate() throws {
        guard p >= 0, n >= 0, p + n > 0 else { throw ValidationError("-p and -n must be >= 0 and not both 0") }
        guard r >= 1 else { throw ValidationError("-r must be >= 1") }
        guard t >= 0 else { throw ValidationError("-t must be >= 0") }
        if let b = blasFrom, b < 2 { throw ValidationError("--blas-from must be >= 2") }
    }

    func run() throws {
        if let kernel, !TransformerModel.forceKernels(kernel) {
            throw ValidationError("--kernel \(kernel): unknown, or this CPU cannot run it")
        }
        let m = try loadModel(model, threads: t, blasFrom: blasFrom, weights: weights)
        if let smallBatch { TransformerModel.smallBatchTokens = smallBatch }
        let vocab = m.config.vocabSize
        let session = try m.makeSession(contextLength: p + n)
        var rng = SplitMix64(state: 1234)
        var results: [(name: String, nPrompt: Int, nGen: Int, samples: [Double])] = []

        if p > 0 {
            let tokens = (0..<p).map { _ in rng.token(vocab) }
            // Warm-up (page-in of the weights, OpenBLAS buffers).
            session.reset()
            _ = try session.evaluate(tokens, logitsFrom: p - 1) { $0[0] }
            var samples: [Double] = []
            for _ in 0..<r {
                session.reset()
                let t0 = now()
                _ = try session.evaluate(tokens, logitsFrom: p - 1) { $0[0] }
                samples.append(Double(p) / (now() - t0))
            }
            results.append(("pp\(p)", p, 0, samples))
        }
        if n > 0 {
            session.reset()
            _ = try session.decode(rng.token(vocab))
            var samples: [Double] = []
            for _ in 0..<r {
                session.reset()
                var token = rng.token(vocab)
                let t0 = now()
                for _ in 0..<n {
                    _ = try session.decode(token)
                    token = rng.token(vocab)
                }
                samples.append(Double(n) / (now() - t0))
            }
            results.append(("tg\(n)", 0, n, samples))
        }
        for count in sequences.split(separator: ",").compactMap({ Int($0) }) where count >= 1 && n > 0 {
            let sessions = try (0..<count).map { _ in try m.makeSession(contextLength: n + 1) }
            func round() throws -> Double {
                for s in sessions { s.reset() }
                let t0 = now()
                for _ in 0..<n {
                    let parts = sessions.map { SequenceTokens($0, [rng.token(vocab)]) }
                    _ = try m.evaluate(parts) { $0[0] }
                }
                return Double(n * count) / (now() - t0)
            }
            _ = try round()
            var samples: [Double] = []
            for _ in 0..<r { samples.append(try round()) }
            results.append(("tg\(n)x\(count)", 0, n * count, samples))
        }

        func stats(_ s: [Double]) -> (Double, Double) {
            let mean = s.reduce(0, +) / Double(s.count)
            let sd = s.count > 1 ? (s.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(s.count - 1)).squareRoot() : 0
            return (mean, sd)
        }
        let peakRSS = peakResidentMiB()
        if json {
            var objects: [[String: Any]] = []
            for res in results {
                let (mean, sd) = stats(res.samples)
                objects.append([
                    "model_filename": model, "backend": "EdgeAI", "n_prompt": res.nPrompt, "n_gen": res.nGen,
                    "n_threads": m.threads,
                    "avg_ts": mean, "stddev_ts": sd, "samples_ts": res.samples, "peak_rss_mib": peakRSS,
                ])
            }
            let data = try JSONSerialization.data(withJSONObject: objects, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("model: \(model)")
            print(m.kernelDescription)
            let types = m.matrixTypes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            print(String(format: "memory: file %.1f MiB; weights copied %.1f MiB (on huge pages %.1f MiB), read from the mapping %.1f MiB, owned %.2f MiB; KV cache %.1f MiB (%d tokens)",
                         Double(m.file.fileSize) / 1048576, Double(m.copiedWeightBytes) / 1048576,
                         Double(m.hugePageWeightBytes) / 1048576, Double(m.mappedWeightBytes) / 1048576,
                         Double(m.ownedWeightBytes) / 1048576,
                         Double(4 * m.config.blockCount * m.config.kvDimension * session.contextLength) / 1048576,
                         session.contextLength) + "; matrices: " + types)
            print(String(format: "peak RSS: %.1f MiB", peakRSS))
            print("| test   | threads |            t/s |")
            print("| ------ | ------: | -------------: |")
            for res in results {
                let (mean, sd) = stats(res.samples)
                let name = res.name.padding(toLength: max(6, res.name.count), withPad: " ", startingAt: 0)
                print("| \(name) | \(String(format: "%7d", m.threads)) | \(String(format: "%7.2f ± %5.2f", mean, sd)) |")
            }
        }
    }
}

struct Perplexity: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Perplexity with llama-perplexity's protocol: the file tokenized whole (BOS only if the model adds one, then it replaces each chunk's first token), token count / ctx chunks each from an empty cache, tokens ctx/2+1 ... ctx-1 of each chunk scored.")

    @Option(name: .long, help: "GGUF model file") var model: String
    @Option(name: .long, help: "text file") var file: String
    @Option(name: .long, help: "context (chunk) length") var ctx: Int = 512
    @Option(name: .short, help: "threads (default: number of cores)") var t: Int = 0
    @Option(name: .long, help: "stop after this many chunks (0 = all)") var chunks: Int = 0

    func validate() throws {
        guard ctx >= 4 else { throw ValidationError("--ctx must be >= 4") }
        guard t >= 0, chunks >= 0 else { throw ValidationError("-t and --chunks must be >= 0") }
    }

    func run() throws {
        let gguf = try GGUFFile(path: model)
        var options = TransformerModel.Options()
        options.threads = t
        let m = try TransformerModel(file: gguf, options: options)
        let tokenizer = try Tokenizer(gguf: gguf)
        guard let data = FileManager.default.contents(atPath: file) else {
            throw BenchError(description: "cannot read \(file)")
        }
        let text = String(decoding: data, as: UTF8.self)
        let t0 = now()
        let tokens = tokenizer.encode(text, addSpecial: true, parseSpecial: false)
        let tTok = now() - t0
        let nChunks = tokens.count / ctx
        guard nChunks >= 1 else {
            throw BenchError(description: "\(file) has \(tokens.count) tokens: need at least --ctx \(ctx) for one chunk")
        }
        let use = chunks == 0 ? nChunks : min(chunks, nChunks)
        FileHandle.standardError.write(Data("perplexity: \(tokens.count) tokens (\(String(format: "%.2f", tTok)) s to tokenize), \(nChunks) chunks of \(ctx), \(m.kernelDescription)\n".utf8))
        let session = try m.makeSession(contextLength: ctx)
        let first = ctx / 2
        let vocab = m.config.vocabSize
        var nll = 0.0, count = 0
        let t1 = now()
        for c in 0..<use {
            var chunk = Array(tokens[(c * ctx)..<((c + 1) * ctx)])
            if tokenizer.addsBOS, let bos = tokenizer.bosID { chunk[0] = bos }
            session.reset()
            try session.evaluate(chunk, logitsFrom: first) { logits in
                // Row j (token first + j) predicts token first + j + 1, for j in 0..<ctx-1-first.
                for j in 0..<(ctx - 1 - first) {
                    let row = UnsafeBufferPointer(rebasing: logits[(j * vocab)..<((j + 1) * vocab)])
                    let target = Int(chunk[first + j + 1])
                    var mx = -Float.infinity
                    for v in row where v > mx { mx = v }
                    var sum = 0.0
                    for v in row { sum += Double(expf(v - mx)) }
                    nll += log(sum) - Double(row[target] - mx)
                    count += 1
                }
            }
            print("[\(c + 1)]\(String(format: "%.4f", exp(nll / Double(count))))", terminator: c + 1 < use ? "," : "\n")
            fflush(nil)
        }
        let dt = now() - t1
        FileHandle.standardError.write(Data("perplexity: \(count) tokens scored in \(String(format: "%.2f", dt)) s (\(String(format: "%.1f", Double(use * ctx) / dt)) tokens/s evaluated)\n".utf8))
        print("PPL = \(String(format: "%.4f", exp(nll / Double(count))))")
    }
}

struct Logits: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluates token ids from an empty cache and writes the logits after every token: little-endian float32, row-major, n_tokens × n_vocab, nothing else.")

    @Option(name: .long, help: "GGUF model file") var model: String
    @Option(name: .long, help: "comma-separated token ids") var tokens: String
    @Option(name: .long, help: "output file") var out: String
    @Option(name: .long, help: "evaluate in chunks of this many tokens (default: all at once)") var chunk: Int?
    @Option(name: .short, help: "threads (default: number of cores)") var t: Int = 0

    func run() throws {
        var ids: [Int32] = []
        for part in tokens.split(separator: ",", omittingEmptySubsequences: false) {
            guard let v = Int32(part.trimmingCharacters(in: .whitespaces)) else {
                throw BenchError(description: "--tokens: '\(part)' is not a token id")
            }
            ids.append(v)
        }
        guard !ids.isEmpty else { throw BenchError(description: "--tokens: no token ids") }
        let size = chunk ?? ids.count
        guard size >= 1 else { throw BenchError(description: "--chunk must be >= 1") }
        guard t >= 0 else { throw BenchError(description: "-t must be >= 0") }
        var options = TransformerModel.Options()
        options.threads = t
        let m = try TransformerModel(file: try GGUFFile(path: model), options: options)
        let session = try m.makeSession(contextLength: max(ids.count, 1))
        var bytes = Data(capacity: ids.count * m.config.vocabSize * 4)
        var i = 0
        while i < ids.count {
            let part = Array(ids[i..<min(ids.count, i + size)])
            try session.evaluate(part, logitsFrom: 0) { logits in
                for v in logits { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
            }
            i += part.count
        }
        guard FileManager.default.createFile(atPath: out, contents: bytes) else {
            throw BenchError(description: "cannot write \(out)")
        }
        FileHandle.standardError.write(Data("logits: \(ids.count) × \(m.config.vocabSize) floats to \(out)\n".utf8))
    }
}

struct TimeToFirstToken: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ttft",
        abstract: "Time to first token of a chat prompt through AI.run: a system message and a user message of GNU GPL-3 text sized to about -p prompt tokens after the model's chat template; each repetition from an empty cache (after one warm-up), max_tokens 1, temperature 0. Prints the median wall time of AI.run and the prompt's token count (Benchmarks/compare.py --ttft measures llama.cpp on as many tokens).")

    @Option(name: .long, help: "GGUF model file (with a chat template)") var model: String
    @Option(name: .short, help: "prompt tokens wanted (after the template)") var p: Int = 1000
    @Option(name: .short, help: "threads (default: number of cores)") var t: Int = 0
    @Option(name: .short, help: "repetitions") var r: Int = 5
    @Option(name: .long, help: "text to take the user message from") var text: String = "/usr/share/common-licenses/GPL-3"
    @Flag(name: .long, help: "print JSON") var json = false

    func run() async throws {
        let ai = try AI(threads: t)
        let id = "bench/ttft"
        ai.register(id, path: model)
        try await ai.preload(id)
        let words = try String(contentsOfFile: text, encoding: .utf8).split(whereSeparator: \.isWhitespace)
        func input(_ count: Int) -> AIInput {
            AIInput(messages: [.system("You are a helpful assistant."), .user(words.prefix(count).joined(separator: " "))],
                    maxTokens: 1, temperature: 0)
        }
        // the largest word count whose prompt has at most p tokens
        var lo = 1, hi = words.count
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if try await ai.promptTokens(id, input(mid)).count <= p { lo = mid } else { hi = mid - 1 }
        }
        let request = input(lo)
        let promptTokens = try await ai.promptTokens(id, request).count
        var samples: [Double] = [], prefill: [Double] = []
        for i in 0...r {
            try await ai.clearCache(id)
            let t0 = now()
            let out = try await ai.run(id, request)
            let dt = now() - t0
            if i > 0 {   // the first run is the warm-up
                samples.append(dt)
                prefill.append(out.stats?.timeToFirstToken ?? .nan)
            }
        }
        func median(_ x: [Double]) -> Double { let s = x.sorted(); return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2 }
        if json {
            let obj: [String: Any] = ["model_filename": model, "prompt_tokens": promptTokens, "repetitions": r,
                                      "ttft_seconds_median": median(samples), "ttft_seconds": samples,
                                      "engine_ttft_seconds_median": median(prefill)]
            print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print("model: \(model)")
            print("prompt: \(promptTokens) tokens (chat template applied), \(r) repetitions from an empty cache")
            print(String(format: "time to first token through AI.run: median %.1f ms (engine's own: %.1f ms)", median(samples) * 1000, median(prefill) * 1000))
        }
    }
}


struct JSONMode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "json",
        abstract: "Cost of JSON mode's constrained decoding: the same chat request generated free and under response_format (json_object and a few schemas), greedy; prints decode ms/token, the part spent masking and advancing the grammar, and the masks computed by a trie walk (the rest came from the per-state cache).")

    @Option(name: .long, help: "GGUF model file (with a chat template)") var model: String
    @Option(name: .short, help: "threads (default: number of cores)") var t: Int = 0
    @Option(name: .short, help: "repetitions (the median is printed)") var r: Int = 3
    @Option(name: .long, help: "max_tokens of each request") var maxTokens: Int = 128
    @Flag(name: .long, help: "print each case's answer") var show = false
    @Flag(name: .long, help: "send a bare prompt (for models without a chat template)") var raw = false
    @Option(name: .long, help: "temperature (0: greedy, which checks the argmax token before building a mask)") var temperature: Double = 0

    static let schemas: [(String, String?)] = [
        ("free text", nil),
        ("json_object", "{}"),
        ("country", #"{"type":"object","properties":{"name":{"type":"string"},"capital":{"type":"string"},"languages":{"type":"array","items":{"type":"string"}}},"required":["name","capital","languages"]}"#),
        ("order", #"{"type":"object","properties":{"order_id":{"type":"integer","minimum":1,"maximum":99999},"items":{"type":"array","minItems":1,"maxItems":3,"items":{"type":"object","properties":{"sku":{"type":"string","maxLength":12},"qty":{"type":"integer","minimum":1,"maximum":10}},"required":["sku","qty"]}},"paid":{"type":"boolean"}},"required":["order_id","items","paid"]}"#),
        ("event", #"{"type":"object","properties":{"title":{"type":"string","maxLength":30},"date":{"type":"string","format":"date"},"start":{"type":"string","format":"time"},"id":{"type":"string","format":"uuid"}},"required":["title","date","start","id"]}"#),
    ]

    func run() async throws {
        let ai = try AI(threads: t)
        let id = "bench/json"
        ai.register(id, path: model)
        try await ai.preload(id)
        let messages: [AIMessage] = [.system("Reply in JSON."), .user("Tell me about India: its name, capital and languages, and a made-up order of two items with an id, and an event.")]
        print("model: \(model), max_tokens \(maxTokens), temperature \(temperature), median of \(r)")
        print("case          tokens  total ms/token  of which JSON mode  trie walks  complete")
        for (name, schema) in Self.schemas {
            var format: AIResponseFormat? = nil
            if let schema { format = schema == "{}" ? .jsonObject : .jsonSchema(try JSONParser.parse(schema)) }
            var perToken: [Double] = [], constraint: [Double] = []
            var tokens = 0, walks = 0
            var complete = "yes"
            for i in 0...r {
                try await ai.clearCache(id)
                var input = AIInput(messages: messages, maxTokens: maxTokens, temperature: temperature, seed: 1, responseFormat: format)
                if raw {
                    input.messages = nil
                    input.prompt = messages.map(\.content).joined(separator: "\n") + "\n"
                }
                let stats: GenerationStats
                do {
                    let out = try await ai.run(id, input)
                    guard let s = out.stats else { throw BenchError(description: "no stats") }
                    if show && i == r { print(out.response) }
                    stats = s
                } catch let e as AIError where e.code == AIError.jsonModeNotMetCode {
                    complete = "no (max_tokens)"
                    continue
                }
                if i == 0 { continue }  // warm-up (builds the token trie)
                let n = Double(max(stats.sampledTokens - 1, 1))
                perToken.append(stats.generationSeconds / n * 1000)
                constraint.append(stats.constraintSeconds / Double(stats.sampledTokens) * 1000)
                tokens = stats.sampledTokens
                walks = stats.maskWalks
            }
            func median(_ x: [Double]) -> Double { x.isEmpty ? .nan : x.sorted()[x.count / 2] }
            print(String(format: "%-12@  %6d  %14.2f  %18.3f  %10d  %@", name as NSString, tokens, median(perToken), median(constraint), walks, complete as NSString))
        }
    }
}

struct Tools: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tools",
        abstract: "Tool calling: chat requests with two tools under tool_choice auto and required, greedy and sampled (seeds 1…N); prints per choice the answers that are calls, the constrained decoding's cost per token (masks and grammar steps, sampling excluded) and decode ms/token. --dump writes every call with its tool's schema as JSON lines (Tests/json-mode-check.py-style validation with the jsonschema package).")

    @Option(name: .long, help: "model id or GGUF path") var model: String = "@cf/huggingfacetb/smollm2-135m-instruct"
    @Option(name: .short, help: "threads (default: number of cores)") var t: Int = 0
    @Option(name: .long, help: "sampled runs per prompt (seeds 1…N, temperature 0.8) besides the greedy one") var seeds: Int = 4
    @Option(name: .long, help: "max_tokens of each request") var maxTokens: Int = 96
    @Option(name: .long, help: "write the calls as JSON lines {tool, schema, arguments}") var dump: String?

    static let weather = AITool(name: "get_weather", description: "Get the current weather in a city",
        parameters: try! JSONParser.parse(#"{"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city"]}"#))
    static let convert = AITool(name: "convert_currency", description: "Convert an amount of money between currencies",
        parameters: try! JSONParser.parse(#"{"type":"object","properties":{"amount":{"type":"number"},"from":{"type":"string","minLength":3,"maxLength":3},"to":{"type":"string","minLength":3,"maxLength":3}},"required":["amount","from","to"]}"#))
    static let prompts = ["What is the weather like in Paris today?", "How many yen is 25 US dollars?", "Is it raining in Oslo right now?",
                          "Convert 100 euros to pounds.", "Do I need an umbrella in London?", "What's 50 Swiss francs in dollars?"]

    func run() async throws {
        let ai = try AI(threads: t)
        var id = model
        if model.hasSuffix(".gguf") { id = "bench/tools"; ai.register(id, path: model) }
        try await ai.preload(id)
        var lines: [String] = []
        print("model: \(model), max_tokens \(maxTokens), \(Self.prompts.count) prompts x (greedy + \(seeds) seeds at temperature 0.8)")
        print("tool_choice  answers  calls  tokens  constrained ms/token  decode ms/token")
        for choice in [AIToolChoice.auto, .required] {
            var answers = 0, calls = 0, tokens = 0
            var constraint = 0.0, generation = 0.0
            for prompt in Self.prompts {
                for seed in [nil] + (1...max(seeds, 1)).map(Optional.some) {
                    let input = AIInput(messages: [.user(prompt)], maxTokens: maxTokens, temperature: seed == nil ? 0 : 0.8, seed: seed,
                                        tools: [Self.weather, Self.convert], toolChoice: choice)
                    let out = try await ai.run(id, input)
                    answers += 1
                    for c in out.toolCalls ?? [] {
                        calls += 1
                        let schema = (c.name == Self.weather.name ? Self.weather : Self.convert).parameters!
                        lines.append(#"{"tool":\#(JSONValue.string(c.name).jsonText),"schema":\#(schema.jsonText),"arguments":\#(c.arguments.jsonText)}"#)
                    }
                    if let s = out.stats {
                        tokens += s.sampledTokens
                        constraint += s.constraintSeconds
                        generation += s.generationSeconds
                    }
                }
            }
            let name = choice == .auto ? "auto" : "required"
            print(name.padding(toLength: 11, withPad: " ", startingAt: 0) + String(format: "  %7d  %5d  %6d  %20.3f  %15.2f", answers, calls, tokens,
                         constraint / Double(max(tokens, 1)) * 1000, generation / Double(max(tokens - answers, 1)) * 1000))
        }
        if let dump { try (lines.joined(separator: "\n") + "\n").write(toFile: dump, atomically: true, encoding: .utf8) }
    }
}

struct Embed: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Sentence embeddings per second through AI.embed (tokenizer, encoder, pooling): batches of 1 and 32 of the same 32 sentences; median of -r runs after a warm-up. Benchmarks/embed-compare.py runs llama.cpp beside it.")

    @Option(name: .long, help: "model id or GGUF path (a BERT GGUF, e.g. from gguf convert)")
    var model: String = "@cf/sentence-transformers/all-minilm-l6-v2"
    @Option(name: .short, help: "threads (default: number of cores)") var t: Int = 0
    @Option(name: .short, help: "repetitions (the median is printed)") var r: Int = 5
    @Option(name: .long, help: "batch sizes, comma-separated") var batches: String = "1,32"
    @Flag(name: .long, help: "print one JSON object") var json = false

    /// 32 sentences of ordinary length (8-30 words); Benchmarks/embed-compare.py uses the same ones.
    static let sentences: [String] = [
        "The quick brown fox jumps over the lazy dog.",
        "Edge computing runs code close to the people who use it.",
        "What is the capital of France?",
        "Paris is the capital and largest city of France, with an estimated population of two million residents.",
        "I love eating pizza on Friday nights with my friends.",
        "The weather forecast says it will rain tomorrow afternoon, so bring an umbrella.",
        "Machine learning models learn patterns from data instead of following explicit rules.",
        "How do I reset my password if I no longer have access to my email account?",
        "The museum opens at nine in the morning and closes at six in the evening.",
        "Photosynthesis converts light energy into chemical energy stored in glucose.",
        "Our quarterly revenue grew by twelve percent compared with the same period last year.",
        "Please remember to water the plants while I am away on holiday.",
        "A vector database stores embeddings and finds the nearest neighbours of a query.",
        "The train to Berlin leaves from platform four at half past eight.",
        "She finished the marathon in just under four hours despite the heat.",
        "Retrieval-augmented generation combines a search step with a language model.",
        "The recipe calls for two cups of flour, one egg and a pinch of salt.",
        "Can you recommend a good book about the history of mathematics?",
        "Solar panels on the roof now cover most of the building's electricity needs.",
        "The committee will announce its decision after the meeting on Thursday.",
        "Cats sleep for around sixteen hours a day on average.",
        "The new update fixes several bugs and improves battery life on older phones.",
        "Rivers carry sediment from the mountains down to the sea.",
        "He learned to play the guitar by watching videos online every evening.",
        "Customer support is available by chat from Monday to Friday.",
        "The telescope captured detailed images of a distant spiral galaxy.",
        "Reading before bed can help some people fall asleep more easily.",
        "The bridge was closed for repairs after cracks were found in its supports.",
        "Our team uses code review to catch mistakes before they reach production.",
        "Fresh bread smells wonderful when it comes straight out of the oven.",
        "The election results will be published on the official website tonight.",
        "Hi",
    ]

    func run() async throws {
        let ai = try AI(threads: t)
        var id = model
        if model.hasSuffix(".gguf") {
            id = "bench/embed"
            ai.register(id, path: model)
        }
        guard try await ai.isEmbeddingModel(id) else { throw BenchError(description: "\(model) is not an embedding model (or its file is missing: bash Models/fetch.sh \(model))") }
        let sizes = batches.split(separator: ",").compactMap { Int($0) }.filter { $0 >= 1 && $0 <= EmbeddingInput.maxStrings }
        _ = try await ai.embed(id, EmbeddingInput(text: Self.sentences))   // load + warm-up
        let tokens = try await ai.embed(id, EmbeddingInput(text: Self.sentences)).promptTokens
        var results: [(Int, Double)] = []
        for b in sizes {
            var rates: [Double] = []
            for _ in 0..<max(1, r) {
                var done = 0
                let start = now()
                // The 32 sentences (repeated when b > 32) in requests of b strings.
                let total = max(Self.sentences.count, b)
                while done < total {
                    let k = min(b, total - done)
                    let texts = (done..<(done + k)).map { Self.sentences[$0 % Self.sentences.count] }
                    _ = try await ai.embed(id, EmbeddingInput(text: texts))
                    done += k
                }
                rates.append(Double(total) / (now() - start))
            }
            results.append((b, rates.sorted()[rates.count / 2]))
        }
        if json {
            let parts = results.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",")
            print("{\"model\":\"\(model)\",\"threads\":\(t),\"tokens_per_32\":\(tokens),\"sentences_per_second\":{\(parts)}}")
        } else {
            print("model: \(model), threads \(t == 0 ? "all" : String(t)), 32 sentences (\(tokens) tokens with [CLS]/[SEP]), median of \(r)")
            for (b, rate) in results { print(String(format: "batch %3d: %8.1f sentences/s", b, rate)) }
        }
    }
}
