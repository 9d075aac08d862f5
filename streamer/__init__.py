"""streamer: real-time Norwegian (Bokmål) speech recognition with wav2vec2 CTC on ONNX Runtime."""

__version__ = "0.1.0"

DEFAULT_MODEL = "NbAiLab/XLSR-300M-bokmaal"
