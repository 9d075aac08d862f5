"""GPU capacity: how many live streams of XLS-R-300M one GPU carries with p95 partial latency ≤ 0.5 s.

One command, on a GPU machine (issue 21), within about 8 minutes:
1. builds the exact XLS-R-300M architecture with random weights (34-logit head) and exports it fp32
   and fp16 (layer norms and softmax kept fp32), or takes --fp32/--fp16 dirs exported elsewhere;
2. checks fp16 against fp32 on the device: largest logit difference and argmax agreement per frame;
3. drives N simulated live streams for N in a rising series: the real Stream objects and one shared
   Batcher over the ONNX Runtime backend (fp16, length buckets, I/O binding, two calls in flight),
   each stream fed its own stretch of held-out speech (espeak-ng, five voices, pauses between
   sentences) in 100 ms blocks paced by the wall clock, staggered over the first 100 ms.

Table per N: mean windows per call and model time per call (the GPU's call, copies included);
partial latency p50/p95 (from the moment the last audio a partial or final covers was fed to the
moment it arrives: the server-side latency, as NVIDIA Riva reports it; a word's own wait for the
next 700 ms commit hop comes on top); final latency p50/p95 (from feeding the audio of its last
word to its arrival); GPU utilization and memory (nvidia-smi, sampled every 200 ms); and the CPU
time per stream per second of audio of the streams' own work (the gateway side: VAD, windows,
stitcher, CTC, text stage; counted on the threads that do it), beside the cores the whole process kept
busy (that adds the event loop, the batcher and ONNX Runtime's host side). The ramp stops at the first N whose partial p95 passes
--limit-s. When the process's CPU, not the GPU, is what limits N (one Python process: the event
loop and the post-model threads share one interpreter), the last lines say so and how many gateway
processes would feed the GPU fully.

Without a GPU it runs the same code on the CPU (--device cpu) for a check of the script itself:
    python benchmarks/gpu.py --device cpu --tiny --streams 1 2 --seconds 8
On the GPU machine (see ../shared/gpu/README.md; it has no espeak-ng, so the speech is made here
first with --prepare-speech and carried over with the wheels):
    python benchmarks/gpu.py --prepare-speech           # here: writes benchmarks/out/gpu_speech.wav
    python benchmarks/gpu.py                           # there: export, parity, ramp; JSON to $OUT too
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import threading
import time
import wave
from pathlib import Path

import numpy as np

# benchmarks/server.py first: common puts the repository, and its own server.py, on sys.path
from server import pct, speech_pool
from common import OUT, cpu_name, table, write_json, xlsr_export  # noqa: E402

BLOCK_SAMPLES = 1600  # 100 ms
SPEECH = OUT / "gpu_speech.wav"


# ---- speech
def prepare_speech(path: Path, seconds: float = 240.0) -> Path:
    """Held-out sentences, paused, five voices in turn (server.py's speech), into one 16 kHz WAV (streams
    start at different offsets into it)."""
    audio = speech_pool(1, seconds)[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16000)
        out.writeframes(audio.tobytes())
    return path


def load_speech(path: Path, seconds: float) -> np.ndarray:
    if not path.exists():
        if shutil.which("espeak-ng") is None:
            raise SystemExit(f"{path} is missing and espeak-ng is not here to make it: run "
                             "`python benchmarks/gpu.py --prepare-speech` where espeak-ng is, and bring the file")
        prepare_speech(path, seconds)
    with wave.open(str(path)) as f:
        return np.frombuffer(f.readframes(f.getnframes()), np.int16)


# ---- models
def models(args) -> tuple[Path, Path, float]:
    """fp32 and fp16 export dirs, and the seconds the export took."""
    began = time.perf_counter()
    if args.tiny:
        from streaming import default_tiny

        fp32 = default_tiny()
        return fp32, fp32, time.perf_counter() - began
    fp32 = args.fp32 or xlsr_export("fp32")
    fp16 = args.fp16 or xlsr_export("fp16")
    return fp32, fp16, time.perf_counter() - began


def parity(fp32, fp16, speech: np.ndarray, n: int = 8) -> dict:
    """fp16 against fp32, both on the device, on n windows of speech (3 s, the default commit window)."""
    windows = [speech[k * 48000 : (k + 1) * 48000].astype(np.float32) / 32768 for k in range(n)]
    a, b = fp32.logits(windows), fp16.logits(windows)
    return {"max_abs_diff": float(max(np.abs(x - y).max() for x, y in zip(a, b))),
            "argmax_agreement": float(np.mean(np.concatenate([x.argmax(-1) == y.argmax(-1) for x, y in zip(a, b)])))}


# ---- measurement
class GpuMonitor:
    """nvidia-smi's utilization and memory, every 200 ms, on a thread (nothing where there is none)."""

    def __init__(self):
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True) if shutil.which("nvidia-smi") else None

    def __enter__(self) -> "GpuMonitor":
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _run(self) -> None:
        command = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"]
        while not self._stop.wait(0.2):
            try:
                util, memory = subprocess.run(command, capture_output=True, text=True, timeout=2).stdout.split(",")[:2]
                self.samples.append((float(util), float(memory)))
            except (OSError, ValueError, subprocess.SubprocessError):
                return

    def summary(self) -> dict:
        if not self.samples:
            return {"gpu_util": None, "gpu_mem_mb": None}
        return {"gpu_util": float(np.mean([u for u, _ in self.samples])),
                "gpu_mem_mb": float(max(m for _, m in self.samples))}


