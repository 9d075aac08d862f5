"""LiveSource's reconnects, outages, stalls and retries, driven by a fake ffmpeg on a fake clock: what the
end-to-end outage tests (test_subtitle.py, test_broadcast.py) show through real processes in real time,
shown here at the source, sample for sample, in milliseconds.

``FakeHls`` is a live HLS programme as ffmpeg meets it: segments published as the (fake) clock passes,
a playlist that slides or not, a server that goes down and a playlist that stops growing for spans of
the clock. Its ffmpeg runs (``FakeFfmpeg``) start where ``-live_start_index`` says, report their first
timestamp as ashowinfo does and fail as ffmpeg does (an exit code and stderr, read by the real
explain_ffmpeg_error); the waits between attempts advance the clock instead of sleeping."""

from __future__ import annotations

import math
import re
import threading
import urllib.error
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pytest

from streamer.errors import StreamerError
from streamer.model.geometry import SAMPLE_RATE
from streamer.sources.ffmpeg import PTS_LINE, exit_error, stall_error
from streamer.sources.live import Gap, IngestSettings, LiveSource

URL = "http://127.0.0.1:9/live.m3u8"
SEGMENT_S = 2.0
SEGMENT = int(SEGMENT_S * SAMPLE_RATE)
PTS_START_S = 1.4  # where MPEG-TS timestamps start
STEP_S = 0.25  # how often a waiting ffmpeg looks again (a binary fraction: the fake clock stays exact)
REFUSED = f"[tcp @ 0x55d0] Connection to tcp://127.0.0.1:9 failed: Connection refused\n{URL}: Connection refused\n"


class Clock:
    """Fake time: it moves only when told to (a run waiting for audio, a wait between attempts)."""

    def __init__(self) -> None:
        self.now_s = 5000.0
        self.waits_s: list[float] = []

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds

    def wait(self, seconds: float) -> bool:
        """LiveSource's wait between attempts: no stop ever comes (a source that would retry for ever fails)."""
        self.waits_s.append(seconds)
        assert sum(self.waits_s) < 3600, "still retrying after an hour"
        self.advance(seconds)
        return False


@dataclass(frozen=True)
class Exit:
    """A run's end as ffmpeg reports it."""

    returncode: int = 0
    stderr: str = ""


@dataclass(frozen=True)
class Idle:
    """No output for this long."""

    seconds: float


class FakeFfmpeg:
    """What LiveSource uses of FfmpegProcess, playing a script: PCM (bytes), Idle spells (the clock moves;
    stall_s of them is the real stall error), then an Exit (the real exit_error reads it)."""

    def __init__(self, clock: Clock, source: str, stall_s: float | None, script: Iterator, pts_s: float = 0.0):
        self.clock, self.source, self.stall_s, self.script = clock, source, stall_s, script
        self.stderr = f"[Parsed_ashowinfo_0 @ 0x55d1] n:0 pts:{round(pts_s * 90000)} pts_time:{pts_s:g}\n"
        self.exit, self.closed = Exit(), False

    def chunks(self, size: int) -> Iterator[bytes]:
        idle_s = 0.0
        for step in self.script:
            if isinstance(step, Exit):
                self.exit = step
                return
            if isinstance(step, Idle):
                spent_s = step.seconds if self.stall_s is None else min(step.seconds, self.stall_s - idle_s)
                self.clock.advance(spent_s)
                idle_s += spent_s
                if self.stall_s is not None and idle_s >= self.stall_s - 1e-9:
                    raise stall_error(self.source, self.stall_s)
                continue
            idle_s = 0.0
            for at in range(0, len(step), size):
                yield step[at:at + size]

    def first_pts(self) -> float:
        return float(PTS_LINE.search(self.stderr).group(1))

    def check(self, gave_audio: bool) -> None:
        if error := exit_error(self.source, self.exit.returncode, self.exit.stderr, gave_audio):
            raise error

    def close(self) -> None:
        self.closed = True


