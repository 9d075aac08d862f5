"""Options and helpers shared by every command of the CLI: the model and backend, streaming windows,
decoding and the written form, signals."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path

from .. import DEFAULT_MODEL
from ..backends.backend import BackendOptions
from ..core.stream import StreamSettings, with_flat_settings
from ..core.vad import VadSettings
from ..core.windower import WindowSettings
from ..errors import StreamerError
from ..export.loader import create_backend
from ..text.decoder import DECODERS, DEFAULT_WEIGHTS, DecoderSettings, read_hotwords
from ..text.lexicon import read_forms_file
from ..text.written import TextSettings

def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def add_runner_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="exported model dir, local Hugging Face checkpoint dir, or hub id "
                             f"(exported once into the cache, ~/.cache/streamer or $STREAMER_CACHE). Default: {DEFAULT_MODEL}")
    parser.add_argument("--backend", default="onnx", metavar="NAME",
                        help="what runs the model: onnx (ONNX Runtime in this process, the default), triton (NVIDIA "
                             "Triton Inference Server at --triton-url; --model is then the model folder of a repository "
                             "written by 'streamer export --triton-repo') or a plugin given "
                             "as package.module:factory, a function that takes a "
                             "streamer.backends.backend.BackendOptions and returns a Backend (see the README)")
    parser.add_argument("--triton-url", metavar="HOST:PORT",
                        help="with --backend triton: the server's gRPC endpoint (default 127.0.0.1:8001)")
    parser.add_argument("--triton-timeout-s", type=float, default=10.0, metavar="S",
                        help="with --backend triton: the most one model call may take, waiting for a lost server "
                             "included; then the call fails, is retried, and its streams end with an error (default 10)")
    parser.add_argument("--compute", choices=("auto", "cpu", "cuda", "tensorrt"), default="auto",
                        help="where ONNX Runtime runs the model; auto takes CUDA when onnxruntime-gpu sees a GPU, "
                             "else the CPU; tensorrt: TensorRT's provider where its libraries are installed, then "
                             "CUDA (engines are built once per shape and cached beside the model) (default: auto)")
    parser.add_argument("--threads", type=int, default=0, metavar="N",
                        help="ONNX Runtime intra-op threads, 0 for its default (one per core)")
    parser.add_argument("--precision", choices=("auto", "fp32", "fp16", "int8"), default="auto",
                        help="precision when a checkpoint or hub id is exported on first use; auto: fp16 on a GPU, "
                             "int8 on a CPU (about 2× faster, see benchmarks/RESULTS.md). An exported dir runs as it is")


def add_decoder_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "decoding", "greedy, or an incremental beam search with a KenLM language model and hotwords, at greedy's "
                    "lag (pip install 'streamer[lm]': flashlight-text)")
    group.add_argument("--decoder", choices=DECODERS, default="auto",
                       help="auto (default): beam search when the model ships a language_model/ or --lm is given, "
                            "greedy otherwise; greedy; or beam (an error without a language model)")
    group.add_argument("--lm", metavar="PATH", help="a language_model folder (attrs.json, unigrams.txt, a KenLM "
                                                   ".bin/.arpa) or a KenLM file (its 1-grams are the lexicon)")
    weights = DEFAULT_WEIGHTS
    group.add_argument("--alpha", type=float,
                       help=f"language model weight (default: the LM's attrs.json, else {weights['alpha']})")
    group.add_argument("--beta", type=float,
                       help=f"word insertion bonus (default: the LM's attrs.json, else {weights['beta']})")
    group.add_argument("--unk-score-offset", type=float, metavar="LOG10",
                       help="score of a word outside the LM's vocabulary, spelled as the model hears it (default: "
                            f"the LM's attrs.json, else {weights['unk_score_offset']})")
    beam_width = DecoderSettings().beam_width
    group.add_argument("--beam-width", type=int, default=beam_width,
                       help=f"beams kept (default {beam_width}; CPU grows with it, see benchmarks/RESULTS.md)")
    group.add_argument("--hotwords", type=Path, metavar="FILE",
                       help="phrases to favour, one a line, each optionally followed by its weight (default 10)")


def add_text_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "written form", "captions as Norwegian is written: numbers as digits (68, 3,5 %, kl. 14.30, 1. januar 2025, "
                        "§ 12), names with capitals, commas, question marks and full stops from a punctuation model of "
                        "our own; the model's own words stay in each event's \"raw\"")
    group.add_argument("--raw", action="store_true",
                       help="write the model's own words (lowercase, numbers spelled out) instead")
    group.add_argument("--names", type=Path, metavar="FILE",
                       help="names to capitalize, one a line as written (\"Bjørdal\", \"Miljøpartiet De Grønne\"), on "
                            "top of the built-in parliament list; --hotwords phrases with capitals count too")
    look_ahead = TextSettings().look_ahead_words
    group.add_argument("--no-punctuation", action="store_true",
                       help="no commas or question marks: a full stop only where a caption ends a sentence")
    group.add_argument("--punctuation-look-ahead", type=int, default=look_ahead, metavar="WORDS",
                       help=f"a mark is shown once this many words after it are stable (default {look_ahead}: the "
                            "next word, no lag; more words are more accurate and later; 0 to 5)")


def text_settings(args: argparse.Namespace):

    if args.raw and args.names:
        raise StreamerError("--names is for the written form: leave out --raw")
    if args.raw and args.no_punctuation:
        raise StreamerError("--raw has no punctuation anyway: leave out --no-punctuation")
    return TextSettings(written=not args.raw, names=tuple(read_forms_file(args.names) if args.names else []),
                        punctuation=not args.no_punctuation, look_ahead_words=args.punctuation_look_ahead)


def decoder_settings(args: argparse.Namespace):

    if args.decoder == "greedy" and (args.lm or args.hotwords):
        raise StreamerError("--lm and --hotwords are for beam search: leave out --decoder greedy")
    hotwords = read_hotwords(args.hotwords) if args.hotwords else ()
    return DecoderSettings(kind=args.decoder, lm=args.lm, alpha=args.alpha, beta=args.beta,
                           unk_score_offset=args.unk_score_offset, beam_width=args.beam_width, hotwords=hotwords)


def add_stream_options(parser: argparse.ArgumentParser) -> None:


    w, c, d = WindowSettings(), StreamSettings().commit, StreamSettings()
    add_decoder_options(parser)
    add_text_options(parser)
    vad = VadSettings()
    parser.add_argument("--vad-aggressiveness", type=int, choices=range(4), default=vad.aggressiveness, metavar="0-3",
                        help=f"webrtcvad aggressiveness, 0 keeps the most audio (default: {vad.aggressiveness})")
    parser.add_argument("--no-vad", action="store_true", help="always-on audio: treat everything as speech")
    group = parser.add_argument_group(
        "streaming windows", "in speech a commit runs every --commit-hop-ms with left and right context: its "
                             "words are stable (never revised) and its right context is the partial's tail; stable "
                             "text trails the speech by about the right context plus half a hop plus compute, and "
                             "the model sees (left + hop + right) / hop times the audio (benchmarks/RESULTS.md)")
    group.add_argument("--commit-hop-ms", type=int, default=c.hop_ms,
                       help=f"a commit and a partial per this much speech (default {c.hop_ms})")
    group.add_argument("--commit-left-ms", type=int, default=c.left_ms,
                       help=f"context before the committed audio (default {c.left_ms})")
    group.add_argument("--commit-right-ms", type=int, default=c.right_ms,
                       help="context after it: more is more accurate, less keeps stable text closer to the speech "
                            f"(default {c.right_ms})")
    group.add_argument("--word-end-prob", type=float, default=c.word_end_prob, metavar="P",
                       help="a commit cuts only at a word end whose delimiter is at least this probable: lower "
                            "cuts sooner and splits more words that offline reads whole, 0 cuts at any word end "
                            f"(default {c.word_end_prob:g})")
    group.add_argument("--first-pass", action="store_true",
                       help="partials from a first pass of their own (--left-ms, --hop-ms, --right-ms): sooner "
                            "partials for more compute")
    group.add_argument("--left-ms", type=int, default=w.left_ms, help=f"first pass left context (default {w.left_ms})")
    group.add_argument("--hop-ms", type=int, default=w.hop_ms, help=f"first pass hop (default {w.hop_ms})")
    group.add_argument("--right-ms", type=int, default=w.right_ms, help=f"first pass right context (default {w.right_ms})")
    group.add_argument("--pause-ms", type=int, default=c.pause_ms,
                       help=f"a pause this long commits the speech before it and ends the caption (default {c.pause_ms})")
    group.add_argument("--max-caption-s", type=float, default=d.max_caption_s,
                       help="in speech without pauses a caption ends at the first word boundary after this long "
                            f"(default {d.max_caption_s:g})")


def load_runner(args: argparse.Namespace, max_batch: int | None = None):
    """The backend --backend names, for --model and the runner's options."""

    if args.triton_url and args.backend == "onnx":
        raise StreamerError("--triton-url is for --backend triton")
    return create_backend(args.backend, BackendOptions(model=args.model, device=args.compute, threads=args.threads,
                                                       precision=args.precision, max_batch=max_batch, log=log,
                                                       url=args.triton_url, timeout_s=args.triton_timeout_s))


