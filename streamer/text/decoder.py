"""Decoder settings and language model files: greedy decoding (``streamer.text.ctc``) or beam search with a
KenLM n-gram language model and hotwords (``streamer.text.incremental``, flashlight-text's decoder).

The language model is a Hugging Face `language_model/` folder (attrs.json with alpha, beta and
unk_score_offset; unigrams.txt; an .arpa, .arpa.gz or .bin file), as NbAiLab/XLSR-300M-bokmaal ships it,
or a single KenLM file, whose 1-grams are then its word list. alpha, beta and the unknown-word offset mean
what they mean in attrs.json (pyctcdecode's convention: alpha weighs the language model's log10
probabilities in natural-log units, beta is added per word), so a checkpoint's tuned values carry over.

Loading is quiet: KenLM writes a progress bar for every ARPA file it reads (from C++, to file descriptor 2);
it is kept from the terminal, while anything else written meanwhile (a warning, an error) still reaches it.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import StreamerError

DECODERS = ("auto", "greedy", "beam")
LM_FILES = ("*.bin", "*.binary", "*.arpa", "*.arpa.gz")
KENLM_BAR = re.compile(r"-+5-+10-[-0-9]*|\*+")  # the ruler and the stars of KenLM's progress bar
KENLM_HINT = "Loading the LM will be faster if you build a binary file."
DEFAULT_WEIGHTS = {"alpha": 0.5, "beta": 1.5, "unk_score_offset": -10.0}  # attrs.json's keys; a folder's own win


@dataclass(frozen=True)
class DecoderSettings:
    kind: str = "auto"  # auto (beam search when there is a language model, greedy otherwise), greedy or beam
    lm: str | None = None  # a language_model folder or a KenLM file; None: the model's own, if it has one
    alpha: float | None = None  # language model weight (None: attrs.json's, else DEFAULT_WEIGHTS')
    beta: float | None = None  # word insertion bonus (None: attrs.json's, else DEFAULT_WEIGHTS')
    unk_score_offset: float | None = None  # log10 score added for a word outside the lexicon (None: as above)
    beam_width: int = 32  # beams kept (benchmarks/decoder.py: CPU grows with it, accuracy settles by 32)
    beam_threshold: float = 25.0  # beams this far (natural log) below the best are dropped
    agree_margin: float = 5.0  # a word is stable once every beam within this (natural log) of the best holds it
    lookback_frames: int = 25  # a word this many frames old is stable as the best beam has it (0.5 s at 20 ms):
    # the two trade stable lag against accuracy (benchmarks/RESULTS.md, issue 29)
    settle_frames: int = 5  # stable words are taken (and old beams pruned) at every multiple of this many
    # frames of a segment: at the same frames however they were fed, so the words are the same too
    hotwords: tuple[tuple[str, float], ...] = ()  # (phrase, weight)

    def __post_init__(self) -> None:
        if self.kind not in DECODERS:
            raise StreamerError(f"decoder {self.kind!r} is not one of {', '.join(DECODERS)}")
        if min(self.beam_width, self.lookback_frames, self.settle_frames) < 1:
            raise StreamerError(f"beam_width, lookback_frames and settle_frames must be at least 1, not "
                                f"{self.beam_width}, {self.lookback_frames}, {self.settle_frames}")
        if not (self.beam_threshold > 0 and self.agree_margin >= 0):
            raise StreamerError(f"beam_threshold must be more than 0 and agree_margin at least 0, not "
                                f"{self.beam_threshold}, {self.agree_margin}")

    def weights(self, attrs: dict) -> tuple[float, float, float]:
        """alpha, beta and unk_score_offset: these settings', else attrs.json's, else DEFAULT_WEIGHTS'."""
        given = {"alpha": self.alpha, "beta": self.beta, "unk_score_offset": self.unk_score_offset}
        return tuple(float(given[k] if given[k] is not None else attrs.get(k, DEFAULT_WEIGHTS[k])) for k in given)


