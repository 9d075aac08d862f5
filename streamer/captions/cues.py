"""Subtitle cues from final words, following Norwegian subtitle practice, and SRT / WebVTT text.

A cue holds at most ``max_lines`` lines of at most ``max_line_chars`` characters, broken at word
boundaries, preferring phrase boundaries (a pause, before a conjunction or a preposition) and
balanced lines; a full cue ends before a clause rather than inside it. It stays on screen ``min_duration_s``–``max_duration_s`` and long enough to be read
at ``max_cps`` characters per second: a cue is held past its last word when the next cue leaves room,
and the next one starts a little later when it does not (at most ``max_delay_s`` after its first
word; faster speech than that shows faster). Cues never overlap. A word longer than a line is
hyphenated across lines, and a word held longer than ``max_duration_s`` still gives a cue of at
most that long. Pure: words in, cues out; ``CueWriter`` numbers them across a stream's finals.

Live, ``LiveCues`` makes the cues of a caption from its stable words as they settle, before its final:
a cue is written when the next word would not fit its lines, a pause or a phrase ends it, or its first
word has waited ``max_hold_s`` of speech for more; the caption's final writes the rest. Written cues
never change, so they are what a viewer sees within about a second or two of the words.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from ..text.ctc import Word
from ..errors import StreamerError

# Norwegian words a clause begins with (conjunctions, subjunctions): a cue or a line may end before them.
CLAUSE_STARTS = frozenset("og men eller for fordi at som når da hvis om selv så enn mens".split())
# Prepositions begin a phrase: a line may break before them.
PHRASE_STARTS = CLAUSE_STARTS | frozenset(
    "til med på i av fra etter under over ved mot uten mellom gjennom hos blant innen".split())


@dataclass(frozen=True)
class CueSettings:
    max_line_chars: int = 42
    max_lines: int = 2
    min_duration_s: float = 0.83
    max_duration_s: float = 7.0
    max_cps: float = 17.0  # characters per second a viewer reads
    max_gap_s: float = 1.0  # a pause this long between words starts a new cue
    max_delay_s: float = 1.0  # how much later than its first word a cue may start to give the one before time
    max_hold_s: float = 1.0  # live: a cue is written once its first word has waited this long (speech time)

    def __post_init__(self) -> None:
        if self.max_hold_s < 0:
            raise StreamerError("cues need max_hold_s ≥ 0")
        if self.max_line_chars < 8 or self.max_lines < 1:
            raise StreamerError("cues need max_line_chars ≥ 8 and max_lines ≥ 1")
        if not 0 < self.min_duration_s <= self.max_duration_s:
            raise StreamerError("cues need 0 < min_duration_s ≤ max_duration_s")
        if self.max_cps <= 0 or self.max_gap_s < 0 or self.max_delay_s < 0:
            raise StreamerError("cues need max_cps > 0, max_gap_s ≥ 0 and max_delay_s ≥ 0")


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    lines: tuple[str, ...]

    @property
    def chars(self) -> int:
        return sum(len(line) for line in self.lines) + len(self.lines) - 1


def split_long_words(words: list[Word], max_chars: int) -> list[Word]:
    """A word longer than a line becomes hyphenated pieces that fit one, its time shared by length."""
    out = []
    for word in words:
        if len(word.word) <= max_chars:
            out.append(word)
            continue
        step = max_chars - 1
        pieces = [word.word[i : i + step] for i in range(0, len(word.word), step)]
        span, done = word.end_s - word.start_s, 0
        for k, piece in enumerate(pieces):
            start = word.start_s + span * done / len(word.word)
            done += len(piece)
            text = piece + ("-" if k < len(pieces) - 1 else "")
            out.append(replace(word, word=text, start_s=start, end_s=word.start_s + span * done / len(word.word)))
    return out


def break_lines(words: list[Word], settings: CueSettings) -> tuple[str, ...] | None:
    """The best way to lay words out in at most max_lines lines, or None when they do not fit."""
    text = " ".join(w.word for w in words)
    if len(text) <= settings.max_line_chars:
        return (text,)
    if settings.max_lines < 2 or len(words) < 2:
        return None
    best, best_cost = None, float("inf")
    for i in range(1, len(words)):
        first, second = " ".join(w.word for w in words[:i]), " ".join(w.word for w in words[i:])
        if len(first) > settings.max_line_chars:
            break
        if len(second) > settings.max_line_chars:
            rest = break_lines(words[i:], replace(settings, max_lines=settings.max_lines - 1))
            if rest is None or settings.max_lines < 3:
                continue
            lines = (first, *rest)
        else:
            lines = (first, second)
        cost = break_cost(words, i, len(first), len(second))
        if cost < best_cost:
            best, best_cost = lines, cost
    return best


def break_cost(words: list[Word], i: int, first_chars: int, second_chars: int) -> float:
    """Lower is better: balanced lines, a break at a pause or before a phrase, not after a function word."""
    cost = abs(first_chars - second_chars) / 4 + (2 if first_chars > second_chars else 0)  # a bottom-heavy pair reads best
    pause = words[i].start_s - words[i - 1].end_s
    if pause >= 0.25:
        cost -= 8
    if words[i].word.lower() in CLAUSE_STARTS:
        cost -= 6
    elif words[i].word.lower() in PHRASE_STARTS:
        cost -= 3
    if words[i - 1].word.lower() in PHRASE_STARTS:
        cost += 6
    return cost


def group_words(words: list[Word], settings: CueSettings) -> list[list[Word]]:
    """Words into cue-sized groups, in order: a new group after a long pause, when the lines are full (then
    at the last phrase boundary in the group's second half, if there is one), or when the group would last
    longer than max_duration_s."""
    groups: list[list[Word]] = []
    for word in split_long_words(words, settings.max_line_chars):
        current = groups[-1] if groups else None
        if current and word.start_s - current[-1].end_s <= settings.max_gap_s \
                and word.end_s - current[0].start_s <= settings.max_duration_s:
            if break_lines(current + [word], settings) is not None:
                current.append(word)
                continue
            cut = phrase_boundary(current)
            if cut is not None:
                groups[-1], moved = current[:cut], current[cut:]
                groups.append(moved + [word] if break_lines(moved + [word], settings) else moved)
                if groups[-1] is moved:
                    groups.append([word])
                continue
        groups.append([word])
    return groups


def phrase_boundary(group: list[Word]) -> int | None:
    """The last index in the group's second half before which a clause begins (after a pause, or at a
    conjunction), so that a full cue can end there instead of inside the clause."""
    chars = [len(w.word) + 1 for w in group]
    half = sum(chars) / 2
    for i in range(len(group) - 1, 0, -1):
        if sum(chars[:i]) < half:
            return None
        if group[i].word.lower() in CLAUSE_STARTS or group[i].start_s - group[i - 1].end_s >= 0.25:
            return i
    return None


def time_cues(groups: list[list[Word]], settings: CueSettings, not_before_s: float = 0.0) -> list[Cue]:
    """On-screen times: from the first word (or when the cue before leaves the screen, up to max_delay_s
    later) to when it has been readable long enough, held past its last word while the next cue leaves
    room; min_duration_s..max_duration_s, never overlapping."""
    cues = []
    for i, group in enumerate(groups):
        lines = break_lines(group, settings)
        chars = sum(len(line) for line in lines) + len(lines) - 1
        start = max(group[0].start_s, not_before_s)
        needed = max(settings.min_duration_s, chars / settings.max_cps, min(group[-1].end_s - start, settings.max_duration_s))
        end = start + min(needed, settings.max_duration_s)
        if i + 1 < len(groups):  # leave the next cue its start, unless that would squeeze this one below readable
            latest_next = groups[i + 1][0].start_s + settings.max_delay_s
            end = max(min(end, latest_next), start + settings.min_duration_s)
        cues.append(Cue(start, end, lines))
        not_before_s = end
    return cues


def make_cues(words: list[Word], settings: CueSettings = CueSettings(), not_before_s: float = 0.0) -> list[Cue]:
    """Cues of words in order; the first starts no earlier than not_before_s (where the last cue ended)."""
    return time_cues(group_words(words, settings), settings, not_before_s)


def cue_problems(cues: list[Cue], settings: CueSettings = CueSettings()) -> list[str]:
    """What in cues breaks the rules of CueSettings (reading speed aside, which fast speech may exceed)."""
    problems = []
    for k, cue in enumerate(cues):
        duration = cue.end_s - cue.start_s
        if not cue.lines or len(cue.lines) > settings.max_lines:
            problems.append(f"cue {k}: {len(cue.lines)} lines")
        if any(len(line) > settings.max_line_chars or not line.strip() for line in cue.lines):
            problems.append(f"cue {k}: a line is empty or longer than {settings.max_line_chars}: {cue.lines}")
        if not settings.min_duration_s - 1e-6 <= duration <= settings.max_duration_s + 1e-6:
            problems.append(f"cue {k}: {duration:.3f} s on screen")
        if k and cue.start_s < cues[k - 1].end_s - 1e-6:
            problems.append(f"cue {k} starts at {cue.start_s:.3f} before the cue before ends ({cues[k - 1].end_s:.3f})")
    return problems


def timestamp(seconds: float, decimal: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def srt_cue(index: int, cue: Cue) -> str:
    return f"{index}\n{timestamp(cue.start_s, ',')} --> {timestamp(cue.end_s, ',')}\n" + "\n".join(cue.lines) + "\n\n"


def vtt_cue(cue: Cue) -> str:
    return f"{timestamp(cue.start_s, '.')} --> {timestamp(cue.end_s, '.')}\n" + "\n".join(cue.lines) + "\n\n"


VTT_HEADER = "WEBVTT\n\n"


class CueWriter:
    """Cues for each final as it comes, each one starting after the one before has left the screen, and
    their SRT or WebVTT text: the one place cues are counted (count) and numbered across a stream."""

    def __init__(self, fmt: str = "srt", settings: CueSettings = CueSettings()):
        self.fmt, self.settings, self.count, self.last_end_s = fmt, settings, 0, 0.0

    def header(self, fmt: str | None = None) -> str:
        return VTT_HEADER if (fmt or self.fmt) == "vtt" else ""

    def cues(self, words: list[Word]) -> list[Cue]:
        """The next cues, counted: afterwards they are numbers count - len(cues) + 1 to count."""
        cues = make_cues(words, self.settings, self.last_end_s)
        if cues:
            self.last_end_s = cues[-1].end_s
        self.count += len(cues)
        return cues

    def cue_groups(self, groups: list[list[Word]], count: int) -> list[Cue]:
        """Cues of the first count groups (timed knowing the group after them, if any), counted."""
        cues = time_cues(groups, self.settings, self.last_end_s)[:count]
        if cues:
            self.last_end_s = cues[-1].end_s
        self.count += len(cues)
        return cues

    def text(self, cues: list[Cue], fmt: str | None = None) -> str:
        """The text of the cues cues() gave last (SRT numbers them on from the cues before), in fmt: "srt"
        or "vtt", the writer's own by default."""
        first = self.count - len(cues) + 1
        return "".join(srt_cue(first + i, cue) if (fmt or self.fmt) == "srt" else vtt_cue(cue)
                       for i, cue in enumerate(cues))

    def segment(self, words: list[Word]) -> str:
        """The next cues' text in the writer's format."""
        return self.text(self.cues(words))


