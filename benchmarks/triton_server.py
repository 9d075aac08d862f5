"""In-process ONNX Runtime against NVIDIA Triton Inference Server on loopback, in one run, for the same
windows and the same streams (issue 22).

The server is deploy/local_triton.py's: the tritonserver 2.51 of nvidia-pytriton, CPU only, serving the
repository `streamer export --triton-repo` writes through its Python-backend stand-in (the same config,
model.onnx run by ONNX Runtime in Triton's Python backend; the official container runs it with the
onnxruntime backend instead). Server and gateway share this machine's cores, so the figures are what
Triton's path adds to a call (tensors over gRPC, the server's queue and dynamic batcher, the Python
backend's shared memory), not what a separate GPU node gives.

- per batch: the same batches of speech windows (one 1.5 s partial window; one, four and eight 3 s commit
  windows) sent through each backend in turn, --repeats times after a warm-up: median and p90 time of a
  call, what Triton adds to the median, and the largest logit difference between the two;
- streams: --streams streams of held-out speech (--seconds each) fed as fast as the model takes them
  through one Batcher (up to 8 windows a call; 1 call in flight in process, 4 to Triton): wall time,
  seconds of audio per second, windows per call, call time p50/p95, CPU seconds per second of audio in
  this process (the gateway) and in the server's processes, about how many MB the windows put on the wire
  per second of audio, and whether every stream's finals are the
  same through both (partials depend on how long requests waited).

    python benchmarks/triton_server.py                   # tiny-nb and XLS-R-300M (int8, random weights)
    python benchmarks/triton_server.py --cases tiny-nb --streams 16

Not named triton.py: the benchmarks run with this folder on sys.path, where a triton.py would stand in for
torch's optional compiler package of that name, which torch looks for when transformers loads a model.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import numpy as np

# benchmarks/server.py first: common puts the repository, and its own server.py, on sys.path
from server import speech_pool
from common import REPO, cpu_name, machine, speech_audio, table, write_json, xlsr_export  # noqa: E402

from streamer.core.events import Final
from streamer.core.stream import Recognizer
from streamer.backends.backend import BackendOptions, ModelInput
from streamer.export.loader import create_backend
from streamer.driver.batcher import Batcher, BatchSettings
from streamer.backends.onnx import OnnxBackend, OnnxModel
from streamer.export.triton_repo import write_triton_repo

sys.path.insert(0, str(REPO / "deploy"))
from local_triton import LocalTriton, find_distribution  # noqa: E402

BATCHES = [("partial 1.5 s ×1", 1.5, 1), ("commit 3 s ×1", 3.0, 1), ("commit 3 s ×4", 3.0, 4),
           ("commit 3 s ×8", 3.0, 8)]
BLOCK = 1600
WIRE_BYTES = 4 + 8  # a sample's float32 audio and int64 mask, as the model takes them (padding not counted)


def batch_of(seconds: float, count: int) -> list[ModelInput]:
    """count different windows of speech, each seconds long."""
    audio = speech_audio(seconds * count + 1)
    size = int(seconds * 16000)
    return [ModelInput(audio[i * size:(i + 1) * size]) for i in range(count)]


async def time_calls(backends, batch: list[ModelInput], repeats: int) -> tuple[list[list[float]], list]:
    """Each backend's call times for the batch, the backends taking turns (what else the machine does falls on
    both alike), after two warm-up calls each; and each backend's logits."""
    outs = [await backend.logits(batch) for backend in backends for _ in range(2)][1::2]
    times = [[] for _ in backends]
    for _ in range(repeats):
        for backend, own in zip(backends, times):
            began = time.perf_counter()
            await backend.logits(batch)
            own.append(time.perf_counter() - began)
    return times, outs


async def per_batch(local, remote, repeats: int, max_batch: int) -> list[dict]:
    rows = []
    for name, seconds, count in BATCHES:
        if count > max_batch:
            continue  # int8: one window a call
        batch = batch_of(seconds, count)
        (here, there), (here_out, there_out) = await time_calls((local, remote), batch, repeats)
        rows.append({"batch": name, "in_process_p50_ms": 1000 * np.median(here),
                     "in_process_p90_ms": 1000 * np.percentile(here, 90), "triton_p50_ms": 1000 * np.median(there),
                     "triton_p90_ms": 1000 * np.percentile(there, 90),
                     "added_ms": 1000 * (np.median(there) - np.median(here)),
                     "max_logit_diff": max(float(np.abs(a - b).max()) for a, b in zip(here_out, there_out))})
        print(table([rows[-1]], BATCH_COLUMNS).splitlines()[-1], flush=True)
    return rows


