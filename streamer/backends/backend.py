"""The inference seam: a ``Backend`` turns a batch of audio windows into CTC logits.

Everything that recognizes speech (transcribe, mic, subtitle, serve, broadcast) drives its model
through one ``Batcher`` (``streamer.driver.batcher``), and the batcher talks to a backend only
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

Built in: ``onnx`` (ONNX Runtime in process, on a worker thread; ``streamer.backends.onnx``, made by
``streamer.export.loader.onnx_backend``) and ``triton`` (NVIDIA Triton Inference Server over gRPC;
``streamer.backends.triton``). A
user's own is named ``package.module:factory`` (``--backend`` on every command): the factory is
called with a ``BackendOptions`` and returns a backend, so a deployment can bring its own
inference service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from ..errors import StreamerError
from ..model.manifest import ModelInfo

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
    # windows by them; see streamer.backends.shapes); empty: any length

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_in_flight < 1:
            raise StreamerError(f"a backend needs max_batch ≥ 1 and max_in_flight ≥ 1, not {self.max_batch} "
                                f"and {self.max_in_flight}")


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
