"""Shared fixtures: tiny wav2vec2 CTC checkpoints built from a config at test time (no network)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import sys

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
NPSC = REPO / "tests" / "data" / "npsc"  # the project's own copy (CC0), so any clone passes
TINY_NB = REPO / "models" / "tiny-nb"
sys.path.insert(0, str(REPO))

from models.random_checkpoint import VOCAB, save_random_checkpoint  # noqa: E402

@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return save_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-random", "tiny")


@pytest.fixture(scope="session")
def tiny_export(tiny_checkpoint, tmp_path_factory) -> Path:
    from streamer.model.checkpoint import resolve_checkpoint
    from streamer.model.export import export_checkpoint

    out = tmp_path_factory.mktemp("export") / "tiny-random-onnx"
    export_checkpoint(resolve_checkpoint(str(tiny_checkpoint)), out)
    return out


@pytest.fixture(scope="session")
def tiny_nb(tmp_path_factory) -> Path:
    """The project's own small Norwegian model (models/tiny-nb), exported to ONNX once per session."""
    from streamer.model.checkpoint import resolve_checkpoint
    from streamer.model.export import export_checkpoint

    assert (TINY_NB / "config.json").exists(), "models/tiny-nb is part of the repository"
    out = tmp_path_factory.mktemp("tiny-nb") / "onnx"
    export_checkpoint(resolve_checkpoint(str(TINY_NB)), out)
    return out


@pytest.fixture(scope="session")
def tiny_nb_lm(tmp_path_factory) -> Path:
    """tiny-nb's language model, built by the project's one command from its training text."""
    pytest.importorskip("pyctcdecode", reason="beam search needs the lm extra (.ci/run installs it)")
    out = tmp_path_factory.mktemp("lm") / "language_model"
    subprocess.run([sys.executable, str(REPO / "models" / "build_lm.py"), "--out", str(out)], check=True,
                   capture_output=True)
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


def lone_logits(model, request) -> np.ndarray:
    """One request's logits from the model alone (tests that drive a sans-I/O stream by hand)."""
    return model.logits([model.geometry.pad_to_receptive_field(request.audio)], [request.stats])[0]
