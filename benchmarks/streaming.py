"""Streaming benchmark: accuracy, latency and cost of the streaming path against the offline path.

Two kinds of speech from held-out Norwegian sentences (a text source tiny-nb never trained on),
spoken by five espeak-ng voices at several speeds in turn (models/synth.py SPEAKERS):
- paused: each sentence an utterance, 0.8–1.6 s of silence between them;
- monologue: the sentences joined with no pause at all, as a speaker who never stops.

The audio is replayed in 100 ms blocks on a simulated clock through the stream's sans-I/O
interface: block k arrives when its last sample has been spoken; after each block the driver runs
the stream's requests one by one, most urgent first, each taking its measured compute time, and the
events of a request are stamped when it completes. Results depend on compute, not on how busy the
machine is otherwise. --wall replays the default row paced by the wall clock instead.

Columns: WER/CER of the streamed finals and of the offline transcript against the reference;
the share of words that differ between them (word edit distance over the offline word count);
partial latency (end of a word → the first partial that covers it), final latency (end of a final's
last word → the final), stable lag (end of a word → the moment it is inside a partial's stable
prefix or a final), p50 and p95; compute = streaming compute / offline compute on the same audio;
real-time factor; peak resident memory; the text stage's time per final and per partial (written form:
digits, capitals, full stops). The default is replayed once more with raw words on the same model times
(logits and model time reused), so the difference in final latency is the text stage's own cost.
Every run also checks that stable text is never revised.
Word ends come from tiny-nb's offline transcript, so the random-weight XLS-R model is timed against
real word timing. An untrained model (random weights) finds no word boundaries, so its own commits would
wait the longest for words that never end (``MAX_WORD_MS``) and see far more audio than a real model's:
its rows take the windows, words and events from tiny-nb's logits and time the untrained model on each
of those very windows (compute depends on window lengths only; the frame stride must match); "own
windows" rows show what its own logits cost. A last table shows how much offline differs from itself when only its chunk
length changes, so the "words ≠" figure can be read.

    python benchmarks/streaming.py                        # tiny-nb accuracy + XLS-R-300M cost (int8)
    python benchmarks/streaming.py --sentences 30 --only 0 --wall
    python benchmarks/streaming.py --model benchmarks/out/tiny-nb-onnx-fp32-* --only 0 --beam   # + beam search rows

--beam adds a row per model and speech: the default settings with the incremental beam search and a language
model (--lm, else tiny-nb's own, models/build_lm.py), against offline beam search with the same model.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from common import (build_speech, cpu_name, default_tiny, percentile, rss_mb, table, tiny_lm, write_json,
                    xlsr_export)

from streamer.core.events import Final, Partial, broken_promises
from streamer.text.scoring import cer, edit_distance, wer
from streamer.driver.offline import OFFLINE_CHUNKS, OfflineSettings, transcribe_array
from streamer.backends.onnx import OnnxModel
from streamer.core.stream import Recognizer, StreamSettings
from streamer.captions.cues import CueWriter, LiveCues
from streamer.core.windower import CommitSettings, WindowSettings
from streamer.text.decoder import DecoderSettings
from streamer.text.written import TextSettings

BLOCK_SAMPLES = 1600  # 100 ms, as a microphone or browser delivers
RAW = "raw words (no text stage)"
DEFAULT = StreamSettings()


def commits(left_ms: int, hop_ms: int, right_ms: int, first_pass: bool = False, pause_ms: int = 300,
            word_end_prob: float = CommitSettings.word_end_prob) -> StreamSettings:
    """Commits every hop_ms of speech with left/right context; partials from the commits' right context, or
    from a first pass of their own (first_pass)."""
    commit = CommitSettings(left_ms=left_ms, right_ms=right_ms, hop_ms=hop_ms, min_commit_ms=0, pause_ms=pause_ms,
                            word_end_prob=word_end_prob)
    return dataclasses.replace(DEFAULT, window=WindowSettings() if first_pass else None, commit=commit)


SETTINGS = {  # name → settings; the first is the library's default
    "default": DEFAULT,
    "cut at any word end, right 0.7 s (until 2026-12-07, but its retry)": commits(1500, 700, 700, word_end_prob=0.0),
    "right 0.7 s": commits(1500, 700, 700),
    "cut at a word end at least 0.9 probable": commits(1500, 700, 600, word_end_prob=0.9),
    "hop 0.5 s": commits(1500, 500, 600),
    "right 0.8 s (the default until 2026-11-30)": commits(1500, 700, 800),
    "left 1 s, hop 0.5 s": commits(1000, 500, 600),
    "hop 0.6 s": commits(1500, 600, 600),
    "right 1 s": commits(1500, 700, 1000),
    "hop 1 s": commits(1500, 1000, 600),
    "with a first pass": commits(1500, 700, 600, first_pass=True),
    "until 2026-11-30 (8 s windows)": dataclasses.replace(DEFAULT, window=WindowSettings(), commit=CommitSettings(
        left_ms=2000, right_ms=1000, hop_ms=5000, min_commit_ms=2000, pause_ms=300)),
}


class TextStageTimer:
    """Time spent in a stream's text stage (written form of partials and finals), and how many calls."""

    def __init__(self, stream):
        self.seconds = {"partial": 0.0, "final": 0.0}
        self.calls = {"partial": 0, "final": 0}
        for kind, method in (("partial", "partial_words"), ("final", "final")):
            setattr(stream.text, method, self._timed(kind, getattr(stream.text, method)))

    def _timed(self, kind: str, method):
        def timed(*args):
            began = time.perf_counter()
            try:
                return method(*args)
            finally:
                self.seconds[kind] += time.perf_counter() - began
                self.calls[kind] += 1
        return timed

    def ms_per_call(self, kind: str) -> float:
        return 1000 * self.seconds[kind] / max(1, self.calls[kind])


