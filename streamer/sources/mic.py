"""Microphone source (sounddevice/PortAudio): 16 kHz mono int16 blocks from a live input device.

The device is opened when a ``Microphone`` is made (a missing device fails at once, before any model
loads) and started when its blocks are read. PortAudio's thread puts blocks into a bounded
``BlockQueue``; when recognition is slower than real time the queue fills, newer blocks are dropped
and replaced by silence of the same length, so lag never grows past ``max_lag_s`` and caption
times stay on the audio's clock.
"""

from __future__ import annotations

import threading
from typing import Callable, Iterator

import numpy as np

from ..model.geometry import SAMPLE_RATE
from ..errors import StreamerError
from .handoff import BlockQueue


def _sounddevice():
    try:
        import sounddevice
    except ImportError:
        raise StreamerError("the microphone needs sounddevice: pip install 'streamer[mic]'") from None
    except OSError:
        raise StreamerError("PortAudio is not installed: apt-get install libportaudio2 (or your OS's PortAudio)") from None
    return sounddevice


def list_devices() -> str:
    devices = _sounddevice().query_devices()
    return str(devices) if len(devices) else "no audio devices found"


def parse_device(device: str | None) -> int | str | None:
    return int(device) if device is not None and device.isdigit() else device


class Microphone:
    def __init__(self, device: str | None, block_samples: int, max_lag_s: float = 2.0):
        if max_lag_s <= 0:
            raise StreamerError(f"max_lag_s must be more than 0 seconds, not {max_lag_s}")
        sd = _sounddevice()
        self.block_samples = block_samples
        self._blocks = BlockQueue(int(max_lag_s * SAMPLE_RATE / block_samples))
        try:
            self._stream = sd.InputStream(samplerate=SAMPLE_RATE, channels=1, dtype="int16", blocksize=block_samples,
                                          device=parse_device(device), callback=self._callback)
        except (ValueError, sd.PortAudioError) as exc:
            what = f"input device {device!r}" if device is not None else "the default input device"
            raise StreamerError(f"cannot open {what} at 16 kHz mono ({exc}); see streamer mic --list-devices") from None

    def _callback(self, indata, frames, time, status) -> None:  # PortAudio's thread: no work here
        self._blocks.put(indata[:, 0].copy())

    def blocks(self, stop: threading.Event, on_gap: Callable[[float], None] = lambda s: None) -> Iterator[np.ndarray]:
        """Blocks as the device delivers them until stop is set; a gap of dropped audio comes as silence."""
        self._stream.start()
        try:
            while not stop.is_set():
                item = self._blocks.get(timeout_s=0.1)
                if item is None:
                    continue
                gap, block = item
                if gap:
                    on_gap(gap / SAMPLE_RATE)
                    yield np.zeros(gap, np.int16)
                yield block
        finally:
            self._stream.abort(ignore_errors=True)
            self._stream.close(ignore_errors=True)
