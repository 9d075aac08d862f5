"""Export a Hugging Face CTC checkpoint to an ONNX model dir, proven against PyTorch before it is written."""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

from .. import __version__
from ..backends.onnx import OnnxModel, RunnerSettings, normalize, pad_batch
from ..errors import StreamerError
from ..files import check_dir_target, replace_dir
from ..model.geometry import SAMPLE_RATE, FrameGeometry
from ..model.manifest import MANIFEST, MODEL_FILE
from ..model.vocab import Vocabulary
from ..sources.ffmpeg import read_wav
from ..text.ctc import greedy_words, words_text
from ..text.scoring import cer
from .checkpoint import (Checkpoint, FeatureSettings, check_ctc_config, load_feature_settings, load_torch_model,
                         load_vocabulary)

PRECISIONS = ("fp32", "fp16", "int8")
# Kept in fp32 by the fp16 conversion: normalisation and softmax statistics overflow fp16.
FP16_KEEP_FP32 = ("LayerNormalization", "Softmax", "ReduceMean", "Pow", "Sqrt", "Erf", "Exp", "Log")


@dataclass(frozen=True)
class ExportSettings:
    precision: str = "fp32"
    opset: int = 17
    fp32_max_abs_diff: float = 1e-3
    check_lengths_s: tuple[float, ...] = (0.5, 1.37, 3.2)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise StreamerError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")


@dataclass(frozen=True)
class ParityCase:
    name: str
    batch_size: int
    max_abs_diff: float
    transcript_agreement: float  # 1 − CER of the ONNX transcript against the PyTorch one

    @property
    def transcripts_equal(self) -> bool:
        return self.transcript_agreement == 1.0

    def to_json(self) -> dict:
        return {"input": self.name, "batch": self.batch_size, "max_abs_diff": self.max_abs_diff,
                "transcript_agreement": round(self.transcript_agreement, 4)}


def logits_module(model):
    """The traced graph: (input_values, attention_mask) → logits, in eval mode (no dropout, no layerdrop)."""
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_values, attention_mask):
            return self.model(input_values=input_values, attention_mask=attention_mask).logits

    return LogitsOnly().eval()


def export_onnx(model, path: Path, opset: int) -> None:
    import torch

    dummy = torch.zeros(2, SAMPLE_RATE)
    mask = torch.ones(2, SAMPLE_RATE, dtype=torch.long)
    mask[1, 12_000:] = 0
    axes = {"batch": 0, "samples": 1}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            logits_module(model), (dummy, mask), str(path),
            input_names=["input_values", "attention_mask"], output_names=["logits"],
            dynamic_axes={
                "input_values": {axes["batch"]: "batch", axes["samples"]: "samples"},
                "attention_mask": {axes["batch"]: "batch", axes["samples"]: "samples"},
                "logits": {0: "batch", 1: "frames"},
            },
            opset_version=opset, dynamo=False,
        )


def convert_precision(fp32_path: Path, out_path: Path, precision: str) -> None:
    if precision == "fp16":
        model = convert_float_to_float16(
            onnx.load(str(fp32_path)), keep_io_types=True,
            op_block_list=list(DEFAULT_OP_BLOCK_LIST) + list(FP16_KEEP_FP32),
        )
        onnx.save(model, str(out_path))
    elif precision == "int8":
        logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process is printed on the root logger
        # reduce_range: 7-bit weights. x86-64 CPUs without VNNI (AVX2 only: AMD EPYC before Zen 4, older
        # Intel) multiply uint8 activations by int8 weights with VPMADDUBSW, whose int16 pair sums saturate
        # with 8-bit weights: logits there moved by 0.1 where VNNI machines moved by 0.005. With 7-bit
        # weights nothing saturates, so every x86-64 computes the same integers (tests/test_int8.py).
        quantize_dynamic(fp32_path, out_path, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                         per_channel=True, reduce_range=True)
    else:
        shutil.copyfile(fp32_path, out_path)