def read_hotwords(path: Path, default_weight: float = 10.0) -> tuple[tuple[str, float], ...]:
    """One phrase a line, optionally followed by its weight (`Bjørdal 12`); blank lines and #-comments skipped.
    Phrases keep their capitals (the written form uses them); the decoder lowercases them, as the model spells."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise StreamerError(f"cannot read hotwords {path}: {exc.strerror or exc}") from None
    phrases = []
    for number, line in enumerate(lines, start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        *words, last = line.split()
        try:
            weight = float(last) if words else default_weight
            phrase = " ".join(words) if words else last
        except ValueError:
            phrase, weight = line, default_weight
        if not phrase:
            raise StreamerError(f"{path}:{number}: a weight without a phrase")
        phrases.append((phrase, weight))
    return tuple(phrases)


def find_lm_file(folder: Path) -> Path:
    found = [p for pattern in LM_FILES for p in sorted(folder.glob(pattern))]
    if not found:
        raise StreamerError(f"{folder} holds no KenLM model: expected one of {', '.join(LM_FILES)}")
    return found[0]


@contextmanager
def kenlm_output_filtered(lm_path: Path):
    """What is written to file descriptor 2 inside the block (kenlm writes from C++, past sys.stderr) is caught
    and written back after it, less kenlm's progress bar and its hint to build a binary: its warnings and errors,
    and other threads' log lines, still come out. Descriptor 2 is restored however the block ends. One load at a
    time: the descriptor is the process's."""
    saved = duplicate_stderr()
    if saved is None:  # no stderr to keep clean
        yield
        return
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            flush_stderr()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            noise = {KENLM_HINT, f"Reading {lm_path}"}
            kept = [line for line in caught.read().decode("utf-8", "replace").splitlines()
                    if line.strip() and line.strip() not in noise and not KENLM_BAR.fullmatch(line.strip())]
            if kept:
                print("\n".join(kept), file=sys.stderr, flush=True)


def duplicate_stderr() -> int | None:
    """A copy of file descriptor 2, after Python's buffered writes to it; None when there is none."""
    flush_stderr()
    try:
        return os.dup(2)
    except OSError:
        return None


def flush_stderr() -> None:
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):  # None (no console), or closed
        pass


def read_unigrams(path: Path) -> list[str] | None:
    if not path.is_file():
        return None
    try:
        return [w for w in path.read_text(encoding="utf-8").split() if w]
    except (OSError, ValueError) as exc:
        raise StreamerError(f"{path} is not a readable word list (UTF-8, a word a line): {exc}") from None


def read_attrs(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise StreamerError(f"{path} is not readable JSON: {exc}") from None
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class LanguageModelFiles:
    lm_file: Path  # the KenLM model
    words: list[str]  # the lexicon: unigrams.txt, or a bare ARPA file's 1-grams
    attrs: dict  # attrs.json's weights ({} for a bare file)


def find_language_model(path: Path) -> LanguageModelFiles:
    """A language_model folder's files, or a bare KenLM file and the words in it."""
    path = Path(path)
    if path.is_dir():
        lm_file = check_kenlm_file(find_lm_file(path))
        words = read_unigrams(path / "unigrams.txt")
        return LanguageModelFiles(lm_file, words if words is not None else arpa_unigrams(lm_file),
                                  read_attrs(path / "attrs.json"))
    if not path.is_file():
        raise StreamerError(f"{path}: no such language model (a language_model folder or a KenLM file)")
    return LanguageModelFiles(check_kenlm_file(path), arpa_unigrams(path), {})


KENLM_BINARY_MAGIC = b"mmap lm "  # KenLM binary files begin "mmap lm http://kheafield.com/code format version"


def check_kenlm_file(path: Path) -> Path:
    """path, if it begins as an ARPA file (plain or gzipped) or a KenLM binary does; else a clear error before
    anything reads it as one."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
        if head[:2] == b"\x1f\x8b":
            with gzip.open(path, "rb") as f:
                head = f.read(64)
    except (OSError, EOFError) as exc:
        raise StreamerError(f"cannot read {path}: {exc}") from None
    if not (head.startswith(KENLM_BINARY_MAGIC) or head.lstrip().startswith(b"\\data\\")):
        raise StreamerError(f"{path} is not a KenLM language model (ARPA or binary): it begins with neither "
                            "an ARPA \\data\\ section nor KenLM's binary header")
    return path


def arpa_unigrams(path: Path) -> list[str]:
    """The words of an ARPA file's 1-grams section (a binary KenLM file has none to read here)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    words, inside = [], False
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as lines:
            for line in lines:
                line = line.strip()
                if line.startswith("\\"):
                    if inside:
                        break
                    inside = line == "\\1-grams:"
                elif inside and line:
                    fields = line.split("\t")
                    if len(fields) >= 2 and fields[1] not in ("<s>", "</s>", "<unk>"):
                        words.append(fields[1])
    except (OSError, EOFError) as exc:
        raise StreamerError(f"cannot read {path}: {exc}") from None
    if not words:
        raise StreamerError(f"{path} lists no words: a binary KenLM file needs a language_model folder with "
                            "unigrams.txt beside it (a word a line)")
    return words
