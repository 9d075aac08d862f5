"""CTC decoders: greedy (``streamer.text.ctc``) or beam search with a KenLM n-gram language model and hotwords.

Beam search is pyctcdecode's, over KenLM (ARPA or binary). The language model is a Hugging Face
`language_model/` folder (attrs.json with alpha, beta, unk_score_offset and score_boundary;
unigrams.txt; an .arpa, .arpa.gz or .bin file), as NbAiLab/XLSR-300M-bokmaal ships it, or a single
KenLM file. Hotwords are phrases with optional weights: their words score higher while being
spelled and once spelled, so names come out as written. Special tokens (``<s>``, ``[UNK]``) are
folded into the blank before decoding. Word times come from the frames: a word starts at its first
letter and ends after its last letter's last frame, as greedy decoding's words do.

pyctcdecode 0.5.0 (its last release) declares numpy<2 but decodes correctly on numpy 2, so it is
installed without its dependencies: ``pip install -e '.[lm]' && pip install --no-deps pyctcdecode==0.5.0``
(the ``lm`` extra brings kenlm and pygtrie); the default install never touches numpy.

Loading is quiet: kenlm writes a progress bar for every ARPA file it reads (from C++, to file descriptor 2)
and pyctcdecode logs what it guesses about the alphabet; both are kept from the terminal, while anything
else they write (a warning about the model, an error) still reaches it.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .ctc import Word, best_path, folded_log_probs
from ..errors import StreamerError
from ..model.vocab import Vocabulary

DECODERS = ("greedy", "beam")
LM_FILES = ("*.bin", "*.binary", "*.arpa", "*.arpa.gz")
KENLM_BAR = re.compile(r"-+5-+10-[-0-9]*|\*+")  # the ruler and the stars of kenlm's progress bar
KENLM_HINT = "Loading the LM will be faster if you build a binary file."
INSTALL = "pip install 'streamer[lm]' && pip install --no-deps pyctcdecode==0.5.0"


@dataclass(frozen=True)
class DecoderSettings:
    kind: str = "greedy"  # greedy or beam
    lm: str | None = None  # a language_model folder or a KenLM file; None: the model's own, if it has one
    alpha: float | None = None  # language model weight (None: attrs.json's, else 0.5)
    beta: float | None = None  # word insertion bonus (None: attrs.json's, else 1.5)
    beam_width: int = 32
    hotwords: tuple[tuple[str, float], ...] = ()  # (phrase, weight)

    def __post_init__(self) -> None:
        if self.kind not in DECODERS:
            raise StreamerError(f"decoder {self.kind!r} is not one of {', '.join(DECODERS)}")
        if self.beam_width < 1:
            raise StreamerError(f"beam_width must be at least 1, not {self.beam_width}")


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


class HotwordScorer:
    """pyctcdecode's hotword scoring, with a weight per phrase: a word of a phrase scores its weight when
    spelled whole, and in proportion while being spelled."""

    def __init__(self, hotwords: tuple[tuple[str, float], ...]):
        from pygtrie import CharTrie

        self._weights: dict[str, float] = {}
        for phrase, weight in hotwords:
            for word in phrase.lower().split():
                self._weights[word] = max(weight, self._weights.get(word, weight))
        words = sorted(self._weights, key=len, reverse=True)
        self._pattern = re.compile("|".join(rf"(?<!\S){re.escape(w)}(?!\S)" for w in words) if words else r"^\b$")
        self._trie = CharTrie.fromkeys(sorted(self._weights, key=len))

    def __contains__(self, item: str) -> bool:
        return bool(self._trie.has_node(item))

    def score(self, text: str) -> float:
        return sum(self._weights[match] for match in self._pattern.findall(text))

    def score_partial_token(self, token: str) -> float:
        if token not in self:
            return 0.0
        shortest = next(self._trie.iterkeys(token, shallow=True))
        return self._weights[shortest] * len(token) / len(shortest)


def find_lm_file(folder: Path) -> Path:
    found = [p for pattern in LM_FILES for p in sorted(folder.glob(pattern))]
    if not found:
        raise StreamerError(f"{folder} holds no KenLM model: expected one of {', '.join(LM_FILES)}")
    return found[0]


class BeamDecoder:
    """Beam search with a language model; one per process (the model is loaded once), used by every stream."""

    def __init__(self, vocab: Vocabulary, frame_s: float, settings: DecoderSettings, lm_path: Path):
        try:
            import kenlm
            from pyctcdecode.alphabet import Alphabet
            from pyctcdecode.decoder import BeamSearchDecoderCTC
            from pyctcdecode.language_model import LanguageModel
        except ImportError as exc:
            raise StreamerError(f"beam search needs pyctcdecode and kenlm ({exc.name} is missing): {INSTALL}") from None
        self.vocab, self.frame_s, self.settings = vocab, frame_s, settings
        lm_path = Path(lm_path)
        attrs, unigrams = {}, None
        if lm_path.is_dir():
            attrs = read_attrs(lm_path / "attrs.json")
            unigrams = read_unigrams(lm_path / "unigrams.txt")
            lm_path = find_lm_file(lm_path)
        elif not lm_path.is_file():
            raise StreamerError(f"{lm_path}: no such language model (a language_model folder or a KenLM file)")
        try:
            with kenlm_output_filtered(lm_path):
                kenlm_model = kenlm.Model(str(lm_path))
        except (OSError, RuntimeError, ValueError) as exc:  # ValueError: kenlm decoding a binary that is not one
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise StreamerError(f"{lm_path} is not a KenLM language model (ARPA or binary): {first}") from None
        # columns the decoder sees: letters, the word delimiter (a space), and the blank (specials folded in)
        self.letters = [i for i in range(len(vocab)) if vocab.is_text(i)]
        labels = [vocab.tokens[i] for i in self.letters] + [" ", ""]
        lm_settings = dict(alpha=pick(settings.alpha, attrs, "alpha", 0.5), beta=pick(settings.beta, attrs, "beta", 1.5),
                           unk_score_offset=float(attrs.get("unk_score_offset", -10.0)))
        with library_log_above("pyctcdecode", logging.INFO):
            alphabet = Alphabet.build_alphabet(labels)
            self._lm = LanguageModel(kenlm_model, unigrams, **lm_settings,
                                     score_boundary=bool(attrs.get("score_boundary", True)))
        self.alpha, self.beta = self._lm.alpha, self._lm.beta
        self._decoder = BeamSearchDecoderCTC(alphabet, self._lm)
        # the same model for stretches that stop inside a sentence: no end-of-sentence score at their end (a copy
        # that shares the loaded model and word list: built once, and its warnings said once)
        open_lm = copy.copy(self._lm)
        open_lm.reset_params(score_boundary=False)
        self._open = BeamSearchDecoderCTC(alphabet, open_lm)
        self._hotwords = HotwordScorer(settings.hotwords)
        self.lm_path = lm_path

    def log_probs(self, logits: np.ndarray) -> np.ndarray:
        """Log-softmax over the decoder's columns: letters, delimiter, and the blank with every special token."""
        logp = folded_log_probs(logits, self.vocab)
        return np.column_stack([logp[:, self.letters], logp[:, self.vocab.delimiter_id],
                                logp[:, self.vocab.blank_id]]).astype(np.float32)

    def decode(self, logits: np.ndarray, state=None, ends_sentence: bool = True) -> tuple[list[Word], object]:
        """Words of logits (times from its first frame) and the language model state after them, to carry
        into the next stretch of the same speech (state None: the start of a sentence). A stretch that stops
        inside speech (ends_sentence False) gets no end-of-sentence score."""
        if len(logits) == 0:
            return [], state
        decoder = self._decoder if ends_sentence else self._open
        beams = decoder._decode_logits(  # the public decode_beams takes one weight for all hotwords
            self.log_probs(logits), beam_width=self.settings.beam_width, beam_prune_logp=-10.0, token_min_logp=-5.0,
            prune_history=False, hotword_scorer=self._hotwords,
            lm_start_state=state if state is not None else self._lm.get_start_state())
        end_state, frames = beams[0][1], beams[0][2]
        ids, probs = best_path(logits)
        letters = self.vocab.text_mask()[ids]
        words = []
        for k, (word, (start, end)) in enumerate(frames):
            limit = frames[k + 1][1][0] if k + 1 < len(frames) else len(ids)
            spelled = np.flatnonzero(letters[start:limit])
            last = start + (spelled[-1] if len(spelled) else max(0, end - 1 - start))
            peaks = probs[start : last + 1][letters[start : last + 1]]
            confidence = float(peaks.mean()) if len(peaks) else float(probs[start : last + 1].mean())
            words.append(Word(word, start * self.frame_s, (last + 1) * self.frame_s, confidence))
        return words, end_state


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


