"""ONNX Runtime in process, the built-in backend: an exported model dir, batches of raw audio in, CTC
logits out. ``OnnxModel`` is the session (synchronous, also used by export's parity check);
``OnnxBackend`` serves it to the batcher on a worker thread.

Memory: a call's working memory grows faster than its window (attention is quadratic in frames:
tiny-nb needs about 1 MB for a 1.2 s partial window, 12 MB for an 8 s commit window). ONNX Runtime's
CPU arena keeps what its largest call took for the life of the session, so a process's RSS stepped up
each time a window longer than any before came (benchmarks/RESULTS.md, soak). By default
(``RunnerSettings.release_memory``) the arena gives back after each call what the call added to it
(ONNX Runtime's arena shrinkage), and glibc malloc's thresholds are fixed so that what it gives back
leaves the process (``release_freed_memory``)."""

from __future__ import annotations

import asyncio
import ctypes
import os
import platform
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..errors import StreamerError
from ..model.manifest import MANIFEST, MODEL_FILE, ModelInfo
from .backend import Capabilities, ModelInput
from .shapes import GPU_BUCKETS_MS, GPU_ROW_BUCKETS, bucket_of, check_buckets, rows_of, to_samples

DEVICES = ("auto", "cpu", "cuda", "tensorrt")
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


@dataclass(frozen=True)
class RunnerSettings:
    device: str = "auto"  # auto: CUDA when onnxruntime-gpu sees a GPU, else CPU; tensorrt: TensorRT, then CUDA
    intra_op_threads: int = 0  # 0: ONNX Runtime's default (one per physical core)
    inter_op_threads: int = 1
    release_memory: bool = True  # what a call adds to the CPU arena goes back when it returns (module doc)
    buckets_ms: tuple[int, ...] | None = None  # window lengths calls are padded to (shapes.py); None: on a GPU
    # shapes.GPU_BUCKETS_MS, on a CPU none (each call padded to its longest window only)
    row_buckets: bool | None = None  # a call's rows padded to shapes.GPU_ROW_BUCKETS (None: on a GPU)
    io_binding: bool | None = None  # inputs and outputs bound to the device (None: on a GPU)
    device_id: int = 0  # which GPU

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise StreamerError(f"device {self.device!r} is not one of {', '.join(DEVICES)}")
        if self.intra_op_threads < 0 or self.inter_op_threads < 0 or self.device_id < 0:
            raise StreamerError("thread counts must be 0 (default) or positive, device_id not negative")
        if self.buckets_ms is not None:
            check_buckets(self.buckets_ms)


def normalize(audio: np.ndarray, stats: tuple[float, float] | None = None) -> np.ndarray:
    """Zero mean, unit variance, as the wav2vec2 feature extractor does for each input; stats (mean,
    variance) of a longer stretch of audio than this one when given."""
    audio = np.asarray(audio, dtype=np.float32)
    mean, var = (float(audio.mean()), float(audio.var())) if stats is None else stats
    return (audio - np.float32(mean)) / np.float32(np.sqrt(var + 1e-7))


