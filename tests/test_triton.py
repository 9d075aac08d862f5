"""NVIDIA Triton Inference Server as the backend (issue 22), against a real tritonserver on loopback, CPU only.

The server is the tritonserver 2.51 that the nvidia-pytriton package ships. It has Triton's Python backend but
not its onnxruntime backend, so the repository that `streamer export --triton-repo` writes is served through a
stand-in (deploy/local_triton.py): the same config.pbtxt (inputs, outputs, max_batch_size, dynamic batching,
instance groups) with `backend: "python"`, whose model.py runs the same model.onnx with ONNX Runtime, a batch
the dynamic batcher formed as one run. So everything of streamer's side is real (gRPC, the server's batching,
restarts, errors); the one thing not run here is Triton's own onnxruntime backend. The config written for that
backend is checked against the exported model's real inputs and outputs, and parsed with Triton's own
ModelConfig schema. Tests that need the server are skipped, with the reason, where its virtual environment
(made by .ci/run with /usr/bin/python3.11) or tritonclient is missing.
"""

import asyncio
import hashlib
import json
import re
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from streamer.cli.main import main
from streamer.core.events import Error, Final, broken_promises
from streamer.driver.offline import transcribe_array
from streamer.backends.backend import BackendOptions
from streamer.model.manifest import ModelInfo
from streamer.export.loader import create_backend
from streamer.driver.batcher import BatchSettings
from streamer.driver.captioner import Captioner
from streamer.backends.onnx import OnnxModel
from streamer.export.triton_repo import write_triton_repo

from deploy.local_triton import LocalTriton, find_distribution
from models import synth
from helpers import client, finals_of, run_streams, start_server, wav_of

BLOCK = 1600  # 100 ms


@pytest.fixture(scope="module")
def grpc_client():
    return pytest.importorskip("tritonclient.grpc", reason="the triton extra is not installed (pip install -e '.[triton]')")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return tmp_path_factory.mktemp("triton") / "repo"


@pytest.fixture(scope="module")
def folder(tiny_nb, repo):
    """tiny-nb's model folder in a repository, as `streamer export --triton-repo` writes it, with a folder beside
    the version as an export with a language model has (the server must pass over what is not a version)."""
    folder = write_triton_repo(tiny_nb, repo)
    (folder / "language_model").mkdir()
    (folder / "language_model" / "attrs.json").write_text("{}")
    return folder


@pytest.fixture(scope="module")
def triton(folder, repo, grpc_client, tmp_path_factory):
    dist, reason = find_distribution()
    if dist is None:
        pytest.skip(f"no CPU tritonserver here: {reason}")
    with LocalTriton(repo, dist, log_path=tmp_path_factory.mktemp("tritonlog") / "tritonserver.log") as server:
        server.start()
        yield server


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    """Two speakers, paused speech and running speech, int16 16 kHz."""
    sentences = [spoken for spoken, _ in synth.heldout_sentences()[:7]]
    out = []
    for i, (first, last, pause) in enumerate([(0, 4, 6000), (4, 7, 0)]):
        parts = []
        for spoken in sentences[first:last]:
            parts += [synth.synthesize(spoken, synth.SPEAKERS[i]), np.zeros(pause, np.float32)]
        audio = np.concatenate([np.zeros(4000, np.float32), *parts, np.zeros(8000, np.float32)])
        out.append((np.clip(audio, -1, 1) * 32767).astype(np.int16))
    return out


@pytest.fixture(scope="module")
def baseline(tiny_nb, clips) -> list[list]:
    """Every event of each clip through the in-process backend, 100 ms blocks."""
    captioner = Captioner(OnnxModel(tiny_nb))
    return [run_stream(captioner, audio) for audio in clips]


def run_stream(captioner, audio, until: int | None = None) -> list:
    stream = captioner.stream()
    events = []
    for start in range(0, len(audio) if until is None else until, BLOCK):
        events += stream.accept(audio[start:start + BLOCK])
    return events + (stream.finish() if until is None else [])


def triton_backend(folder, url, timeout_s=10.0, log=lambda message: None):
    return create_backend("triton", BackendOptions(str(folder), url=url, timeout_s=timeout_s, log=log))


# ---- the repository


def onnx_type(triton_type: str) -> str:
    return {"TYPE_FP32": "tensor(float)", "TYPE_FP16": "tensor(float16)", "TYPE_INT64": "tensor(int64)"}[triton_type]