def lone_logits(info, model: OnnxModel, request) -> np.ndarray:
    """One request run alone, synchronously: this replay is its own driver, on a simulated clock."""
    return model.logits([info.geometry.pad_to_receptive_field(request.audio)], [request.stats])[0]


def replay(recognizer: Recognizer, model: OnnxModel, audio: np.ndarray, paced: bool,
           model_runs: dict | None = None, timed: OnnxModel | None = None) -> dict:
    """Feed 100 ms blocks; run the stream's requests one by one; stamp each event when its request ends.
    The clock advances by each request's model time and by the stream's own work on the result (stitching,
    the text stage). model_runs: logits and model time by request, filled by one replay and reused by
    another, so two replays that differ only after the model see the same model times. timed: a model
    run on each request only for its time (model's logits make the windows and words)."""
    stream, clock, compute, peak, seen = recognizer.stream(), 0.0, 0.0, rss_mb(), 0
    timer = TextStageTimer(stream)
    stamped, start_wall = [], time.perf_counter()
    for k, first in enumerate(list(range(0, len(audio), BLOCK_SAMPLES)) + [None]):
        arrival = min(len(audio), (k + 1) * BLOCK_SAMPLES) / 16000
        if paced:
            time.sleep(max(0.0, start_wall + arrival - time.perf_counter()))
        clock = max(clock, arrival)
        now = lambda: time.perf_counter() - start_wall if paced else clock  # noqa: E731
        events = stream.feed(audio[first : first + BLOCK_SAMPLES]) if first is not None else stream.end()
        stamped += [(now(), e) for e in events]
        while (request := stream.next_request()) is not None:
            key = (request.segment, request.window.start_sample, request.window.end_sample, request.window.kind)
            if model_runs is not None and key in model_runs and not paced:
                logits, spent = model_runs[key]
            else:
                began = time.perf_counter()
                logits = lone_logits(recognizer.info, model, request)
                spent = time.perf_counter() - began
                if timed is not None:
                    began = time.perf_counter()
                    lone_logits(timed.info, timed, request)
                    spent = time.perf_counter() - began
                if model_runs is not None:
                    model_runs[key] = (logits, spent)
            compute += spent
            seen += len(request.audio)
            began = time.perf_counter()
            events = stream.deliver(request, logits)
            clock += spent + (time.perf_counter() - began)
            stamped += [(now(), e) for e in events]
        peak = max(peak, rss_mb())
    return {"events": stamped, "compute_s": compute, "model_audio_s": seen / 16000, "peak_rss_mb": peak,
            "text": timer}


def latencies(stamped: list, word_ends_s: list[float]) -> dict[str, list[float]]:
    """Partial latency per spoken word, final latency per final, stable lag per final word."""
    shown = [(now, e.start_s, e.end_s) for now, e in stamped if isinstance(e, (Partial, Final)) and e.text]
    partial = [min((now for now, start, end in shown if start <= w <= end), default=np.nan) - w for w in word_ends_s]
    final, stable = [], []
    for now, event in stamped:
        if not isinstance(event, Final):
            continue
        inside = [w for w in word_ends_s if event.start_s <= w <= event.end_s]
        final.append(now - max(inside, default=event.words[-1].end_s))
        stable += stable_lags(stamped, event, now)
    return {"partial": [x for x in partial if not np.isnan(x)], "final": final, "stable": stable,
            "cue": cue_lags(stamped)}


