"""Caption events, the same shape in the library, the CLI's jsonl output and the websocket."""

from __future__ import annotations

from dataclasses import dataclass

from ..text.ctc import Word


@dataclass(frozen=True)
class Partial:
    """A caption's text so far; may still change. The first stable_chars come from stable frames."""

    caption: int  # the caption's number in the stream, from 0 ("segment" on the wire)
    text: str
    stable_chars: int
    start_s: float
    end_s: float
    raw_text: str | None = None  # the model's words, when text is written form
    stable_words: tuple[Word, ...] = ()  # the stable prefix as timed words (not sent on the wire)

    @property
    def raw(self) -> str:
        return self.text if self.raw_text is None else self.raw_text

    def to_json(self) -> dict:
        return {"type": "partial", "segment": self.caption, "text": self.text, "stable_chars": self.stable_chars,
                "raw": self.raw,
                "start": round(self.start_s, 3), "end": round(self.end_s, 3)}


@dataclass(frozen=True)
class Final:
    """A finished caption; never changes. Its words are written tokens (or the model's words, raw)."""

    caption: int  # the caption's number in the stream, from 0 ("segment" on the wire)
    words: tuple[Word, ...]
    start_s: float
    end_s: float
    raw_text: str | None = None  # the model's words, when the words are written form

    @property
    def text(self) -> str:
        return " ".join(w.word for w in self.words)

    @property
    def raw(self) -> str:
        """The model's own words, lowercase, as scored against a reference."""
        return self.text if self.raw_text is None else self.raw_text

    def to_json(self) -> dict:
        return {"type": "final", "segment": self.caption, "text": self.text, "raw": self.raw,
                "start": round(self.start_s, 3), "end": round(self.end_s, 3),
                "words": [w.to_json() for w in self.words]}


def broken_promises(events) -> list[str]:
    """What in a stream's events breaks its promises: text marked stable that a later partial or the final
    of its caption does not begin with, and events of a caption after its final. [] when all is kept."""
    stable: dict[int, str] = {}
    finished: set[int] = set()
    broken = []
    for event in events:
        if not isinstance(event, (Partial, Final)) or event.caption is None:
            continue
        if event.caption in finished:
            broken.append(f"caption {event.caption}: {event.to_json()['type']} after its final")
        promised = stable.get(event.caption, "")
        if not event.text.startswith(promised):
            broken.append(f"caption {event.caption}: stable text {promised!r} revised to {event.text!r}")
        if isinstance(event, Final):
            finished.add(event.caption)
        elif event.stable_chars > len(promised):
            stable[event.caption] = event.text[: event.stable_chars]
    return broken


def cut_positions(events) -> tuple[str, list[int]]:
    """Where a stream's commits cut its text: its finals' texts joined by spaces, and each place inside them
    that a partial's stable prefix ended at (a commit's cut: the words before it were stable, those after
    not yet), as character positions in that text."""
    texts, cuts, offset = [], [], 0
    ends: dict[int, set[int]] = {}
    for event in events:
        if isinstance(event, Partial) and event.caption is not None:
            ends.setdefault(event.caption, set()).add(event.stable_chars)
        elif isinstance(event, Final):
            cuts += [offset + chars for chars in sorted(ends.get(event.caption, ())) if 0 < chars < len(event.text)]
            texts.append(event.text)
            offset += len(event.text) + 1
    return " ".join(texts), cuts


@dataclass(frozen=True)
class Error:
    """Something went wrong that the stream's user must hear of (a code to act on, a message to read)."""

    code: str
    message: str

    def to_json(self) -> dict:
        return {"type": "error", "code": self.code, "message": self.message}