def check_config(folder, grpc_client, precision: str) -> None:
    """config.pbtxt parses as Triton's ModelConfig and declares the ONNX file's real inputs and outputs."""
    import onnxruntime as ort
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    config = text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    session = ort.InferenceSession(str(folder / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    for declared, real in ((config.input, session.get_inputs()), (config.output, session.get_outputs())):
        assert [t.name for t in declared] == [t.name for t in real]
        for tensor, onnx_tensor in zip(declared, real):
            assert onnx_type(model_config_pb2.DataType.Name(tensor.data_type)) == onnx_tensor.type
            assert isinstance(onnx_tensor.shape[0], str)  # the batch dimension, left to max_batch_size
            assert list(tensor.dims) == [d if isinstance(d, int) else -1 for d in onnx_tensor.shape[1:]]
    assert [t.name for t in config.input] == ["input_values", "attention_mask"]
    assert [t.name for t in config.output] == ["logits"] and config.output[0].dims[-1] == len(
        ModelInfo.load(folder).vocab)
    assert config.name == folder.name and config.backend == "onnxruntime" and config.max_batch_size == 16
    assert [(g.kind, g.count) for g in config.instance_group] == [(model_config_pb2.ModelInstanceGroup.KIND_AUTO, 1)]
    assert config.HasField("dynamic_batching") == (precision != "int8")  # int8 rows depend on their batch
    if precision != "int8":
        assert list(config.dynamic_batching.preferred_batch_size) == [4, 8, 16]
        assert config.dynamic_batching.max_queue_delay_microseconds == 2000
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["precision"] == precision and manifest["triton"]["model_name"] == folder.name
    assert hashlib.sha256((folder / "1" / "model.onnx").read_bytes()).hexdigest() == manifest["model_sha256"]


def test_the_config_declares_the_exported_models_real_inputs_and_outputs(folder, grpc_client, tiny_nb):
    check_config(folder, grpc_client, "fp32")
    assert ModelInfo.load(folder).vocab.tokens == ModelInfo.load(tiny_nb).vocab.tokens
    assert not (folder / "model.onnx").exists()  # the weights live in the version folder only


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_fp16_and_int8_exports_are_declared_as_they_are(tiny_export, grpc_client, tmp_path, precision):
    from streamer.export.onnx_export import convert_precision

    converted = tmp_path / precision
    shutil.copytree(tiny_export, converted)
    convert_precision(tiny_export / "model.onnx", converted / "model.onnx", precision)
    manifest = json.loads((tiny_export / "manifest.json").read_text())
    manifest |= {"precision": precision, "model_sha256": hashlib.sha256((converted / "model.onnx").read_bytes()).hexdigest()}
    (converted / "manifest.json").write_text(json.dumps(manifest))
    check_config(write_triton_repo(converted, tmp_path / "repo"), grpc_client, precision)


def test_export_writes_a_repository_from_a_checkpoint_or_an_export(tiny_checkpoint, tiny_export, tmp_path, capsys):
    repo = tmp_path / "repo"
    assert main(["export", str(tiny_checkpoint), "--triton-repo", str(repo), "--triton-model", "tiny"]) == 0
    assert sorted(p.name for p in (repo / "tiny").iterdir()) == ["1", "config.pbtxt", "manifest.json", "vocab.json"]
    assert main(["export", str(tiny_export), "--triton-repo", str(repo), "--triton-model", "other", "--triton-kind",
                 "cpu", "--triton-max-batch", "4", "--triton-instances", "2"]) == 0
    config = (repo / "other" / "config.pbtxt").read_text()
    assert "max_batch_size: 4" in config and "count: 2 kind: KIND_CPU" in config
    assert "preferred_batch_size: [ 4 ]" in config
    assert (repo / "tiny" / "config.pbtxt").exists()  # another model of the repository is left alone
    assert main(["export", str(tiny_export), "--triton-repo", str(repo), "--triton-model", "other"]) == 0  # replaced
    assert "max_batch_size: 16" in (repo / "other" / "config.pbtxt").read_text()
    (repo / "mine").mkdir()
    capsys.readouterr()
    assert main(["export", str(tiny_export), "--triton-repo", str(repo), "--triton-model", "mine"]) == 2
    assert main(["export", str(tiny_export)]) == 2
    assert main(["export", str(tiny_export), "--out", str(tmp_path / "again"), "--triton-repo", str(repo)]) == 2
    assert main(["export", str(tiny_export), "--triton-repo", str(repo), "--triton-model", "a/b"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 4 and "is not a model folder written by streamer" in errors[0]
    assert "--out DIR" in errors[1] and "give --triton-repo alone" in errors[2] and "Triton model name 'a/b'" in errors[3]


def test_where_the_server_cannot_run_the_reason_is_given(tmp_path):
    dist, reason = find_distribution(tmp_path / "no-venv")
    assert dist is None and "/usr/bin/python3.11 -m venv" in reason and "nvidia-pytriton" in reason
    (tmp_path / "venv" / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    dist, reason = find_distribution(tmp_path / "venv")
    assert dist is None and "has no nvidia-pytriton" in reason


# ---- captions through the server


def test_captions_through_triton_are_the_in_process_backends(triton, folder, clips, baseline, tiny_nb):
    messages = []
    backend = triton_backend(folder, triton.url, log=messages.append)
    assert backend.capabilities.max_batch == backend.served.max_batch == 16  # the repository's max_batch_size
    assert backend.capabilities.max_in_flight == 4
    captioner = Captioner(backend)
    for audio, expected in zip(clips, baseline):
        assert [e.to_json() for e in run_stream(captioner, audio)] == [e.to_json() for e in expected]
    assert any(isinstance(e, Final) and e.text for e in baseline[0])
    assert transcribe_array(clips[1], backend) == transcribe_array(clips[1], OnnxModel(tiny_nb))
    assert messages == [f"model 'streamer' on Triton at {triton.url} (fp32, up to 16 windows a run)"]


def test_streams_at_once_share_calls_in_flight_and_keep_their_captions(triton, folder, clips, baseline):
    """Four streams flooding one batcher: windows of several streams per call, several calls in flight, which
    the server's dynamic batcher may merge; each stream's finals are still its lone in-process run's."""
    metrics_before = served_counts(triton)
    outputs = asyncio.run(run_streams(triton_backend(folder, triton.url), [clips[i % 2] for i in range(4)],
                                      BatchSettings(max_windows=4, max_wait_ms=5), keep_up_every=0))
    for i, events in enumerate(outputs):  # partials merge hops when a stream's requests wait: finals compared
        assert finals(events) == finals(baseline[i % 2])
    requests, windows = (after - before for after, before in zip(served_counts(triton), metrics_before))
    assert windows > requests > 0  # calls carried several windows


def served_counts(triton) -> tuple[float, float]:
    """The server's own count of requests and of windows (inferences) for the model so far."""
    metrics = triton.metrics()
    return tuple(float(re.search(rf'^{name}{{model="streamer",version="1"}} (\S+)', metrics, re.M).group(1))
                 for name in ("nv_inference_request_success", "nv_inference_count"))


finals = finals_of


def test_gateways_serve_streams_through_one_triton(triton, folder, clips, baseline):
    """Two `streamer serve --backend triton` processes on one server, two clients each: every client gets the
    finals of the in-process run; both tiers answer their health and metrics routes."""
    gateways = [start_server(folder, "--backend", "triton", "--triton-url", triton.url) for _ in range(2)]
    try:
        async def everyone():
            return await asyncio.gather(*(client(gateways[i % 2].url, clips[i % 2], pace_s=0.01) for i in range(4)))

        results = asyncio.run(everyone())
        for i, (messages, code) in enumerate(results):
            assert [m for m in messages if m["type"] == "final"] == finals(baseline[i % 2])
            assert messages[-1]["type"] == "end" and code == 1000
        for gateway in gateways:
            assert gateway.get("/readyz")[0] == 200
            assert "streamer_batch_windows_count" in gateway.get("/metrics")[1]
        assert triton.ready() and "nv_inference_exec_count" in triton.metrics()
    finally:
        for gateway in gateways:
            assert gateway.stop() == 0
    log = "".join(gateway.process.stderr.read() for gateway in gateways)
    assert "Traceback" not in log and f"on Triton at {triton.url}" in log


def test_the_cli_captions_through_triton_as_in_process(triton, folder, tiny_nb, tmp_path, clips):
    wav = tmp_path / "talk.wav"
    wav_of(clips[0], wav)

    def run(*extra) -> str:
        result = subprocess.run([sys.executable, "-m", "streamer.cli", "transcribe", str(wav), "--stream",
                                 "--format", "jsonl", *extra], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return result.stdout

    through = run("--backend", "triton", "--triton-url", triton.url, "--model", str(folder.parent))
    assert through == run("--model", str(tiny_nb)) and '"type": "final"' in through


def test_a_server_or_model_that_is_not_ready_is_one_line(triton, folder, tmp_path, capsys):
    wav = tmp_path / "a.wav"
    wav_of(np.zeros(16000, np.int16), wav)
    other = tmp_path / "other"
    shutil.copytree(folder, other)
    manifest = json.loads((other / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps(manifest | {"triton": {"model_name": "other"}}))
    (tmp_path / "empty").mkdir()
    cases = [
        (["--triton-url", "127.0.0.1:1", "--model", str(folder)], "cannot be reached"),  # a port nothing serves
        (["--triton-url", triton.url, "--model", str(other)], "model 'other' is not ready (the server has streamer (READY))"),
        (["--triton-url", "http://127.0.0.1:8000", "--model", str(folder)], "is not HOST:PORT"),
        (["--triton-url", triton.url, "--model", str(wav.parent / "empty")], "is a model folder of a Triton repository"),
    ]
    for extra, message in cases:
        capsys.readouterr()
        assert main(["transcribe", str(wav), "--backend", "triton", *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.splitlines()) == 1, err
    assert main(["transcribe", str(wav), "--triton-url", triton.url, "--model", str(folder)]) == 2
    assert "--triton-url is for --backend triton" in capsys.readouterr().err


# ---- losing the server


def feed(stream, audio, start: int, stop: int, until_error: bool = False) -> list:
    events = []
    for at in range(start, stop, BLOCK):
        events += stream.accept(audio[at:at + BLOCK])
        if until_error and any(isinstance(e, Error) for e in events):
            break
    return events


def test_a_server_back_within_the_timeout_costs_time_not_captions(triton, folder, clips, baseline):
    """Killed mid-stream (SIGKILL: a crash, a lost node) and back a second later: the calls waited for it, the
    stream's events are exactly the in-process run's, and the log says when it went and when it came back."""
    audio, middle = clips[0], len(clips[0]) // 2 // BLOCK * BLOCK
    messages = []
    stream = Captioner(triton_backend(folder, triton.url, timeout_s=60, log=messages.append)).stream()
    events = feed(stream, audio, 0, middle)
    triton.kill()
    restart = threading.Timer(1.0, triton.start)
    restart.start()
    try:
        events += feed(stream, audio, middle, len(audio)) + stream.finish()
    finally:
        restart.join()
    assert [e.to_json() for e in events] == [e.to_json() for e in baseline[0]]
    assert any("is unreachable" in m for m in messages) and any("is back after" in m for m in messages)


def test_a_server_gone_longer_ends_its_streams_and_keeps_what_they_sent(triton, folder, clips, baseline):
    """Gone for longer than the call timeout: the stream ends with an error event that names the server, the
    partials and finals it had sent stand (its last final is the words it had committed, a beginning of the
    in-process caption), a stream begun meanwhile fails at once, nothing crashes, and once the server is back
    a new stream captions as before."""
    audio, expected = clips[1], baseline[1]
    cut = len(audio) * 2 // 3 // BLOCK * BLOCK
    captioner = Captioner(triton_backend(folder, triton.url, timeout_s=2.0))
    stream = captioner.stream()
    events = feed(stream, audio, 0, cut)
    assert [e.to_json() for e in events] == [e.to_json() for e in expected[:len(events)]]
    triton.kill()
    try:
        began = time.monotonic()
        events += feed(stream, audio, cut, len(audio), until_error=True)
        failed_after_s = time.monotonic() - began
        began = time.monotonic()
        late = feed(captioner.stream(), audio, 0, len(audio), until_error=True)
        late_failed_after_s = time.monotonic() - began
    finally:
        triton.start()
    errors = [e for e in events if isinstance(e, Error)]
    assert [e.code for e in errors] == ["recognition_failed"] and isinstance(events[-1], Error) and stream.failed
    assert f"Triton at {triton.url} has been unreachable" in errors[0].message
    assert 1.5 <= failed_after_s < 15 and late_failed_after_s < 8
    assert [e.code for e in late if isinstance(e, Error)] == ["recognition_failed"]
    assert broken_promises(events) == []
    finals, clean = [e for e in events if isinstance(e, Final)], [e for e in expected if isinstance(e, Final)]
    assert finals and finals[:-1] == clean[:len(finals) - 1]
    assert clean[len(finals) - 1].raw.startswith(finals[-1].raw) and len(finals[-1].raw) < len(clean[len(finals) - 1].raw)
    assert [e.to_json() for e in run_stream(captioner, audio)] == [e.to_json() for e in expected]