def parity_inputs(settings: ExportSettings, speech: list[tuple[str, np.ndarray]]) -> list[tuple[str, list[np.ndarray]]]:
    """Named batches: random noise at several lengths alone and padded together, and speech."""
    rng = np.random.default_rng(settings.seed)
    noise = [(rng.standard_normal(int(s * SAMPLE_RATE)) * 0.1).astype(np.float32) for s in settings.check_lengths_s]
    cases = [(f"noise {len(x) / SAMPLE_RATE:.2f}s", [x]) for x in noise]
    cases.append((f"noise batch of {len(noise)} (padded)", noise))
    cases += [(f"speech {name}", [audio]) for name, audio in speech]
    if len(speech) > 0:
        cases.append(("speech+noise batch (padded)", [speech[0][1], noise[0]]))
    return cases


def torch_logits(model, audios: list[np.ndarray], do_normalize: bool, geometry: FrameGeometry) -> list[np.ndarray]:
    import torch

    prepared = [normalize(a) if do_normalize else a.astype(np.float32) for a in audios]
    batch, mask = pad_batch(prepared)
    with torch.no_grad():
        logits = model(input_values=torch.from_numpy(batch), attention_mask=torch.from_numpy(mask)).logits.numpy()
    return [logits[row, : geometry.n_frames(len(a))] for row, a in enumerate(audios)]


def transcript(logits: np.ndarray, vocab: Vocabulary) -> str:
    return words_text(greedy_words(logits, vocab, frame_s=1.0))


def check_parity(model, onnx_model: OnnxModel, cases, do_normalize: bool) -> list[ParityCase]:
    results = []
    for name, audios in cases:
        expected = torch_logits(model, audios, do_normalize, onnx_model.geometry)
        actual = onnx_model.logits(audios)
        diff = max(float(np.abs(e - a).max()) for e, a in zip(expected, actual))
        agreement = 1.0 - cer([transcript(e, onnx_model.vocab) for e in expected],
                              [transcript(a, onnx_model.vocab) for a in actual])
        results.append(ParityCase(name, len(audios), diff, max(0.0, agreement)))
    return results


def parity_table(results: list[ParityCase], precision: str) -> str:
    lines = [f"parity of ONNX ({precision}) against PyTorch fp32:",
             f"  {'input':<34} {'batch':>5} {'max |logit diff|':>17} {'transcript agreement':>21}"]
    for r in results:
        lines.append(f"  {r.name:<34} {r.batch_size:>5} {r.max_abs_diff:>17.2e} {r.transcript_agreement:>21.2%}")
    return "\n".join(lines)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_manifest(checkpoint: Checkpoint, vocab: Vocabulary, features: FeatureSettings, geometry: FrameGeometry,
                   settings: ExportSettings, model_path: Path, parity: list[ParityCase]) -> dict:
    return {
        "format": "streamer-onnx/1",
        "source": checkpoint.source,
        "source_path": str(checkpoint.path),  # absolute: the checkpoint's own files (its language_model/) from anywhere
        "revision": checkpoint.revision,
        **geometry.to_json(),
        "do_normalize": features.do_normalize,
        "opset": settings.opset,
        "precision": settings.precision,
        "blank_token": vocab.tokens[vocab.blank_id],
        "special_tokens": list(vocab.special_tokens),
        "vocab_size": len(vocab),
        "inputs": {"input_values": "float32 [batch, samples]", "attention_mask": "int64 [batch, samples]"},
        "outputs": {"logits": "float32 [batch, frames, vocab]"},
        "model_sha256": sha256(model_path),
        "parity": [r.to_json() for r in parity],
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "streamer_version": __version__,
    }


def check_out_dir(out_dir: Path) -> None:
    """An earlier export may be replaced; any other existing file or dir is the user's and is kept."""
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / MANIFEST).exists())):
        raise StreamerError(f"{out_dir} exists and is not an export dir: choose a new or empty --out")


