"""Shared fixtures: tiny wav2vec2 CTC checkpoints built from a config at test time (no network)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
NPSC = SHARED_DATA / "npsc"
TINY_NB = REPO / "models" / "tiny-nb"

# NbAiLab/XLSR-300M-bokmaal's vocabulary: '|' word delimiter, a–z, å, æ, ø, [UNK], [PAD] (CTC blank).
REAL_VOCAB = {"|": 0, **{c: i for i, c in enumerate("abcdefghijklmnopqrstuvwxyzåæø", start=1)}, "[UNK]": 30, "[PAD]": 31}


def save_checkpoint(path: Path, **config_overrides) -> Path:
    """A randomly initialised Wav2Vec2ForCTC with the real model's vocabulary, in Hugging Face format."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

    config = dict(
        vocab_size=len(REAL_VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
        feat_extract_norm="layer", do_stable_layer_norm=True, pad_token_id=REAL_VOCAB["[PAD]"],
        architectures=["Wav2Vec2ForCTC"],
    )
    config.update(config_overrides)
    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(Wav2Vec2Config(**config)).eval()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    (path / "vocab.json").write_text(json.dumps(REAL_VOCAB, ensure_ascii=False), encoding="utf-8")
    Wav2Vec2CTCTokenizer(str(path / "vocab.json"), unk_token="[UNK]", pad_token="[PAD]",
                         word_delimiter_token="|").save_pretrained(path)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16_000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=True).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-random")


@pytest.fixture(scope="session")
def tiny_export(tiny_checkpoint, tmp_path_factory) -> Path:
    from streamer.checkpoint import resolve_checkpoint
    from streamer.export import export_checkpoint

    out = tmp_path_factory.mktemp("export") / "tiny-random-onnx"
    export_checkpoint(resolve_checkpoint(str(tiny_checkpoint)), out)
    return out


def espeak(text: str, path: Path, voice: str = "nb", speed_wpm: int = 175) -> Path:
    """Norwegian speech from espeak-ng, as a 16 kHz mono WAV."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed_wpm), "-w", str(raw), text], check=True)
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(raw), "-ar", "16000", "-ac", "1",
                    str(path)], check=True)
    raw.unlink()
    return path


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * 16_000), dtype=np.int16)
