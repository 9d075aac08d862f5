"""Hostile input against a real `streamer serve` on loopback: malformed, huge, empty, deeply nested and
out-of-order messages, random frames, slow and vanishing clients, bursts of connections, and audio that is
NaN, infinite, full-scale noise, DC or clipped. Every case gets a clear error (or is taken as audio), the
server never crashes, and an honest client streaming beside them gets exactly the captions it gets alone."""

import asyncio
import json
import random

import numpy as np
import pytest
import websockets

from streamer.core.events import Final
from streamer.driver.captioner import Captioner
from streamer.backends.onnx import OnnxModel

from models import synth
from helpers import start_server

FRAME_LIMIT = 65536


def case_messages() -> list[tuple[str, list, set[str]]]:
    """(name, what the client sends in order, error codes it may get). str is a text frame, bytes binary."""
    rng = random.Random(7)
    config = json.dumps({"sample_rate": 16000})
    f32 = json.dumps({"sample_rate": 16000, "format": "pcm_f32le"})
    nested = "[" * 30_000 + "]" * 30_000  # under the frame limit: it reaches the JSON parser
    noise = (np.random.default_rng(1).uniform(-1, 1, 16000) * 32767).astype("<i2").tobytes()
    return [
        ("audio before the config", [b"\x00\x01" * 800], {"bad_config"}),
        ("empty text config", [""], {"bad_config"}),
        ("config not JSON", ["{sample_rate: 16000"], {"bad_config"}),
        ("config a JSON list", ["[16000]"], {"bad_config"}),
        ("config a JSON string", ['"hello"'], {"bad_config"}),
        ("config null", ["null"], {"bad_config"}),
        ("config deeply nested", [nested], {"bad_config"}),
        ("config nested object", [json.dumps({"sample_rate": 16000, "settings": {"hop_ms": {"a": [1]}}})],
         {"bad_config"}),
        ("unknown config key", [json.dumps({"sample_rate": 16000, "shell": "rm -rf /"})], {"bad_config"}),
        ("sample rate zero", [json.dumps({"sample_rate": 0})], {"bad_config"}),
        ("sample rate huge", [json.dumps({"sample_rate": 10 ** 12})], {"bad_config"}),
        ("sample rate NaN", ['{"sample_rate": NaN}'], {"bad_config"}),
        ("sample rate a string", [json.dumps({"sample_rate": "16000"})], {"bad_config"}),
        ("format unknown", [json.dumps({"sample_rate": 16000, "format": "mp3"})], {"bad_format"}),
        ("setting out of range", [json.dumps({"sample_rate": 16000, "settings": {"hop_ms": 10 ** 9}})],
         {"bad_config"}),
        ("setting off the frame grid", [json.dumps({"sample_rate": 16000, "settings": {"hop_ms": 250}})],
         {"bad_config"}),
        ("token not a string", [json.dumps({"sample_rate": 16000, "token": ["x"]})], {"bad_config"}),
        ("odd byte count", [config, b"\x01\x02\x03", json.dumps({"type": "eof"})], {"bad_frame"}),
        ("empty binary frame", [config, b"", json.dumps({"type": "eof"})], set()),
        ("NaN floats", [f32, np.full(1600, np.nan, "<f4").tobytes(), json.dumps({"type": "eof"})], {"bad_audio"}),
        ("infinite floats", [f32, np.full(1600, np.inf, "<f4").tobytes(), json.dumps({"type": "eof"})],
         {"bad_audio"}),
        ("int16-scale floats", [f32, np.full(1600, 3000.0, "<f4").tobytes(), json.dumps({"type": "eof"})],
         {"bad_audio"}),
        ("full-scale noise", [config, *[noise] * 5, json.dumps({"type": "eof"})], set()),
        ("DC", [config, np.full(16000, 20000, "<i2").tobytes(), json.dumps({"type": "eof"})], set()),
        ("clipping", [config, np.tile(np.array([32767, -32768], "<i2"), 8000).tobytes(), json.dumps({"type": "eof"})],
         set()),
        ("floats just past full scale", [f32, np.full(1600, 1.5, "<f4").tobytes(), json.dumps({"type": "eof"})],
         set()),
        ("random binary frames", [config, *[rng.randbytes(rng.randrange(0, 4000) * 2) for _ in range(20)],
                                  json.dumps({"type": "eof"})], set()),
        ("random text after the config", [config, "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(500)),
                                          json.dumps({"type": "eof"})], {"bad_message"}),
        ("a second config", [config, config, json.dumps({"type": "eof"})], {"bad_message"}),
        ("nested JSON after the config", [config, nested, json.dumps({"type": "eof"})], {"bad_message"}),
        ("eof twice", [config, json.dumps({"type": "eof"}), json.dumps({"type": "eof"})], set()),
        ("a JSON number after the config", [config, "42", json.dumps({"type": "eof"})], {"bad_message"}),
        ("a frame over the size limit", [config, b"\x00" * (FRAME_LIMIT + 2)], set()),
    ]


