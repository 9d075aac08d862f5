"""Training text as a speech recognizer writes it: sentences of the punctuation corpus spoken by espeak-ng and
read back by tiny-nb, each recognized word given the mark its reference word has, so the punctuation model
learns from the words it will really see ("vor raskt skal man ..." for "Hvor raskt skal man ...?").

Only training sentences are used (models/data/punct_train.tsv.gz; never a held-out one): every question,
as many sentences with a comma, and as many others, drawn with a fixed seed, spoken in turn by three voices
at three speeds. The recognized words are aligned to the reference (difflib): a word in an equal or
replaced stretch takes the mark of its reference word; a replaced stretch's last word takes the mark of
the stretch's last reference word; inserted words take none. Written as ``asr:SOURCE<TAB>sentence<TAB>text``
to models/data/punct_asr.tsv.gz, which train_punct.py reads beside the corpus (leaving out the sentences of
its dev split).

    python models/punct_asr_text.py            # about 10 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import difflib
import gzip
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "models"))
sys.path.insert(0, str(ROOT / "benchmarks"))
import synth  # noqa: E402
from common import default_tiny  # noqa: E402
from punct_eval import words_and_marks  # noqa: E402

from streamer.backends.onnx import OnnxModel, RunnerSettings  # noqa: E402
from streamer.driver.offline import OfflineSettings, transcribe_array  # noqa: E402
from streamer.text.written import TextSettings  # noqa: E402

CORPUS = ROOT / "models" / "data" / "punct_train.tsv.gz"
OUT = ROOT / "models" / "data" / "punct_asr.tsv.gz"
VOICES = tuple(synth.Voice(name, speed) for name in ("nb", "nb+f2", "nb+m3") for speed in (150, 170, 190))


def picked(path: Path, per_kind: int, rng: random.Random) -> list[tuple[str, str]]:
    """(source, sentence): questions, sentences with a comma and others, per_kind of each (at most), 4–25 words."""
    kinds: dict[str, list] = {"?": [], ",": [], ".": []}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            source, _, sentence = line.rstrip("\n").rpartition("\t")
            if source.startswith("fragment:") or not 4 <= len(sentence.split()) <= 25:
                continue
            kind = "?" if sentence.endswith("?") else "," if "," in sentence else "."
            kinds[kind].append((source, sentence))
    out = []
    for items in kinds.values():
        rng.shuffle(items)
        out += items[:per_kind]
    rng.shuffle(out)
    return out


def transferred(ref_words: list[str], ref_marks: list[str], hyp_words: list[str]) -> list[str]:
    """The mark after each recognized word, from the reference words it stands for."""
    marks = [""] * len(hyp_words)
    matcher = difflib.SequenceMatcher(a=ref_words, b=hyp_words, autojunk=False)
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag == "equal":
            marks[b0:b1] = ref_marks[a0:a1]
        elif tag == "replace":
            for k in range(b1 - b0 - 1):
                marks[b0 + k] = ref_marks[a0 + k] if a0 + k < a1 - 1 else ""
            marks[b1 - 1] = ref_marks[a1 - 1]
        elif tag == "delete" and b0 > 0 and ref_marks[a1 - 1]:
            marks[b0 - 1] = ref_marks[a1 - 1]  # a lost last word: its mark goes to the word before
    return marks


def recognized(model: OnnxModel, sentence: str, voice: synth.Voice) -> list[str]:
    audio = synth.trim_silence(synth.synthesize(sentence, voice))
    padded = np.concatenate([np.zeros(4800, np.float32), audio, np.zeros(8000, np.float32)])
    pcm = (np.clip(padded, -1, 1) * 32767).astype(np.int16)
    finals = transcribe_array(pcm, model, OfflineSettings(text=TextSettings(written=False)))
    return " ".join(f.text for f in finals).split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--per-kind", type=int, default=1500, help="questions, comma sentences and others each")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    model = OnnxModel(default_tiny(), RunnerSettings(intra_op_threads=2))
    sentences = picked(args.corpus, args.per_kind, random.Random(args.seed))
    lines = []
    for i, (source, sentence) in enumerate(sentences):
        words, marks = words_and_marks(sentence)
        ref = [(synth.normalize_label(w) or w).replace(" ", "") for w in words]
        hyp = recognized(model, sentence, VOICES[i % len(VOICES)])
        if len(hyp) >= 2:
            hyp_marks = transferred(ref, marks, hyp)
            lines.append(f"asr:{source}\t{sentence}\t" + " ".join(w + m for w, m in zip(hyp, hyp_marks)))
        if (i + 1) % 250 == 0:
            print(f"{i + 1} of {len(sentences)} sentences", file=sys.stderr)
    with open(args.out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(("\n".join(lines) + "\n").encode("utf-8"))
    print(f"wrote {len(lines)} recognized sentences to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
