"""The GPU serving path (issue 21), tested where it can be without a GPU: length buckets, I/O binding and
large batches run the same code on ONNX Runtime's CPU provider; fp16 parity on the CPU is in
test_export.py. The tests that need CUDA skip, saying so, where onnxruntime has no CUDA provider."""

import asyncio
import random

import numpy as np
import pytest

from streamer.errors import StreamerError
from streamer.backends.backend import Capabilities, ModelInput
from streamer.driver.batcher import BatchSettings
from streamer.backends.onnx import CPU_BATCH, OnnxBackend, OnnxModel, RunnerSettings
from streamer.backends.shapes import GPU_BUCKETS_MS, GPU_ROW_BUCKETS, bucket_of, rows_of, to_samples

from helpers import batcher_clips, clean_finals, finals_of, run_streams, to_int16

ort = pytest.importorskip("onnxruntime")
HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="onnxruntime has no CUDA provider here (pip install "
                                                     "'streamer[gpu]' on a machine with an NVIDIA GPU)")


def test_a_window_is_padded_to_the_smallest_bucket_that_holds_it():
    buckets = to_samples((1000, 2000, 4000), 16000)
    assert [bucket_of(n, buckets) for n in (1, 16000, 16001, 40000, 64000)] == [16000, 16000, 32000, 64000, 64000]
    assert bucket_of(64001, buckets) == 128000 and bucket_of(200000, buckets) == 256000  # multiples of the largest
    assert bucket_of(12345, ()) == 12345
    assert [rows_of(n, GPU_ROW_BUCKETS) for n in (1, 3, 8, 9, 200, 256, 300)] == [1, 4, 8, 16, 256, 256, 300]
    assert rows_of(5, ()) == 5
    for bad in ((2000, 1000), (0, 1000), (1000, 1000)):
        with pytest.raises(StreamerError, match="increasing"):
            RunnerSettings(buckets_ms=bad)


def windows(n: int, seed: int) -> list[np.ndarray]:
    """Speech-like windows of random lengths (0.5–9 s), the spread a GPU batcher sees."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(int(rng.uniform(0.5, 9) * 16000)) * 0.1).astype(np.float32) for _ in range(n)]


@pytest.mark.parametrize("io_binding", [False, True])
def test_padded_to_buckets_every_row_is_a_lone_run(tiny_nb, io_binding):
    """Calls padded to length buckets (and bound to the device's memory, here the CPU's) give each window
    the logits it gets alone, and keep only its own frames."""
    plain = OnnxModel(tiny_nb, RunnerSettings(device="cpu"))
    bucketed = OnnxModel(tiny_nb, RunnerSettings(device="cpu", buckets_ms=GPU_BUCKETS_MS, io_binding=io_binding,
                                                 row_buckets=True))
    assert plain.buckets == () and len(bucketed.buckets) == len(GPU_BUCKETS_MS)
    assert plain.row_buckets == () and bucketed.row_buckets == GPU_ROW_BUCKETS
    batch = windows(6, seed=3)  # padded to 8 rows
    together = bucketed.logits(batch)
    for audio, logits in zip(batch, together):
        alone = plain.logits([audio])[0]
        assert logits.shape == alone.shape == (plain.geometry.n_frames(len(audio)), len(plain.vocab))
        np.testing.assert_allclose(logits, alone, atol=2e-4)


def test_fp16_rows_padded_to_buckets_agree_with_lone_runs(tiny_checkpoint, tmp_path):
    """The fp16 export (layer norms and softmax in fp32) in bucket-padded batches: the same best token in
    every frame as a lone run, and close logits."""
    from streamer.export.checkpoint import resolve_checkpoint
    from streamer.export.onnx_export import ExportSettings, export_checkpoint

    export_checkpoint(resolve_checkpoint(str(tiny_checkpoint)), tmp_path / "fp16", ExportSettings(precision="fp16"))
    lone = OnnxModel(tmp_path / "fp16", RunnerSettings(device="cpu"))
    bucketed = OnnxModel(tmp_path / "fp16", RunnerSettings(device="cpu", buckets_ms=GPU_BUCKETS_MS, io_binding=True,
                                                           row_buckets=True))
    batch = windows(5, seed=4)  # padded to 8 rows
    agree = []
    for audio, logits in zip(batch, bucketed.logits(batch)):
        alone = lone.logits([audio])[0]
        assert np.abs(logits - alone).max() < 0.05
        agree.append(np.mean(logits.argmax(-1) == alone.argmax(-1)))
    assert min(agree) >= 0.99


class Recording:
    """The real backend, recording each call's window lengths."""

    def __init__(self, inner: OnnxBackend):
        self.inner, self.info, self.capabilities = inner, inner.info, inner.capabilities
        self.calls: list[list[int]] = []

    async def logits(self, batch: list[ModelInput]) -> list[np.ndarray]:
        self.calls.append([len(item.audio) for item in batch])
        return await self.inner.logits(batch)

    def close(self) -> None:
        pass


