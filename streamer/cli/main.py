"""The `streamer` command line: export, transcribe, mic (the live commands are in streamer.cli.live)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterator

import numpy as np

from .. import DEFAULT_MODEL, __version__
from ..captions.output import CaptionSink, Counter, TerminalView, write_captions, write_captions_to_file
from ..core.pcm import to_float32
from ..driver.batcher import BatchSettings
from ..driver.captioner import Captioner, until_error
from ..driver.offline import OfflineSettings, transcribe_blocks
from ..errors import StreamerError
from ..export.checkpoint import resolve_checkpoint
from ..export.onnx_export import ExportSettings, check_out_dir, default_speech, export_checkpoint
from ..files import check_dir_target, check_file_target, check_not_input
from ..model.geometry import SAMPLE_RATE
from ..sources.ffmpeg import check_input, ffmpeg_blocks, probe_duration_s, read_audio
from ..sources.mic import Microphone, list_devices
from . import live as cli_live
from .options import (add_max_lag_option, add_runner_options, add_stream_options, decoder_settings, load_runner, log,
                      stop_on_signals, stream_settings, text_settings, with_vad_options)
from .triton import add_triton_repo_options, triton_repo_settings, write_repo

FORMATS = ("text", "json", "jsonl", "srt", "vtt")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamer",
        description="Real-time Norwegian (Bokmål) speech recognition: wav2vec2 CTC models on ONNX Runtime.",
    )
    parser.add_argument("--version", action="version", version=f"streamer {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for add in (add_export_parser, add_transcribe_parser, add_mic_parser, cli_live.add_subtitle_parser,
                cli_live.add_serve_parser, cli_live.add_connect_parser):
        add(commands)
    return parser


def add_export_parser(commands) -> None:
    export = commands.add_parser(
        "export", help="export a Hugging Face CTC checkpoint to a checked ONNX model dir",
        description="Export MODEL (hub id or local checkpoint dir) to DIR: model.onnx (dynamic batch and length, "
                    "attention_mask input), vocab.json and manifest.json. The ONNX model is checked against PyTorch on "
                    "noise and speech inputs, alone and padded in batches; an fp32 export that differs (max |logit diff| "
                    "> 1e-3 or another greedy transcript) is refused and nothing is written.")
    export.add_argument("model", metavar="MODEL", help=f"hub id (e.g. {DEFAULT_MODEL}) or local checkpoint dir")
    export.add_argument("--out", type=Path, metavar="DIR", help="where the model dir is written")
    export.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32",
                        help="fp32 (checked to 1e-3), fp16 (norms and softmax kept fp32) or int8 "
                             "(dynamic quantization of the matrix products); fp16/int8 report their agreement")
    export.add_argument("--revision", help="hub revision (branch, tag or commit)")
    export.add_argument("--check-audio", nargs="*", default=[], metavar="FILE",
                        help="extra speech files for the parity check (any format ffmpeg reads)")

    add_triton_repo_options(export)


def add_transcribe_parser(commands) -> None:
    transcribe = commands.add_parser(
        "transcribe", help="transcribe an audio or video file",
        description="Transcribe any file or URL ffmpeg can read. Speech is split at pauses (webrtcvad); each "
                    "segment runs through the model whole (longer ones in overlapping 30 s chunks).")
    transcribe.add_argument("input", metavar="INPUT", help="audio/video file or URL")
    add_runner_options(transcribe)
    transcribe.add_argument("--format", choices=FORMATS, default="text",
                            help="text (a line per segment), json ({text, words, duration, segments}), "
                                 "jsonl (every streaming event, with --stream), srt or vtt")
    transcribe.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here instead of stdout")
    transcribe.add_argument("--stream", action="store_true",
                            help="run the streaming path (VAD gate, overlapping windows, partial and final events) "
                                 "instead of the offline reference")
    transcribe.add_argument("--realtime", action="store_true", help="with --stream: pace the input like live audio")
    transcribe.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_stream_options(transcribe)


def add_mic_parser(commands) -> None:
    mic = commands.add_parser(
        "mic", help="live captions from a microphone",
        description="Live captions from a microphone (sounddevice/PortAudio): finals scroll, the partial line "
                    "updates in place. Ctrl-C flushes the last final and exits.")
    add_runner_options(mic)
    mic.add_argument("--device", "-d", dest="input_device", metavar="D",
                     help="input device index or name (see --list-devices); default: the system's default input")
    mic.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    mic.add_argument("--format", choices=("text", "jsonl"), default="text",
                     help="text (live terminal view) or jsonl (every event)")
    add_max_lag_option(mic, 2.0)
    add_stream_options(mic)


def cmd_export(args: argparse.Namespace) -> int:
    repo = triton_repo_settings(args)  # before a download or an export of minutes, as --out
    if args.out is None and repo is None:
        raise StreamerError("give --out DIR (the ONNX model dir), --triton-repo REPO (a Triton model repository), or both")
    if (Path(args.model) / "manifest.json").is_file():  # an export already: only the repository
        if repo is None or args.out is not None:
            raise StreamerError(f"{args.model} is an exported model dir already: give --triton-repo alone to make a "
                                "Triton repository of it")
        write_repo(Path(args.model), args.triton_repo, repo)
        return 0
    if args.out is not None:
        check_dir_target(args.out, "--out")
        check_out_dir(args.out)
    speech = default_speech() + [(Path(f).name, to_float32(read_audio(f))) for f in args.check_audio]
    checkpoint = resolve_checkpoint(args.model, args.revision)
    with tempfile.TemporaryDirectory(prefix="streamer-export-") as tmp:
        out = args.out or Path(tmp) / "model"
        manifest = export_checkpoint(checkpoint, out, ExportSettings(precision=args.precision), speech, log=log)
        log(f"wrote {out if args.out else 'the model'} ({manifest['precision']}, sha256 {manifest['model_sha256'][:12]}…)")
        if repo is not None:
            write_repo(out, args.triton_repo, repo)
    return 0


def with_progress(blocks: Iterator[np.ndarray], source: str, enabled: bool) -> Iterator[np.ndarray]:
    if not enabled or not sys.stderr.isatty():
        yield from blocks
        return
    from tqdm import tqdm


    with tqdm(total=probe_duration_s(source), unit="s", unit_scale=False, file=sys.stderr,
              bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} s audio [{elapsed}<{remaining}]", leave=False) as bar:
        for block in blocks:
            bar.update(len(block) / SAMPLE_RATE)
            yield block


def check_format(args: argparse.Namespace) -> None:
    if args.format == "jsonl" and not args.stream:
        raise StreamerError("--format jsonl gives streaming events: add --stream (offline formats: text, json, srt, vtt)")
    if args.realtime and not args.stream:
        raise StreamerError("--realtime paces the streaming path: add --stream")


def offline_events(blocks, model, args) -> Iterator:
    from dataclasses import replace


    settings = replace(with_vad_options(OfflineSettings(), args), decoder=decoder_settings(args),
                       text=text_settings(args))
    yield from transcribe_blocks(blocks, model, settings)


def streaming_events(blocks, backend, args) -> Iterator:
    with Captioner(backend, stream_settings(args)) as captioner:
        stream = captioner.stream()
        for block in blocks:
            yield from until_error(stream.accept(block))
        yield from until_error(stream.finish())


def cmd_transcribe(args: argparse.Namespace) -> int:
    check_format(args)
    text_settings(args)  # a bad text option fails before the model loads
    check_input(args.input)
    if args.output:
        check_not_input(args.output, args.input, "-o")
        check_file_target(args.output)
    model = load_runner(args)
    block_samples = SAMPLE_RATE // 10 if args.stream else SAMPLE_RATE
    blocks = Counter(ffmpeg_blocks(args.input, block_samples, realtime=args.realtime))
    source = with_progress(iter(blocks), args.input, not (args.no_progress or args.realtime))
    events = (streaming_events if args.stream else offline_events)(source, model, args)
    if args.output is None:
        write_captions(events, sys.stdout, args.format, blocks)
    else:
        write_captions_to_file(events, args.output, args.format, blocks, log)
    return 0


def cmd_mic(args: argparse.Namespace) -> int:
    if args.list_devices:
        print(list_devices())
        return 0
    microphone = Microphone(args.input_device, SAMPLE_RATE // 10)  # a missing device fails now
    view = TerminalView(sys.stdout) if args.format == "text" else CaptionSink(args.format, sys.stdout)
    notice = view.notice if isinstance(view, TerminalView) else log
    captioner = Captioner(load_runner(args), stream_settings(args), batch=BatchSettings(max_lag_s=args.max_lag_s))
    skipped = lambda seconds: notice(f"behind real time: skipped {seconds:.1f} s of audio (see --max-lag-s)")
    stream = captioner.stream(on_skip=lambda skip: skipped(skip.end_s - skip.start_s))
    stop = threading.Event()
    stop_on_signals(stop)
    log("listening (Ctrl-C to stop)")
    for block, waited_s in microphone.blocks(stop, on_gap=skipped):
        for event in until_error(stream.accept(block, waited_s)):
            view.event(event)
    for event in until_error(stream.finish()):  # a second Ctrl-C cannot interrupt this: the last final is kept
        view.event(event)
    captioner.close()
    for sig in (signal.SIGINT, signal.SIGTERM):  # nor the exit (Python would restore the default handler)
        signal.signal(sig, signal.SIG_IGN)
    return 0


def commands() -> dict:
    return {"export": cmd_export, "transcribe": cmd_transcribe, "mic": cmd_mic, "subtitle": cli_live.cmd_subtitle,
            "serve": cli_live.cmd_serve, "connect": cli_live.cmd_connect}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    args = build_parser().parse_args(argv)
    try:
        return commands()[args.command](args)
    except StreamerError as exc:
        print(f"streamer: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("streamer: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # writing an output failed (a full disk, a device that refuses): one line, not a traceback
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"streamer: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
