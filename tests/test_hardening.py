"""Defects found by trying streamer as a new user would (issue 19), each with the reproduction that failed
before its fix: outputs that are devices, pipes, symlinks or the input itself; a stream limit that did not
hold when clients connected at the same moment; deeply nested JSON from a client."""

import asyncio
import json
import os
import re
import stat
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import websockets

from helpers import NPSC, drain, espeak, silence, speech_file, start_server

CLIP = NPSC / "norwegian-short-3s.mp3"


def transcribe(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamer.cli", "transcribe", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    return espeak("Stortinget er samlet. Møtet er satt.", tmp_path_factory.mktemp("hardening") / "talk.wav")


def device(path, minor: int):
    """A character device node of our own (the null or full device), so a failing test destroys only it."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
    except PermissionError:
        pytest.skip("making a device node needs root")
    return path


def test_output_to_a_null_device_writes_through_and_leaves_the_device(tiny_export, spoken, tmp_path):
    null = device(tmp_path / "null", 3)
    result = transcribe(spoken, "--model", tiny_export, "--format", "srt", "-o", null)
    assert result.returncode == 0, result.stderr
    assert stat.S_ISCHR(os.stat(null).st_mode)


def test_output_to_a_full_device_is_one_line_and_leaves_the_device(tiny_export, spoken, tmp_path):
    full = device(tmp_path / "full", 7)
    result = transcribe(spoken, "--model", tiny_export, "--format", "srt", "-o", full)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "no space left" in result.stderr.lower() and len(result.stderr.strip().splitlines()) == 1
    assert stat.S_ISCHR(os.stat(full).st_mode)


def test_output_to_a_named_pipe_reaches_its_reader(tiny_export, spoken, tmp_path):
    fifo = tmp_path / "captions.fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text(encoding="utf-8")), daemon=True)
    reader.start()
    result = transcribe(spoken, "--model", tiny_export, "--format", "srt", "-o", fifo)
    reader.join(timeout=60)
    assert result.returncode == 0, result.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and received and "-->" in received[0]


def test_output_through_a_symlink_writes_its_target(tiny_export, spoken, tmp_path):
    target = tmp_path / "real" / "captions.srt"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "link.srt"
    link.symlink_to(target)
    result = transcribe(spoken, "--model", tiny_export, "--format", "srt", "-o", link)
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert "-->" in target.read_text()


def test_output_that_is_the_input_is_refused(tiny_export, spoken, tmp_path):
    audio = tmp_path / "same.wav"
    audio.write_bytes(spoken.read_bytes())
    link = tmp_path / "alias.wav"
    link.symlink_to(audio)
    for output in (audio, link):
        result = transcribe(audio, "--model", tiny_export, "-o", output)
        assert result.returncode == 2 and "is the input" in result.stderr and "Traceback" not in result.stderr
    assert audio.read_bytes() == spoken.read_bytes()


def test_the_stream_limit_holds_for_clients_that_connect_at_the_same_moment(tiny_nb):
    server = start_server(tiny_nb, "--max-streams", 2)

    async def one() -> str:
        async with websockets.connect(server.url) as ws:
            try:
                await ws.send(json.dumps({"sample_rate": 16000}))
            except websockets.ConnectionClosed:
                pass  # refused at once: the error event is still there to read
            first = json.loads(await ws.recv())
            if first["type"] == "ready":
                await asyncio.sleep(1.0)  # hold the slot while the others try
                await ws.send(json.dumps({"type": "eof"}))
                async for _ in ws:
                    pass
                return "ready"
            return first.get("code", first["type"])

    async def everyone():
        return await asyncio.gather(*(one() for _ in range(5)))

    try:
        outcome = asyncio.run(everyone())
        assert sorted(outcome) == ["busy", "busy", "busy", "ready", "ready"]
        assert asyncio.run(everyone()).count("ready") == 2  # the slots came back
    finally:
        assert server.stop() == 0


def test_deeply_nested_json_is_an_error_event_and_loses_no_audio(tiny_nb, spoken):
    from streamer.sources.ffmpeg import read_audio

    audio = np.concatenate([silence(0.3), read_audio(str(spoken)), silence(1.0)])
    nested = "[" * 100_000 + "]" * 100_000
    server = start_server(tiny_nb)

    async def as_config():
        async with websockets.connect(server.url, max_size=None) as ws:
            await ws.send(nested)
            return json.loads(await ws.recv())

    async def after_audio():
        messages = []
        async with websockets.connect(server.url, max_size=None) as ws:
            await ws.send(json.dumps({"sample_rate": 16000}))
            for start in range(0, len(audio), 1600):
                await ws.send(audio[start:start + 1600].tobytes())
            await ws.send(nested)
            await ws.send(json.dumps({"type": "eof"}))
            async for text in ws:
                messages.append(json.loads(text))
            return messages, ws.close_code

    try:
        refused = asyncio.run(as_config())
        assert refused["type"] == "error" and refused["code"] == "bad_config"
        messages, code = asyncio.run(after_audio())
        assert [m["code"] for m in messages if m["type"] == "error"] == ["bad_message"]
        assert [m for m in messages if m["type"] == "final"] and messages[-1]["type"] == "end" and code == 1000
    finally:
        assert server.stop() == 0


@pytest.fixture()
def web(tmp_path):
    """A plain HTTP server on loopback over an empty folder: every playlist is a 404."""
    import functools
    import http.server

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_a_failed_subtitle_run_leaves_no_empty_file_behind(tiny_export, web, tmp_path):
    srt = tmp_path / "out" / "x.srt"
    srt.parent.mkdir()
    for _ in range(2):  # the second run fails for the same reason, not for the first run's empty file
        result = subprocess.run([sys.executable, "-m", "streamer.cli", "subtitle", f"{web}/nope.m3u8", "--model",
                                 str(tiny_export), "--srt", str(srt), "--jsonl", str(tmp_path / "out" / "x.jsonl")],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and "not found (404)" in result.stderr and "exists" not in result.stderr
        assert not list(srt.parent.iterdir())


def test_serve_on_a_port_in_use_or_a_bad_host_is_one_line(tiny_export):
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        for args in (["--port", str(taken.getsockname()[1])], ["--host", "256.1.1.1", "--port", "0"]):
            result = subprocess.run([sys.executable, "-m", "streamer.cli", "serve", "--model", str(tiny_export), *args],
                                    capture_output=True, text=True, timeout=120)
            lines = [line for line in result.stderr.splitlines() if line.startswith("streamer: error")]
            assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
            assert len(lines) == 1 and "cannot listen on" in lines[0]
    finally:
        taken.close()


def test_connect_takes_the_address_serve_prints_and_says_why_a_stream_is_refused(tiny_nb, spoken):
    server = start_server(tiny_nb)
    try:
        http_url = f"http://127.0.0.1:{server.port}/"
        result = subprocess.run([sys.executable, "-m", "streamer.cli", "connect", http_url, str(spoken), "--format",
                                 "jsonl"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert '"type": "final"' in result.stdout
        text = subprocess.run([sys.executable, "-m", "streamer.cli", "connect", server.url, str(spoken)],
                              capture_output=True, text=True, timeout=120)
        assert text.returncode == 0 and text.stdout.strip() and not set("\r\x1b") & set(text.stdout), text.stdout
        viewer = subprocess.run([sys.executable, "-m", "streamer.cli", "connect", f"{server.url}live", str(spoken)],
                                capture_output=True, text=True, timeout=120)
        assert viewer.returncode == 2 and "Traceback" not in viewer.stderr, viewer.stderr
        assert "no broadcast" in viewer.stderr
    finally:
        assert server.stop() == 0


def test_a_language_model_that_is_not_one_is_one_line(tiny_export, spoken, tmp_path):
    pytest.importorskip("flashlight.lib.text.decoder", reason="beam search needs the lm extra (.ci/run installs it)")
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 65536, dtype=np.uint8).tobytes())
    folder = tmp_path / "language_model"
    folder.mkdir()
    (folder / "model.bin").write_bytes(garbage.read_bytes())
    for lm in (garbage, folder):
        result = transcribe(spoken, "--model", tiny_export, "--decoder", "beam", "--lm", lm)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert "is not a KenLM language model" in result.stderr


def test_on_idle_time_the_error_comes_after_the_last_finals(tiny_nb, spoken):
    from streamer.sources.ffmpeg import read_audio

    audio = np.concatenate([silence(0.3), read_audio(str(spoken))])
    server = start_server(tiny_nb, "--idle-timeout-s", 1.5)

    async def idle():
        messages = []
        async with websockets.connect(server.url) as ws:
            await ws.send(json.dumps({"sample_rate": 16000}))
            for start in range(0, len(audio), 1600):
                await ws.send(audio[start:start + 1600].tobytes())
            async for text in ws:  # no eof, no more audio: idle time ends the stream
                messages.append(json.loads(text))
        return messages

    try:
        messages = asyncio.run(idle())
        kinds = [m["type"] for m in messages]
        assert kinds[-2:] == ["error", "end"] and messages[-2]["code"] == "idle" and "final" in kinds
        assert 'streamer_refused_streams_total{reason="idle"} 1.0' in server.get("/metrics")[1]
    finally:
        assert server.stop() == 0


def test_an_exported_model_finds_its_checkpoints_language_model_from_any_directory(tiny_checkpoint, tmp_path,
                                                                                      monkeypatch):
    """The manifest named the checkpoint by the relative path given to export, so the language model beside the
    checkpoint was found from the checkout only."""
    import shutil

    from streamer.model.manifest import ModelInfo
    from streamer.export.checkpoint import resolve_checkpoint
    from streamer.export.onnx_export import export_checkpoint

    shutil.copytree(tiny_checkpoint, tmp_path / "ckpt")
    monkeypatch.chdir(tmp_path)
    export_checkpoint(resolve_checkpoint("ckpt"), tmp_path / "onnx")
    (tmp_path / "ckpt" / "language_model").mkdir()  # built after the export (as tiny-nb's is), so not copied
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert ModelInfo.load(tmp_path / "onnx").language_model_dir == (tmp_path / "ckpt" / "language_model").resolve()


def test_an_output_folder_that_takes_no_files_is_one_line(tiny_export, spoken):
    if not os.path.isdir("/proc/self"):
        pytest.skip("no /proc")
    result = transcribe(spoken, "--model", tiny_export, "-o", "/proc/x.txt")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "cannot write /proc/x.txt" in result.stderr


def test_serve_with_an_input_that_is_not_there_stops_with_its_reason(tiny_export, web):
    result = subprocess.run([sys.executable, "-m", "streamer.cli", "serve", "--model", str(tiny_export), "--port", "0",
                             "--ingest", f"{web}/nope.m3u8"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "streamer: error: the input cannot be read" in result.stderr and "not found (404)" in result.stderr


def test_broadcast_viewers_have_a_limit(tiny_nb, tmp_path):
    server = start_server(tiny_nb, "--ingest", speech_file(tmp_path, lead_s=6.0), "--ingest-realtime",
                          "--max-viewers", 2)

    async def viewers():
        async def one():
            async with websockets.connect(f"{server.url}live") as ws:
                first = json.loads(await ws.recv())
                await asyncio.sleep(1.0)
                return first.get("code", first["type"])

        return await asyncio.gather(*(one() for _ in range(4)))

    try:
        assert sorted(asyncio.run(viewers())) == ["busy", "busy", "ready", "ready"]
        assert refusals(server.get("/metrics")[1]) == {"busy": 2}
    finally:
        assert server.stop() == 0


def test_metrics_need_the_token_and_no_path_reaches_a_file_outside_the_client(tiny_nb):
    import http.client

    def get(port: int, path: str, headers: dict | None = None) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", path, headers=headers or {})  # sent as written, not normalized
        status = connection.getresponse().status
        connection.close()
        return status

    server = start_server(tiny_nb, "--token", "t0ken")
    try:
        assert get(server.port, "/metrics") == 401
        assert get(server.port, "/metrics", {"Authorization": "Bearer wrong"}) == 401
        assert get(server.port, "/metrics", {"Authorization": "Bearer t0ken"}) == 200
        assert get(server.port, "/metrics?token=t0ken") == 200
        for path in ("/../pyproject.toml", "/%2e%2e/pyproject.toml", "/client/../README.md", "/app.js/../../server.py",
                     "//etc/passwd", "/..%2f..%2fetc%2fpasswd", "/index.html", "/connect.py", "/__init__.py"):
            assert get(server.port, path) == 404, path
    finally:
        assert server.stop() == 0
    public = start_server(tiny_nb, "--token", "t0ken", "--public-metrics")
    try:
        assert get(public.port, "/metrics") == 200
    finally:
        assert public.stop() == 0


def refusals(text: str, name: str = "streamer_refused_streams_total") -> dict[str, float]:
    """A labelled counter's values by reason, from a /metrics page (those above zero)."""
    found = {m.group(1): float(m.group(2)) for m in re.finditer(rf'^{name}{{reason="(\w+)"}} (\S+)$', text, re.M)}
    return {reason: value for reason, value in found.items() if value}


async def handshake_status(url: str, **connect) -> int:
    try:
        async with websockets.connect(url, **connect):
            return 101
    except websockets.InvalidStatus as refused:
        return refused.response.status_code


def test_metrics_on_an_address_of_their_own_and_not_on_the_main_port(tiny_nb):
    server = start_server(tiny_nb, "--token", "t0ken", "--metrics-port", 0)
    try:
        metrics_port = server.metrics_port
        assert metrics_port and metrics_port != server.port
        status, text = server.get("/metrics", port=metrics_port)  # no token there: its address protects it
        assert status == 200 and "streamer_active_streams" in text
        assert server.get("/healthz", port=metrics_port) == (200, "ok\n")
        assert server.get("/readyz", port=metrics_port) == (200, "ready\n")
        for path in ("/", "/app.js", "/viewer", "/live", "/nope", "/metrics/../app.js"):
            status, text = server.get(path, port=metrics_port)
            assert status == 404 and "serves /metrics, /healthz, /readyz only" in text, path
        assert asyncio.run(handshake_status(f"ws://127.0.0.1:{metrics_port}/metrics")) == 404
        for path, headers in (("/metrics", {}), ("/metrics", {"Authorization": "Bearer t0ken"}),
                              ("/metrics?token=t0ken", {})):
            assert server.get(path, headers)[0] == 404, (path, headers)  # not on the main port, token or not
        assert server.get("/healthz") == (200, "ok\n")
    finally:
        assert server.stop() == 0


def test_metrics_options_that_cannot_go_together_are_one_line(tiny_export):
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        for args, message in (
                (["--metrics-port", taken.getsockname()[1]], f"cannot listen on 127.0.0.1:{taken.getsockname()[1]} "
                                                             "for metrics"),
                (["--metrics-port", 0, "--public-metrics"], "leave out one of them"),
                (["--metrics-host", "127.0.0.1"], "give --metrics-port too"),
                (["--allow-origin", "https://captions.example/page"], "is not an origin")):
            result = subprocess.run([sys.executable, "-m", "streamer.cli", "serve", "--model", str(tiny_export),
                                     "--port", "0", *map(str, args)], capture_output=True, text=True, timeout=120)
            lines = [line for line in result.stderr.splitlines() if line.startswith("streamer: error")]
            assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
            assert len(lines) == 1 and message in lines[0], (args, lines)
    finally:
        taken.close()


def test_every_refused_or_ended_stream_is_counted_by_reason(tiny_nb):
    """Each way the server refuses a stream or ends it for cause adds one to streamer_refused_streams with its
    reason; a client that vanishes ended its stream itself and adds nothing."""
    token, origin = "t0ken", "https://captions.example"
    server = start_server(tiny_nb, "--token", token, "--allow-origin", origin, "--max-streams", 2,
                          "--idle-timeout-s", 1.5, "--max-frame-bytes", 4096, "--ping-interval-s", 1,
                          "--metrics-port", 0)
    config = json.dumps({"sample_rate": 16000, "token": token})

    def counted() -> dict[str, float]:
        return refusals(server.get("/metrics", port=server.metrics_port)[1])

    async def refused(message, path: str = "") -> list[dict]:
        async with websockets.connect(server.url + path) as ws:
            try:
                if message is not None:
                    await ws.send(message)
            except websockets.ConnectionClosed:
                pass  # refused at once: the error event is still there to read
            return await drain(ws)

    async def held():
        ws = await websockets.connect(server.url)
        await ws.send(config)
        assert json.loads(await ws.recv())["type"] == "ready"
        return ws

    async def scenario():
        assert await handshake_status(server.url, origin="https://evil.example") == 403
        assert await handshake_status(server.url, additional_headers=[("Origin", origin), ("Origin", origin)]) == 400
        assert await handshake_status(server.url + "?token=guess") == 401
        assert await handshake_status(server.url, origin=origin) == 101
        codes = [(await refused(json.dumps({"sample_rate": 16000, "token": "guess"})))[0]["code"],
                 (await refused("{not json"))[0]["code"],
                 (await refused(json.dumps({"sample_rate": 16000, "format": "mp3", "token": token})))[0]["code"],
                 (await refused(None, "live"))[0]["code"],
                 (await refused(None))[0]["code"]]  # no config within the idle time
        first, second = await held(), await held()
        codes.append((await refused(config))[0]["code"])
        await first.close()
        await second.close()
        await asyncio.sleep(0.5)
        too_big = await held()
        await too_big.send(b"\x00" * 5000)
        await too_big.wait_closed()
        vanished = await held()
        vanished.transport.abort()
        deaf = await websockets.connect(server.url, max_queue=1)  # reads nothing: it answers no ping
        await deaf.send(config)
        await deaf.send("hello")  # an error event after ready: more than it takes in without reading
        deadline = time.time() + 30
        try:
            while "ping_timeout" not in await asyncio.to_thread(counted) and time.time() < deadline:
                await deaf.send(b"\x00" * 3200)  # it still sends, so idle time does not end it
                await asyncio.sleep(0.2)
        except websockets.ConnectionClosed:
            pass
        deaf.transport.abort()
        return codes, too_big.close_code

    try:
        codes, too_big_code = asyncio.run(scenario())
        assert codes == ["unauthorized", "bad_config", "bad_format", "no_broadcast", "idle", "busy"]
        assert too_big_code == 1009
        assert counted() == {"origin": 2, "unauthorized": 2, "bad_config": 1, "bad_format": 1, "no_broadcast": 1,
                             "idle": 1, "busy": 1, "frame_too_big": 1, "ping_timeout": 1}
    finally:
        assert server.stop() == 0


def test_viewers_who_lose_the_broadcast_are_counted_by_reason(tiny_nb, tmp_path):
    server = start_server(tiny_nb, "--ingest", speech_file(tmp_path, lead_s=2.0), "--ingest-realtime", "--token",
                          "t0ken", "--ping-interval-s", 1)
    live = f"{server.url}live?token=t0ken"

    async def scenario():
        async with websockets.connect(f"{server.url}live") as refused:  # no token
            code = json.loads(await refused.recv())["code"]
            await refused.wait_closed()
        vanished = await websockets.connect(live)
        await vanished.recv()
        vanished.transport.abort()  # gone without a close: noticed at the next caption
        deaf = await websockets.connect(live, max_queue=1)  # reads nothing: it answers no ping
        async with websockets.connect(live) as honest:
            kinds = [json.loads(m)["type"] async for m in honest]
        deaf.transport.abort()
        return code, kinds

    try:
        code, kinds = asyncio.run(scenario())
        assert code == "unauthorized" and kinds[0] == "ready" and kinds[-1] == "end" and "final" in kinds
        deadline = time.time() + 20  # a failed connection is closed (and its send raises) within the close timeout
        while len(refusals(text := server.get("/metrics", {"Authorization": "Bearer t0ken"})[1],
                           "streamer_dropped_viewers_total")) < 2 and time.time() < deadline:
            time.sleep(0.5)
        assert refusals(text, "streamer_dropped_viewers_total") == {"connection_lost": 1, "ping_timeout": 1}
        assert refusals(text) == {"unauthorized": 1}
    finally:
        assert server.stop() == 0


def test_a_viewer_whose_queue_fills_is_counted_as_not_reading():
    from streamer.serve.server import CaptionServer, ServerSettings

    server = CaptionServer(lambda: None, ServerSettings(ingest="unused.wav", viewer_queue=2))
    server.broadcast.join()  # never reads
    for k in range(5):
        server.broadcast.publish({"type": "final", "segment": k, "text": f"ord {k}"})
    assert refusals(server.metrics.text().decode(), "streamer_dropped_viewers_total") == {"not_reading": 1}
