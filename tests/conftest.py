"""Shared fixtures: tiny wav2vec2 CTC checkpoints built from a config at test time (no network)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, TINY_NB  # first: it puts the repository on sys.path for models/
from models.random_checkpoint import save_random_checkpoint

@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return save_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-random", "tiny")


@pytest.fixture(scope="session")
def tiny_export(tiny_checkpoint, tmp_path_factory) -> Path:
    from streamer.export.checkpoint import resolve_checkpoint
    from streamer.export.onnx_export import export_checkpoint

    out = tmp_path_factory.mktemp("export") / "tiny-random-onnx"
    export_checkpoint(resolve_checkpoint(str(tiny_checkpoint)), out)
    return out


@pytest.fixture(scope="session")
def tiny_nb(tmp_path_factory) -> Path:
    """The project's own small Norwegian model (models/tiny-nb), exported to ONNX once per session."""
    from streamer.export.checkpoint import resolve_checkpoint
    from streamer.export.onnx_export import export_checkpoint

    assert (TINY_NB / "config.json").exists(), "models/tiny-nb is part of the repository"
    out = tmp_path_factory.mktemp("tiny-nb") / "onnx"
    export_checkpoint(resolve_checkpoint(str(TINY_NB)), out)
    return out


@pytest.fixture(scope="session")
def tiny_nb_lm(tmp_path_factory) -> Path:
    """tiny-nb's language model, built by the project's one command from its training text."""
    pytest.importorskip("flashlight.lib.text.decoder", reason="beam search needs the lm extra (.ci/run installs it)")
    out = tmp_path_factory.mktemp("lm") / "language_model"
    subprocess.run([sys.executable, str(REPO / "models" / "build_lm.py"), "--out", str(out)], check=True,
                   capture_output=True)
    return out