class FakeHls:
    """A live HLS programme of audio on a fake clock, as helpers.LiveHls serves one in real time: two
    segments out at the start, one more as each one's time passes, #EXT-X-ENDLIST after the last; the
    playlist lists the newest window segments (None: all). down and frozen: spans of seconds from the
    start in which the server refuses connections, or the playlist stops growing."""

    def __init__(self, clock: Clock, audio: np.ndarray, window: int | None = None,
                 down: tuple[tuple[float, float], ...] = (), frozen: tuple[tuple[float, float], ...] = ()):
        self.clock, self.audio, self.window = clock, audio, window
        self.started_s = clock()
        self.began_s = self.started_s - 2 * SEGMENT_S
        self.down, self.frozen = down, frozen
        self.count = math.ceil(len(audio) / SEGMENT)
        self.runs: list[tuple[str, ...]] = []  # each ffmpeg run's input options

    def _within(self, spans, now_s: float) -> tuple[float, float] | None:
        return next(((a, b) for a, b in spans if a <= now_s - self.started_s < b), None)

    def published(self, now_s: float) -> int:
        elapsed_s = now_s - self.began_s
        if span := self._within(self.frozen, now_s):
            elapsed_s = min(elapsed_s, self.started_s + span[0] - self.began_s)
        return min(self.count, int(elapsed_s / SEGMENT_S + 1e-9))

    def listed(self, now_s: float) -> range:
        published = self.published(now_s)
        return range(0 if self.window is None else max(0, published - self.window), published)

    def playlist(self, url: str) -> str:
        """LiveSource's fetch."""
        now_s = self.clock()
        if self._within(self.down, now_s):
            raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
        listed = self.listed(now_s)
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:3", f"#EXT-X-MEDIA-SEQUENCE:{listed.start}"]
        lines += [line for k in listed for line in (f"#EXTINF:{SEGMENT_S:.6f},", f"seg{k:03d}.ts")]
        return "\n".join(lines + (["#EXT-X-ENDLIST"] if self.published(now_s) == self.count else [])) + "\n"

    def process(self, source: str, realtime: bool = False, timestamps: bool = False, stall_s: float | None = None,
                input_options: tuple[str, ...] = ()) -> FakeFfmpeg:
        """LiveSource's process: an ffmpeg run that starts where -live_start_index says (ffmpeg's default -3;
        the first segment of a playlist that has ended) and reads segments as they are published."""
        self.runs.append(input_options)
        now_s = self.clock()
        if self._within(self.down, now_s):
            return FakeFfmpeg(self.clock, source, stall_s, iter([Exit(1, REFUSED)]))
        listed = self.listed(now_s)
        options = dict(zip(input_options[::2], input_options[1::2]))
        index = int(options.get("-live_start_index", -3))
        start = listed[0] if self.published(now_s) == self.count else \
            listed[max(0, len(listed) + index) if index < 0 else min(index, len(listed) - 1)]
        return FakeFfmpeg(self.clock, source, stall_s, self._read(start), PTS_START_S + start * SEGMENT_S)

    def _read(self, k: int) -> Iterator:
        while k < self.count:
            now_s = self.clock()
            if self._within(self.down, now_s):  # as real ffmpeg does: its playlist reload fails, it ends
                yield Exit(0, "[hls @ 0x55d2] Failed to reload playlist 0\n")
                return
            if k < self.published(now_s):
                k = max(k, self.listed(now_s).start)  # expired from the playlist: ffmpeg skips ahead
                yield self.audio[k * SEGMENT:(k + 1) * SEGMENT].tobytes()
                k += 1
            else:
                yield Idle(STEP_S)
        yield Exit(0, "")


def programme(seconds: float, seed: int = 0) -> np.ndarray:
    """Audio no stretch of which repeats and none of which is silent, so that a sample lost, repeated or
    out of place shows."""
    return np.random.default_rng(seed).integers(1, 30000, int(seconds * SAMPLE_RATE), dtype=np.int16)


def run(hls: FakeHls, **settings) -> tuple[LiveSource, np.ndarray, list[str]]:
    """Every block of a live source on hls, its audio together and what it logged."""
    logs: list[str] = []
    source = LiveSource(URL, IngestSettings(**{"live": True, "stall_s": 3.0, "retry_s": 60.0, **settings}),
                        log=logs.append, clock=hls.clock, wait=hls.clock.wait, process=hls.process, fetch=hls.playlist)
    blocks = list(source.blocks())
    return source, np.concatenate(blocks) if blocks else np.zeros(0, np.int16), logs


def seconds(s: float) -> int:
    return round(s * SAMPLE_RATE)


