"""An n-gram language model for tiny-nb, in the layout of NbAiLab/XLSR-300M-bokmaal's `language_model/`.

One command, from the project's own training text only (models/data/nb_train.tsv.gz; never the
held-out text):

    python models/build_lm.py --out models/tiny-nb/language_model

writes `lm.arpa` (interpolated modified Kneser-Ney: Chen & Goodman's three discounts per order,
continuation counts for the lower orders, written in ARPA's backoff form as KenLM's lmplz writes it),
`unigrams.txt` (its vocabulary, a word a line) and `attrs.json` (the decoder's alpha, beta and
unknown-word offset).
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter, defaultdict
from pathlib import Path

try:  # imported as models.build_lm (tests) or run as a script
    from models import synth
except ModuleNotFoundError:
    import synth

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
# tuned for flashlight's lexicon search on 150 Debian Edu manual sentences (espeak-ng nb), tiny-nb and this
# model: WER 0.262 against 0.287 at NbAiLab's alpha 0.5 / beta 1.5 (benchmarks/RESULTS.md)
ATTRS = {"alpha": 0.65, "beta": 0.75, "unk_score_offset": -10.0, "score_boundary": True}


def training_sentences() -> list[list[str]]:
    """Word lists of the training text as the model spells it (lowercase, no punctuation)."""
    return [label.split() for _, _, label in synth.load_corpus("nb_train")]


def count_ngrams(sentences: list[list[str]], order: int) -> list[Counter]:
    """counts[n - 1][ngram] for n = 1..order, each sentence between <s> and </s>."""
    counts = [Counter() for _ in range(order)]
    for words in sentences:
        tokens = [BOS, *words, EOS]
        for n in range(1, order + 1):
            for i in range(len(tokens) - n + 1):
                counts[n - 1][tuple(tokens[i : i + n])] += 1
    del counts[0][(BOS,)]
    return counts


def continuation_counts(counts: list[Counter]) -> list[Counter]:
    """Kneser-Ney's counts: the highest order as counted; below it, how many different words come before
    an n-gram (n-grams that begin with <s> cannot have one, so they keep their counts)."""
    adjusted = [Counter() for _ in counts]
    adjusted[-1] = counts[-1]
    for n in range(len(counts) - 1, 0, -1):
        for gram in counts[n]:
            adjusted[n - 1][gram[1:]] += 1
        for gram, c in counts[n - 1].items():
            if gram[0] == BOS:
                adjusted[n - 1][gram] = c
    return adjusted


def discounts(counts: Counter) -> tuple[float, float, float]:
    """Modified Kneser-Ney discounts D1, D2, D3+ from the counts of counts."""
    n = Counter(min(c, 4) for c in counts.values())
    n1, n2, n3, n4 = (max(n[k], 1) for k in (1, 2, 3, 4))
    y = n1 / (n1 + 2 * n2)
    return (min(max(1 - 2 * y * n2 / n1, 0.05), 0.95), min(max(2 - 3 * y * n3 / n2, 0.05), 1.95),
            min(max(3 - 4 * y * n4 / n3, 0.05), 2.95))


def estimate(counts: list[Counter]) -> tuple[list[dict], list[dict]]:
    """probabilities[n - 1][ngram] and interpolation weights[n - 1][context] for each order n."""
    adjusted = continuation_counts(counts)
    vocabulary = {gram[0] for gram in counts[0]} | {UNK}
    probabilities: list[dict] = []
    weights: list[dict] = []
    for n, level in enumerate(adjusted, start=1):
        d = discounts(level)
        followers: dict[tuple, list[tuple[str, int]]] = defaultdict(list)
        for gram, c in level.items():
            followers[gram[:-1]].append((gram[-1], c))
        probs, gammas = {}, {}
        for context, seen in followers.items():
            total = sum(c for _, c in seen)
            kinds = Counter(min(c, 3) for _, c in seen)
            gamma = (d[0] * kinds[1] + d[1] * kinds[2] + d[2] * kinds[3]) / total
            gammas[context] = gamma
            for word, c in seen:
                lower = 1 / len(vocabulary) if n == 1 else probabilities[-1][(*context[1:], word)]
                probs[(*context, word)] = (c - d[min(c, 3) - 1]) / total + gamma * lower
        if n == 1:
            for word in vocabulary:  # words only the uniform distribution gives a share to
                probs.setdefault((word,), gammas[()] / len(vocabulary))
        probabilities.append(probs)
        weights.append(gammas)
    return probabilities, weights


def write_arpa(path: Path, probabilities: list[dict], weights: list[dict]) -> None:
    order = len(probabilities)
    lines = ["\\data\\"] + [f"ngram {n}={len(p) + (n == 1)}" for n, p in enumerate(probabilities, start=1)]
    for n, probs in enumerate(probabilities, start=1):
        lines += ["", f"\\{n}-grams:"]
        contexts = weights[n] if n < order else {}
        entries = sorted(probs.items()) + ([((BOS,), None)] if n == 1 else [])
        for gram, p in entries:
            logp = -99.0 if p is None else math.log10(p)
            backoff = contexts.get(gram)
            lines.append(f"{logp:.6f}\t{' '.join(gram)}" + (f"\t{math.log10(backoff):.6f}" if backoff else ""))
    lines += ["", "\\end\\", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def build(out: Path, order: int = 4, sentences: list[list[str]] | None = None) -> Path:
    """A language_model folder at out, of the training text or of the given sentences (word lists)."""
    out.mkdir(parents=True, exist_ok=True)
    sentences = training_sentences() if sentences is None else sentences
    probabilities, weights = estimate(count_ngrams(sentences, order))
    write_arpa(out / "lm.arpa", probabilities, weights)
    words = sorted({w for s in sentences for w in s})
    (out / "unigrams.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    (out / "attrs.json").write_text(json.dumps(ATTRS, indent=1) + "\n", encoding="utf-8")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="the language_model folder to write")
    parser.add_argument("--order", type=int, default=4, help="n-gram order (default 4)")
    args = parser.parse_args()
    out = build(args.out, args.order)
    print(f"wrote {out}: lm.arpa ({(out / 'lm.arpa').stat().st_size / 1e6:.1f} MB), unigrams.txt, attrs.json")


if __name__ == "__main__":
    main()
