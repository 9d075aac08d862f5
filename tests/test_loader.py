import shutil

import pytest

from streamer.errors import StreamerError
from streamer.export.loader import load_model


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_local_checkpoint_is_exported_once_and_reused(tiny_checkpoint, cache):
    first = load_model(str(tiny_checkpoint))
    onnx_file = first.model_dir / "model.onnx"
    stamp = onnx_file.stat().st_mtime_ns
    second = load_model(str(tiny_checkpoint))
    assert second.model_dir == first.model_dir and onnx_file.stat().st_mtime_ns == stamp
    assert str(first.model_dir).startswith(str(cache))


def test_exported_dir_loads_directly(tiny_export, cache):
    assert load_model(str(tiny_export)).model_dir == tiny_export
    assert not cache.exists()


def test_hub_id_without_network_or_cache_is_one_clear_line(cache, monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(StreamerError) as error:
        load_model("NbAiLab/XLSR-300M-bokmaal")
    assert "not in the local hub cache" in str(error.value) and "\n" not in str(error.value)


def test_hub_id_from_the_local_cache_offline(tiny_checkpoint, cache, monkeypatch, tmp_path):
    """A checkpoint laid out as the hub cache keeps it loads with HF_HUB_OFFLINE=1."""
    hub = tmp_path / "hub"
    snapshot = hub / "models--NbAiLab--XLSR-300M-bokmaal" / "snapshots" / ("a" * 40)
    shutil.copytree(tiny_checkpoint, snapshot)
    (hub / "models--NbAiLab--XLSR-300M-bokmaal" / "refs").mkdir()
    (hub / "models--NbAiLab--XLSR-300M-bokmaal" / "refs" / "main").write_text("a" * 40)
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    model = load_model("NbAiLab/XLSR-300M-bokmaal")
    assert model.manifest["source"] == "NbAiLab/XLSR-300M-bokmaal"
    assert model.manifest["revision"] == "a" * 40


def test_missing_vocab_and_non_ctc_checkpoints(tiny_checkpoint, tmp_path, cache):
    no_vocab = shutil.copytree(tiny_checkpoint, tmp_path / "no-vocab")
    (no_vocab / "vocab.json").unlink()
    with pytest.raises(StreamerError, match="no vocab.json"):
        load_model(str(no_vocab))
    not_ctc = shutil.copytree(tiny_checkpoint, tmp_path / "not-ctc")
    config = (not_ctc / "config.json").read_text().replace('"Wav2Vec2ForCTC"', '"Wav2Vec2Model"')
    (not_ctc / "config.json").write_text(config)
    with pytest.raises(StreamerError, match="not a CTC model"):
        load_model(str(not_ctc))
    assert not cache.exists()  # nothing exported for either


def test_auto_precision_is_int8_on_a_cpu(tiny_checkpoint, cache):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    model = load_model(str(tiny_checkpoint), precision="auto")
    assert model.manifest["precision"] == "int8" and model.model_dir.name == "int8"
