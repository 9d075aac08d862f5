"""Faults between the socket and the model, in a real `streamer serve` process: a plugin backend (given as
--backend module:factory, wrapping the built-in one) fails every 7th model call and returns malformed logits
for one client's windows once in 20, so that client's post-model work raises. Every other client's finals
are a clean run's, the hit client ends with an error event and the finals it had, /readyz keeps answering,
and SIGTERM ends the process within 5 s. The same plugin mechanism, passing calls through unchanged, gives
the built-in backend's captions."""

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from streamer.backends.onnx import OnnxModel
from streamer.core.stream import StreamSettings
from streamer.text.decoder import DecoderSettings

from helpers import NPSC, REPO, clean_finals, client, espeak, start_server
from models import synth

DC = 0.05  # the hit client's audio carries this offset: the plugin knows its windows by their mean

PLUGIN = textwrap.dedent('''
    """A test plugin backend: the built-in ONNX Runtime backend, with faults."""
    from streamer.export.loader import onnx_backend


    class Faulty:
        def __init__(self, inner, fail_every, poison_every):
            self.inner, self.info, self.capabilities = inner, inner.info, inner.capabilities
            self.fail_every, self.poison_every = fail_every, poison_every
            self.calls = self.marked = 0

        async def logits(self, batch):
            self.calls += 1
            if self.fail_every and self.calls % self.fail_every == 0:
                raise RuntimeError(f"injected failure of call {self.calls}")
            out = await self.inner.logits(batch)
            for i, item in enumerate(batch):
                if self.poison_every and item.stats is not None and item.stats[0] > 0.025:
                    self.marked += 1
                    if self.marked % self.poison_every == 0:
                        out[i] = out[i][:0]  # no frames: that stream's post-model work raises
            return out

        def close(self):
            self.inner.close()


    def faulty(options):
        return Faulty(onnx_backend(options), fail_every=7, poison_every=20)


    def passthrough(options):
        return Faulty(onnx_backend(options), fail_every=0, poison_every=0)
''')


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("plugin")
    (folder / "faultplugin.py").write_text(PLUGIN)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(REPO), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    """Three honest clients (paused speech and a monologue) and the hit one (long, with the DC mark)."""
    sentences = [spoken for spoken, _ in synth.heldout_sentences()[:24]]
    out = []
    for i, (first, last, pause) in enumerate([(0, 4, 8000), (4, 8, 0), (8, 12, 4000), (12, 24, 6000)]):
        parts = []
        for spoken in sentences[first:last]:
            parts += [synth.synthesize(spoken, synth.SPEAKERS[i % len(synth.SPEAKERS)]), np.zeros(pause, np.float32)]
        audio = np.concatenate([np.zeros(4000, np.float32), *parts, np.zeros(8000, np.float32)])
        out.append((np.clip(audio + (DC if i == 3 else 0), -1, 1) * 32767).astype(np.int16))
    return out


@pytest.mark.parametrize("decoding", ["greedy", "beam"])
def test_model_failures_and_a_failing_stream_cost_that_stream_alone(tiny_nb, clips, plugin_env, decoding, request):
    """With beam search too: a stream's failure ends its beam search, the words it had are its last final."""
    beam = ["--decoder", "beam", "--lm", str(request.getfixturevalue("tiny_nb_lm"))] if decoding == "beam" else []
    settings = StreamSettings(decoder=DecoderSettings(kind="beam", lm=beam[-1])) if beam else StreamSettings()
    server = start_server(tiny_nb, "--backend", "faultplugin:faulty", "--max-lag-s", 1000, *beam, env=plugin_env)
    try:
        check_faults(server, tiny_nb, clips, settings)
    finally:
        if server.process.poll() is None:
            server.process.kill()


def check_faults(server, tiny_nb, clips, settings: StreamSettings) -> None:
    readyz: list[int] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            readyz.append(server.get("/readyz")[0])
            time.sleep(0.2)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        async def everyone():
            return await asyncio.gather(*(client(server.url, audio, pace_s=0.01) for audio in clips))

        results = asyncio.run(everyone())
    finally:
        done.set()
        poller.join()
    model = OnnxModel(tiny_nb)
    for (messages, code), audio in zip(results[:3], clips[:3]):
        assert [m for m in messages if m["type"] == "final"] == clean_finals(model, audio, settings)
        assert not [m for m in messages if m["type"] == "error"] and messages[-1]["type"] == "end" and code == 1000
    messages, code = results[3]
    errors = [m for m in messages if m["type"] == "error"]
    assert [e["code"] for e in errors] == ["recognition_failed"] and messages[-1]["type"] == "end" and code == 1011
    got, clean = [m for m in messages if m["type"] == "final"], clean_finals(model, clips[3], settings)
    assert got[:-1] == clean[:max(0, len(got) - 1)] and len(got) < len(clean)
    if got and settings.decoder.kind != "beam":  # the words committed when it failed: a prefix of the clean
        # run's caption (a beam search ended early may end its last words otherwise)
        assert clean[len(got) - 1]["raw"].split()[:len(got[-1]["raw"].split())] == got[-1]["raw"].split()
    assert readyz and set(readyz) == {200}
    assert 'streamer_refused_streams_total{reason="recognition_failed"} 1.0' in server.get("/metrics")[1]

    # SIGTERM under load: two clients in mid-stream; every one gets its last finals and end, the process
    # exits 0 within 5 s
    async def interrupted():
        tasks = [asyncio.create_task(client(server.url, audio, pace_s=0.1)) for audio in clips[:2]]
        await asyncio.sleep(3.0)
        began = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        outcome = await asyncio.gather(*tasks)
        return outcome, began

    outcome, began = asyncio.run(interrupted())
    assert server.process.wait(timeout=30) == 0
    assert time.monotonic() - began < 5.0
    for messages, code in outcome:
        assert messages[-1]["type"] == "end" and code == 1001
    log = server.process.stderr.read()
    assert "injected failure" in log and "Traceback" not in log


def test_a_plugin_backend_gives_the_built_in_captions(tiny_nb, plugin_env, tmp_path):
    clip = str(NPSC / "norwegian-medium-8s.mp3")
    speech = espeak("Stortinget vedtok budsjettet. Representantene har igjen tatt sete i salen.", tmp_path / "s.wav")

    def run(*extra) -> str:
        result = subprocess.run([sys.executable, "-m", "streamer.cli", "transcribe", path, "--model", str(tiny_nb),
                                 *extra], capture_output=True, text=True, env=plugin_env, timeout=300)
        assert result.returncode == 0, result.stderr
        return result.stdout

    for path in (clip, str(speech)):
        for mode in (["--stream", "--format", "jsonl"], ["--format", "json"]):
            assert run(*mode, "--backend", "faultplugin:passthrough") == run(*mode)
    assert '"type": "final"' in run("--stream", "--format", "jsonl", "--backend", "faultplugin:passthrough")


@pytest.mark.parametrize("name, message", [
    ("nosuchmodule:factory", "cannot import nosuchmodule"),
    ("faultplugin:nothing", "faultplugin has no callable nothing"),
    ("tensorrt", "not one of onnx, triton nor package.module:factory"),
])
def test_a_backend_that_cannot_be_loaded_is_one_line(tiny_nb, plugin_env, name, message):
    result = subprocess.run([sys.executable, "-m", "streamer.cli", "transcribe", str(NPSC / "norwegian-short-3s.mp3"),
                             "--model", str(tiny_nb), "--backend", name], capture_output=True, text=True,
                            env=plugin_env, timeout=120)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
