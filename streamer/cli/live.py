"""The live commands of `streamer`: subtitle (a stream into growing subtitle files), serve (the caption
server, and broadcast mode) and connect (a client of it)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading
import time
from pathlib import Path

from .options import (add_max_lag_option, add_runner_options, add_stream_options, load_runner, log, stop_on_signals,
                      stream_settings)
from ..errors import StreamerError
from ..captions.cues import CueSettings
from ..captions.output import CaptionSink, TerminalView
from ..captions.subtitles import HLS_SEGMENT_S, SubtitleFiles
from ..driver.batcher import BatchSettings
from ..driver.captioner import Captioner, until_error
from ..files import check_not_input
from ..serve.server import CaptionServer, ServerSettings
from ..sources.ffmpeg import check_input, ffmpeg_blocks
from ..sources.handoff import read_ahead
from ..sources.live import IngestSettings, LiveSource
from ..sources.mic import Microphone
from ..client.connect import BLOCK_SAMPLES, caption, event_from_json


SUBTITLE_MAX_LAG_S = 10.0  # the subtitle command's --max-lag-s (BatchSettings has none: offline never skips)


def add_subtitle_parser(commands) -> None:
    cues, ingest = CueSettings(), IngestSettings()
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
    subtitle.add_argument("--jsonl", type=Path, metavar="FILE", help="every event (partial, final, cue when a cue is written, gap), a line each")
    subtitle.add_argument("--hls-dir", type=Path, metavar="DIR",
                          help="segmented WebVTT for HLS players: numbered .vtt files and subtitles.m3u8")
    subtitle.add_argument("--hls-segment-s", type=float, default=HLS_SEGMENT_S,
                          help=f"length of an HLS subtitle segment (default {HLS_SEGMENT_S:g})")
    subtitle.add_argument("--overwrite", action="store_true", help="replace output files that exist")
    subtitle.add_argument("--realtime", action="store_true", help="read a file no faster than it plays")
    subtitle.add_argument("--live", action=argparse.BooleanOptionalAction, default=None,
                          help="wait for the input to come back when it ends (default: for rtmp/rtsp/srt/udp and "
                               "HLS playlists without #EXT-X-ENDLIST)")
    subtitle.add_argument("--retry-s", type=float, default=ingest.retry_s,
                          help=f"keep reconnecting a dropped input this long before giving up (default {ingest.retry_s:g})")
    subtitle.add_argument("--stall-s", type=float, default=ingest.stall_s,
                          help=f"no audio for this long from a live input counts as a drop (default {ingest.stall_s:g})")
    add_max_lag_option(subtitle, SUBTITLE_MAX_LAG_S)
    subtitle.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    group = subtitle.add_argument_group("cues", "Norwegian subtitle practice by default")
    group.add_argument("--max-line-chars", type=int, default=cues.max_line_chars, help=f"(default {cues.max_line_chars})")
    group.add_argument("--max-lines", type=int, default=cues.max_lines, help=f"(default {cues.max_lines})")
    group.add_argument("--min-cue-s", type=float, default=cues.min_duration_s, help=f"(default {cues.min_duration_s})")
    group.add_argument("--max-cue-s", type=float, default=cues.max_duration_s, help=f"(default {cues.max_duration_s:g})")
    group.add_argument("--max-cps", type=float, default=cues.max_cps,
                       help=f"characters per second a viewer reads (default {cues.max_cps:g})")
    group.add_argument("--max-hold-s", type=float, default=cues.max_hold_s,
                       help="a cue is written once its first word has waited this long for more words (speech "
                            f"time): shorter keeps subtitles closer to the speaker, longer fills the lines "
                            f"(default {cues.max_hold_s:g})")
    add_stream_options(subtitle)


def add_serve_parser(commands) -> None:
    serve = commands.add_parser(
        "serve", help="websocket caption server with the browser client at /",
        description="Caption many live streams on one model: websocket clients send a JSON config, then audio "
                    "frames, then {\"type\": \"eof\"}; partial and final events come back. On the same port: / "
                    "(the browser client), /healthz, /readyz, /metrics (unless --metrics-port). SIGTERM ends every "
                    "stream with its last finals, then exits.")
    add_runner_options(serve)
    d = ServerSettings()
    serve.add_argument("--host", default=d.host, help=f"address to listen on (default {d.host}; 0.0.0.0 for all)")
    serve.add_argument("--port", type=int, default=d.port, help=f"port (default {d.port}; 0 picks a free one)")
    serve.add_argument("--max-streams", type=int, default=d.max_streams,
                       help=f"streams at once; more are refused (default {d.max_streams})")
    serve.add_argument("--max-frame-bytes", type=int, default=d.max_frame_bytes,
                       help=f"largest websocket message (default {d.max_frame_bytes // 1024} KiB)")
    serve.add_argument("--idle-timeout-s", type=float, default=d.idle_timeout_s,
                       help=f"a stream that sends nothing for this long is ended, its finals sent (default {d.idle_timeout_s:g})")
    add_max_lag_option(serve, d.batch.max_lag_s)
    serve.add_argument("--ping-interval-s", type=float, default=d.ping_interval_s,
                       help="ping clients this often; one that does not answer within as long again (it does not "
                            f"read) is dropped (default {d.ping_interval_s:g})")
    serve.add_argument("--token", default=os.environ.get("STREAMER_TOKEN"),
                       help="require this token from clients (config \"token\" or ?token=); default $STREAMER_TOKEN")
    serve.add_argument("--public-metrics", action="store_true",
                       help="serve /metrics without the token (by default a server with a token asks for it there "
                            "too, as Authorization: Bearer TOKEN or ?token=)")
    serve.add_argument("--metrics-port", type=int, metavar="PORT",
                       help="serve /metrics (without the token), /healthz and /readyz on this port instead, for a "
                            "scraper on a private network; the main port then has no /metrics (0 picks a free one)")
    serve.add_argument("--metrics-host", metavar="HOST",
                       help="the metrics port's address, with --metrics-port (default 127.0.0.1: this machine only; "
                            "an address on a private network for a scraper elsewhere)")
    serve.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                       help="a web page origin allowed to connect besides the server's own (repeatable; * for any)")
    add_broadcast_and_batch_options(serve, d)
    add_stream_options(serve)


def add_broadcast_and_batch_options(serve: argparse.ArgumentParser, d: ServerSettings) -> None:
    broadcast = serve.add_argument_group(
        "broadcast", "transcribe one input once and send its captions to any number of viewers (ws://HOST/live, "
                     "the page at /viewer)")
    broadcast.add_argument("--ingest", metavar="URL", help="the input: an HLS playlist, RTMP, RTSP, any URL or file ffmpeg reads")
    broadcast.add_argument("--ingest-realtime", action="store_true", help="read a file input no faster than it plays")
    broadcast.add_argument("--video-url", metavar="URL", help="the viewer page shows this video with the captions")
    broadcast.add_argument("--max-viewers", type=int, default=d.max_viewers,
                           help=f"viewers at once; more are refused with a busy error (default {d.max_viewers})")
    broadcast.add_argument("--viewer-queue", type=int, default=d.viewer_queue,
                           help=f"events waiting for a viewer before it is dropped from the broadcast (default {d.viewer_queue})")
    serve.add_argument("--max-batch", type=int, default=None,
                       help="windows of several streams per model call (default: 8 on a CPU, 256 on a GPU; 1: no batching)")
    serve.add_argument("--batch-wait-ms", type=float, default=d.batch.max_wait_ms,
                       help=f"how long a call waits for more windows (default {d.batch.max_wait_ms:g})")
    serve.add_argument("--batch-int8", action="store_true",
                       help="batch an int8 model's windows too: more throughput, but a window's logits then depend on "
                            "the others in its call (activations are quantized per call)")


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


def cmd_subtitle(args: argparse.Namespace) -> int:
    for flag, path in (("--srt", args.srt), ("--vtt", args.vtt), ("--jsonl", args.jsonl)):
        if path is not None:
            check_not_input(path, args.input, flag)
    cues = CueSettings(max_line_chars=args.max_line_chars, max_lines=args.max_lines, min_duration_s=args.min_cue_s,
                       max_duration_s=args.max_cue_s, max_cps=args.max_cps, max_hold_s=args.max_hold_s)
    stop = threading.Event()
    progress = Progress(enabled=not args.no_progress and sys.stderr.isatty())
    ingest = IngestSettings(realtime=args.realtime, live=args.live, retry_s=args.retry_s, stall_s=args.stall_s)
    source = LiveSource(args.input, ingest,
                        log=progress.log, stop=stop)
    files = SubtitleFiles(srt=args.srt, vtt=args.vtt, jsonl=args.jsonl, hls_dir=args.hls_dir, settings=cues,
                          hls_segment_s=args.hls_segment_s, overwrite=args.overwrite)
    captioner = Captioner(load_runner(args), stream_settings(args), batch=BatchSettings(max_lag_s=args.max_lag_s))
    skipped = Skipped(files, progress)
    stream = captioner.stream(on_skip=skipped.gap)
    stop_on_signals(stop)  # Ctrl-C ends the input; the last finals are still written
    gaps, completed = 0, False
    try:
        for block, waited_s in read_ahead(source.blocks(), source.live or args.realtime):
            if files.hls is not None and source.origin_pts_s is not None:
                files.hls.origin_pts_s = source.origin_pts_s
            for gap in source.gaps[gaps:]:
                files.gap(gap.start_s, gap.end_s, gap.reason)
            gaps = len(source.gaps)
            for event in until_error(stream.accept(block, waited_s)):
                files.event(event)
            files.settled(stream.settled_s())
            progress.show(source.position_s, files.cue_count, source.position_s - files.final_end_s)
        for event in until_error(stream.finish()):
            files.event(event)
        completed = True
    finally:
        captioner.close()
        files.close(source.position_s, failed=not completed)
        progress.done(f"{files.cue_count} cues from {files.finals} finals, {source.position_s:.1f} s of input")
    return 0


class Skipped:
    """Audio a live input gave while the captions were more than --max-lag-s behind: a gap, logged."""

    def __init__(self, files, progress: "Progress"):
        self.files, self.progress = files, progress

    def gap(self, skip) -> None:
        """skip: a streamer.driver.overload.Skip, in the stream's time."""
        self.progress.log(f"captions fell behind: skipped {skip.end_s - skip.start_s:.1f} s of audio at "
                          f"{skip.start_s:.1f} s (--max-lag-s)")
        self.files.gap(skip.start_s, skip.end_s, "captions fell behind: audio skipped (--max-lag-s)")