class GatewayCpu:
    """CPU time of the streams' own work (VAD, windows, stitcher, CTC, text stage: a Stream's feed, end
    and deliver), counted on the threads that do it, whatever runs the model."""

    def __init__(self):
        self.seconds, self._lock = 0.0, threading.Lock()

    def wrap(self, stream):
        for name in ("feed", "end", "deliver"):
            setattr(stream, name, self._timed(getattr(stream, name)))
        return stream

    def _timed(self, method):
        def timed(*args, **kwargs):
            began = time.thread_time()
            try:
                return method(*args, **kwargs)
            finally:
                with self._lock:
                    self.seconds += time.thread_time() - began
        return timed


class Listener:
    """One stream's events, each stamped when it arrives, against when its audio was fed."""

    def __init__(self):
        self.fed_at: list[float] = []  # wall time block k was fed
        self.partial: list[float] = []
        self.final: list[float] = []

    def when_fed(self, end_s: float) -> float | None:
        k = max(0, int(np.ceil(end_s * 10 - 1e-6)) - 1)  # the block holding the audio up to end_s
        return self.fed_at[k] if k < len(self.fed_at) else None

    def sink(self, events: list) -> None:
        from streamer.core.events import Final, Partial

        now = time.perf_counter()
        for event in events:
            shown = isinstance(event, Final) or (isinstance(event, Partial) and event.text)
            fed = self.when_fed(event.end_s) if shown else None
            if fed is not None:  # a partial, or a final, answering the audio up to its end
                self.partial.append(now - fed)
            if isinstance(event, Final) and event.words and (fed := self.when_fed(event.words[-1].end_s)) is not None:
                self.final.append(now - fed)


async def drive(backend, speech: np.ndarray, n: int, seconds: float, args) -> dict:
    """N streams for `seconds` of real time through one batcher; their latencies and the batcher's calls."""
    from streamer.core.stream import Recognizer, StreamSettings
    from streamer.inference.batcher import Batcher, BatchSettings

    reports = []
    batcher = Batcher(backend, BatchSettings(max_windows=args.max_batch, max_wait_ms=args.batch_wait_ms),
                      on_batch=reports.append)
    consumer = asyncio.create_task(batcher.run())
    recognizer = Recognizer(backend.info, StreamSettings())
    rng = np.random.default_rng(n)
    blocks = int(seconds * 10)
    offsets = rng.integers(0, max(1, len(speech) - blocks * BLOCK_SAMPLES), n)
    listeners = [Listener() for _ in range(n)]
    gateway = GatewayCpu()
    entries = [batcher.add(gateway.wrap(recognizer.stream()), listener.sink) for listener in listeners]
    cpu_began, start = time.process_time(), time.perf_counter() + 0.2
    for k in range(blocks):
        for group in range(10):  # streams staggered by 10 ms
            await asyncio.sleep(max(0.0, start + k * 0.1 + group * 0.01 - time.perf_counter()))
            for i in range(group, n, 10):
                first = int(offsets[i]) + k * BLOCK_SAMPLES
                listeners[i].fed_at.append(time.perf_counter())
                await batcher.feed(entries[i], speech[first : first + BLOCK_SAMPLES])
    for entry in entries:
        await batcher.end(entry)
    for entry in entries:
        await asyncio.wait_for(entry.drained.wait(), 120)
    cpu_s = time.process_time() - cpu_began
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    await batcher.close()
    return {"reports": reports, "cpu_s": cpu_s, "gateway_cpu_s": gateway.seconds, "listeners": listeners,
            "wall_s": time.perf_counter() - start}


