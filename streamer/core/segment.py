"""One VAD speech segment being recognized: its audio, its pauses, both passes and its open caption.

Bookkeeping only; ``streamer.core.stream`` decides what to run and turns results into events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.geometry import SAMPLE_RATE
from .pcm import to_float32
from .stitcher import Caption, FrameTrack
from .vad import SpeechAudio
from .windower import CommitPass, PartialPass, Window


@dataclass(frozen=True)
class Request:
    """One model run a stream needs: a window of one of its speech segments."""

    segment: int  # the stream's VAD segment number
    window: Window
    audio: np.ndarray  # float32 16 kHz, what the model sees
    stats: tuple[float, float]  # mean and variance of the segment's audio up to the window's end


class AudioBuffer:
    """A segment's float32 samples from ``origin`` on (older ones dropped once no window needs them), and
    running sums of all of them, so any window is normalized with the statistics of the segment up to
    its end: a segment's last window sees what offline's one pass over it sees."""

    def __init__(self):
        self.origin, self._audio, self._pending, self.length = 0, np.zeros(0, np.float32), [], 0
        self._sums: list[tuple[int, float, float]] = [(0, 0.0, 0.0)]  # (position, Σx, Σx²) at block ends

    def append(self, samples: np.ndarray) -> None:
        self._pending.append(samples)
        self.length += len(samples)
        _, total, squares = self._sums[-1]
        wide = samples.astype(np.float64)
        self._sums.append((self.length, total + float(wide.sum()), squares + float(np.dot(wide, wide))))

    def stats(self, end: int) -> tuple[float, float]:
        """Mean and variance of samples [0, end)."""
        at = max(i for i, (position, _, _) in enumerate(self._sums) if position <= end) if end else 0
        position, total, squares = self._sums[at]
        rest = self.slice(position, end).astype(np.float64)
        n = max(1, end)
        mean = (total + float(rest.sum())) / n
        return mean, max(0.0, (squares + float(np.dot(rest, rest))) / n - mean * mean)

    def slice(self, start: int, end: int) -> np.ndarray:
        if self._pending:  # blocks are joined only when a window needs them
            self._audio, self._pending = np.concatenate([self._audio, *self._pending]), []
        if start < self.origin:
            raise AssertionError(f"samples from {start} were dropped (kept from {self.origin})")
        return self._audio[start - self.origin : end - self.origin]

    def drop_before(self, sample: int) -> None:
        self.slice(self.origin, self.origin)
        drop = min(max(0, sample - self.origin), len(self._audio))
        self._audio, self.origin = self._audio[drop:], self.origin + drop
        while len(self._sums) > 1 and self._sums[1][0] <= self.origin:  # no window ends before origin
            self._sums.pop(0)


class PauseFinder:
    """Pauses inside a speech segment from the VAD's frame decisions: a run of unvoiced frames at least
    pause_samples long after voiced audio, as (start_sample, sample at which it was that long)."""

    def __init__(self, pause_samples: int | None, frame_samples: int):
        self.pause, self.frame = pause_samples, frame_samples
        self.found: list[tuple[int, int]] = []
        self.position, self.voiced_end = 0, 0  # samples seen; end of the last voiced frame
        self._run_start: int | None = None
        self._reported = False

    def add(self, flags: np.ndarray, n_samples: int) -> None:
        for i, voiced in enumerate(flags.tolist()):
            end = self.position + min(self.frame, n_samples - i * self.frame)
            if voiced:
                self._run_start, self.voiced_end = None, end
            elif self._run_start is None:
                self._run_start, self._reported = self.position, False
            if (self._run_start is not None and self.pause is not None and not self._reported
                    and self.voiced_end > 0 and end - self._run_start >= self.pause):
                self.found.append((self._run_start, end))
                self._reported = True
            self.position = end

    def first_from(self, sample: int) -> tuple[int, int] | None:
        self.found = [pause for pause in self.found if pause[0] >= sample]
        return self.found[0] if self.found else None


class Segment:
    """One VAD speech segment being recognized: its audio, pauses, both passes and its open caption."""

    def __init__(self, index: int, start_sample: int, model, settings, decoder=None):
        """model: an OnnxModel; settings: StreamSettings; decoder: a BeamDecoder, or None for greedy decoding."""
        self.index, self.start_sample = index, start_sample
        self.stride = model.geometry.stride_samples
        self.audio = AudioBuffer()
        self.pauses = PauseFinder(None if settings.commit.pause_ms is None
                                  else settings.commit.pause_ms * SAMPLE_RATE // 1000, settings.vad.frame_samples)
        self.partials = None if settings.window is None else PartialPass(settings.window, model.geometry)
        self.commits = CommitPass(settings.commit, model.geometry)
        self.track = FrameTrack(model.vocab.delimiter_id)  # first-pass frames
        self.caption = Caption(0, model.vocab, model.geometry.frame_s, decoder)
        self.lm_state = None  # a beam decoder's language model state after the words committed so far
        self.commit: Request | None = None  # the next commit, until it is delivered
        self.commit_taken = False
        self.ended = False
        self.decoded_end = 0  # end of the audio the model has seen so far

    @property
    def length(self) -> int:
        return self.audio.length

    def add(self, event: SpeechAudio) -> None:
        self.audio.append(to_float32(event.samples))
        self.pauses.add(event.voiced, len(event.samples))

    def next_commit(self) -> Window | None:
        """The second pass's next window: at the first pause after the committed frames, or when enough
        speech waits, or at the end; a function of the audio alone."""
        commits = self.commits
        if self.ended and commits.committed_end >= self.length:
            return None
        pause = self.pauses.first_from(commits.committed_end)
        if pause is not None and pause[1] <= commits.due_at():
            return commits.at_pause(*pause)
        if self.length >= commits.due_at():
            return commits.in_speech()
        return commits.at_end(self.length) if self.ended else None

    def request(self, window: Window) -> Request:
        return Request(self.index, window, self.audio.slice(window.start_sample, window.end_sample),
                       self.audio.stats(window.end_sample))

    def urgency(self, commits: bool = True) -> int | None:
        """0: a commit that may end a caption waits; 1: a partial is due; 2: a commit in running speech
        waits; None: nothing to run (see Stream.next_request). commits=False: partials only."""
        ready = commits and self.commit is not None and not self.commit_taken
        if ready and self.commit.window.kind != "commit":
            return 0
        if self.partials is not None and not self.ended and self.partials.due(self.length) > 0:
            return 1
        return 2 if ready else None

    def next_partial(self) -> Request | None:
        if self.partials is None or self.ended:
            return None
        while (window := self.partials.window(self.length)) is not None:
            if window.keep_to > self.commits.committed_end:
                return self.request(window)
        return None

    def show_tail(self, window: Window, from_sample: int, ids: np.ndarray, probs: np.ndarray) -> None:
        """A commit window's frames from from_sample on become the partial's tail, unless newer frames (a
        first pass's) are there already."""
        if window.end_sample // self.stride >= self.track.end:
            self.track.write(from_sample // self.stride, ids, probs)

    def drop_unneeded_audio(self) -> None:
        keep = self.commits.committed_end - self.commits.left
        if self.partials is not None:
            keep = min(keep, self.partials.next_keep - self.partials.left)
        self.audio.drop_before(keep)
