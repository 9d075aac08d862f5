"""Streaming recognition: PCM input → VAD gate → two passes of windows → stitcher → partial and final events.

A ``Recognizer`` holds the model's metadata (``ModelInfo``) and settings; ``recognizer.stream()`` gives
one ``Stream`` per audio stream. A stream is sans-I/O: it never runs the model itself.

    stream.feed(block) -> events            audio in, any length
    stream.next_request() -> Request|None   a window of audio the stream needs logits for (taken)
    stream.deliver(request, logits) -> events
    stream.fail(request, message) -> events the request cannot be run: an error event, the stream ends
    stream.end() -> events                  no more audio

A driver takes requests one at a time, runs them alone or batched with other streams', and hands
the logits back. The driver is ``streamer.driver.batcher.Batcher`` for every command
(``streamer.driver.captioner.Captioner`` wraps it for synchronous use). Requests come most urgent
first: what ends a caption, then the partial pass (one request covers every hop that waited, so a
busy driver gets fewer, wider partial windows), then commits in running speech. Finals depend only
on the audio, never on the driver or the block split.

Three tiers of text per caption: the partial's tail (first pass, may change), the stable prefix
(committed by the second pass with offline-sized context, never revised), and the final (the
caption's committed words, with times). A caption ends at a pause, at the end of a speech segment,
or in speech without pauses at the first word boundary committed after ``max_caption_s``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..model.geometry import SAMPLE_RATE
from ..text.ctc import Word, best_path, words_text
from ..text.decoder import DecoderSettings
from ..text.incremental import make_decoder
from ..errors import StreamerError
from .events import Error, Final, Partial
from .pcm import PcmInput
from .segment import Request, Segment
from .stitcher import Caption
from .vad import SpeechAudio, SpeechEnd, VadGate, VadSettings
from .windower import CommitSettings, Window, WindowSettings
from ..text.caption_text import CaptionText
from ..text.written import TextSettings, make_writer


@dataclass(frozen=True)
class StreamSettings:
    vad: VadSettings = VadSettings()
    window: WindowSettings | None = None  # a first pass of its own for partials; None: partials come from the
    # commits' right context (one pass: a commit runs every hop of speech anyway)
    commit: CommitSettings = CommitSettings()  # second pass (stable text, finals)
    max_caption_s: float = 10.0  # in speech without pauses a caption ends at the next word boundary after this
    decoder: DecoderSettings = DecoderSettings()  # greedy, or beam search with a language model (committed text)
    text: TextSettings = TextSettings()  # written form (digits, capitals, full stops) or the model's raw words

    def __post_init__(self) -> None:
        if not self.max_caption_s > 0:
            raise StreamerError(f"max_caption_s must be more than 0, not {self.max_caption_s}")


FLAT_SETTINGS = {  # the flat names of StreamSettings' fields that users set (CLI options, a client's config)
    "hop_ms": "both passes' hop: commits, and a first pass's windows when there is one",
    "commit_hop_ms": "commit.hop_ms", "commit_left_ms": "commit.left_ms", "commit_right_ms": "commit.right_ms",
    "pause_ms": "commit.pause_ms", "word_end_prob": "commit.word_end_prob", "max_caption_s": "max_caption_s",
    "vad_aggressiveness": "vad.aggressiveness", "vad_enabled": "vad.enabled",
    "first_pass": "a first pass of its own for partials (window), from first_pass_left/hop/right_ms",
    "first_pass_left_ms": "window.left_ms", "first_pass_hop_ms": "window.hop_ms", "first_pass_right_ms": "window.right_ms",
}


def with_flat_settings(base: StreamSettings, **flat) -> StreamSettings:
    """base with flat settings applied (names in FLAT_SETTINGS; what is left out keeps base's value): the one
    mapping of the command line's options and a websocket client's settings onto StreamSettings. Bad values
    raise StreamerError from the dataclass that checks them."""
    if not flat:
        return base
    unknown = sorted(set(flat) - set(FLAT_SETTINGS))
    if unknown:
        raise StreamerError(f"unknown stream settings {unknown}; known: {sorted(FLAT_SETTINGS)}")
    commit = {name: flat[f"commit_{name}"] for name in ("hop_ms", "left_ms", "right_ms") if f"commit_{name}" in flat}
    commit.update({name: flat[name] for name in ("pause_ms", "word_end_prob") if name in flat})
    window = base.window
    if flat.get("first_pass") is not None:
        window = WindowSettings() if flat["first_pass"] else None
    part = {name: flat[f"first_pass_{name}"] for name in ("left_ms", "hop_ms", "right_ms") if f"first_pass_{name}" in flat}
    if "hop_ms" in flat:
        commit["hop_ms"] = part["hop_ms"] = flat["hop_ms"]
    vad = {key: flat[name] for name, key in (("vad_aggressiveness", "aggressiveness"), ("vad_enabled", "enabled"))
           if name in flat}
    return replace(base, commit=replace(base.commit, **commit), vad=replace(base.vad, **vad),
                   window=None if window is None else replace(window, **part),
                   max_caption_s=flat.get("max_caption_s", base.max_caption_s))


class Recognizer:
    """One model's metadata and the settings shared by any number of streams."""

    def __init__(self, info, settings: StreamSettings = StreamSettings(), decoder=None):
        """info: the model's ModelInfo (geometry, vocab, manifest; an OnnxModel has them too); decoder: a
        LexiconLM to share (its language model loaded once); by default the one settings.decoder asks for is
        made here (None for greedy decoding). Each speech segment runs one incremental beam search over it."""
        self.info, self.settings = info, settings
        self.decoder = decoder if decoder is not None else make_decoder(info, settings.decoder)
        self.writer = make_writer(settings.text, settings.decoder.hotwords)

    def stream(self, sample_rate: int = SAMPLE_RATE) -> "Stream":
        """A new stream of mono audio at sample_rate (resampled to the model's 16 kHz)."""
        return Stream(self, sample_rate)


class Stream:
    def __init__(self, recognizer: Recognizer, sample_rate: int = SAMPLE_RATE):
        self.recognizer = recognizer
        self.settings = recognizer.settings
        self.pcm = PcmInput(sample_rate)
        self.gate = VadGate(recognizer.settings.vad)
        self.reset()

    def reset(self) -> None:
        """Drop all state: the next block is the start of a new stream (times from 0, captions from 0)."""
        self.pcm.reset()
        self.gate.reset()
        self._segments: dict[int, Segment] = {}
        self.text = CaptionText(self.recognizer.writer)
        self._count = 0
        self._dropped_hops = 0  # of segments that are done
        self.failed: str | None = None  # why the stream ended early (a request that could not be run)

    @property
    def _rate(self) -> int:
        return self.recognizer.info.geometry.sample_rate

    @property
    def clipped_samples(self) -> int:
        """float samples beyond full scale so far, clipped to it (a sign of input gain set too high)."""
        return self.pcm.clipped_samples

    # ---- sans-I/O
    def feed(self, block: np.ndarray) -> list:
        """Mono audio at the stream's sample rate, int16 or float32 in [-1, 1], any length. A bad block raises
        StreamerError and changes nothing; after a failure audio is ignored."""
        if self.failed:
            return []
        return self._vad_events(self.gate.accept(self.pcm.accept(block)))

    def end(self) -> list:
        if self.failed:
            return []
        return self._vad_events(self.gate.accept(self.pcm.finish()) + self.gate.finish())

    def next_request(self, commit_first: bool = False) -> Request | None:
        """The most urgent model run: a commit that may end a caption, then the partial pass, then a commit
        in running speech; older segments first among equals, and commits of the oldest segment only (a
        newer one's wait until it is done). commit_first: a waiting commit before any partial (a driver
        lets no commit wait behind partials for long). None when nothing waits."""
        waiting = self.waiting()
        if commit_first and waiting is not None and waiting[1]:
            return self._segments[min(self._segments)].take_commit()
        while (level := self.urgency()) is not None:
            segment = min((s for s in self._segments.values() if self._urgency(s) == level), key=lambda s: s.index)
            if level != 1:
                return segment.take_commit()
            if (partial := segment.next_partial()) is not None:
                return partial
        return None

    def waiting(self) -> tuple[int, bool] | None:
        """(urgency of the next request, whether a commit waits among them), or None when nothing waits."""
        level = self.urgency()
        if level is None:
            return None
        oldest = self._segments[min(self._segments)]
        return level, oldest.commit_waiting

    def fail(self, request: Request | None, message: str) -> list:
        """The request (or the stream's post-model work) failed for good: the stream ends here. Words already
        committed become a last final (stable text is never taken back); then an error event."""
        events = []
        if self.failed is None:
            self.failed = message
            events = self._flush_committed()
            self._segments.clear()
        return events + [Error("recognition_failed", f"recognition of this stream failed ({message}); it has "
                                                      "ended, and its captions so far stand")]

    def _flush_committed(self) -> list:
        events = []
        for segment in sorted(self._segments.values(), key=lambda s: s.index):
            try:
                segment.finish_beam()
                events += self._end_caption(segment, segment.committed_frame * segment.stride, at_pause=False)
            except Exception:  # noqa: BLE001 - the state that failed cannot make a final: keep what was sent
                break
        return [event for event in events if isinstance(event, Final)]

    def urgency(self) -> int | None:
        """How urgent this stream's next request is, without taking it: 0 (it may end a caption),
        1 (a partial), 2 (a commit in running speech), or None when it has nothing to run."""
        levels = [u for s in self._segments.values() if (u := self._urgency(s)) is not None]
        return min(levels, default=None)

    def _urgency(self, segment: Segment) -> int | None:
        """Commits come from the oldest segment only, so captions end in the order they were spoken even
        when a driver runs requests late; a newer segment's partials go on meanwhile."""
        return segment.urgency(commits=segment.index == min(self._segments))

    def lag_s(self) -> float:
        """How far the stream's captions trail the audio beyond what its settings make them wait (seconds):
        the audio received since the oldest commit waiting to be run became runnable. About one model
        call while the driver keeps up; it grows without bound when the driver cannot."""
        waiting = [s.length - s.commit.window.end_sample for s in self._segments.values() if s.commit is not None]
        return max(waiting, default=0) / self._rate

    def settled_s(self) -> float:
        """Audio time before which every caption is final and no new one can begin: the start of the oldest
        speech segment still open, or where the VAD could still open one."""
        open_from = [s.start_sample for s in self._segments.values()]
        return min(open_from + [self.gate.undecided_from]) / self._rate

    @property
    def dropped_hops(self) -> int:
        """Partial hops skipped because the driver fell behind (their audio is still committed)."""
        return self._dropped_hops + sum(s.partials.dropped_hops for s in self._segments.values() if s.partials)

    def deliver(self, request: Request, logits: np.ndarray) -> list:
        segment = self._segments.get(request.segment)
        if segment is None:  # the stream was reset meanwhile
            return []
        ids, probs = best_path(logits)
        if request.window.kind == "partial":
            segment.apply_partial(request.window, ids, probs)
            return self._partial(segment)
        return self._commit(segment, request.window, logits, ids, probs)

    # ---- inside
    def _forget(self, segment: Segment) -> None:
        if segment.partials is not None:
            self._dropped_hops += segment.partials.dropped_hops
        del self._segments[segment.index]

    def _vad_events(self, vad_events) -> list:
        touched: dict[int, Segment] = {}
        for event in vad_events:
            if isinstance(event, SpeechAudio):
                segment = self._segments.get(event.segment)
                if segment is None:
                    segment = self._segments[event.segment] = Segment(
                        event.segment, event.start_sample, self.recognizer.info, self.settings, self.recognizer.decoder)
                segment.add(event)
                touched[segment.index] = segment
            elif isinstance(event, SpeechEnd) and event.segment in self._segments:
                segment = self._segments[event.segment]
                segment.end()
                touched[segment.index] = segment
        events = []
        for segment in touched.values():
            events += self._schedule(segment)
        return events

    def _schedule(self, segment: Segment) -> list:
        """Have the segment plan its next commit; finish a segment whose rest is silent without the model."""
        step = segment.plan_commit()
        if step != "waiting":
            self._forget(segment)
        return self._end_caption(segment, segment.length, at_pause=True) if step == "silent" else []

    def _commit(self, segment: Segment, window: Window, logits: np.ndarray, ids: np.ndarray, probs: np.ndarray) -> list:
        outcome = segment.apply_commit(window, logits, ids, probs)
        if outcome is None:  # postponed: its frames show as the partial's tail
            return self._partial(segment) + self._schedule(segment)
        cut_sample, at_word_boundary = outcome
        events = self._caption_after_commit(segment, window.kind, at_word_boundary, cut_sample)
        if window.kind == "final":
            self._forget(segment)
            return events
        segment.drop_unneeded_audio()
        return events + self._schedule(segment)

    def _caption_after_commit(self, segment: Segment, kind: str, at_word_boundary: bool, cut_sample: int) -> list:
        caption = segment.caption
        if segment.beam is not None and kind == "commit":
            return self._beam_caption_after_commit(segment, cut_sample)
        length_s = (cut_sample - caption.first_frame * segment.stride) / self._rate
        long_enough = length_s >= self.settings.max_caption_s
        # a caption that found no word boundary for twice its length holds no speech (music, noise): cut it anyway
        if kind != "commit" or (at_word_boundary and long_enough) or length_s >= 2 * self.settings.max_caption_s:
            return self._end_caption(segment, cut_sample, at_pause=kind != "commit")
        if not caption.has_letters():
            segment.restart_caption(cut_sample)  # only silence so far: the caption starts later
        return self._partial(segment)

    def _beam_caption_after_commit(self, segment: Segment, cut_sample: int) -> list:
        """Beam search in running speech: a caption ends right after a stable word once it is long enough, so
        where it ends never changes a word (the words after it are still being searched)."""
        caption, tail = segment.caption, segment.beam_tail()
        last = caption.last_word_frame
        if last is not None and (last + 1 - caption.first_frame) * segment.frame_s >= self.settings.max_caption_s:
            return self._end_caption(segment, (last + 1) * segment.stride, at_pause=False, tail=tail)
        if last is None and not tail:
            segment.restart_caption(cut_sample)  # nothing spelled so far: the caption starts later
        return self._partial(segment, tail)

    def _end_caption(self, segment: Segment, cut_sample: int, at_pause: bool, tail: list | None = None) -> list:
        """The caption's final (or, when it holds no words, a partial that clears what was shown); the
        next caption starts at the cut. at_pause: it ends at a pause or the end of speech (a sentence may
        end there), not in running speech. tail: with beam search in running speech, the best beam's words
        after the cut: the next caption's partial shows them at once."""
        caption = segment.caption
        start_s = (segment.start_sample + caption.first_frame * segment.stride) / self._rate
        end_s = (segment.start_sample + cut_sample) / self._rate
        words = caption.words(start_s)
        segment.close_caption(cut_sample)
        if words:
            number = self._number(caption)
            written, raw = self.text.final(number, words, at_pause)
            return [Final(number, written, start_s, end_s, raw)] + (self._partial(segment, tail) if tail else [])
        self.text.cleared(caption.number)
        return [Partial(caption.number, "", 0, start_s, end_s)] if caption.shown else []

    def _partial(self, segment: Segment, beam_tail: list | None = None) -> list:
        """The open caption's partial; beam_tail: the beam's words not yet stable, when already at hand."""
        caption, frame = segment.caption, segment.committed_frame
        beam_tail = segment.beam_tail() if beam_tail is None else beam_tail
        words, stable = caption.partial(*segment.track.since(frame), frame, beam_tail)
        raw = words_text(words)
        if not caption.show(raw):
            return []
        start_s = (segment.start_sample + caption.first_frame * segment.stride) / self._rate
        end_s = (segment.start_sample + segment.decoded_end) / self._rate
        number = self._number(caption) if raw else caption.number
        text, stable_chars, stable_words = self.text.partial_words(number, words, stable)
        return [Partial(number, text, stable_chars, start_s, max(start_s, end_s),
                        None if self.recognizer.writer is None else raw,
                        tuple(Word(w.word, w.start_s + start_s, w.end_s + start_s, w.confidence, w.raw)
                              for w in stable_words))]

    def _number(self, caption: Caption) -> int:
        """Captions are numbered from 0 as they first show text."""
        if caption.number is None:
            caption.take_number(self._count)
            self._count += 1
        return caption.number

