"""Cased forms of proper nouns (names, places, parties), looked up by the lowercase words the model writes.

A form is written as it should appear ("Miljøpartiet De Grønne", "Justis- og beredskapsdepartementet",
"Sør-Trøndelag"); its key is its words lowercased with punctuation dropped, so a hyphenated name
matches spoken either as one word or as two. Each form's genitive (+s) comes with it. Later forms
override earlier ones, so a user's list can turn a built-in one off by writing it in lowercase.
Matching is leftmost-longest.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import StreamerError

_LETTERS = re.compile(r"[^\wæøå]+")


def key_words(form: str) -> tuple[str, ...]:
    """How the model would write the form: lowercase words, no punctuation."""
    return tuple(w for w in _LETTERS.sub(" ", form.lower().replace("_", " ")).split() if w)


@dataclass(frozen=True)
class Lexicon:
    forms: dict  # key words → the cased form's tokens
    prefixes: frozenset  # every proper prefix of a key with more than one word
    longest: int

    @classmethod
    def of(cls, forms) -> "Lexicon":
        table: dict[tuple[str, ...], tuple[str, ...]] = {}
        for form in forms:
            for key, tokens in _variants(form.strip()):
                table[key] = tokens
        prefixes = frozenset(key[:n] for key in table for n in range(1, len(key)))
        return cls(table, prefixes, max(map(len, table), default=0))

    def match(self, words: list[str], i: int) -> tuple[int, tuple[str, ...]] | None:
        """The longest form whose key starts at words[i]: (end, its tokens), or None."""
        for n in range(min(self.longest, len(words) - i), 0, -1):
            tokens = self.forms.get(tuple(words[i : i + n]))
            if tokens is not None:
                return i + n, tokens
        return None

    def open_from(self, words: list[str]) -> int:
        """The earliest position from which the words' end could still grow into a longer form."""
        for i in range(max(0, len(words) - self.longest), len(words)):
            if tuple(words[i:]) in self.prefixes:
                return i
        return len(words)


def _variants(form: str):
    """(key, tokens) for the form and its genitive; a hyphenated word also keyed as one word."""
    tokens = tuple(form.split())
    if not tokens:
        return
    keys = {key_words(form)}
    if any("-" in t.strip("-") for t in tokens):  # "Sør-Trøndelag": spoken "sør trøndelag" or "sørtrøndelag"
        keys.add(key_words(form.replace("-", "")))
    for key in keys:
        yield key, tokens
        if tokens[-1][-1:].isalpha() and tokens[-1][-1].lower() not in "sxz":
            yield key[:-1] + (key[-1] + "s",), tokens[:-1] + (tokens[-1] + "s",)


def read_forms(text: str) -> list[str]:
    """Forms from a list: one a line, blank lines and #-comments skipped."""
    return [line for raw in text.splitlines() if (line := raw.split("#", 1)[0].strip())]


def read_forms_file(path: Path) -> list[str]:
    try:
        return read_forms(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise StreamerError(f"cannot read names {path}: {getattr(exc, 'strerror', None) or exc}") from None


@functools.cache
def builtin_forms() -> tuple[str, ...]:
    """Parliament names shipped with streamer (streamer/data/names_nb.txt, which gives its sources); read once
    per process, not for every stream."""
    return tuple(read_forms(resources.files("streamer").joinpath("data/names_nb.txt").read_text(encoding="utf-8")))
