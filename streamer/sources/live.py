"""Live ingest: an ffmpeg subprocess on any URL or file, reconnected when a live input drops or stalls,
with its audio kept on the input's own clock.

``LiveSource(source).blocks()`` yields 16 kHz mono int16 blocks whose sample count is programme time:
time 0 is the first audio timestamp of the first connection (ffmpeg runs with ``-copyts`` and reports
the first frame's timestamp), and after a reconnect the audio resumes at the timestamp the input
gives then. What was missed becomes silence of the same length; audio the input repeats (it rejoined
earlier than it left) is skipped. So captions stay on the stream's clock, and a gap is a gap.

An input that fails before it ever gave audio for a reason that will not change (404, no audio stream,
not a media file) is an error at once; anything else is retried with backoff (1, 2, 4, 8, 15 s) for
``retry_s``, each attempt's reason said through ``log``. A live input (rtmp, rtsp, srt, udp, an HLS
playlist without #EXT-X-ENDLIST) that ends is waited for like one that dropped; a file ends the
stream.

After a reconnect to a live HLS playlist, ffmpeg starts where the audio stopped when the playlist
still lists that segment (``-live_start_index`` far enough back, and audio already received skipped),
not at the live edge: an outage shorter than the playlist's window loses nothing.

What the source meets of the world (the clock, the waits between attempts, the ffmpeg runs, the HLS
playlists) comes in as ``LiveSource``'s keyword arguments, the real ones by default, so that tests
can drive reconnects and outages with a fake ffmpeg on a fake clock (tests/test_live_source.py).
"""

from __future__ import annotations

import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from ..model.geometry import SAMPLE_RATE
from .ffmpeg import FfmpegProcess, check_input, is_url
from ..errors import StreamerError

BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 15.0)
LIVE_SCHEMES = ("rtmp://", "rtmps://", "rtsp://", "srt://", "udp://", "tcp://")
PERMANENT = ("has no audio stream", "is not a media file", "not found (404)", "forbidden (403)",
             "unauthorized (401)", "no such file")


@dataclass(frozen=True)
class IngestSettings:
    realtime: bool = False  # read a file no faster than it plays (ffmpeg -re)
    live: bool | None = None  # None: from the input (see is_live)
    retry_s: float = 60.0  # keep reconnecting this long after a drop (or before the first audio)
    stall_s: float = 15.0  # no audio for this long from a live input counts as a drop
    block_samples: int = SAMPLE_RATE // 10

    def __post_init__(self) -> None:
        if self.retry_s < 0 or self.stall_s <= 0 or self.block_samples < 1:
            raise StreamerError("ingest needs retry_s ≥ 0, stall_s > 0 and block_samples ≥ 1")


@dataclass(frozen=True)
class Gap:
    """Programme time the input did not deliver, and why."""

    start_s: float
    end_s: float
    reason: str


def is_hls(source: str) -> bool:
    return is_url(source) and ".m3u8" in source.split("?")[0]


