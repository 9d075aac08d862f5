"""Caption formatting: words → cues (≤ 2 lines of 42 characters, 0.83–7 s) → SRT, WebVTT."""

from __future__ import annotations

from dataclasses import dataclass

from .ctc import Word


@dataclass(frozen=True)
class CueSettings:
    max_line_chars: int = 42
    max_lines: int = 2
    min_duration_s: float = 0.83
    max_duration_s: float = 7.0
    max_gap_s: float = 1.0  # a longer pause between words starts a new cue


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    lines: tuple[str, ...]


def split_lines(words: list[str], max_line_chars: int) -> tuple[str, ...]:
    """One line if it fits, else two lines split where they are most even."""
    text = " ".join(words)
    if len(text) <= max_line_chars or len(words) < 2:
        return (text,)
    best = min(range(1, len(words)), key=lambda i: abs(len(" ".join(words[:i])) - len(" ".join(words[i:]))))
    return (" ".join(words[:best]), " ".join(words[best:]))


def _fits(words: list[Word], settings: CueSettings) -> bool:
    """Live speech cannot be slowed down, so cues are bounded by lines and time, not reading speed."""
    lines = split_lines([w.word for w in words], settings.max_line_chars)
    return (
        len(lines) <= settings.max_lines
        and all(len(line) <= settings.max_line_chars for line in lines)
        and words[-1].end_s - words[0].start_s <= settings.max_duration_s
    )


def group_words(words: list[Word], settings: CueSettings = CueSettings()) -> list[list[Word]]:
    groups: list[list[Word]] = []
    for word in words:
        current = groups[-1] if groups else None
        if current and word.start_s - current[-1].end_s <= settings.max_gap_s and _fits(current + [word], settings):
            current.append(word)
        else:
            groups.append([word])
    return groups


def make_cues(words: list[Word], until_s: float, settings: CueSettings = CueSettings()) -> list[Cue]:
    """Cues of one segment (a cue never spans two); a short cue is held up to the minimum time, but
    never past the next cue nor past until_s (where the segment ends), so cues can be written as soon
    as each segment is final."""
    groups = group_words(words, settings)
    cues = []
    for i, group in enumerate(groups):
        start, end = group[0].start_s, group[-1].end_s
        limit = groups[i + 1][0].start_s if i + 1 < len(groups) else until_s
        end = max(end, min(start + settings.min_duration_s, limit))
        cues.append(Cue(start, end, split_lines([w.word for w in group], settings.max_line_chars)))
    return cues


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


def to_srt(cues: list[Cue], first_index: int = 1) -> str:
    return "".join(srt_cue(i, cue) for i, cue in enumerate(cues, start=first_index))


def to_vtt(cues: list[Cue]) -> str:
    return "".join(vtt_cue(cue) for cue in cues)


class CueWriter:
    """SRT or WebVTT text for each final segment as it comes, numbered across the whole stream."""

    def __init__(self, fmt: str, settings: CueSettings = CueSettings()):
        self.fmt, self.settings, self.count = fmt, settings, 0

    def header(self) -> str:
        return VTT_HEADER if self.fmt == "vtt" else ""

    def segment(self, words: list[Word], until_s: float) -> str:
        cues = make_cues(words, until_s, self.settings)
        text = to_srt(cues, self.count + 1) if self.fmt == "srt" else to_vtt(cues)
        self.count += len(cues)
        return text
