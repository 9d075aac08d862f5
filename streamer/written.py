"""The text stage: the model's lowercase words → readable Bokmål captions, keeping the stable-text promise.

The model writes what it hears: "stortinget vedtok med sekstiåtte mot trettien stemmer at paragraf tolv
skal gjelde fra første januar to tusen og tjuefem". Viewers read "Stortinget vedtok med 68 mot 31
stemmer at § 12 skal gjelde fra 1. januar 2025." The rules follow Språkrådet's advice on numbers:

- Numbers are read by the grammar in ``streamer.numbers`` (cardinals of both counting systems,
  ordinals, years, decimals). In running text numbers up to twelve stay words ("fem år", "tredje
  gang"), as do a bare "hundre" or "tusen" ("flere hundre"); larger ones are digits, grouped by a
  no-break space from 10 000 up ("12 345"), never a year ("2025").
- Digits whatever the size with a percent ("3,5 %"), money ("5 kroner", "5,50 kroner", "50 øre"), a
  decimal ("0,7"), a clock time ("kl. 14.30"), a date ("1. januar 2025"), a paragraph ("§ 12"), and
  a small number paired with one in digits ("68 mot 9 stemmer", "mellom 5 og 20"). A round million
  or milliard keeps its word ("3 millioner", "3,5 milliarder").
- Names from a lexicon (``streamer.lexicon``) get their capitals; the first word of a sentence gets one.
- A caption that ends at a pause or at the end of speech ends a sentence, with a full stop, unless its
  last word cannot end one (a conjunction, an article, "å").

Each written token knows the raw words it spans, so word times carry over ("to tusen og tjuefem" →
one token "2025" from the first word's start to the last one's end). Writing is local: a token
depends only on the words of its own run of number and context words (and on a name's words), so
``Writer.settled`` can tell which leading words no later word can rewrite, and partials mark only
their tokens as stable: a number still being spoken stays unstable until it is complete.
"""

from __future__ import annotations

from dataclasses import dataclass

from .ctc import Word
from .lexicon import Lexicon, builtin_forms
from .numbers import Number, morphemes, read_numbers

NBSP = "\u00a0"
MONTHS = frozenset("januar februar mars april mai juni juli august september oktober november desember".split())
MONEY = frozenset({"kroner", "krone"})
UNITS = MONEY | {"øre", "prosentpoeng", "euro", "dollar"}  # a number before one of these is written in digits
PERCENT, PARAGRAPH, COMMA = "prosent", "paragraf", "komma"
PAIRING = frozenset({"mot", "og", "til", "eller"})  # "68 mot 9", "mellom 5 og 20", "fra 9 til 15"
CLOCK = frozenset({"klokka", "klokken", "kl"})
CONTEXT = UNITS | MONTHS | CLOCK | PAIRING | {PERCENT, PARAGRAPH, COMMA, "mellom"}
NO_SENTENCE_END = frozenset("og men eller fordi at som hvis mens enn en ei et å".split())
WORD_SCALES = {"million": 10**6, "millioner": 10**6, "milliard": 10**9, "milliarder": 10**9}
NUMBER_GOES_ON = frozenset({COMMA, PARAGRAPH} | CLOCK)  # a number must follow these: a pause after them is inside one


@dataclass(frozen=True)
class TextSettings:
    written: bool = True  # False: the model's own words (lowercase, numbers spelled out), as with --raw
    names: tuple[str, ...] = ()  # more cased forms (a user's list, hotwords); they win over the built-in ones
    builtin_names: bool = True  # the parliament list in streamer/data/names_nb.txt


def make_writer(settings: TextSettings, hotwords=()) -> "Writer | None":
    """The writer the settings ask for (None: raw text). hotwords: the beam decoder's (phrase, weight)
    pairs; a phrase written with capitals is a name too."""
    if not settings.written:
        return None
    names = [phrase for phrase, _ in hotwords if phrase != phrase.lower()] + list(settings.names)
    return Writer(Lexicon.of((builtin_forms() if settings.builtin_names else []) + names))


@dataclass(frozen=True)
class Token:
    """A written token and the raw words [start, end) it stands for."""

    text: str
    start: int
    end: int


def grouped(value: int) -> str:
    """Digits, in groups of three from 10 000 up."""
    if value < 10_000:
        return str(value)
    return f"{value:,}".replace(",", NBSP)


def digits(number: Number) -> str:
    unit = WORD_SCALES.get(number.scale)
    if unit and number.value % unit == 0 and number.value // unit < 1000:
        return f"{number.value // unit}{NBSP}{number.scale}"
    return grouped(number.value)


