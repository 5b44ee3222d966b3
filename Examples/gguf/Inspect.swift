import ArgumentParser
import GGUF
#if canImport(Glibc)
import Glibc
#endif

/// Prints one `error: …` line on stderr.
func printError(_ message: String) {
    writeStderr("error: " + message.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: " ") + "\n")
}

/// Writes `text` to file descriptor 2 (unbuffered).
func writeStderr(_ text: String) {
    var text = text
    text.withUTF8 { buf in
        var done = 0
        while done < buf.count {
            let n = write(STDERR_FILENO, buf.baseAddress! + done, buf.count - done)
            if n <= 0 { return }
            done += n
        }
    }
}

/// Runs `body`; any error becomes one `error: …` line on stderr and exit status 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as GGUFError {
        printError(e.message)
        throw ExitCode(1)
    } catch let e as ExitCode {
        throw e
    } catch {
        printError("\(error)")
        throw ExitCode(1)
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a GGUF file's header, metadata and tensor table.")

    @Argument(help: "GGUF file to inspect.")
    var file: String

    @Flag(name: .long, help: "Print JSON instead of text.")
    var json = false

    @Option(name: .long, help: "Array elements shown before abbreviating.")
    var arrayLimit = 8

    func run() throws {
        try reportingErrors {
            let f = try GGUFFile(path: file)
            let text = json ? InspectFormatter.json(f, arrayLimit: max(arrayLimit, 0))
                            : InspectFormatter.text(f, arrayLimit: max(arrayLimit, 0))
            print(text, terminator: "")
        }
    }
}

enum InspectFormatter {
    static func mib(_ bytes: Int) -> String {
        let v = Double(bytes) / 1_048_576
        return String(Int((v * 100).rounded()) / 100) + "." + pad2(Int((v * 100).rounded()) % 100) + " MiB"
    }

    static func pad2(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }

    /// Text form of a string: quoted, with control characters escaped; long ones shortened.
    static func quoted(_ s: String, limit: Int?) -> String {
        var out = "\""
        var n = 0
        for ch in s.unicodeScalars {
            if let limit, n >= limit {
                out += "\"… (\(s.utf8.count) bytes)"
                return out
            }
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if ch.value < 0x20 || ch.value == 0x7f {
                    out += "\\u{" + String(ch.value, radix: 16) + "}"
                } else {
                    out.unicodeScalars.append(ch)
                }
            }
            n += 1
        }
        return out + "\""
    }

    static func scalarText(_ v: GGUFValue) -> String {
        switch v {
        case .uint8(let x): return "\(x)"
        case .int8(let x): return "\(x)"
        case .uint16(let x): return "\(x)"
        case .int16(let x): return "\(x)"
        case .uint32(let x): return "\(x)"
        case .int32(let x): return "\(x)"
        case .uint64(let x): return "\(x)"
        case .int64(let x): return "\(x)"
        case .float32(let x): return "\(x)"
        case .float64(let x): return "\(x)"
        case .bool(let x): return "\(x)"
        case .string(let s): return quoted(s, limit: 200)
        case .array(let a): return arrayText(a, limit: 8)
        }
    }

    static func typeText(_ v: GGUFValue) -> String {
        if case .array(let a) = v { return "arr[\(arrayTypeText(a)),\(a.count)]" }
        return v.type.description
    }

    static func arrayTypeText(_ a: GGUFValueArray) -> String {
        if case .array(let inner) = a, let first = inner.first { return "arr[\(arrayTypeText(first))]" }
        return a.elementType.description
    }

    static func arrayText(_ a: GGUFValueArray, limit: Int) -> String {
        let shown = min(a.count, limit)
        var parts = [String]()
        for i in 0..<shown {
            guard let v = a[i] else { continue }
            if case .string(let s) = v { parts.append(quoted(s, limit: 60)) } else { parts.append(scalarText(v)) }
        }
        if a.count > shown { parts.append("… \(a.count - shown) more") }
        return "[" + parts.joined(separator: ", ") + "]"
    }

    static func shapeText(_ shape: [Int]) -> String {
        "[" + shape.map(String.init).joined(separator: ", ") + "]"
    }

    static func leftPad(_ s: String, _ n: Int) -> String {
        s.count >= n ? s : String(repeating: " ", count: n - s.count) + s
    }

    static func rightPad(_ s: String, _ n: Int) -> String {
        s.count >= n ? s : s + String(repeating: " ", count: n - s.count)
    }

    static func text(_ f: GGUFFile, arrayLimit: Int) -> String {
        var out = ""
        out += "file: \(f.path ?? "-")\n"
        out += "size: \(f.fileSize) bytes (\(mib(f.fileSize)))\n"
        out += "GGUF version \(f.version), alignment \(f.alignment), data section at byte \(f.dataOffset)\n"
        out += "\nmetadata (\(f.metadataKeys.count) keys):\n"
        let keyWidth = min(f.metadataKeys.map(\.count).max() ?? 0, 48)
        for key in f.metadataKeys {
            guard let v = f[key] else { continue }
            let value: String
            if case .array(let a) = v { value = arrayText(a, limit: arrayLimit) } else { value = scalarText(v) }
            out += "  \(rightPad(key, keyWidth))  \(rightPad(typeText(v), 16)) = \(value)\n"
        }
        out += "\ntensors (\(f.tensors.count)):\n"
        let nameWidth = min(max(f.tensors.map(\.name.count).max() ?? 4, 4), 48)
        out += "  \(leftPad("#", 4))  \(rightPad("name", nameWidth))  \(rightPad("type", 7))  \(rightPad("shape", 20))  \(leftPad("offset", 12))  \(leftPad("bytes", 12))\n"
        var bytesByType = [String: (count: Int, bytes: Int)]()
        var elements = 0
        var dataBytes = 0
        for (i, t) in f.tensors.enumerated() {
            out += "  \(leftPad(String(i), 4))  \(rightPad(t.name, nameWidth))  \(rightPad(t.type.name, 7))  \(rightPad(shapeText(t.shape), 20))  \(leftPad(String(t.offset), 12))  \(leftPad(String(t.byteCount), 12))\n"
            bytesByType[t.type.name, default: (0, 0)].count += 1
            bytesByType[t.type.name, default: (0, 0)].bytes += t.byteCount
            elements += t.elementCount
            dataBytes += t.byteCount
        }
        out += "\ntotals: \(f.tensors.count) tensors, \(elements) elements, \(dataBytes) bytes of tensor data (\(mib(dataBytes)))\n"
        for (name, v) in bytesByType.sorted(by: { $0.value.bytes > $1.value.bytes }) {
            out += "  \(rightPad(name, 7))  \(leftPad(String(v.count), 5)) tensors  \(leftPad(String(v.bytes), 12)) bytes\n"
        }
        return out
    }

    // MARK: JSON

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for ch in s.unicodeScalars {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if ch.value < 0x20 {
                    let hex = String(ch.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(ch)
                }
            }
        }
        return out + "\""
    }

    static func jsonNumber(_ d: Double) -> String {
        d.isFinite ? "\(d)" : "null"
    }

    static func jsonNumber(_ f: Float) -> String {
        f.isFinite ? "\(f)" : "null"
    }

    static func jsonValue(_ v: GGUFValue, arrayLimit: Int) -> String {
        switch v {
        case .uint8(let x): return "\(x)"
        case .int8(let x): return "\(x)"
        case .uint16(let x): return "\(x)"
        case .int16(let x): return "\(x)"
        case .uint32(let x): return "\(x)"
        case .int32(let x): return "\(x)"
        case .uint64(let x): return "\(x)"
        case .int64(let x): return "\(x)"
        case .float32(let x): return jsonNumber(x)
        case .float64(let x): return jsonNumber(x)
        case .bool(let x): return x ? "true" : "false"
        case .string(let s): return jsonString(s)
        case .array(let a):
            let shown = min(a.count, arrayLimit)
            return "[" + (0..<shown).compactMap { a[$0].map { jsonValue($0, arrayLimit: arrayLimit) } }.joined(separator: ",") + "]"
        }
    }

    static func json(_ f: GGUFFile, arrayLimit: Int) -> String {
        var out = "{\n"
        out += "  \"file\": \(jsonString(f.path ?? "")),\n"
        out += "  \"file_size\": \(f.fileSize),\n"
        out += "  \"version\": \(f.version),\n"
        out += "  \"alignment\": \(f.alignment),\n"
        out += "  \"data_offset\": \(f.dataOffset),\n"
        out += "  \"metadata\": [\n"
        var items = [String]()
        for key in f.metadataKeys {
            guard let v = f[key] else { continue }
            var item = "    {\"key\": \(jsonString(key)), \"type\": \(jsonString(v.type.description))"
            if case .array(let a) = v {
                item += ", \"element_type\": \(jsonString(arrayTypeText(a))), \"count\": \(a.count)"
                item += ", \"truncated\": \(a.count > arrayLimit)"
            }
            item += ", \"value\": \(jsonValue(v, arrayLimit: arrayLimit))}"
            items.append(item)
        }
        out += items.joined(separator: ",\n") + "\n  ],\n"
        out += "  \"tensors\": [\n"
        var elements = 0, dataBytes = 0
        out += f.tensors.map { t in
            elements += t.elementCount
            dataBytes += t.byteCount
            return "    {\"name\": \(jsonString(t.name)), \"type\": \(jsonString(t.type.name)), \"type_id\": \(t.type.rawValue), \"shape\": [\(t.shape.map(String.init).joined(separator: ","))], \"offset\": \(t.offset), \"size\": \(t.byteCount)}"
        }.joined(separator: ",\n")
        out += "\n  ],\n"
        out += "  \"totals\": {\"tensors\": \(f.tensors.count), \"elements\": \(elements), \"tensor_bytes\": \(dataBytes)}\n"
        out += "}\n"
        return out
    }
}