async def run_case(url: str, messages: list) -> tuple[list[dict], int | None]:
    got = []
    try:
        async with websockets.connect(url, max_size=None, open_timeout=30) as ws:
            for message in messages:
                await ws.send(message)
            try:
                await asyncio.wait_for(read_all(ws, got), 30)
            except asyncio.TimeoutError:
                await ws.close()
        return got, ws.close_code
    except websockets.ConnectionClosed as closed:
        return got, closed.rcvd.code if closed.rcvd else None


async def read_all(ws, got: list) -> None:
    async for text in ws:
        got.append(json.loads(text))


async def slow_loris(url: str) -> int | None:
    """Opens a connection and never sends its config: the server's idle limit ends it."""
    async with websockets.connect(url) as ws:
        try:
            await asyncio.wait_for(ws.wait_closed(), 30)
        except (asyncio.TimeoutError, websockets.ConnectionClosed):
            pass
        return ws.close_code


async def open_and_drop(url: str, count: int) -> None:
    """Connections opened and dropped at once, some mid-handshake, some after a config and a frame."""
    for k in range(count):
        try:
            ws = await websockets.connect(url, open_timeout=10)
            if k % 3 == 1:
                await ws.send(json.dumps({"sample_rate": 16000}))
                await ws.send(b"\x00" * 3200)
            ws.transport.abort()
        except (OSError, websockets.WebSocketException, asyncio.TimeoutError):
            pass


async def honest(url: str, audio: np.ndarray, **connect) -> list[dict]:
    messages = []
    async with websockets.connect(url, max_size=None, **connect) as ws:
        await ws.send(json.dumps({"sample_rate": 16000}))
        for start in range(0, len(audio), 1600):
            await ws.send(audio[start:start + 1600].tobytes())
            await asyncio.sleep(0.01)
        await ws.send(json.dumps({"type": "eof"}))
        async for text in ws:
            messages.append(json.loads(text))
    return [m for m in messages if m["type"] == "final"]


@pytest.mark.parametrize("group", [0, 1])
def test_hostile_clients_get_clear_errors_and_honest_ones_their_captions(tiny_nb, group):
    cases = case_messages()[group::2]
    speech = synth.synthesize(synth.heldout_sentences()[3][0], synth.SPEAKERS[0])
    audio = (np.clip(np.concatenate([np.zeros(4000, np.float32), speech, np.zeros(8000, np.float32)]), -1, 1)
             * 32767).astype(np.int16)
    stream = Captioner(OnnxModel(tiny_nb)).stream()
    alone = [e.to_json() for e in stream.accept(audio) + stream.finish() if isinstance(e, Final)]
    server = start_server(tiny_nb, "--max-streams", 64, "--idle-timeout-s", 3, "--max-frame-bytes", FRAME_LIMIT)
    try:
        async def everyone():
            hostile = asyncio.gather(*(run_case(server.url, messages) for _, messages, _ in cases))
            extra = asyncio.gather(slow_loris(server.url), open_and_drop(server.url, 200))
            return await asyncio.gather(honest(server.url, audio), hostile, extra)

        honest_finals, outcomes, (loris_code, _) = asyncio.run(everyone())
        assert honest_finals == alone
        for (name, _, allowed), (got, code) in zip(cases, outcomes):
            codes = {m["code"] for m in got if m["type"] == "error"}
            assert codes <= allowed and (codes or not allowed), (name, got, code)
            assert all(m.get("message") for m in got if m["type"] == "error"), name  # a reason to read
            if allowed and next(iter(allowed)) in ("bad_config", "bad_format"):
                assert code == 1008, (name, code)
            elif "over the size limit" in name:
                assert code == 1009, (name, code)
            else:  # the stream went on to its end
                assert got and got[-1]["type"] == "end" and code == 1000, (name, got, code)
        assert loris_code == 1008
        assert server.get("/readyz")[0] == 200 and server.process.poll() is None
    finally:
        assert server.stop() == 0


