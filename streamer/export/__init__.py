"""Export tools: Hugging Face checkpoints to checked ONNX model dirs, the cache --model resolves through, Triton repositories."""
