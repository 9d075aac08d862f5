"""`streamer export --triton-repo`: the options of a Triton Inference Server model repository, and writing it."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import log
from ..export.triton_repo import KINDS, TritonRepoSettings, check_repo_target, write_triton_repo


def add_triton_repo_options(parser: argparse.ArgumentParser) -> None:
    d = TritonRepoSettings()
    group = parser.add_argument_group(
        "Triton", "a model repository for NVIDIA Triton Inference Server's onnxruntime backend: REPO/NAME/config.pbtxt, "
                  "REPO/NAME/1/model.onnx, and the manifest and vocabulary the gateways read (streamer serve "
                  "--backend triton --triton-url HOST:8001 --model REPO/NAME)")
    group.add_argument("--triton-repo", type=Path, metavar="REPO",
                       help="write the model into this repository (other models in it are left alone); MODEL may then "
                            "also be a dir 'streamer export' wrote, and --out may be left out")
    group.add_argument("--triton-model", default=d.model_name, metavar="NAME",
                       help=f"the model's name on the server (default {d.model_name})")
    group.add_argument("--triton-max-batch", type=int, default=d.max_batch, metavar="N",
                       help=f"max_batch_size: windows in one run, merged from several calls (default {d.max_batch})")
    group.add_argument("--triton-instances", type=int, default=d.instances, metavar="N",
                       help=f"model instances per GPU, or on the CPU (default {d.instances})")
    group.add_argument("--triton-kind", choices=tuple(KINDS), default=d.kind,
                       help="where instances run: auto (a GPU where the server has one, else the CPU), gpu or cpu "
                            f"(default {d.kind})")
    group.add_argument("--triton-queue-delay-us", type=int, default=d.max_queue_delay_us, metavar="US",
                       help="how long the dynamic batcher holds a request for more to run with it "
                            f"(default {d.max_queue_delay_us})")


def triton_repo_settings(args: argparse.Namespace):
    """The repository's settings (None without --triton-repo), its target checked before any long export."""
    if args.triton_repo is None:
        return None
    settings = TritonRepoSettings(model_name=args.triton_model, max_batch=args.triton_max_batch,
                                  max_queue_delay_us=args.triton_queue_delay_us, instances=args.triton_instances,
                                  kind=args.triton_kind)
    check_repo_target(args.triton_repo, settings.model_name)
    return settings


def write_repo(model_dir: Path, repo: Path, settings) -> None:
    folder = write_triton_repo(model_dir, repo, settings)
    log(f"wrote the Triton model {folder} (tritonserver --model-repository {repo}; gateways: --backend triton "
        f"--model {folder})")
