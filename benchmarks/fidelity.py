"""Fidelity per condition: streamed finals against offline's transcript of the same audio, condition by
condition, never pooled into one set.

A condition is a text source, an espeak-ng voice, a speed and a pause between sentences. Its speech is
sentences of the source, `--words` words in all, spoken by that voice at that speed, joined by exactly that pause
(none: a monologue that never stops). tiny-nb decodes it greedily into raw words twice: offline
(`transcribe`) and streamed in 100 ms blocks with the default settings (`transcribe --stream`). Per
condition: WER and CER of both against the reference, streamed relative to offline, and the words split
("hundrevis" → "hundrev is") or joined ("gikk bra" → "gikkbra") relative to offline, in all and exactly
at a commit's cut (the end of a partial's stable prefix). A second table pools the cells of each value of
each axis; a line is "ok" when streamed WER and CER are within 3% (relative) of offline and there is at
most one split or join at a cut per 500 words. JSON with every transcript: benchmarks/out/fidelity*.json.

With `--lm PATH` (a language_model folder or KenLM file) or `--lm-of-text` (a 4-gram of each source's own
sentences, built once into benchmarks/out: a language model that knows the text, as the real checkpoint's
5-gram knows parliament speech) both sides decode with the incremental beam search instead, and the table
adds offline greedy's WER, to show what the language model is worth.

Text sources: django (the held-out catalogs of models/data, never trained on), manual (the Debian Edu
bookworm manual) and itil (the Debian Edu ITIL, Rosegarden and Audacity manuals), the last two from
models/edu_sample.py (apt-get download). Voices nb, nb+f2, nb+m3 at 140, 165 and 190 wpm. The held-out
conditions (--held-out): the itil text, spoken by those voices and by nb+Linda and nb+Storm, which no
training or tuning ever used; run them only to check what was built on the others.

    python benchmarks/fidelity.py                 # the tuning grid: django and manual, 3 voices x 3 speeds x 4 pauses
    python benchmarks/fidelity.py --held-out      # the held-out grid: itil, 5 voices x 3 speeds x 4 pauses
    python benchmarks/fidelity.py --sources django --voices nb --speeds 165 --pauses 0.8 --words 300
    python benchmarks/fidelity.py --lm-of-text --pauses 0 0.8   # beam search, both kinds of speech
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from common import REPO, cpu_name, default_tiny, fed_in_blocks, table, tiny_lm, write_json

from streamer.backends.onnx import OnnxModel, RunnerSettings
from streamer.core.events import cut_positions
from streamer.core.stream import Recognizer, StreamSettings, with_flat_settings
from streamer.driver.offline import transcribe_array
from streamer.text.decoder import DecoderSettings
from streamer.text.incremental import LexiconLM, load_lm
from streamer.text.scoring import edit_distance, word_break_differences
from streamer.text.written import TextSettings

sys.path.insert(0, str(REPO / "models"))
import edu_sample  # noqa: E402
import synth  # noqa: E402

BLOCK_SAMPLES = 1600  # 100 ms
RATE = 16000
SOURCES, HELD_OUT_SOURCES = ("django", "manual"), ("itil",)
VOICES, HELD_OUT_VOICES = ("nb", "nb+f2", "nb+m3"), ("nb+Linda", "nb+Storm")
SPEEDS_WPM = (140, 165, 190)
PAUSES_S = (0.0, 0.3, 0.8, 1.5)
BOUND = 0.03  # streamed within 3% (relative) of offline


@dataclass(frozen=True)
class Condition:
    source: str
    voice: str
    speed_wpm: int
    pause_s: float

    @property
    def name(self) -> str:
        pause = "monologue" if self.pause_s == 0 else f"pause {self.pause_s:g} s"
        return f"{self.source} / {self.voice} / {self.speed_wpm} wpm / {pause}"

    def seed(self) -> int:
        return int.from_bytes(hashlib.sha256(self.name.encode()).digest()[:4], "little")


def source_sentences(source: str, cache: Path) -> list[str]:
    """The source's spoken sentences, in a fixed order."""
    if source == "django":
        return [spoken for spoken, _ in synth.heldout_sentences()]
    return edu_sample.sample_sentences(edu_sample.manual_html(cache, source), 100000, seed=7)


def speech(condition: Condition, sentences: list[str], n_words: int) -> tuple[np.ndarray, str]:
    """Sentences of the source (drawn in the condition's seeded order) until they hold n_words words, spoken
    with its voice and pause: int16 audio and the reference."""
    rng = np.random.default_rng(condition.seed())
    pairs, words = [], 0
    for index in rng.permutation(len(sentences)):
        if words >= n_words:
            break
        if (pair := synth.spoken_and_label(sentences[index])) is not None:
            pairs.append(pair)
            words += len(pair[1].split())
    voice = synth.Voice(condition.voice, condition.speed_wpm)
    audio, reference = synth.talk(pairs, rng, (condition.pause_s, condition.pause_s), (voice,))
    return (np.clip(audio, -1, 1) * 32767).astype(np.int16), reference


