"""How a wav2vec2 feature encoder maps samples to frames (derived from its conv kernels and strides), and the
one source of the audio's sample rate and frame length: every module that needs them takes them from here."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16_000  # what the model hears: mono audio at this rate (sources resample to it)
FRAME_MS = 20  # wav2vec2's frame stride; VAD frames and window edges fall on its multiples


@dataclass(frozen=True)
class FrameGeometry:
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    sample_rate: int = SAMPLE_RATE

    @property
    def stride_samples(self) -> int:
        return math.prod(self.conv_stride)

    @property
    def receptive_field_samples(self) -> int:
        field, jump = 1, 1
        for kernel, stride in zip(self.conv_kernel, self.conv_stride):
            field += (kernel - 1) * jump
            jump *= stride
        return field

    @property
    def frame_s(self) -> float:
        return self.stride_samples / self.sample_rate

    def n_frames(self, n_samples: int) -> int:
        """Frames the encoder gives for n_samples of audio (0 when shorter than one receptive field)."""
        length = n_samples
        for kernel, stride in zip(self.conv_kernel, self.conv_stride):
            if length < kernel:
                return 0
            length = (length - kernel) // stride + 1
        return length

    def pad_to_receptive_field(self, audio: np.ndarray) -> np.ndarray:
        """Audio shorter than one receptive field, padded with silence so it yields one frame."""
        missing = self.receptive_field_samples - len(audio)
        return np.pad(audio, (0, missing)) if missing > 0 else audio

    def to_json(self) -> dict:
        return {
            "conv_kernel": list(self.conv_kernel),
            "conv_stride": list(self.conv_stride),
            "sample_rate": self.sample_rate,
            "frame_stride_samples": self.stride_samples,
            "receptive_field_samples": self.receptive_field_samples,
        }

    @classmethod
    def from_json(cls, data: dict) -> "FrameGeometry":
        return cls(tuple(data["conv_kernel"]), tuple(data["conv_stride"]), int(data["sample_rate"]))
