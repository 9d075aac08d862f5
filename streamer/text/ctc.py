"""CTC greedy decoding: best path → words with start/end times and a confidence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.vocab import Vocabulary


@dataclass(frozen=True)
class Word:
    word: str
    start_s: float
    end_s: float
    confidence: float
    raw: str | None = None  # a written token: the model's words it stands for, where they differ

    def to_json(self) -> dict:
        out = {"word": self.word, "start": round(self.start_s, 3), "end": round(self.end_s, 3),
               "confidence": round(self.confidence, 3)}
        if self.raw is not None:
            out["raw"] = self.raw
        return out


def best_path(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the most likely token id and its probability (softmax over the vocabulary)."""
    logits = np.asarray(logits, dtype=np.float32)
    ids = logits.argmax(axis=-1)
    top = np.take_along_axis(logits, ids[:, None], axis=-1)[:, 0]
    log_norm = np.log(np.exp(logits - top[:, None]).sum(axis=-1))
    return ids, np.exp(-log_norm)


def folded_log_probs(logits: np.ndarray, vocab: Vocabulary) -> np.ndarray:
    """Log-softmax (float64) with every special token but the delimiter folded into the blank: the blank's
    column holds their summed probability, theirs -inf (a beam search never spells one)."""
    logits = np.asarray(logits, np.float64)
    peak = logits.max(axis=-1, keepdims=True)
    logp = logits - (np.log(np.exp(logits - peak).sum(axis=-1, keepdims=True)) + peak)
    specials = [i for i in sorted(vocab.special_ids) if i not in (vocab.blank_id, vocab.delimiter_id)]
    if specials:
        logp[:, vocab.blank_id] = np.logaddexp.reduce(logp[:, [vocab.blank_id, *specials]], axis=-1)
        logp[:, specials] = -np.inf
    return logp


@dataclass
class _Draft:
    """A word being spelled: its letters, first and last frame, and each letter's probability."""

    first_frame: int
    last_frame: int
    letters: list
    probs: list


def words_from_path(
    ids: np.ndarray, probs: np.ndarray, vocab: Vocabulary, frame_s: float, offset_s: float = 0.0
) -> list[Word]:
    """Collapse a best path (repeats merged, blanks dropped) into words split at the delimiter.

    A word starts at its first letter's first frame and ends after its last letter's last frame;
    its confidence is the mean of its letters' (peak) probabilities.
    """
    words: list[Word] = []
    draft: _Draft | None = None
    previous = vocab.blank_id

    def close() -> None:
        nonlocal draft
        if draft is not None:
            words.append(
                Word(
                    "".join(draft.letters),
                    offset_s + draft.first_frame * frame_s,
                    offset_s + (draft.last_frame + 1) * frame_s,
                    float(np.mean(draft.probs)),
                )
            )
        draft = None

    for frame, token in enumerate(ids.tolist()):
        repeat, previous = token == previous, token
        if token == vocab.delimiter_id:
            close()
        elif not vocab.is_text(token):
            continue
        elif repeat and draft is not None:
            draft.last_frame = frame
            draft.probs[-1] = max(draft.probs[-1], float(probs[frame]))
        elif draft is None:
            draft = _Draft(frame, frame, [vocab.tokens[token]], [float(probs[frame])])
        else:
            draft.letters.append(vocab.tokens[token])
            draft.last_frame = frame
            draft.probs.append(float(probs[frame]))
    close()
    return words


def greedy_words(logits: np.ndarray, vocab: Vocabulary, frame_s: float, offset_s: float = 0.0) -> list[Word]:
    ids, probs = best_path(logits)
    return words_from_path(ids, probs, vocab, frame_s, offset_s)


def words_text(words: list[Word]) -> str:
    return " ".join(word.word for word in words)
