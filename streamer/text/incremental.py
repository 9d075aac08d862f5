"""Incremental CTC beam search with a word n-gram: flashlight-text's lexicon decoder over its KenLM binding.

One beam search per speech segment: beams and language-model states carry over from one block of frames to
the next (``decode_step``), so a stream feeds each commit's frames once, as they are committed, and never
decodes them again; fed in blocks of any size, its words are those of one search over all the frames
(tests/test_incremental.py). A word is **stable** once every beam holds it, or at the latest when it ends
``lookback_frames`` before the newest frame: then the best beam's older words are taken and the decoder's
buffer before them is dropped (``prune``: every beam goes on from its state there, its history gone), so no
stable word is ever revised and memory stays bounded however long a segment runs. ``end`` scores the end of
the sentence, after one synthetic frame of a sure word delimiter: flashlight ends a lexicon word only at a
delimiter, and a word the model ended in blanks would be left unspelled. The stream core ends a segment's
search at each pause and starts another after it (``first_frame``), so every word before a pause is final
there.

flashlight-text is the decoder torchaudio and Riva build on (C++; PyPI ``flashlight-text``, the ``lm``
extra): it steps beams frame by frame and prunes them, which pyctcdecode (whole utterances only) cannot.

The lexicon is the language model's word list (unigrams.txt, or a bare ARPA file's 1-grams) plus the
hotwords' words, spelled in the model's alphabet; a stretch no lexicon word fits comes out as ``<unk>`` and
is spelled from the best beam's own letters, so a word outside the vocabulary survives as the model spells
it. Hotwords score their weight once spelled (as pyctcdecode's did), through a Python hook around KenLM.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import StreamerError
from ..model.vocab import Vocabulary
from .ctc import folded_log_probs
from .decoder import DecoderSettings, find_language_model, find_lm_file, kenlm_output_filtered

try:  # the lm extra
    from flashlight.lib.text.decoder import (LM, CriterionType, LexiconDecoder, LexiconDecoderOptions,
                                             SmearingMode, Trie)
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import create_word_dict
except ImportError:  # greedy decoding needs none of it
    LM = object
    KenLM = None

UNK = "<unk>"
INSTALL = "pip install 'streamer[lm]' (flashlight-text)"
LN10 = math.log(10.0)  # attrs.json weighs KenLM's log10 scores in natural-log units
log = logging.getLogger("streamer")


class HotwordLM(LM):
    """KenLM with a bonus for each hotword's words once spelled (in the decoder's units: weight / lm_weight)."""

    def __init__(self, kenlm, bonus: dict[int, float]):
        LM.__init__(self)
        self.kenlm, self.bonus = kenlm, bonus

    def start(self, start_with_nothing: bool):
        return self.kenlm.start(start_with_nothing)

    def score(self, state, token_index: int):
        state, score = self.kenlm.score(state, token_index)
        return state, score + self.bonus.get(token_index, 0.0)

    def finish(self, state):
        return self.kenlm.finish(state)


class LexiconLM:
    """A KenLM model, its lexicon trie over a CTC alphabet and the search's settings: loaded once, shared by
    every stream's beams."""

    def __init__(self, vocab: Vocabulary, lm_file: Path, words: list[str], settings: DecoderSettings = DecoderSettings(),
                 attrs: dict | None = None):
        if KenLM is None:
            raise StreamerError(f"beam search needs flashlight-text: {INSTALL}")
        self.vocab, self.settings, ids = vocab, settings, vocab.to_dict()
        self.alpha, self.beta, self.unk_offset = settings.weights(attrs or {})
        weights = {w: weight for phrase, weight in settings.hotwords for w in phrase.lower().split()}
        delimiter = vocab.tokens[vocab.delimiter_id]
        spelled = {w: [[*w, delimiter]] for w in dict.fromkeys([*words, *weights])
                   if w and w != UNK and all(c in ids and vocab.is_text(ids[c]) for c in w)}
        if not spelled:
            raise StreamerError(f"none of the language model's {len(words)} words can be spelled in the model's "
                                "alphabet")
        self.words = create_word_dict({**spelled, UNK: [[delimiter]]})
        self.lm_weight = self.alpha * LN10
        try:
            with kenlm_output_filtered(lm_file):
                kenlm = KenLM(str(lm_file), self.words)
        except Exception as exc:  # noqa: BLE001 - the binding raises what KenLM raised
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise StreamerError(f"{lm_file} is not a KenLM language model (ARPA or binary): {first}") from None
        bonus = {self.words.get_index(w): weight / max(self.lm_weight, 1e-6) for w, weight in weights.items()
                 if w in spelled}
        self.lm = HotwordLM(kenlm, bonus) if bonus else kenlm
        self.trie = Trie(len(vocab), vocab.delimiter_id)
        start = self.lm.start(False)
        for word, spellings in spelled.items():
            index = self.words.get_index(word)
            _, score = self.lm.score(start, index)
            for spelling in spellings:
                self.trie.insert([ids[c] for c in spelling], index, score)
        self.trie.smear(SmearingMode.MAX)
        self.lm_file = Path(lm_file)

    def options(self) -> LexiconDecoderOptions:
        s = self.settings
        return LexiconDecoderOptions(
            beam_size=s.beam_width, beam_size_token=len(self.vocab), beam_threshold=s.beam_threshold,
            lm_weight=self.lm_weight, word_score=self.beta, unk_score=self.lm_weight * self.unk_offset, sil_score=0.0,
            log_add=False, criterion_type=CriterionType.CTC)

    def log_probs(self, logits: np.ndarray) -> np.ndarray:
        """The decoder's input: log-softmax over the vocabulary, special tokens folded into the blank."""
        return np.ascontiguousarray(folded_log_probs(logits, self.vocab), np.float32)