class LiveCues:
    """Cues of a live stream's captions, made from stable words as they settle (see the module doc).

    stable(caption, words) takes a partial's stable words, final(caption, words) the caption's final;
    both return the cues they complete, counted by the CueWriter. A newer caption's stable words wait
    until the final of the one before (its cues come first). Stable words are whole words with speech
    after them, so they are cued without waiting for the next one; the one case where the final still
    adds to a cued word is a pause commit that finds no word where the partial showed one after them:
    the final's full stop on that word is then not in its cue."""

    def __init__(self, writer: CueWriter):
        self.writer, self.settings = writer, writer.settings
        self._caption: int | None = None  # the caption being cued
        self._done = 0  # its word pieces already in cues
        self._finished = -1  # the newest caption whose final came

    def stable(self, caption: int, words: Sequence[Word]) -> list[Cue]:
        if caption <= self._finished or not words:
            return []
        if self._caption is None:
            self._caption, self._done = caption, 0
        if caption != self._caption:
            return []
        # whole words, each followed by more speech (a partial's last word is never stable): cued as they come
        pieces = split_long_words(list(words), self.settings.max_line_chars)
        return self._cue(pieces[self._done:], horizon_s=words[-1].end_s)

    def final(self, caption: int, words: Sequence[Word]) -> list[Cue]:
        done = self._done if caption == self._caption else 0
        self._caption, self._done, self._finished = None, 0, caption
        pieces = split_long_words(list(words), self.settings.max_line_chars)
        return self._cue(pieces[done:], horizon_s=None)

    def _cue(self, pieces: list[Word], horizon_s: float | None) -> list[Cue]:
        """horizon_s: how far speech has settled (None: the caption is final, every group is complete)."""
        if not pieces:
            return []
        groups = group_words(pieces, self.settings)
        ready = len(groups) - 1 if horizon_s is not None else len(groups)
        if horizon_s is not None and horizon_s - groups[-1][0].end_s >= self.settings.max_hold_s:
            ready += 1  # its first word has waited long enough
        self._done += sum(len(group) for group in groups[:ready])
        return self.writer.cue_groups(groups, ready) if ready else []
