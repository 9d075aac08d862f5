"""Microphone source (sounddevice/PortAudio): 16 kHz mono int16 blocks from a live input device."""

from __future__ import annotations

import queue
from typing import Callable, Iterator

import numpy as np

from . import SAMPLE_RATE
from .errors import StreamerError


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


def microphone_blocks(device: str | None, block_samples: int, on_open: Callable[[], None] = lambda: None) -> Iterator[np.ndarray]:
    """Blocks as the device delivers them; a queue decouples the audio thread from recognition."""
    sd = _sounddevice()
    blocks: queue.Queue = queue.Queue()

    def callback(indata, frames, time, status):  # runs on PortAudio's thread: no work here
        blocks.put(indata[:, 0].copy())

    try:
        stream = sd.InputStream(samplerate=SAMPLE_RATE, channels=1, dtype="int16", blocksize=block_samples,
                                device=parse_device(device), callback=callback)
    except (ValueError, sd.PortAudioError) as exc:
        what = f"input device {device!r}" if device is not None else "the default input device"
        raise StreamerError(f"cannot open {what} at 16 kHz mono ({exc}); see streamer mic --list-devices") from None
    with stream:
        on_open()
        while True:
            yield blocks.get()
