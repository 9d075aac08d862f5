"""VAD gate: webrtcvad on fixed frames, with pre-roll, hangover and a maximum segment length.

Push interface, no I/O: ``accept(int16 block) -> events``, ``finish() -> events``. Events are
``SpeechAudio`` (samples of the current segment, in order, starting at ``start_sample`` of the
stream) and ``SpeechEnd``. When a segment reaches ``max_segment_s`` it is cut at its quietest
point: ``SpeechEnd(end_sample=cut)`` tells the consumer to drop what it got past the cut, and the
next segment starts with that audio again, so no sample is lost or doubled.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from . import SAMPLE_RATE
from .errors import StreamerError

FRAME_MS_ALLOWED = (10, 20, 30)


@dataclass(frozen=True)
class VadSettings:
    enabled: bool = True  # False: always-on audio, everything is speech (cut only at the cap)
    frame_ms: int = 30
    aggressiveness: int = 2  # webrtcvad: 0 (least) .. 3 (most aggressive filtering of non-speech)
    pre_roll_ms: int = 300  # audio kept before the onset so word starts are not clipped
    onset_ms: int = 150  # voiced audio in a row that opens a segment (a click gives ~100 ms)
    hangover_ms: int = 450  # unvoiced audio in a row that closes a segment (kept in it)
    max_segment_s: float | None = 30.0  # cut longer speech at its quietest point; None: never
    cut_search_s: float = 10.0  # how far back from the cap the quietest point is looked for

    def __post_init__(self) -> None:
        if self.frame_ms not in FRAME_MS_ALLOWED:
            raise StreamerError(f"VAD frame_ms must be one of {FRAME_MS_ALLOWED}, not {self.frame_ms}")
        if self.aggressiveness not in range(4):
            raise StreamerError(f"VAD aggressiveness must be 0, 1, 2 or 3, not {self.aggressiveness}")
        if min(self.pre_roll_ms, self.onset_ms, self.hangover_ms) < 0:
            raise StreamerError("VAD pre_roll_ms, onset_ms and hangover_ms must not be negative")
        if self.max_segment_s is not None and self.max_segment_s < 2 * self.cut_search_s / 5:
            raise StreamerError("VAD max_segment_s must be at least 0.4 × cut_search_s")

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


@dataclass(frozen=True)
class SpeechEnd:
    segment: int
    end_sample: int  # exclusive: the segment is [its first start_sample, end_sample)
    cut: bool = False  # True when the segment hit max_segment_s


class VadGate:
    def __init__(self, settings: VadSettings = VadSettings()):
        self.settings = settings
        self._vad = None
        if settings.enabled:
            import webrtcvad

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
        self._pending: deque[np.ndarray] = deque(maxlen=self._pending_frames())
        self._segment_start = 0
        self._segment_frames: list[np.ndarray] = []  # kept only while max_segment_s is set

    def _pending_frames(self) -> int:
        s = self.settings
        return s.frames(s.pre_roll_ms) + s.frames(s.onset_ms)

    def accept(self, block: np.ndarray) -> list:
        """16 kHz mono int16 samples (streamer.pcm.PcmInput makes them from any rate or float)."""
        block = np.asarray(block)
        if block.dtype != np.int16 or block.ndim != 1:
            raise StreamerError(f"the VAD takes 1-D int16 blocks at 16 kHz, got {block.dtype} {block.shape}: "
                                "convert other audio with streamer.pcm.PcmInput")
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
                events.append(self._emit(self._carry))
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
        if self._in_speech:
            return self._speech_frame(frame, voiced)
        self._pending.append(frame)
        self._next_sample += len(frame)
        self._voiced_run = self._voiced_run + 1 if voiced else 0
        if self._voiced_run < self.settings.frames(self.settings.onset_ms) and self._vad is not None:
            return []
        return [self._open()]

    def _open(self) -> SpeechAudio:
        audio = np.concatenate(list(self._pending))
        self._pending.clear()
        self._in_speech, self._unvoiced_run = True, 0
        self._segment_start = self._next_sample - len(audio)
        self._segment_frames = []
        return self._emit(audio, self._segment_start)

    def _emit(self, audio: np.ndarray, start: int | None = None) -> SpeechAudio:
        start = self._segment_start + self._segment_length() if start is None else start
        if self.settings.max_segment_s is not None:
            self._segment_frames.append(audio)
        self._emitted_end = start + len(audio)
        return SpeechAudio(self._segment, start, audio)

    def _segment_length(self) -> int:
        return self._emitted_end - self._segment_start

    def _speech_frame(self, frame: np.ndarray, voiced: bool) -> list:
        events = [self._emit(frame)]
        self._next_sample += len(frame)
        self._unvoiced_run = 0 if voiced else self._unvoiced_run + 1
        if self._vad is not None and self._unvoiced_run >= self.settings.frames(self.settings.hangover_ms):
            events.append(SpeechEnd(self._segment, self._next_sample))
            self._segment += 1
            self._in_speech, self._voiced_run = False, 0
            return events
        cap = self.settings.max_segment_s
        if cap is not None and self._segment_length() >= cap * SAMPLE_RATE:
            events += self._cut()
        return events

    def _cut(self) -> list:
        audio = np.concatenate(self._segment_frames)
        cut = quietest_point(audio, self.settings.frame_samples, int(self.settings.cut_search_s * SAMPLE_RATE))
        end = SpeechEnd(self._segment, self._segment_start + cut, cut=True)
        self._segment += 1
        self._segment_start += cut
        self._segment_frames = []
        return [end, self._emit(audio[cut:], self._segment_start)]


def quietest_point(audio: np.ndarray, frame_samples: int, search_samples: int) -> int:
    """Frame boundary of least energy (smoothed over ~90 ms) in the last search_samples of audio."""
    n_frames = len(audio) // frame_samples
    energy = (audio[: n_frames * frame_samples].astype(np.float64).reshape(n_frames, frame_samples) ** 2).mean(1)
    smooth = np.convolve(energy, np.ones(3) / 3, mode="same")
    first = max(1, n_frames - search_samples // frame_samples)
    best = first + int(np.argmin(smooth[first:n_frames - 1])) if n_frames - 1 > first else n_frames - 1
    return best * frame_samples