def test_an_outage_the_playlist_still_covers_loses_nothing():
    """The server is down from 13.5 s to 20 s, its playlist listing every segment: the drop is said, retried,
    and the playlist taken up far enough back that every sample comes once, in place, with no gap."""
    clock = Clock()
    audio = programme(40.0)
    hls = FakeHls(clock, audio, down=((13.5, 20.0),))
    source, got, logs = run(hls)
    assert np.array_equal(got, audio)  # nothing lost, nothing twice
    assert source.gaps == [] and source.origin_pts_s == PTS_START_S
    text = "\n".join(logs)
    assert "input dropped at 16.0 s: the input ended; retrying in 1 s" in text, text
    assert f"input dropped at 16.0 s: cannot connect to {URL}: connection refused; retrying in 2 s" in text, text
    assert "taking up the playlist 6 of its 12 segments back, where the audio stopped" in text, text
    assert "was missed" not in text and "input back 4.0 s before where it left: skipping" in text, text
    assert hls.runs[0] == () and hls.runs[-1] == ("-live_start_index", "-6")  # not the live edge (-3)
    assert clock.waits_s == [1.0, 2.0, 4.0]


def test_audio_gone_from_a_sliding_playlist_is_exactly_one_gap():
    """A playlist of the newest three segments (6 s) and the server down from 11.5 s to 23.5 s: the audio up to
    where it stopped, then silence for exactly what the playlist no longer lists (one gap, from where the
    audio stopped to the first segment listed on the way back), then the rest in place."""
    clock = Clock()
    audio = programme(40.0)
    hls = FakeHls(clock, audio, window=3, down=((11.5, 23.5),))
    source, got, logs = run(hls)
    assert len(source.gaps) == 1
    gap = source.gaps[0]
    assert (gap.start_s, gap.end_s) == (14.0, 24.0) and "connection refused" in gap.reason, gap
    expected = audio.copy()
    expected[seconds(14.0):seconds(24.0)] = 0
    assert np.array_equal(got, expected)
    assert "input back: programme time 14.0–24.0 s was missed (cannot connect to" in "\n".join(logs), logs
    assert "taking up the playlist 3 of its 3 segments back, where the audio stopped" in "\n".join(logs), logs
    assert hls.runs[-1] == ("-live_start_index", "0") and clock.waits_s == [1.0, 2.0, 4.0, 8.0]


def test_a_stall_longer_than_stall_s_is_a_drop_and_retried():
    """The playlist stops growing from 7.5 s to 16.5 s (the server still answers): after stall_s without audio
    the run counts as dropped and is said so; each reconnect skips the audio it already had, and once the
    playlist grows again every sample comes once, in place."""
    clock = Clock()
    audio = programme(30.0)
    hls = FakeHls(clock, audio, frozen=((7.5, 16.5),))
    source, got, logs = run(hls)
    assert np.array_equal(got, audio) and source.gaps == []
    text = "\n".join(logs)
    assert f"input dropped at 10.0 s: no audio from {URL} for 3 s; retrying in 1 s" in text, text
    assert "input back 6.0 s before where it left: skipping what was already received" in text, text
    assert len(hls.runs) == 3 and clock.waits_s == [1.0, 2.0]  # the second run stalled too: not audio


def test_a_stall_shorter_than_stall_s_is_waited_out():
    clock = Clock()
    audio = programme(20.0)
    hls = FakeHls(clock, audio, frozen=((2.5, 4.75),))  # 2.75 s without a segment
    source, got, logs = run(hls)
    assert np.array_equal(got, audio) and logs == [] and hls.runs == [()]


def test_an_input_never_reachable_gives_up_after_retry_s_with_a_clear_error():
    clock = Clock()
    hls = FakeHls(clock, programme(10.0), down=((0.0, math.inf),))
    with pytest.raises(StreamerError) as raised:
        run(hls, retry_s=3.0)
    assert str(raised.value) == f"cannot connect to {URL}: connection refused (gave up after 3 s of retries)"
    assert clock.waits_s == [1.0, 2.0]