def test_large_batches_group_windows_by_bucket_and_change_no_stream(tiny_nb, clips):
    """48 streams at once through one batcher with calls of up to 128 windows (a GPU's sizes): calls carry
    dozens of windows, each call's windows fall in one length bucket, and every stream's finals are those
    it gets alone."""
    model = OnnxModel(tiny_nb, RunnerSettings(device="cpu", buckets_ms=GPU_BUCKETS_MS))
    backend = Recording(OnnxBackend(model, max_batch=128, max_in_flight=2))
    assert backend.capabilities == Capabilities(128, True, 2, model.buckets)
    rng = random.Random(7)
    pieces = [to_int16(clip[: 10 * 16000]) for clip in clips]
    audios = [pieces[i % len(pieces)] for i in range(48)]
    clean = {i: clean_finals(OnnxBackend(OnnxModel(tiny_nb)), piece) for i, piece in enumerate(pieces)}
    sizes = [[rng.randint(800, 4800) for _ in range(30)] for _ in audios]
    events = asyncio.run(run_streams(backend, audios, BatchSettings(max_wait_ms=30), block_sizes=sizes))
    assert all(finals_of(e) == clean[i % len(pieces)] for i, e in enumerate(events))
    assert max(len(call) for call in backend.calls) >= 24
    assert all(len({bucket_of(n, model.buckets) for n in call}) == 1 for call in backend.calls)


def test_the_onnx_backend_sizes_itself_for_its_device(tiny_nb):
    backend = OnnxBackend(OnnxModel(tiny_nb, RunnerSettings(device="cpu")))
    assert backend.capabilities.max_batch == CPU_BATCH and backend.capabilities.max_in_flight == 1
    assert backend.capabilities.length_buckets == ()


@pytest.mark.skipif(HAS_CUDA, reason="this onnxruntime has a CUDA provider")
@pytest.mark.parametrize("device", ["cuda", "tensorrt"])
def test_a_gpu_asked_for_without_one_is_a_clear_error(tiny_nb, device):
    with pytest.raises(StreamerError, match=f"device '{device}' asked for, but this onnxruntime has no CUDA "
                                            r"provider: pip install 'streamer\[gpu\]'"):
        OnnxModel(tiny_nb, RunnerSettings(device=device))


@needs_cuda
def test_on_a_gpu_fp16_in_buckets_agrees_with_fp32_on_the_cpu(tiny_checkpoint, tmp_path):
    from streamer.export.checkpoint import resolve_checkpoint
    from streamer.export.onnx_export import ExportSettings, export_checkpoint

    checkpoint = resolve_checkpoint(str(tiny_checkpoint))
    export_checkpoint(checkpoint, tmp_path / "fp32")
    export_checkpoint(checkpoint, tmp_path / "fp16", ExportSettings(precision="fp16"))
    cpu = OnnxModel(tmp_path / "fp32", RunnerSettings(device="cpu"))
    gpu = OnnxModel(tmp_path / "fp16", RunnerSettings(device="cuda"))
    assert gpu.on_gpu and gpu.buckets
    batch = windows(8, seed=5)
    for audio, logits in zip(batch, gpu.logits(batch)):
        alone = cpu.logits([audio])[0]
        assert np.mean(logits.argmax(-1) == alone.argmax(-1)) >= 0.99


@pytest.fixture(scope="module")
def clips():
    return batcher_clips()


def test_the_gpu_benchmark_runs_its_whole_path_on_the_cpu(tmp_path):
    """benchmarks/gpu.py is one command on the GPU machine, with no second try to spare: its whole path
    (speech, parity, streams through the shared batcher, the table, the JSON) runs here on the CPU."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, str(repo / "benchmarks" / "gpu.py"), "--device", "cpu", "--tiny",
                             "--plan", "1:2,6", "2:4", "--sweep", "batch=4,flight=2", "--seconds", "5",
                             "--speech", str(tmp_path / "speech.wav"),
                             "--speech-s", "30"], capture_output=True, text=True, timeout=300, cwd=repo)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "argmax agreement 1.0000" in result.stdout
    written = json.loads(Path(result.stdout.strip().splitlines()[-1].split()[1]).read_text())
    rows = written["rows"]
    assert [(row["processes"], row["streams"]) for row in rows] == [(1, 2), (1, 6), (2, 4), (2, 4)]
    assert (rows[-1]["max_batch"], rows[-1]["in_flight"]) == (4, 2)  # the sweep's variant
    assert all(row["calls"] > 0 and row["partial_p95"] < 5 and row["gateway_cpu_ms_per_stream_s"] > 0 for row in rows)
    assert written["verdict"][:2] == ["1 gateway process: largest N with partial p95 ≤ 0.5 s: 6",
                                      "2 gateway processes: largest N with partial p95 ≤ 0.5 s: 4"]
