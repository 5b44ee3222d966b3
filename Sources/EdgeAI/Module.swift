// EdgeAI module (in progress)
