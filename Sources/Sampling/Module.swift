// Sampling module (in progress)