def pad_batch(audios: list[np.ndarray], length: int | None = None, rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad to length (default: the longest input); the attention mask marks real samples with 1. rows:
    the batch padded with rows of silence to this many (their mask all 1, so no row is wholly masked)."""
    longest = max(len(audio) for audio in audios)
    if length is not None and length < longest:
        raise AssertionError(f"a batch padded to {length} samples holds a window of {longest}")
    batch = np.zeros((max(rows or 0, len(audios)), length or longest), dtype=np.float32)
    mask = np.zeros(batch.shape, dtype=np.int64)
    mask[len(audios):] = 1
    for row, audio in enumerate(audios):
        batch[row, : len(audio)] = audio
        mask[row, : len(audio)] = 1
    return batch, mask


MMAP_THRESHOLD = 1 << 20  # bytes: glibc maps every allocation this large on its own, and unmaps it when freed
TRIM_THRESHOLD = 128 << 10  # bytes: free memory at the top of a malloc heap beyond this goes back (glibc's default)
SHRINK_ARENA = "memory.enable_memory_arena_shrinkage"  # run option: arenas give back free regions after a run
_malloc_fixed: bool | None = None  # once per process


def release_freed_memory() -> bool:
    """Fix glibc malloc's mmap and trim thresholds, once per process, so that large blocks freed (an arena
    region after a call, a session's load temporaries) leave the process. glibc's own rule raises both
    after such a block is freed (up to 32 and 64 MB) and from then on keeps freed blocks under them in its
    heaps, so the arena's shrinking alone only moved memory from the arena into malloc's heaps (tiny-nb's
    soak: RSS +8% over the hour, against +6% with the arena as it was), and a session keeps the memory of
    its load (XLS-R-300M int8: +515 MB after load, +383 MB with the thresholds fixed). Allocations of
    MMAP_THRESHOLD and more get their own mapping, smaller ones come from the heaps as before.
    Process-wide, like any malloc setting; left alone where the C library is not glibc or where the
    environment (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, GLIBC_TUNABLES) already chose.
    Returns whether the thresholds are in force."""
    global _malloc_fixed
    if _malloc_fixed is None:
        _malloc_fixed = False
        tunables = os.environ.get("GLIBC_TUNABLES", "")
        chosen = any(name in os.environ for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")) or any(
            name in tunables for name in ("mmap_threshold", "trim_threshold"))
        if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc" and not chosen:
            try:
                mallopt = ctypes.CDLL(None).mallopt
                mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
                # M_MMAP_THRESHOLD (-3) set stops glibc moving either threshold; M_TRIM_THRESHOLD (-1) too,
                # as glibc may already have raised it
                _malloc_fixed = mallopt(-3, MMAP_THRESHOLD) == 1 and mallopt(-1, TRIM_THRESHOLD) == 1
            except (OSError, AttributeError):
                pass
    return _malloc_fixed


def model_inputs(info: ModelInfo, audios: list[np.ndarray], stats: list[tuple[float, float] | None],
                 buckets: tuple[int, ...] = (), row_buckets: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """A call's input_values and attention_mask: each window normalized (when the model normalizes), padded to
    the longest, or to the length bucket that holds it, and the rows to their row bucket (shapes.py)."""
    prepared = [normalize(audio, st) if info.do_normalize else np.asarray(audio, np.float32)
                for audio, st in zip(audios, stats)]
    return pad_batch(prepared, bucket_of(max(len(audio) for audio in prepared), buckets),
                     rows_of(len(prepared), row_buckets))


def unpadded(logits: np.ndarray, audios: list[np.ndarray], info: ModelInfo) -> list[np.ndarray]:
    """Each window's own frames of a call's logits, as float32."""
    return [logits[row, : info.geometry.n_frames(len(audio))].astype(np.float32) for row, audio in enumerate(audios)]


def choose_providers(device: str, device_id: int = 0, cache_dir: Path | None = None) -> list:
    """ONNX Runtime's execution providers for a device, most wanted first, with their options.
    cache_dir: where TensorRT keeps the engines it builds (building one takes minutes)."""
    available = ort.get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if device in ("cuda", "tensorrt") and not has_cuda:
        raise StreamerError(
            f"device {device!r} asked for, but this onnxruntime has no CUDA provider: "
            "pip install 'streamer[gpu]' (onnxruntime-gpu, with onnxruntime uninstalled), or run on the CPU "
            "(--compute cpu)"
        )
    if device == "tensorrt" and "TensorrtExecutionProvider" not in available:
        raise StreamerError("device 'tensorrt' asked for, but this onnxruntime has no TensorRT provider "
                            "(it needs TensorRT's libraries installed): use --compute cuda")
    cuda = ("CUDAExecutionProvider", {"device_id": device_id})
    if device == "tensorrt":
        trt = {"device_id": device_id, "trt_fp16_enable": True, "trt_engine_cache_enable": cache_dir is not None,
               **({"trt_engine_cache_path": str(cache_dir)} if cache_dir is not None else {})}
        return [("TensorrtExecutionProvider", trt), cuda, "CPUExecutionProvider"]
    if device != "cpu" and has_cuda:
        return [cuda, "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxModel:
    """One ONNX Runtime session over an exported model dir, shared by every stream of a process."""

    def __init__(self, model_dir: Path, settings: RunnerSettings = RunnerSettings()):
        self.model_dir = Path(model_dir)
        if not (self.model_dir / MODEL_FILE).is_file() and (self.model_dir / MANIFEST).is_file():
            raise StreamerError(f"{model_dir} has no {MODEL_FILE}: expected a dir written by 'streamer export'")
        self.info = ModelInfo.load(self.model_dir)
        self.manifest, self.vocab, self.geometry = self.info.manifest, self.info.vocab, self.info.geometry
        self.do_normalize = self.info.do_normalize
        options = ort.SessionOptions()
        options.intra_op_num_threads = settings.intra_op_threads
        options.inter_op_num_threads = settings.inter_op_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.run_options = None
        if settings.release_memory:
            release_freed_memory()  # before the session loads: its load's temporaries go back too
            self.run_options = ort.RunOptions()
            self.run_options.add_run_config_entry(SHRINK_ARENA, "cpu:0")
        providers = choose_providers(settings.device, settings.device_id, self.model_dir / "tensorrt-cache")
        try:
            self.session = ort.InferenceSession(str(self.model_dir / MODEL_FILE), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise StreamerError(f"{self.model_dir / MODEL_FILE}: ONNX Runtime cannot load it ({first_line})") from None
        if settings.device in ("cuda", "tensorrt") and not self.on_gpu:
            raise StreamerError(f"device {settings.device!r} asked for, but ONNX Runtime could not start its CUDA "
                                "provider (are the CUDA and cuDNN libraries it was built for installed?)")
        on_gpu = self.on_gpu
        buckets_ms = settings.buckets_ms if settings.buckets_ms is not None else GPU_BUCKETS_MS if on_gpu else ()
        self.buckets = to_samples(buckets_ms, self.geometry.sample_rate)
        pad_rows = settings.row_buckets if settings.row_buckets is not None else on_gpu
        self.row_buckets = GPU_ROW_BUCKETS if pad_rows else ()
        bind = settings.io_binding if settings.io_binding is not None else on_gpu
        self._binding = DeviceBinding(self.session, "cuda" if on_gpu else "cpu", settings.device_id) if bind else None
        outputs = self.session.get_outputs()[0].shape[-1]
        if isinstance(outputs, int) and outputs != len(self.vocab):
            raise StreamerError(f"{self.model_dir}: the model has {outputs} outputs per frame but vocab.json "
                                f"{len(self.vocab)} tokens: the two must match")

    @property
    def language_model_dir(self) -> Path | None:
        return self.info.language_model_dir

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    @property
    def on_gpu(self) -> bool:
        return self.provider in GPU_PROVIDERS

    @property
    def sample_rate(self) -> int:
        return self.geometry.sample_rate

    def logits(self, audios: list[np.ndarray], stats: list[tuple[float, float] | None] | None = None) -> list[np.ndarray]:
        """CTC logits (frames × vocab) for each float32 16 kHz input, padding frames removed. stats: the
        (mean, variance) each input is normalized with (None: its own), when the model normalizes."""
        if not audios:
            return []
        short = min(len(audio) for audio in audios)
        if short < self.geometry.receptive_field_samples:
            raise StreamerError(
                f"audio of {short} samples is shorter than the model's receptive field "
                f"({self.geometry.receptive_field_samples} samples)"
            )
        batch, mask = model_inputs(self.info, audios, stats or [None] * len(audios), self.buckets, self.row_buckets)
        if self._binding is not None:
            logits = self._binding.run(batch, mask, self.run_options)
        else:
            (logits,) = self.session.run(["logits"], {"input_values": batch, "attention_mask": mask}, self.run_options)
        return unpadded(logits, audios, self.info)


class DeviceBinding:
    """Runs through ONNX Runtime's I/O binding: the batch goes to the device once, as one tensor, the
    logits are allocated there by the session's own arena and copied back once; each call binds its own,
    so calls on several threads do not share buffers."""

    def __init__(self, session, device_type: str, device_id: int = 0):
        self.session, self.device_type, self.device_id = session, device_type, device_id

    def run(self, batch: np.ndarray, mask: np.ndarray, run_options) -> np.ndarray:
        binding = self.session.io_binding()
        for name, array in (("input_values", batch), ("attention_mask", mask)):
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, self.device_type, self.device_id))
        binding.bind_output("logits", self.device_type, self.device_id)
        self.session.run_with_iobinding(binding, run_options)
        return binding.copy_outputs_to_cpu()[0]


CPU_BATCH, GPU_BATCH = 8, 256  # default windows per call
GPU_IN_FLIGHT = 2  # calls at once on a GPU: one copies and decodes while the other computes


class OnnxBackend:
    """The in-process backend: an OnnxModel's calls on worker threads (on a CPU one, as ONNX Runtime already
    uses every core for one call; on a GPU two, with calls of up to 256 windows padded to length buckets)."""

    def __init__(self, model: OnnxModel, max_batch: int | None = None, max_in_flight: int | None = None):
        self.model, self.info = model, model.info
        max_batch = max_batch or (GPU_BATCH if model.on_gpu else CPU_BATCH)
        max_in_flight = max_in_flight or (GPU_IN_FLIGHT if model.on_gpu else 1)
        self.capabilities = Capabilities(max_batch, rows_independent=model.info.precision != "int8",
                                         max_in_flight=max_in_flight, length_buckets=model.buckets)
        self._executor = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="streamer-onnx")

    async def logits(self, batch: list[ModelInput]) -> list[np.ndarray]:
        audios, stats = [item.audio for item in batch], [item.stats for item in batch]
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.model.logits, audios, stats)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

