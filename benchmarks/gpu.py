"""GPU capacity: how many live streams of XLS-R-300M one GPU carries with p95 partial latency ≤ 0.5 s.

One command, on a GPU machine (issue 21), within about 8 minutes:
1. builds the exact XLS-R-300M architecture with random weights (34-logit head) and exports it fp32
   and fp16 (layer norms and softmax kept fp32), or takes --fp32/--fp16 dirs exported elsewhere;
2. checks fp16 against fp32 on the device: largest logit difference and argmax agreement per frame;
3. drives N simulated live streams for N in a rising series: the real Stream objects and a shared
   Batcher over the ONNX Runtime backend (fp16, length buckets, I/O binding, calls in flight), each
   stream fed its own stretch of held-out speech (espeak-ng, five voices, pauses between sentences)
   in 100 ms blocks paced by the wall clock, staggered over the first 100 ms. A plan has phases
   P:N,N,...: P gateway processes share the GPU, each with its own session, batcher and N/P streams,
   as P `streamer serve` processes behind a balancer would (one Python process carries a few hundred
   streams: the streams' own work shares one interpreter); each phase stops at its first N whose
   partial p95 passes --limit-s;
4. at the last phase's largest good N, one step per batching variant (--sweep: windows per call, the
   wait for a call to fill, calls in flight), from which the defaults are chosen.

Table per step: windows per call and model time per call (the GPU's call, copies included); partial
latency p50/p95 (from the moment the last audio a partial or final covers was fed to the moment it
arrives: the server-side latency, as NVIDIA Riva reports it; a word's own wait for the next 700 ms
commit hop comes on top); final latency p50/p95 (from feeding the audio of its last word to its
arrival); GPU utilization and memory (nvidia-smi, sampled every 200 ms); the cores the gateway
processes kept busy, and the CPU time per stream per second of audio of the streams' own work (VAD,
windows, stitcher, CTC, text stage; counted on the threads that do it).

Without a GPU it runs the same code on the CPU (--device cpu) for a check of the script itself:
    python benchmarks/gpu.py --device cpu --tiny --plan 1:1,2 2:2,4 --sweep batch=4 --seconds 8
On the GPU machine (see benchmarks/gpu_prepare.sh: it has no espeak-ng, so the speech is made here
first with --prepare-speech and carried over with the wheels):
    python benchmarks/gpu.py --prepare-speech           # here: writes benchmarks/out/gpu_speech.wav
    python benchmarks/gpu.py --export-to DIR            # there, in the background while wheels arrive
    python benchmarks/gpu.py --fp32 DIR/... --fp16 DIR/...   # there: parity, the plan, the sweep; JSON to $OUT
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import numpy as np

# benchmarks/server.py first: common puts the repository, and its own server.py, on sys.path (so does a
# gateway process, which starts with this process's sys.path)
sys.path.insert(0, str(Path(__file__).resolve().parent))
from server import pct, speech_pool  # noqa: E402
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
        from common import default_tiny

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


async def drive(backend, speech: np.ndarray, n: int, args, seed: int, start_wall: float, batch: dict) -> dict:
    """N streams for args.seconds of real time through one batcher, starting at wall time start_wall; their
    latencies and the batcher's calls, as plain data (it crosses process boundaries)."""
    from streamer.core.stream import Recognizer, StreamSettings
    from streamer.driver.batcher import Batcher, BatchSettings

    reports = []
    batcher = Batcher(backend, BatchSettings(max_windows=batch["max_batch"], max_wait_ms=batch["wait_ms"]),
                      on_batch=reports.append)
    consumer = asyncio.create_task(batcher.run())
    recognizer = Recognizer(backend.info, StreamSettings())
    rng = np.random.default_rng(seed)
    blocks = int(args.seconds * 10)
    offsets = rng.integers(0, max(1, len(speech) - blocks * BLOCK_SAMPLES), n)
    listeners = [Listener() for _ in range(n)]
    gateway = GatewayCpu()
    entries = [batcher.add(gateway.wrap(recognizer.stream()), listener.sink) for listener in listeners]
    cpu_began, start = time.process_time(), time.perf_counter() + max(0.0, start_wall - time.time())
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
    return {"calls": [(r.windows, r.compute_s) for r in reports], "cpu_s": cpu_s, "gateway_cpu_s": gateway.seconds,
            "partial": [x for listener in listeners for x in listener.partial],
            "final": [x for listener in listeners for x in listener.final], "wall_s": time.perf_counter() - start}


def batch_of(args, **overrides) -> dict:
    """The batching a step runs with: windows per call (None: the backend's), the wait, the calls in flight."""
    return {"max_batch": args.max_batch, "wait_ms": args.batch_wait_ms, "in_flight": args.in_flight, **overrides}