LM_COPY_LIMIT_BYTES = 256 * 2**20  # a language model larger than this stays where it is, referred to


def bring_language_model(folder: Path, stage: Path, log: Callable[[str], None]) -> dict:
    """A checkpoint's language_model/ goes with the export: copied when small, else referred to by path (a
    multi-GB KenLM binary is not copied blindly). Manifest entries to add."""
    if not folder.is_dir():
        return {}
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    if size <= LM_COPY_LIMIT_BYTES:
        shutil.copytree(folder, stage / "language_model")
        return {"language_model": "language_model", "language_model_bytes": size}
    log(f"referring to the language model in {folder} ({size / 2**30:.1f} GB) instead of copying it")
    return {"language_model": str(folder.resolve()), "language_model_bytes": size}


def default_speech() -> list[tuple[str, np.ndarray]]:
    """Speech for the parity check that ships with the package (espeak-ng Bokmål, 4.5 s)."""


    return [("parity_nb.wav", read_wav(files("streamer") / "data" / "parity_nb.wav"))]


def export_checkpoint(checkpoint: Checkpoint, out_dir: Path, settings: ExportSettings = ExportSettings(),
                      speech: list[tuple[str, np.ndarray]] | None = None,
                      log: Callable[[str], None] = lambda _: None) -> dict:
    """Export, check against PyTorch, and only then move the model dir into place. Returns the manifest."""
    speech = default_speech() if speech is None else speech
    out_dir = Path(out_dir)
    check_dir_target(out_dir, "--out")
    check_out_dir(out_dir)
    config = check_ctc_config(checkpoint)
    vocab = load_vocabulary(checkpoint, config)
    features = load_feature_settings(checkpoint)
    geometry = FrameGeometry(tuple(config.get("conv_kernel", FrameGeometry.conv_kernel)),
                             tuple(config.get("conv_stride", FrameGeometry.conv_stride)), features.sample_rate)
    torch_model = load_torch_model(checkpoint)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.") as tmp:
        tmp = Path(tmp)
        log(f"exporting {checkpoint.source} to ONNX (opset {settings.opset})")
        export_onnx(torch_model, tmp / "fp32.onnx", settings.opset)
        stage = tmp / "model"
        stage.mkdir()
        if settings.precision != "fp32":
            log(f"converting to {settings.precision}")
        convert_precision(tmp / "fp32.onnx", stage / MODEL_FILE, settings.precision)
        (stage / "vocab.json").write_text(json.dumps(vocab.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
        draft = {**geometry.to_json(), "do_normalize": features.do_normalize, "blank_token": vocab.tokens[vocab.blank_id],
                 "special_tokens": list(vocab.special_tokens)}
        (stage / MANIFEST).write_text(json.dumps(draft), encoding="utf-8")
        log("checking ONNX Runtime against PyTorch")
        onnx_model = OnnxModel(stage, RunnerSettings(device="cpu"))
        results = check_parity(torch_model, onnx_model, parity_inputs(settings, list(speech)), features.do_normalize)
        del onnx_model
        log(parity_table(results, settings.precision))
        failed = [r for r in results if r.max_abs_diff > settings.fp32_max_abs_diff or not r.transcripts_equal]
        if settings.precision == "fp32" and failed:
            raise StreamerError(
                f"ONNX export does not match PyTorch ({failed[0].name}: max |diff| {failed[0].max_abs_diff:.2e}, "
                f"allowed {settings.fp32_max_abs_diff:g}; transcript agreement {failed[0].transcript_agreement:.2%}, "
                "required 100%); nothing written"
            )
        manifest = build_manifest(checkpoint, vocab, features, geometry, settings, stage / MODEL_FILE, results)
        manifest |= bring_language_model(checkpoint.path / "language_model", stage, log)
        (stage / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
        check_out_dir(out_dir)
        replace_dir(stage, out_dir)
    return manifest
