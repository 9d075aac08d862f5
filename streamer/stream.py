"""Streaming recognition: VAD gate → windower → model → stitcher → partial and final events.

A ``Recognizer`` holds the shared model and settings; ``recognizer.stream()`` gives one ``Stream``
per audio stream, with a push interface and no I/O: ``accept(block) -> events``,
``finish() -> events`` (flush), ``reset()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import SAMPLE_RATE
from .ctc import Word
from .events import Final, Partial
from .offline import shift
from .pcm import PcmInput, to_float32
from .stitcher import Stitcher
from .vad import SpeechAudio, SpeechEnd, VadGate, VadSettings
from .windower import Window, WindowSettings, final_window, next_window_end, ready_windows


@dataclass(frozen=True)
class StreamSettings:
    vad: VadSettings = field(default_factory=lambda: VadSettings(max_segment_s=20.0))
    window: WindowSettings = WindowSettings()


class Recognizer:
    """One model (an OnnxModel) shared by any number of streams."""

    def __init__(self, model, settings: StreamSettings = StreamSettings()):
        self.model, self.settings = model, settings

    def stream(self, sample_rate: int = SAMPLE_RATE) -> "Stream":
        """A new stream of mono audio at sample_rate (resampled to the model's 16 kHz)."""
        return Stream(self, sample_rate)

    def logits(self, window: Window) -> np.ndarray:
        return self.model.logits([self.model.geometry.pad_to_receptive_field(window.audio)])[0]


class _Segment:
    """The audio of the speech segment being recognized, and its stitched frames."""

    def __init__(self, recognizer: Recognizer, start_sample: int):
        geometry = recognizer.model.geometry
        self.start_sample = start_sample
        self._audio = np.zeros(0, np.float32)
        self._pending: list[np.ndarray] = []  # blocks not yet joined to _audio
        self.length = 0  # samples so far
        self.stitcher = Stitcher(recognizer.model.vocab, geometry.stride_samples, geometry.frame_s)
        self.number: int | None = None  # caption segment number, given with its first text
        self.shown = ""  # the last partial text sent

    def append(self, samples: np.ndarray) -> None:
        self._pending.append(samples)
        self.length += len(samples)

    @property
    def audio(self) -> np.ndarray:
        """All samples so far; blocks are joined only when asked (once per hop, not per block)."""
        if self._pending:
            self._audio = np.concatenate([self._audio, *self._pending])
            self._pending = []
        return self._audio

    def truncate(self, n_samples: int) -> None:
        self._audio, self._pending = self.audio[:n_samples], []
        self.length = len(self._audio)


class Stream:
    def __init__(self, recognizer: Recognizer, sample_rate: int = SAMPLE_RATE):
        self.recognizer = recognizer
        self.pcm = PcmInput(sample_rate)
        self.gate = VadGate(recognizer.settings.vad)
        self.reset()

    def reset(self) -> None:
        """Drop all state: the next block is the start of a new stream (times from 0, segments from 0)."""
        self.pcm.reset()
        self.gate.reset()
        self._segment: _Segment | None = None
        self._count = 0

    @property
    def _rate(self) -> int:
        return self.recognizer.model.geometry.sample_rate

    @property
    def clipped_samples(self) -> int:
        """float samples beyond full scale so far, clipped to it (a sign of input gain set too high)."""
        return self.pcm.clipped_samples

    def accept(self, block: np.ndarray) -> list:
        """Take a block of mono audio at the stream's sample rate, int16 or float32 in [-1, 1], any length;
        return new events. A bad block raises StreamerError and changes nothing."""
        return self._handle(self.gate.accept(self.pcm.accept(block)))

    def finish(self) -> list:
        """End of audio: the open segment becomes final."""
        return self._handle(self.gate.accept(self.pcm.finish()) + self.gate.finish())

    def _handle(self, vad_events) -> list:
        events = []
        for event in vad_events:
            if isinstance(event, SpeechAudio):
                events += self._speech(event)
            elif isinstance(event, SpeechEnd):
                events += self._end(event)
        return events

    def _speech(self, event: SpeechAudio) -> list:
        if self._segment is None:
            self._segment = _Segment(self.recognizer, event.start_sample)
        segment = self._segment
        segment.append(to_float32(event.samples))
        settings = self.recognizer.settings.window
        if segment.length < next_window_end(segment.stitcher.stable_end, settings, self._rate):
            return []  # no window ready: leave the blocks unjoined
        windows = ready_windows(segment.audio, segment.stitcher.stable_end, settings, self._rate)
        for window in windows:
            segment.stitcher.add(window, self.recognizer.logits(window))
        return self._partial(segment) if windows else []

    def _partial(self, segment: _Segment) -> list:
        text, stable_chars = segment.stitcher.partial()
        if text == segment.shown:
            return []
        segment.shown = text
        start = segment.start_sample / self._rate
        return [Partial(self._number(segment), text, stable_chars, start, start + segment.length / self._rate)]

    def _number(self, segment: _Segment) -> int:
        """Caption segments are numbered from 0 as they first show text."""
        if segment.number is None:
            segment.number, self._count = self._count, self._count + 1
        return segment.number

    def _end(self, event: SpeechEnd) -> list:
        segment, self._segment = self._segment, None
        if segment is None:
            return []
        segment.truncate(event.end_sample - segment.start_sample)
        if segment.length == 0:
            return []
        geometry = self.recognizer.model.geometry
        window = final_window(segment.audio, segment.stitcher.stable_end, self.recognizer.settings.window,
                              self._rate, geometry.stride_samples)
        words = segment.stitcher.final(window, self.recognizer.logits(window))
        return self._final(segment, words, event.end_sample / self._rate)

    def _final(self, segment: _Segment, words: list[Word], end_s: float) -> list:
        start_s = segment.start_sample / self._rate
        if not words:  # nothing said: clear a partial that was shown, send no empty final
            return [Partial(segment.number, "", 0, start_s, end_s)] if segment.shown else []
        return [Final(self._number(segment), shift(words, start_s), start_s, end_s)]
