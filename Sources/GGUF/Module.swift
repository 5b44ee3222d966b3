// GGUF module (in progress)
