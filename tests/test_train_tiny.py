"""models/train_tiny.py: batches, and a real (very short) training run that yields a loadable model."""

import json
import subprocess
import sys

import numpy as np

from helpers import REPO

sys.path.insert(0, str(REPO / "models"))
import train_tiny  # noqa: E402


def test_collate_pads_audio_mask_and_labels():
    utts = [(np.ones(5, np.float32), [3, 4]), (np.full(8, 2.0, np.float32), [7, 8, 9])]
    x, mask, labels = train_tiny.collate(utts)
    assert x.shape == mask.shape == (2, 8) and labels.shape == (2, 3)
    assert x[0, :5].tolist() == [1.0] * 5 and x[0, 5:].tolist() == [0.0] * 3
    assert mask.sum(dim=1).tolist() == [5, 8]
    assert labels.tolist() == [[3, 4, -100], [7, 8, 9]]


def test_a_short_run_writes_a_model_the_streamer_loads(tmp_path):
    from streamer.export.checkpoint import resolve_checkpoint
    from streamer.export.onnx_export import export_checkpoint
    from streamer.backends.onnx import OnnxModel

    out = tmp_path / "model"
    cmd = [sys.executable, str(REPO / "models" / "train_tiny.py"), "--out", str(out), "--max-steps", "3",
           "--minutes", "5", "--hidden-size", "32", "--layers", "1", "--conv-dim", "8"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in (out / "training_log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert records[0]["settings"]["seed"] == 1234 and records[-1]["final"] and records[-1]["steps"] == 3
    config = json.loads((out / "config.json").read_text())
    assert config["conv_stride"] == [10, 4, 4, 2] and config["vocab_size"] == 32 and config["pad_token_id"] == 31
    export_checkpoint(resolve_checkpoint(str(out)), tmp_path / "onnx")
    model = OnnxModel(tmp_path / "onnx")
    assert model.geometry.receptive_field_samples == 850
    assert model.logits([np.zeros(16000, np.float32)])[0].shape == (model.geometry.n_frames(16000), 32)
