"""Find and load a wav2vec2-style CTC checkpoint in Hugging Face format (hub id or local dir)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..model.geometry import SAMPLE_RATE
from ..errors import StreamerError
from ..model.vocab import BLANK_TOKEN, Vocabulary, read_json

METADATA_PATTERNS = ("*.json", "*.txt")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint on local disk, and where it came from."""

    path: Path
    source: str  # the hub id or the local directory the user gave
    revision: str | None  # hub commit, None for a local directory


@dataclass(frozen=True)
class FeatureSettings:
    """What the feature extractor does to raw audio before the network sees it."""

    sample_rate: int = SAMPLE_RATE
    do_normalize: bool = True  # zero mean, unit variance per input


def is_hub_id(model: str) -> bool:
    parts = model.split("/")
    return len(parts) == 2 and all(parts) and not model.startswith((".", "/", "~"))


def resolve_checkpoint(model: str, revision: str | None = None) -> Checkpoint:
    """A local directory as it is; a hub id downloaded (or taken from the local hub cache)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return Checkpoint(path.resolve(), str(path), None)
    if path.exists():
        raise StreamerError(f"{model} is a file: expected a model directory or a hub id like {'owner/name'!r}")
    if not is_hub_id(model):
        raise StreamerError(f"{model}: no such directory, and not a hub id of the form 'owner/name'")
    snapshot = _download(model, revision)
    return Checkpoint(snapshot, model, snapshot.name)


def _download(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    try:
        # metadata first, then one weights file: safetensors when the repo has it, else the .bin
        for patterns in (list(METADATA_PATTERNS), ["model.safetensors"], ["pytorch_model.bin"]):
            snapshot = Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns,
                                              local_files_only=offline))
            if any((snapshot / name).exists() for name in WEIGHT_FILES):
                break
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise StreamerError(f"{repo_id}: no such model (or revision) on the Hugging Face hub") from None
    except LocalEntryNotFoundError:
        how = "HF_HUB_OFFLINE=1 is set" if offline else "the hub could not be reached"
        raise StreamerError(
            f"{repo_id} is not in the local hub cache and {how}: download it once with internet, "
            "or pass a local model directory"
        ) from None
    except OSError as exc:
        raise StreamerError(f"{repo_id}: download failed ({exc.__class__.__name__}: {exc})") from None
    return snapshot


def check_ctc_config(checkpoint: Checkpoint) -> dict:
    config = read_json(checkpoint.path / "config.json")
    if not config:
        raise StreamerError(
            f"{checkpoint.source} has no config.json: expected a Hugging Face checkpoint "
            "(config.json, weights, vocab.json) or an exported dir (model.onnx, manifest.json)"
        )
    architectures = config.get("architectures") or []
    if architectures and not any(name.endswith("ForCTC") for name in architectures):
        raise StreamerError(
            f"{checkpoint.source} is a {', '.join(architectures)} checkpoint, not a CTC model: "
            "streamer needs a *ForCTC checkpoint such as Wav2Vec2ForCTC"
        )
    if not any((checkpoint.path / name).exists() for name in WEIGHT_FILES):
        raise StreamerError(f"{checkpoint.source} has no weights: expected {' or '.join(WEIGHT_FILES)}")
    return config


def load_vocabulary(checkpoint: Checkpoint, config: dict) -> Vocabulary:
    tokenizer = read_json(checkpoint.path / "tokenizer_config.json")
    blank = tokenizer.get("pad_token", BLANK_TOKEN)
    if isinstance(blank, dict):
        blank = blank.get("content", BLANK_TOKEN)
    vocab = Vocabulary.load(checkpoint.path, blank)
    check_head_size(config.get("vocab_size", len(vocab)), vocab, checkpoint.source)
    return vocab


def check_head_size(outputs: int, vocab: Vocabulary, source: str) -> None:
    """The CTC head must have one output per token of vocab.json plus the tokenizer's added tokens."""
    if outputs != len(vocab):
        raise StreamerError(
            f"{source}: the model's CTC head has {outputs} outputs, but its vocabulary has {len(vocab)} tokens "
            f"(vocab.json and the tokenizer's added tokens): the two must match"
        )


def load_feature_settings(checkpoint: Checkpoint) -> FeatureSettings:
    pre = read_json(checkpoint.path / "preprocessor_config.json")
    settings = FeatureSettings(pre.get("sampling_rate", SAMPLE_RATE), bool(pre.get("do_normalize", True)))
    if settings.sample_rate != SAMPLE_RATE:
        raise StreamerError(
            f"{checkpoint.source} expects {settings.sample_rate} Hz audio; streamer runs {SAMPLE_RATE} Hz models"
        )
    return settings


def load_torch_model(checkpoint: Checkpoint):
    """The PyTorch CTC model in eval mode (export and parity checks only; inference runs on ONNX)."""
    from transformers import AutoModelForCTC
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()

    try:
        model = AutoModelForCTC.from_pretrained(checkpoint.path)
    except (OSError, ValueError, KeyError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise StreamerError(f"{checkpoint.source}: cannot load as a CTC model ({first_line})") from None
    return model.eval()