class Writer:
    """Raw words → written tokens with their raw spans. Pure; one per recognizer (it holds the lexicon)."""

    def __init__(self, lexicon: Lexicon):
        self.lexicon = lexicon

    def tokens(self, words: list[str], sentence_start: bool = False) -> list[Token]:
        numbers = self._numbers(words)
        out: list[Token] = []
        i = 0
        while i < len(words):
            made = (self._paragraph(words, numbers, i) or self._clock(words, i) or self._date(words, numbers, i)
                    or self._number(words, numbers, i) or self._name(words, i))
            if made:
                out += made
                i = made[-1].end
            else:
                out.append(Token(words[i], i, i + 1))
                i += 1
        if sentence_start and out and out[0].text[:1].isalpha():
            out[0] = Token(out[0].text[:1].upper() + out[0].text[1:], out[0].start, out[0].end)
        return out

    def settled(self, words: list[str]) -> int:
        """How many leading words have tokens that no words after them can change: up to the run of number
        and context words at the end, and before any name that the last words may have begun."""
        end = len(words)
        while True:
            start = end
            while start > 0 and joins(words[start - 1]):
                start -= 1
            start = min(start, self.lexicon.open_from(words[:start]))
            if start == end:
                return end
            end = start

    # ---- the constructions, each (tokens) or None
    @staticmethod
    def _numbers(words: list[str]) -> list[Number | None]:
        numbers = read_numbers(words)
        if "mellom" in words:  # "mellom fem og tjue" is 5 and 20, not the old form of 25
            plain = read_numbers(words, old_form=False)
            numbers = [plain[k] if k and words[k - 1] == "mellom" else n for k, n in enumerate(numbers)]
        return numbers

    @staticmethod
    def _paragraph(words, numbers, i) -> list[Token] | None:
        number = numbers[i + 1] if words[i] == PARAGRAPH and i + 1 < len(words) else None
        if number is None or number.kind != "cardinal":
            return None
        return [Token(f"§{NBSP}{grouped(number.value)}", i, number.end)]

    @staticmethod
    def _clock(words, i) -> list[Token] | None:
        if words[i] not in CLOCK or i + 1 >= len(words):
            return None
        hour = _single(words[i + 1])
        if hour is None or hour > 24:
            return None
        rest = words[i + 2 : i + 4]
        if len(rest) == 2 and rest[0] == "null" and (minute := _single(rest[1])) is not None and minute < 10:
            return [Token(f"kl.{NBSP}{hour}.{minute:02d}", i, i + 4)]
        if rest and (minute := _single(rest[0])) is not None and 10 <= minute < 60:
            return [Token(f"kl.{NBSP}{hour}.{minute:02d}", i, i + 3)]
        return [Token(f"kl.{NBSP}{hour}", i, i + 2)]

    @staticmethod
    def _date(words, numbers, i) -> list[Token] | None:
        day = numbers[i]
        if day is None or day.kind != "ordinal" or not 1 <= day.value <= 31 or day.end >= len(words) \
                or words[day.end] not in MONTHS:
            return None
        out = [Token(f"{day.value}.", i, day.end), Token(words[day.end], day.end, day.end + 1)]
        year = numbers[day.end + 1] if day.end + 1 < len(words) else None
        if year is not None and year.kind in ("cardinal", "year") and 1000 <= year.value <= 2999:
            out.append(Token(str(year.value), year.start, year.end))
        return out

    def _number(self, words, numbers, i) -> list[Token] | None:
        number = numbers[i]
        if number is None:
            return None
        after = words[number.end] if number.end < len(words) else None
        if number.kind == "year":
            return [Token(str(number.value), i, number.end)]
        if number.kind == "ordinal":
            return None if number.value <= 12 else [Token(f"{grouped(number.value)}.", i, number.end)]
        text = f"{grouped(number.value)},{number.fraction}" if number.kind == "decimal" else digits(number)
        if after == PERCENT:
            return [Token(f"{text}{NBSP}%", i, number.end + 1)]
        if after in MONEY and number.kind == "cardinal" and (money := self._kroner_og_ore(words, numbers, number)):
            return money
        if number.kind == "decimal" and after in WORD_SCALES:
            return [Token(f"{text}{NBSP}{after}", i, number.end + 1)]
        if number.kind == "decimal" or after in UNITS or not self._stays_words(words, numbers, number):
            return [Token(text, i, number.end)]
        return None

    @staticmethod
    def _kroner_og_ore(words, numbers, kroner: Number) -> list[Token] | None:
        """"fem kroner og femti øre" → "5,50 kroner"."""
        at = kroner.end + 1
        ore = numbers[at + 1] if at + 1 < len(words) and words[at] == "og" else None
        if ore is None or ore.kind != "cardinal" or not 0 < ore.value < 100 or ore.end >= len(words) \
                or words[ore.end] != "øre":
            return None
        return [Token(f"{grouped(kroner.value)},{ore.value:02d}{NBSP}kroner", kroner.start, ore.end + 1)]

    @staticmethod
    def _stays_words(words, numbers, number: Number) -> bool:
        """A small number in running text, unless it is paired with a number in digits ("9 mot 68")."""
        if not _small(words, number):
            return False
        right = numbers[number.end + 1] if number.end + 1 < len(words) and words[number.end] in PAIRING else None
        left = [n for n in numbers[: max(0, number.start - 1)] if n is not None and n.end == number.start - 1]
        facing = ([right] if right else []) + (left[:1] if number.start and words[number.start - 1] in PAIRING else [])
        return not any(n.kind == "cardinal" and not _small(words, n) for n in facing)

    def _name(self, words, i) -> list[Token] | None:
        match = self.lexicon.match(words, i)
        if match is None:
            return None
        end, forms = match
        if len(forms) == end - i:
            return [Token(form, i + k, i + k + 1) for k, form in enumerate(forms)]
        return [Token(" ".join(forms), i, end)]


