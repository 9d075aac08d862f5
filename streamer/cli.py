"""The `streamer` command line: export, transcribe."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Iterator

import numpy as np

from . import DEFAULT_MODEL, SAMPLE_RATE, __version__
from .errors import StreamerError

OFFLINE_FORMATS = ("text", "json", "srt", "vtt")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def add_runner_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="exported model dir, local Hugging Face checkpoint dir, or hub id "
                             f"(exported once into the cache, ~/.cache/streamer or $STREAMER_CACHE). Default: {DEFAULT_MODEL}")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="ONNX Runtime device; auto takes CUDA when onnxruntime-gpu sees a GPU (default: auto)")
    parser.add_argument("--threads", type=int, default=0, metavar="N",
                        help="ONNX Runtime intra-op threads, 0 for its default (one per core)")
    parser.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32",
                        help="precision when a checkpoint is exported on first use (default: fp32)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamer",
        description="Real-time Norwegian (Bokmål) speech recognition: wav2vec2 CTC models on ONNX Runtime.",
    )
    parser.add_argument("--version", action="version", version=f"streamer {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    export = commands.add_parser(
        "export", help="export a Hugging Face CTC checkpoint to a checked ONNX model dir",
        description="Export MODEL (hub id or local checkpoint dir) to DIR: model.onnx (dynamic batch and length, "
                    "attention_mask input), vocab.json and manifest.json. The ONNX model is checked against PyTorch on "
                    "noise and speech inputs, alone and padded in batches; an fp32 export that differs (max |logit diff| "
                    "> 1e-3 or another greedy transcript) is refused and nothing is written.")
    export.add_argument("model", metavar="MODEL", help=f"hub id (e.g. {DEFAULT_MODEL}) or local checkpoint dir")
    export.add_argument("--out", required=True, type=Path, metavar="DIR", help="where the model dir is written")
    export.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32",
                        help="fp32 (checked to 1e-3), fp16 (norms and softmax kept fp32) or int8 "
                             "(dynamic quantization of the matrix products); fp16/int8 report their agreement")
    export.add_argument("--revision", help="hub revision (branch, tag or commit)")
    export.add_argument("--check-audio", nargs="*", default=[], metavar="FILE",
                        help="extra speech files for the parity check (any format ffmpeg reads)")

    transcribe = commands.add_parser(
        "transcribe", help="transcribe an audio or video file",
        description="Transcribe any file or URL ffmpeg can read. Speech is split at pauses (webrtcvad); each "
                    "segment runs through the model whole (longer ones in overlapping 30 s chunks).")
    transcribe.add_argument("input", metavar="INPUT", help="audio/video file or URL")
    add_runner_options(transcribe)
    transcribe.add_argument("--format", choices=OFFLINE_FORMATS, default="text",
                            help="text (a line per segment), json ({text, words, duration, segments}), srt or vtt")
    transcribe.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here instead of stdout")
    transcribe.add_argument("--vad-aggressiveness", type=int, choices=range(4), default=2, metavar="0-3",
                            help="webrtcvad aggressiveness, 0 keeps the most audio (default: 2)")
    transcribe.add_argument("--no-vad", action="store_true", help="treat all audio as speech")
    transcribe.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return parser


def cmd_export(args: argparse.Namespace) -> int:
    from .audio import read_audio, to_float32
    from .checkpoint import resolve_checkpoint
    from .export import ExportSettings, default_speech, export_checkpoint

    speech = default_speech() + [(Path(f).name, to_float32(read_audio(f))) for f in args.check_audio]
    checkpoint = resolve_checkpoint(args.model, args.revision)
    manifest = export_checkpoint(checkpoint, args.out, ExportSettings(precision=args.precision), speech, log=log)
    log(f"wrote {args.out} ({manifest['precision']}, sha256 {manifest['model_sha256'][:12]}…)")
    return 0


def load_runner(args: argparse.Namespace):
    from .loader import load_model
    from .runner import RunnerSettings

    return load_model(args.model, RunnerSettings(device=args.device, intra_op_threads=args.threads),
                      args.precision, log=log)


def with_progress(blocks: Iterator[np.ndarray], source: str, enabled: bool) -> Iterator[np.ndarray]:
    if not enabled or not sys.stderr.isatty():
        yield from blocks
        return
    from tqdm import tqdm

    from .audio import probe_duration_s

    with tqdm(total=probe_duration_s(source), unit="s", unit_scale=False, file=sys.stderr,
              bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} s audio [{elapsed}<{remaining}]", leave=False) as bar:
        for block in blocks:
            bar.update(len(block) / SAMPLE_RATE)
            yield block


class Counter:
    """Counts the samples that flow through, for the duration of the input."""

    def __init__(self, blocks: Iterator[np.ndarray]):
        self.blocks, self.samples = blocks, 0

    def __iter__(self):
        for block in self.blocks:
            self.samples += len(block)
            yield block


def render(segments: list, fmt: str, duration_s: float) -> str:
    from .captions import make_cues, to_srt, to_vtt

    if fmt == "json":
        words = [w.to_json() for s in segments for w in s.words]
        return json.dumps({
            "text": " ".join(s.text for s in segments), "words": words, "duration": round(duration_s, 3),
            "segments": [{"start": round(s.start_s, 3), "end": round(s.end_s, 3), "text": s.text} for s in segments],
        }, ensure_ascii=False, indent=1) + "\n"
    cues = make_cues([list(s.words) for s in segments])
    return to_srt(cues) if fmt == "srt" else to_vtt(cues)


def cmd_transcribe(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .audio import check_input, ffmpeg_blocks
    from .offline import OfflineSettings, transcribe_blocks

    check_input(args.input)
    model = load_runner(args)
    settings = OfflineSettings()
    settings = replace(settings, vad=replace(settings.vad, aggressiveness=args.vad_aggressiveness,
                                             enabled=not args.no_vad))
    blocks = Counter(ffmpeg_blocks(args.input))
    segments = []
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        for segment in transcribe_blocks(with_progress(iter(blocks), args.input, not args.no_progress), model, settings):
            segments.append(segment)
            if args.format == "text":
                out.write(segment.text + "\n")
                out.flush()
        if args.format != "text":
            out.write(render(segments, args.format, blocks.samples / SAMPLE_RATE))
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


COMMANDS = {"export": cmd_export, "transcribe": cmd_transcribe}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except StreamerError as exc:
        print(f"streamer: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("streamer: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
