"""An exported model's metadata: its manifest and ``ModelInfo`` (vocabulary, geometry), read without loading
any weights. The bottom of the house: every layer above may know what a model is."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import StreamerError
from .geometry import FrameGeometry
from .vocab import BLANK_TOKEN, Vocabulary

MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"


@dataclass(frozen=True)
class ModelInfo:
    """An exported model's metadata: what streams, decoders and the text stage need, no weights."""

    model_dir: Path
    manifest: dict = field(repr=False)
    vocab: Vocabulary = field(repr=False)
    geometry: FrameGeometry

    @classmethod
    def load(cls, model_dir: Path) -> "ModelInfo":
        model_dir = Path(model_dir)
        manifest = read_manifest(model_dir)
        vocab = Vocabulary.load(model_dir, manifest.get("blank_token", BLANK_TOKEN),
                                tuple(manifest.get("special_tokens", ())))
        return cls(model_dir, manifest, vocab, FrameGeometry.from_json(manifest))

    @property
    def precision(self) -> str:
        return str(self.manifest.get("precision", "fp32"))

    @property
    def do_normalize(self) -> bool:
        return bool(self.manifest.get("do_normalize", True))

    @property
    def language_model_dir(self) -> Path | None:
        """The language model that goes with this model: its own language_model/ folder, the one its manifest
        refers to (kept where it was, as a multi-GB binary is), or the source checkpoint's (found by the
        absolute path recorded at export, whatever the working directory); None without one."""
        referred = self.manifest.get("language_model")
        candidates = [self.model_dir / "language_model", referred and self.model_dir / referred]
        source = Path(str(self.manifest.get("source_path") or self.manifest.get("source", "")))
        candidates.append(source / "language_model" if source.is_dir() else None)
        return next((Path(c) for c in candidates if c and Path(c).is_dir()), None)


def read_manifest(model_dir: Path) -> dict:
    path = Path(model_dir) / MANIFEST
    if not path.is_file():
        raise StreamerError(f"{model_dir} has no {MANIFEST}: expected a dir written by 'streamer export'")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StreamerError(f"{path} is not readable JSON: {exc}") from None
