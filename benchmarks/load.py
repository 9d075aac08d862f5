"""Load: N websocket clients stream real-time speech to one `streamer serve` on loopback for M minutes.

Each client streams held-out speech (espeak-ng, five voices, pauses between sentences) in 100 ms
frames paced by the clock; when its track ends (eof, its last finals, end) it opens a new stream with
the next track, until the time is up. Every final a client receives is checked against the finals of
the same track recognized alone in this process (the same model, `Captioner`): a final that should
have come and did not is **lost** (the goal is 0), one that came and should not have is **wrong**.
Also reported: partial latency per frame of speech (sending it to the first partial or final that
reaches past it) and final latency (sending a final's last word to receiving it), p50 and p95; error
events and failed connections; the server's resident memory at the start, its peak and at the end,
sampled every second from /proc. Everything is bounded in count and time and talks to loopback only.

    python benchmarks/load.py --clients 8 --minutes 5            # the full run, by hand
    python benchmarks/load.py --clients 3 --minutes 0.4          # the short form (tests/test_load.py)
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from pathlib import Path

import numpy as np

# benchmarks/server.py first: common puts the repository, and its own server.py, on sys.path
from server import ServerProcess, client as one_stream, pct, speech_pool
from common import cpu_name, table, write_json  # noqa: E402


def expected_finals(model_dir: Path, tracks: list[np.ndarray]) -> list[list[tuple]]:
    from streamer.core.events import Final
    from streamer.driver.captioner import Captioner
    from streamer.backends.onnx import OnnxModel

    with Captioner(OnnxModel(model_dir)) as captioner:
        out = []
        for audio in tracks:
            stream = captioner.stream()
            events = stream.accept(audio) + stream.finish()
            out.append([final_key(e.to_json()) for e in events if isinstance(e, Final)])
    return out


def final_key(message: dict) -> tuple:
    return message["text"], message["start"], message["end"]


async def client(url: str, tracks: list[np.ndarray], expected: list[list[tuple]], first: int, deadline: float,
                 totals: dict) -> None:
    k = first
    while time.monotonic() < deadline:
        index = k % len(tracks)
        try:
            got = await one_stream(url, tracks[index])
        except Exception as exc:  # noqa: BLE001 - a failed connection is counted, the client goes on
            totals["errors"].append(exc.__class__.__name__)
            k += 1
            continue
        totals["streams"] += 1
        totals["expected"] += len(expected[index])
        totals["received"] += len(got["finals"])
        totals["lost"] += len([f for f in expected[index] if f not in got["finals"]])
        totals["wrong"] += len([f for f in got["finals"] if f not in expected[index]])
        for key in ("partial", "final", "errors"):
            totals[key] += got[key]
        k += 1


def rss_mb(pid: int | str = "self") -> float:
    """A process's resident memory (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class MemoryWatch:
    """The server's resident memory, every second, on a thread (samples, and the monotonic time of each)."""

    def __init__(self, pid: int):
        self.pid, self.samples, self.times, self._stop = pid, [], [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.samples.append(self.rss_mb())
            self.times.append(time.monotonic())

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join()
        return self.samples


COLUMNS = [("clients", "clients", "d"), ("minutes", "minutes", ".1f"), ("streams", "streams run", "d"),
           ("expected", "finals expected", "d"), ("received", "received", "d"), ("lost", "lost", "d"),
           ("wrong", "wrong", "d"), ("partial_p50", "partial p50", ".2f"), ("partial_p95", "p95", ".2f"),
           ("final_p50", "final p50", ".2f"), ("final_p95", "p95", ".2f"), ("errors", "errors", "d"),
           ("rss_start", "RSS start MB", ".0f"), ("rss_peak", "peak", ".0f"), ("rss_end", "end", ".0f")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--minutes", type=float, default=5.0, help="how long they stream (default 5)")
    parser.add_argument("--track-s", type=float, default=20.0, help="seconds of speech per stream (default 20)")
    parser.add_argument("--model", type=Path, help="exported model dir (default: tiny-nb fp32)")
    args = parser.parse_args()
    if not 1 <= args.clients <= 256 or not 0 < args.minutes <= 240:
        parser.error("--clients must be 1-256 and --minutes more than 0 and at most 240")

    from common import default_tiny

    model_dir = args.model or default_tiny()
    tracks = speech_pool(max(4, min(args.clients, 16)), args.track_s)
    print(f"{len(tracks)} tracks of {args.track_s:g} s; finals of each recognized alone first", flush=True)
    expected = expected_finals(model_dir, tracks)
    server = ServerProcess(model_dir)
    watch = MemoryWatch(server.process.pid)
    totals = {"streams": 0, "expected": 0, "received": 0, "lost": 0, "wrong": 0, "partial": [], "final": [],
              "errors": []}
    rss_start = watch.rss_mb()
    try:
        deadline = time.monotonic() + args.minutes * 60

        async def everyone():
            await asyncio.gather(*(client(f"ws://127.0.0.1:{server.port}/", tracks, expected, i, deadline, totals)
                                   for i in range(args.clients)))

        asyncio.run(everyone())
        rss_end = watch.rss_mb()
    finally:
        samples = watch.stop()
        server.stop()
    row = {"clients": args.clients, "minutes": args.minutes, "streams": totals["streams"],
           "expected": totals["expected"], "received": totals["received"], "lost": totals["lost"],
           "wrong": totals["wrong"], "partial_p50": pct(totals["partial"], 50), "partial_p95": pct(totals["partial"], 95),
           "final_p50": pct(totals["final"], 50), "final_p95": pct(totals["final"], 95),
           "errors": len(totals["errors"]), "rss_start": rss_start, "rss_peak": max(samples, default=rss_end),
           "rss_end": rss_end}
    print(f"\n{cpu_name()}, model {model_dir.name}\n" + table([row], COLUMNS))
    if totals["errors"]:
        print("errors:", sorted(set(totals["errors"])))
    print(f"wrote {write_json('load', {'row': row, 'error_kinds': sorted(set(totals['errors']))})}")


if __name__ == "__main__":
    main()
