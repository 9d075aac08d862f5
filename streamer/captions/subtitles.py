"""Subtitle files that grow as people speak: SRT, WebVTT, JSONL events, and segmented WebVTT for HLS.

Cues are made from stable words as they settle (``streamer.captions.cues.LiveCues``), not when a caption's
final comes, and are appended at once, each also a ``cue`` line in the JSONL; nothing written is
rewritten. The HLS output writes numbered WebVTT segments of ``segment_s`` with an
X-TIMESTAMP-MAP that puts programme time 0 at the input's own first timestamp (MPEG-TS 90 kHz
clock), and a subtitle playlist, so a player shows the captions on the original stream. A segment is
written once every cue that could show in it is known, atomically, then the playlist.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

from .cues import VTT_HEADER, Cue, CueSettings, CueWriter, LiveCues, vtt_cue
from ..errors import StreamerError
from ..core.events import Final, Partial
from ..files import check_dir_target, check_file_target, write_atomically, written_through

PLAYLIST = "subtitles.m3u8"

HLS_SEGMENT_S = 6.0  # length of a segment of the HLS subtitle output
HLS_KEPT = "; the segments before it stand"


class GrowingFile:
    """A subtitle file that is appended to and flushed as captions come (unbuffered: what a write returns
    from is on its way to the disk). A write that fails (the disk is full) is undone, so the file still
    ends at a whole cue or line, and is a StreamerError that says so; later writes are skipped."""

    def __init__(self, path: Path, overwrite: bool):
        check_file_target(path)
        if path.exists() and not overwrite and not written_through(path):  # a pipe or device is not replaced
            raise StreamerError(f"{path} exists: choose another file, or --overwrite to replace it")
        self.path, self.size, self.broken = path, 0, False
        self._file = open(path, "wb", buffering=0)

    def write(self, text: str) -> None:
        if self.broken or not text:
            return
        data = memoryview(text.encode("utf-8"))
        try:
            while data:
                data = data[self._file.write(data):]
        except OSError as exc:
            self.broken = True
            self._undo()
            raise StreamerError(f"cannot write {self.path}: {exc.strerror or exc}; it keeps the captions written "
                                "before") from None
        self.size += len(text.encode("utf-8"))

    def _undo(self) -> None:
        """Cut a half-written cue off a regular file (a device or pipe cannot be cut)."""
        try:
            if os.path.isfile(self.path):
                os.ftruncate(self._file.fileno(), self.size)
        except OSError:
            pass

    def close(self) -> None:
        self._file.close()


class HlsSubtitles:
    """Numbered WebVTT segments and their playlist in a folder, written as programme time passes."""

    def __init__(self, folder: Path, segment_s: float = HLS_SEGMENT_S, overwrite: bool = False):
        check_dir_target(folder, "--hls-dir")
        self.folder, self.segment_s = Path(folder), segment_s
        self.folder.mkdir(parents=True, exist_ok=True)
        if (self.folder / PLAYLIST).exists() and not overwrite:
            raise StreamerError(f"{self.folder / PLAYLIST} exists: choose another --hls-dir, or --overwrite")
        self.cues: list[Cue] = []
        self.written = 0  # segments written
        self.origin_pts_s = 0.0  # the input's timestamp at programme time 0

    def add(self, cues: list[Cue], known_until_s: float) -> None:
        """New cues; every cue that starts before known_until_s is known."""
        self.cues += cues
        while (self.written + 1) * self.segment_s <= known_until_s:
            self._write_segment()
        self.cues = [c for c in self.cues if c.end_s > self.written * self.segment_s]

    def close(self, end_s: float) -> None:
        while self.written * self.segment_s < end_s or self.written == 0:
            self._write_segment()
        self._write_playlist(ended=True)

    def _write_segment(self) -> None:
        start, end = self.written * self.segment_s, (self.written + 1) * self.segment_s
        mpegts = round(self.origin_pts_s * 90_000) % 2**33
        text = VTT_HEADER.replace("\n\n", f"\nX-TIMESTAMP-MAP=MPEGTS:{mpegts},LOCAL:00:00:00.000\n\n")
        text += "".join(vtt_cue(c) for c in self.cues if c.start_s < end and c.end_s > start)
        write_atomically(self.folder / segment_name(self.written), text, HLS_KEPT)
        self.written += 1
        self._write_playlist(ended=False)

    def _write_playlist(self, ended: bool) -> None:
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{math.ceil(self.segment_s)}",
                 "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-PLAYLIST-TYPE:EVENT"]
        for k in range(self.written):
            lines += [f"#EXTINF:{self.segment_s:.3f},", segment_name(k)]
        lines += ["#EXT-X-ENDLIST"] if ended else []
        write_atomically(self.folder / PLAYLIST, "\n".join(lines) + "\n", HLS_KEPT)


def segment_name(k: int) -> str:
    return f"subtitles_{k:05d}.vtt"


class SubtitleFiles:
    """Events of a stream into the files asked for, each final's cues appended and flushed as it comes."""

    def __init__(self, srt: Path | None = None, vtt: Path | None = None, jsonl: Path | None = None,
                 hls_dir: Path | None = None, settings: CueSettings = CueSettings(), hls_segment_s: float = HLS_SEGMENT_S,
                 overwrite: bool = False):
        if not (srt or vtt or jsonl or hls_dir):
            raise StreamerError("nothing to write: give --srt FILE, --vtt FILE, --jsonl FILE or --hls-dir DIR")
        self.created = [Path(p) for p in (srt, vtt, jsonl) if p and not Path(p).exists()]  # removed if nothing comes
        self.srt = GrowingFile(Path(srt), overwrite) if srt else None
        self.vtt = GrowingFile(Path(vtt), overwrite) if vtt else None
        self.jsonl = GrowingFile(Path(jsonl), overwrite) if jsonl else None
        self.written = 0  # events and notes written
        self.hls = HlsSubtitles(Path(hls_dir), hls_segment_s, overwrite) if hls_dir else None
        self.cue_writer = CueWriter(settings=settings)
        self.live = LiveCues(self.cue_writer)
        self._gaps: list[dict] = []  # gap lines waiting for the finals before them
        self.finals = 0
        self.final_end_s = 0.0
        self._write(self.vtt, self.cue_writer.header("vtt"))

    @property
    def cue_count(self) -> int:
        return self.cue_writer.count

    def _write(self, out: GrowingFile | None, text: str) -> None:
        if out is not None:
            out.write(text)

    def event(self, event) -> None:
        """A stream event: into the JSONL as it is; the cues it completes (a partial's settled words, or the
        rest of a final's) into every file, each also a ``cue`` line in the JSONL."""
        if isinstance(event, Final) and self._gaps and event.start_s < self._gaps[0]["start"] < event.end_s:
            event = dataclasses.replace(event, end_s=self._gaps[0]["start"])  # its silence was the gap's
        self.written += 1
        self._write(self.jsonl, json.dumps(event.to_json(), ensure_ascii=False) + "\n")
        if isinstance(event, Final):
            self._cues(self.live.final(event.caption, event.words), known_until_s=event.end_s)
            self.finals += 1
            self.final_end_s = event.end_s
        elif isinstance(event, Partial) and event.stable_words:
            self._cues(self.live.stable(event.caption, event.stable_words), known_until_s=0.0)

    def _cues(self, cues: list[Cue], known_until_s: float) -> None:
        first = self.cue_writer.count - len(cues) + 1
        for number, cue in enumerate(cues, first):
            self._write(self.jsonl, json.dumps({"type": "cue", "number": number, "start": round(cue.start_s, 3),
                                                "end": round(cue.end_s, 3), "text": "\n".join(cue.lines)},
                                               ensure_ascii=False) + "\n")
        self._write(self.srt, self.cue_writer.text(cues, "srt"))
        self._write(self.vtt, self.cue_writer.text(cues, "vtt"))
        if self.hls is not None and (cues or known_until_s):
            # a cue still to come starts after the last one written, and after what is final
            self.hls.add(cues, max(known_until_s, self.cue_writer.last_end_s))

    def note(self, record: dict) -> None:
        """A line of its own in the JSONL file."""
        self._write(self.jsonl, json.dumps(record, ensure_ascii=False) + "\n")
        self.written += 1

    def gap(self, start_s: float, end_s: float, reason: str) -> None:
        """Programme time with no audio (the input dropped, or audio was skipped): a ``gap`` line in the
        JSONL, in time order: it waits until settled() passes its start, after the finals before it."""
        self._gaps.append({"type": "gap", "start": round(start_s, 3), "end": round(end_s, 3), "reason": reason})

    def settled(self, until_s: float) -> None:
        """Every final before until_s has been given to event(): the gap lines up to there are due."""
        while self._gaps and self._gaps[0]["start"] <= until_s:
            self.note(self._gaps.pop(0))

    def close(self, end_s: float, failed: bool = False) -> None:
        """failed: the run ended in an error; files it created and never wrote a caption into are removed, so
        the next run is not refused for files that hold nothing."""
        broken = any(out is not None and out.broken for out in (self.srt, self.vtt, self.jsonl))
        if not broken:
            self.settled(math.inf)
        empty = failed and self.written == 0
        if self.hls is not None and not empty and not broken:
            try:
                self.hls.close(max(end_s, self.cue_writer.last_end_s))
            except StreamerError:
                if not failed:
                    raise  # else the run's own error says what went wrong
        for out in (self.srt, self.vtt, self.jsonl):
            if out is not None:
                out.close()
        if empty:
            for path in self.created:
                path.unlink(missing_ok=True)

