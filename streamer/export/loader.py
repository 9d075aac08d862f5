"""--model: an exported dir, a local Hugging Face checkpoint, or a hub id (exported once, then cached)."""

from __future__ import annotations

import hashlib
import importlib
import os
import re
from pathlib import Path
from typing import Callable

from .checkpoint import WEIGHT_FILES, Checkpoint, check_ctc_config, load_vocabulary, resolve_checkpoint
from .onnx_export import ExportSettings, export_checkpoint
from ..files import check_dir_target
from ..model.manifest import MANIFEST
from ..backends.backend import Backend, BackendOptions
from ..errors import StreamerError
from ..backends.onnx import OnnxBackend, OnnxModel, RunnerSettings
from ..backends.onnx import choose_providers


def cache_root() -> Path:
    if os.environ.get("STREAMER_CACHE"):
        return Path(os.environ["STREAMER_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "streamer"


def checkpoint_key(checkpoint: Checkpoint) -> str:
    """Hub: the commit. Local dir: its path and its files' sizes and times, so an edit re-exports."""
    if checkpoint.revision:
        return checkpoint.revision
    digest = hashlib.sha256(str(checkpoint.path).encode())
    for name in ("config.json", "vocab.json", *WEIGHT_FILES):
        path = checkpoint.path / name
        if path.exists():
            stat = path.stat()
            digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def cached_export_dir(checkpoint: Checkpoint, precision: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "--", checkpoint.source.strip("/")).strip("-") or "model"
    return cache_root() / slug[-80:] / checkpoint_key(checkpoint) / precision


def auto_precision(settings: RunnerSettings) -> str:
    """fp16 where a GPU runs the model (layer norms and softmax stay fp32; its tensor cores run fp16);
    int8 on a CPU, where fp32 XLS-R-300M is too slow to stream on a few cores (benchmarks/RESULTS.md)."""

    return "int8" if choose_providers(settings.device, settings.device_id) == ["CPUExecutionProvider"] else "fp16"


def load_model(spec: str, settings: RunnerSettings = RunnerSettings(), precision: str = "fp32",
               log: Callable[[str], None] = lambda _: None) -> OnnxModel:
    """precision applies when a checkpoint is exported on first use: fp32, fp16, int8 or auto."""
    path = Path(spec).expanduser()
    if path.is_dir() and (path / MANIFEST).exists():
        return OnnxModel(path, settings)
    checkpoint = resolve_checkpoint(spec)
    load_vocabulary(checkpoint, check_ctc_config(checkpoint))  # fail before a long export, not during it
    precision = auto_precision(settings) if precision == "auto" else precision
    target = cached_export_dir(checkpoint, precision)
    if not (target / MANIFEST).exists():
        check_dir_target(target, "the model cache", "; set STREAMER_CACHE to a writable folder")
        log(f"first use of {checkpoint.source}: exporting to {target}")
        export_checkpoint(checkpoint, target, ExportSettings(precision=precision), log=log)
    return OnnxModel(target, settings)


def onnx_backend(options: BackendOptions) -> OnnxBackend:
    """The built-in backend ("onnx"): --model resolved (exported on first use) and run by ONNX Runtime in process."""
    settings = RunnerSettings(device=options.device, intra_op_threads=options.threads)
    return OnnxBackend(load_model(options.model, settings, options.precision, log=options.log), options.max_batch)


BUILT_IN = {"onnx": "streamer.export.loader:onnx_backend", "triton": "streamer.backends.triton:triton_backend"}


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
                            "(see streamer.backends.backend)")
    return backend