def load_lm(vocab: Vocabulary, path: Path, settings: DecoderSettings = DecoderSettings()) -> LexiconLM:
    files = find_language_model(path)
    return LexiconLM(vocab, files.lm_file, files.words, settings, files.attrs)


def make_decoder(model, settings: DecoderSettings) -> LexiconLM | None:
    """The language model settings ask for (the model's own unless one is given), shared by every stream's
    beams; None for greedy decoding. "auto" is beam search when there is a language model and flashlight-text
    to search with, greedy otherwise (said in the log when the model's language_model/ is there but the
    library, or the KenLM file in it, is missing)."""
    if settings.kind == "greedy":
        return None
    lm = Path(settings.lm) if settings.lm else model.language_model_dir
    if lm is None:
        if settings.kind == "auto" and not settings.hotwords:
            return None
        why = "hotwords need beam search, and " if settings.kind == "auto" else ""
        raise StreamerError(f"{why}{model.model_dir} has no language_model/: give one with --lm (a language_model "
                            "folder or a KenLM .arpa/.bin file)")
    if settings.kind == "auto" and not settings.lm:
        if KenLM is None:
            log.warning("%s has a language model, but beam search needs flashlight-text (%s): decoding greedily",
                        lm, INSTALL)
            return None
        try:
            find_lm_file(lm)
        except StreamerError as exc:  # a folder without the model itself (attrs.json alone, say): not one to use
            log.warning("%s: decoding greedily", exc)
            return None
    return load_lm(model.vocab, lm, settings)


@dataclass(frozen=True)
class BeamWord:
    word: str
    first_frame: int  # of the segment's frames fed, from 0: its first letter
    last_frame: int  # its last letter
    confidence: float  # mean of its frames' best probability, first letter to last