ALLOWED = "https://captions.example"


def origin_cases(port: int) -> list[tuple[str, list[tuple[str, str]], int]]:
    """(name, the Origin headers of the upgrade, the status it gets) for a server that allows ALLOWED: every
    Origin but ALLOWED and the server's own page is refused before the upgrade; no Origin is a script's (it
    could send any: the token is what keeps scripts out)."""
    own = f"http://127.0.0.1:{port}"
    return [
        ("no Origin", [], 101),
        ("the allowed origin", [("Origin", ALLOWED)], 101),
        ("the server's own page", [("Origin", own)], 101),
        ("another site", [("Origin", "https://evil.example")], 403),
        ("the allowed origin with a path", [("Origin", ALLOWED + "/page")], 403),
        ("the allowed origin with a slash", [("Origin", ALLOWED + "/")], 403),
        ("the allowed origin on another port", [("Origin", ALLOWED + ":8443")], 403),
        ("the allowed origin over http", [("Origin", ALLOWED.replace("https", "http"))], 403),
        ("the allowed origin as a subdomain of another", [("Origin", ALLOWED + ".evil.example")], 403),
        ("the allowed origin as a user name", [("Origin", ALLOWED + "@evil.example")], 403),
        ("the server's own page with a path", [("Origin", own + "/evil")], 403),
        ("the server's own page on another port", [("Origin", f"http://127.0.0.1:{port + 1}")], 403),
        ("the server's own page as ws://", [("Origin", own.replace("http", "ws"))], 403),
        ("null", [("Origin", "null")], 403),
        ("empty", [("Origin", "")], 403),
        ("not a URL", [("Origin", "captions.example")], 403),
        ("a scheme without a host", [("Origin", "https://")], 403),
        ("huge", [("Origin", ALLOWED + "/" + "a" * 20_000)], 431),
        ("twice the allowed origin", [("Origin", ALLOWED)] * 2, 400),
        ("the allowed origin and another", [("Origin", ALLOWED), ("Origin", "https://evil.example")], 400),
        ("a hundred Origin headers", [("Origin", ALLOWED)] * 100, 400),
        ("more headers than a request may have", [("Origin", ALLOWED)] * 200, 431),
    ]


async def upgrade(url: str, headers: list[tuple[str, str]]) -> tuple[int, str]:
    """The handshake's status, and the body that says why when it is refused."""
    try:
        async with websockets.connect(url, additional_headers=headers, open_timeout=30):
            return 101, ""
    except websockets.InvalidStatus as refused:
        return refused.response.status_code, refused.response.body.decode(errors="replace")


def test_hostile_origins_are_refused_before_the_upgrade_and_honest_clients_get_their_captions(tiny_nb):
    speech = synth.synthesize(synth.heldout_sentences()[5][0], synth.SPEAKERS[1])
    audio = (np.clip(np.concatenate([np.zeros(4000, np.float32), speech, np.zeros(8000, np.float32)]), -1, 1)
             * 32767).astype(np.int16)
    stream = Captioner(OnnxModel(tiny_nb)).stream()
    alone = [e.to_json() for e in stream.accept(audio) + stream.finish() if isinstance(e, Final)]
    server = start_server(tiny_nb, "--allow-origin", ALLOWED, "--max-streams", 64)
    cases = origin_cases(server.port)
    try:
        async def everyone():
            hostile = asyncio.gather(*(upgrade(server.url, headers) for _ in range(3) for _, headers, _ in cases))
            return await asyncio.gather(honest(server.url, audio), honest(server.url, audio, origin=ALLOWED), hostile)

        script_finals, page_finals, outcomes = asyncio.run(everyone())
        assert script_finals == alone and page_finals == alone
        for (name, _, expected), (status, body) in zip(cases * 3, outcomes):
            assert status == expected, (name, status, body)
            assert status == 101 or body.strip(), name  # a reason to read
        assert server.get("/readyz")[0] == 200 and server.process.poll() is None
    finally:
        assert server.stop() == 0
    assert "Traceback" not in server.process.stderr.read()
