"""VAD gate: webrtcvad on fixed frames, with pre-roll and hangover.

Push interface, no I/O: ``accept(int16 block) -> events``, ``finish() -> events``. Events are
``SpeechAudio`` (samples of the current segment, in order, starting at ``start_sample`` of the
stream, with webrtcvad's decision for each frame of them) and ``SpeechEnd``. A segment lasts as
long as the speech does: a monologue is one segment, and the stream core commits and captions it
in pieces at pauses and word boundaries (``streamer.core.stream``), so the gate never cuts speech.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import webrtcvad

from ..model.geometry import SAMPLE_RATE
from ..errors import StreamerError

FRAME_MS_ALLOWED = (10, 20, 30)


@dataclass(frozen=True)
class VadSettings:
    enabled: bool = True  # False: always-on audio, everything is speech
    frame_ms: int = 30
    aggressiveness: int = 2  # webrtcvad: 0 (least) .. 3 (most aggressive filtering of non-speech)
    pre_roll_ms: int = 300  # audio kept before the onset so word starts are not clipped
    onset_ms: int = 150  # voiced audio in a row that opens a segment (a click gives ~100 ms)
    hangover_ms: int = 450  # unvoiced audio in a row that closes a segment (kept in it)

    def __post_init__(self) -> None:
        if self.frame_ms not in FRAME_MS_ALLOWED:
            raise StreamerError(f"VAD frame_ms must be one of {FRAME_MS_ALLOWED}, not {self.frame_ms}")
        if self.aggressiveness not in range(4):
            raise StreamerError(f"VAD aggressiveness must be 0, 1, 2 or 3, not {self.aggressiveness}")
        if min(self.pre_roll_ms, self.onset_ms, self.hangover_ms) < 0:
            raise StreamerError("VAD pre_roll_ms, onset_ms and hangover_ms must not be negative")

    @property
    def frame_samples(self) -> int:
        return SAMPLE_RATE * self.frame_ms // 1000

    def frames(self, ms: float) -> int:
        return max(1, round(ms / self.frame_ms))


@dataclass(frozen=True)
class SpeechAudio:
    segment: int
    start_sample: int  # of the stream
    samples: np.ndarray  # int16
    voiced: np.ndarray  # bool, webrtcvad's decision per frame of samples (a last short frame: False)


@dataclass(frozen=True)
class SpeechEnd:
    segment: int
    end_sample: int  # exclusive: the segment is [its first start_sample, end_sample)


class VadGate:
    def __init__(self, settings: VadSettings = VadSettings()):
        self.settings = settings
        self._vad = None
        if settings.enabled:
            self._vad = webrtcvad.Vad(settings.aggressiveness)
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next sample is sample 0 of a new stream."""
        self._carry = np.zeros(0, dtype=np.int16)
        self._next_sample = 0  # stream position of the first sample in _carry
        self._segment = 0
        self._in_speech = False
        self._voiced_run = 0
        self._unvoiced_run = 0
        self._pending: deque[tuple[np.ndarray, bool]] = deque(maxlen=self._pending_frames())

    @property
    def undecided_from(self) -> int:
        """The first sample a segment that has not opened yet could still start at (pre-roll and onset
        frames held back, and the part of a frame not yet judged)."""
        held = sum(len(frame) for frame, _ in self._pending) if not self._in_speech else 0
        return self._next_sample - held

    def _pending_frames(self) -> int:
        s = self.settings
        return s.frames(s.pre_roll_ms) + s.frames(s.onset_ms)

    def accept(self, block: np.ndarray) -> list:
        """16 kHz mono int16 samples (streamer.core.pcm.PcmInput makes them from any rate or float)."""
        block = np.asarray(block)
        if block.dtype != np.int16 or block.ndim != 1:
            raise StreamerError(f"the VAD takes 1-D int16 blocks at 16 kHz, got {block.dtype} {block.shape}: "
                                "convert other audio with streamer.core.pcm.PcmInput")
        self._carry = np.concatenate([self._carry, block]) if len(self._carry) else block
        n = self.settings.frame_samples
        events: list = []
        usable = len(self._carry) // n * n
        for offset in range(0, usable, n):
            events += self._frame(self._carry[offset : offset + n])
        self._carry = self._carry[usable:].copy()
        return events

    def finish(self) -> list:
        """End of stream: the open segment (if any) ends here, including the last partial frame."""
        events: list = []
        if self._in_speech:
            if len(self._carry):
                events.append(SpeechAudio(self._segment, self._next_sample, self._carry, np.zeros(1, bool)))
            events.append(SpeechEnd(self._segment, self._next_sample + len(self._carry)))
            self._segment += 1
        self._in_speech = False
        self._next_sample += len(self._carry)
        self._carry = np.zeros(0, dtype=np.int16)
        self._pending.clear()
        return events

    def _is_speech(self, frame: np.ndarray) -> bool:
        return self._vad is None or self._vad.is_speech(frame.tobytes(), SAMPLE_RATE)

    def _frame(self, frame: np.ndarray) -> list:
        voiced = self._is_speech(frame)
        start = self._next_sample
        self._next_sample += len(frame)
        if self._in_speech:
            return self._speech_frame(frame, voiced, start)
        self._pending.append((frame, voiced))
        self._voiced_run = self._voiced_run + 1 if voiced else 0
        if self._voiced_run < self.settings.frames(self.settings.onset_ms) and self._vad is not None:
            return []
        return [self._open()]

    def _open(self) -> SpeechAudio:
        frames, flags = zip(*self._pending)
        self._pending.clear()
        self._in_speech, self._unvoiced_run = True, 0
        audio = np.concatenate(frames)
        return SpeechAudio(self._segment, self._next_sample - len(audio), audio, np.array(flags, bool))

    def _speech_frame(self, frame: np.ndarray, voiced: bool, start: int) -> list:
        events: list = [SpeechAudio(self._segment, start, frame, np.array([voiced]))]
        self._unvoiced_run = 0 if voiced else self._unvoiced_run + 1
        if self._vad is not None and self._unvoiced_run >= self.settings.frames(self.settings.hangover_ms):
            events.append(SpeechEnd(self._segment, self._next_sample))
            self._segment += 1
            self._in_speech, self._voiced_run = False, 0
        return events
