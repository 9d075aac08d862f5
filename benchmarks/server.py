"""Server capacity: how many live streams `streamer serve` carries before partial latency p95 passes 1 s.

A `streamer serve` process on loopback; N websocket clients in this process, each streaming
different held-out speech (espeak-ng, five voices, pauses between sentences) in real time: a 100 ms
frame every 100 ms. Partial latency is measured per frame of speech: from sending the frame to
receiving the first partial (or final) that reaches past it, so a server that merges or drops
partials to keep up shows it; it includes waiting for the next 500 ms hop. A final's latency runs from
sending its last word's audio to receiving it. N grows (--streams) until the p95 of partial latency
passes --limit-s (1 s) or the server refuses or falls behind; the table gives the
largest N that stayed under it, with batching on (windows of several streams per model call) and
off (--max-batch 1), for tiny-nb and for the XLS-R-300M architecture (int8, random weights, whose
windows are batched only with --batch-int8: see streamer/driver/batcher.py).

    python benchmarks/server.py                  # every case (about 15 minutes on 2 cores)
    python benchmarks/server.py --cases tiny-nb --streams 1 8 16 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import time
import urllib.request

import numpy as np

from common import cpu_name, table, write_json, xlsr_export

FRAME = 1600  # 100 ms at 16 kHz


def speech_pool(n: int, seconds: float, seed: int = 3) -> list[np.ndarray]:
    """n different tracks of paused held-out speech, each at least seconds long, int16 16 kHz."""
    from models.synth import heldout_sentences, talk

    rng = np.random.default_rng(seed)
    sentences = heldout_sentences()
    tracks = []
    for _ in range(n):
        audio = np.zeros(0, np.float32)
        while len(audio) < seconds * 16000:
            picked = [sentences[i] for i in rng.choice(len(sentences), 4, replace=False)]
            audio = np.concatenate([audio, talk(picked, rng, (0.4, 1.2))[0]])
        tracks.append((np.clip(audio[: int(seconds * 16000)], -1, 1) * 32767).astype(np.int16))
    return tracks


class ServerProcess:
    def __init__(self, model_dir, *args):
        command = [sys.executable, "-m", "streamer.cli", "serve", "--model", str(model_dir), "--port", "0",
                   "--max-streams", "256", "--idle-timeout-s", "120", *map(str, args)]
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        for line in self.process.stderr:
            if match := re.search(r"serving on http://127.0.0.1:(\d+)/", line):
                self.port = int(match.group(1))
                break
        while self.get("/readyz")[0] != 200:
            time.sleep(0.2)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, ""

    def metric(self, name: str) -> float:
        match = re.search(rf"^{name} (\S+)", self.get("/metrics")[1], re.M)
        return float(match.group(1)) if match else 0.0

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=120)


async def client(url: str, audio: np.ndarray, start_delay_s: float = 0.0, speed: float = 1.0) -> dict:
    """Stream audio in 100 ms frames paced by the clock at speed × real time (load.py, server.py, soak.py);
    return partial and final latencies, the partial latencies grouped by minute of audio, any error, and
    the finals (text, start, end) as they came."""
    import websockets

    await asyncio.sleep(start_delay_s)
    sent_at: list[float] = []  # wall time each 100 ms frame was sent
    covered = 0  # frames some partial or final has reached past
    partial, final, errors, finals = [], [], [], []
    partial_by_minute: dict[int, list[float]] = {}  # minute of audio (0 first) -> its partial latencies
    speech = [bool(np.abs(audio[i : i + FRAME]).max() > 300) for i in range(0, len(audio), FRAME)]

    def when_sent(stream_s: float) -> float | None:
        index = max(0, int(np.ceil(stream_s * 10)) - 1)
        return sent_at[index] if index < len(sent_at) else None

    def reached(stream_s: float, now: float) -> None:
        """Frames of speech up to stream_s are on screen now: their latencies."""
        nonlocal covered
        until = min(int(stream_s * 10 + 1e-6), len(sent_at))
        for k in range(covered, until):
            if speech[k]:
                partial.append(now - sent_at[k])
                partial_by_minute.setdefault(k // 600, []).append(now - sent_at[k])
        covered = max(covered, until)

    async with websockets.connect(url, max_size=None, open_timeout=60) as ws:
        await ws.send(json.dumps({"sample_rate": 16000, "format": "pcm_s16le"}))
        if json.loads(await ws.recv()).get("type") != "ready":
            return {"partial": [], "final": [], "errors": ["refused"], "finals": [], "partial_by_minute": {}}

        async def send():
            began = time.monotonic()
            for k, start in enumerate(range(0, len(audio), FRAME)):
                await asyncio.sleep(max(0.0, began + k * 0.1 / speed - time.monotonic()))
                sent_at.append(time.monotonic())
                await ws.send(audio[start : start + FRAME].tobytes())
            await ws.send(json.dumps({"type": "eof"}))

        sender = asyncio.create_task(send())
        async for text in ws:
            message, now = json.loads(text), time.monotonic()
            if message["type"] in ("partial", "final"):
                reached(message["end"], now)
            if message["type"] == "final":
                finals.append((message["text"], message["start"], message["end"]))
            if message["type"] == "final" and (t := when_sent(message["words"][-1]["end"])):
                final.append(now - t)
            elif message["type"] == "error":
                errors.append(message["code"])
            elif message["type"] == "end":
                break
        sender.cancel()
    return {"partial": partial, "final": final, "errors": errors, "finals": finals,
            "partial_by_minute": partial_by_minute}


def run_step(server: ServerProcess, tracks: list[np.ndarray], n: int) -> dict:
    url = f"ws://127.0.0.1:{server.port}/"
    windows0, calls0 = server.metric("streamer_batch_windows_sum"), server.metric("streamer_batch_windows_count")
    compute0, audio0 = server.metric("streamer_compute_seconds_total"), server.metric("streamer_audio_seconds_total")
    dropped0 = server.metric("streamer_dropped_partials_total")

    async def everyone():
        return await asyncio.gather(*(client(url, tracks[i % len(tracks)], i * 0.1 % 0.5) for i in range(n)),
                                    return_exceptions=True)

    results = asyncio.run(everyone())
    failed = [r for r in results if isinstance(r, BaseException)]
    results = [r for r in results if not isinstance(r, BaseException)]
    partial = [x for r in results for x in r["partial"]]
    final = [x for r in results for x in r["final"]]
    dropped = server.metric("streamer_dropped_partials_total") - dropped0
    calls = server.metric("streamer_batch_windows_count") - calls0
    audio = server.metric("streamer_audio_seconds_total") - audio0
    return {"streams": n, "partial_p50": pct(partial, 50), "partial_p95": pct(partial, 95),
            "final_p50": pct(final, 50), "final_p95": pct(final, 95),
            "windows_per_call": (server.metric("streamer_batch_windows_sum") - windows0) / max(calls, 1),
            "rtf": (server.metric("streamer_compute_seconds_total") - compute0) / max(audio, 1e-9),
            "dropped": int(dropped),
            "errors": len(failed) + sum(len(r["errors"]) for r in results)}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


COLUMNS = [("case", "case", ""), ("streams", "streams", "d"), ("partial_p50", "partial p50", ".2f"),
           ("partial_p95", "p95", ".2f"), ("final_p50", "final p50", ".2f"), ("final_p95", "p95", ".2f"),
           ("windows_per_call", "windows/call", ".2f"), ("rtf", "RTF", ".3f"), ("dropped", "hops dropped", "d"),
           ("errors", "errors", "d")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="*", choices=("tiny-nb", "xlsr"), default=["tiny-nb", "xlsr"])
    parser.add_argument("--streams", type=int, nargs="*", help="stream counts to try, in order")
    parser.add_argument("--seconds", type=float, default=20.0, help="audio per client per step")
    parser.add_argument("--limit-s", type=float, default=1.0, help="partial latency p95 that ends the ramp")
    args = parser.parse_args()

    from common import default_tiny

    tracks = speech_pool(8, args.seconds)
    cases = []
    if "tiny-nb" in args.cases:
        ramp = args.streams or [1, 4, 8, 16, 24, 32, 48, 64]
        cases += [("tiny-nb fp32, batched", default_tiny(), [], ramp),
                  ("tiny-nb fp32, not batched", default_tiny(), ["--max-batch", 1], ramp)]
    if "xlsr" in args.cases:
        ramp = args.streams or [1, 2, 3, 4, 6, 8]
        cases += [("XLS-R-300M int8, one window per call (default)", xlsr_export("int8"), [], ramp),
                  ("XLS-R-300M int8, batched (--batch-int8)", xlsr_export("int8"), ["--batch-int8"], ramp)]
    rows, summary = [], []
    for name, model_dir, extra, ramp in cases:
        server = ServerProcess(model_dir, *extra)
        carried = 0
        try:
            for n in ramp:
                row = {"case": name, **run_step(server, tracks, n)}
                rows.append(row)
                print(table([row], COLUMNS).splitlines()[-1], flush=True)
                if not row["partial_p95"] <= args.limit_s or row["errors"]:
                    break
                carried = n
        finally:
            server.stop()
        summary.append({"case": name, "carried": carried})
    print(f"\n{cpu_name()}, {args.seconds:g} s of real-time speech per client per step\n" + table(rows, COLUMNS))
    print("\nstreams carried with partial latency p95 ≤ %g s:" % args.limit_s)
    print(table(summary, [("case", "case", ""), ("carried", "streams", "d")]))
    print(f"wrote {write_json('server', {'seconds': args.seconds, 'limit_s': args.limit_s, 'rows': rows, 'summary': summary})}")


if __name__ == "__main__":
    main()
