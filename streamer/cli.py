"""The `streamer` command line: export, transcribe."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Iterator

import numpy as np

from . import DEFAULT_MODEL, SAMPLE_RATE, __version__
from .errors import StreamerError

FORMATS = ("text", "json", "jsonl", "srt", "vtt")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def add_runner_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="exported model dir, local Hugging Face checkpoint dir, or hub id "
                             f"(exported once into the cache, ~/.cache/streamer or $STREAMER_CACHE). Default: {DEFAULT_MODEL}")
    parser.add_argument("--compute", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where ONNX Runtime runs the model; auto takes CUDA when onnxruntime-gpu sees a GPU, "
                             "else the CPU (default: auto)")
    parser.add_argument("--threads", type=int, default=0, metavar="N",
                        help="ONNX Runtime intra-op threads, 0 for its default (one per core)")
    parser.add_argument("--precision", choices=("auto", "fp32", "fp16", "int8"), default="auto",
                        help="precision when a checkpoint or hub id is exported on first use; auto: fp32 on a GPU, "
                             "int8 on a CPU (about 2× faster, see benchmarks/RESULTS.md). An exported dir runs as it is")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamer",
        description="Real-time Norwegian (Bokmål) speech recognition: wav2vec2 CTC models on ONNX Runtime.",
    )
    parser.add_argument("--version", action="version", version=f"streamer {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (add_export_parser, add_transcribe_parser, add_mic_parser, add_subtitle_parser, add_serve_parser,
                add_connect_parser):
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
    export.add_argument("--out", required=True, type=Path, metavar="DIR", help="where the model dir is written")
    export.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32",
                        help="fp32 (checked to 1e-3), fp16 (norms and softmax kept fp32) or int8 "
                             "(dynamic quantization of the matrix products); fp16/int8 report their agreement")
    export.add_argument("--revision", help="hub revision (branch, tag or commit)")
    export.add_argument("--check-audio", nargs="*", default=[], metavar="FILE",
                        help="extra speech files for the parity check (any format ffmpeg reads)")


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
    mic.add_argument("--max-lag-s", type=float, default=2.0, metavar="S",
                     help="when recognition falls this far behind the microphone, newer audio is skipped (and "
                          "said so) instead of the lag growing (default 2)")
    add_stream_options(mic)


def add_subtitle_parser(commands) -> None:
    from .captions import CueSettings

    cues = CueSettings()
    subtitle = commands.add_parser(
        "subtitle", help="live subtitles of a stream or file, written as people speak",
        description="Subtitles for a live stream (HLS playlist, RTMP, RTSP, SRT, UDP) or any file or URL ffmpeg "
                    "reads: each final's cues are appended to the files at once. A live input that drops or "
                    "stalls is reconnected with backoff; cue times stay on the stream's own clock, and what was "
                    "missed is a gap, said in the log.")
    subtitle.add_argument("input", metavar="INPUT", help="URL or file")
    add_runner_options(subtitle)
    subtitle.add_argument("--srt", type=Path, metavar="FILE", help="SubRip subtitles")
    subtitle.add_argument("--vtt", type=Path, metavar="FILE", help="WebVTT subtitles")
    subtitle.add_argument("--jsonl", type=Path, metavar="FILE", help="every event (partial, final, gap), a line each")
    subtitle.add_argument("--hls-dir", type=Path, metavar="DIR",
                          help="segmented WebVTT for HLS players: numbered .vtt files and subtitles.m3u8")
    subtitle.add_argument("--hls-segment-s", type=float, default=6.0, help="length of an HLS subtitle segment (default 6)")
    subtitle.add_argument("--overwrite", action="store_true", help="replace output files that exist")
    subtitle.add_argument("--realtime", action="store_true", help="read a file no faster than it plays")
    subtitle.add_argument("--live", action=argparse.BooleanOptionalAction, default=None,
                          help="wait for the input to come back when it ends (default: for rtmp/rtsp/srt/udp and "
                               "HLS playlists without #EXT-X-ENDLIST)")
    subtitle.add_argument("--retry-s", type=float, default=60.0,
                          help="keep reconnecting a dropped input this long before giving up (default 60)")
    subtitle.add_argument("--stall-s", type=float, default=15.0,
                          help="no audio for this long from a live input counts as a drop (default 15)")
    subtitle.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    group = subtitle.add_argument_group("cues", "Norwegian subtitle practice by default")
    group.add_argument("--max-line-chars", type=int, default=cues.max_line_chars, help=f"(default {cues.max_line_chars})")
    group.add_argument("--max-lines", type=int, default=cues.max_lines, help=f"(default {cues.max_lines})")
    group.add_argument("--min-cue-s", type=float, default=cues.min_duration_s, help=f"(default {cues.min_duration_s})")
    group.add_argument("--max-cue-s", type=float, default=cues.max_duration_s, help=f"(default {cues.max_duration_s:g})")
    group.add_argument("--max-cps", type=float, default=cues.max_cps,
                       help=f"characters per second a viewer reads (default {cues.max_cps:g})")
    add_stream_options(subtitle)


def add_serve_parser(commands) -> None:
    serve = commands.add_parser(
        "serve", help="websocket caption server with the browser client at /",
        description="Caption many live streams on one model: websocket clients send a JSON config, then audio "
                    "frames, then {\"type\": \"eof\"}; partial and final events come back. On the same port: / "
                    "(the browser client), /healthz, /readyz, /metrics. SIGTERM ends every stream with its last "
                    "finals, then exits.")
    add_runner_options(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    serve.add_argument("--max-streams", type=int, default=16, help="streams at once; more are refused (default 16)")
    serve.add_argument("--max-frame-bytes", type=int, default=256 * 1024, help="largest websocket message (default 256 KiB)")
    serve.add_argument("--idle-timeout-s", type=float, default=30.0,
                       help="a stream that sends nothing for this long is ended, its finals sent (default 30)")
    serve.add_argument("--max-lag-s", type=float, default=30.0,
                       help="a stream whose audio waits this long for the model (the server is overloaded) gets a "
                            "busy error and is ended, its finals sent (default 30)")
    serve.add_argument("--ping-interval-s", type=float, default=20.0,
                       help="ping clients this often; one that does not answer within as long again (it does not "
                            "read) is dropped (default 20)")
    serve.add_argument("--token", default=os.environ.get("STREAMER_TOKEN"),
                       help="require this token from clients (config \"token\" or ?token=); default $STREAMER_TOKEN")
    serve.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                       help="a web page origin allowed to connect besides the server's own (repeatable; * for any)")
    broadcast = serve.add_argument_group(
        "broadcast", "transcribe one input once and send its captions to any number of viewers (ws://HOST/live, "
                     "the page at /viewer)")
    broadcast.add_argument("--ingest", metavar="URL", help="the input: an HLS playlist, RTMP, RTSP, any URL or file ffmpeg reads")
    broadcast.add_argument("--ingest-realtime", action="store_true", help="read a file input no faster than it plays")
    broadcast.add_argument("--video-url", metavar="URL", help="the viewer page shows this video with the captions")
    broadcast.add_argument("--viewer-queue", type=int, default=256,
                           help="events waiting for a viewer before it is dropped from the broadcast (default 256)")
    serve.add_argument("--max-batch", type=int, default=8, help="windows of several streams per model call (default 8; 1: no batching)")
    serve.add_argument("--batch-wait-ms", type=float, default=10.0, help="how long a call waits for more windows (default 10)")
    serve.add_argument("--batch-int8", action="store_true",
                       help="batch an int8 model's windows too: more throughput, but a window's logits then depend on "
                            "the others in its call (activations are quantized per call)")
    add_stream_options(serve)


def add_connect_parser(commands) -> None:
    connect = commands.add_parser(
        "connect", help="stream a file or the microphone to a caption server",
        description="Send audio to a streamer caption server (ws://host:port/) and print its captions as they come.")
    connect.add_argument("url", metavar="URL", help="the server, e.g. ws://127.0.0.1:8000/")
    connect.add_argument("input", nargs="?", metavar="FILE", help="audio/video file or URL (any format ffmpeg reads)")
    connect.add_argument("--mic", action="store_true", help="stream the microphone instead of a file")
    connect.add_argument("--device", "-d", dest="input_device", metavar="D", help="with --mic: input device")
    connect.add_argument("--realtime", action="store_true", help="send a file no faster than it plays")
    connect.add_argument("--format", choices=("text", "jsonl"), default="text", help="text (live view) or jsonl")
    connect.add_argument("--token", default=os.environ.get("STREAMER_TOKEN"), help="the server's token, if it needs one")


def add_stream_options(parser: argparse.ArgumentParser) -> None:
    from .stream import StreamSettings

    w, c, d = StreamSettings().window, StreamSettings().commit, StreamSettings()
    parser.add_argument("--vad-aggressiveness", type=int, choices=range(4), default=2, metavar="0-3",
                        help="webrtcvad aggressiveness, 0 keeps the most audio (default: 2)")
    parser.add_argument("--no-vad", action="store_true", help="always-on audio: treat everything as speech")
    group = parser.add_argument_group(
        "streaming windows", "a fast first pass makes the partial's changing tail; a second pass with wider context "
                             "commits stable text and finals (see benchmarks/RESULTS.md for the trade-offs)")
    group.add_argument("--left-ms", type=int, default=w.left_ms, help=f"first pass left context (default {w.left_ms})")
    group.add_argument("--hop-ms", type=int, default=w.hop_ms,
                       help=f"first pass hop: a partial per hop of audio (default {w.hop_ms})")
    group.add_argument("--right-ms", type=int, default=w.right_ms, help=f"first pass right context (default {w.right_ms})")
    group.add_argument("--commit-left-ms", type=int, default=c.left_ms,
                       help=f"second pass left context (default {c.left_ms})")
    group.add_argument("--commit-right-ms", type=int, default=c.right_ms,
                       help=f"second pass right context: stable text trails speech by at least this (default {c.right_ms})")
    group.add_argument("--commit-window-ms", type=int, default=c.window_ms,
                       help=f"in speech without pauses a commit runs when this much audio waits (default {c.window_ms})")
    group.add_argument("--pause-ms", type=int, default=c.pause_ms,
                       help=f"a pause this long commits the speech before it and ends the caption (default {c.pause_ms})")
    group.add_argument("--max-caption-s", type=float, default=d.max_caption_s,
                       help="in speech without pauses a caption ends at the first word boundary after this long "
                            f"(default {d.max_caption_s:g})")


def cmd_export(args: argparse.Namespace) -> int:
    from .audio import read_audio
    from .pcm import to_float32
    from .checkpoint import resolve_checkpoint
    from .export import ExportSettings, check_out_dir, default_speech, export_checkpoint
    from .files import check_dir_target

    check_dir_target(args.out, "--out")  # before a download or an export of minutes
    check_out_dir(args.out)
    speech = default_speech() + [(Path(f).name, to_float32(read_audio(f))) for f in args.check_audio]
    checkpoint = resolve_checkpoint(args.model, args.revision)
    manifest = export_checkpoint(checkpoint, args.out, ExportSettings(precision=args.precision), speech, log=log)
    log(f"wrote {args.out} ({manifest['precision']}, sha256 {manifest['model_sha256'][:12]}…)")
    return 0


def load_runner(args: argparse.Namespace):
    from .loader import load_model
    from .runner import RunnerSettings

    return load_model(args.model, RunnerSettings(device=args.compute, intra_op_threads=args.threads),
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


def check_format(args: argparse.Namespace) -> None:
    if args.format == "jsonl" and not args.stream:
        raise StreamerError("--format jsonl gives streaming events: add --stream (offline formats: text, json, srt, vtt)")
    if args.realtime and not args.stream:
        raise StreamerError("--realtime paces the streaming path: add --stream")


def with_vad_options(settings, args: argparse.Namespace):
    """Offline or stream settings with the VAD options of the command line applied."""
    from dataclasses import replace

    return replace(settings, vad=replace(settings.vad, aggressiveness=args.vad_aggressiveness, enabled=not args.no_vad))


def stream_settings(args: argparse.Namespace):
    from dataclasses import replace

    from .stream import StreamSettings
    from .windower import WindowSettings

    settings = with_vad_options(StreamSettings(), args)
    commit = replace(settings.commit, left_ms=args.commit_left_ms, right_ms=args.commit_right_ms,
                     window_ms=args.commit_window_ms, pause_ms=args.pause_ms)
    return replace(settings, window=WindowSettings(args.left_ms, args.hop_ms, args.right_ms), commit=commit,
                   max_caption_s=args.max_caption_s)


def offline_events(blocks, model, args) -> Iterator:
    from .offline import OfflineSettings, transcribe_blocks

    yield from transcribe_blocks(blocks, model, with_vad_options(OfflineSettings(), args))


def streaming_events(blocks, model, args) -> Iterator:
    from .stream import Recognizer

    stream = Recognizer(model, stream_settings(args)).stream()
    for block in blocks:
        yield from stream.accept(block)
    yield from stream.finish()


def cmd_transcribe(args: argparse.Namespace) -> int:
    from .audio import check_input, ffmpeg_blocks
    from .files import check_file_target
    from .output import Counter, write_captions, write_captions_to_file

    check_format(args)
    check_input(args.input)
    if args.output:
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
    from .mic import Microphone, list_devices
    from .output import CaptionSink, TerminalView
    from .stream import Recognizer

    if args.list_devices:
        print(list_devices())
        return 0
    microphone = Microphone(args.input_device, SAMPLE_RATE // 10, args.max_lag_s)  # a missing device fails now
    view = TerminalView(sys.stdout) if args.format == "text" else CaptionSink(args.format, sys.stdout)
    notice = view.notice if isinstance(view, TerminalView) else log
    stream = Recognizer(load_runner(args), stream_settings(args)).stream()
    stop = threading.Event()
    stop_on_signals(stop)
    log("listening (Ctrl-C to stop)")
    gap = lambda s: notice(f"behind real time: skipped {s:.1f} s of audio (see --max-lag-s)")
    for block in microphone.blocks(stop, on_gap=gap):
        for event in stream.accept(block):
            view.event(event)
    for event in stream.finish():  # a second Ctrl-C cannot interrupt this: the last final is kept
        view.event(event)
    for sig in (signal.SIGINT, signal.SIGTERM):  # nor the exit (Python would restore the default handler)
        signal.signal(sig, signal.SIG_IGN)
    return 0


def stop_on_signals(stop: threading.Event) -> None:
    """From now until the process exits, Ctrl-C or SIGTERM sets stop instead of raising, so the caller ends
    its loop and flushes its last final; a repeat cannot interrupt that (nor the exit), it only says so."""
    def handler(signum, frame):
        if stop.is_set():
            log("finishing the last caption…")
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


def cmd_subtitle(args: argparse.Namespace) -> int:
    from .captions import CueSettings
    from .ingest import IngestSettings, LiveSource
    from .stream import Recognizer
    from .subtitles import SubtitleFiles

    cues = CueSettings(args.max_line_chars, args.max_lines, args.min_cue_s, args.max_cue_s, args.max_cps)
    stop = threading.Event()
    progress = Progress(enabled=not args.no_progress and sys.stderr.isatty())
    source = LiveSource(args.input, IngestSettings(args.realtime, args.live, args.retry_s, args.stall_s),
                        log=progress.log, stop=stop)
    files = SubtitleFiles(args.srt, args.vtt, args.jsonl, args.hls_dir, cues, args.hls_segment_s, args.overwrite)
    stream = Recognizer(load_runner(args), stream_settings(args)).stream()
    stop_on_signals(stop)  # Ctrl-C ends the input; the last finals are still written
    gaps = 0
    try:
        for block in source.blocks():
            if files.hls is not None and source.origin_pts_s is not None:
                files.hls.origin_pts_s = source.origin_pts_s
            for event in stream.accept(block):
                files.event(event)
            for gap in source.gaps[gaps:]:
                files.note({"type": "gap", "start": round(gap.start_s, 3), "end": round(gap.end_s, 3),
                            "reason": gap.reason})
            gaps = len(source.gaps)
            progress.show(source.position_s, files.cue_count, source.position_s - files.final_end_s)
        for event in stream.finish():
            files.event(event)
    finally:
        files.close(source.position_s)
        progress.done(f"{files.cue_count} cues from {files.finals} finals, {source.position_s:.1f} s of input")
    return 0


class Progress:
    """One line on a terminal: input time, cues written, how far the captions trail the input."""

    def __init__(self, enabled: bool):
        self.enabled, self._last = enabled, 0.0

    def show(self, input_s: float, cues: int, behind_s: float) -> None:
        import time

        if self.enabled and time.monotonic() - self._last >= 0.5:
            self._last = time.monotonic()
            hours, rest = divmod(int(input_s), 3600)
            sys.stderr.write(f"\r\033[Kinput {hours:d}:{rest // 60:02d}:{rest % 60:02d} · {cues} cues written · "
                             f"captions {max(0.0, behind_s):.1f} s behind the input")
            sys.stderr.flush()

    def log(self, message: str) -> None:
        if self.enabled:
            sys.stderr.write("\r\033[K")
        log(message)

    def done(self, summary: str) -> None:
        self.log(summary)


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from .batcher import BatchSettings
    from .ingest import IngestSettings
    from .server import CaptionServer, ServerSettings

    settings = ServerSettings(args.host, args.port, args.max_streams, args.max_frame_bytes, args.idle_timeout_s,
                              max_lag_s=args.max_lag_s, ping_interval_s=args.ping_interval_s, token=args.token or None,
                              allowed_origins=tuple(args.allow_origin),
                              batch=BatchSettings(args.max_batch, args.batch_wait_ms, args.batch_int8),
                              ingest=args.ingest, ingest_settings=IngestSettings(realtime=args.ingest_realtime),
                              video_url=args.video_url, viewer_queue=args.viewer_queue)
    defaults = stream_settings(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)  # its request lines could carry a ?token=
    server = CaptionServer(lambda: load_runner(args), settings, defaults)
    asyncio.run(server.serve(started=lambda s: log(f"serving on http://{args.host}:{s.port}/ (Ctrl-C or SIGTERM "
                                                    "to stop); loading the model")))
    return 0


def cmd_connect(args: argparse.Namespace) -> int:
    import asyncio

    from .output import CaptionSink, TerminalView

    from streamer.client.connect import BLOCK_SAMPLES, caption, event_from_json

    if bool(args.input) == bool(args.mic):
        raise StreamerError("give a FILE to stream or --mic (one of them)")
    stop = threading.Event()
    if args.mic:
        from .mic import Microphone

        blocks = Microphone(args.input_device, BLOCK_SAMPLES).blocks(stop)
    else:
        from .audio import check_input, ffmpeg_blocks

        check_input(args.input)
        blocks = ffmpeg_blocks(args.input, BLOCK_SAMPLES, realtime=args.realtime)
    view = TerminalView(sys.stdout) if args.format == "text" else None
    sink = CaptionSink("jsonl", sys.stdout) if args.format == "jsonl" else None

    def on_message(message: dict) -> None:
        if message.get("type") == "error":
            log(f"server: {message.get('code')}: {message.get('message')}")
        event = event_from_json(message)
        if event is not None:
            (view or sink).event(event)

    stop_on_signals(stop)  # Ctrl-C ends the audio; the last finals still come
    asyncio.run(caption(args.url, blocks, on_message, args.token, stop=stop))
    return 0


COMMANDS = {"export": cmd_export, "transcribe": cmd_transcribe, "mic": cmd_mic, "subtitle": cmd_subtitle,
            "serve": cmd_serve, "connect": cmd_connect}


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