def step(backend, speech: np.ndarray, n: int, args) -> dict:
    with GpuMonitor() as gpu:
        run = asyncio.run(drive(backend, speech, n, args.seconds, args))
    reports, listeners = run["reports"], run["listeners"]
    partial = [x for listener in listeners for x in listener.partial]
    final = [x for listener in listeners for x in listener.final]
    gateway_cpu_s = run["gateway_cpu_s"]
    busy = sum(r.compute_s for r in reports) / run["wall_s"]
    return {
        "streams": n, "calls": len(reports),
        "windows_per_call": float(np.mean([r.windows for r in reports])) if reports else 0.0,
        "call_ms": 1000 * float(np.mean([r.compute_s for r in reports])) if reports else 0.0,
        "model_busy": busy,  # calls' time over wall time (above 1: calls overlapped)
        "partial_p50": pct(partial, 50), "partial_p95": pct(partial, 95),
        "final_p50": pct(final, 50), "final_p95": pct(final, 95),
        "process_cpu": run["cpu_s"] / run["wall_s"],  # cores the whole process kept busy
        "gateway_cpu_ms_per_stream_s": 1000 * gateway_cpu_s / n / args.seconds,
        **gpu.summary(),
    }


COLUMNS = [("streams", "N", "d"), ("windows_per_call", "windows/call", ".1f"), ("call_ms", "ms/call", ".1f"),
           ("model_busy", "model busy", ".2f"), ("partial_p50", "partial p50 s", ".3f"), ("partial_p95", "p95", ".3f"),
           ("final_p50", "final p50 s", ".3f"), ("final_p95", "p95", ".3f"), ("gpu_util", "GPU %", ".0f"),
           ("gpu_mem_mb", "GPU MB", ".0f"), ("process_cpu", "process cores", ".2f"),
           ("gateway_cpu_ms_per_stream_s", "gateway CPU ms/stream·s", ".2f")]


def show(rows: list[dict]) -> str:
    cells = [{k: "–" if row.get(k) is None else row[k] for k, _, _ in COLUMNS} for row in rows]
    return table(cells, [(k, h, f if all(not isinstance(c[k], str) for c in cells) else "") for k, h, f in COLUMNS])


