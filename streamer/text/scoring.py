"""Word and character error rates (Levenshtein distance over words or characters)."""

from __future__ import annotations

import difflib
from typing import Sequence

import numpy as np


def edit_distance(reference: Sequence, hypothesis: Sequence) -> int:
    """Levenshtein distance, a row of the table at a time in numpy: a row's insertions are a running
    minimum (cell j is min over k <= j of the row's substitution/deletion cost at k plus j - k)."""
    codes: dict = {}
    ref = np.array([codes.setdefault(x, len(codes)) for x in reference], np.int64)
    hyp = np.array([codes.setdefault(x, len(codes)) for x in hypothesis], np.int64)
    steps = np.arange(len(hyp) + 1)
    previous = steps.copy()
    for i, token in enumerate(ref.tolist(), start=1):
        current = np.empty_like(previous)
        current[0] = i
        current[1:] = np.minimum(previous[1:] + 1, previous[:-1] + (hyp != token))
        previous = np.minimum.accumulate(current - steps) + steps
    return int(previous[-1])


def error_rate(references: Sequence[Sequence], hypotheses: Sequence[Sequence]) -> float:
    """Total edits over total reference length (0.0 for an empty reference with an empty hypothesis)."""
    edits = sum(edit_distance(r, h) for r, h in zip(references, hypotheses, strict=True))
    length = sum(len(r) for r in references)
    return edits / length if length else float(edits > 0)


def wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    return error_rate([r.split() for r in references], [h.split() for h in hypotheses])


def cer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Characters, spaces included (normalized to single spaces), so misplaced word breaks count."""
    return error_rate([" ".join(r.split()) for r in references], [" ".join(h.split()) for h in hypotheses])


def word_break_differences(hypothesis: str, reference: str) -> tuple[list[int], list[int]]:
    """Word breaks the hypothesis has where the reference has none (splits: "hundrev is" for "hundrevis")
    and the other way (joins: "gikkbra" for "gikk bra"), as character positions in the hypothesis: steps
    of a character alignment that only insert or only delete spaces."""
    matcher = difflib.SequenceMatcher(None, reference, hypothesis, autojunk=False)
    splits, joins = [], []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "insert" and hypothesis[j1:j2].strip() == "":
            splits.append(j1)
        elif tag == "delete" and reference[i1:i2].strip() == "":
            joins.append(j1)
    return splits, joins