def fetch_playlist(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read(1 << 20).decode("utf-8", "replace")


def is_live(source: str, default: bool = False, fetch: Callable[[str], str] = fetch_playlist) -> bool:
    """rtmp/rtsp/srt/udp/tcp inputs, and HLS playlists (read with fetch) that do not (yet) end with
    #EXT-X-ENDLIST; for anything else, default."""
    if source.startswith(LIVE_SCHEMES):
        return True
    if is_hls(source):
        try:
            return "#EXT-X-ENDLIST" not in fetch(source)
        except OSError:
            return True  # not reachable now: a live input that may come back
    return default


def listed_segments_s(url: str, fetch: Callable[[str], str] = fetch_playlist) -> list[float] | None:
    """The durations of the segments an HLS playlist lists now (a master playlist's first variant's), or
    None when it cannot be read."""
    try:
        text = fetch(url)
        if "#EXT-X-STREAM-INF" in text:
            lines = text.splitlines()
            at = next(i for i, line in enumerate(lines) if line.startswith("#EXT-X-STREAM-INF"))
            variant = next(line.strip() for line in lines[at + 1:] if line.strip() and not line.startswith("#"))
            text = fetch(urllib.parse.urljoin(url, variant))
        return [float(line[len("#EXTINF:"):].split(",")[0]) for line in text.splitlines()
                if line.startswith("#EXTINF:")]
    except (OSError, ValueError, StopIteration):
        return None


def resume_index(durations_s: list[float], behind_s: float) -> int:
    """ffmpeg's -live_start_index for a playlist whose live edge is behind_s past where the audio stopped:
    enough segments from the end to cover it, one more for the segment that was being read, and never
    fewer than ffmpeg's own 3; 0 (the first listed) when the playlist does not reach back that far."""
    count, covered_s = 0, 0.0
    for duration_s in reversed(durations_s):
        if covered_s >= behind_s:
            break
        covered_s, count = covered_s + duration_s, count + 1
    count = max(3, count + 1)
    return 0 if count >= len(durations_s) else -count


class LiveSource:
    def __init__(self, source: str, settings: IngestSettings = IngestSettings(),
                 log: Callable[[str], None] = lambda message: None, stop: threading.Event | None = None, *,
                 clock: Callable[[], float] = time.monotonic, wait: Callable[[float], bool] | None = None,
                 process: Callable[..., FfmpegProcess] = FfmpegProcess,
                 fetch: Callable[[str], str] = fetch_playlist):
        """stop: set it to end the blocks (between blocks, or during a wait to reconnect).

        The world, for tests to replace: clock() is the time in seconds (for retry_s and for how far
        back to take up a playlist); wait(seconds) waits between attempts and is True when stop was set
        meanwhile (default: stop.wait); process(source, realtime=, timestamps=, stall_s=,
        input_options=) starts one ffmpeg run (an FfmpegProcess or anything with its chunks, first_pts,
        check and close); fetch(url) is an HLS playlist's text (OSError when it cannot be read)."""
        check_input(source)
        self.source, self.settings, self.log = source, settings, log
        self.stop = stop or threading.Event()
        self.clock, self.wait, self.process, self.fetch = clock, wait or self.stop.wait, process, fetch
        self.live = is_live(source, fetch=fetch) if settings.live is None else settings.live
        self.position = 0  # samples delivered, on the programme clock
        self.origin_pts_s: float | None = None  # the input's timestamp at programme time 0
        self.gaps: list[Gap] = []
        self._audio_at = 0.0  # clock() when the last new audio came

    @property
    def position_s(self) -> float:
        return self.position / SAMPLE_RATE

    def blocks(self) -> Iterator[np.ndarray]:
        """Blocks on the programme clock until the input ends (or cannot be reached for retry_s)."""
        failing_since, attempt, reason = None, 0, ""
        while True:
            connection = Connection(self.source, self.settings, self._take_up_options(), self.process)
            delivered, skip = False, 0  # delivered: new audio came (not only audio already received)
            try:
                for pts_s, block in connection.blocks():
                    if pts_s is not None:  # the connection's first audio
                        skip = yield from self._resume(pts_s, reason)
                    if skip:
                        dropped = min(skip, len(block))
                        block, skip = block[dropped:], skip - dropped
                    if len(block):
                        delivered, failing_since, attempt = True, None, 0
                        self._audio_at = self.clock()
                        self.position += len(block)
                        yield block
                    if self.stop.is_set():
                        return
                if not self.live or not is_live(self.source, default=True, fetch=self.fetch):
                    return  # a file, or a live programme that has ended (its playlist says so now)
                reason = "the input ended"
            except StreamerError as exc:
                reason = str(exc)
                if self.origin_pts_s is None and any(sign in reason for sign in PERMANENT):
                    raise
            finally:
                connection.close()
            now = self.clock()
            failing_since = now if failing_since is None or delivered else failing_since
            if now - failing_since >= self.settings.retry_s:
                if self.origin_pts_s is None:
                    raise StreamerError(f"{reason} (gave up after {self.settings.retry_s:g} s of retries)")
                self.log(f"input lost at {self.position_s:.1f} s and not back for {self.settings.retry_s:g} s "
                         f"({reason}): ending")
                return
            wait = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
            self.log(f"input {'dropped' if self.origin_pts_s is not None else 'not reachable'} at "
                     f"{self.position_s:.1f} s: {reason}; retrying in {wait:g} s")
            attempt += 1
            if self.wait(wait):
                return

    def _take_up_options(self) -> tuple[str, ...]:
        """On a reconnect to a live HLS playlist: start as far back as the audio stopped (ffmpeg's default is
        the live edge, which would lose the segments published during the outage)."""
        if self.origin_pts_s is None or not self.live or not is_hls(self.source):
            return ()
        durations_s = listed_segments_s(self.source, self.fetch)
        if not durations_s:
            return ()
        index = resume_index(durations_s, self.clock() - self._audio_at)
        self.log(f"taking up the playlist {len(durations_s) if index == 0 else -index} of its {len(durations_s)} "
                 "segments back, where the audio stopped")
        return ("-live_start_index", str(index))

    def _resume(self, pts_s: float, reason: str):
        """Place a connection's first audio on the programme clock: silence for what was missed (yielded),
        or the number of samples to skip when the input repeats audio already delivered (returned)."""
        if self.origin_pts_s is None:
            self.origin_pts_s = pts_s
            return 0
        at = round((pts_s - self.origin_pts_s) * SAMPLE_RATE)
        if at > self.position:
            gap = Gap(self.position_s, at / SAMPLE_RATE, reason or "the input dropped")
            self.gaps.append(gap)
            self.log(f"input back: programme time {gap.start_s:.1f}–{gap.end_s:.1f} s was missed ({gap.reason})")
            while self.position < at:
                n = min(self.settings.block_samples, at - self.position)
                self.position += n
                yield np.zeros(n, np.int16)
        elif at < self.position:
            self.log(f"input back {(self.position - at) / SAMPLE_RATE:.1f} s before where it left: "
                     "skipping what was already received")
        return max(0, self.position - at)


class Connection:
    """One ffmpeg run: (timestamp of its first audio in seconds, block) pairs, timestamp None after the
    first; raises StreamerError with ffmpeg's reason when it fails or stalls."""

    def __init__(self, source: str, settings: IngestSettings, input_options: tuple[str, ...] = (),
                 process: Callable[..., FfmpegProcess] = FfmpegProcess):
        self.source, self.settings = source, settings
        self.ffmpeg = process(source, realtime=settings.realtime, timestamps=True, stall_s=settings.stall_s,
                              input_options=input_options)

    def blocks(self) -> Iterator[tuple[float | None, np.ndarray]]:
        """The first block holds at least block_samples samples, later ones what has come since."""
        size = self.settings.block_samples * 2
        pending = b""
        first = True
        for chunk in self.ffmpeg.chunks(size):
            pending += chunk
            usable = len(pending) // 2 * 2
            if usable < (size if first else 2):
                continue
            block, pending = np.frombuffer(pending[:usable], np.int16).copy(), pending[usable:]
            pts_s = self.ffmpeg.first_pts() if first else None
            first = False
            yield pts_s, block
        self.ffmpeg.check(gave_audio=not first)

    def close(self) -> None:
        self.ffmpeg.close()
