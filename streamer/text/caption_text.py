"""One stream's captions as written text: the Writer's tokens, the punctuation model's marks, and the
stable-text promise across a caption's partials and its final.

A mark is shown once it is decided (its look-ahead words are stable; streamer.text.punctuator) and kept from
then on: the caption's final and every later partial reuse the marks shown, so stable text is never revised
whatever the model would say later. The mark after the last stable word is not part of the stable text until
it is decided ("tallene" is a prefix of "tallene, er"), so a look-ahead of one word costs stable text no lag.
"""

from __future__ import annotations

import logging

from .ctc import Word, words_text
from .written import Writer, ends_sentence, joined, joins, punctuated, token_words

log = logging.getLogger(__name__)


class CaptionText:
    """One stream's captions in written form (or raw, without a writer).

    A caption begins a sentence when the caption before it ended one; while an earlier caption is still
    open that is not known yet, so a partial then marks nothing stable (its first word's capital could
    still change)."""

    def __init__(self, writer: Writer | None):
        self.writer = writer
        self._open: set[int] = set()
        self._ended: dict[int, bool | None] = {}  # closed caption → whether a sentence ended with it (None: no words)
        self._shown: dict[int, tuple[list[str], list[str]]] = {}  # open caption → stable words, the marks shown

    def partial(self, number: int | None, words: list[Word], stable_words: list[Word]) -> tuple[str, int]:
        """The partial's text and how many of its leading characters are stable. stable_words: the words of
        the committed frames (the last one may be a piece of the partial's word there)."""
        text, stable_chars, _ = self.partial_words(number, words, stable_words)
        return text, stable_chars

    def partial_words(self, number: int | None, words: list[Word], stable_words: list[Word]
                      ) -> tuple[str, int, tuple[Word, ...]]:
        """As partial(), and the stable prefix as timed words (written tokens, whole words only): the final
        of the caption begins with them (the last one may still gain a mark)."""
        raw = [w.word for w in words]
        n_stable = 0
        while n_stable < min(len(stable_words), len(raw) - 1) and stable_words[n_stable].word == raw[n_stable]:
            n_stable += 1  # whole words only; the partial's last word may still grow
        if self.writer is None or number is None:
            return words_text(words), len(words_text(stable_words)), tuple(words[:n_stable])
        self._open.add(number)
        start = self.sentence_start(number)
        probs = self._probabilities(raw, False)  # one run of the model for the whole partial
        if start is None:
            text = joined(punctuated(self.writer.tokens(raw, False), self._marks(number, raw, False, probs)))
            return text, 0, ()
        settled = self._stable_end(number, raw[: self.writer.settled(raw[:n_stable])], probs)
        shown = self._shown.get(number, ([], []))[1]
        text = joined(punctuated(self.writer.tokens(raw, start), self._marks(number, raw, False, probs)))
        tokens = punctuated(self.writer.tokens(raw[:settled], start), shown + [None] * settled)
        stable = joined(tokens)
        if not text.startswith(stable):
            raise AssertionError(f"stable text {stable!r} is not a prefix of {text!r}")
        return text, len(stable), token_words(tokens, words[:settled])

    def final(self, number: int, words: list[Word], at_pause: bool) -> tuple[tuple[Word, ...], str | None]:
        """The final's words (written tokens) and its raw text (None when the words are raw already)."""
        raw = [w.word for w in words]
        start = self.sentence_start(number)
        if self.writer is None:
            self._close(number, None)
            return tuple(words), None
        start = True if start is None else start
        tokens = self.writer.tokens(raw, start)
        ended = ends_sentence(tokens, raw, at_pause) and self.writer.lexicon.open_from(raw) == len(raw)  # nor in a name
        marks = self._marks(number, raw, at_pause, self._probabilities(raw, at_pause))
        marks[-1] = self._sentence_end(raw, marks) if ended else ""
        self._close(number, ended)
        return token_words(punctuated(tokens, marks), words), words_text(words)

    def cleared(self, number: int | None) -> None:
        """A caption that ended with no words."""
        if number is not None:
            self._close(number, None)

    def sentence_start(self, number: int) -> bool | None:
        """Whether the caption begins a sentence; None while an earlier caption is still open."""
        if any(other < number for other in self._open):
            return None
        earlier = [n for n, ended in self._ended.items() if n < number and ended is not None]
        return self._ended[max(earlier)] if earlier else True

    def _probabilities(self, raw: list[str], ended: bool):
        """The punctuation model's output for these words; None without a model, or when its run failed (a
        failed run costs these marks, never the captions)."""
        if self.writer is None or self.writer.punctuator is None:
            return None
        try:
            return self.writer.punctuator.probabilities(raw, ended)
        except Exception as exc:  # noqa: BLE001 - any failure of the model's run
            log.warning("punctuation failed, words without marks: %s", exc)
            return None

    def _marks(self, number: int, raw: list[str], ended: bool, probs) -> list[str | None]:
        """The mark after each raw word: the ones shown, then the model's for the words after them (from probs,
        its output for raw or for more words; none at all without it)."""
        words, shown = self._shown.get(number, ([], []))
        if raw[: len(words)] != words:
            raise AssertionError(f"stable words {words!r} are not a prefix of {raw!r}")
        if probs is None:
            return list(shown) + [""] * (len(raw) - len(shown))  # no marks: every one decided
        fresh = self.writer.punctuator.marks(raw, ended, start=len(shown), probs=probs)
        for i in range(len(shown), len(raw) - 1):  # no mark inside a number and its context ("flere hundre
            if fresh[i - len(shown)] and joins(raw[i]) and joins(raw[i + 1]):  # millioner kroner")
                fresh[i - len(shown)] = ""
        return list(shown) + fresh

    def _sentence_end(self, raw: list[str], marks: list[str | None]) -> str:
        """The mark that ends the caption's last sentence (from after the last mark that ended one)."""
        if self.writer is None or self.writer.punctuator is None:
            return "."
        begins = max((i + 1 for i, m in enumerate(marks[:-1]) if m in (".", "?")), default=0)
        try:
            return self.writer.punctuator.sentence_end(raw[begins:])
        except Exception as exc:  # noqa: BLE001 - as in _probabilities: a full stop, as without punctuation
            log.warning("punctuation failed, a full stop: %s", exc)
            return "."

    def _stable_end(self, number: int, settled: list[str], probs) -> int:
        """How many of the settled words are stable with their marks: up to the first whose mark is not
        decided, and that one (its mark is not part of the stable text). Keeps the marks now shown. probs: the
        model's output for the partial (its first rows are the settled words' own)."""
        marks = self._marks(number, settled, False, probs)
        decided = next((i for i, m in enumerate(marks) if m is None), len(marks))
        end = min(len(settled), decided + 1)
        if end >= len(self._shown.get(number, ([], []))[0]):  # it only grows
            self._shown[number] = (settled[:end], list(marks[:decided]))
        return end

    def _close(self, number: int, ended: bool | None) -> None:
        self._open.discard(number)
        self._shown.pop(number, None)
        self._ended[number] = ended
        below = min(self._open, default=number + 1)
        known = [n for n, e in self._ended.items() if n < below and e is not None]
        keep = max(known, default=None)
        for n in [n for n in self._ended if n < below and n != keep and n < number]:
            del self._ended[n]
