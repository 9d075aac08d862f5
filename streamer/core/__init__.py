"""The sans-I/O stream core: PCM in, VAD gate, windows of both passes, stitcher, events."""
