"""NVIDIA Triton Inference Server as a backend (``--backend triton --triton-url HOST:PORT``): the windows go
over gRPC (tritonclient's asyncio client) to a model that ``streamer export --triton-repo`` wrote, and the
gateway keeps everything else (VAD, windows, stitcher, text). ``--model`` is that repository's model folder
(its manifest and vocabulary; no weights are loaded here), or the repository when it holds one model.

A call sends exactly the tensors the in-process backend gives ONNX Runtime (each window normalized, padded
to the longest, attention_mask marking real samples) and cuts each row's logits to its own frames, so the
captions are the in-process backend's. Several calls are in flight at once (``max_in_flight``); the
server's dynamic batcher may merge them, and those of other gateways, into one run.

Failures: at start, a server that cannot be reached or a model that is not ready is a one-line error. A
call that finds the server gone (connection refused or lost) is tried again, the channel reconnecting,
until the call's ``timeout_s`` has passed; an outage shorter than that costs the streams time, not
captions, and is said in the log when it starts and when it ends. A call made when the server has been
gone longer than ``timeout_s`` waits only for the channel's next reconnect (``RECONNECT_S``), so streams
hear of an outage soon, and the first calls after it still find the server. A failed call raises, and
the batcher does the rest: its retries, then an error event for the streams in it, whose captions so far
stand. New calls work again as soon as the server is back.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import StreamerError
from ..model.manifest import MANIFEST, ModelInfo
from .backend import BackendOptions, Capabilities, ModelInput
from .onnx import model_inputs, unpadded

DEFAULT_URL = "127.0.0.1:8001"
INPUTS = ("input_values", "attention_mask")
UNAVAILABLE = "StatusCode.UNAVAILABLE"  # the server is gone: refused, reset, shutting down
DEADLINE = "StatusCode.DEADLINE_EXCEEDED"
RETRY_INTERVAL_S = 0.25  # between tries of a call while the server is gone
RECONNECT_S = 1.5  # a call made after a long outage still waits this long: the channel's next reconnect
CHANNEL_ARGS = [
    ("grpc.max_send_message_length", 2**31 - 1),  # 16 windows of 8 s and their masks are 25 MB
    ("grpc.max_receive_message_length", 2**31 - 1),
    ("grpc.initial_reconnect_backoff_ms", 250),  # gRPC's own backoff grows to 2 min: a server that is back
    ("grpc.min_reconnect_backoff_ms", 250),      # would go unnoticed that long
    ("grpc.max_reconnect_backoff_ms", 1000),
]


@dataclass(frozen=True)
class TritonSettings:
    url: str = DEFAULT_URL  # HOST:PORT of the server's gRPC endpoint
    model_name: str = "streamer"
    timeout_s: float = 10.0  # the most one call may take, waiting for a lost server included
    max_in_flight: int = 4  # calls at once

    def __post_init__(self) -> None:
        host, colon, port = self.url.rpartition(":")
        if not colon or not host or not port.isdigit() or "/" in self.url:
            raise StreamerError(f"Triton URL {self.url!r} is not HOST:PORT (the gRPC port, 8001 by default)")
        if not self.timeout_s > 0 or self.max_in_flight < 1:
            raise StreamerError(f"a Triton call needs a timeout above 0 s and at least 1 call in flight, not "
                                f"{self.timeout_s} s and {self.max_in_flight}")


@dataclass(frozen=True)
class ServedModel:
    """What the server says of the model: the types its inputs take, its output, its largest batch."""

    input_types: dict[str, str]  # name → Triton datatype (FP32, FP16, INT64, ...)
    output: str
    max_batch: int


def client_module(asyncio_client: bool = False):
    try:
        if asyncio_client:
            import tritonclient.grpc.aio as module
        else:
            import tritonclient.grpc as module
    except ImportError:
        raise StreamerError("--backend triton needs tritonclient: pip install 'streamer[triton]'") from None
    return module


def one_line(exc: Exception) -> str:
    message = exc.message() if hasattr(exc, "message") else str(exc)
    return " ".join(str(message).split()) or exc.__class__.__name__


def triton_model_dir(spec: str) -> Path:
    """--model for Triton: a model folder of a repository written by streamer (or any dir with a manifest), or
    the repository itself when it holds exactly one such folder."""
    path = Path(spec).expanduser()
    if (path / MANIFEST).is_file():
        return path
    folders = [p for p in path.iterdir() if (p / MANIFEST).is_file()] if path.is_dir() else []
    if len(folders) == 1:
        return folders[0]
    raise StreamerError(f"with --backend triton, --model is a model folder of a Triton repository written by "
                        f"'streamer export --triton-repo' (REPO/NAME: config.pbtxt, {MANIFEST}, vocab.json), or the "
                        f"repository when it holds one; {spec} is "
                        + (f"a repository of {len(folders)} models: name one" if folders else "neither"))


def check_served(settings: TritonSettings, info: ModelInfo) -> ServedModel:
    """At start: the server answers, the model is ready, and it takes and gives what streamer sends and reads."""
    grpc = client_module()
    where = f"Triton at {settings.url}"
    client = grpc.InferenceServerClient(settings.url, channel_args=CHANNEL_ARGS)
    try:
        try:
            client.is_server_live(client_timeout=settings.timeout_s)
        except grpc.InferenceServerException as exc:
            raise StreamerError(f"{where} cannot be reached ({one_line(exc)}): start tritonserver with the "
                                "repository (see the README), or give its gRPC HOST:PORT with --triton-url") from None
        try:
            ready = client.is_model_ready(settings.model_name, client_timeout=settings.timeout_s)
            if ready:
                metadata = client.get_model_metadata(settings.model_name, client_timeout=settings.timeout_s)
                config = client.get_model_config(settings.model_name, client_timeout=settings.timeout_s).config
        except grpc.InferenceServerException as exc:
            raise StreamerError(f"{where}: {one_line(exc)}") from None
        if not ready:
            raise StreamerError(f"{where}: model {settings.model_name!r} is not ready ({model_states(client)})")
    finally:
        client.close()
    return served_model(where, settings.model_name, metadata, config.max_batch_size, info)


def model_states(client) -> str:
    """What the server's repository holds, for the not-ready error: 'name (STATE: reason)', ..."""
    try:
        models = client.get_model_repository_index().models
    except Exception:  # noqa: BLE001 - only for the message
        return "its repository index is not readable"
    states = [f"{m.name} ({m.state or 'not loaded'}{': ' + m.reason if m.reason else ''})" for m in models]
    return "the server has " + (", ".join(states) if states else "no models")