def group_cpu_s(pgid: int | None) -> float:
    """CPU seconds (user + system) of every process in a process group: tritonserver and its backend stubs."""
    if pgid is None:
        return 0.0
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # pgrp, after the name and state
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def run_streams(backend, tracks: list[np.ndarray], server_pgid: int | None = None) -> tuple[dict, list[list[dict]]]:
    """Every track a stream, all at once through one batcher, fed as fast as the model takes them."""
    reports = []

    async def drive():
        batcher = Batcher(backend, BatchSettings(max_windows=8, max_wait_ms=10), reports.append)
        consumer = asyncio.create_task(batcher.run())
        outputs = [[] for _ in tracks]
        entries = [batcher.add(Recognizer(backend.info).stream(), out.extend) for out in outputs]

        async def feed(entry, audio):
            for start in range(0, len(audio), BLOCK):
                await batcher.feed(entry, audio[start:start + BLOCK])
                await asyncio.sleep(0)
            await batcher.end(entry)
            await entry.drained.wait()

        await asyncio.gather(*(feed(entry, audio) for entry, audio in zip(entries, tracks)))
        consumer.cancel()
        await batcher.close()
        return outputs

    began, cpu_began, server_began = time.perf_counter(), time.process_time(), group_cpu_s(server_pgid)
    outputs = asyncio.run(drive())
    wall_s, cpu_s = time.perf_counter() - began, time.process_time() - cpu_began
    server_cpu_s = group_cpu_s(server_pgid) - server_began
    calls = [r.compute_s for r in reports]
    audio_s = sum(len(t) for t in tracks) / 16000
    return ({"wall_s": wall_s, "audio_per_s": audio_s / wall_s, "calls": len(reports),
             "windows_per_call": sum(r.windows for r in reports) / max(len(reports), 1),
             "call_p50_ms": 1000 * np.percentile(calls, 50), "call_p95_ms": 1000 * np.percentile(calls, 95),
             "gateway_cpu": cpu_s / audio_s, "server_cpu": server_cpu_s / audio_s,
             "mb_per_audio_s": sum(r.audio_s for r in reports) * 16000 * WIRE_BYTES / audio_s / 1e6},
            [[e.to_json() for e in events if isinstance(e, Final)] for events in outputs])


BATCH_COLUMNS = [("batch", "batch", ""), ("in_process_p50_ms", "in-process p50 ms", ".1f"),
                 ("in_process_p90_ms", "p90", ".1f"), ("triton_p50_ms", "Triton p50 ms", ".1f"),
                 ("triton_p90_ms", "p90", ".1f"), ("added_ms", "added ms", "+.1f"),
                 ("max_logit_diff", "max |logit diff|", ".1e")]
STREAM_COLUMNS = [("backend", "backend", ""), ("wall_s", "wall s", ".1f"), ("audio_per_s", "audio s/s", ".1f"),
                  ("calls", "calls", "d"), ("windows_per_call", "windows/call", ".2f"),
                  ("call_p50_ms", "call p50 ms", ".1f"), ("call_p95_ms", "call p95 ms", ".1f"),
                  ("gateway_cpu", "gateway CPU/audio", ".3f"), ("server_cpu", "server CPU/audio", ".3f"),
                  ("mb_per_audio_s", "≈MB sent/audio s", ".2f"),
                  ("same_finals", "same finals", "")]


def run_case(name: str, model_dir, dist, args) -> dict:
    print(f"\n## {name}", flush=True)
    work = REPO / "benchmarks" / "out" / "triton-repo"
    folder = write_triton_repo(model_dir, work)
    local = OnnxBackend(OnnxModel(model_dir))
    with LocalTriton(work, dist) as server:
        server.start()
        remote = create_backend("triton", BackendOptions(str(folder), url=server.url, log=print))
        batches = asyncio.run(per_batch(local, remote, args.repeats, local.capabilities.max_batch
                                        if local.capabilities.rows_independent else 1))
        tracks = speech_pool(args.streams, args.seconds)
        here, here_events = run_streams(local, tracks)
        there, there_events = run_streams(remote, tracks, server.process.pid)
        same = "yes" if here_events == there_events else "NO"
        streams = [{"backend": "in process", **here, "same_finals": same},
                   {"backend": "Triton (loopback)", **there, "same_finals": same}]
        print(table(streams, STREAM_COLUMNS), flush=True)
        executions = [line for line in server.metrics().splitlines() if line.startswith(("nv_inference_exec_count",
                                                                                         "nv_inference_count"))]
    local.close()
    return {"case": name, "batches": batches, "streams": streams, "triton_metrics": executions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="*", choices=("tiny-nb", "xlsr"), default=["tiny-nb", "xlsr"])
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per batch and backend")
    parser.add_argument("--streams", type=int, default=8, help="streams at once")
    parser.add_argument("--seconds", type=float, default=20.0, help="audio per stream")
    args = parser.parse_args()
    dist, reason = find_distribution()
    if dist is None:
        sys.exit(f"no CPU tritonserver: {reason}")

    from common import default_tiny

    cases = []
    if "tiny-nb" in args.cases:
        cases.append(run_case("tiny-nb fp32", default_tiny(), dist, args))
    if "xlsr" in args.cases:
        cases.append(run_case("XLS-R-300M int8 (random weights): one window a call", xlsr_export("int8"), dist, args))
    print(f"\n{cpu_name()}, {machine()['date']}; {args.streams} streams × {args.seconds:g} s")
    for case in cases:
        print(f"\n{case['case']}\n{table(case['batches'], BATCH_COLUMNS)}\n{table(case['streams'], STREAM_COLUMNS)}")
    print(f"wrote {write_json('triton', {'args': vars(args), 'cases': cases})}")


if __name__ == "__main__":
    main()
