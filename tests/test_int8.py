"""int8 (the CPU default) computes the same on any x86-64 CPU, and agrees with fp32 where it matters."""

import shutil
import subprocess
import sys

import numpy as np
import pytest

from streamer.export.checkpoint import resolve_checkpoint
from streamer.export.onnx_export import ExportSettings, export_checkpoint
from streamer.backends.onnx import OnnxModel

from helpers import TINY_NB

# Runs the model in ONNX Runtime and saves its logits for a fixed input (also under an emulated CPU).
LOGITS_SCRIPT = """
import sys, numpy as np
from streamer.backends.onnx import OnnxModel
audio = (np.random.default_rng(0).standard_normal(32000) * 0.1).astype(np.float32)
np.save(sys.argv[2], OnnxModel(sys.argv[1]).logits([audio])[0])
"""


@pytest.fixture(scope="module")
def int8_export(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "model"
    export_checkpoint(resolve_checkpoint(str(tiny_checkpoint)), out, ExportSettings(precision="int8"))
    return out


def test_int8_weights_use_seven_bits(int8_export):
    """VPMADDUBSW (CPUs without VNNI) adds two uint8 × int8 products in int16: with |weight| ≤ 64 the sum is
    at most 2 × 255 × 64 = 32640 and never saturates; 8-bit weights (up to 127) can."""
    import onnx
    from onnx import TensorProto, numpy_helper

    graph = onnx.load(str(int8_export / "model.onnx")).graph
    weights = [numpy_helper.to_array(t) for t in graph.initializer if t.data_type == TensorProto.INT8 and t.dims]
    assert weights, "the int8 export has quantized weights"
    assert max(int(np.abs(w.astype(np.int32)).max()) for w in weights) <= 64


def test_int8_logits_are_the_same_on_a_cpu_without_vnni(int8_export, tmp_path):
    """The same model under an emulated AVX2-only AMD EPYC (Milan: no AVX-512, no VNNI) gives the logits of
    this machine: with 8-bit weights they moved by about 0.1 there (VPMADDUBSW saturation)."""
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        pytest.skip("qemu-user is not installed (.ci/run installs it)")
    script = tmp_path / "logits.py"
    script.write_text(LOGITS_SCRIPT)
    here, milan = tmp_path / "here.npy", tmp_path / "milan.npy"
    subprocess.run([sys.executable, str(script), str(int8_export), str(here)], check=True, timeout=300)
    emulated = subprocess.run([qemu, "-cpu", "EPYC-Milan", sys.executable, str(script), str(int8_export), str(milan)],
                              capture_output=True, text=True, timeout=600)
    assert emulated.returncode == 0, emulated.stderr[-2000:]
    assert np.abs(np.load(here) - np.load(milan)).max() < 1e-3


def test_int8_transcripts_agree_with_fp32_on_speech(tmp_path):
    """tiny-nb, a trained model: int8 spells the packaged speech as PyTorch fp32 does, within a few letters."""
    manifest = export_checkpoint(resolve_checkpoint(str(TINY_NB)), tmp_path / "int8", ExportSettings(precision="int8"))
    speech = [case for case in manifest["parity"] if case["input"].startswith("speech")]
    assert speech and all(case["transcript_agreement"] >= 0.95 for case in speech), speech
    assert OnnxModel(tmp_path / "int8").manifest["precision"] == "int8"
