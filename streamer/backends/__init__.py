"""Backends: what turns windows of audio into CTC logits (the Backend seam; ONNX Runtime in process, Triton over gRPC, a user's plugin) and the shapes they pad calls to."""
