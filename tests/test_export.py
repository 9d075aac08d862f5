import json

import numpy as np
import pytest

from streamer.export.checkpoint import resolve_checkpoint
from streamer.errors import StreamerError
from streamer.export.onnx_export import ExportSettings, export_checkpoint
from streamer.backends.onnx import OnnxModel, RunnerSettings


def test_manifest_records_source_geometry_and_hash(tiny_export, tiny_checkpoint):
    manifest = json.loads((tiny_export / "manifest.json").read_text())
    assert manifest["source"] == str(tiny_checkpoint)
    assert manifest["frame_stride_samples"] == 320 and manifest["receptive_field_samples"] == 400
    assert manifest["sample_rate"] == 16000 and manifest["precision"] == "fp32" and manifest["opset"] == 17
    assert len(manifest["model_sha256"]) == 64
    assert all(case["max_abs_diff"] <= 1e-3 and case["transcript_agreement"] == 1.0 for case in manifest["parity"])
    assert any("speech" in case["input"] for case in manifest["parity"])
    assert any(case["batch"] > 1 for case in manifest["parity"])


def test_dynamic_batch_and_length_with_mask_match_single_runs(tiny_export):
    model = OnnxModel(tiny_export, RunnerSettings(device="cpu"))
    rng = np.random.default_rng(1)
    audios = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16000, 5123, 27000)]
    batched = model.logits(audios)
    for audio, logits in zip(audios, batched):
        alone = model.logits([audio])[0]
        assert logits.shape == alone.shape == (model.geometry.n_frames(len(audio)), len(model.vocab))
        assert np.abs(logits - alone).max() < 1e-4


def test_export_refuses_a_model_that_does_not_match(tiny_checkpoint, tmp_path):
    out = tmp_path / "refused"
    with pytest.raises(StreamerError, match="does not match PyTorch"):
        export_checkpoint(resolve_checkpoint(str(tiny_checkpoint)), out, ExportSettings(fp32_max_abs_diff=1e-12))
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no half-written temporary dir left behind


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_reduced_precision_reports_its_agreement(tiny_checkpoint, tmp_path, precision):
    manifest = export_checkpoint(resolve_checkpoint(str(tiny_checkpoint)), tmp_path / precision,
                                 ExportSettings(precision=precision))
    assert manifest["precision"] == precision
    assert all(0.0 < case["max_abs_diff"] < 0.1 for case in manifest["parity"])
    assert all(0.5 <= case["transcript_agreement"] <= 1.0 for case in manifest["parity"])
    model = OnnxModel(tmp_path / precision)
    assert model.logits([np.zeros(8000, np.float32)])[0].shape == (24, len(model.vocab))


def test_export_will_not_replace_a_dir_it_did_not_write(tiny_checkpoint, tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(StreamerError, match="not an export dir"):
        export_checkpoint(resolve_checkpoint(str(tiny_checkpoint)), tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


@pytest.mark.parametrize("export", ["tiny_export", "tiny_nb"])
def test_frame_geometry_matches_the_network(export, request):
    """XLS-R's conv shape (random checkpoint) and tiny-nb's four-layer one: the geometry is the config's."""
    model = OnnxModel(request.getfixturevalue(export))
    field, stride = model.geometry.receptive_field_samples, model.geometry.stride_samples
    for n in (field, field + stride - 1, field + stride, 16000, 16000 + stride + 1):
        assert len(model.logits([np.ones(n, np.float32)])[0]) == model.geometry.n_frames(n)
    with pytest.raises(StreamerError, match="receptive field"):
        model.logits([np.ones(field - 1, np.float32)])


def test_cuda_request_without_cuda_is_a_clear_error(tiny_export):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(StreamerError, match="^device 'cuda' asked for.*onnxruntime-gpu"):
        OnnxModel(tiny_export, RunnerSettings(device="cuda"))
