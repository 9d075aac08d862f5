"""Inference: the Backend seam, ONNX Runtime as its first implementation, the batcher every command drives its streams through, and the synchronous driver."""
