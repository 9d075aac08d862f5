"""The caption server for real: a `streamer serve` process on loopback, websocket clients, HTTP routes."""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soxr
import websockets

from streamer.core.events import Final
from streamer.backends.onnx import OnnxModel
from streamer.driver.captioner import Captioner

from helpers import AUTH, REPO, TOKEN, drain, start_server, wav_of
from models import synth


@pytest.fixture(scope="module")
def server(tiny_nb):
    running = start_server(tiny_nb, "--token", TOKEN, "--max-streams", 24, "--ping-interval-s", 2)
    yield running
    assert running.stop() == 0
    assert TOKEN not in running.process.stderr.read()  # the token (sent in configs and ?token=) is never logged


@pytest.fixture(scope="module")
def model(tiny_nb):
    return OnnxModel(tiny_nb)


@pytest.fixture(scope="module")
def clips():
    """16 different held-out sentences, each in one of the five voices, with silence around."""
    sentences = synth.heldout_sentences()[:16]
    clips = []
    for i, (spoken, _) in enumerate(sentences):
        speech = synth.synthesize(spoken, synth.SPEAKERS[i % len(synth.SPEAKERS)])
        audio = np.concatenate([np.zeros(8000, np.float32), speech, np.zeros(12000, np.float32)])
        clips.append((np.clip(audio, -1, 1) * 32767).astype(np.int16))
    return clips


async def stream(url, audio: np.ndarray, rate: int = 16000, fmt: str = "pcm_s16le", config: dict | None = None,
                 frame_s: float = 0.1, pace_s: float = 0.0, **connect) -> list[dict]:
    """Send a config, audio frames and eof; return every message up to end (or the close)."""
    messages = []
    async with websockets.connect(url, max_size=None, **connect) as ws:
        await ws.send(json.dumps({"sample_rate": rate, "format": fmt, "token": TOKEN, **(config or {})}))
        frame = int(rate * frame_s)
        dtype = "<i2" if fmt == "pcm_s16le" else "<f4"

        async def send():
            for start in range(0, len(audio), frame):
                await ws.send(np.asarray(audio[start : start + frame], dtype).tobytes())
                await asyncio.sleep(pace_s)
            await ws.send(json.dumps({"type": "eof"}))

        sender = asyncio.create_task(send())
        try:
            async for text in ws:
                messages.append(json.loads(text))
                if messages[-1]["type"] == "end":
                    break
        except websockets.ConnectionClosed:
            pass
        sender.cancel()
    return messages


def finals(messages) -> list[dict]:
    return [m for m in messages if m["type"] == "final"]