def _small(words: list[str], number: Number) -> bool:
    """Up to twelve, or a bare "hundre" or "tusen": words in running text."""
    return number.value <= 12 or words[number.start : number.end] in (["hundre"], ["tusen"])


def _single(word: str) -> int | None:
    """The value of one word that is a cardinal number by itself, or None."""
    number = read_numbers([word])[0]
    return number.value if number is not None and number.kind == "cardinal" else None


def joins(word: str) -> bool:
    """Whether a word can belong to a written construction with the words around it."""
    return word in CONTEXT or morphemes(word) is not None


def ends_sentence(tokens: list[Token], raw: list[str], at_pause: bool) -> bool:
    """At a pause, unless the last word cannot end a sentence ("at", "og", an article; "en" as a number can)
    or must go on after it ("tre komma | fem", "paragraf | tolv"; "og" is a conjunction anyway)."""
    return at_pause and bool(tokens) and tokens[-1].text.lower() not in NO_SENTENCE_END and raw[-1] not in NUMBER_GOES_ON


def with_full_stop(tokens: list[Token]) -> list[Token]:
    last = tokens[-1]
    return tokens if last.text.endswith(".") else tokens[:-1] + [Token(last.text + ".", last.start, last.end)]


def token_words(tokens: list[Token], words: list[Word]) -> tuple[Word, ...]:
    """Written tokens as timed words: each from its first raw word's start to its last one's end, with
    the lowest confidence among them and its raw words where they differ from it."""
    out = []
    for token in tokens:
        span = words[token.start : token.end]
        raw = " ".join(w.word for w in span)
        out.append(Word(token.text, span[0].start_s, span[-1].end_s, min(w.confidence for w in span),
                        raw if raw != token.text else None))
    return tuple(out)


def joined(tokens: list[Token]) -> str:
    return " ".join(t.text for t in tokens)


class CaptionText:
    """One stream's captions in written form (or raw, without a writer).

    A caption begins a sentence when the caption before it ended one; while an earlier caption is still
    open that is not known yet, so a partial then marks nothing stable (its first word's capital could
    still change)."""

    def __init__(self, writer: Writer | None):
        self.writer = writer
        self._open: set[int] = set()
        self._ended: dict[int, bool | None] = {}  # closed caption → whether a sentence ended with it (None: no words)

    def partial(self, number: int | None, words: list[Word], stable_words: list[Word]) -> tuple[str, int]:
        """The partial's text and how many of its leading characters are stable. stable_words: the words of
        the committed frames (the last one may be a piece of the partial's word there)."""
        raw = [w.word for w in words]
        if self.writer is None or number is None:
            return " ".join(raw), len(" ".join(w.word for w in stable_words))
        n_stable = 0
        while n_stable < min(len(stable_words), len(raw) - 1) and stable_words[n_stable].word == raw[n_stable]:
            n_stable += 1  # whole words only; the partial's last word may still grow
        self._open.add(number)
        start = self.sentence_start(number)
        text = joined(self.writer.tokens(raw, bool(start)))
        if start is None:
            return text, 0
        stable = joined(self.writer.tokens(raw[: self.writer.settled(raw[:n_stable])], start))
        if not text.startswith(stable):
            raise AssertionError(f"stable text {stable!r} is not a prefix of {text!r}")
        return text, len(stable)

    def final(self, number: int, words: list[Word], at_pause: bool) -> tuple[tuple[Word, ...], str | None]:
        """The final's words (written tokens) and its raw text (None when the words are raw already)."""
        raw = [w.word for w in words]
        start = self.sentence_start(number)
        if self.writer is None:
            self._close(number, None)
            return tuple(words), None
        tokens = self.writer.tokens(raw, True if start is None else start)
        ended = ends_sentence(tokens, raw, at_pause) and self.writer.lexicon.open_from(raw) == len(raw)  # nor in a name
        self._close(number, ended)
        return token_words(with_full_stop(tokens) if ended else tokens, words), " ".join(raw)

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

    def _close(self, number: int, ended: bool | None) -> None:
        self._open.discard(number)
        self._ended[number] = ended
        below = min(self._open, default=number + 1)
        known = [n for n, e in self._ended.items() if n < below and e is not None]
        keep = max(known, default=None)
        for n in [n for n in self._ended if n < below and n != keep and n < number]:
            del self._ended[n]
