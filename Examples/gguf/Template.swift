import ArgumentParser
import ChatTemplate
import Foundation
import GGUF

struct Template: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "template",
        abstract: "Render a chat template for a conversation and print exactly the prompt text.",
        discussion: """
            The template comes from the GGUF's tokenizer.chat_template (or tokenizer.chat_template.<NAME> with \
            --template-name) or from a file. It is rendered as Hugging Face apply_chat_template does \
            (Jinja2, trim_blocks, lstrip_blocks). The messages file is a JSON list of {"role", "content"} objects \
            ('-' reads standard input). With --model, bos_token and eos_token default to the vocabulary's BOS/EOS \
            token texts.
            """)

    @Option(name: .long, help: "GGUF file whose chat template to use.")
    var model: String?

    @Option(name: .customLong("template-file"), help: "Jinja template file to use instead of a GGUF's.")
    var templateFile: String?

    @Option(name: .customLong("template-name"), help: "Use the GGUF's tokenizer.chat_template.<NAME> (e.g. tool_use).")
    var templateName: String?

    @Option(name: .long, help: "JSON file with the messages ('-' for standard input).")
    var messages: String?

    @Flag(name: .customLong("add-generation-prompt"), help: "End with the start of an assistant turn.")
    var addGenerationPrompt = false

    @Option(name: .customLong("bos-token"), help: "Value of bos_token (default: the GGUF's BOS token text, else empty).")
    var bosToken: String?

    @Option(name: .customLong("eos-token"), help: "Value of eos_token (default: the GGUF's EOS token text, else empty).")
    var eosToken: String?

    func run() throws {
        do {
            let text = try render()
            FileHandle.standardOutput.write(Data(text.utf8))
        } catch let e as TemplateCommandError {
            throw templateCommandFail(e.description)
        } catch let e as TemplateError {
            throw templateCommandFail(e.description)
        } catch let e as GGUFError {
            throw templateCommandFail(e.message)
        } catch {
            throw templateCommandFail("\(error)")
        }
    }

    private func render() throws -> String {
        if (model == nil) == (templateFile == nil) {
            throw TemplateCommandError("give exactly one of --model GGUF or --template-file FILE")
        }
        guard let messagesPath = messages else { throw TemplateCommandError("--messages FILE.json is required ('-' for standard input)") }
        if templateName != nil && model == nil { throw TemplateCommandError("--template-name needs --model") }

        var source: String
        var bos = "", eos = ""
        if let model {
            let file = try GGUFFile(path: model)
            let key = templateName.map { "tokenizer.chat_template.\($0)" } ?? "tokenizer.chat_template"
            guard let s = try file.string(key) else {
                let named = file.metadataKeys.filter { $0.hasPrefix("tokenizer.chat_template.") }
                    .map { String($0.dropFirst("tokenizer.chat_template.".count)) }
                var msg = "'\(model)' has no \(key)"
                if !named.isEmpty { msg += " (named templates: \(named.joined(separator: ", ")))" }
                throw TemplateCommandError(msg)
            }
            source = s
            if let tokens = try file.strings("tokenizer.ggml.tokens") {
                if let id = try file.int("tokenizer.ggml.bos_token_id"), id >= 0, id < tokens.count { bos = tokens[id] }
                if let id = try file.int("tokenizer.ggml.eos_token_id"), id >= 0, id < tokens.count { eos = tokens[id] }
            }
        } else {
            let path = templateFile ?? ""
            guard let data = FileManager.default.contents(atPath: path) else {
                throw TemplateCommandError("cannot read template file '\(path)'")
            }
            guard let s = String(data: data, encoding: .utf8) else {
                throw TemplateCommandError("template file '\(path)' is not UTF-8 text")
            }
            source = s
        }

        let data: Data
        if messagesPath == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            guard let d = FileManager.default.contents(atPath: messagesPath) else {
                throw TemplateCommandError("cannot read messages file '\(messagesPath)'")
            }
            data = d
        }
        let where_ = messagesPath == "-" ? "standard input" : "'\(messagesPath)'"
        let parsed: TemplateValue
        do {
            parsed = try TemplateValue(jsonData: data)
        } catch let e as TemplateError {
            throw TemplateCommandError("messages in \(where_): \(e.message) (line \(e.line), column \(e.column))")
        }
        guard let list = parsed.arrayValue else {
            throw TemplateCommandError("messages in \(where_) must be a JSON list of {\"role\", \"content\"} objects")
        }
        for (i, m) in list.enumerated() {
            guard let obj = m.objectValue else {
                throw TemplateCommandError("message \(i) in \(where_) is not a JSON object")
            }
            guard obj["role"]?.stringValue != nil else {
                throw TemplateCommandError("message \(i) in \(where_) has no string \"role\"")
            }
            if obj["content"] == nil && obj["tool_calls"] == nil {
                throw TemplateCommandError("message \(i) in \(where_) has no \"content\"")
            }
        }

        let template = try ChatTemplate(source)
        return try template.render(messages: list, addGenerationPrompt: addGenerationPrompt,
                                   bosToken: bosToken ?? bos, eosToken: eosToken ?? eos)
    }
}

private struct TemplateCommandError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// Prints `error: …` (one line) on standard error; the caller then exits with status 1.
private func templateCommandFail(_ message: String) -> ExitCode {
    let line = "error: " + message.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: " ") + "\n"
    FileHandle.standardError.write(Data(line.utf8))
    return ExitCode(1)
}
