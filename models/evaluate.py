"""Word and character error rates of any model, greedy decoding, through streamer's offline path.

Either a folder of audio files with a same-named .txt reference beside each (any format ffmpeg
reads), or sentences synthesized with espeak-ng: by default the held-out set (Django's nb
catalogs, a text source the small model never trained on), or any text file with --text.
References and hypotheses are normalized the same way (lowercase, letters only).

    python models/evaluate.py --model models/tiny-nb                   # all held-out sentences, voice nb
    python models/evaluate.py --model models/tiny-nb --voice nb+m3 --speed-wpm 140
    python models/evaluate.py --model models/tiny-nb --text sentences.txt   # one sentence per line
    python models/evaluate.py --model NbAiLab/XLSR-300M-bokmaal --data my-clips/ --vad --json out.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import unicodedata
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

AUDIO_SUFFIXES = {".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".mp4", ".webm"}


def normalize_text(text: str) -> str:
    """Lowercase words of letters; punctuation and other symbols become spaces."""
    text = unicodedata.normalize("NFC", text).lower()
    return " ".join(re.sub(r"[^\wæøå]+|[\d_]+", " ", text).split())


def folder_items(folder: Path) -> list[tuple[str, np.ndarray, str]]:
    from streamer.sources.ffmpeg import read_audio
    from streamer.errors import StreamerError

    if not folder.is_dir():
        raise StreamerError(f"{folder} is not a directory: --data takes a folder of audio files and .txt references")
    items = []
    for audio_path in sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES):
        reference = audio_path.with_suffix(".txt")
        if not reference.exists():
            print(f"skipping {audio_path.name}: no {reference.name}", file=sys.stderr)
            continue
        items.append((audio_path.name, read_audio(str(audio_path)), reference.read_text(encoding="utf-8")))
    if not items:
        raise StreamerError(f"{folder} has no audio file with a same-named .txt reference")
    return items


def text_file_sentences(path: Path) -> list[tuple[str, str]]:
    """(spoken, label) pairs of a file with one sentence per line; numbers are spelled out."""
    from models.synth import spoken_and_label
    from streamer.errors import StreamerError

    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise StreamerError(f"cannot read --text {path}: {exc}; it must be a UTF-8 file, one sentence per line") from exc
    pairs = [spoken_and_label(line) for line in lines if line]
    skipped = sum(p is None for p in pairs)
    if skipped:
        print(f"skipping {skipped} line(s) with digits or letters outside a-z, æ, ø, å", file=sys.stderr)
    usable = [p for p in pairs if p is not None]
    if not usable:
        raise StreamerError(f"--text {path} has no usable sentence")
    return usable


def synthesized_items(sentences: list[tuple[str, str]], voice: str, speed_wpm: int,
                      pitch: int) -> list[tuple[str, np.ndarray, str]]:
    from models.synth import Voice, synthesize

    chosen = Voice(voice, speed_wpm, pitch)
    return [(f"sentence-{i}", synthesize(spoken, chosen), label) for i, (spoken, label) in enumerate(sentences)]


def transcribe(audio: np.ndarray, recognizer) -> str:
    """The offline path's text of audio (a recognizer made by offline_recognizer)."""
    from streamer.driver.offline import finals

    stream = recognizer.stream()
    return " ".join(f.raw for f in finals(stream.accept(audio) + stream.finish()))


