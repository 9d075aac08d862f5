"""Subtitle lag as a viewer sees it: from the end of a spoken word to the moment it arrives, in real time,
measured from outside a real `streamer subtitle` process.

Held-out sentences (espeak-ng, five voices in turn; models/synth.py), as in benchmarks/streaming.py:
- paused: 0.8–1.6 s of silence between sentences;
- monologue: the sentences joined with no pause at all.

This script is the audio source: it writes a WAV into a named pipe in 100 ms blocks, each when its
last sample has been spoken (the wall clock), and `streamer subtitle PIPE --jsonl /dev/stdout` reads
it through ffmpeg as it would any input. Every JSONL line is stamped when it arrives here. For each
word of the finals (its end on the audio's clock, from the final's own word times):
- word → partial: the first partial whose time span reaches past the word's end;
- word → stable: the first partial whose stable prefix holds the word (or its final);
- word → final: its caption's final;
- word → cue: the `cue` line of the cue that holds it (what SRT/WebVTT/HLS viewers see).
Lags include ffmpeg's reading of the pipe, VAD, the model on this machine's CPU, the text stage and
the writing of the files: all a viewer would wait for. The speech follows --lead-in-s (6) of silence:
a live captioner runs before the speaker starts, and ffmpeg holds back the first ~5.6 s of a piped
WAV while it probes the input (a start-up cost, once per run, that would otherwise fall on the first
words).

    python benchmarks/lag.py                         # tiny-nb, both kinds of speech, 30 sentences each
    python benchmarks/lag.py --sentences 10 -- --commit-right-ms 1000   # extra options for subtitle
    python benchmarks/lag.py --beam          # also `--decoder beam --lm LM` (tiny-nb's own LM unless --lm)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import numpy as np

from common import REPO, build_speech, cpu_name, percentile, table, tiny_lm, write_json

BLOCK_SAMPLES = 1600  # 100 ms, as a microphone or browser delivers


def speak_into(pipe: Path, audio: np.ndarray, began: list[float]) -> None:
    """Write a WAV header, then the audio in blocks paced by the wall clock; began[0]: when sample 0 was
    'spoken' (block k is written at began + its end)."""
    with open(pipe, "wb") as out:
        header = tempfile.SpooledTemporaryFile()
        with wave.open(header, "wb") as f:
            f.setnchannels(1), f.setsampwidth(2), f.setframerate(16000)
            f.setnframes(len(audio))
        header.seek(0)
        out.write(header.read()[:44])
        began.append(time.monotonic())
        for k in range(0, len(audio), BLOCK_SAMPLES):
            block = audio[k : k + BLOCK_SAMPLES]
            time.sleep(max(0.0, began[0] + (k + len(block)) / 16000 - time.monotonic()))
            out.write(block.tobytes())
            out.flush()


def run(model: Path, audio: np.ndarray, extra: list[str]) -> tuple[list[tuple[float, dict]], float]:
    """The subtitle process's JSONL events, each with its arrival on the audio's clock (seconds after
    sample 0 was spoken)."""
    with tempfile.TemporaryDirectory() as folder:
        pipe = Path(folder) / "speech.wav"
        os.mkfifo(pipe)
        command = [sys.executable, "-m", "streamer.cli", "subtitle", str(pipe), "--model", str(model),
                   "--jsonl", "/dev/stdout", "--srt", str(Path(folder) / "out.srt"), "--no-progress", *extra]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        began: list[float] = []
        speaker = threading.Thread(target=speak_into, args=(pipe, audio, began), daemon=True)
        speaker.start()
        stamped = [(time.monotonic(), json.loads(line)) for line in process.stdout]
        err = process.stderr.read()
        if process.wait() != 0:
            raise SystemExit(f"subtitle failed: {err}")
        speaker.join()
    return [(t - began[0], event) for t, event in stamped], len(audio) / 16000


def lags(stamped: list[tuple[float, dict]]) -> dict[str, list[float]]:
    finals = [(t, e) for t, e in stamped if e["type"] == "final"]
    partials = [(t, e) for t, e in stamped if e["type"] == "partial"]
    out: dict[str, list[float]] = {"partial": [], "stable": [], "final": [], "cue": []}
    for t_final, final in finals:
        mine = [(t, p) for t, p in partials if p["segment"] == final["segment"]]
        position = 0
        for word in final["words"]:
            position += len(word["word"])
            shown = min((t for t, p in mine if p["end"] >= word["end"] and p["text"]), default=t_final)
            stable = min((t for t, p in mine if p["stable_chars"] >= position), default=t_final)
            out["partial"].append(min(shown, t_final) - word["end"])
            out["stable"].append(min(stable, t_final) - word["end"])
            out["final"].append(t_final - word["end"])
            position += 1
    words = iter([w for _, f in finals for w in f["words"]])
    for t, cue in [(t, e) for t, e in stamped if e["type"] == "cue"]:
        for _ in range(sum(not piece.endswith("-") for piece in cue["text"].split())):
            out["cue"].append(t - next(words)["end"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="exported model dir (default: models/tiny-nb, exported once)")
    parser.add_argument("--sentences", type=int, default=30, help="sentences per kind of speech")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--speech", choices=("paused", "monologue"), action="append", help="default both")
    parser.add_argument("--lead-in-s", type=float, default=6.0,
                        help="silence before the speech, for ffmpeg's probing of the input (default 6)")
    parser.add_argument("--beam", action="store_true", help="each kind of speech again with beam search")
    parser.add_argument("--lm", type=Path, help="with --beam: the language model (default: tiny-nb's own)")
    parser.add_argument("extra", nargs="*", help="options for `streamer subtitle` (after --)")
    args = parser.parse_args()
    from common import default_tiny

    model = args.model or default_tiny()
    decoders = {"greedy": ["--decoder", "greedy"]}
    if args.beam:
        decoders["beam"] = ["--decoder", "beam", "--lm", str(args.lm or tiny_lm())]
    rows = []
    for kind in args.speech or ["paused", "monologue"]:
        speech, _ = build_speech(kind, args.sentences, args.seed)
        audio = np.concatenate([np.zeros(int(args.lead_in_s * 16000), np.int16), speech])
        for decoder, options in decoders.items():
            print(f"{kind}, {decoder}: {args.sentences} sentences, {len(speech) / 16000:.1f} s after "
                  f"{args.lead_in_s:g} s of silence, in real time", flush=True)
            stamped, _ = run(model, audio, options + args.extra)
            found = lags(stamped)
            rows.append({"speech": kind, "decoder": decoder, "words": len(found["final"]),
                         "cues": sum(e["type"] == "cue" for _, e in stamped),
                         **{f"{k}_p{q}": percentile(v, q) for k, v in found.items() for q in (50, 95)}})
            print(table(rows[-1:], columns()).splitlines()[-1], flush=True)
    print(f"\n{cpu_name()}, {os.cpu_count()} cores; {model.name}; seconds\n" + table(rows, columns()))
    print(f"wrote {write_json('lag', {'model': str(model), 'extra': args.extra, 'lead_in_s': args.lead_in_s, 'rows': rows})}")


def columns() -> list[tuple[str, str, str]]:
    out = [("speech", "speech", ""), ("decoder", "decoder", ""), ("words", "words", "d"), ("cues", "cues", "d")]
    for kind in ("partial", "stable", "final", "cue"):
        out += [(f"{kind}_p50", f"word→{kind} p50", ".2f"), (f"{kind}_p95", "p95", ".2f")]
    return out


if __name__ == "__main__":
    main()
