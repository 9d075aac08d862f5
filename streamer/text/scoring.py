"""Word and character error rates (Levenshtein distance over words or characters)."""

from __future__ import annotations

from typing import Sequence


def edit_distance(reference: Sequence, hypothesis: Sequence) -> int:
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, start=1):
        current = [i]
        for j, hyp in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


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
