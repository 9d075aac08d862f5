"""Windows: which audio of a speech segment the model sees for each decode, and which frames are kept.

One frame-level mechanism at three settings. A window is ``left context | kept | right context``:
the model sees all of it, only the kept frames are used, joined to the frames kept before them
before the CTC collapse (as the Hugging Face chunked pipeline does), so a word across a join is
neither lost nor doubled.

- ``PartialPass`` (an optional first pass): one window per hop of audio with little context; its
  frames are the partial's unstable tail.
- ``CommitPass``: windows with enough context to be kept for good: at a pause, every ``hop_ms`` of
  speech (cut at a word boundary), and at the end of the segment. Committed text is the stable
  text, and finals are made of it only; the frames of a commit's right context are the partial's
  tail, so one pass gives both (a first pass of its own is optional).
- The offline path is a ``CommitPass`` with 30 s windows and 3 s of context.

Pure and deterministic: windows depend only on the audio's length and on what was committed, never
on how the audio arrived. Right context shorter than the model needs for its last kept frame
(receptive field − stride samples) is widened to that, so no kept frame is ever missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import StreamerError
from ..model.geometry import FRAME_MS, FrameGeometry

MAX_WORD_MS = 3000  # a commit in speech waits for a word to end at most this long past the committed end
RETRY_MS = 340  # a commit that found no word end to cut at runs again when this much more audio came (or a
# hop, when shorter): a word end the model was unsure of is often sure a few frames later, and waiting a
# whole hop put the monologue's stable lag p95 at 2.24 s (lag.py; benchmarks/RESULTS.md)


def check_ms(owner: str, **values: int | None) -> None:
    for name, value in values.items():
        if value is not None and (value < 0 or value % FRAME_MS):
            raise StreamerError(f"{owner} {name} must be a non-negative multiple of {FRAME_MS} ms, not {value}")


@dataclass(frozen=True)
class WindowSettings:
    """The first pass (partials): a window of left | hop | right per hop of audio."""

    left_ms: int = 500  # context before the hop (seen by the model, frames not kept)
    hop_ms: int = 500  # a window runs per hop of audio; partials come this often
    right_ms: int = 240  # context after the hop; its frames end the partial
    max_hops: int = 4  # a driver this far behind gets one window of the newest hops; older ones are dropped

    def __post_init__(self) -> None:
        check_ms("partial window", left_ms=self.left_ms, hop_ms=self.hop_ms, right_ms=self.right_ms)
        if self.hop_ms == 0:
            raise StreamerError(f"hop_ms must be at least {FRAME_MS} ms")
        if self.max_hops < 1:
            raise StreamerError(f"max_hops must be at least 1, not {self.max_hops}")


@dataclass(frozen=True)
class CommitSettings:
    """The commits (stable text, finals; and partials from their right context), and with other values the
    offline chunks. A window is left | kept | right: in speech a commit runs when hop_ms of audio waits past
    the committed end and the right context, so stable text trails the speech by about right_ms plus half a
    hop plus compute, and the model sees (left + hop + right) / hop times the audio."""

    left_ms: int = 1500  # context before the committed frames
    right_ms: int = 600  # context after them
    hop_ms: int = 700  # in speech a commit (and a partial) per this much audio
    min_commit_ms: int | None = 0  # the cut is the last word boundary at least this far (and a frame) on;
    # None: cut exactly right_ms before the window's end (offline chunks)
    pause_ms: int | None = 300  # a VAD pause this long after speech commits up to its middle; None: never
    word_end_prob: float = 0.85  # a commit in speech cuts only after a word delimiter at least this probable:
    # cuts at near-ties split words that offline reads whole (all of 88 such delimiters were below 0.82, most
    # 0.5-0.6; benchmarks/fidelity.py, RESULTS.md)

    def __post_init__(self) -> None:
        check_ms("commit window", left_ms=self.left_ms, right_ms=self.right_ms, hop_ms=self.hop_ms,
                 min_commit_ms=self.min_commit_ms)
        least = max(self.min_commit_ms or 0, FRAME_MS)
        if self.hop_ms < least:
            raise StreamerError(f"commit hop_ms ({self.hop_ms}) must be at least min_commit_ms and {FRAME_MS} ms "
                                f"({least})")
        if not 0.0 <= self.word_end_prob <= 1.0:
            raise StreamerError(f"word_end_prob must be between 0 and 1, not {self.word_end_prob}")
        if self.pause_ms is not None and self.pause_ms < 2 * FRAME_MS:
            raise StreamerError(f"pause_ms must be at least {2 * FRAME_MS} ms (or None), not {self.pause_ms}")

    @property
    def window_ms(self) -> int:
        return self.left_ms + self.hop_ms + self.right_ms


@dataclass(frozen=True)
class Window:
    """Segment-relative samples: the model sees [start, end); frames from keep_from to keep_to are kept."""

    start_sample: int
    end_sample: int
    keep_from: int
    keep_to: int  # a commit may cut earlier (at a word boundary); a final keeps every frame to the end
    kind: str = "partial"  # partial, commit (in speech), pause, final (end of segment)


def samples(ms: int, geometry: FrameGeometry) -> int:
    return ms * geometry.sample_rate // 1000


def least_right(geometry: FrameGeometry) -> int:
    """Right context the last kept frame needs: its receptive field reaches this far past its start."""
    stride = geometry.stride_samples
    return -(-(geometry.receptive_field_samples - stride) // stride) * stride


def kept_frames(window: Window, n_frames: int, stride: int) -> tuple[int, int]:
    """First and last (exclusive) frame of the window's logits to keep; every kept frame must exist."""
    first = (window.keep_from - window.start_sample) // stride
    last = n_frames if window.kind == "final" else (window.keep_to - window.start_sample) // stride
    if last > n_frames:
        raise AssertionError(f"window {window} gave {n_frames} frames, {last} needed")
    return first, last