class Progress:
    """One line on a terminal: input time, cues written, how far the captions trail the input."""

    def __init__(self, enabled: bool):
        self.enabled, self._last = enabled, 0.0

    def show(self, input_s: float, cues: int, behind_s: float) -> None:
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
    settings = ServerSettings(host=args.host, port=args.port, max_streams=args.max_streams,
                              max_frame_bytes=args.max_frame_bytes, idle_timeout_s=args.idle_timeout_s,
                              ping_interval_s=args.ping_interval_s, token=args.token or None,
                              allowed_origins=tuple(args.allow_origin), public_metrics=args.public_metrics,
                              metrics_port=args.metrics_port, metrics_host=args.metrics_host,
                              batch=BatchSettings(max_windows=args.max_batch, max_wait_ms=args.batch_wait_ms,
                                                  int8=args.batch_int8, max_lag_s=args.max_lag_s),
                              ingest=args.ingest, ingest_settings=IngestSettings(realtime=args.ingest_realtime),
                              video_url=args.video_url, viewer_queue=args.viewer_queue, max_viewers=args.max_viewers)
    defaults = stream_settings(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)  # its request lines could carry a ?token=
    server = CaptionServer(lambda: load_runner(args, args.max_batch), settings, defaults)
    try:
        asyncio.run(server.serve(started=lambda s: log(f"serving on http://{args.host}:{s.port}/ (Ctrl-C or SIGTERM "
                                                        "to stop); loading the model")))
    except OSError as exc:  # the address: in use, not this machine's, not an address at all
        raise StreamerError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return 0


def cmd_connect(args: argparse.Namespace) -> int:
    if bool(args.input) == bool(args.mic):
        raise StreamerError("give a FILE to stream or --mic (one of them)")
    stop = threading.Event()
    if args.mic:
        blocks = (block for block, _ in Microphone(args.input_device, BLOCK_SAMPLES).blocks(stop))  # the server skips
    else:
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
