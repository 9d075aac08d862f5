"""What the tests share: paths, speech from espeak-ng, a `streamer serve` process, streams through a batcher.
Test modules import from here (fixtures live in conftest.py); no test module imports another."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import websockets

from streamer.core.events import Final
from streamer.core.stream import Recognizer, StreamSettings
from streamer.driver.batcher import Batcher, BatchSettings
from streamer.driver.captioner import Captioner

REPO = Path(__file__).resolve().parent.parent
NPSC = REPO / "tests" / "data" / "npsc"  # the project's own copy (CC0), so any clone passes
TINY_NB = REPO / "models" / "tiny-nb"
sys.path.insert(0, str(REPO))  # models/ (synth, random_checkpoint) imports as a package


def espeak(text: str, path: Path, voice: str = "nb", speed_wpm: int = 175) -> Path:
    """Norwegian speech from espeak-ng, as a 16 kHz mono WAV."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed_wpm), "-w", str(raw), text], check=True)
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(raw), "-ar", "16000", "-ac", "1",
                    str(path)], check=True)
    raw.unlink()
    return path


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * 16_000), dtype=np.int16)


def lone_logits(model, request) -> np.ndarray:
    """One request's logits from the model alone (tests that drive a sans-I/O stream by hand)."""
    return model.logits([model.geometry.pad_to_receptive_field(request.audio)], [request.stats])[0]


def drive_lazily(stream, model, blocks, run_every: int = 1) -> list:
    """A sans-I/O stream driven by hand, as a busy driver would: every block fed, the requests it has
    waiting run (one at a time, each alone) only after every run_every-th block; then the end. Events."""
    events = []

    def run() -> None:
        nonlocal events
        while (request := stream.next_request()) is not None:
            events += stream.deliver(request, lone_logits(model, request))

    for k, block in enumerate(blocks, 1):
        events += stream.feed(block)
        if k % run_every == 0:
            run()
    events += stream.end()
    run()
    return events


TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Server:
    def __init__(self, process: subprocess.Popen, port: int, startup: list[str] = ()):
        self.process, self.port = process, port
        self.url = f"ws://127.0.0.1:{port}/"
        found = [re.search(r"metrics on http://127.0.0.1:(\d+)/", line) for line in startup]
        self.metrics_port = next((int(m.group(1)) for m in found if m), None)  # with --metrics-port

    def get(self, path: str, headers: dict | None = None, port: int | None = None) -> tuple[int, str]:
        request = urllib.request.Request(f"http://127.0.0.1:{port or self.port}{path}", headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def start_server(model_dir, *args, env=None, cwd=None) -> Server:
    command = [sys.executable, "-m", "streamer.cli", "serve", "--model", str(model_dir), "--port", "0", *map(str, args)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    port, startup = None, []
    for line in process.stderr:
        startup.append(line)
        if match := re.search(r"serving on http://127.0.0.1:(\d+)/", line):
            port = int(match.group(1))
            break
    assert port, "the server did not start"
    server = Server(process, port, startup)
    deadline = time.time() + 120
    while server.get("/readyz")[0] != 200:
        assert time.time() < deadline and process.poll() is None, "the model did not load"
        time.sleep(0.1)
    return server


async def drain(ws) -> list[dict]:
    """Every message until the server closes, however it closes."""
    messages = []
    try:
        async for text in ws:
            messages.append(json.loads(text))
    except websockets.ConnectionClosed:
        pass
    return messages


def to_int16(audio: np.ndarray, offset: float = 0.0) -> np.ndarray:
    return (np.clip(audio + offset, -1, 1) * 32767).astype(np.int16)


def clean_finals(backend, audio: np.ndarray) -> list[dict]:
    stream = Captioner(backend).stream()
    events = []
    for start in range(0, len(audio), 1600):
        events += stream.accept(audio[start:start + 1600])
    return [e.to_json() for e in events + stream.finish() if isinstance(e, Final)]


async def run_streams(backend, audios, batch: BatchSettings, block_sizes=None, patch=None,
                      keep_up_every: int = 1) -> list[list]:
    """Every audio as its own stream through one batcher, fed concurrently; each stream's events. A feeder
    waits for its stream's requests to be run after every keep_up_every-th block (0: never, a flood)."""
    batcher = Batcher(backend, batch)
    consumer = asyncio.create_task(batcher.run())
    recognizer = Recognizer(backend.info, StreamSettings())
    events: list[list] = [[] for _ in audios]
    entries = []
    for i in range(len(audios)):
        stream = recognizer.stream()
        if patch is not None:
            patch(i, stream, events[i])
        entries.append(batcher.add(stream, events[i].extend))

    async def feed(i: int) -> None:
        sizes = block_sizes[i] if block_sizes else [1600]
        position, k = 0, 0
        while position < len(audios[i]):
            size = sizes[k % len(sizes)]
            await batcher.feed(entries[i], audios[i][position:position + size])
            position, k = position + size, k + 1
            if keep_up_every and k % keep_up_every == 0:
                await entries[i].drained.wait()
            await asyncio.sleep(0)
        await batcher.end(entries[i])
        await asyncio.wait_for(entries[i].drained.wait(), 120)

    try:
        await asyncio.gather(*(feed(i) for i in range(len(audios))))
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await batcher.close()
    return events


def finals_of(events) -> list[dict]:
    return [e.to_json() for e in events if isinstance(e, Final)]
