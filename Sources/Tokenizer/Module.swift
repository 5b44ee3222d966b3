// Tokenizer module (in progress)