def stable_lags(stamped: list, final: Final, final_time: float) -> list[float]:
    """For each word of a final: when it first stood inside a stable prefix (or the final), after its end."""
    ends, position = [], 0
    for word in final.words:
        position += len(word.word)
        ends.append(position)
        position += 1
    lags = []
    partials = [(now, e.stable_chars) for now, e in stamped if isinstance(e, Partial) and e.caption == final.caption]
    for word, end_char in zip(final.words, ends):
        when = min((now for now, chars in partials if chars >= end_char), default=final_time)
        lags.append(min(when, final_time) - word.end_s)
    return lags


def cue_lags(stamped: list) -> list[float]:
    """For each word of the finals: when the cue holding it was written (as `subtitle` writes cues, from
    stable words as they settle), after the word's end."""
    cues, lags = LiveCues(CueWriter()), []
    words = iter([w for _, e in stamped if isinstance(e, Final) for w in e.words])
    for now, event in stamped:
        if isinstance(event, Final):
            written = cues.final(event.caption, event.words)
        elif isinstance(event, Partial) and event.stable_words:
            written = cues.stable(event.caption, event.stable_words)
        else:
            continue
        for cue in written:
            pieces = " ".join(cue.lines).split()
            for _ in range(sum(not piece.endswith("-") for piece in pieces)):
                lags.append(now - next(words).end_s)
    return lags


def words_differ(streamed: str, offline: str) -> float:
    return edit_distance(offline.split(), streamed.split()) / max(1, len(offline.split()))


def offline_run(model: OnnxModel, audio: np.ndarray, timed: OnnxModel | None = None,
                decoder: DecoderSettings = DecoderSettings(kind="greedy")) -> dict:
    """Offline's transcript, and its compute and model audio through the same replay as streaming."""
    result = replay(Recognizer(model.info, OfflineSettings(decoder=decoder).stream_settings()), model, audio,
                    paced=False, timed=timed)
    text = " ".join(e.raw for _, e in result["events"] if isinstance(e, Final))
    return {"text": text, "compute_s": result["compute_s"], "model_audio_s": result["model_audio_s"]}


def run_setting(model: OnnxModel, speech: dict, name: str, settings: StreamSettings, paced: bool = False,
                model_runs: dict | None = None, timed: OnnxModel | None = None) -> dict:
    """One row. timed: the model to time on the windows model's logits make (an untrained model's row)."""
    result = replay(Recognizer(model.info, settings), model, speech["audio"], paced, model_runs, timed)
    timer = result["text"]
    broken = broken_promises([event for _, event in result["events"]])
    if broken:
        raise AssertionError(f"{name}: {broken[0]}")
    finals = [e for _, e in result["events"] if isinstance(e, Final)]
    streamed = " ".join(f.raw for f in finals)
    lat = latencies(result["events"], speech["word_ends_s"])
    shown = timed or model
    key = (model.model_dir, shown.model_dir)
    if settings.decoder.kind == "beam":  # against offline beam search with the same language model
        key += (settings.decoder.lm,)
        if key not in speech["offline"]:
            speech["offline"][key] = offline_run(model, speech["audio"], timed, settings.decoder)
    reference, offline = speech["reference"], speech["offline"][key]
    trained = timed is None and is_trained(model)
    return {
        "model": shown.manifest["source"].split("/")[-1] + f" {shown.manifest['precision']}",
        "speech": speech["kind"],
        "setting": name + (" (wall)" if paced else "") + (" (own windows)" if timed is None and not trained else ""),
        "wer_stream": wer([reference], [streamed]) if trained else None,
        "wer_offline": wer([reference], [offline["text"]]) if trained else None,
        "cer_stream": cer([reference], [streamed]) if trained else None,
        "cer_offline": cer([reference], [offline["text"]]) if trained else None,
        "words_differ": words_differ(streamed, offline["text"]) if trained else None,
        **{f"{kind}_p{q}": percentile(values, q) for kind, values in lat.items() for q in (50, 95)},
        "compute": result["compute_s"] / offline["compute_s"],
        "model_audio": result["model_audio_s"] / offline["model_audio_s"],
        "rtf": result["compute_s"] / (len(speech["audio"]) / 16000), "peak_rss_mb": result["peak_rss_mb"],
        "finals": len(finals),
        "text_ms_final": timer.ms_per_call("final") if settings.text.written else None,
        "text_ms_partial": timer.ms_per_call("partial") if settings.text.written else None,
    }


