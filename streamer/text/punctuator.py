"""The learned punctuation model: the mark after each raw word of a caption (none, ",", "." or "?"), run by
ONNX Runtime on the CPU. Trained by models/train_punct.py on punctuated Bokmål from Debian packages
(models/build_punct_corpus.py); the model ships in the package (streamer/data/punct_nb.onnx).

The model reads a caption's words one by one, left to right (a one-way LSTM over hashed letter n-grams of
each word), and after reading word t it gives the mark after word t - d for each delay d = 0 .. MAX_DELAY:
a mark decided with d words of look-ahead. ``<end>`` after the last word says the caption ended at a pause;
reading it decides the last words' marks. A mark depends only on the words up to its look-ahead, so it never
changes when more words come (the caller still keeps the marks it has shown: see caption_text.CaptionText).
A second, backward reading of a whole sentence (its first words last) says whether it is a question: the
mark that ends a caption's last sentence, at its final.
"""

from __future__ import annotations

import functools
import json
import zlib
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..errors import StreamerError

MODEL_PATH = Path(__file__).resolve().parent.parent / "data" / "punct_nb.onnx"
MARKS = ("", ",", ".", "?")  # the model's classes, in order
BUCKETS = 16384  # hashed features; 0 pads
MAX_FEATURES = 32  # per word
MAX_DELAY = 5  # look-ahead heads 0 .. MAX_DELAY words
END = "<end>"
CALIBRATION = ("mark_weights", "question_threshold")  # the model's metadata keys
CONFIDENT = 0.9  # a mark the model is this sure of is decided with the look-ahead it has (one word or more)


def word_features(word: str) -> list[int]:
    """A word's hashed features: the whole word, then its letter 3- and 4-grams with the word's edges marked."""
    if word == END:
        grams = [f"w:{END}"]
    else:
        word = word.lower()
        edged = f"<{word}>"
        grams = [f"w:{word}"] + [f"{n}:{edged[i:i + n]}" for n in (3, 4) for i in range(len(edged) - n + 1)]
    return [zlib.crc32(gram.encode()) % (BUCKETS - 1) + 1 for gram in grams[:MAX_FEATURES]]


def features(words: list[str]) -> np.ndarray:
    """The model's input for these words: int64 [1, words, features], zero-padded."""
    rows = [word_features(w) for w in words]
    out = np.zeros((1, len(rows), max((len(r) for r in rows), default=1)), dtype=np.int64)
    for t, row in enumerate(rows):
        out[0, t, : len(row)] = row
    return out


class Punctuator:
    """The mark after each word of a caption, from the model."""

    def __init__(self, look_ahead_words: int, model: Path = MODEL_PATH, calibration: dict | None = None):
        """look_ahead_words: a mark is decided once this many words after it are known (0 to MAX_DELAY;
        TextSettings checks it). calibration: {"mark_weights": [4 floats], "question_threshold": float}, by
        default the model's own (models/train_punct.py tunes them on its dev split and stores them in it)."""
        self.look_ahead_words = look_ahead_words
        self.session = _session(str(model))
        stored = self.session.get_modelmeta().custom_metadata_map
        calibration = calibration or {k: json.loads(v) for k, v in stored.items() if k in CALIBRATION}
        self.weights = np.array(calibration.get("mark_weights", [1.0] * len(MARKS)), dtype=np.float32)
        self.question_threshold = float(calibration.get("question_threshold", 0.5))

    def probabilities(self, words: list[str], ended: bool) -> np.ndarray:
        """[steps, delays, marks] for words (and <end> when the caption ended)."""
        steps = words + [END] if ended else list(words)
        if not steps:
            return np.zeros((0, MAX_DELAY + 1, len(MARKS)), dtype=np.float32)
        return self.session.run(["probabilities"], {"features": features(steps)})[0][0]

    def marks(self, words: list[str], ended: bool, start: int = 0, probs: np.ndarray | None = None
              ) -> list[str | None]:
        """The mark after each word from ``start`` on, "" for none; None where it is not decided yet. A mark is
        decided as soon as the model is CONFIDENT of it with one word of look-ahead or more, and at the latest
        with look_ahead_words (or at the end token, when the caption ended there). Whether a caption's last word
        ends a sentence, and with which mark, is the caller's (written.ends_sentence, sentence_end). probs: the
        model's output for these words, or, when the caption has not ended, for them and words after them (the
        model reads left to right, so its first rows are these words' own): one run serves both."""
        if probs is None:
            probs = self.probabilities(words, ended)
        elif not ended:
            probs = probs[: len(words)]
        return [self._decided(probs, i, ended) for i in range(start, len(words))]

    def _decided(self, probs: np.ndarray, i: int, ended: bool) -> str | None:
        last, k = len(probs) - 1, self.look_ahead_words
        for d in range(min(1, k), k + 1):
            if i + d > last:
                break
            p = probs[i + d, d]
            if d == k or p.max() >= CONFIDENT:
                return MARKS[int(np.argmax(p * self.weights))]
        return MARKS[int(np.argmax(probs[last, last - i] * self.weights))] if ended else None

    def sentence_end(self, sentence: list[str]) -> str:
        """The mark that ends a sentence of these words, read whole (they are all known at a final): "?" or "."."""
        question = self.session.run(["question"], {"features": features(sentence)})[0][0]
        return "?" if question[1] >= self.question_threshold else "."


@functools.lru_cache(maxsize=4)
def _session(path: str):
    if not Path(path).is_file():
        raise StreamerError(f"no punctuation model at {path} (build it with models/train_punct.py, or run with "
                            "--no-punctuation)")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
