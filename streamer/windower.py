"""Windower: cuts one growing speech segment into overlapping ``left | hop | right`` windows.

Pure and deterministic: windows depend only on the segment's audio, never on how it arrived, so
the frames they keep (and the finals built from them) are the same for any block split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import StreamerError

FRAME_MS = 20  # wav2vec2 frame stride: window edges fall on frame boundaries


@dataclass(frozen=True)
class WindowSettings:
    left_ms: int = 1000  # context before the kept part (seen by the model, frames not kept)
    hop_ms: int = 500  # kept part: frames that become stable; one window runs per hop of audio
    right_ms: int = 500  # context after the kept part; its frames are the partial's unstable tail
    final_window_s: float = 4.0  # a final re-decodes up to this much of its segment's end in one pass
    # (0: only the audio after the stable frames, with left context: finals from the stitched windows)

    def __post_init__(self) -> None:
        for name in ("left_ms", "hop_ms", "right_ms"):
            value = getattr(self, name)
            if value < 0 or value % FRAME_MS:
                raise StreamerError(f"{name} must be a non-negative multiple of {FRAME_MS} ms, not {value}")
        if self.hop_ms == 0:
            raise StreamerError("hop_ms must be at least 20 ms")
        if self.final_window_s < 0:
            raise StreamerError("final_window_s must be ≥ 0 (0: finals from the stitched windows alone)")


@dataclass(frozen=True)
class Window:
    start_sample: int  # segment-relative first sample the model sees
    keep_from_sample: int  # frames from here on are kept...
    keep_to_sample: int  # ...up to here (stable); frames after it are the unstable tail
    audio: np.ndarray  # float32, the model's input


def samples(ms: float, rate: int) -> int:
    return int(round(ms * rate / 1000))


def window_at(audio: np.ndarray, keep_from: int, keep_to: int, left: int, right: int) -> Window:
    start = max(0, keep_from - left)
    return Window(start, keep_from, keep_to, audio[start : keep_to + right])


def next_window_end(stable_end: int, settings: WindowSettings, rate: int) -> int:
    """Samples the audio must reach before the window that keeps frames from stable_end on can run."""
    return stable_end + samples(settings.hop_ms, rate) + samples(settings.right_ms, rate)


def ready_windows(audio: np.ndarray, stable_end: int, settings: WindowSettings, rate: int) -> list[Window]:
    """Every window whose right context has fully arrived, in order, from stable_end on."""
    left, hop, right = (samples(settings.left_ms, rate), samples(settings.hop_ms, rate), samples(settings.right_ms, rate))
    windows = []
    while next_window_end(stable_end, settings, rate) <= len(audio):
        windows.append(window_at(audio, stable_end, stable_end + hop, left, right))
        stable_end += hop
    return windows


def final_window(audio: np.ndarray, stable_end: int, settings: WindowSettings, rate: int, stride: int) -> Window:
    """The segment's last window: its end in one pass, up to final_window_s; a short segment whole.

    Frames before ``keep_from_sample`` are taken from the stable windows; it never lies past the
    stable frames there are (nor past the audio, which a cut may have shortened).
    """
    left = samples(settings.left_ms, rate)
    span = int(settings.final_window_s * rate)
    keep_from = max(0, len(audio) - span + left) // stride * stride
    keep_from = min(keep_from, stable_end, len(audio) // stride * stride)
    start = max(0, keep_from - left) if keep_from else 0
    return Window(start, keep_from, len(audio), audio[start:])
