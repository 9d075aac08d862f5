"""Punctuation accuracy: per-mark precision, recall and F1 of the punctuation model (streamer.text.punctuator)
and of the rule baseline (streamer.text.punctuation), on held-out sentences from sources never trained on
(models/data/punct_heldout.tsv: the games' dialogue and the Debian Edu manuals; models/build_punct_corpus.py).

- text: each sentence's words (lowercase, marks stripped) punctuated as one caption that ends at a pause, at
  look-ahead 0, 1, 2 and 5 words; and "running": three sentences at a time as one caption (a monologue);
- speech: the sentences spoken by espeak-ng from their written form (voices nb and nb+f2 in turn, 0.8 s
  between sentences), streamed through tiny-nb in 100 ms blocks with the default settings (stable text
  checked never to be revised), the finals' words aligned to the reference (difflib over lowercase words):
  the marks after the words the captions share with the text are scored. The rule baseline is scored on the
  same finals' raw words. CPU: the text stage's time per second of audio, with and without punctuation.

    python benchmarks/punctuation.py              # text and speech, every held-out sentence
    python benchmarks/punctuation.py --text-only

Prints tables and writes benchmarks/out/punctuation.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from common import REPO, cpu_name, default_tiny, fed_in_blocks, table, write_json

sys.path.insert(0, str(REPO / "models"))
from punct_eval import aligned_scores, captions_scores, scores, shared_words, words_and_marks  # noqa: E402
import synth  # noqa: E402

from streamer.backends.onnx import OnnxModel, RunnerSettings  # noqa: E402
from streamer.core.events import Final  # noqa: E402
from streamer.core.stream import Recognizer, StreamSettings  # noqa: E402
from streamer.text import punctuation  # noqa: E402
from streamer.text.written import TextSettings, make_writer  # noqa: E402

HELDOUT = REPO / "models" / "data" / "punct_heldout.tsv"
LOOK_AHEADS = (0, 1, 2, 5)
VOICES = (synth.Voice("nb", 165), synth.Voice("nb+f2", 165))
COLUMNS = [("system", "system", ""), ("written_,", "commas", "d"), ("p_,", "P ,", ".3f"), ("r_,", "R ,", ".3f"),
           ("f1_,", "F1 ,", ".3f"), ("written_?", "questions", "d"), ("p_?", "P ?", ".3f"), ("r_?", "R ?", ".3f"),
           ("f1_?", "F1 ?", ".3f"), ("p_.", "P .", ".3f"), ("r_.", "R .", ".3f"), ("f1_.", "F1 .", ".3f")]


def heldout(path: Path) -> list[tuple[str, list[str], list[str]]]:
    """(written sentence, words as the model spells them, the mark after each)."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        sentence = line.split("\t")[-1].strip()
        words, marks = [], []
        for word, mark in zip(*words_and_marks(sentence)):
            spelled = (synth.normalize_label(word) or "").split()
            if spelled:
                words += spelled
                marks += [""] * (len(spelled) - 1) + [mark]
        if len(words) >= 2:
            out.append((sentence, words, marks))
    return out


def row(system: str, found: dict) -> dict:
    out = {"system": system}
    for mark, s in found.items():
        out.update({f"written_{mark}": s["written"], f"p_{mark}": s["precision"], f"r_{mark}": s["recall"],
                    f"f1_{mark}": s["f1"]})
    return out


def text_rows(items) -> list[dict]:
    """Each sentence (or three at a time) through the text stage, scored on the words it shares with the text."""
    ref_words = [w for _, words, _ in items for w in words]
    ref_marks = [m for _, _, marks in items for m in marks]
    rules = [m for _, words, _ in items for m in punctuation.marks(words)]
    rows = [row("rules", scores([ref_marks], [rules]))]
    sentences = [words for _, words, _ in items]
    for k in LOOK_AHEADS:
        writer = make_writer(TextSettings(look_ahead_words=k))
        rows.append(row(f"model, look-ahead {k}", captions_scores(writer, sentences, ref_words, ref_marks)))
    threes = [sum(sentences[i : i + 3], []) for i in range(0, len(sentences), 3)]
    for k in (1, 2):
        writer = make_writer(TextSettings(look_ahead_words=k))
        rows.append(row(f"model, look-ahead {k}, 3 sentences a caption",
                        captions_scores(writer, threes, ref_words, ref_marks)))
    return rows