def served_model(where: str, name: str, metadata, max_batch: int, info: ModelInfo) -> ServedModel:
    types = {tensor.name: tensor.datatype for tensor in metadata.inputs}
    missing = [n for n in INPUTS if n not in types]
    if missing or len(metadata.outputs) != 1:
        raise StreamerError(f"{where}: model {name!r} takes {', '.join(types)} and gives "
                            f"{', '.join(t.name for t in metadata.outputs)}; streamer sends {', '.join(INPUTS)} and "
                            "reads one output: serve a repository written by 'streamer export --triton-repo'")
    output = metadata.outputs[0]
    width = list(output.shape)[-1]
    if width not in (-1, len(info.vocab)):
        raise StreamerError(f"{where}: model {name!r} gives {width} outputs per frame but the vocabulary of --model "
                            f"has {len(info.vocab)} tokens: point --model at the repository the server serves")
    if max_batch < 1:
        raise StreamerError(f"{where}: model {name!r} has max_batch_size {max_batch}; streamer sends batches of "
                            "windows: serve a repository written by 'streamer export --triton-repo'")
    return ServedModel(types, output.name, max_batch)


class TritonBackend:
    def __init__(self, info: ModelInfo, settings: TritonSettings, served: ServedModel, max_batch: int = 8,
                 log: Callable[[str], None] = lambda message: None):
        self.info, self.settings, self.served, self.log = info, settings, served, log
        self.capabilities = Capabilities(min(max_batch, served.max_batch), rows_independent=info.precision != "int8",
                                         max_in_flight=settings.max_in_flight)
        self._client = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._down_since: float | None = None  # when the server was found gone; None while it answers

    async def logits(self, batch: list[ModelInput]) -> list[np.ndarray]:
        audios = [item.audio for item in batch]
        values, mask = model_inputs(self.info, audios, [item.stats for item in batch])
        deadline = time.monotonic() + self.settings.timeout_s
        while True:
            try:
                out = await self._infer(values, mask, deadline)
                break
            except client_module().InferenceServerException as exc:
                await asyncio.sleep(self._retry_in(exc, deadline))
        if self._down_since is not None:
            self.log(f"Triton at {self.settings.url} is back after {time.monotonic() - self._down_since:.1f} s")
            self._down_since = None
        return unpadded(out, audios, self.info)

    async def _infer(self, values: np.ndarray, mask: np.ndarray, deadline: float) -> np.ndarray:
        grpc = client_module()
        inputs = []
        for name, array in zip(INPUTS, (values, mask)):
            datatype = self.served.input_types[name]
            tensor = grpc.InferInput(name, list(array.shape), datatype)
            tensor.set_data_from_numpy(array.astype(grpc.triton_to_np_dtype(datatype), copy=False))
            inputs.append(tensor)
        result = await self._connection().infer(self.settings.model_name, inputs,
                                                outputs=[grpc.InferRequestedOutput(self.served.output)],
                                                client_timeout=max(deadline - time.monotonic(), 0.001))
        return result.as_numpy(self.served.output)

    def _retry_in(self, exc, deadline: float) -> float:
        """Seconds until the next try of a call the server failed; raises when the call is not to be tried again."""
        where, reason, now = f"Triton at {self.settings.url}", one_line(exc), time.monotonic()
        if exc.status() not in (UNAVAILABLE, DEADLINE):
            raise StreamerError(f"{where}, model {self.settings.model_name!r}: {reason}") from None
        if exc.status() == DEADLINE and self._down_since is None:
            raise StreamerError(f"{where} did not answer within {self.settings.timeout_s:g} s") from None
        if self._down_since is None:
            self._down_since = now
            self.log(f"{where} is unreachable ({reason}): calls wait for it up to {self.settings.timeout_s:g} s")
        down_s, waited_s = now - self._down_since, now - (deadline - self.settings.timeout_s)
        if (exc.status() == DEADLINE or now + RETRY_INTERVAL_S >= deadline
                or (down_s >= self.settings.timeout_s and waited_s >= RECONNECT_S)):
            raise StreamerError(f"{where} has been unreachable for {down_s:.1f} s ({reason})") from None
        return RETRY_INTERVAL_S

    def _connection(self):
        """The asyncio client, made on the loop that uses it (a gRPC channel belongs to one loop)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = client_module(asyncio_client=True).InferenceServerClient(self.settings.url,
                                                                                    channel_args=CHANNEL_ARGS)
            self._loop = loop
        return self._client

    def close(self) -> None:
        client, loop, self._client = self._client, self._loop, None
        if client is None or loop is None or loop.is_closed():
            return
        if loop.is_running():
            loop.create_task(client.close())
        else:
            loop.run_until_complete(client.close())


def triton_backend(options: BackendOptions) -> TritonBackend:
    """The built-in "triton" backend: --model is the repository's model folder, --triton-url the server."""
    model_dir = triton_model_dir(options.model)
    info = ModelInfo.load(model_dir)
    name = str(info.manifest.get("triton", {}).get("model_name") or model_dir.name)
    settings = TritonSettings(options.url or DEFAULT_URL, name, options.timeout_s)
    served = check_served(settings, info)
    options.log(f"model {name!r} on Triton at {settings.url} ({info.precision}, up to {served.max_batch} windows a run)")
    return TritonBackend(info, settings, served, options.max_batch or served.max_batch, options.log)
