// LlamaModel module (in progress)