def streamed_finals(model: OnnxModel, audio: np.ndarray, text: TextSettings) -> tuple[list[Final], float]:
    """The finals of the stream, and the seconds it took (model included)."""
    started = time.process_time()
    events = fed_in_blocks(Recognizer(model.info, StreamSettings(text=text)).stream(), model, audio)
    return [e for e in events if isinstance(e, Final)], time.process_time() - started


def speech_rows(items, model_dir: Path) -> tuple[list[dict], dict]:
    rng = np.random.default_rng(5)
    pairs = [(sentence, " ".join(words)) for sentence, words, _ in items]
    audio, _ = synth.talk(pairs, rng, (0.8, 0.8), VOICES)
    audio = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    seconds = len(audio) / 16000
    model = OnnxModel(model_dir, RunnerSettings(intra_op_threads=1))
    ref_words = [w for _, words, _ in items for w in words]
    ref_marks = [m for _, _, marks in items for m in marks]
    rows, cpu = [], {"audio_s": seconds, "cpu_name": cpu_name()}
    finals, cpu["off_s"] = streamed_finals(model, audio, TextSettings(punctuation=False))
    raw = [f.raw_text.split() for f in finals]
    rules = [punctuation.marks(words) for words in raw]
    rows.append(row("rules", aligned_scores(ref_words, ref_marks, sum(raw, []), sum(rules, []))))
    for k in LOOK_AHEADS:
        finals, took = streamed_finals(model, audio, TextSettings(look_ahead_words=k))
        cpu[f"look_ahead_{k}_s"] = took
        hyp_words, hyp_marks = words_and_marks(" ".join(f.text for f in finals))
        found = aligned_scores(ref_words, ref_marks, hyp_words, hyp_marks)
        rows.append(row(f"model, look-ahead {k}", found) | {"shared_words": len(shared_words(ref_words, hyp_words))})
        if k == TextSettings().look_ahead_words:
            cpu["finals"] = [f.text for f in finals]  # the default's captions, to read
        print(f"look-ahead {k}: {rows[-1]['shared_words']} of {len(ref_words)} words shared", file=sys.stderr)
    cpu["punctuation_ms_per_audio_s"] = 1000 * (cpu["look_ahead_1_s"] - cpu["off_s"]) / seconds
    return rows, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heldout", type=Path, default=HELDOUT, help="source<TAB>sentence, as written")
    parser.add_argument("--model", type=Path, help="exported ASR model dir (default: tiny-nb, exported once)")
    parser.add_argument("--text-only", action="store_true", help="skip the speech")
    args = parser.parse_args()
    items = heldout(args.heldout)
    print(f"{len(items)} held-out sentences, {sum(len(w) for _, w, _ in items)} words", file=sys.stderr)
    payload = {"sentences": len(items), "text": text_rows(items)}
    print("text (each sentence one caption, ended at a pause, unless said)\n" + table(payload["text"], COLUMNS))
    if not args.text_only:
        payload["speech"], payload["cpu"] = speech_rows(items, args.model or default_tiny())
        print("\nspeech: espeak-ng → tiny-nb, streamed; marks after the words shared with the text\n"
              + table(payload["speech"], COLUMNS))
        print(f"\nCPU ({payload['cpu']['cpu_name']}): stream with punctuation off {payload['cpu']['off_s']:.1f} s, "
              f"look-ahead 1 {payload['cpu']['look_ahead_1_s']:.1f} s for {payload['cpu']['audio_s']:.0f} s of "
              f"audio: {payload['cpu']['punctuation_ms_per_audio_s']:.2f} ms per audio second")
    print(f"wrote {write_json('punctuation', payload)}")


if __name__ == "__main__":
    main()