def offline_recognizer(model, use_vad: bool, decoder):
    """The offline path as streamer.driver.offline runs it, with one decoder (its language model loaded once)."""
    from dataclasses import replace

    from streamer.driver.offline import OfflineSettings
    from streamer.driver.captioner import Captioner

    settings = OfflineSettings(decoder=decoder)
    return Captioner(model, replace(settings, vad=replace(settings.vad, enabled=use_vad)).stream_settings())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "models" / "tiny-nb"),
                        help="exported dir, Hugging Face checkpoint dir or hub id (default: models/tiny-nb)")
    parser.add_argument("--data", type=Path, help="folder of audio files + same-named .txt references")
    parser.add_argument("--text", type=Path, help="UTF-8 file, one sentence per line, to synthesize and score "
                                                  "(default: the held-out sentences)")
    parser.add_argument("--sentences", type=int, default=0,
                        help="score only the first N sentences (default: all)")
    parser.add_argument("--voice", default="nb", help="espeak-ng voice for synthesized sentences (default nb)")
    parser.add_argument("--speed-wpm", type=int, default=175, help="espeak-ng speed (default 175, its own)")
    parser.add_argument("--pitch", type=int, default=50, help="espeak-ng pitch 0–99 (default 50)")
    parser.add_argument("--precision", choices=("fp32", "fp16", "int8", "auto"), default="fp32",
                        help="weights of the ONNX export of a checkpoint (default fp32; the CLI's auto "
                             "means int8 on a CPU)")
    parser.add_argument("--vad", action="store_true", help="split at pauses with the VAD (the product's offline "
                                                           "path); default: each file in one pass")
    parser.add_argument("--decoder", choices=("greedy", "beam"), default="greedy",
                        help="greedy, or beam search with the model's language model or --lm (default greedy)")
    parser.add_argument("--lm", help="a language_model folder or a KenLM file for --decoder beam")
    parser.add_argument("--alpha", type=float, help="language model weight (default: the LM's attrs.json)")
    parser.add_argument("--beta", type=float, help="word insertion bonus (default: the LM's attrs.json)")
    parser.add_argument("--beam-width", type=int, default=32)
    parser.add_argument("--show", type=int, default=5, help="print this many errors")
    parser.add_argument("--json", type=Path, help="write per-item results and totals here")
    args = parser.parse_args()

    from streamer.errors import StreamerError
    from streamer.export.loader import load_model
    from streamer.text.scoring import cer, wer

    from streamer.text.decoder import DecoderSettings

    try:
        model = load_model(args.model, precision=args.precision, log=lambda m: print(m, file=sys.stderr))
        decoder = DecoderSettings(args.decoder, args.lm, args.alpha, args.beta, args.beam_width)
        recognizer = offline_recognizer(model, args.vad, decoder)
        if args.data:
            items = folder_items(args.data)
        else:
            from models.synth import heldout_sentences

            sentences = text_file_sentences(args.text) if args.text else heldout_sentences()
            items = synthesized_items(sentences[: args.sentences or None], args.voice, args.speed_wpm, args.pitch)
    except StreamerError as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 2
    rows = []
    for n, (name, audio, reference) in enumerate(items, start=1):
        rows.append({"item": name, "reference": normalize_text(reference),
                     "hypothesis": normalize_text(transcribe(audio, recognizer))})
        if sys.stderr.isatty():
            print(f"\r{n}/{len(items)}", end="", file=sys.stderr)
    refs, hyps = [r["reference"] for r in rows], [r["hypothesis"] for r in rows]
    totals = {"items": len(rows), "words": sum(len(r.split()) for r in refs), "wer": wer(refs, hyps),
              "cer": cer(refs, hyps), "model": args.model, "precision": args.precision, "decoder": args.decoder,
              "data": str(args.data) if args.data else f"{args.text or 'held-out sentences'}, voice {args.voice}, "
                                                        f"{args.speed_wpm} wpm, pitch {args.pitch}"}
    for row in [r for r in rows if r["reference"] != r["hypothesis"]][: args.show]:
        print(f"REF: {row['reference']}\nHYP: {row['hypothesis']}\n")
    print(f"{totals['data']}: {totals['items']} items, {totals['words']} words")
    beam = recognizer.recognizer.decoder
    how = args.decoder if beam is None else (
        f"beam {args.beam_width}, {beam.lm_path.name}, alpha {beam.alpha:g}, beta {beam.beta:g}")
    print(f"WER {totals['wer']:.4f}  CER {totals['cer']:.4f}  ({how}, offline)")
    if args.json:
        args.json.write_text(json.dumps({"totals": totals, "items": rows}, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
