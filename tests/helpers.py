"""What the tests share: paths, speech from espeak-ng, a `streamer serve` process, streams through a batcher,
a websocket client, a live HLS server on loopback and the programmes it serves. Test modules import from
here (fixtures live in conftest.py and the test modules, calling these); no test module imports another
(test_test_imports.py checks it)."""

from __future__ import annotations

import asyncio
import http.server
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import wave
from pathlib import Path

import numpy as np
import pytest
import websockets

from streamer.core.events import Final
from streamer.core.stream import Recognizer, StreamSettings
from streamer.driver.batcher import Batcher, BatchSettings
from streamer.driver.captioner import Captioner
from streamer.sources.ffmpeg import read_audio

REPO = Path(__file__).resolve().parent.parent
NPSC = REPO / "tests" / "data" / "npsc"  # the project's own copy (CC0), so any clone passes
TINY_NB = REPO / "models" / "tiny-nb"
sys.path.insert(0, str(REPO))  # models/ (synth, random_checkpoint) imports as a package

from models import synth  # noqa: E402 - needs the repository on sys.path


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


def clean_finals(backend, audio: np.ndarray, settings: StreamSettings = StreamSettings()) -> list[dict]:
    stream = Captioner(backend, settings).stream()
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


async def client(url: str, audio: np.ndarray, pace_s: float = 0.0) -> tuple[list[dict], int | None]:
    """A `streamer serve` client: config, 100 ms frames, eof; every message up to the close, and the close code."""
    messages = []
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"sample_rate": 16000, "format": "pcm_s16le"}))

        async def send():
            try:
                for start in range(0, len(audio), 1600):
                    await ws.send(audio[start:start + 1600].tobytes())
                    await asyncio.sleep(pace_s)
                await ws.send(json.dumps({"type": "eof"}))
            except websockets.ConnectionClosed:
                pass

        sender = asyncio.create_task(send())
        try:
            async for text in ws:
                messages.append(json.loads(text))
        except websockets.ConnectionClosed:
            pass
        sender.cancel()
        return messages, ws.close_code


def batcher_clips() -> list[np.ndarray]:
    """Four streams (float32): two paused (sentences with silence between), two monologues without pauses;
    the second (paused) is the longest, about 40 s."""
    sentences = [spoken for spoken, _ in synth.heldout_sentences()[:28]]
    out = []
    for i, (first, last) in enumerate([(0, 4), (4, 16), (16, 22), (22, 28)]):
        parts = []
        for spoken in sentences[first:last]:
            parts += [synth.synthesize(spoken, synth.SPEAKERS[i % len(synth.SPEAKERS)]),
                      np.zeros(8000 if i % 2 == 0 else 0, np.float32)]
        out.append(np.clip(np.concatenate([np.zeros(4000, np.float32), *parts, np.zeros(8000, np.float32)]), -1, 1))
    return out


INGEST_SENTENCES = ["stortinget har vedtatt budsjettet", "regjeringen tar det til etterretning",
                    "kongen åpnet stortinget i dag"]


def speech_file(folder: Path, lead_s: float = 4.0) -> Path:
    """INGEST_SENTENCES with pauses between them, after lead_s of silence (time for viewers to join), as
    folder/ingest.wav (for serve --ingest)."""
    parts = [np.zeros(int(lead_s * 16000), np.int16)]
    for i, text in enumerate(INGEST_SENTENCES):
        parts += [read_audio(str(espeak(text, folder / f"{i}.wav"))), np.zeros(12000, np.int16)]
    return wav_of(np.concatenate(parts), folder / "ingest.wav")


def wav_of(audio: np.ndarray, path: Path) -> Path:
    """int16 mono 16 kHz samples as a WAV file at path."""
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1), f.setsampwidth(2), f.setframerate(16000)
        f.writeframes(audio.astype(np.int16).tobytes())
    return path


HLS_SEGMENT_S = 2.0


def hls_broadcast(folder: Path, sentences: int = 16) -> dict:
    """Held-out sentences with pauses (16: about 40 s), as audio-only HLS in 2 s segments (folder/full.m3u8,
    for LiveHls); the sentences' texts and start times on the source's clock."""
    rng = np.random.default_rng(21)
    chosen = [synth.heldout_sentences()[i] for i in rng.choice(200, 16, replace=False)][:sentences]
    parts, spans, t = [np.zeros(8000, np.float32)], [], 0.5
    for spoken, _ in chosen:
        speech = synth.trim_silence(synth.synthesize(spoken))
        spans.append((t, t + len(speech) / 16000))
        parts += [speech, np.zeros(16000, np.float32)]
        t += (len(speech) + 16000) / 16000
    audio = (np.clip(np.concatenate(parts), -1, 1) * 32767).astype(np.int16)
    wav_of(audio, folder / "speech.wav")
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(folder / "speech.wav"), "-ar", "48000", "-c:a", "aac",
                    "-b:a", "96k", "-f", "hls", "-hls_time", str(HLS_SEGMENT_S), "-hls_list_size", "0",
                    "-hls_segment_filename", str(folder / "seg%03d.ts"), str(folder / "full.m3u8")], check=True)
    return {"folder": folder, "texts": [label for _, label in chosen], "spans": spans, "audio": audio}


class LiveHls:
    """HLS segments made by ffmpeg (hls_broadcast), served as a live playlist that grows with the clock (a
    segment appears once its time has passed, #EXT-X-ENDLIST only after the last), on a loopback port that
    stop() and start() close and reopen. tests/test_live_source.py's FakeHls is the same on a fake clock."""

    def __init__(self, folder: Path, window: int | None = None):
        """window: how many of the newest segments the playlist lists (None: all of them, an event playlist)."""
        self.folder, self.window = folder, window
        lines = (folder / "full.m3u8").read_text().splitlines()
        self.segments = [(float(line.split(":")[1].rstrip(",")), lines[i + 1])
                         for i, line in enumerate(lines) if line.startswith("#EXTINF")]
        self.began = time.monotonic() - 2 * HLS_SEGMENT_S  # two segments are out when it starts
        self.server, self.port = None, 0
        self.frozen_at: float | None = None  # while set, the playlist stops growing (the encoder stalls)

    def playlist(self) -> bytes:
        elapsed, end, out = time.monotonic() - self.began, 0.0, []
        elapsed = elapsed if self.frozen_at is None else min(elapsed, self.frozen_at)
        for duration, name in self.segments:
            end += duration
            if end <= elapsed:
                out += [f"#EXTINF:{duration:.6f},", name]
        done = len(out) == 2 * len(self.segments)
        first = 0 if self.window is None else max(0, len(out) // 2 - self.window)
        out = out[2 * first:]
        head = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{int(HLS_SEGMENT_S) + 1}",
                f"#EXT-X-MEDIA-SEQUENCE:{first}"]
        return ("\n".join(head + out + (["#EXT-X-ENDLIST"] if done else [])) + "\n").encode()

    def start(self) -> None:
        live = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(live.folder), **kwargs)

            def do_GET(self):
                if self.path.startswith("/live.m3u8"):
                    body = live.playlist()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/vnd.apple.mpegurl")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    super().do_GET()

            def log_message(self, *args):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
