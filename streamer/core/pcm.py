"""PCM input: blocks of any sample rate, int16 or float, into the 16 kHz int16 the VAD and model take.

float samples map to int16 as ``round(x × 32768)``, the inverse of ``to_float32`` (int16 / 32768), so
the same audio given as int16 or as float32 gives the same samples and the same captions. Floats a
little over full scale are clipped and counted (``clipped_samples``); a block peaking above
``FLOAT_PEAK_LIMIT`` is refused as wrongly scaled. Other rates are resampled with libsoxr (a
streaming filter: the same output for any block split).
"""

from __future__ import annotations

import numpy as np
import soxr

from ..model.geometry import SAMPLE_RATE
from ..errors import StreamerError

FLOAT_PEAK_LIMIT = 2.0  # above this a float block is not overshoot but int16-scale (or garbage) samples
RATE_RANGE_HZ = (4_000, 384_000)


def check_block(block: np.ndarray) -> np.ndarray:
    """A 1-D int16 or float32/float64 array of finite samples, else a clear error (nothing is kept)."""
    block = np.asarray(block)
    if block.ndim != 1:
        raise StreamerError(f"audio blocks must be 1-D mono sample arrays, got shape {block.shape}")
    if block.dtype == np.int16:
        return block
    if block.dtype not in (np.float32, np.float64):
        raise StreamerError(f"audio blocks must be int16 or float32 samples, got {block.dtype}")
    if not np.isfinite(block).all():
        raise StreamerError("audio block contains NaN or infinite samples")
    peak = float(np.abs(block).max()) if len(block) else 0.0
    if peak > FLOAT_PEAK_LIMIT:
        raise StreamerError(f"float samples must lie in [-1, 1]; this block peaks at {peak:g} "
                            "(pass int16-scale samples as an int16 array)")
    return block.astype(np.float32, copy=False)


def float_to_int16(samples: np.ndarray) -> tuple[np.ndarray, int]:
    """round(x × 32768) in int16's range, and how many samples had to be clipped to it."""
    scaled = np.rint(samples.astype(np.float64) * 32768.0)
    clipped = int(np.count_nonzero((scaled > 32767) | (scaled < -32768)))
    return np.clip(scaled, -32768, 32767).astype(np.int16), clipped


def to_float32(block: np.ndarray) -> np.ndarray:
    """int16 PCM → float32 in [-1, 1); float input is passed through as float32."""
    if block.dtype == np.int16:
        return block.astype(np.float32) / 32768.0
    return np.asarray(block, dtype=np.float32)


def check_rate(sample_rate: int) -> int:
    if not isinstance(sample_rate, (int, np.integer)) or not RATE_RANGE_HZ[0] <= sample_rate <= RATE_RANGE_HZ[1]:
        raise StreamerError(f"sample_rate must be a whole number of Hz from {RATE_RANGE_HZ[0]} to "
                            f"{RATE_RANGE_HZ[1]}, not {sample_rate!r}")
    return int(sample_rate)


class PcmInput:
    """Push interface: ``accept(block) -> int16 at 16 kHz``, ``finish()`` for the resampler's tail."""

    def __init__(self, sample_rate: int = SAMPLE_RATE):
        self.sample_rate = check_rate(sample_rate)
        self.reset()

    def reset(self) -> None:
        self.clipped_samples = 0
        self._resampler = None
        if self.sample_rate != SAMPLE_RATE:
            self._resampler = soxr.ResampleStream(self.sample_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")

    def accept(self, block: np.ndarray) -> np.ndarray:
        block = check_block(block)
        if self._resampler is None and block.dtype == np.int16:
            return block
        samples = to_float32(block)
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        return self._to_int16(samples)

    def finish(self) -> np.ndarray:
        if self._resampler is None:
            return np.zeros(0, np.int16)
        return self._to_int16(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True))

    def _to_int16(self, samples: np.ndarray) -> np.ndarray:
        pcm, clipped = float_to_int16(samples)
        self.clipped_samples += clipped
        return pcm
