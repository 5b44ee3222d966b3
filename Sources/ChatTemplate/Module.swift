// ChatTemplate module (in progress)
