"""Offline recognition of one speech segment: one pass when it is short, overlapping chunks when long.

Chunks are ``left context | kept | right context``; only the kept frames of each chunk are used,
joined at the frame level before the CTC collapse (as the Hugging Face chunked pipeline does), so a
word at a chunk boundary is neither lost nor doubled. Memory stays bounded by one chunk of audio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ctc import Word, best_path, words_from_path
from .errors import StreamerError


@dataclass(frozen=True)
class ChunkSettings:
    max_pass_s: float = 30.0  # a segment up to this long runs through the model whole
    context_s: float = 3.0  # left and right context of each chunk of longer segments

    def __post_init__(self) -> None:
        if self.context_s < 0 or self.max_pass_s <= 2 * self.context_s:
            raise StreamerError("chunking needs context_s ≥ 0 and max_pass_s > 2 × context_s")


class SegmentDecoder:
    """accept(float32 samples)… then finish() → words, times relative to the segment's first sample."""

    def __init__(self, model, settings: ChunkSettings = ChunkSettings()):
        self.model = model
        stride = model.geometry.stride_samples
        rate = model.geometry.sample_rate
        self.window_samples = int(settings.max_pass_s * rate) // stride * stride
        self.context_samples = int(settings.context_s * rate) // stride * stride
        self._audio = np.zeros(0, dtype=np.float32)
        self._audio_start = 0  # segment sample index of _audio[0]
        self._kept_until = 0  # segment sample index up to which frames are kept
        self._ids: list[np.ndarray] = []
        self._probs: list[np.ndarray] = []

    def accept(self, samples: np.ndarray) -> None:
        self._audio = np.concatenate([self._audio, np.asarray(samples, dtype=np.float32)])
        while self._audio_start + len(self._audio) - self._window_start() > self.window_samples:
            self._run_chunk(final=False)

    def finish(self) -> list[Word]:
        if len(self._audio) and self._audio_start + len(self._audio) > self._kept_until:
            self._run_chunk(final=True)
        if not self._ids:
            return []
        geometry = self.model.geometry
        return words_from_path(np.concatenate(self._ids), np.concatenate(self._probs), self.model.vocab, geometry.frame_s)

    def _window_start(self) -> int:
        return max(0, self._kept_until - self.context_samples)

    def _run_chunk(self, final: bool) -> None:
        stride = self.model.geometry.stride_samples
        start = self._window_start()
        end = self._audio_start + len(self._audio) if final else start + self.window_samples
        audio = self._audio[start - self._audio_start : end - self._audio_start]
        (logits,) = self.model.logits([self.model.geometry.pad_to_receptive_field(audio)])
        first = (self._kept_until - start) // stride
        keep_until = len(logits) if final else (end - self.context_samples - start) // stride
        ids, probs = best_path(logits[first:keep_until])
        self._ids.append(ids)
        self._probs.append(probs)
        self._kept_until = start + keep_until * stride
        drop = max(0, self._window_start() - self._audio_start)
        self._audio, self._audio_start = self._audio[drop:], self._audio_start + drop