class Gateways:
    """P gateway processes on the one GPU, each with its own ONNX Runtime session, batcher and streams, as P
    `streamer serve` processes behind a balancer would run; P = 1 runs in this process. A step splits N
    streams over them and starts them all at one wall time."""

    def __init__(self, model_dir: Path, processes: int, args):
        self.args, self.processes, self.links = args, processes, []
        if processes == 1:
            self.local = Gateway(model_dir, args, threads=0)
            return
        # Each process keeps its own CUDA arena: 8 of them warming 256 rows of 4 s ran the H200 out of memory
        # (2.5 GB for one LayerNorm's buffer), so P processes share the single process's rows between them.
        from streamer.backends.onnx import GPU_BATCH

        args = argparse.Namespace(**{**vars(args), "max_batch": args.max_batch or max(16, GPU_BATCH // processes)})
        self.args = args
        context = multiprocessing.get_context("spawn")
        threads = max(1, (os.cpu_count() or 2) // processes)
        for index in range(processes):
            parent, child = context.Pipe()
            context.Process(target=serve_gateway, args=(child, str(model_dir), args, threads), daemon=True).start()
            self.links.append(parent)
        for link in self.links:
            try:
                ready = link.recv() == "ready"
            except EOFError:
                ready = False
            if not ready:
                raise SystemExit("a gateway process failed to start (its traceback is above)")

    def run(self, n: int, batch: dict) -> list[dict]:
        start_wall = time.time() + 0.5
        if not self.links:
            return [self.local.run(n, n, start_wall, batch)]
        shares = [n // self.processes + (i < n % self.processes) for i in range(self.processes)]
        for index, (link, share) in enumerate(zip(self.links, shares)):
            link.send((share, n * 100 + index, start_wall, batch))
        return [link.recv() for link in self.links]

    def close(self) -> None:
        for link in self.links:
            link.send(None)
        if not self.links:
            self.local.backend.close()


class Gateway:
    """One process's side: the fp16 session on the device, warmed, and the speech."""

    def __init__(self, model_dir: Path, args, threads: int):
        from streamer.backends.onnx import OnnxBackend, OnnxModel, RunnerSettings

        self.args, self.speech = args, load_speech(args.speech, args.speech_s)
        self.model = OnnxModel(model_dir, RunnerSettings(device=args.device, intra_op_threads=threads))
        self.shape = (args.max_batch, args.in_flight)  # the backend's windows per call and calls in flight
        self.backend = OnnxBackend(self.model, *self.shape)
        asyncio.run(warm(self.backend))

    def run(self, n: int, seed: int, start_wall: float, batch: dict) -> dict:
        from streamer.backends.onnx import OnnxBackend

        wanted = (batch["max_batch"] or self.args.max_batch, batch["in_flight"])  # None: the process's own rows
        if wanted != self.shape:
            self.backend.close()
            self.shape = wanted
            self.backend = OnnxBackend(self.model, *self.shape)
        if n == 0:
            return {"calls": [], "cpu_s": 0.0, "gateway_cpu_s": 0.0, "partial": [], "final": [], "wall_s": 0.0}
        return asyncio.run(drive(self.backend, self.speech, n, self.args, seed, start_wall, batch))


def serve_gateway(link, model_dir: str, args, threads: int) -> None:
    """A gateway process: load, say ready, run the steps it is sent until None."""
    try:
        gateway = Gateway(Path(model_dir), args, threads)
    except BaseException:
        link.send("failed")
        raise
    link.send("ready")
    while (task := link.recv()) is not None:
        link.send(gateway.run(*task))
    gateway.backend.close()


def step(gateways: Gateways, n: int, batch: dict) -> dict:
    with GpuMonitor() as gpu:
        runs = gateways.run(n, batch)
    calls = [c for run in runs for c in run["calls"]]
    partial = [x for run in runs for x in run["partial"]]
    final = [x for run in runs for x in run["final"]]
    wall_s = max(run["wall_s"] for run in runs)
    seconds = gateways.args.seconds
    return {
        "processes": gateways.processes, "streams": n, "max_batch": batch["max_batch"] or "auto",
        "wait_ms": batch["wait_ms"], "in_flight": batch["in_flight"] or "auto", "calls": len(calls),
        "windows_per_call": float(np.mean([w for w, _ in calls])) if calls else 0.0,
        "call_ms": 1000 * float(np.mean([c for _, c in calls])) if calls else 0.0,
        "model_busy": sum(c for _, c in calls) / wall_s,  # calls' time over wall time (above 1: calls overlapped)
        "partial_p50": pct(partial, 50), "partial_p95": pct(partial, 95),
        "final_p50": pct(final, 50), "final_p95": pct(final, 95),
        "process_cpu": sum(run["cpu_s"] for run in runs) / wall_s,  # cores the gateway processes kept busy
        "gateway_cpu_ms_per_stream_s": 1000 * sum(run["gateway_cpu_s"] for run in runs) / n / seconds,
        **gpu.summary(),
    }


COLUMNS = [("processes", "P", "d"), ("streams", "N", "d"), ("max_batch", "batch", ""), ("wait_ms", "wait ms", "g"),
           ("in_flight", "flight", ""), ("windows_per_call", "windows/call", ".1f"), ("call_ms", "ms/call", ".1f"),
           ("model_busy", "model busy", ".2f"), ("partial_p50", "partial p50 s", ".3f"), ("partial_p95", "p95", ".3f"),
           ("final_p50", "final p50 s", ".3f"), ("final_p95", "p95", ".3f"), ("gpu_util", "GPU %", ".0f"),
           ("gpu_mem_mb", "GPU MB", ".0f"), ("process_cpu", "gateway cores", ".2f"),
           ("gateway_cpu_ms_per_stream_s", "gateway CPU ms/stream·s", ".2f")]


def show(rows: list[dict]) -> str:
    cells = [{k: "–" if row.get(k) is None else row[k] for k, _, _ in COLUMNS} for row in rows]
    return table(cells, [(k, h, f if all(not isinstance(c[k], str) for c in cells) else "") for k, h, f in COLUMNS])


def verdict(rows: list[dict], limit_s: float) -> list[str]:
    """The largest N per process count, and what limited one process."""
    lines = []
    for processes in sorted({r["processes"] for r in rows}):
        good = [r["streams"] for r in rows if r["processes"] == processes and r["partial_p95"] <= limit_s]
        lines.append(f"{processes} gateway process{'es' if processes > 1 else ''}: largest N with partial p95 "
                     f"≤ {limit_s:g} s: {max(good) if good else 'none'}")
    per_stream_ms = float(np.median([r["gateway_cpu_ms_per_stream_s"] for r in rows]))
    lines.append(f"gateway side: {per_stream_ms:.2f} ms of CPU per stream per second of audio, so one core "
                 f"feeds about {1000 / max(per_stream_ms, 1e-6):.0f} streams")
    return lines


def progress(rows: list[dict]) -> None:
    """The newest row as it comes (with the header the first time; the final table is aligned anew)."""
    print(show(rows) if len(rows) == 1 else show(rows).splitlines()[-1], flush=True)


def parse_plan(text: str) -> tuple[int, list[int]]:
    """'P:N,N,...' → (P, [N, ...])."""
    try:
        processes, streams = text.split(":")
        return int(processes), [int(n) for n in streams.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"a plan phase is P:N,N,... (gateway processes: stream counts), not {text!r}")


def parse_sweep(text: str) -> dict:
    """'batch=128,wait=5,flight=4' → overrides of the batching."""
    names = {"batch": "max_batch", "wait": "wait_ms", "flight": "in_flight"}
    try:
        pairs = [part.split("=") for part in text.split(",")]
        return {names[k]: (float(v) if k == "wait" else int(v)) for k, v in pairs}
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(f"a sweep entry is batch=B,wait=MS,flight=F (any of them), not {text!r}")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("auto", "cuda", "tensorrt", "cpu"), default="auto")
    parser.add_argument("--plan", type=parse_plan, nargs="+", default=[parse_plan(p) for p in DEFAULT_PLAN],
                        help="phases P:N,N,... : P gateway processes, N rising until partial p95 passes --limit-s "
                             f"(default {' '.join(DEFAULT_PLAN)})")
    parser.add_argument("--sweep", type=parse_sweep, nargs="*", default=[parse_sweep(s) for s in DEFAULT_SWEEP],
                        help="after the plan, at the last phase's largest good N, one step per batching variant "
                             f"(default {' '.join(DEFAULT_SWEEP)})")
    parser.add_argument("--seconds", type=float, default=15.0, help="real time each step runs (default 15)")
    parser.add_argument("--limit-s", type=float, default=0.5, help="a phase stops after the first N past this p95")
    parser.add_argument("--max-batch", type=int, default=None, help="windows per call (default: the backend's)")
    parser.add_argument("--batch-wait-ms", type=float, default=10.0)
    parser.add_argument("--in-flight", type=int, default=None, help="calls at once (default: the backend's)")
    parser.add_argument("--budget-s", type=float, default=450.0, help="no new step once this much time has gone")
    parser.add_argument("--fp32", type=Path, help="an fp32 export dir (default: build and export XLS-R-300M)")
    parser.add_argument("--fp16", type=Path, help="an fp16 export dir")
    parser.add_argument("--export-to", type=Path, help="export XLS-R-300M fp32 and fp16 under this dir and stop")
    parser.add_argument("--tiny", action="store_true", help="tiny-nb instead of XLS-R-300M (a check of the script)")
    parser.add_argument("--speech", type=Path, default=SPEECH, help=f"16 kHz WAV (default {SPEECH})")
    parser.add_argument("--prepare-speech", action="store_true", help="write --speech with espeak-ng and stop")
    parser.add_argument("--speech-s", type=float, default=240.0, help="how much speech to make (default 240 s)")
    return parser.parse_args()


DEFAULT_PLAN = ("1:50,100,200,300,400,600", "8:400,800,1200,1600,2000,2500,3000")
DEFAULT_SWEEP = ("batch=64", "batch=128", "flight=1", "flight=3", "wait=2", "wait=30")


def ramp(gateways: Gateways, streams: list[int], args, began: float, rows: list[dict]) -> None:
    for n in streams:
        if time.perf_counter() - began + args.seconds + 10 > args.budget_s:
            print(f"stopping before P={gateways.processes} N={n}: the time budget ({args.budget_s:g} s) is spent",
                  flush=True)
            return
        rows.append(step(gateways, n, batch_of(args)))
        progress(rows)
        if rows[-1]["partial_p95"] > args.limit_s:
            return


def sweep(gateways: Gateways, rows: list[dict], args, began: float) -> None:
    """At the largest good N of this process count, each batching variant once."""
    good = [r["streams"] for r in rows if r["processes"] == gateways.processes and r["partial_p95"] <= args.limit_s]
    if not good:
        return
    for overrides in args.sweep:
        if time.perf_counter() - began + args.seconds + 10 > args.budget_s:
            print("stopping the sweep: the time budget is spent", flush=True)
            return
        rows.append(step(gateways, max(good), batch_of(args, **overrides)))
        progress(rows)
    gateways.run(0, batch_of(args))  # back to the defaults


def main() -> None:
    args = arguments()
    if args.prepare_speech:
        print(f"wrote {prepare_speech(args.speech, args.speech_s)}")
        return
    if args.export_to:
        for precision in ("fp32", "fp16"):
            print(f"exported {xlsr_export(precision, root=args.export_to)}", flush=True)
        return
    began = time.perf_counter()
    from streamer.backends.onnx import OnnxModel, RunnerSettings

    speech = load_speech(args.speech, args.speech_s)
    fp32_dir, fp16_dir, export_s = models(args)
    print(f"models ready in {export_s:.0f} s: {fp32_dir.name}, {fp16_dir.name}", flush=True)
    settings = RunnerSettings(device=args.device)
    fp16 = OnnxModel(fp16_dir, settings)
    check = parity(OnnxModel(fp32_dir, settings), fp16, speech)
    provider = fp16.provider
    print(f"on {provider}: fp16 against fp32: largest logit difference {check['max_abs_diff']:.4f}, "
          f"argmax agreement {check['argmax_agreement']:.4f}", flush=True)
    del fp16
    rows: list[dict] = []
    for index, (processes, streams) in enumerate(args.plan):
        gateways = Gateways(fp16_dir, processes, args)
        ramp(gateways, streams, args, began, rows)
        if index == len(args.plan) - 1:
            sweep(gateways, rows, args, began)
        gateways.close()
    device = gpu_name() or cpu_name()
    lines = verdict(rows, args.limit_s) if rows else []
    print(f"\n{device}; {fp16_dir.name} on {provider}\n{show(rows)}\n" + "\n".join(lines))
    payload = {"device": device, "provider": provider, "export_s": export_s, "parity": check,
               "seconds_per_step": args.seconds, "rows": rows, "verdict": lines, "total_s": time.perf_counter() - began}
    path = write_json("gpu", payload)
    if os.environ.get("OUT"):
        shutil.copy(path, Path(os.environ["OUT"]) / "gpu.json")
    print(f"wrote {path} ({time.perf_counter() - began:.0f} s in all)")


async def warm(backend) -> None:
    """One call per length bucket up to 8 s, and per row bucket at the streaming windows' lengths (3 and 4 s),
    so no step pays for a first plan or cuDNN's algorithm search."""
    from streamer.backends.backend import ModelInput

    lengths = [b for b in backend.capabilities.length_buckets if b <= 8 * 16000] or [48000]
    rows = backend.model.row_buckets or (1,)
    shapes = [(1, n) for n in lengths] + [(r, n) for n in lengths if n in (48000, 64000) for r in rows if r > 1]
    for n_rows, n_samples in shapes:
        await backend.logits([ModelInput(np.zeros(n_samples, np.float32))] * min(n_rows, backend.capabilities.max_batch))


def gpu_name() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    result = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True)
    return result.stdout.strip().splitlines()[0] if result.returncode == 0 and result.stdout.strip() else None


if __name__ == "__main__":
    main()