def with_vad_options(settings, args: argparse.Namespace):
    """Offline settings with the VAD options of the command line applied (stream settings take them through
    with_flat_settings)."""
    return replace(settings, vad=replace(settings.vad, aggressiveness=args.vad_aggressiveness, enabled=not args.no_vad))


def stream_settings(args: argparse.Namespace):
    """The command line's stream options, through the one mapping of flat settings (``with_flat_settings``)."""

    settings = with_flat_settings(
        StreamSettings(), commit_hop_ms=args.commit_hop_ms, commit_left_ms=args.commit_left_ms,
        commit_right_ms=args.commit_right_ms, pause_ms=args.pause_ms, max_caption_s=args.max_caption_s,
        word_end_prob=args.word_end_prob, vad_aggressiveness=args.vad_aggressiveness, vad_enabled=not args.no_vad,
        first_pass=args.first_pass, first_pass_left_ms=args.left_ms, first_pass_hop_ms=args.hop_ms,
        first_pass_right_ms=args.right_ms)
    return replace(settings, decoder=decoder_settings(args), text=text_settings(args))


def stop_on_signals(stop: threading.Event) -> None:
    """From now until the process exits, Ctrl-C or SIGTERM sets stop instead of raising, so the caller ends
    its loop and flushes its last final; a repeat cannot interrupt that (nor the exit), it only says so."""
    def handler(signum, frame):
        if stop.is_set():
            log("finishing the last caption…")
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


def add_max_lag_option(parser: argparse.ArgumentParser, default_s: float) -> None:
    parser.add_argument("--max-lag-s", type=float, default=default_s, metavar="S",
                        help="the most the captions may trail the audio when recognition cannot keep up: partial "
                             "updates are merged and dropped first, then newer audio is skipped (as silence on the "
                             f"audio's clock, and said so) until the captions catch up (default {default_s:g})")
