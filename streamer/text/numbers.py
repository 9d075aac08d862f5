"""Bokmål number words → numbers: a grammar over number morphemes, parsed with all its readings.

Words are first split into morphemes from a fixed lexicon (``tjueen`` → tjue·en, ``tohundreogfem`` →
to·hundre·og·fem), so a compound and its spaced form parse alike, as the model writes either. The
grammar covers both Norwegian counting systems and the ordinal, year and decimal forms:

    small     := UNIT | TEEN | TENS [UNIT] | UNIT og TENS          1–99 ("tjueen", "en og tjue")
    hundreds  := [small] hundre [[og] small] | small               to 9 999 ("nitten hundre og åttifire")
    thousands := [hundreds<1000] tusen [[og] hundreds<1000] | hundreds
    millions  := hundreds<1000 million(er) [[og] thousands] | thousands
    cardinal  := null | hundreds<1000 milliard(er) [[og] millions] | millions
    ordinal   := a cardinal whose last morpheme is ordinal ("tjueførste", "to hundre og femte")
    year      := (atten | nitten | tjue) (TEEN | TENS [UNIT] | null UNIT)      "nitten åttifire" → 1984
    decimal   := cardinal komma (DIGIT DIGIT… | small)                       "tre komma null fem" → 3,05

A number spans whole words only. Where readings of different lengths start at the same word, the
longest wins ("to tusen og tjuefem" is 2025, not 2000 followed by "og tjuefem"). Pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass

UNITS = {"null": 0, "en": 1, "ett": 1, "et": 1, "ei": 1, "to": 2, "tre": 3, "fire": 4, "fem": 5, "seks": 6,
         "sju": 7, "syv": 7, "åtte": 8, "ni": 9}
TEENS = {"ti": 10, "elleve": 11, "tolv": 12, "tretten": 13, "fjorten": 14, "femten": 15, "seksten": 16,
         "sytten": 17, "søtten": 17, "atten": 18, "nitten": 19}
TENS = {"tjue": 20, "tyve": 20, "tretti": 30, "tredve": 30, "førti": 40, "femti": 50, "seksti": 60,
        "sytti": 70, "søtti": 70, "åtti": 80, "nitti": 90}
ORDINAL_UNITS = {"første": 1, "andre": 2, "tredje": 3, "fjerde": 4, "femte": 5, "sjette": 6, "sjuende": 7,
                 "syvende": 7, "åttende": 8, "niende": 9}
ORDINAL_TEENS = {"tiende": 10, "ellevte": 11, "tolvte": 12, "trettende": 13, "fjortende": 14, "femtende": 15,
                 "sekstende": 16, "syttende": 17, "søttende": 17, "attende": 18, "nittende": 19}
ORDINAL_TENS = {"tjuende": 20, "tyvende": 20, "trettiende": 30, "tredevte": 30, "førtiende": 40,
                "femtiende": 50, "sekstiende": 60, "syttiende": 70, "søttiende": 70, "åttiende": 80,
                "nittiende": 90}
SCALES = {"hundre": 100, "tusen": 1000, "million": 10**6, "millioner": 10**6, "milliard": 10**9,
          "milliarder": 10**9}
ORDINAL_SCALES = {"hundrede": 100, "tusende": 1000, "millionte": 10**6, "milliardte": 10**9}
YEAR_CENTURIES = {"atten": 18, "nitten": 19, "tjue": 20}
CONNECTOR, COMMA = "og", "komma"

MORPHEMES = {**UNITS, **TEENS, **TENS, **ORDINAL_UNITS, **ORDINAL_TEENS, **ORDINAL_TENS, **SCALES,
             **ORDINAL_SCALES, CONNECTOR: None}
ORDINALS = {**ORDINAL_UNITS, **ORDINAL_TEENS, **ORDINAL_TENS, **ORDINAL_SCALES}
LONGEST_MORPHEME = max(map(len, MORPHEMES))


@dataclass(frozen=True)
class Number:
    """A number read from words[start:end]: value, and for a decimal its digits after the comma."""

    kind: str  # cardinal, ordinal, year or decimal
    value: int
    start: int
    end: int
    fraction: str = ""
    scale: str = ""  # the last morpheme when it is a scale word ("tre millioner" → "millioner")


@dataclass(frozen=True)
class _Reading:
    end: int  # morpheme index after it
    value: int
    ordinal: bool


def morphemes(word: str) -> tuple[str, ...] | None:
    """The word as number morphemes, fewest pieces first; None when it is not made of them."""
    best: list[tuple[str, ...] | None] = [()] + [None] * len(word)
    for end in range(1, len(word) + 1):
        for start in range(max(0, end - LONGEST_MORPHEME), end):
            piece, before = word[start:end], best[start]
            if before is not None and piece in MORPHEMES and (best[end] is None or len(before) + 1 < len(best[end])):
                best[end] = before + (piece,)
    return best[-1]


class _Parser:
    """Every reading of the morpheme sequence from a position, by nonterminal, memoized."""

    def __init__(self, pieces: list[str], word_starts: set[int], old_form: bool = True, tjue_years: bool = True):
        self.pieces, self.word_starts, self._memo = pieces, word_starts, {}
        self.old_form, self.tjue_years = old_form, tjue_years

    def at(self, i: int) -> str | None:
        return self.pieces[i] if i < len(self.pieces) else None

    def _cached(self, name, i, make):
        key = (name, i)
        if key not in self._memo:
            self._memo[key] = make(i)
        return self._memo[key]

    def word(self, i: int, table: dict, ordinal: bool = False) -> list[_Reading]:
        piece = self.at(i)
        return [_Reading(i + 1, table[piece], ordinal)] if piece in table else []

    def small(self, i: int) -> list[_Reading]:
        return self._cached("small", i, self._small)

    def _small(self, i: int) -> list[_Reading]:
        out = [r for r in self.word(i, UNITS) if r.value > 0] + self.word(i, TEENS) + self.word(i, ORDINAL_TEENS, True)
        out += self.word(i, ORDINAL_UNITS, True)
        for tens in self.word(i, TENS) + self.word(i, ORDINAL_TENS, True):
            out.append(tens)
            if not tens.ordinal:
                out += [_Reading(u.end, tens.value + u.value, u.ordinal) for u in
                        self.word(tens.end, UNITS) + self.word(tens.end, ORDINAL_UNITS, True) if u.value > 0]
        for unit in self.word(i, UNITS):  # "en og tjue" = 21; spaced only where old_form allows it
            spaced = unit.end in self.word_starts or unit.end + 1 in self.word_starts
            if unit.value > 0 and self.at(unit.end) == CONNECTOR and (self.old_form or not spaced):
                out += [_Reading(t.end, t.value + unit.value, t.ordinal)
                            for t in self.word(unit.end + 1, TENS) + self.word(unit.end + 1, ORDINAL_TENS, True)]
        return out

    def scaled(self, i: int, scale: int, multiplier, rest, max_multiplier: int, need_multiplier: bool) -> list[_Reading]:
        """[multiplier] SCALE [[og] rest<scale], or a lone multiplier-free reading."""
        out = []
        starts = [r for r in multiplier(i) if not r.ordinal and 0 < r.value <= max_multiplier]
        if not need_multiplier:
            starts.append(_Reading(i, 1, False))
        for left in starts:
            for head in self.word(left.end, SCALES) + self.word(left.end, ORDINAL_SCALES, True):
                if head.value != scale:
                    continue
                value = left.value * scale
                out.append(_Reading(head.end, value, head.ordinal))
                if head.ordinal:
                    continue
                for after in (head.end, head.end + 1) if self.at(head.end) == CONNECTOR else (head.end,):
                    out += [_Reading(r.end, value + r.value, r.ordinal) for r in rest(after) if 0 < r.value < scale]
        return out

    def hundreds(self, i: int) -> list[_Reading]:
        return self._cached("hundreds", i, lambda i: self.small(i) + self.scaled(i, 100, self.small, self.small, 99, False))

    def thousands(self, i: int) -> list[_Reading]:
        return self._cached("thousands", i, lambda i: self.hundreds(i) + self.scaled(
            i, 1000, self.hundreds, self.hundreds, 999, False))

    def millions(self, i: int) -> list[_Reading]:
        return self._cached("millions", i, lambda i: self.thousands(i) + self.scaled(
            i, 10**6, self.hundreds, self.thousands, 999, True))

    def cardinal(self, i: int) -> list[_Reading]:
        def make(i):
            zero = [_Reading(i + 1, 0, False)] if self.at(i) == "null" else []
            return zero + self.millions(i) + self.scaled(i, 10**9, self.hundreds, self.millions, 999, True)
        return self._cached("cardinal", i, make)

    def year(self, i: int) -> list[_Reading]:
        century = self.at(i)
        if century not in YEAR_CENTURIES or (century == "tjue" and not self.tjue_years):
            return []
        base = YEAR_CENTURIES[century] * 100
        out = [_Reading(r.end, base + r.value, False) for r in self.small(i + 1) if r.value >= 10 and not r.ordinal]
        if self.at(i + 1) == "null":
            out += [_Reading(r.end, base + r.value, False) for r in self.word(i + 2, UNITS) if r.value > 0]
        return out


def read_numbers(words: list[str], old_form: bool = True, tjue_years: bool = True) -> list[Number | None]:
    """For each word position, the longest number that starts there (None where none does). Decimals
    ("tre komma fem") span the comma. old_form=False reads "fem og tjue" as two numbers (one word
    "femogtjue" is still 25); tjue_years=False reads "tjue tretti" as two numbers, not the year 2030."""
    pieces: list[str] = []
    word_start: dict[int, int] = {}  # morpheme index → word index, at word starts
    word_end: dict[int, int] = {}  # morpheme index after a word → its word index + 1
    for k, word in enumerate(words):
        split = morphemes(word) if word != COMMA else None
        word_start[len(pieces)] = k
        pieces += list(split) if split is not None else [f"\0{word}"]  # a word of no number: matches nothing
        word_end[len(pieces)] = k + 1
    parser = _Parser(pieces, set(word_start), old_form, tjue_years)
    out: list[Number | None] = [None] * len(words)
    for i, k in word_start.items():
        out[k] = _longest(parser, pieces, i, k, words, word_start, word_end)
    return out


def _longest(parser: _Parser, pieces, i: int, k: int, words, word_start, word_end) -> Number | None:
    best: Number | None = None
    candidates = [("ordinal" if r.ordinal else "cardinal", r) for r in parser.cardinal(i)]
    candidates += [("year", r) for r in parser.year(i)]
    for kind, reading in candidates:
        if reading.end not in word_end or words[word_end[reading.end] - 1] == CONNECTOR:
            continue
        scale = pieces[reading.end - 1] if pieces[reading.end - 1] in SCALES else ""
        number = Number(kind, reading.value, k, word_end[reading.end], scale=scale)
        if kind == "cardinal":
            number = _with_fraction(parser, number, reading.end, words, word_start, word_end) or number
        if best is None or number.end > best.end:
            best = number
    return best


def _with_fraction(parser: _Parser, number: Number, after: int, words, word_start, word_end) -> Number | None:
    """cardinal komma (DIGIT DIGIT … | small): the decimal, or None. The longer reading wins; a tie
    reads digits ("komma to fem" is ,25 and so is "komma tjuefem")."""
    if parser.at(after) != f"\0{COMMA}" or after + 1 not in word_start:
        return None
    digits, i = "", after + 1
    while i in word_start and i + 1 in word_end and parser.at(i) in UNITS and parser.at(i) not in ("et", "ei"):
        digits, i = digits + str(UNITS[parser.at(i)]), i + 1
    small = [r for r in parser.small(after + 1) if not r.ordinal and r.end in word_end]
    if small and max(r.end for r in small) > i:
        r = max(small, key=lambda r: r.end)
        digits, i = str(r.value), r.end
    if not digits:
        return None
    return Number("decimal", number.value, number.start, word_end[i], fraction=digits)