@contextmanager
def library_log_above(name: str, level: int):
    """A library's log records at level and below left out inside the block (pyctcdecode tells at INFO what
    it guesses about an alphabet we build ourselves); its warnings still come out. Restored after."""
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(max(previous, level + 1))
    try:
        yield
    finally:
        logger.setLevel(previous)


def read_unigrams(path: Path) -> list[str] | None:
    if not path.is_file():
        return None
    try:
        return [w for w in path.read_text(encoding="utf-8").split() if w]
    except (OSError, ValueError) as exc:
        raise StreamerError(f"{path} is not a readable word list (UTF-8, a word a line): {exc}") from None


def pick(given: float | None, attrs: dict, key: str, default: float) -> float:
    return float(given) if given is not None else float(attrs.get(key, default))


def read_attrs(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise StreamerError(f"{path} is not readable JSON: {exc}") from None
    return data if isinstance(data, dict) else {}


def make_decoder(model, settings: DecoderSettings) -> BeamDecoder | None:
    """The beam decoder settings ask for, with the model's own language model unless one is given; None for
    greedy decoding."""
    if settings.kind == "greedy":
        return None
    lm = Path(settings.lm) if settings.lm else model.language_model_dir
    if lm is None:
        raise StreamerError(f"{model.model_dir} has no language_model/: give one with --lm (a language_model folder "
                            "or a KenLM .arpa/.bin file)")
    return BeamDecoder(model.vocab, model.geometry.frame_s, settings, lm)