COLUMNS = [("model", "model", ""), ("speech", "speech", ""), ("setting", "setting", ""),
           ("wer_stream", "WER str", ".3f"), ("wer_offline", "WER off", ".3f"),
           ("cer_stream", "CER str", ".4f"), ("cer_offline", "CER off", ".4f"), ("words_differ", "words ≠", ".1%"),
           ("partial_p50", "partial p50", ".2f"), ("partial_p95", "p95", ".2f"),
           ("final_p50", "final p50", ".2f"), ("final_p95", "p95", ".2f"),
           ("stable_p50", "stable p50", ".2f"), ("stable_p95", "p95", ".2f"),
           ("cue_p50", "cue p50", ".2f"), ("cue_p95", "p95", ".2f"),
           ("compute", "compute ×off", ".2f"), ("model_audio", "audio ×off", ".2f"), ("rtf", "RTF", ".3f"), ("peak_rss_mb", "peak MB", ".0f"),
           ("text_ms_final", "text ms/final", ".2f"), ("text_ms_partial", "ms/partial", ".2f")]


def is_trained(model: OnnxModel) -> bool:
    """False for the random-weight checkpoints common.xlsr_export builds (named ...-random)."""
    return not Path(str(model.manifest["source"])).name.endswith("-random")


def same_geometry(a: OnnxModel, b: OnnxModel) -> None:
    ga, gb = a.info.geometry, b.info.geometry
    if (ga.stride_samples, ga.sample_rate) != (gb.stride_samples, gb.sample_rate):
        raise SystemExit(f"{b.model_dir} frames audio unlike {a.model_dir} ({gb} against {ga}): "
                         "its windows cannot be taken from tiny-nb")


def show(rows: list[dict]) -> str:
    cells = [{k: "–" if row.get(k) is None else format(row[k], f) for k, _, f in COLUMNS} for row in rows]
    return table(cells, [(k, h, "") for k, h, _ in COLUMNS])


def offline_self_difference(model: OnnxModel, speech: dict) -> list[dict]:
    """How much offline differs from itself when only its chunk length changes (30 s is the default)."""
    rows, base = [], speech["offline"][(model.model_dir, model.model_dir)]["text"]
    reference = speech["reference"]
    for chunk_s, context_s in ((30, 3), (12, 3), (8, 2), (4, 1)):
        chunks = dataclasses.replace(OFFLINE_CHUNKS, hop_ms=(chunk_s - 2 * context_s) * 1000, left_ms=context_s * 1000,
                                     right_ms=context_s * 1000)
        text = " ".join(f.raw for f in transcribe_array(speech["audio"], model, OfflineSettings(chunks=chunks)))
        rows.append({"speech": speech["kind"], "chunks": f"{chunk_s} s, context {context_s} s",
                     "wer": wer([reference], [text]), "cer": cer([reference], [text]),
                     "words_differ": words_differ(text, base)})
    return rows


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", type=Path,
                        help="exported model dir (repeatable); default: models/tiny-nb and XLS-R-300M int8")
    parser.add_argument("--sentences", type=int, default=30, help="sentences per kind of speech")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--speech", choices=("paused", "monologue"), action="append",
                        help="kinds of speech (default both)")
    parser.add_argument("--wall", action="store_true", help="also replay the default setting on the wall clock")
    parser.add_argument("--only", type=int, nargs="*", help="run only these rows of the settings table (0-based)")
    parser.add_argument("--beam", action="store_true",
                        help="also the default with beam search and a language model (trained models only)")
    parser.add_argument("--lm", type=Path, help="with --beam: the language model (default: tiny-nb's own)")
    parser.add_argument("--own-windows", action="store_true",
                        help="also run each untrained model on the windows its own logits make")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    tiny = OnnxModel(default_tiny())
    models = [OnnxModel(m) for m in (args.model or [default_tiny(), xlsr_export("int8")])]
    # (model whose logits make the windows, model timed on them): an untrained one on tiny-nb's windows
    runs = [(m, m) if is_trained(m) else (tiny, m) for m in models]
    runs += [(m, m) for m in models if args.own_windows and not is_trained(m)]
    for deciding, timed in runs:
        same_geometry(deciding, timed)
    speeches = [prepared_speech(kind, args, tiny, runs) for kind in args.speech or ["paused", "monologue"]]
    rows = [row for model, timed in runs for speech in speeches
            for row in speech_rows(model, None if timed is model else timed, speech, args)]
    print(f"\n{cpu_name()}\n" + show(rows))
    text_cost = text_stage_cost(rows)
    print("\ntext stage: final latency p50 of the default (written form) minus the same replay with raw words, "
          "on the same model times:\n" + table(text_cost, [("model", "model", ""), ("speech", "speech", ""),
                                                          ("final_p50_delta_ms", "Δ final p50 ms", ".2f"),
                                                          ("text_ms_final", "text ms/final", ".2f"),
                                                          ("text_ms_partial", "ms/partial", ".2f")]))
    self_rows = [r for s in speeches for r in offline_self_difference(tiny, s)]
    print("\noffline against itself (" + tiny.manifest["source"].split("/")[-1] + "):")
    print(table(self_rows, [("speech", "speech", ""), ("chunks", "offline chunks", ""), ("wer", "WER", ".3f"),
                            ("cer", "CER", ".4f"), ("words_differ", "words ≠ 30 s chunks", ".1%")]))
    path = write_json("streaming", {"block_samples": BLOCK_SAMPLES, "sentences": args.sentences,
                                    "audio_s": {s["kind"]: len(s["audio"]) / 16000 for s in speeches},
                                    "rows": rows, "offline_self": self_rows, "text_stage": text_cost})
    print(f"wrote {path}")