class PartialPass:
    """Where the next first-pass window is: every hop whose right context has arrived, in one window
    (several hops at once when the driver was too busy to run them one by one, and only the newest
    ``max_hops`` of them when it fell further behind: the older ones are dropped, counted in
    ``dropped_hops``; the second pass still commits that audio)."""

    def __init__(self, settings: WindowSettings, geometry: FrameGeometry):
        self.hop = samples(settings.hop_ms, geometry)
        self.left = samples(settings.left_ms, geometry)
        self.right = max(samples(settings.right_ms, geometry), least_right(geometry))
        self.max_hops = settings.max_hops
        self.next_keep = 0
        self.dropped_hops = 0

    def due(self, n_samples: int) -> int:
        """Hops whose right context has arrived and that no window has kept yet."""
        return max(0, (n_samples - self.right - self.next_keep) // self.hop)

    def window(self, n_samples: int) -> Window | None:
        due = self.due(n_samples)
        if due < 1:
            return None
        if due > self.max_hops:
            self.dropped_hops += due - self.max_hops
            self.next_keep += (due - self.max_hops) * self.hop
            due = self.max_hops
        keep_to = self.next_keep + due * self.hop
        window = Window(max(0, self.next_keep - self.left), keep_to + self.right, self.next_keep, keep_to)
        self.next_keep = keep_to
        return window

    def skip_to(self, sample: int) -> None:
        """Frames before sample are committed: no partial window needs them any more."""
        self.next_keep = max(self.next_keep, sample)


class CommitPass:
    """Where the next second-pass window is, given what is committed (``committed_end``)."""

    def __init__(self, settings: CommitSettings, geometry: FrameGeometry):
        self.settings, self.stride = settings, geometry.stride_samples
        self.left = samples(settings.left_ms, geometry)
        self.least_right = least_right(geometry)
        self.right = max(samples(settings.right_ms, geometry), self.least_right)
        self.window_len = samples(settings.window_ms, geometry)
        self.min_commit = None if settings.min_commit_ms is None else samples(settings.min_commit_ms, geometry)
        self.hop, self.max_word = samples(settings.hop_ms, geometry), samples(MAX_WORD_MS, geometry)
        self.retry = min(self.hop, samples(RETRY_MS, geometry))
        self.committed_end = 0
        self.postponed_to = 0  # a commit that found a word still going waits for this much audio

    def _start(self) -> int:
        return max(0, self.committed_end - self.left)

    def due_at(self) -> int:
        """Audio length at which speech without a pause forces a commit: window_ms − left_ms of audio past
        the committed end (at a segment's start, where there is less left context, the window is shorter
        rather than later), or RETRY_MS past a window that found no word end to cut at."""
        return max(self.committed_end + self.window_len - self.left, self.postponed_to)

    def in_speech(self) -> Window:
        """The forced commit: its cut is the last word boundary in [search_from, keep_to]."""
        end = self.due_at()
        return Window(self._start(), end, self.committed_end, end - self.right, "commit")

    def search_from(self, window: Window) -> int:
        """Where the cut's word boundary is looked for from: at least one frame on, so a commit always
        advances."""
        return window.keep_to if self.min_commit is None else window.keep_from + max(self.min_commit, self.stride)

    def at_pause(self, pause_start: int, pause_detected: int) -> Window:
        """Commit up to the middle of a pause (silence on both sides of the cut)."""
        middle = (pause_start + (pause_detected - pause_start) // 2) // self.stride * self.stride
        cut = max(middle, self.committed_end)
        return Window(self._start(), max(pause_detected, cut + self.least_right), self.committed_end, cut, "pause")

    def at_end(self, end_sample: int) -> Window:
        return Window(self._start(), end_sample, self.committed_end, end_sample, "final")

    def postpone(self, window: Window) -> bool:
        """The window's kept audio holds no word end to cut at (it ends inside a word, or the model is unsure
        of the ends it holds): wait RETRY_MS more and run a wider window (True), so a word is never cut in
        two (a beam search decodes each commit's words as they are), unless it has waited MAX_WORD_MS or
        cuts exactly where told (offline chunks)."""
        if self.min_commit is None or window.keep_to - window.keep_from >= self.max_word:
            return False
        self.postponed_to = window.end_sample + self.retry
        return True

    def advance(self, cut: int) -> None:
        self.committed_end, self.postponed_to = cut, 0

