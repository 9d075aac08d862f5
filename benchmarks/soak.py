"""Soak: an hour of speech through the streaming path and through the server, with nothing growing.

Held-out speech (espeak-ng, five voices, sentences with short and long pauses) repeated to --minutes of
audio, fed in 100 ms blocks:

- **streaming path**: one `Captioner` stream, as fast as it runs (the audio's own clock is the simulated
  one). Per minute of audio: the Python heap (tracemalloc) and the process's RSS, and the compute it took
  per second of audio (a latency that grows shows here first).
- **server**: one client (server.py's, as load.py's) streams the same audio to a `streamer serve` on
  loopback at --speed times real time, 100 ms frames paced by the clock. Per minute of audio: the server's
  RSS and the partial latency p95 (per frame of speech: sending it to the first partial or final that
  reaches past it).

Both check that every final arrives once, in order, with times inside the audio, and the server's
finals are the streaming path's (text and times). Memory growth is given
from the end of the first --warmup minutes to the end, as a percentage (the goal: under 5%).

    python benchmarks/soak.py                       # 60 minutes of audio (about 10 minutes of wall time)
    python benchmarks/soak.py --minutes 5           # a short form
"""

from __future__ import annotations

import argparse
import asyncio
import time
import tracemalloc
from pathlib import Path

import numpy as np

from server import FRAME, ServerProcess, client, pct, speech_pool  # benchmarks/server.py first (see load.py)
from common import cpu_name, table, write_json  # noqa: E402
from load import MemoryWatch, final_key, rss_mb  # noqa: E402


def long_audio(minutes: float) -> np.ndarray:
    tracks = speech_pool(6, 60.0)
    piece = np.concatenate(tracks)
    return np.tile(piece, int(np.ceil(minutes * 60 * 16000 / len(piece))))[: int(minutes * 60 * 16000)]


def in_order(finals: list[tuple[str, float, float]], length_s: float) -> bool:
    """finals: (text, start, end), as the websocket sends them (times rounded to the millisecond)."""
    return all(a[2] <= b[1] + 1e-9 for a, b in zip(finals, finals[1:])) and all(
        0 <= start <= end <= length_s + 0.01 for _, start, end in finals)


def soak_stream(model_dir: Path, audio: np.ndarray) -> dict:
    from streamer.core.events import Final
    from streamer.inference.driver import Captioner
    from streamer.inference.onnx import OnnxModel

    minute = 60 * 16000
    rows, finals = [], []
    tracemalloc.start()
    with Captioner(OnnxModel(model_dir)) as captioner:
        stream = captioner.stream()
        began = time.perf_counter()
        for start in range(0, len(audio), FRAME):
            events = stream.accept(audio[start:start + FRAME])
            finals += [final_key(e.to_json()) for e in events if isinstance(e, Final)]
            if (start + FRAME) % minute == 0:
                spent, began = time.perf_counter() - began, time.perf_counter()
                rows.append({"minute": len(rows) + 1, "heap_mb": tracemalloc.get_traced_memory()[0] / 2**20,
                             "rss_mb": rss_mb(), "compute_per_s": spent / 60})
        finals += [final_key(e.to_json()) for e in stream.finish() if isinstance(e, Final)]
    tracemalloc.stop()
    return {"rows": rows, "finals": finals, "in_order": in_order(finals, len(audio) / 16000)}


async def soak_server(url: str, audio: np.ndarray, speed: float) -> dict:
    got = await client(url, audio, speed=speed)
    rows = [{"minute": m + 1, "partial_p95": pct(v, 95)} for m, v in sorted(got["partial_by_minute"].items())]
    return {"rows": rows, "finals": got["finals"], "errors": got["errors"],
            "in_order": in_order(got["finals"], len(audio) / 16000)}


def growth(values: list[float], warmup: int) -> float:
    base = values[min(warmup, len(values) - 1)]
    return 100 * (values[-1] - base) / base if base else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0, help="minutes of audio (default 60)")
    parser.add_argument("--speed", type=float, default=10.0, help="the server's client at this × real time")
    parser.add_argument("--warmup", type=int, default=2, help="minutes before memory is taken as settled")
    parser.add_argument("--model", type=Path, help="exported model dir (default: tiny-nb fp32)")
    args = parser.parse_args()
    if not 1 <= args.minutes <= 240 or not 1 <= args.speed <= 100:
        parser.error("--minutes must be 1-240 and --speed 1-100")

    from streaming import default_tiny

    model_dir = args.model or default_tiny()
    audio = long_audio(args.minutes)
    print(f"{args.minutes:g} minutes of speech; the streaming path first", flush=True)
    stream = soak_stream(model_dir, audio)
    server = ServerProcess(model_dir, "--max-lag-s", 30)
    watch = MemoryWatch(server.process.pid)
    try:
        served = asyncio.run(soak_server(f"ws://127.0.0.1:{server.port}/", audio, args.speed))
    finally:
        served_rss = watch.stop()
        server.stop()
    s_rows, v_rows = stream["rows"], served["rows"]
    per_minute = [{"minute": r["minute"], "heap_mb": r["heap_mb"], "rss_mb": r["rss_mb"],
                   "compute_ms_per_s": 1000 * r["compute_per_s"],
                   "server_partial_p95": next((v["partial_p95"] for v in v_rows if v["minute"] == r["minute"]), np.nan)}
                  for r in s_rows]
    step = max(1, len(per_minute) // 12)
    print(f"\n{cpu_name()}, model {model_dir.name}, server client at {args.speed:g}× real time")
    print(table(per_minute[::step] + ([per_minute[-1]] if (len(per_minute) - 1) % step else []),
                [("minute", "minute", "d"), ("heap_mb", "stream heap MB", ".1f"), ("rss_mb", "process RSS MB", ".0f"),
                 ("compute_ms_per_s", "compute ms per audio s", ".1f"),
                 ("server_partial_p95", "server partial p95 s", ".2f")]))
    summary = {"minutes": args.minutes, "stream_finals": len(stream["finals"]), "stream_in_order": stream["in_order"],
               "stream_heap_growth_pct": growth([r["heap_mb"] for r in s_rows], args.warmup),
               "stream_rss_growth_pct": growth([r["rss_mb"] for r in s_rows], args.warmup),
               "server_finals": len(served["finals"]), "server_in_order": served["in_order"],
               "server_errors": len(served["errors"]),
               "server_finals_are_the_streams": served["finals"] == stream["finals"],
               "server_rss_growth_pct": growth(served_rss, int(args.warmup * 60 / args.speed))}
    print("\n" + "\n".join(f"{k}: {v:.2f}" if isinstance(v, float) else f"{k}: {v}" for k, v in summary.items()))
    print(f"wrote {write_json('soak', {'summary': summary, 'per_minute': per_minute})}")


if __name__ == "__main__":
    main()
