"""Incremental CTC beam search with a word n-gram: flashlight-text's lexicon decoder over its KenLM binding.

Beams and language-model states carry over from one block of frames to the next (``decode_step``): a
stream feeds frames as they are committed and never re-decodes them, so its words are those of one
beam search over all of its speech (tests/test_incremental.py: fed in blocks of any size, the words are
those of one call). A word is **stable** once every beam holds it, or at the latest when it ends
``lookback_frames`` before the newest frame: then the best beam's older words are taken and the
decoder is pruned to the beams that share them (``prune``), so no word is ever revised.

The lexicon is the language model's own vocabulary (unigrams.txt), spelled in the model's alphabet; a
stretch no lexicon word fits comes out as ``<unk>`` and is spelled here from the best beam's own letters,
so words outside the vocabulary (names) survive as the acoustic model spells them.

flashlight-text is the decoder torchaudio and Riva build on (C++; PyPI ``flashlight-text``, in the ``lm``
extra). Not yet wired into the stream core (issue 29). Fed in blocks of any size with the default lookback,
its words are exactly one offline beam search's. benchmarks/decoder.py (2026-12-07, AMD EPYC, tiny-nb, its
own n-gram, the 263 held-out sentences one by one): WER 0.145 at beam 16 for 2.9 ms of CPU per second of
audio, where greedy has 0.242 and pyctcdecode's beam search 0.111; its alpha, beta and unknown-word score are
pyctcdecode's and untuned here. (On 181 s of speech in one piece it had 0.143 and pyctcdecode 0.383: one
long call is where pyctcdecode loses.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import StreamerError
from ..model.vocab import Vocabulary
from .ctc import folded_log_probs

UNK = "<unk>"
INSTALL_FLASHLIGHT = "pip install 'streamer[lm]' (flashlight-text)"


@dataclass(frozen=True)
class IncrementalSettings:
    beam_width: int = 16
    beam_threshold: float = 25.0  # beams this far (log) below the best are dropped
    lookback_frames: int = 100  # a word this many frames old is stable as the best beam has it (2 s at 20 ms)
    settle_frames: int = 25  # the old words are taken (and the beams pruned) at every multiple of this many
    # frames of the stream: at the same frames however the frames were fed, so the words are the same too
    alpha: float = 0.5  # language model weight
    beta: float = 1.5  # word insertion bonus
    unk_score: float = -10.0  # a stretch spelled as no lexicon word (<unk>)

    def __post_init__(self) -> None:
        if min(self.beam_width, self.lookback_frames, self.settle_frames) < 1:
            raise StreamerError(f"beam_width, lookback_frames and settle_frames must be at least 1, not "
                                f"{self.beam_width}, {self.lookback_frames}, {self.settle_frames}")


class LexiconLM:
    """A KenLM model and the lexicon trie over a CTC alphabet: loaded once, shared by every stream's beam."""

    def __init__(self, vocab: Vocabulary, lm_file: Path, words: list[str]):
        try:
            from flashlight.lib.text.decoder import SmearingMode, Trie
            from flashlight.lib.text.decoder.kenlm import KenLM
            from flashlight.lib.text.dictionary import create_word_dict
        except ImportError:
            raise StreamerError(f"incremental beam search needs flashlight-text: {INSTALL_FLASHLIGHT}") from None
        self.vocab, ids = vocab, vocab.to_dict()
        delimiter = vocab.tokens[vocab.delimiter_id]
        spelled = {w: [[*w, delimiter]] for w in dict.fromkeys(words)
                   if w and w != UNK and all(c in ids and vocab.is_text(ids[c]) for c in w)}
        if not spelled:
            raise StreamerError(f"none of the language model's {len(words)} words can be spelled in the model's "
                                "alphabet")
        self.words = create_word_dict({**spelled, UNK: [[delimiter]]})
        try:
            self.lm = KenLM(str(lm_file), self.words)
        except Exception as exc:  # noqa: BLE001 - the binding raises what KenLM raised
            raise StreamerError(f"{lm_file} is not a KenLM language model (ARPA or binary): {exc}") from None
        self.trie = Trie(len(vocab), vocab.delimiter_id)
        start = self.lm.start(False)
        for word, spellings in spelled.items():
            index = self.words.get_index(word)
            _, score = self.lm.score(start, index)
            for spelling in spellings:
                self.trie.insert([ids[c] for c in spelling], index, score)
        self.trie.smear(SmearingMode.MAX)

    def log_probs(self, logits: np.ndarray) -> np.ndarray:
        """The decoder's input: log-softmax over the vocabulary, special tokens folded into the blank."""
        return np.ascontiguousarray(folded_log_probs(logits, self.vocab), np.float32)