def alone(model, audio, rate=16000) -> list[dict]:
    s = Captioner(model).stream(rate)
    events = []
    for start in range(0, len(audio), rate // 10):
        events += s.accept(audio[start : start + rate // 10])
    return [e.to_json() for e in events + s.finish() if isinstance(e, Final)]


def same_finals(got: list[dict], expected: list[dict]) -> bool:
    """Identical words and times; confidences equal to their third decimal (batched rows are computed
    with other matrix shapes than a lone window: ~1e-6 in probabilities)."""
    strip = lambda fs: [{**f, "words": [{k: v for k, v in w.items() if k != "confidence"} for w in f["words"]]} for f in fs]
    confidences = lambda fs: [w["confidence"] for f in fs for w in f["words"]]
    return strip(got) == strip(expected) and np.allclose(confidences(got), confidences(expected), atol=0.0011)


def test_http_routes(server):
    assert server.get("/healthz") == (200, "ok\n")
    assert server.get("/readyz") == (200, "ready\n")
    status, page = server.get("/")
    assert status == 200 and "<title>streamer" in page and "app.js" in page
    assert server.get("/app.js")[0] == 200 and "AudioWorklet" in server.get("/app.js")[1]
    assert "registerProcessor" in server.get("/worklet.js")[1]
    status, metrics = server.get("/metrics", AUTH)
    for name in ("streamer_active_streams", "streamer_audio_seconds_total", "streamer_partial_latency_seconds_bucket",
                 "streamer_final_latency_seconds_bucket", "streamer_batch_windows_bucket", "streamer_queue_depth",
                 "streamer_real_time_factor", "streamer_dropped_partials_total"):
        assert name in metrics
    assert server.get("/nope")[0] == 404


def test_sixteen_clients_at_once_get_the_finals_each_gets_alone(server, model, clips):
    """16 different streams at once (one at 48 kHz float32), and a 17th that vanishes mid-word: each of
    the 16 gets exactly the finals its audio gives alone; model calls carry windows of several streams."""
    audio48 = soxr.resample(clips[3].astype(np.float32) / 32768, 16000, 48000).astype(np.float32)

    async def vanish():
        ws = await websockets.connect(server.url)
        await ws.send(json.dumps({"sample_rate": 16000, "format": "pcm_s16le", "token": TOKEN}))
        for start in range(0, len(clips[0]) // 2, 1600):  # stop in the middle of the speech, without a close
            await ws.send(clips[0][start : start + 1600].tobytes())
        ws.transport.abort()

    async def everyone():
        jobs = [stream(server.url, clip) for i, clip in enumerate(clips) if i != 3]
        jobs.append(stream(server.url, audio48, 48000, "pcm_f32le"))
        return await asyncio.gather(vanish(), *jobs)

    _, *results = asyncio.run(everyone())
    results = results[:3] + [results[-1]] + results[3:-1]  # back in clip order
    for i, (clip, messages) in enumerate(zip(clips, results)):
        assert messages[0]["type"] == "ready" and messages[-1]["type"] == "end", messages[-2:]
        expected = alone(model, audio48, 48000) if i == 3 else alone(model, clip)
        assert expected and same_finals(finals(messages), expected), (i, finals(messages), expected)
    metrics = server.get("/metrics", AUTH)[1]
    count = float(re.search(r"^streamer_batch_streams_count (\S+)", metrics, re.M).group(1))
    total = float(re.search(r"^streamer_batch_streams_sum (\S+)", metrics, re.M).group(1))
    assert total > count, "some model call carried windows of several streams"
    assert server.get("/healthz")[0] == 200


def test_finals_are_those_of_streamer_transcribe_stream(server, tiny_nb, clips, tmp_path):
    path = wav_of(clips[5], tmp_path / "clip.wav")
    cli = subprocess.run([sys.executable, "-m", "streamer.cli", "transcribe", str(path), "--model", str(tiny_nb),
                          "--stream", "--format", "jsonl"], capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    expected = [json.loads(line) for line in cli.stdout.splitlines() if '"final"' in line]
    assert expected and same_finals(finals(asyncio.run(stream(server.url, clips[5]))), expected)


def test_bad_input_gets_an_error_and_the_server_goes_on(server, clips):
    async def scenario():
        results = {}
        async with websockets.connect(server.url) as ws:  # text and odd frames: error events, the stream goes on
            await ws.send(json.dumps({"sample_rate": 16000, "format": "pcm_s16le", "token": TOKEN}))
            assert json.loads(await ws.recv())["type"] == "ready"
            await ws.send("hello")
            await ws.send(b"\x01\x02\x03")
            await ws.send(json.dumps({"type": "pause"}))
            for start in range(0, len(clips[1]), 1600):
                await ws.send(clips[1][start : start + 1600].tobytes())
            await ws.send(json.dumps({"type": "eof"}))
            results["recoverable"] = await drain(ws)
        for name, config in {"invalid json": "{not json", "unknown format": {"sample_rate": 16000, "format": "mp3"},
                             "wrong token": {"sample_rate": 16000, "token": "guess"},
                             "no token": {"sample_rate": 16000}, "bad rate": {"sample_rate": 7, "token": TOKEN},
                             "audio first": b"\x00\x00"}.items():
            async with websockets.connect(server.url) as ws:
                await ws.send(config if isinstance(config, (str, bytes)) else json.dumps(config))
                results[name] = (await drain(ws), ws.close_code, ws.close_reason)
        async with websockets.connect(server.url, max_size=None) as ws:  # a frame over the limit
            await ws.send(json.dumps({"sample_rate": 16000, "token": TOKEN}))
            await ws.recv()
            await ws.send(b"\x00" * (300 * 1024))
            results["oversized"] = (await drain(ws), ws.close_code, ws.close_reason)
        return results

    results = asyncio.run(scenario())
    codes = [m["code"] for m in results["recoverable"] if m["type"] == "error"]
    assert codes == ["bad_message", "bad_frame", "bad_message"]
    assert finals(results["recoverable"]) and results["recoverable"][-1]["type"] == "end"
    for name, code in {"invalid json": "bad_config", "unknown format": "bad_format", "wrong token": "unauthorized",
                       "no token": "unauthorized", "bad rate": "bad_config", "audio first": "bad_config"}.items():
        messages, close_code, reason = results[name]
        assert messages == [{"type": "error", "code": code, "message": messages[0]["message"]}], (name, messages)
        assert close_code == 1008 and reason, (name, close_code)
    assert TOKEN not in json.dumps(results["wrong token"][0])
    assert results["oversized"][1] == 1009  # message too big
    assert server.get("/healthz")[0] == 200
    assert finals(asyncio.run(stream(server.url, clips[2])))  # and a new stream works


def test_origins_and_query_token_are_checked_before_the_upgrade(server):
    async def handshake(url, **kwargs):
        try:
            async with websockets.connect(url, **kwargs):
                return 101
        except websockets.InvalidStatus as error:
            return error.response.status_code

    assert asyncio.run(handshake(server.url, origin="http://evil.example")) == 403
    assert asyncio.run(handshake(server.url, origin=f"http://127.0.0.1:{server.port}")) == 101  # its own page
    assert asyncio.run(handshake(server.url + "?token=guess")) == 401
    assert asyncio.run(handshake(server.url + f"?token={TOKEN}")) == 101


def test_a_client_that_never_reads_is_dropped_alone(server, clips):
    """It stops reading (its queue holds one message), so it answers no ping: the server drops it within a
    few ping intervals while it still sends, and the stream beside it is served to its end."""
    def active() -> float:
        return float(re.search(r"^streamer_active_streams (\S+)", server.get("/metrics", AUTH)[1], re.M).group(1))

    async def scenario():
        ws = await websockets.connect(server.url, max_queue=1)
        await ws.send(json.dumps({"sample_rate": 16000, "format": "pcm_s16le", "token": TOKEN}))
        normal = asyncio.create_task(stream(server.url, clips[6], pace_s=0.02))
        long_audio, began, dropped = np.tile(clips[4], 10), time.time(), None
        try:
            for k, start in enumerate(range(0, len(long_audio), 1600)):
                await ws.send(long_audio[start : start + 1600].tobytes())
                await asyncio.sleep(0.05)
                if k % 10 == 0 and normal.done() and await asyncio.to_thread(active) == 0:
                    dropped = time.time() - began
                    break
        except websockets.ConnectionClosed:
            dropped = time.time() - began
        ws.transport.abort()
        return dropped, await normal

    dropped, others = asyncio.run(scenario())
    assert dropped is not None and dropped < 20
    assert finals(others) and others[-1]["type"] == "end"
    assert server.get("/healthz")[0] == 200


def test_limits_full_idle_and_sigterm_keep_the_captions(tiny_nb, clips):
    server = start_server(tiny_nb, "--max-streams", 2, "--idle-timeout-s", 1.5)
    try:
        async def scenario():
            first = await websockets.connect(server.url)
            await first.send(json.dumps({"sample_rate": 16000}))
            await first.recv()
            second = await websockets.connect(server.url)
            await second.send(json.dumps({"sample_rate": 16000}))
            await second.recv()
            third = await websockets.connect(server.url)  # refused at once, before its config
            refused = (await drain(third), third.close_code)
            for start in range(0, len(clips[7]), 1600):  # speech, then silence on the wire: idle time ends it
                await first.send(clips[7][start : start + 1600].tobytes())
            idle = await drain(first)
            await second.close()
            return refused, idle

        (refused_messages, refused_code), idle = asyncio.run(scenario())
        assert refused_messages[0]["code"] == "busy" and refused_code == 1013
        assert [m["code"] for m in idle if m["type"] == "error"] == ["idle"]
        assert finals(idle) and idle[-1]["type"] == "end"

        async def interrupted():  # SIGTERM in the middle of a stream: its finals, then end
            task = asyncio.create_task(stream(server.url, np.concatenate([clips[8], clips[9]]), pace_s=0.1))
            await asyncio.sleep(3.0)
            server.process.send_signal(signal.SIGTERM)
            return await task

        messages = asyncio.run(interrupted())
        assert finals(messages) and messages[-1]["type"] == "end"
        assert server.process.wait(timeout=60) == 0
    finally:
        server.stop()


def test_a_non_editable_install_serves_the_page(tiny_nb, tmp_path):
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                              "--target", str(target), str(REPO)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    assert (target / "streamer" / "client" / "index.html").is_file()
    env = {**os.environ, "PYTHONPATH": str(target)}
    server = start_server(tiny_nb, env=env, cwd=tmp_path)
    try:
        status, page = server.get("/")
        assert status == 200 and "<title>streamer" in page
        assert server.get("/worklet.js")[0] == 200
    finally:
        assert server.stop() == 0


def test_streamer_connect_prints_the_captions(server, model, clips, tmp_path):
    path = wav_of(clips[10], tmp_path / "clip.wav")
    result = subprocess.run([sys.executable, "-m", "streamer.cli", "connect", server.url, str(path), "--format", "jsonl",
                             "--token", TOKEN], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    got = [json.loads(line) for line in result.stdout.splitlines() if '"final"' in line]
    assert same_finals(got, alone(model, clips[10]))
    refused = subprocess.run([sys.executable, "-m", "streamer.cli", "connect", server.url, str(path)],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "token" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


def test_a_stream_the_server_cannot_keep_up_with_skips_audio_and_keeps_its_captions(tiny_nb):
    """A server that lets captions trail the audio at most 0.5 s, and a client that floods it with speech that
    never pauses: new audio is skipped while the stream is behind (said once per episode, code behind), the
    stream goes on, what was recognized still comes as finals in order, then end."""
    rng = np.random.default_rng(4)
    picked = [synth.heldout_sentences()[i] for i in rng.choice(200, 8, replace=False)]
    monologue = (np.clip(synth.talk(picked, rng)[0], -1, 1) * 32767).astype(np.int16)
    server = start_server(tiny_nb, "--max-lag-s", 0.5)
    try:
        messages = asyncio.run(stream(server.url, monologue, pace_s=0.0))
        codes = [m["code"] for m in messages if m["type"] == "error"]
        assert codes and set(codes) == {"behind"}
        got = finals(messages)
        assert got and messages[-1]["type"] == "end"
        assert all(a["end"] <= b["start"] + 1e-9 for a, b in zip(got, got[1:]))
        assert got[-1]["end"] <= len(monologue) / 16000 + 0.01
        behind = re.search(r"^streamer_behind_total (\S+)", server.get("/metrics", AUTH)[1], re.M)
        assert behind and float(behind.group(1)) == len(codes)
    finally:
        assert server.stop() == 0