def streamed(model: OnnxModel, audio: np.ndarray, settings: StreamSettings,
             decoder: LexiconLM | None = None) -> tuple[str, list[int]]:
    """The stream fed 100 ms blocks, each request run as soon as it is asked for, stable text checked: the
    finals' raw words, and where its commits cut them (character positions: each end of a partial's stable
    prefix inside its caption)."""
    events = fed_in_blocks(Recognizer(model.info, settings, decoder).stream(), model, audio, BLOCK_SAMPLES)
    return cut_positions(events)


def at_cuts(positions: list[int], cuts: list[int]) -> int:
    """How many of the positions are a cut's: a split there is the space a commit's cut put in, a join the
    place where it lost one."""
    return len(set(positions) & set(cuts))


_MODEL: OnnxModel | None = None
_LMS: dict[tuple, LexiconLM] = {}


def _load(model_dir: str) -> None:
    global _MODEL
    _MODEL = OnnxModel(Path(model_dir), RunnerSettings(intra_op_threads=1))


def language_model(path: str | None, search: dict) -> LexiconLM | None:
    """The worker's language model with the search's settings, loaded once per process (None: greedy)."""
    if path is None:
        return None
    key = (path, *sorted(search.items()))
    if key not in _LMS:
        _LMS[key] = load_lm(_MODEL.vocab, Path(path), DecoderSettings(**search))
    return _LMS[key]


def measure(job: tuple[Condition, list[str], int, dict, str | None, dict]) -> dict:
    condition, sentences, n_words, flat, lm_path, search = job
    audio, reference = speech(condition, sentences, n_words)
    raw = with_flat_settings(StreamSettings(text=TextSettings(written=False)), **flat)
    decoder = language_model(lm_path, search)
    offline = " ".join(f.raw for f in transcribe_array(audio, _MODEL, decoder=decoder))
    text, cuts = streamed(_MODEL, audio, raw, decoder)
    greedy = offline if decoder is None else " ".join(f.raw for f in transcribe_array(audio, _MODEL))
    splits, joins = word_break_differences(text, offline)
    words, chars = reference.split(), " ".join(reference.split())
    counts = {"words": len(words), "chars": len(chars), "splits": len(splits), "joins": len(joins),
              "cut_splits": at_cuts(splits, cuts), "cut_joins": at_cuts(joins, cuts), "cuts": len(cuts),
              "word_errors_offline": edit_distance(words, offline.split()),
              "word_errors_greedy": edit_distance(words, greedy.split()),
              "word_errors_streamed": edit_distance(words, text.split()),
              "char_errors_offline": edit_distance(chars, offline), "char_errors_streamed": edit_distance(chars, text)}
    return {**asdict(condition), "condition": condition.name, "audio_s": len(audio) / RATE, **counts,
            "offline": offline, "streamed": text, "reference": reference}


def rates(rows: list[dict], name: str) -> dict:
    """WER and CER of rows pooled (one condition, or one value of one axis), streamed against offline."""
    total = {key: sum(row[key] for row in rows) for key in ("words", "chars", "splits", "joins", "cut_splits",
             "cut_joins", "cuts", "word_errors_offline", "word_errors_greedy", "word_errors_streamed", "char_errors_offline",
             "char_errors_streamed")}
    out = {"condition": name, **{key: total[key] for key in ("words", "cuts", "splits", "joins", "cut_splits",
                                                               "cut_joins")}}
    for unit, length in (("wer", "words"), ("cer", "chars")):
        kind = "word" if unit == "wer" else "char"
        offline, streamed = total[f"{kind}_errors_offline"], total[f"{kind}_errors_streamed"]
        out[f"{unit}_offline"], out[f"{unit}_streamed"] = offline / total[length], streamed / total[length]
        out[f"{unit}_rel"] = streamed / offline - 1 if offline else float(streamed > 0)
    out["wer_greedy"] = total["word_errors_greedy"] / total["words"]
    out["cuts_per_500"] = 500 * (total["cut_splits"] + total["cut_joins"]) / max(1, total["words"])
    out["ok"] = out["wer_rel"] <= BOUND and out["cer_rel"] <= BOUND and out["cuts_per_500"] <= 1
    return out


def text_lm(source: str, sentences: list[str]) -> Path:
    """A 4-gram of the source's sentences as the model spells them (made once)."""
    labels = [pair[1].split() for sentence in sentences if (pair := synth.spoken_and_label(sentence)) is not None]
    return tiny_lm(labels, name=f"lm-of-{source}")


def grid(sources, voices, speeds, pauses) -> list[Condition]:
    return [Condition(s, v, w, p) for s in sources for v in voices for w in speeds for p in pauses]


