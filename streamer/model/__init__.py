"""Models: checkpoints, export to ONNX with parity checks, the cache that --model resolves through, vocabulary and frame geometry."""
