"""One VAD speech segment being recognized: its audio, its pauses, both passes and its open caption.

A segment owns its commit life cycle: it plans its next commit (``plan_commit``), hands it out once
(``take_commit``), and applies or postpones it when its logits come (``apply_commit``); its partial
frames and captions change only through its own methods. ``streamer.core.stream`` asks and turns what
it is told into events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .pcm import to_float32
from .stitcher import Caption, FrameTrack, cut_between_words
from .vad import SpeechAudio
from ..text.incremental import IncrementalBeam
from .windower import CommitPass, PartialPass, Window, kept_frames


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

    def __init__(self, index: int, start_sample: int, info, settings, decoder=None):
        """info: the model's ModelInfo; settings: StreamSettings; decoder: a LexiconLM (the segment runs one
        incremental beam search over it), or None for greedy decoding."""
        self.index, self.start_sample = index, start_sample
        self.stride, self.vocab, self.frame_s = info.geometry.stride_samples, info.vocab, info.geometry.frame_s
        self.audio = AudioBuffer()
        self.pauses = PauseFinder(None if settings.commit.pause_ms is None
                                  else settings.commit.pause_ms * info.geometry.sample_rate // 1000,
                                  settings.vad.frame_samples)
        self.partials = None if settings.window is None else PartialPass(settings.window, info.geometry)
        self.commits = CommitPass(settings.commit, info.geometry)
        self.track = FrameTrack(info.vocab.delimiter_id)  # first-pass frames
        self.caption = Caption(0, info.vocab, info.geometry.frame_s, beam=decoder is not None)
        self.beam = None if decoder is None else IncrementalBeam(decoder)  # fed each commit's frames once
        self.commit: Request | None = None  # the next commit, until it is delivered
        self.commit_taken = False
        self.ended = False
        self.decoded_end = 0  # end of the audio the model has seen so far

    @property
    def length(self) -> int:
        return self.audio.length

    @property
    def commit_waiting(self) -> bool:
        """A planned commit that no driver has taken yet."""
        return self.commit is not None and not self.commit_taken

    def add(self, event: SpeechAudio) -> None:
        self.audio.append(to_float32(event.samples))
        self.pauses.add(event.voiced, len(event.samples))

    def end(self) -> None:
        """The VAD closed the segment: no more audio comes."""
        self.ended = True

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

    def plan_commit(self) -> str:
        """Plan the next commit if none is planned: "waiting" (one is planned, or none is due yet), "done"
        (the segment ended and everything is committed) or "silent" (it ended in silence: committed to the
        end without the model, no words to find in it)."""
        if self.commit is not None:
            return "waiting"
        window = self.next_commit()
        if window is None:
            return "done" if self.ended else "waiting"
        if window.kind == "final" and self.pauses.voiced_end <= window.keep_from:
            self.commits.advance(self.length)
            self.finish_beam()
            return "silent"
        self.commit, self.commit_taken = self.request(window), False
        return "waiting"

    def take_commit(self) -> Request:
        self.commit_taken = True
        return self.commit

    def request(self, window: Window) -> Request:
        return Request(self.index, window, self.audio.slice(window.start_sample, window.end_sample),
                       self.audio.stats(window.end_sample))

    def urgency(self, commits: bool = True) -> int | None:
        """0: a commit that may end a caption waits; 1: a partial is due; 2: a commit in running speech
        waits; None: nothing to run (see Stream.next_request). commits=False: partials only."""
        ready = commits and self.commit_waiting
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

    def apply_partial(self, window: Window, ids: np.ndarray, probs: np.ndarray) -> None:
        """A first-pass window's kept frames become the partial's tail."""
        self.decoded_end = max(self.decoded_end, window.end_sample)
        first, _ = kept_frames(window, len(ids), self.stride)
        self.track.write(window.keep_from // self.stride, ids[first:], probs[first:])

    def apply_commit(self, window: Window, logits: np.ndarray, ids: np.ndarray,
                     probs: np.ndarray) -> tuple[int, bool] | None:
        """Commit the window's kept frames up to its cut: (the cut's sample, whether it fell between words).
        None: a commit in speech found no word end to cut at and waits RETRY_MS more (nothing committed; its
        frames show as the partial's tail)."""
        self.decoded_end = max(self.decoded_end, window.end_sample)
        first, last = kept_frames(window, len(ids), self.stride)
        self.commit = None
        if window.kind == "commit" and self.beam is not None:  # the beam search carries words across its feeds:
            cut, at_word_boundary = last, False  # every kept frame is committed (a caption ends after a stable word)
        elif window.kind == "commit":
            cut = self._cut_in_speech(window, ids, probs, first, last)
            if cut is None and self.vocab.text_mask()[ids[first:last]].any() and self.commits.postpone(window):
                self.show_tail(window, window.keep_from, ids[first:], probs[first:])
                return None
            if cut is None:  # waited as long as a word may last: the latest word end, sure or not
                cut = self._cut_in_speech(window, ids, probs, first, last, sure=False)
            at_word_boundary, cut = cut is not None, last if cut is None else cut
        else:  # a pause is silence, a final the end of the speech: both end words
            cut, at_word_boundary = last, True
        cut_sample = self.length if window.kind == "final" else window.start_sample + cut * self.stride
        if self.beam is None:
            self.caption.append(ids[first:cut], probs[first:cut])
            committed_end = self.caption.first_frame + self.caption.n_frames
        else:
            self._decode(window.kind, logits[first:cut])
            committed_end = self.beam.fed_frames
        if window.kind != "final" and committed_end != cut_sample // self.stride:
            raise AssertionError(f"committed frames end at {committed_end}, the cut at frame {cut_sample // self.stride}")
        self._advance(cut_sample)
        if window.kind == "commit":  # its right context: the partial's tail
            self.show_tail(window, cut_sample, ids[cut:], probs[cut:])
        return cut_sample, at_word_boundary

    def _decode(self, kind: str, logits: np.ndarray) -> None:
        """Committed frames into the beam search; the words that became stable into the caption. A pause or the
        end of the segment ends the search, every word so far stable; after a pause a new one starts."""
        words = self.beam.feed(logits)
        if kind != "commit":
            words += self.beam.end()
        if kind == "pause":
            self.beam = IncrementalBeam(self.beam.lm, first_frame=self.beam.fed_frames)
        self.caption.add_words(words)

    def finish_beam(self) -> None:
        """The segment ends without more frames (in silence, or the stream failed): the beam search's words
        not yet stable become the caption's."""
        if self.beam is not None:
            self.caption.add_words(self.beam.end())

    def beam_tail(self) -> list:
        """The best beam's words that are not yet stable (none with greedy decoding)."""
        return [] if self.beam is None else self.beam.tail()

    @property
    def committed_frame(self) -> int:
        """The segment's frames before this are committed."""
        return self.commits.committed_end // self.stride

    def _cut_in_speech(self, window: Window, ids: np.ndarray, probs: np.ndarray, first: int, last: int,
                       sure: bool = True) -> int | None:
        """Where a commit in speech cuts (a frame of the window): the latest word end in its kept frames,
        from search_from on, whose delimiter the model is sure of (sure=False: any word end). A word end
        that is a near-tie is left to a later window, which sees the word with more context: cut there,
        a word offline reads whole would be split for good ("hundrev is")."""
        lo = (self.commits.search_from(window) - window.start_sample) // self.stride
        min_prob = self.commits.settings.word_end_prob if sure else 0.0
        return cut_between_words(ids, probs, self.vocab, lo, last, min_prob)

    def _advance(self, cut_sample: int) -> None:
        self.commits.advance(cut_sample)
        if self.partials is not None:
            self.partials.skip_to(cut_sample)
        self.track.drop_before(cut_sample // self.stride)

    def show_tail(self, window: Window, from_sample: int, ids: np.ndarray, probs: np.ndarray) -> None:
        """A commit window's frames from from_sample on become the partial's tail, unless newer frames (a
        first pass's) are there already."""
        if window.end_sample // self.stride >= self.track.end:
            self.track.write(from_sample // self.stride, ids, probs)

    def restart_caption(self, cut_sample: int) -> None:
        """The open caption holds only silence so far: it starts at the cut instead."""
        self.caption.restart_at(cut_sample // self.stride)

    def close_caption(self, cut_sample: int) -> Caption:
        """The open caption ends at the cut and the next one starts there; returns the one that ended."""
        ended, self.caption = self.caption, self.caption.successor(cut_sample // self.stride)
        return ended

    def drop_unneeded_audio(self) -> None:
        keep = self.commits.committed_end - self.commits.left
        if self.partials is not None:
            keep = min(keep, self.partials.next_keep - self.partials.left)
        self.audio.drop_before(keep)
