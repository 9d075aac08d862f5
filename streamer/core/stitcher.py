"""Stitcher: frames kept from windows, joined before the CTC collapse, and the text they spell.

Pure: best-path ids and probabilities in, words out. ``FrameTrack`` holds the first pass's frames by
frame index (a later window overwrites the tail of an earlier one). ``Caption`` holds the committed
frames of the caption being spoken (or, with beam search, its stable words): they only ever grow, so
the text they spell (the stable text) is a prefix of every later partial and of the caption's final.
"""

from __future__ import annotations

import numpy as np

from ..text.ctc import Word, words_from_path, words_text
from ..model.vocab import Vocabulary

EMPTY_IDS = np.zeros(0, np.int64)
EMPTY_PROBS = np.zeros(0, np.float32)


class FrameTrack:
    """Best-path ids and probabilities by frame index; frames before ``origin`` were dropped. Frames
    never written (hops a busy driver dropped) read as ``gap_id``, a word delimiter: words on either
    side of a gap stay apart."""

    def __init__(self, gap_id: int):
        self.origin, self.gap_id = 0, gap_id
        self._ids, self._probs = EMPTY_IDS, EMPTY_PROBS

    @property
    def end(self) -> int:
        return self.origin + len(self._ids)

    def write(self, frame: int, ids: np.ndarray, probs: np.ndarray) -> None:
        """Frames from frame on are replaced by these."""
        if frame > self.end:
            gap = frame - self.end
            self._ids = np.concatenate([self._ids, np.full(gap, self.gap_id, np.int64)])
            self._probs = np.concatenate([self._probs, np.zeros(gap, np.float32)])
        keep = max(0, frame - self.origin)
        skip = max(0, self.origin - frame)
        self._ids = np.concatenate([self._ids[:keep], ids[skip:]])
        self._probs = np.concatenate([self._probs[:keep], probs[skip:]])

    def since(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        start = max(0, frame - self.origin)
        return self._ids[start:], self._probs[start:]

    def drop_before(self, frame: int) -> None:
        """Forget frames before frame (all of them when it lies past the end: the track restarts there)."""
        drop = max(0, frame - self.origin)
        self._ids, self._probs, self.origin = self._ids[drop:], self._probs[drop:], max(self.origin, frame)


class Caption:
    """One caption being spoken, from its first frame on. Greedy: its committed frames, which only ever grow,
    so the text they spell (the stable text) is a prefix of every later partial and of the final. Beam search
    (beam True): the segment's beam search's stable words as they settle, never revised."""

    def __init__(self, first_frame: int, vocab: Vocabulary, frame_s: float, beam: bool = False):
        self.first_frame, self.vocab, self.frame_s, self.beam = first_frame, vocab, frame_s, beam
        self._ids: list[np.ndarray] = []
        self._probs: list[np.ndarray] = []
        self._words: list = []  # beam search's stable words (BeamWord, segment frames)
        self.n_frames = 0
        self.number: int | None = None  # caption number in the stream, given with its first text
        self.shown = ""  # the last partial text sent

    def show(self, text: str) -> bool:
        """text is what a partial now shows; False when it showed that already (nothing to send)."""
        if text == self.shown:
            return False
        self.shown = text
        return True

    def take_number(self, number: int) -> None:
        """The caption's number in its stream, given when it first shows text."""
        self.number = number

    def successor(self, first_frame: int) -> "Caption":
        """The next caption, from first_frame on."""
        return Caption(first_frame, self.vocab, self.frame_s, self.beam)

    def restart_at(self, first_frame: int) -> None:
        """Forget the frames committed so far (they spell nothing); the caption keeps its number and shown text."""
        self.first_frame, self._ids, self._probs, self._words, self.n_frames = first_frame, [], [], [], 0

    def append(self, ids: np.ndarray, probs: np.ndarray) -> None:
        """Commit frames (greedy decoding: they spell the caption's words)."""
        self._ids.append(ids)
        self._probs.append(probs)
        self.n_frames += len(ids)

    def add_words(self, words: list) -> None:
        """Beam search's words that became stable (BeamWord, in the segment's frames)."""
        self._words += words

    @property
    def last_word_frame(self) -> int | None:
        """The last frame of the last stable word (beam search), None before it has one."""
        return self._words[-1].last_frame if self._words else None

    def frames(self) -> tuple[np.ndarray, np.ndarray]:
        if len(self._ids) > 1:
            self._ids, self._probs = [np.concatenate(self._ids)], [np.concatenate(self._probs)]
        return (self._ids[0], self._probs[0]) if self._ids else (EMPTY_IDS, EMPTY_PROBS)

    def words(self, offset_s: float = 0.0) -> list[Word]:
        """Stable words; times from offset_s at the caption's first frame."""
        if self.beam:
            return self._beam_words(self._words, offset_s)
        ids, probs = self.frames()
        return words_from_path(ids, probs, self.vocab, self.frame_s, offset_s)

    def _beam_words(self, words: list, offset_s: float = 0.0) -> list[Word]:
        """BeamWords as Words, a word starting at its first letter and ending after its last letter's frame."""
        frame_s, first = self.frame_s, self.first_frame
        return [Word(w.word, max(0, w.first_frame - first) * frame_s + offset_s,
                     max(1, w.last_frame + 1 - first) * frame_s + offset_s, w.confidence) for w in words]

    def has_letters(self) -> bool:
        if self.beam:
            return bool(self._words)
        ids, _ = self.frames()
        return bool(self.vocab.text_mask()[ids].any()) if len(ids) else False

    def partial(self, tail_ids: np.ndarray, tail_probs: np.ndarray, tail_frame: int | None = None,
                beam_tail: list = ()) -> tuple[list[Word], list[Word]]:
        """The partial's words and the stable ones among them: the stable words, then (beam search) the best
        beam's words not yet stable, then the words of the tail frames, which start at segment frame
        tail_frame (greedy decoding: where the committed frames end). Stable words never change, so the stable
        text stays a prefix of the partial's."""
        if self.beam:
            stable = self.words()
            tail = words_from_path(tail_ids, tail_probs, self.vocab, self.frame_s,
                                   (tail_frame - self.first_frame) * self.frame_s)
            return stable + self._beam_words(beam_tail) + tail, stable
        ids, probs = self.frames()
        stable = words_from_path(ids, probs, self.vocab, self.frame_s)
        words = words_from_path(np.concatenate([ids, tail_ids]), np.concatenate([probs, tail_probs]),
                                self.vocab, self.frame_s)
        if not words_text(words).startswith(words_text(stable)):
            raise AssertionError(f"stable text {words_text(stable)!r} is not a prefix of {words_text(words)!r}")
        return words, stable


def word_ends(ids: np.ndarray, vocab: Vocabulary) -> np.ndarray:
    """Frames right after a word delimiter that follows a letter: cutting there keeps the delimiter with
    the words before, so they stay apart from whatever another window makes of the frames after."""
    letters = vocab.text_mask()[ids]
    seen_letter = np.maximum.accumulate(letters) if len(ids) else letters
    delimiter = ids == vocab.delimiter_id
    first_after_letter = delimiter & seen_letter & ~np.concatenate([[False], delimiter[:-1]])
    return np.flatnonzero(first_after_letter) + 1


def sure_word_ends(ids: np.ndarray, probs: np.ndarray, vocab: Vocabulary, min_prob: float) -> np.ndarray:
    """Word ends whose delimiter the model is sure of: in the frames the best path gives that delimiter,
    its probability reaches min_prob. A near-tie between the delimiter and a blank (or a letter) is where
    a window with other context, or offline's, reads one word ("hundrev is" against "hundrevis")."""
    sure = []
    for end in word_ends(ids, vocab).tolist():
        frame, best = end - 1, 0.0
        while frame < len(ids) and ids[frame] == vocab.delimiter_id:
            best, frame = max(best, float(probs[frame])), frame + 1
        if best >= min_prob:
            sure.append(end)
    return np.array(sure, np.int64)


def cut_between_words(ids: np.ndarray, probs: np.ndarray, vocab: Vocabulary, lo: int, hi: int,
                      min_prob: float = 0.0) -> int | None:
    """The latest word end in [lo, hi] (a frame to cut before) whose delimiter's probability reaches
    min_prob, or None when there is none."""
    ends = sure_word_ends(ids, probs, vocab, min_prob)
    inside = ends[(ends >= lo) & (ends <= hi)]
    return int(inside[-1]) if len(inside) else None