def summaries(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """One line per condition, and one per value of each axis (the other axes pooled)."""
    per_condition = [rates([row], row["condition"]) for row in rows]
    per_axis = []
    for axis in ("source", "voice", "speed_wpm", "pause_s"):
        for value in sorted({row[axis] for row in rows}):
            per_axis.append(rates([row for row in rows if row[axis] == value], f"{axis} = {value}"))
    per_axis.append(rates(rows, "all"))
    return per_condition, per_axis


COLUMNS = [("condition", "condition", "s"), ("words", "words", "d"), ("wer_greedy", "WER greedy", ".4f"),
           ("wer_offline", "WER off", ".4f"),
           ("wer_streamed", "WER str", ".4f"), ("wer_rel", "WER rel", "+.1%"), ("cer_offline", "CER off", ".4f"),
           ("cer_streamed", "CER str", ".4f"), ("cer_rel", "CER rel", "+.1%"), ("cuts", "cuts", "d"),
           ("splits", "split", "d"), ("joins", "join", "d"), ("cut_splits", "at cut", "d"),
           ("cut_joins", "at cut", "d"),
           ("cuts_per_500", "cut /500 w", ".2f"), ("ok", "ok", "")]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="ONNX model dir (default: tiny-nb, exported once)")
    parser.add_argument("--held-out", action="store_true", help="the held-out text and voices instead")
    parser.add_argument("--sources", nargs="+", help=f"text sources (default: {' '.join(SOURCES)})")
    parser.add_argument("--voices", nargs="+", help=f"espeak-ng voices (default: {' '.join(VOICES)})")
    parser.add_argument("--speeds", nargs="+", type=int, default=list(SPEEDS_WPM), help="words per minute")
    parser.add_argument("--pauses", nargs="+", type=float, default=list(PAUSES_S), help="seconds; 0: monologue")
    parser.add_argument("--words", type=int, default=600, help="words per condition (default: %(default)s)")
    parser.add_argument("--commit-left-ms", type=int, help="the streams' commit left context (default: the library's)")
    parser.add_argument("--commit-right-ms", type=int, help="their right context (default: the library's)")
    parser.add_argument("--word-end-prob", type=float, help="the sureness a cut needs (default: the library's)")
    lm = parser.add_mutually_exclusive_group()
    lm.add_argument("--lm", type=Path, help="beam search with this language model (a language_model folder or KenLM file)")
    lm.add_argument("--lm-of-text", action="store_true",
                    help="beam search with a 4-gram of each source's own sentences (built once into benchmarks/out)")
    parser.add_argument("--beam-width", type=int, default=DecoderSettings().beam_width,
                        help="with --lm or --lm-of-text (default: the library's, %(default)s)")
    parser.add_argument("--lookback-frames", type=int, default=DecoderSettings().lookback_frames,
                        help="with --lm or --lm-of-text: frames after which a word is stable (default %(default)s)")
    parser.add_argument("--agree-margin", type=float, default=DecoderSettings().agree_margin,
                        help="with --lm or --lm-of-text: beams within this of the best must agree (default %(default)s)")
    parser.add_argument("--jobs", type=int, default=2, help="processes (default: %(default)s)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/debian-edu-doc-cache"), help="apt-get download dir")
    parser.add_argument("--name", default=None, help="JSON name (default: fidelity or fidelity-held-out)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    sources = args.sources or list(HELD_OUT_SOURCES if args.held_out else SOURCES)
    voices = args.voices or list(VOICES + HELD_OUT_VOICES if args.held_out else VOICES)
    texts = {source: source_sentences(source, args.cache) for source in sources}
    conditions = grid(sources, voices, args.speeds, args.pauses)
    model_dir = args.model or default_tiny()
    began = time.monotonic()
    flat = {name: value for name in ("commit_left_ms", "commit_right_ms", "word_end_prob")
            if (value := getattr(args, name)) is not None}
    lms = {source: str(args.lm) if args.lm else None for source in sources}
    if args.lm_of_text:
        lms = {source: str(text_lm(source, texts[source])) for source in sources}
    search = {"beam_width": args.beam_width, "lookback_frames": args.lookback_frames, "agree_margin": args.agree_margin}
    jobs = [(c, texts[c.source], args.words, flat, lms[c.source], search) for c in conditions]
    rows = []
    with multiprocessing.Pool(args.jobs, _load, (str(model_dir),)) as pool:
        for done, row in enumerate(pool.imap(measure, jobs), 1):
            rows.append(row)
            print(f"[{done}/{len(jobs)} {time.monotonic() - began:.0f} s] {row['condition']}: WER "
                  f"{row['word_errors_offline']} -> {row['word_errors_streamed']} errors, "
                  f"{row['splits']} split, {row['joins']} joined ({row['cut_splits']}, {row['cut_joins']} at cuts)",
                  file=sys.stderr, flush=True)
    per_condition, per_axis = summaries(rows)
    print(table(per_condition, COLUMNS))
    print()
    print(table(per_axis, COLUMNS))
    failing = [row["condition"] for row in per_axis if not row["ok"]]
    cells = sum(row["ok"] for row in per_condition)
    print(f"\nconditions (one axis value, the others pooled) outside the bounds: {failing or 'none'}; single "
          f"cells inside them: {cells} of {len(per_condition)} (about {args.words} words each, where one near-tie "
          f"is half a percent of WER)")
    path = write_json(args.name or ("fidelity-held-out" if args.held_out else "fidelity"),
                      {"cpu": cpu_name(), "model": str(model_dir), "words": args.words, "settings": flat,
                       "language_models": lms, "search": search if any(lms.values()) else None,
                       "per_condition": per_condition, "per_axis": per_axis, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
