"""Punctuation accuracy on text: per-mark precision, recall and F1 of the rule baseline
(streamer.text.punctuation) against punctuated Bokmål sentences, one a line (issue 30's baseline to beat).

Each line is a sentence as written; its words are lowercased and stripped of their marks, the rules put
marks back, and each word's predicted mark (none, ",", ".", "?") is compared with the written one
("!" counts as ".", ";" as ","; other marks as none).

    python models/edu_sample.py --source itil --out /tmp/itil.txt --sample 2000
    python models/punct_eval.py /tmp/itil.txt
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from streamer.text.caption_text import CaptionText  # noqa: E402
from streamer.text.ctc import Word  # noqa: E402
from streamer.text.punctuation import marks  # noqa: E402

MARKS = (",", ".", "?")
WRITTEN = {",": ",", ";": ",", ".": ".", "!": ".", "?": "?"}
QUOTES = "«»\"'()[]“”‘’"


def words_and_marks(sentence: str) -> tuple[list[str], list[str]]:
    """A written sentence's words (lowercase, without marks) and the mark after each."""
    words, out = [], []
    for token in sentence.split():
        token = token.strip(QUOTES)
        mark = WRITTEN.get(token[-1:], "") if token else ""
        word = token.rstrip(",;.!?:…").strip(QUOTES).lower()
        if word:
            words.append(word)
            out.append(mark)
        elif words and mark:  # a mark standing alone ("word ,")
            out[-1] = mark
    return words, out


def scores(references: list[list[str]], predictions: list[list[str]]) -> dict[str, dict[str, float]]:
    """Per mark: precision, recall, F1 and how often it is written, over every word."""
    out = {}
    pairs = [(r, p) for ref, pred in zip(references, predictions) for r, p in zip(ref, pred)]
    for mark in MARKS:
        hits = sum(r == p == mark for r, p in pairs)
        predicted, written = sum(p == mark for _, p in pairs), sum(r == mark for r, _ in pairs)
        precision = hits / predicted if predicted else 0.0
        recall = hits / written if written else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[mark] = {"precision": precision, "recall": recall, "f1": f1, "written": written}
    return out


def shared_words(ref_words: list[str], hyp_words: list[str]) -> list[tuple[int, int]]:
    """(reference index, hypothesis index) of each word the two share: difflib's matching blocks over words."""
    matcher = difflib.SequenceMatcher(a=ref_words, b=hyp_words, autojunk=False)
    return [(block.a + k, block.b + k) for block in matcher.get_matching_blocks() for k in range(block.size)]


def aligned_scores(ref_words, ref_marks, hyp_words, hyp_marks) -> dict[str, dict[str, float]]:
    """Scores on the words a hypothesis shares with the reference: the marks of ASR output, or of written text
    whose numbers became digits."""
    pairs = shared_words(ref_words, hyp_words)
    return scores([[ref_marks[a] for a, _ in pairs]], [[hyp_marks[b] for _, b in pairs]])


def captions_scores(writer, captions: list[list[str]], ref_words: list[str], ref_marks: list[str]) -> dict:
    """Each caption's raw words through the text stage (a caption that ends at a pause, written by writer),
    scored against the reference on the words they share."""
    hyp_words, hyp_marks = [], []
    for words in captions:
        final, _ = CaptionText(writer).final(0, [Word(w, i * 0.4, i * 0.4 + 0.3, 0.9) for i, w in enumerate(words)],
                                             at_pause=True)
        written, written_marks = words_and_marks(" ".join(w.word for w in final))
        hyp_words += written
        hyp_marks += written_marks
    return aligned_scores(ref_words, ref_marks, hyp_words, hyp_marks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("text", type=Path, help="punctuated sentences, one a line")
    parser.add_argument("--json", type=Path, help="also write the scores here")
    args = parser.parse_args()
    lines = [line.strip() for line in args.text.read_text(encoding="utf-8").splitlines() if line.strip()]
    pairs = [words_and_marks(line) for line in lines]
    pairs = [(words, written) for words, written in pairs if words]
    found = scores([written for _, written in pairs], [marks(words) for words, _ in pairs])
    print(f"{len(pairs)} sentences, {sum(len(w) for w, _ in pairs)} words; rule baseline")
    print("mark  written  precision  recall     F1")
    for mark, row in found.items():
        print(f"{mark:>4}  {row['written']:7d}  {row['precision']:9.3f}  {row['recall']:6.3f}  {row['f1']:5.3f}")
    if args.json:
        args.json.write_text(json.dumps({"sentences": len(pairs), "rules": found}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
