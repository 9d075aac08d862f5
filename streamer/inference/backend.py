"""The inference seam: a ``Backend`` turns a batch of audio windows into CTC logits.

Everything that recognizes speech (transcribe, mic, subtitle, serve, broadcast) drives its model
through one ``Batcher`` (``streamer.inference.batcher``), and the batcher talks to a backend only
through this interface::

    class MyBackend:
        info: ModelInfo                  # geometry, vocabulary, manifest (what the streams need)
        capabilities: Capabilities       # largest batch, rows equal to lone runs?, calls in flight
        async def logits(self, batch: list[ModelInput]) -> list[np.ndarray]: ...
        def close(self) -> None: ...

``logits`` gets windows of float32 16 kHz audio (each at least the model's receptive field), with
the mean and variance each is normalized with (None: its own), and returns one (frames × vocab)
float32 array per window, padding frames removed. It may raise: the batcher retries a failed call
a bounded number of times, then fails the requests in it (their streams get an error event). Model
metadata lives apart from the session that runs the model: ``ModelInfo.load(dir)`` reads it from
an exported model dir without loading any weights.

Built in: ``onnx`` (ONNX Runtime in process, on a worker thread; ``streamer.inference.onnx``, made by
``streamer.model.loader.onnx_backend``) and ``triton`` (NVIDIA Triton Inference Server over gRPC;
``streamer.inference.triton``). A
user's own is named ``package.module:factory`` (``--backend`` on every command): the factory is
called with a ``BackendOptions`` and returns a backend, so a deployment can bring its own
inference service.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from ..errors import StreamerError
from ..model.geometry import FrameGeometry
from ..model.vocab import BLANK_TOKEN, Vocabulary

MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"


@dataclass(frozen=True)
class ModelInput:
    """One window: float32 16 kHz audio and the (mean, variance) it is normalized with (None: its own)."""

    audio: np.ndarray
    stats: tuple[float, float] | None = None


@dataclass(frozen=True)
class Capabilities:
    """What the batcher must know of a backend."""

    max_batch: int = 8  # most windows in one call
    rows_independent: bool = True  # a row's logits equal a lone run's (padding + mask); False for int8
    max_in_flight: int = 1  # calls that may run at once (a GPU or a remote server wants several)
    length_buckets: tuple[int, ...] = ()  # samples: lengths the backend pads a call to (the batcher groups
    # windows by them; see streamer.inference.shapes); empty: any length

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_in_flight < 1:
            raise StreamerError(f"a backend needs max_batch ≥ 1 and max_in_flight ≥ 1, not {self.max_batch} "
                                f"and {self.max_in_flight}")


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


class Backend(Protocol):
    info: ModelInfo
    capabilities: Capabilities

    async def logits(self, batch: list[ModelInput]) -> list[np.ndarray]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class BackendOptions:
    """What a backend factory is given: the --model spec and the runner's settings."""

    model: str
    device: str = "auto"  # auto, cpu or cuda
    threads: int = 0  # intra-op threads, 0 for the runtime's default
    precision: str = "auto"  # for a checkpoint exported on first use
    max_batch: int | None = None  # None: the backend's choice (ONNX Runtime: 8 on a CPU, 256 on a GPU; Triton: the
    # served model's max_batch_size)
    log: Callable[[str], None] = field(default=lambda message: None, repr=False, compare=False)
    url: str | None = None  # the inference server of a remote backend (--triton-url), None for its default
    timeout_s: float = 10.0  # the most one remote model call may take


BUILT_IN = {"onnx": "streamer.model.loader:onnx_backend", "triton": "streamer.inference.triton:triton_backend"}


def backend_factory(name: str) -> Callable[[BackendOptions], Backend]:
    """A built-in backend by name, or a user's ``package.module:factory``."""
    spec = BUILT_IN.get(name, name)
    module_name, colon, attr = spec.partition(":")
    if not colon or not module_name or not attr:
        raise StreamerError(f"backend {name!r} is not one of {', '.join(BUILT_IN)} nor package.module:factory")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StreamerError(f"backend {name!r}: cannot import {module_name} ({exc})") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise StreamerError(f"backend {name!r}: {module_name} has no callable {attr}")
    return factory


def create_backend(name: str, options: BackendOptions) -> Backend:
    backend = backend_factory(name)(options)
    missing = [a for a in ("info", "capabilities", "logits", "close") if not hasattr(backend, a)]
    if missing:
        raise StreamerError(f"backend {name!r} gave an object without {', '.join(missing)} "
                            "(see streamer.inference.backend)")
    return backend


def read_manifest(model_dir: Path) -> dict:
    path = Path(model_dir) / MANIFEST
    if not path.is_file():
        raise StreamerError(f"{model_dir} has no {MANIFEST}: expected a dir written by 'streamer export'")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StreamerError(f"{path} is not readable JSON: {exc}") from None
