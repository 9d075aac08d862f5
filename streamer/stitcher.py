"""Stitcher: joins the kept frames of consecutive windows before the CTC collapse.

Frames left of the newest window's right context are stable; the newest window's right-context
frames are the partial's tail. Pure: best-path ids and probabilities in, words out.
"""

from __future__ import annotations

import numpy as np

from .ctc import Word, best_path, words_from_path, words_text
from .vocab import Vocabulary
from .windower import Window


class Stitcher:
    def __init__(self, vocab: Vocabulary, stride_samples: int, frame_s: float):
        self.vocab, self.stride, self.frame_s = vocab, stride_samples, frame_s
        self._ids: list[np.ndarray] = []
        self._probs: list[np.ndarray] = []
        self._tail = (np.zeros(0, np.int64), np.zeros(0, np.float32))
        self.stable_end = 0  # segment sample up to which frames are stable

    def add(self, window: Window, logits: np.ndarray) -> None:
        """Keep the window's frames [keep_from, keep_to) as stable; the rest of it becomes the tail."""
        ids, probs = best_path(logits)
        first = (window.keep_from_sample - window.start_sample) // self.stride
        last = (window.keep_to_sample - window.start_sample) // self.stride
        self._ids.append(ids[first:last])
        self._probs.append(probs[first:last])
        self._tail = (ids[last:], probs[last:])
        self.stable_end = window.keep_to_sample

    def stable_frames(self, until_sample: int) -> tuple[np.ndarray, np.ndarray]:
        n = until_sample // self.stride
        ids = np.concatenate(self._ids) if self._ids else np.zeros(0, np.int64)
        probs = np.concatenate(self._probs) if self._probs else np.zeros(0, np.float32)
        return ids[:n], probs[:n]

    def partial(self) -> tuple[str, int]:
        """The current text and how many of its leading characters come from stable frames."""
        ids, probs = self.stable_frames(self.stable_end)
        stable = words_text(words_from_path(ids, probs, self.vocab, self.frame_s))
        text = words_text(words_from_path(np.concatenate([ids, self._tail[0]]),
                                          np.concatenate([probs, self._tail[1]]), self.vocab, self.frame_s))
        return text, common_prefix(stable, text)

    def final(self, window: Window, logits: np.ndarray) -> list[Word]:
        """Stable frames before the final window's keep_from, then all of the final window's frames."""
        ids, probs = self.stable_frames(window.keep_from_sample)
        new_ids, new_probs = best_path(logits)
        first = (window.keep_from_sample - window.start_sample) // self.stride
        return words_from_path(np.concatenate([ids, new_ids[first:]]), np.concatenate([probs, new_probs[first:]]),
                               self.vocab, self.frame_s)


def common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
