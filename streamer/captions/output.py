"""CLI output: captions written as they become final (text, json, jsonl, srt, vtt), to a file safely, and a live
terminal view."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable, Iterator, TextIO

import numpy as np

from ..model.geometry import SAMPLE_RATE

from .cues import CueWriter
from ..text.ctc import Word
from ..core.events import Final, Partial
from ..files import AtomicTextFile


class CaptionSink:
    """Writes each final as soon as it exists (json, which is one document, at close)."""

    def __init__(self, fmt: str, out: TextIO):
        self.fmt, self.out = fmt, out
        self.cues = CueWriter(fmt) if fmt in ("srt", "vtt") else None
        self.finals: list[Final] = []
        if self.cues:
            self._write(self.cues.header())

    def _write(self, text: str) -> None:
        if text:
            self.out.write(text)
            self.out.flush()

    def event(self, event) -> None:
        if self.fmt == "jsonl":
            self._write(json.dumps(event.to_json(), ensure_ascii=False) + "\n")
        if isinstance(event, Final):
            self.final(event)

    def final(self, final: Final) -> None:
        self.finals.append(final)
        if self.fmt == "text":
            self._write(final.text + "\n")
        elif self.cues:
            self._write(self.cues.segment(list(final.words)))

    def close(self, duration_s: float) -> None:
        if self.fmt == "json":
            words: list[Word] = [w for f in self.finals for w in f.words]
            self._write(json.dumps({
                "text": " ".join(f.text for f in self.finals),
                "raw": " ".join(f.raw for f in self.finals),
                "words": [w.to_json() for w in words],
                "duration": round(duration_s, 3),
                "segments": [{"start": round(f.start_s, 3), "end": round(f.end_s, 3), "text": f.text, "raw": f.raw}
                             for f in self.finals],
            }, ensure_ascii=False, indent=1) + "\n")


class TerminalView:
    """Finals scroll up; the partial line is redrawn in place (dim unstable tail). Into a pipe or a file only
    the finals go, a line each, with no control characters."""

    def __init__(self, out: TextIO):
        self.out = out
        self.color = self.live = out.isatty()

    def event(self, event) -> None:
        if not self.live:
            if isinstance(event, Final):
                self.out.write(f"[{event.start_s:7.2f}] {event.text}\n")
                self.out.flush()
            return
        width = shutil.get_terminal_size((100, 20)).columns - 1
        if isinstance(event, Partial):
            text = event.text[-width:]
            stable = max(0, event.stable_chars - (len(event.text) - len(text)))
            if self.color:
                text = text[:stable] + "\033[2m" + text[stable:] + "\033[0m"
            self.out.write("\r\033[K" + text)
        elif isinstance(event, Final):
            self.out.write("\r\033[K" + f"[{event.start_s:7.2f}] {event.text}\n")
        self.out.flush()

    def notice(self, text: str) -> None:
        """A line of its own (a warning), where the partial line was; the next partial redraws it."""
        self.out.write(("\r\033[K" if self.live else "") + f"[streamer] {text}\n")
        self.out.flush()


class Counter:
    """Counts the samples that flow through, for the duration of the input."""

    def __init__(self, blocks: Iterator[np.ndarray]):
        self.blocks, self.samples = blocks, 0

    def __iter__(self):
        for block in self.blocks:
            self.samples += len(block)
            yield block


def write_captions(events, out, fmt: str, blocks: Counter) -> None:
    feed(CaptionSink(fmt, out), events, blocks)


def write_captions_to_file(events, path: Path, fmt: str, blocks: Counter, log: Callable[[str], None]) -> None:
    """The file is replaced only when the whole input went well; a run that fails midway leaves it as it
    was and keeps the captions it made in FILE.partial."""

    target = AtomicTextFile(path)
    with target as out:
        sink = CaptionSink(fmt, out)
        target.keep_partial = lambda: bool(sink.finals)
        try:
            feed(sink, events, blocks)
        except BaseException:
            if sink.finals and target.atomic:
                log(f"{len(sink.finals)} captions (up to {sink.finals[-1].end_s:.1f} s) are kept in "
                    f"{target.partial_path}; {path} was left as it was")
            raise


def feed(sink, events, blocks: Counter) -> None:
    """Every event into the sink; what was made is closed (json written) even when the input fails midway."""
    try:
        for event in events:
            sink.event(event)
    finally:
        sink.close(blocks.samples / SAMPLE_RATE)
