"""Microphone source (sounddevice/PortAudio): 16 kHz mono int16 blocks from a live input device.

The device is opened when a ``Microphone`` is made (a missing device fails at once, before any model
loads) and started when its blocks are read. PortAudio's thread puts blocks into a ``BlockQueue``;
each comes out with how long it waited, which the overload policy (``streamer.driver.overload``)
counts when recognition is slower than real time: then newer audio is skipped as silence, so lag
stays bounded and caption times stay on the audio's clock.
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
    def __init__(self, device: str | None, block_samples: int):
        sd = _sounddevice()
        self.block_samples = block_samples
        self._blocks = BlockQueue(block_samples)
        try:
            self._stream = sd.InputStream(samplerate=SAMPLE_RATE, channels=1, dtype="int16", blocksize=block_samples,
                                          device=parse_device(device), callback=self._callback)
        except (ValueError, sd.PortAudioError) as exc:
            what = f"input device {device!r}" if device is not None else "the default input device"
            raise StreamerError(f"cannot open {what} at 16 kHz mono ({exc}); see streamer mic --list-devices") from None

    def _callback(self, indata, frames, time, status) -> None:  # PortAudio's thread: no work here
        self._blocks.put(indata[:, 0].copy())

    def blocks(self, stop: threading.Event,
               on_gap: Callable[[float], None] = lambda s: None) -> Iterator[tuple[np.ndarray, float]]:
        """(block, seconds it waited) as the device delivers them until stop is set; audio dropped beyond the
        queue's HARD_CAP_S comes as silence (on_gap told)."""
        self._stream.start()
        try:
            while not stop.is_set():
                item = self._blocks.get(timeout_s=0.1)
                if item is None:
                    continue
                gap, waited_s, block = item
                if gap:
                    on_gap(gap / SAMPLE_RATE)
                    for start in range(0, gap, self.block_samples):  # blocks of the usual size, as a device gives
                        yield np.zeros(min(self.block_samples, gap - start), np.int16), waited_s
                yield block, waited_s
        finally:
            self._stream.abort(ignore_errors=True)
            self._stream.close(ignore_errors=True)