def prepared_speech(kind: str, args: argparse.Namespace, tiny: OnnxModel, runs: list) -> dict:
    """One kind of speech, its reference, tiny-nb's word ends and each run's offline transcript."""
    audio, reference = build_speech(kind, args.sentences, args.seed)
    word_ends = [w.end_s for f in transcribe_array(audio, tiny) for w in f.words]
    speech = {"kind": kind, "audio": audio, "reference": reference, "word_ends_s": word_ends, "offline": {}}
    for deciding, timed in runs:
        speech["offline"][(deciding.model_dir, timed.model_dir)] = offline_run(
            deciding, audio, None if timed is deciding else timed)
    if (tiny.model_dir, tiny.model_dir) not in speech["offline"]:  # offline against itself is tiny-nb's
        speech["offline"][(tiny.model_dir, tiny.model_dir)] = offline_run(tiny, audio)
    print(f"{kind}: {args.sentences} sentences, {len(audio) / 16000:.1f} s of audio", flush=True)
    return speech


def speech_rows(model: OnnxModel, timed: OnnxModel | None, speech: dict, args: argparse.Namespace) -> list[dict]:
    """The chosen settings' rows for one model and speech (each printed as it comes)."""
    names = list(SETTINGS)
    chosen = [names[i] for i in args.only] if args.only is not None else names
    model_runs: dict = {}
    jobs = [(name, SETTINGS[name], {"model_runs": model_runs if name == names[0] else None}) for name in chosen]
    if names[0] in chosen:  # the text stage's cost: the default again with raw words, on the same model times
        jobs.append((RAW, dataclasses.replace(DEFAULT, text=TextSettings(written=False)), {"model_runs": model_runs}))
    if args.wall:
        jobs.append((names[0], SETTINGS[names[0]], {"paced": True}))
    if args.beam and timed is None and is_trained(model):
        beam = dataclasses.replace(DEFAULT, decoder=DecoderSettings(kind="beam", lm=str(args.lm or tiny_lm())))
        jobs.append((f"beam search, width {beam.decoder.beam_width}", beam, {}))
    rows = []
    for name, settings, options in jobs:
        rows.append(run_setting(model, speech, name, settings, timed=timed, **options))
        print(show(rows[-1:]).splitlines()[-1], flush=True)
    return rows


def text_stage_cost(rows: list[dict]) -> list[dict]:
    out = []
    for raw in [r for r in rows if r["setting"] == RAW]:
        written = next(r for r in rows if r["model"] == raw["model"] and r["speech"] == raw["speech"]
                       and r["setting"] == "default")
        out.append({"model": raw["model"], "speech": raw["speech"],
                    "final_p50_delta_ms": 1000 * (written["final_p50"] - raw["final_p50"]),
                    "text_ms_final": written["text_ms_final"], "text_ms_partial": written["text_ms_partial"]})
    return out


if __name__ == "__main__":
    main()
