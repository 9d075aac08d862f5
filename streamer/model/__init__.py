"""Model metadata, the bottom of the house: the manifest and ModelInfo, the vocabulary, the frame geometry and sample rate."""
