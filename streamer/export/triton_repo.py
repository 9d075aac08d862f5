"""A Triton Inference Server model repository from an exported model dir (``streamer export --triton-repo``).

    REPO/
      NAME/                      the model folder (Triton's model name is its name)
        config.pbtxt             onnxruntime backend, dynamic batching, instance groups
        1/model.onnx             the exported ONNX file, as it is
        manifest.json, vocab.json (language_model/)   what the gateways need: --model REPO/NAME

The config is written from the ONNX file's own inputs and outputs (names, element types, shapes), so an
fp16 export whose inputs stay fp32 says so and one with fp16 inputs says that. Triton ignores the
non-numeric files and folders beside the version folder, so gateways and the server can share one
repository. Rows of an int8 model are not independent (activations are quantized once per call), so its
config has no dynamic batching: the server never merges windows of different calls into one run.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx

from ..errors import StreamerError
from ..files import check_dir_target, replace_dir
from ..model.manifest import MANIFEST, MODEL_FILE, read_manifest

CONFIG_FILE = "config.pbtxt"
VERSION = "1"
KINDS = {"auto": "KIND_AUTO", "gpu": "KIND_GPU", "cpu": "KIND_CPU"}  # auto: a GPU where the server has one
ONNX_TO_TRITON = {"FLOAT": "TYPE_FP32", "FLOAT16": "TYPE_FP16", "BFLOAT16": "TYPE_BF16", "DOUBLE": "TYPE_FP64",
                  "INT64": "TYPE_INT64", "INT32": "TYPE_INT32", "INT16": "TYPE_INT16", "INT8": "TYPE_INT8",
                  "UINT8": "TYPE_UINT8", "BOOL": "TYPE_BOOL"}


@dataclass(frozen=True)
class TritonRepoSettings:
    model_name: str = "streamer"
    max_batch: int = 16  # max_batch_size: windows in one run, from one call or merged from several
    preferred_batches: tuple[int, ...] = (4, 8, 16)  # sizes the dynamic batcher waits to fill (those ≤ max_batch)
    max_queue_delay_us: int = 2000  # how long the dynamic batcher holds a request for more
    instances: int = 1  # model instances per GPU (or on the CPU)
    kind: str = "auto"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise StreamerError(f"instance kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.max_batch < 1 or self.instances < 1 or self.max_queue_delay_us < 0:
            raise StreamerError("a Triton repository needs max_batch ≥ 1, instances ≥ 1 and a queue delay ≥ 0 µs")
        if not self.model_name or not all(c.isalnum() or c in "_-." for c in self.model_name):
            raise StreamerError(f"Triton model name {self.model_name!r}: use letters, digits, '_', '-' and '.'")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    data_type: str  # Triton's TYPE_*
    dims: tuple[int, ...]  # without the batch dimension; -1 where the size varies


def onnx_tensors(model_path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The ONNX file's real inputs and outputs (initializers that old exporters list as inputs left out)."""

    graph = onnx.load(str(model_path), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    return ([tensor_spec(v, model_path) for v in graph.input if v.name not in weights],
            [tensor_spec(v, model_path) for v in graph.output])


def tensor_spec(value, model_path: Path) -> TensorSpec:
    tensor = value.type.tensor_type
    element = onnx.TensorProto.DataType.Name(tensor.elem_type)
    if element not in ONNX_TO_TRITON:
        raise StreamerError(f"{model_path}: {value.name} is of type {element}, which the Triton repository does "
                            f"not map (known: {', '.join(ONNX_TO_TRITON)})")
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
    if not dims or dims[0] != -1:
        raise StreamerError(f"{model_path}: {value.name} has no dynamic batch dimension (shape {dims}); the "
                            "Triton repository batches on the first dimension")
    return TensorSpec(value.name, ONNX_TO_TRITON[element], tuple(dims[1:]))


def config_text(settings: TritonRepoSettings, inputs: list[TensorSpec], outputs: list[TensorSpec],
                manifest: dict) -> str:
    """config.pbtxt for Triton's onnxruntime backend (protobuf text format of Triton's ModelConfig)."""
    precision = manifest.get("precision", "fp32")
    lines = [f"# written by streamer export --triton-repo from {manifest.get('source')} ({precision}); "
             f"gateways: --model REPO/{settings.model_name}",
             f'name: "{settings.model_name}"', 'backend: "onnxruntime"', f"max_batch_size: {settings.max_batch}",
             tensors_text("input", inputs), tensors_text("output", outputs)]
    if precision == "int8":
        lines.append("# int8: no dynamic batching; activations are quantized once per run, so windows merged from "
                     "several calls would change each other's logits")
    else:
        preferred = [size for size in settings.preferred_batches if size <= settings.max_batch] or [settings.max_batch]
        lines.append(f"dynamic_batching {{\n  preferred_batch_size: [ {', '.join(map(str, preferred))} ]\n"
                     f"  max_queue_delay_microseconds: {settings.max_queue_delay_us}\n}}")
    lines.append(f"instance_group [\n  {{ count: {settings.instances} kind: {KINDS[settings.kind]} }}\n]")
    return "\n".join(lines) + "\n"


def tensors_text(field: str, specs: list[TensorSpec]) -> str:
    entries = [f'  {{ name: "{s.name}" data_type: {s.data_type} dims: [ {", ".join(map(str, s.dims))} ] }}'
               for s in specs]
    return f"{field} [\n" + ",\n".join(entries) + "\n]"


def write_triton_repo(model_dir: Path, repo: Path, settings: TritonRepoSettings = TritonRepoSettings()) -> Path:
    """REPO/NAME from an exported model dir; an earlier REPO/NAME written here is replaced, other models in the
    repository are left alone. Returns the model folder (what gateways take as --model)."""
    model_dir, repo = Path(model_dir), Path(repo)
    check_repo_target(repo, settings.model_name)
    manifest = read_manifest(model_dir)
    inputs, outputs = onnx_tensors(model_dir / MODEL_FILE)
    repo.mkdir(parents=True, exist_ok=True)
    target = repo / settings.model_name
    with tempfile.TemporaryDirectory(dir=repo, prefix=f".{settings.model_name}.") as tmp:
        stage = Path(tmp) / settings.model_name
        shutil.copytree(model_dir, stage, ignore=shutil.ignore_patterns(MODEL_FILE))
        (stage / VERSION).mkdir()
        shutil.copyfile(model_dir / MODEL_FILE, stage / VERSION / MODEL_FILE)
        (stage / CONFIG_FILE).write_text(config_text(settings, inputs, outputs, manifest), encoding="utf-8")
        triton = {"model_name": settings.model_name, "version": VERSION, "max_batch_size": settings.max_batch}
        (stage / MANIFEST).write_text(json.dumps({**manifest, "triton": triton}, ensure_ascii=False, indent=1),
                                      encoding="utf-8")
        replace_dir(stage, target)
    return target


def check_repo_target(repo: Path, model_name: str) -> None:
    """Before an export of minutes: the repository can be written, and REPO/NAME is free or was written here."""
    check_dir_target(repo, "--triton-repo")
    target = Path(repo) / model_name
    if target.exists() and not (target / MANIFEST).is_file():
        raise StreamerError(f"{target} exists and is not a model folder written by streamer: choose another "
                            "--triton-repo or --triton-model")
