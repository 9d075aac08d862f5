"""The text stage: the model's lowercase words → readable Bokmål captions, keeping the stable-text promise.

The model writes what it hears: "stortinget vedtok med sekstiåtte mot trettien stemmer at paragraf tolv
skal gjelde fra første januar to tusen og tjuefem". Viewers read "Stortinget vedtok med 68 mot 31
stemmer at § 12 skal gjelde fra 1. januar 2025." The rules follow Språkrådet's advice on numbers:

- Numbers are read by the grammar in ``streamer.text.numbers`` (cardinals of both counting systems,
  ordinals, years, decimals). In running text numbers up to twelve stay words ("fem år", "tredje
  gang"), as do a bare "hundre" or "tusen" ("flere hundre"); larger ones are digits, grouped by a
  no-break space from 10 000 up ("12 345"), never a year ("2025").
- Digits whatever the size with a percent ("3,5 %"), money ("5 kroner", "5,50 kroner", "50 øre"), a
  decimal ("0,7"), a clock time ("kl. 14.30"), a date ("1. januar 2025"), a paragraph ("§ 12"), and
  a small number paired with one in digits ("68 mot 9 stemmer", "mellom 5 og 20"). A round million
  or milliard keeps its word ("3 millioner", "3,5 milliarder").
- Names from a lexicon (``streamer.text.lexicon``) get their capitals; the first word of a sentence gets one.
- A caption that ends at a pause or at the end of speech ends a sentence, with a full stop (or a question
  mark, when the punctuation model reads the sentence as one), unless its last word cannot end one (a
  conjunction, an article, "å"). Marks inside a caption are the punctuation model's (``punctuated``;
  caption_text.CaptionText keeps them once shown), never inside a number and its context.

Each written token knows the raw words it spans, so word times carry over ("to tusen og tjuefem" →
one token "2025" from the first word's start to the last one's end). Writing is local: a token
depends only on the words of its own run of number and context words (and on a name's words), so
``Writer.settled`` can tell which leading words no later word can rewrite, and partials mark only
their tokens as stable: a number still being spoken stays unstable until it is complete.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import StreamerError
from .ctc import Word, words_text
from .lexicon import Lexicon, builtin_forms
from .numbers import Number, morphemes, read_numbers
from .punctuator import MAX_DELAY, Punctuator

NBSP = "\u00a0"
MONTHS = frozenset("januar februar mars april mai juni juli august september oktober november desember".split())
MONEY = frozenset({"kroner", "krone"})
UNITS = MONEY | {"øre", "prosentpoeng", "euro", "dollar"}  # a number before one of these is written in digits
PERCENT, PARAGRAPH, COMMA = "prosent", "paragraf", "komma"
PAIRING = frozenset({"mot", "og", "til", "eller", "av"})  # "68 mot 9", "mellom 5 og 20", "fra 9 til 15", "12 av 15"
CLOCK = frozenset({"klokka", "klokken", "kl"})
CLOCK_RELATIVE = frozenset({"på", "over", "halv", "kvart"})  # "klokka ti på ni": relative to the hour
CONTEXT = UNITS | MONTHS | CLOCK | PAIRING | CLOCK_RELATIVE | {PERCENT, PARAGRAPH, COMMA, "mellom"}
NO_SENTENCE_END = frozenset("og men eller fordi at som hvis mens enn en ei et å".split())
WORD_SCALES = {"million": 10**6, "millioner": 10**6, "milliard": 10**9, "milliarder": 10**9}
NUMBER_GOES_ON = frozenset({COMMA, PARAGRAPH} | CLOCK)  # a number must follow these: a pause after them is inside one
QUANTIFIERS = frozenset({"flere", "noen", "mange", "par", "få", "hundrevis", "tusenvis"})
YEAR_CONTEXT = MONTHS | {"i", "år", "året", "for", "fra", "til", "siden", "innen", "før", "etter", "høsten", "våren",
                         "sommeren", "vinteren", "budsjettet", "statsbudsjettet", "utgangen", "starten"}


@dataclass(frozen=True)
class TextSettings:
    written: bool = True  # False: the model's own words (lowercase, numbers spelled out), as with --raw
    names: tuple[str, ...] = ()  # more cased forms (a user's list, hotwords); they win over the built-in ones
    builtin_names: bool = True  # the parliament list in streamer/data/names_nb.txt
    punctuation: bool = True  # commas, question marks and full stops from the punctuation model
    # (streamer.text.punctuator); False: a full stop only where a caption ends a sentence, as before it
    look_ahead_words: int = 1  # a mark is shown once this many words after it are stable: 1 (the next word)
    # costs stable text no lag (benchmarks/punctuation.py, RESULTS.md)

    def __post_init__(self) -> None:
        if not 0 <= self.look_ahead_words <= MAX_DELAY:
            raise StreamerError(f"punctuation look-ahead must be 0 to {MAX_DELAY} words, not {self.look_ahead_words}")


def make_writer(settings: TextSettings, hotwords=()) -> "Writer | None":
    """The writer the settings ask for (None: raw text). hotwords: the beam decoder's (phrase, weight)
    pairs; a phrase written with capitals is a name too."""
    if not settings.written:
        return None
    names = [phrase for phrase, _ in hotwords if phrase != phrase.lower()] + list(settings.names)
    lexicon = Lexicon.of([*(builtin_forms() if settings.builtin_names else ()), *names])
    return Writer(lexicon, Punctuator(settings.look_ahead_words) if settings.punctuation else None)


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

    def __init__(self, lexicon: Lexicon, punctuator: Punctuator | None = None):
        self.lexicon, self.punctuator = lexicon, punctuator

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
        """The longest number at each word, read in its context: after "mellom" "fem og tjue" is 5 and 20,
        not the old form of 25; "tjue tretti" is the year 2030 only after a word that announces a year."""
        numbers = read_numbers(words)
        if "mellom" in words:
            plain = read_numbers(words, old_form=False)
            numbers = [plain[k] if k and words[k - 1] == "mellom" else n for k, n in enumerate(numbers)]
        if "tjue" in words:
            counts = read_numbers(words, tjue_years=False)
            numbers = [counts[k] if words[k] == "tjue" and (not k or words[k - 1] not in YEAR_CONTEXT) else n
                       for k, n in enumerate(numbers)]
        return numbers

    @staticmethod
    def _paragraph(words, numbers, i) -> list[Token] | None:
        number = numbers[i + 1] if words[i] == PARAGRAPH and i + 1 < len(words) else None
        if number is None or number.kind != "cardinal":
            return None
        return [Token(f"§{NBSP}{grouped(number.value)}", i, number.end)]

    @staticmethod
    def _clock(words, i) -> list[Token] | None:
        """klokka H [MM]: "klokka fjorten tretti fem" → kl. 14.35. Spoken times relative to the hour ("ti
        på ni", "fem over halv tre") stay words."""
        if words[i] not in CLOCK:
            return None
        hour, at = _cardinal_at(words, i + 1, 0, 24)
        if hour is None or (at < len(words) and words[at] in CLOCK_RELATIVE):
            return None
        if words[at : at + 1] == ["null"]:
            minute, end = _cardinal_at(words, at + 1, 0, 9, max_words=1)
        else:
            minute, end = _cardinal_at(words, at, 10, 59)
        if minute is None:
            return [Token(f"kl.{NBSP}{hour}", i, at)]
        return [Token(f"kl.{NBSP}{hour}.{minute:02d}", i, end)]

    @staticmethod
    def _date(words, numbers, i) -> list[Token] | None:
        """DAY MONTH [YEAR], the day spoken as an ordinal ("første") or a number ("sytten mai"); a day paired
        with a date is one too ("første og andre januar" → 1. og 2. januar)."""
        day = numbers[i]
        if day is None or day.kind not in ("ordinal", "cardinal") or not 1 <= day.value <= 31 or day.end >= len(words):
            return None
        if words[day.end] in PAIRING and day.kind == "ordinal" and day.end + 1 < len(words):
            other = numbers[day.end + 1]
            if other is not None and other.kind == "ordinal" and _date_follows(words, numbers, day.end + 1):
                return [Token(f"{day.value}.", i, day.end)]
        if words[day.end] not in MONTHS:
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
        if i and words[i - 1] in QUANTIFIERS and words[i] in ("hundre", "tusen"):
            return None  # "flere hundre millioner kroner": no number to write
        text = f"{grouped(number.value)},{number.fraction}" if number.kind == "decimal" else digits(number)
        if number.kind == "decimal" and after in WORD_SCALES:  # "3,5 milliarder"
            text, number = f"{text}{NBSP}{after}", replace(number, end=number.end + 1)
            after = words[number.end] if number.end < len(words) else None
        if after == PERCENT:
            return [Token(f"{text}{NBSP}%", i, number.end + 1)]
        if after in MONEY and number.kind == "cardinal" and (money := self._kroner_og_ore(words, numbers, number)):
            return money
        if after in UNITS:  # a number and its unit on one line
            return [Token(f"{text}{NBSP}{after}", i, number.end + 1)]
        if number.kind == "decimal" or not self._stays_words(words, numbers, number):
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
        return not any(n.kind == "cardinal" and _in_digits(words, n) for n in facing)

    def _name(self, words, i) -> list[Token] | None:
        match = self.lexicon.match(words, i)
        if match is None:
            return None
        end, forms = match
        if len(forms) == end - i:
            return [Token(form, i + k, i + k + 1) for k, form in enumerate(forms)]
        return [Token(" ".join(forms), i, end)]


def _in_digits(words: list[str], number: Number) -> bool:
    """Whether a number is written in digits whatever its size: large, before a unit, after "paragraf"."""
    return not _small(words, number) or (number.end < len(words) and words[number.end] in UNITS | {PERCENT}) \
        or (number.start > 0 and words[number.start - 1] == PARAGRAPH)


def _cardinal_at(words: list[str], start: int, lo: int, hi: int, max_words: int = 2) -> tuple[int | None, int]:
    """The cardinal lo..hi spelled by the longest run of at most max_words words from start, and where it
    ends; (None, start) when there is none."""
    for n in range(min(max_words, len(words) - start), 0, -1):
        number = read_numbers(words[start : start + n], tjue_years=False)[0]
        if number is not None and number.kind == "cardinal" and number.end == n and lo <= number.value <= hi:
            return number.value, start + n
    return None, start


def _date_follows(words: list[str], numbers: list[Number | None], i: int) -> bool:
    day = numbers[i]
    return day is not None and day.end < len(words) and words[day.end] in MONTHS and 1 <= day.value <= 31


def _small(words: list[str], number: Number) -> bool:
    """Up to twelve, or a bare "hundre" or "tusen": words in running text."""
    return number.value <= 12 or words[number.start : number.end] in (["hundre"], ["tusen"])


def joins(word: str) -> bool:
    """Whether a word can belong to a written construction with the words around it."""
    return word in CONTEXT or morphemes(word) is not None


def ends_sentence(tokens: list[Token], raw: list[str], at_pause: bool) -> bool:
    """At a pause, unless the last word cannot end a sentence ("at", "og", an article; "en" as a number can)
    or must go on after it ("tre komma | fem", "paragraf | tolv"; "og" is a conjunction anyway)."""
    last = tokens[-1].text.lower() if tokens else ""
    counted = last in ("en", "ei", "et") and len(raw) >= 3 and raw[-2] in PAIRING and morphemes(raw[-3]) is not None
    return at_pause and bool(tokens) and (last not in NO_SENTENCE_END or counted) and raw[-1] not in NUMBER_GOES_ON


def punctuated(tokens: list[Token], marks: list[str | None]) -> list[Token]:
    """Tokens with the mark after each raw word that ends one (none where it is "" or not decided), and a
    capital after a full stop or question mark. A token ending in "." already ("kl.", "1.") takes no full
    stop; the first token is capitalised already when the caption begins a sentence."""
    out, capital = [], False
    for token in tokens:
        text, mark = token.text, marks[token.end - 1] or ""
        if capital and text[:1].isalpha():
            text = text[:1].upper() + text[1:]
        if mark and not (mark == "." and text.endswith(".")):
            text += mark
        capital = mark in (".", "?")
        out.append(Token(text, token.start, token.end))
    return out


def token_words(tokens: list[Token], words: list[Word]) -> tuple[Word, ...]:
    """Written tokens as timed words: each from its first raw word's start to its last one's end, with
    the lowest confidence among them and its raw words where they differ from it."""
    out = []
    for token in tokens:
        span = words[token.start : token.end]
        raw = words_text(span)
        out.append(Word(token.text, span[0].start_s, span[-1].end_s, min(w.confidence for w in span),
                        raw if raw != token.text else None))
    return tuple(out)


def joined(tokens: list[Token]) -> str:
    return " ".join(t.text for t in tokens)