@dataclass(frozen=True)
class BeamWord:
    word: str
    first_frame: int  # of the stream's frames fed, from 0: its first letter
    last_frame: int  # its last letter


class IncrementalBeam:
    """One stream's beam search: feed frames in order; stable words come out as they settle."""

    def __init__(self, lm: LexiconLM, settings: IncrementalSettings = IncrementalSettings()):
        from flashlight.lib.text.decoder import CriterionType, LexiconDecoder, LexiconDecoderOptions

        vocab = lm.vocab
        options = LexiconDecoderOptions(
            beam_size=settings.beam_width, beam_size_token=len(vocab), beam_threshold=settings.beam_threshold,
            lm_weight=settings.alpha, word_score=settings.beta, unk_score=settings.unk_score, sil_score=0.0,
            log_add=False, criterion_type=CriterionType.CTC)
        self.lm, self.settings = lm, settings
        self._decoder = LexiconDecoder(options, lm.trie, lm.lm, vocab.delimiter_id, vocab.blank_id,
                                       lm.words.get_index(UNK), [], False)
        self._decoder.decode_begin()
        self._origin = 0  # stream frame of the decoder buffer's first frame (a prune moves it on)
        self._taken = 0  # words in the buffer's best beam already given out as stable
        self._fed = 0  # frames fed in all
        self.ended = False

    def feed(self, logits: np.ndarray) -> list[BeamWord]:
        """Frames (logits, frames × vocabulary) after those fed before; returns the words that became stable:
        every beam holds them, or they are lookback_frames old."""
        if self.ended:
            raise StreamerError("this beam search has ended")
        logp, settled, every = self.lm.log_probs(logits), [], self.settings.settle_frames
        while len(logp):
            step = min(len(logp), every - self._fed % every)
            piece, logp = np.ascontiguousarray(logp[:step]), logp[step:]
            self._decoder.decode_step(piece.ctypes.data, piece.shape[0], piece.shape[1])
            self._fed += step
            settled += self._settle(prune=self._fed % every == 0)
        return settled

    def tail(self) -> list[BeamWord]:
        """The best beam's words after the stable ones (they may still change)."""
        return self._words(self._hypotheses()[0])[self._taken :]

    def end(self) -> list[BeamWord]:
        """No more frames: the rest of the best beam's words, the end of the sentence scored."""
        self.ended = True
        self._decoder.decode_end()
        return self._words(self._hypotheses()[0])[self._taken :]

    def _hypotheses(self) -> list:
        """The live beams, best first (flashlight gives them in no fixed order; ties go by their tokens)."""
        return sorted(self._decoder.get_all_final_hypothesis(), key=lambda h: (-h.score, tuple(h.tokens)))

    def _settle(self, prune: bool) -> list[BeamWord]:
        hypotheses = self._hypotheses()
        best = self._words(hypotheses[0])
        agreed = len(best)
        for other in hypotheses[1:]:
            words = [w.word for w in self._words(other)]
            n = 0
            while n < min(agreed, len(words)) and words[n] == best[n].word:
                n += 1
            agreed = n
        settled = best[self._taken : max(agreed, self._taken)]
        self._taken = max(agreed, self._taken)
        before = len(hypotheses[0].tokens)
        if prune and before - 1 > self.settings.lookback_frames:  # bounded delay: the best beam's old words,
            # and only the beams that share them
            self._decoder.prune(self.settings.lookback_frames)
            shift = before - len(self._hypotheses()[0].tokens)
            gone = sum(w.last_frame + 1 - self._origin < shift for w in best)
            settled += best[self._taken : gone]
            self._taken, self._origin = max(self._taken, gone) - gone, self._origin + shift
        return settled

    def _words(self, hypothesis) -> list[BeamWord]:
        """A hypothesis's words in the buffer; <unk> spelled from its own letters."""
        vocab, tokens, out, start = self.lm.vocab, hypothesis.tokens, [], 0
        for index, word_id in enumerate(hypothesis.words):
            if word_id < 0:
                continue
            letters = [k for k in range(start, index) if vocab.is_text(tokens[k])]
            start = index + 1
            if not letters:
                continue
            word = self.lm.words.get_entry(word_id)
            if word == UNK:
                word = "".join(vocab.tokens[tokens[k]] for n, k in enumerate(letters)
                               if n == 0 or tokens[k] != tokens[letters[n - 1]] or k != letters[n - 1] + 1)
            # buffer index k is the buffer's frame k - 1 (index 0 is the state before its first frame)
            out.append(BeamWord(word, self._origin + letters[0] - 1, self._origin + letters[-1] - 1))
        return out
