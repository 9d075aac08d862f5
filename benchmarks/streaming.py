"""Streaming benchmark: accuracy, latency and cost of the streaming path for a table of window settings.

Held-out Norwegian sentences (a text source the small model never trained on) are synthesized with
espeak-ng's default `nb` voice and joined by pauses into one stream, which is replayed in 100 ms
blocks through `streamer.stream` on a simulated clock: block k arrives when its last sample has been
spoken, and processing starts when it has arrived and the previous block is done, taking the
measured compute time. Results so depend on compute, not on how busy the machine is otherwise.
With --wall the default setting is also replayed paced by the wall clock, as live audio would be.

Columns: WER/CER of the stream's finals and of the offline transcript (each speech segment in one
pass) against the reference text; the share of words that differ between streamed and offline
(word-level edit distance over the offline word count); partial latency (end of a word → the first
partial that contains it) and final latency (end of a segment's last word → its final), p50 and
p95; real-time factor (compute / audio); peak resident memory.

    python benchmarks/streaming.py                       # tiny-nb accuracy + XLS-R-300M cost (int8)
    python benchmarks/streaming.py --model DIR --sentences 40
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import time
from pathlib import Path

import numpy as np

from common import REPO, table, write_json, xlsr_export

from streamer.events import Final, Partial
from streamer.metrics import cer, edit_distance, wer
from streamer.offline import transcribe_array
from streamer.runner import OnnxModel
from streamer.stream import Recognizer, StreamSettings
from streamer.windower import WindowSettings

BLOCK_SAMPLES = 1600  # 100 ms, as a microphone or browser delivers
SETTINGS = [  # (left_ms, hop_ms, right_ms, final_window_s); the first is the library's default
    (1000, 500, 500, 4.0),
    (1000, 500, 500, 0.0),
    (1000, 500, 500, 12.0),
    (500, 500, 500, 12.0),
    (2000, 500, 500, 12.0),
    (1000, 1000, 500, 12.0),
]


def test_stream(n_sentences: int, seed: int, per_utterance: int = 3) -> tuple[np.ndarray, list[str]]:
    """Held-out sentences in the default voice, a few at a time run together (0.1–0.25 s gaps) into
    utterances of several seconds, the utterances joined by 0.8–1.6 s pauses. int16 audio, references."""
    from models.synth import heldout_sentences, synthesize

    rng = np.random.default_rng(seed)
    sentences = heldout_sentences()
    picked = [sentences[i] for i in sorted(rng.choice(len(sentences), n_sentences, replace=False))]
    gap = lambda low, high: np.zeros(int(rng.uniform(low, high) * 16000), np.float32)
    parts = [np.zeros(8000, np.float32)]
    for i, (spoken, _) in enumerate(picked):
        last_of_utterance = (i + 1) % per_utterance == 0 or i + 1 == len(picked)
        parts += [synthesize(spoken), gap(0.8, 1.6) if last_of_utterance else gap(0.1, 0.25)]
    audio = (np.clip(np.concatenate(parts), -1, 1) * 32767).astype(np.int16)
    return audio, [label for _, label in picked]


def rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def replay(recognizer: Recognizer, audio: np.ndarray, paced: bool) -> dict:
    """Feed 100 ms blocks; stamp each event with its emission time (simulated or wall)."""
    stream, clock, compute, peak = recognizer.stream(), 0.0, 0.0, rss_mb()
    stamped, start_wall = [], time.perf_counter()
    blocks = [audio[i : i + BLOCK_SAMPLES] for i in range(0, len(audio), BLOCK_SAMPLES)]
    for k, block in enumerate(blocks + [None]):
        arrival = min(len(audio), (k + 1) * BLOCK_SAMPLES) / 16000
        if paced:
            time.sleep(max(0.0, start_wall + arrival - time.perf_counter()))
        began = time.perf_counter()
        events = stream.accept(block) if block is not None else stream.finish()
        spent = time.perf_counter() - began
        compute += spent
        clock = max(clock, arrival) + spent
        now = time.perf_counter() - start_wall if paced else clock
        stamped += [(now, e) for e in events]
        peak = max(peak, rss_mb())
    return {"events": stamped, "compute_s": compute, "peak_rss_mb": peak}


def latencies(stamped: list, word_ends_s: list[float]) -> tuple[list[float], list[float]]:
    """Partial latency per spoken word, final latency per final.

    Word ends come from the offline transcript of a model that recognizes this speech (tiny-nb),
    so a random-weight model's latency is measured against the same real word timing. A word is in
    a partial once a partial (or final) covers the audio up to its end; a final's speech end is the
    last word end inside it.
    """
    shown = [(now, e.start_s, e.end_s) for now, e in stamped if isinstance(e, (Partial, Final)) and e.text]
    partial_lat = [min((now for now, start, end in shown if start <= w <= end), default=np.nan) - w
                   for w in word_ends_s]
    final_lat = []
    for now, event in stamped:
        if isinstance(event, Final):
            inside = [w for w in word_ends_s if event.start_s <= w <= event.end_s]
            final_lat.append(now - max(inside, default=event.words[-1].end_s))
    return [x for x in partial_lat if not np.isnan(x)], final_lat


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def word_difference(streamed: str, offline: str) -> float:
    return edit_distance(offline.split(), streamed.split()) / max(1, len(offline.split()))


def run_setting(model: OnnxModel, audio: np.ndarray, references: list[str], offline_text: str,
                word_ends_s: list[float], window: tuple, paced: bool = False, hangover_ms: int | None = None) -> dict:
    left, hop, right, final_s = window
    settings = dataclasses.replace(StreamSettings(), window=WindowSettings(left, hop, right, final_s))
    if hangover_ms is not None:
        settings = dataclasses.replace(settings, vad=dataclasses.replace(settings.vad, hangover_ms=hangover_ms))
    result = replay(Recognizer(model, settings), audio, paced)
    finals = [e for _, e in result["events"] if isinstance(e, Final)]
    streamed = " ".join(f.text for f in finals)
    partial_lat, final_lat = latencies(result["events"], word_ends_s)
    reference = " ".join(references)
    return {
        "model": model.manifest["source"].split("/")[-1] + f" {model.manifest['precision']}",
        "window": f"{left}/{hop}/{right} ms, final {final_s:g} s, hangover {settings.vad.hangover_ms}"
                  + (" (wall)" if paced else ""),
        "wer_stream": wer([reference], [streamed]), "wer_offline": wer([reference], [offline_text]),
        "cer_stream": cer([reference], [streamed]), "cer_offline": cer([reference], [offline_text]),
        "words_differ": word_difference(streamed, offline_text),
        "partial_p50": percentile(partial_lat, 50), "partial_p95": percentile(partial_lat, 95),
        "final_p50": percentile(final_lat, 50), "final_p95": percentile(final_lat, 95),
        "rtf": result["compute_s"] / (len(audio) / 16000), "peak_rss_mb": result["peak_rss_mb"],
        "finals": len(finals),
    }


COLUMNS = [("model", "model", ""), ("window", "left/hop/right, final window", ""),
           ("wer_stream", "WER str", ".3f"), ("wer_offline", "WER off", ".3f"),
           ("cer_stream", "CER str", ".3f"), ("cer_offline", "CER off", ".3f"),
           ("words_differ", "words ≠", ".1%"), ("partial_p50", "partial p50", ".2f"),
           ("partial_p95", "p95", ".2f"), ("final_p50", "final p50", ".2f"), ("final_p95", "p95", ".2f"),
           ("rtf", "RTF", ".3f"), ("peak_rss_mb", "peak MB", ".0f")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", type=Path,
                        help="exported model dir (repeatable); default: models/tiny-nb and XLS-R-300M int8")
    parser.add_argument("--sentences", type=int, default=24)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--settings", type=int, default=len(SETTINGS), help="how many rows of the settings table")
    parser.add_argument("--wall", action="store_true", help="also replay the default setting on the wall clock")
    parser.add_argument("--hangover-ms", type=int, help="VAD hangover for every row (default: the library's)")
    parser.add_argument("--only", type=int, nargs="*", help="run only these rows of the settings table (0-based)")
    args = parser.parse_args()

    audio, references = test_stream(args.sentences, args.seed)
    print(f"{len(references)} held-out sentences, {len(audio) / 16000:.1f} s of audio", flush=True)
    timing_model = OnnxModel(default_tiny())
    word_ends_s = [w.end_s for s in transcribe_array(audio, timing_model) for w in s.words]
    rows = []
    for model_dir in args.model or [default_tiny(), xlsr_export("int8")]:
        model = OnnxModel(model_dir)
        offline_text = " ".join(s.text for s in transcribe_array(audio, model))
        chosen = [SETTINGS[i] for i in args.only] if args.only is not None else SETTINGS[: args.settings]
        for window in chosen:
            rows.append(run_setting(model, audio, references, offline_text, word_ends_s, window,
                                    hangover_ms=args.hangover_ms))
            print(table(rows[-1:], COLUMNS).splitlines()[-1], flush=True)
        if args.wall:
            rows.append(run_setting(model, audio, references, offline_text, word_ends_s, SETTINGS[0], paced=True,
                                    hangover_ms=args.hangover_ms))
    print()
    print(table(rows, COLUMNS))
    path = write_json("streaming", {"audio_s": len(audio) / 16000, "sentences": len(references),
                                    "block_samples": BLOCK_SAMPLES, "rows": rows})
    print(f"wrote {path}")


def default_tiny() -> Path:
    """models/tiny-nb exported to ONNX once per version of its weights (into benchmarks/out)."""
    import hashlib

    from common import OUT

    from streamer.checkpoint import resolve_checkpoint
    from streamer.export import export_checkpoint

    weights = (REPO / "models" / "tiny-nb" / "model.safetensors").read_bytes()
    target = OUT / f"tiny-nb-onnx-fp32-{hashlib.sha256(weights).hexdigest()[:12]}"
    if not (target / "manifest.json").exists():
        export_checkpoint(resolve_checkpoint(str(REPO / "models" / "tiny-nb")), target)
    return target


if __name__ == "__main__":
    main()