def verdict(rows: list[dict], limit_s: float) -> list[str]:
    """What limited N, and how many gateway processes would feed the GPU fully."""
    good = [r for r in rows if r["partial_p95"] <= limit_s]
    lines = [f"largest N with partial p95 ≤ {limit_s:g} s: {good[-1]['streams'] if good else 'none'}"]
    last = rows[-1]
    per_stream_ms = last["gateway_cpu_ms_per_stream_s"]
    streams_per_core = 1000 / per_stream_ms if per_stream_ms > 0 else float("inf")
    lines.append(f"gateway side: {per_stream_ms:.2f} ms of CPU per stream per second of audio, so one core "
                 f"feeds about {streams_per_core:.0f} streams")
    util = last.get("gpu_util")
    if last["process_cpu"] >= 0.85 and (util is None or util < 80):
        # what the model side could carry: by GPU utilization, or (no nvidia-smi) by the calls' busy time
        headroom = 100 / max(util, 1) if util is not None else 1 / max(last["model_busy"], 1e-6)
        capacity = last["streams"] * headroom
        lines.append(f"limited by this process's CPU (it kept {last['process_cpu']:.2f} cores busy, the model "
                     f"{'busy ' + format(last['model_busy'], '.2f') if util is None else f'GPU {util:.0f}%'}): the "
                     f"model side would carry about {capacity:.0f} streams, fed by about "
                     f"{np.ceil(capacity / streams_per_core):.0f} gateway processes of one core each")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("auto", "cuda", "tensorrt", "cpu"), default="auto")
    parser.add_argument("--streams", type=int, nargs="+", default=[50, 100, 200, 400, 600, 800, 1000, 1200, 1500])
    parser.add_argument("--seconds", type=float, default=20.0, help="real time each step runs (default 20)")
    parser.add_argument("--limit-s", type=float, default=0.5, help="stop after the first N whose partial p95 passes this")
    parser.add_argument("--max-batch", type=int, default=None, help="windows per call (default: the backend's)")
    parser.add_argument("--batch-wait-ms", type=float, default=10.0)
    parser.add_argument("--in-flight", type=int, default=None, help="calls at once (default: the backend's)")
    parser.add_argument("--budget-s", type=float, default=450.0, help="no new step once this much time has gone")
    parser.add_argument("--fp32", type=Path, help="an fp32 export dir (default: build and export XLS-R-300M)")
    parser.add_argument("--fp16", type=Path, help="an fp16 export dir")
    parser.add_argument("--tiny", action="store_true", help="tiny-nb instead of XLS-R-300M (a check of the script)")
    parser.add_argument("--speech", type=Path, default=SPEECH, help=f"16 kHz WAV (default {SPEECH})")
    parser.add_argument("--prepare-speech", action="store_true", help="write --speech with espeak-ng and stop")
    parser.add_argument("--speech-s", type=float, default=240.0, help="how much speech to make (default 240 s)")
    args = parser.parse_args()
    if args.prepare_speech:
        print(f"wrote {prepare_speech(args.speech, args.speech_s)}")
        return
    began = time.perf_counter()
    from streamer.inference.onnx import OnnxBackend, OnnxModel, RunnerSettings

    speech = load_speech(args.speech, args.speech_s)
    fp32_dir, fp16_dir, export_s = models(args)
    print(f"models ready in {export_s:.0f} s: {fp32_dir.name}, {fp16_dir.name}", flush=True)
    settings = RunnerSettings(device=args.device)
    fp16 = OnnxModel(fp16_dir, settings)
    check = parity(OnnxModel(fp32_dir, settings), fp16, speech)
    print(f"on {fp16.provider}: fp16 against fp32: largest logit difference {check['max_abs_diff']:.4f}, "
          f"argmax agreement {check['argmax_agreement']:.4f}", flush=True)
    backend = OnnxBackend(fp16, args.max_batch, args.in_flight)
    asyncio.run(warm(backend))
    rows = []
    for n in args.streams:
        if time.perf_counter() - began + args.seconds * 1.5 > args.budget_s:
            print(f"stopping before N={n}: the time budget ({args.budget_s:g} s) is spent", flush=True)
            break
        rows.append(step(backend, speech, n, args))
        print(show(rows).splitlines()[-1] if len(rows) > 1 else show(rows), flush=True)
        if rows[-1]["partial_p95"] > args.limit_s:
            break
    device = gpu_name() or cpu_name()
    lines = verdict(rows, args.limit_s) if rows else []
    print(f"\n{device}; {fp16_dir.name} on {fp16.provider}; {backend.capabilities}\n{show(rows)}\n" + "\n".join(lines))
    payload = {"device": device, "provider": fp16.provider, "export_s": export_s, "parity": check,
               "capabilities": str(backend.capabilities), "seconds_per_step": args.seconds, "rows": rows,
               "verdict": lines, "total_s": time.perf_counter() - began}
    path = write_json("gpu", payload)
    if os.environ.get("OUT"):
        shutil.copy(path, Path(os.environ["OUT"]) / "gpu.json")
    print(f"wrote {path} ({time.perf_counter() - began:.0f} s in all)")
    backend.close()


async def warm(backend) -> None:
    """One call per length bucket up to 8 s, so no step pays for a first plan."""
    from streamer.inference.backend import ModelInput

    for bucket in [b for b in backend.capabilities.length_buckets if b <= 8 * 16000] or [48000]:
        await backend.logits([ModelInput(np.zeros(bucket, np.float32))])


def gpu_name() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    result = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True)
    return result.stdout.strip().splitlines()[0] if result.returncode == 0 and result.stdout.strip() else None


if __name__ == "__main__":
    main()