class IncrementalBeam:
    """The beam search of one stretch of a speech segment: feed frames in order; stable words come out as they
    settle."""

    def __init__(self, lm: LexiconLM, first_frame: int = 0):
        """first_frame: the segment frame of the first frame fed (a search that starts after a pause)."""
        vocab = lm.vocab
        self.lm, self.settings = lm, lm.settings
        self._unk = lm.words.get_index(UNK)
        self._decoder = LexiconDecoder(lm.options(), lm.trie, lm.lm, vocab.delimiter_id, vocab.blank_id, self._unk,
                                       [], False)
        self._decoder.decode_begin()
        self._origin = first_frame  # segment frame of the decoder buffer's first frame (a prune moves it on)
        self._cut_word_from: int | None = None  # first letter of a word a prune cut in two, before the buffer
        self._taken_at = 0  # buffer index of the last word given out as stable (0: none in the buffer)
        self._top, self._top_origin = np.zeros(0, np.float32), first_frame  # each frame's best probability
        self.fed_frames = first_frame  # the segment's frames fed so far, this search's and those before it
        self.started_at = first_frame
        self.ended = False

    def feed(self, logits: np.ndarray) -> list[BeamWord]:
        """Frames (logits, frames × vocabulary) after those fed before; returns the words that became stable:
        every beam within agree_margin of the best holds them, or they are lookback_frames old."""
        if self.ended:
            raise StreamerError("this beam search has ended")
        logp, settled, every = self.lm.log_probs(logits), [], self.settings.settle_frames
        if len(logp):
            self._top = np.concatenate([self._top, np.exp(logp.max(axis=1))])
        while len(logp):
            step = min(len(logp), every - self.fed_frames % every)
            piece, logp = np.ascontiguousarray(logp[:step]), logp[step:]
            self._decoder.decode_step(piece.ctypes.data, piece.shape[0], piece.shape[1])
            self.fed_frames += step
            if self.fed_frames % every == 0:
                settled += self._settle()
        return settled

    @property
    def held_frames(self) -> int:
        """Frames still in the decoder's buffer (bounded by the pruning, however long the search runs)."""
        return self.fed_frames - self._origin

    def tail(self) -> list[BeamWord]:
        """The best beam's words after the stable ones (they may still change)."""
        if self.fed_frames == self.started_at or self.ended:
            return []
        return self._untaken(self._spelled(self._best()))

    def end(self) -> list[BeamWord]:
        """No more frames: the rest of the best beam's words, the one being spelled included, the end of the
        sentence scored."""
        if self.ended:
            return []
        self.ended = True
        if self.fed_frames == self.started_at:
            return []
        self._close_word()
        self._decoder.decode_end()
        return self._untaken(self._spelled(self._best()))

    def _close_word(self) -> None:
        """One frame of a sure word delimiter, not one of the segment's: flashlight ends a word only at a
        delimiter, and a word the model ended in blanks (before a pause, or the end) would be left unspelled.
        Only at the end: frames after it would be off by one."""
        row = np.full((1, len(self.lm.vocab)), -30.0, np.float32)
        row[0, self.lm.vocab.delimiter_id] = 0.0
        self._decoder.decode_step(row.ctypes.data, 1, row.shape[1])

    def _best(self, hypotheses=None):
        """The best live beam, of hypotheses or of all (flashlight gives them in no fixed order; ties go by
        their tokens)."""
        hypotheses = self._decoder.get_all_final_hypothesis() if hypotheses is None else hypotheses
        return min(hypotheses, key=lambda h: (-h.score, tuple(h.tokens)))

    def _untaken(self, spelled: list[tuple[BeamWord, int]]) -> list[BeamWord]:
        return [word for word, at in spelled if at > self._taken_at]

    def _take(self, spelled: list[tuple[BeamWord, int]]) -> list[BeamWord]:
        """The words not yet given out, now stable."""
        words = self._untaken(spelled)
        self._taken_at = max([self._taken_at] + [at for _, at in spelled])
        return words

    def _settle(self) -> list[BeamWord]:
        """Words that every beam within agree_margin of the best emitted next, after the last stable word, are
        stable; the best beam's words older than lookback_frames too."""
        hypotheses = self._decoder.get_all_final_hypothesis()
        best = self._best(hypotheses)
        after = self._taken_at + 1
        ahead = [(k, w) for k, w in enumerate(best.words[after:], after) if w >= 0]
        agreed, floor = len(ahead), best.score - self.settings.agree_margin
        for other in hypotheses:
            if not agreed:
                break
            if other.score >= floor:
                ids = [w for w in other.words[after:] if w >= 0]
                agreed = next((n for n, ((_, a), b) in enumerate(zip(ahead[:agreed], ids)) if a != b),
                              min(agreed, len(ids)))
        settled = self._take(self._spelled(best, until=ahead[agreed - 1][0])) if agreed else []
        if len(best.tokens) - 1 > self.settings.lookback_frames:  # bounded delay: the best beam's old words
            settled += self._prune(self.settings.lookback_frames, best)
        return settled

    def _prune(self, lookback: int, best) -> list[BeamWord]:
        """The buffer's frames before the newest lookback ones (back to the best beam's last word there) go,
        with their words: the best beam's among them that were not taken are returned (stable now). Other
        beams stay, cut off there too (flashlight keeps every beam's state at the cut). best: the best beam."""
        tokens, word_ids = best.tokens, best.words
        self._decoder.prune(lookback)
        shift = len(tokens) - len(self._best().tokens)
        if shift <= 0:
            return []
        untaken = self._take(self._spelled(best, until=shift))
        self._taken_at = max(0, self._taken_at - shift)
        # the letters of a word cut in two: where it began (its frames before the cut are gone)
        last_word = max((k for k in range(shift + 1) if word_ids[k] >= 0), default=-1)
        letters = [k for k in range(last_word + 1, shift + 1) if self.lm.vocab.is_text(tokens[k])]
        self._cut_word_from = self._origin + letters[0] - 1 if letters else None
        self._origin += shift
        keep_from = min(self._origin, self._cut_word_from if self._cut_word_from is not None else self._origin)
        self._top, self._top_origin = self._top[keep_from - self._top_origin :], keep_from
        return untaken

    def _spelled(self, hypothesis, until: int | None = None) -> list[tuple[BeamWord, int]]:
        """A hypothesis's words in the buffer, each with the buffer index where it was emitted (the unit of
        _taken_at). flashlight emits <unk> for a stretch that begins a lexicon word but ends none, then starts
        over: such stretches with no delimiter between them are one word, spelled from their own letters.
        until: only words emitted up to that index, and an <unk> only once a delimiter follows it (it may
        still grow)."""
        vocab, tokens, start = self.lm.vocab, hypothesis.tokens, 0
        pieces: list[list] = []  # [word id, buffer indices of its letters, where it was emitted]
        for index, word_id in enumerate(hypothesis.words):
            if word_id < 0:
                continue
            if until is not None and index > until:
                break
            letters = [k for k in range(start, index + 1) if vocab.is_text(tokens[k])] or [index]
            start = index + 1
            if (pieces and word_id == self._unk == pieces[-1][0]
                    and vocab.delimiter_id not in tokens[pieces[-1][1][-1] : letters[0]]):
                pieces[-1][1].extend(letters)
                pieces[-1][2] = index
            else:
                pieces.append([word_id, letters, index])
        if until is not None and pieces and pieces[-1][0] == self._unk:
            rest = list(tokens[pieces[-1][1][-1] + 1 :])
            stop = next((n for n, token in enumerate(rest) if vocab.is_text(token)), len(rest))
            if vocab.delimiter_id not in rest[:stop]:
                pieces.pop()  # an <unk> that may go on
        return [(self._word(word_id, letters, tokens, first_in_buffer=n == 0), at)
                for n, (word_id, letters, at) in enumerate(pieces)]

    def _word(self, word_id: int, letters: list[int], tokens, first_in_buffer: bool) -> BeamWord:
        vocab = self.lm.vocab
        word = self.lm.words.get_entry(word_id)
        if word_id == self._unk:  # spelled from its letters: CTC's repeats collapsed
            word = "".join(vocab.tokens[tokens[k]] for i, k in enumerate(letters)
                           if i == 0 or tokens[k] != tokens[letters[i - 1]] or k != letters[i - 1] + 1)
        # buffer index k is the buffer's frame k - 1 (index 0 is the state before its first frame)
        first, last = self._origin + letters[0] - 1, self._origin + letters[-1] - 1
        if first_in_buffer and self._cut_word_from is not None and vocab.delimiter_id not in tokens[: letters[0]]:
            first = self._cut_word_from  # its letters before the buffer
        span = self._top[first - self._top_origin : last + 1 - self._top_origin]
        return BeamWord(word, first, last, float(span.mean()) if len(span) else 0.0)
