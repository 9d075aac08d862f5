"""Shared benchmark plumbing: the XLS-R-300M-architecture model, test audio, tables and JSON."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import resource
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "out"
NPSC = REPO / "tests" / "data" / "npsc"
sys.path.insert(0, str(REPO))


def xlsr_export(precision: str, checkpoint: Path | None = None, root: Path = OUT) -> Path:
    """An exported XLS-R-300M-architecture model (random weights unless a checkpoint is given), cached in root."""
    from models.random_checkpoint import save_random_checkpoint
    from streamer.export.checkpoint import resolve_checkpoint
    from streamer.export.onnx_export import ExportSettings, export_checkpoint

    checkpoint = checkpoint or root / "xlsr-300m-random"
    if not (checkpoint / "config.json").exists():
        print(f"building a random-weight XLS-R-300M checkpoint in {checkpoint}", file=sys.stderr)
        save_random_checkpoint(checkpoint, "xlsr-300m")
    target = root / f"{checkpoint.name}-onnx-{precision}"
    if not (target / "manifest.json").exists():
        print(f"exporting {checkpoint} ({precision})", file=sys.stderr)
        export_checkpoint(resolve_checkpoint(str(checkpoint)), target, ExportSettings(precision=precision),
                          log=lambda m: print(m, file=sys.stderr))
    return target


def speech_audio(seconds: float) -> np.ndarray:
    """float32 16 kHz speech of the given length: the NPSC clips (repeated), or the packaged espeak clip."""
    from streamer.sources.ffmpeg import read_audio, read_wav
    from streamer.core.pcm import to_float32

    clips = [to_float32(read_audio(str(p))) for p in sorted(NPSC.glob("*.mp3"))] if NPSC.exists() else []
    if not clips:
        from importlib.resources import files

        clips = [read_wav(files("streamer") / "data" / "parity_nb.wav")]
    audio = np.concatenate(clips)
    return np.tile(audio, int(np.ceil(seconds * 16000 / len(audio))))[: int(seconds * 16000)]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
            "date": datetime.date.today().isoformat()}


def table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """columns: (key, header, format spec)."""
    widths = [max(len(h), *(len(format(r[k], f)) for r in rows)) for k, h, f in columns]
    lines = ["  ".join(h.rjust(w) for (_, h, _), w in zip(columns, widths))]
    lines += ["  ".join(format(r[k], f).rjust(w) for (k, _, f), w in zip(columns, widths)) for r in rows]
    return "\n".join(lines)


def write_json(name: str, payload: dict) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=1), encoding="utf-8")
    return path


def default_tiny() -> Path:
    """models/tiny-nb exported to ONNX once per version of its weights (into benchmarks/out)."""
    from streamer.export.checkpoint import resolve_checkpoint
    from streamer.export.onnx_export import export_checkpoint

    weights = (REPO / "models" / "tiny-nb" / "model.safetensors").read_bytes()
    target = OUT / f"tiny-nb-onnx-fp32-{hashlib.sha256(weights).hexdigest()[:12]}"
    if not (target / "manifest.json").exists():
        export_checkpoint(resolve_checkpoint(str(REPO / "models" / "tiny-nb")), target)
    return target


def tiny_lm(sentences: list[list[str]] | None = None, name: str = "tiny-nb") -> Path:
    """A language_model folder (models/build_lm.py) in benchmarks/out, made once: tiny-nb's own, of its training
    text, or one of the given sentences (word lists) under name. Never inside models/tiny-nb, whose export would
    then ship it."""
    from models.build_lm import build

    text = "\n".join(" ".join(words) for words in sentences) if sentences is not None else ""
    suffix = f"-{hashlib.sha256(text.encode()).hexdigest()[:10]}" if sentences is not None else ""
    target = OUT / f"{name}-lm{suffix}"
    if not (target / "lm.arpa").exists():
        build(target, sentences=sentences)
    return target


def build_speech(kind: str, n_sentences: int, seed: int) -> tuple[np.ndarray, str]:
    """int16 audio and its reference text: held-out sentences, paused or as one monologue."""
    from models.synth import heldout_sentences, talk

    rng = np.random.default_rng(seed)
    sentences = heldout_sentences()
    picked = [sentences[i] for i in sorted(rng.choice(len(sentences), n_sentences, replace=False))]
    audio, reference = talk(picked, rng, (0.8, 1.6) if kind == "paused" else (0.0, 0.0))
    return (np.clip(audio, -1, 1) * 32767).astype(np.int16), reference


def fed_in_blocks(stream, model, audio: np.ndarray, block_samples: int = 1600) -> list:
    """A stream's events for audio fed in blocks (100 ms by default), each request run alone as soon as it is
    asked for; raises AssertionError if its stable text was ever revised."""
    from streamer.core.events import broken_promises

    events = []

    def run() -> None:
        while (request := stream.next_request()) is not None:
            padded = model.geometry.pad_to_receptive_field(request.audio)
            events.extend(stream.deliver(request, model.logits([padded], [request.stats])[0]))

    for start in range(0, len(audio), block_samples):
        events.extend(stream.feed(audio[start : start + block_samples]))
        run()
    events.extend(stream.end())
    run()
    if broken := broken_promises(events):
        raise AssertionError(f"stable text revised: {broken[:3]}")
    return events


def rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")
