import Grammar
import Tokenizer

// JSON mode: `response_format` compiled to a grammar, and the per-vocabulary token trie that
// constrained decoding walks.

extension AIResponseFormat {
    /// The grammar of the documents this format admits. A schema this runtime cannot honour
    /// (an unsupported keyword, a malformed schema) is a 5006 naming the keyword and where it is.
    func grammar() throws(AIError) -> Grammar {
        switch type {
        case .jsonObject:
            return SchemaCompiler.anyObject()
        case .jsonSchema:
            guard let schema else {
                throw AIError.invalidInput("required properties at '/response_format' are 'type,json_schema' for type 'json_schema'")
            }
            do {
                return try SchemaCompiler.compile(schema.schemaValue)
            } catch {
                throw AIError.invalidInput("Invalid '/response_format/json_schema': \(error.message)")
            }
        }
    }

    /// The automaton that runs one request's constrained decoding.
    func automaton() throws(AIError) -> GrammarAutomaton {
        let g = try grammar()
        do {
            return try GrammarAutomaton(g)
        } catch {
            throw AIError.invalidInput("Invalid '/response_format/json_schema': \(error.message)")
        }
    }
}

extension Tokenizer {
    /// The trie of the tokens that may appear inside a JSON document: every token with text,
    /// except control, unknown and unused tokens and the end-of-generation tokens (those are
    /// allowed separately, exactly when the document is complete).
    func jsonTokenTrie() -> TokenTrie {
        TokenTrie(vocabularySize: vocabularySize) { id in
            if self.isControl(id) || id == self.unknownID || self.isEndOfGeneration(id) { return nil }
            let b = self.tokenBytes(id)
            return b.isEmpty ? nil : b
        }
    }
}