def test_an_input_lost_for_retry_s_ends_the_blocks_after_the_audio_it_gave():
    clock = Clock()
    audio = programme(30.0)
    hls = FakeHls(clock, audio, down=((6.5, math.inf),))
    source, got, logs = run(hls, retry_s=5.0)
    assert np.array_equal(got, audio[:seconds(10.0)]) and source.position_s == 10.0
    assert logs[-1] == f"input lost at 10.0 s and not back for 5 s (cannot connect to {URL}: connection refused): " \
                       "ending", logs
    assert clock.waits_s == [1.0, 2.0, 4.0]  # 7 s of retries: the first failure after them ends it


def scripted(clock: Clock, runs: list[tuple[float, list]]):
    """A process factory that plays the given runs in turn: (first timestamp, script)."""
    pending = list(runs)
    started: list[FakeFfmpeg] = []

    def process(source, realtime=False, timestamps=False, stall_s=None, input_options=()):
        pts_s, script = pending.pop(0)
        started.append(FakeFfmpeg(clock, source, stall_s, iter(script), pts_s))
        return started[-1]

    return process, started


def scripted_source(source: str, runs, **settings) -> tuple[LiveSource, Clock, list, list[str]]:
    clock, logs = Clock(), []
    process, started = scripted(clock, runs)
    live = LiveSource(source, IngestSettings(**settings), log=logs.append, clock=clock, wait=clock.wait,
                      process=process, fetch=lambda url: "#EXTM3U\n")
    return live, clock, started, logs


@pytest.mark.parametrize("stderr, reason", [
    ("[http @ 0x5] HTTP error 404 Not Found\nServer returned 404 Not Found\n", "not found (404)"),
    ("Stream map '0:a:0' matches no streams.\n", "has no audio stream"),
    ("rtmp://host/live: Invalid data found when processing input\n", "is not a media file"),
])
def test_what_will_not_change_is_an_error_at_once(stderr, reason):
    source, clock, started, logs = scripted_source("rtmp://host/live", [(0.0, [Exit(1, stderr)])])
    with pytest.raises(StreamerError, match=re.escape(reason)):
        list(source.blocks())
    assert clock.waits_s == [] and logs == [] and started[0].closed


def test_a_live_input_that_ends_is_waited_for_and_its_clock_kept():
    """An rtmp input that ends, comes back 2 s later on its clock (a gap), then drops and comes back 1 s
    before where it left (what was received already is skipped); a clean end of a file ends the blocks."""
    one = programme(1.0, seed=1)
    runs = [(10.0, [one.tobytes(), Exit()]),
            (13.0, [one.tobytes(), Exit(1, "rtmp://host/live: Connection reset by peer\n")]),
            (13.0, [one.tobytes(), one[:seconds(0.5)].tobytes(), Idle(60.0)])]
    source, clock, started, logs = scripted_source("rtmp://host/live", runs, stall_s=3.0)
    blocks = source.blocks()
    got = [next(blocks) for _ in range(40)]  # 1 s, 2 s of silence, 1 s: 0.1 s blocks
    assert source.gaps == [Gap(1.0, 3.0, "the input ended")]
    assert np.array_equal(np.concatenate(got), np.concatenate([one, np.zeros(seconds(2.0), np.int16), one]))
    assert np.array_equal(next(blocks), one[:1600])  # the third run's first second was had already
    assert "input back 1.0 s before where it left" in logs[-1] and started[1].closed
    assert clock.waits_s == [1.0, 1.0]  # audio came between the drops: the backoff starts again
    assert [message.split(":")[0] for message in logs[:2]] == ["input dropped at 1.0 s", "input back"]


def test_stop_ends_the_blocks_during_a_wait_to_reconnect():
    clock, stop = Clock(), threading.Event()
    process, started = scripted(clock, [(0.0, [programme(0.5).tobytes(), Exit(1, REFUSED)])] * 2)
    source = LiveSource("rtmp://host/live", IngestSettings(), log=lambda message: stop.set(), stop=stop,
                        clock=clock, process=process)  # the default wait, stop.wait, returns at once
    assert sum(len(block) for block in source.blocks()) == seconds(0.5) and len(started) == 1


def test_stop_ends_the_blocks_between_blocks():
    clock = Clock()
    process, started = scripted(clock, [(0.0, [programme(2.0).tobytes(), Exit()])])
    source = LiveSource("rtmp://host/live", IngestSettings(), clock=clock, process=process)
    blocks = source.blocks()
    next(blocks)
    source.stop.set()
    assert list(blocks) == [] and source.position == source.settings.block_samples and started[0].closed
