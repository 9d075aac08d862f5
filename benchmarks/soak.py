"""Soak: an hour of speech through the streaming path and through the server, with nothing growing.

Held-out speech (espeak-ng, five voices, sentences with short and long pauses) repeated to --minutes of
audio, fed in 100 ms blocks:

- **streaming path**: one `Captioner` stream, as fast as it runs (the audio's own clock is the simulated
  one). Per minute of audio: the Python heap (tracemalloc) and the process's RSS, and the compute it took
  per second of audio (a latency that grows shows here first).
- **server**: one client (server.py's, as load.py's) streams the same audio to a `streamer serve` on
  loopback at --speed times real time, 100 ms frames paced by the clock. Per minute of audio: the server's
  RSS (sampled once a second: the lowest sample, what it keeps between model calls, and the highest,
  which may fall inside a call) and the partial latency p95 (per frame of speech: sending it to the first
  partial or final that reaches past it).

Both check that every final arrives once, in order, with times inside the audio, and the server's
finals are the streaming path's (text and times). Memory growth is given from the end of the first
--warmup minutes to the end, as a percentage (the goal: under 5%).

    python benchmarks/soak.py                       # 60 minutes of audio (about 10 minutes of wall time)
    python benchmarks/soak.py --minutes 5           # a short form
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
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


class Finals:
    """Finals as they come, (text, start, end) as the websocket sends them (times rounded to the millisecond):
    how many, whether in order and inside the audio, and a digest of them all, so that nothing the benchmark
    keeps grows with the hour (the heap measured is the stream's own)."""

    def __init__(self, length_s: float):
        self.length_s, self.count, self.in_order, self.end = length_s, 0, True, 0.0
        self._digest = hashlib.sha256()

    def add(self, text: str, start: float, end: float) -> None:
        self.in_order = self.in_order and self.end <= start + 1e-9 and 0 <= start <= end <= self.length_s + 0.01
        self.count, self.end = self.count + 1, end
        self._digest.update(repr((text, start, end)).encode())

    @property
    def digest(self) -> str:
        return self._digest.hexdigest()


def soak_stream(model_dir: Path, audio: np.ndarray) -> dict:
    from streamer.core.events import Final
    from streamer.driver.captioner import Captioner
    from streamer.backends.onnx import OnnxModel

    minute = 60 * 16000
    rows, finals = [], Finals(len(audio) / 16000)
    tracemalloc.start()
    with Captioner(OnnxModel(model_dir)) as captioner:
        stream = captioner.stream()
        began = time.perf_counter()
        for start in range(0, len(audio), FRAME):
            for event in stream.accept(audio[start:start + FRAME]):
                if isinstance(event, Final):
                    finals.add(*final_key(event.to_json()))
            if (start + FRAME) % minute == 0:
                spent, began = time.perf_counter() - began, time.perf_counter()
                rows.append({"minute": len(rows) + 1, "heap_mb": tracemalloc.get_traced_memory()[0] / 2**20,
                             "rss_mb": rss_mb(), "compute_per_s": spent / 60})
        for event in stream.finish():
            if isinstance(event, Final):
                finals.add(*final_key(event.to_json()))
    tracemalloc.stop()
    return {"rows": rows, "finals": finals}


async def soak_server(url: str, audio: np.ndarray, speed: float) -> dict:
    got = await client(url, audio, speed=speed)
    rows = [{"minute": m + 1, "partial_p95": pct(v, 95)} for m, v in sorted(got["partial_by_minute"].items())]
    finals = Finals(len(audio) / 16000)
    for final in got["finals"]:
        finals.add(*final)
    return {"rows": rows, "finals": finals, "errors": got["errors"]}


def growth(values: list[float], warmup: int) -> float:
    """From the value at the end of the warm-up (the warmup-th sample) to the last, in percent."""
    base = values[min(max(warmup, 1), len(values)) - 1]
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

    from common import default_tiny

    model_dir = args.model or default_tiny()
    audio = long_audio(args.minutes)
    print(f"{args.minutes:g} minutes of speech; the streaming path first", flush=True)
    stream = soak_stream(model_dir, audio)
    server = ServerProcess(model_dir, "--max-lag-s", 30)
    watch = MemoryWatch(server.process.pid)
    try:
        began = time.monotonic()
        served = asyncio.run(soak_server(f"ws://127.0.0.1:{server.port}/", audio, args.speed))
    finally:
        watch.stop()
        server.stop()
    s_rows, v_rows = stream["rows"], served["rows"]

    def server_rss(minute: int) -> list[float]:
        """The server's RSS samples while this minute of audio was sent."""
        start, end = began + (minute - 1) * 60 / args.speed, began + minute * 60 / args.speed
        return [mb for mb, t in zip(watch.samples, watch.times) if start <= t < end] or [np.nan]

    per_minute = [{"minute": r["minute"], "heap_mb": r["heap_mb"], "rss_mb": r["rss_mb"],
                   "compute_ms_per_s": 1000 * r["compute_per_s"], "server_rss_mb": min(server_rss(r["minute"])),
                   "server_rss_peak_mb": max(server_rss(r["minute"])),
                   "server_partial_p95": next((v["partial_p95"] for v in v_rows if v["minute"] == r["minute"]), np.nan)}
                  for r in s_rows]
    step = max(1, len(per_minute) // 12)
    print(f"\n{cpu_name()}, model {model_dir.name}, server client at {args.speed:g}× real time")
    print(table(per_minute[::step] + ([per_minute[-1]] if (len(per_minute) - 1) % step else []),
                [("minute", "minute", "d"), ("heap_mb", "stream heap MB", ".1f"), ("rss_mb", "process RSS MB", ".0f"),
                 ("compute_ms_per_s", "compute ms per audio s", ".1f"), ("server_rss_mb", "server RSS MB", ".0f"),
                 ("server_rss_peak_mb", "peak", ".0f"),
                 ("server_partial_p95", "server partial p95 s", ".2f")]))
    mine, theirs = stream["finals"], served["finals"]
    summary = {"minutes": args.minutes, "stream_finals": mine.count, "stream_in_order": mine.in_order,
               "stream_heap_growth_pct": growth([r["heap_mb"] for r in s_rows], args.warmup),
               "stream_rss_growth_pct": growth([r["rss_mb"] for r in s_rows], args.warmup),
               "server_finals": theirs.count, "server_in_order": theirs.in_order,
               "server_errors": len(served["errors"]),
               "server_finals_are_the_streams": (theirs.count, theirs.digest) == (mine.count, mine.digest),
               "server_rss_growth_pct": growth([r["server_rss_mb"] for r in per_minute], args.warmup)}
    print("\n" + "\n".join(f"{k}: {v:.2f}" if isinstance(v, float) else f"{k}: {v}" for k, v in summary.items()))
    server_samples = [[round(t - began, 1), mb] for mb, t in zip(watch.samples, watch.times)]
    print(f"wrote {write_json('soak', {'summary': summary, 'per_minute': per_minute, 'server_rss': server_samples})}")


if __name__ == "__main__":
    main()
