"""`streamer subtitle` on a live HLS stream served on loopback: files that grow, cues that follow the rules,
times on the stream's clock through an outage of the server (one run end to end; the reconnect logic
itself, outages the playlist covers, stalls and retries, is tests/test_live_source.py's, on a fake clock),
and clear errors for bad inputs."""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from streamer.captions.cues import Cue, cue_problems
from streamer.text.scoring import cer

from helpers import LiveHls, hls_broadcast

@pytest.fixture(scope="module")
def broadcast(tmp_path_factory):
    return hls_broadcast(tmp_path_factory.mktemp("hls"))


def subtitle(url, model_dir, out: Path, *extra, timeout=240):
    command = [sys.executable, "-m", "streamer.cli", "subtitle", url, "--model", str(model_dir),
               "--srt", str(out / "live.srt"), "--vtt", str(out / "live.vtt"), "--jsonl", str(out / "live.jsonl"),
               *map(str, extra)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_through(process: subprocess.Popen, live: LiveHls, trouble) -> str:
    """Let trouble() happen to the live stream while streamer subtitles it; its stderr once it exits 0."""
    try:
        trouble()
        _, err = process.communicate(timeout=240)
    finally:
        if process.poll() is None:
            process.kill()
        live.stop()
    assert process.returncode == 0, err
    return err


def parsed_cues(out: Path) -> tuple[list[Cue], list[Cue]]:
    """The SRT and WebVTT files read back with subtitle libraries."""
    import srt
    import webvtt

    from_srt = [Cue(c.start.total_seconds(), c.end.total_seconds(), tuple(c.content.split("\n")))
                for c in srt.parse((out / "live.srt").read_text(encoding="utf-8"))]
    seconds = lambda stamp: sum(float(x) * 60**i for i, x in enumerate(reversed(stamp.split(":"))))  # noqa: E731
    from_vtt = [Cue(seconds(c.start), seconds(c.end), tuple(c.text.split("\n")))
                for c in webvtt.read(str(out / "live.vtt"))]
    return from_srt, from_vtt


def check_files(out: Path) -> list[Cue]:
    from_srt, from_vtt = parsed_cues(out)
    assert from_srt and [(round(a.start_s, 2), round(a.end_s, 2), a.lines) for a in from_srt] == \
        [(round(b.start_s, 2), round(b.end_s, 2), b.lines) for b in from_vtt]
    assert cue_problems(from_srt) == []  # ≤ 2 lines of ≤ 42 characters, 0.83–7 s, no overlap
    return from_srt


def finals(out: Path) -> list[dict]:
    return [e for e in map(json.loads, (out / "live.jsonl").read_text().splitlines()) if e["type"] == "final"]


def test_a_vod_playlist_is_subtitled_with_the_speech(tiny_nb, broadcast, tmp_path):
    live = LiveHls(broadcast["folder"])
    live.began -= 1000  # every segment is out, with ENDLIST: a finished programme
    live.start()
    try:
        process = subtitle(f"http://127.0.0.1:{live.port}/live.m3u8", tiny_nb, tmp_path, "--hls-dir", tmp_path / "hls")
        _, err = process.communicate(timeout=240)
    finally:
        live.stop()
    assert process.returncode == 0, err
    cues = check_files(tmp_path)
    shown = " ".join(" ".join(c.lines) for c in cues)
    assert cer([" ".join(broadcast["texts"])], [shown]) <= 0.1, shown
    on_time(finals(tmp_path), broadcast)
    check_hls_subtitles(tmp_path / "hls", cues)
    events = [json.loads(line) for line in (tmp_path / "live.jsonl").read_text().splitlines()]
    lines = [e for e in events if e["type"] == "cue"]  # a line as each cue is written, as the SRT has it
    assert [(e["number"], round(e["start"], 2), round(e["end"], 2), tuple(e["text"].split("\n"))) for e in lines] == \
        [(k, round(c.start_s, 2), round(c.end_s, 2), c.lines) for k, c in enumerate(cues, 1)]


def check_hls_subtitles(folder: Path, cues: list[Cue]) -> None:
    """Segmented WebVTT: every segment maps local time 0 to the input's first timestamp (MPEG-TS starts at
    1.4 s, 126000 at 90 kHz), and ffmpeg's HLS reader gets the cues of the .vtt file from the playlist."""
    import srt

    playlist = (folder / "subtitles.m3u8").read_text()
    segments = [line for line in playlist.splitlines() if line.endswith(".vtt")]
    assert playlist.rstrip().endswith("#EXT-X-ENDLIST") and len(segments) >= 6
    for name in segments:
        assert (folder / name).read_text().startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:126000,LOCAL:00:00:00.000\n")
    read = subprocess.run(["ffmpeg", "-v", "error", "-i", str(folder / "subtitles.m3u8"), "-f", "srt", "-"],
                          capture_output=True, text=True, check=True).stdout
    got = {(round(c.start.total_seconds(), 2), c.content) for c in srt.parse(read)}
    assert got == {(round(c.start_s, 2), "\n".join(c.lines)) for c in cues}


def on_time(finals_: list[dict], broadcast: dict, after_gap_s: float | None = None, slack_s: float = 0.4) -> int:
    """Every word lies inside a sentence of the source, on the source's clock, and each final begins where a
    sentence does (or, right after a gap, where the audio came back); the number of finals."""
    spans = broadcast["spans"]
    for final in finals_:
        for word in final["words"]:
            assert any(a - slack_s <= word["start"] and word["end"] <= b + slack_s for a, b in spans), (word, spans)
        first = final["words"][0]["start"]
        starts = [a for a, _ in spans] + ([after_gap_s] if after_gap_s is not None else [])
        assert min(abs(first - a) for a in starts) <= 0.6, (first, starts)
    return len(finals_)


@pytest.fixture(scope="module")
def short_broadcast(tmp_path_factory):
    """8 of the sentences (about 22 s): enough for captions before, during and after an outage."""
    return hls_broadcast(tmp_path_factory.mktemp("short-hls"), sentences=8)


def test_audio_gone_from_the_playlist_is_a_gap_in_time_order(tiny_nb, short_broadcast, tmp_path):
    """A sliding playlist of three segments (6 s) and its server down from 5 s to 11 s: what the playlist no
    longer lists when streamer is back is gone, and only that is a gap. Its line comes after the final
    before it, which ends where the gap begins; the captions before and after are on the source's clock,
    nothing is captioned inside the gap, and the files are valid while the input is down.

    End to end on purpose (the rest of reconnecting is tests/test_live_source.py's, on a fake clock, in
    milliseconds): real ffmpeg has to honour -live_start_index and -copyts for the gap to be where the
    audio really stopped and came back, and the gap line has to reach the JSONL in time order through
    `streamer subtitle` itself."""
    broadcast = short_broadcast
    live = LiveHls(broadcast["folder"], window=3)
    live.start()
    process = subtitle(f"http://127.0.0.1:{live.port}/live.m3u8", tiny_nb, tmp_path, "--stall-s", 3,
                       "--retry-s", 60, "--live")
    had = []

    def outage():
        time.sleep(5)
        live.stop()
        time.sleep(3)
        check_files(tmp_path)  # valid while it waits for the input
        had.append(len(finals(tmp_path)))
        time.sleep(3)
        live.start()

    err = run_through(process, live, outage)
    assert "retrying" in err and "taking up the playlist" in err and "was missed" in err, err
    check_files(tmp_path)
    events = [json.loads(line) for line in (tmp_path / "live.jsonl").read_text().splitlines()]
    gaps = [i for i, e in enumerate(events) if e["type"] == "gap"]
    assert len(gaps) == 1, events
    gap = events[gaps[0]]
    assert 6 <= gap["start"] and gap["end"] - gap["start"] >= 1.5, gap
    finals_ = [(i, e) for i, e in enumerate(events) if e["type"] == "final"]
    before = [e for i, e in finals_ if e["start"] < gap["start"]]
    assert had[0] >= 1 and before and all(i < gaps[0] for i, e in finals_ if e["start"] < gap["start"])  # in order
    assert all(e["end"] <= gap["start"] for e in before), (before[-1], gap)  # no overlap
    after = [e for i, e in finals_ if i > gaps[0]]
    assert after and all(e["start"] >= gap["end"] - 0.5 for e in after), after
    on_time([e for _, e in finals_], broadcast, after_gap_s=gap["end"])
    inside = [w for _, f in finals_ for w in f["words"] if gap["start"] < w["start"] < gap["end"] - 0.1]
    assert not inside, inside  # nothing is captioned in the gap


@pytest.mark.parametrize("case", ["unreachable", "no audio", "404", "garbage"])
def test_bad_inputs_are_clear_errors(tiny_nb, broadcast, tmp_path, case):
    folder = broadcast["folder"]
    if case == "no audio":
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=c=black:s=32x32:d=2",
                        "-c:v", "mpeg4", str(folder / "video.mp4")], check=True)
    if case == "garbage":
        (folder / "garbage.ts").write_bytes(np.random.default_rng(0).bytes(5000))
    live = LiveHls(folder)
    live.start()
    url = {"unreachable": "http://127.0.0.1:9/live.m3u8", "no audio": f"http://127.0.0.1:{live.port}/video.mp4",
           "404": f"http://127.0.0.1:{live.port}/missing.m3u8",
           "garbage": f"http://127.0.0.1:{live.port}/garbage.ts"}[case]
    began = time.monotonic()
    try:
        process = subtitle(url, tiny_nb, tmp_path, "--retry-s", 3)
        _, err = process.communicate(timeout=120)
    finally:
        live.stop()
    expected = {"unreachable": "connection refused", "no audio": "no audio stream", "404": "not found (404)",
                "garbage": "not a media file"}[case]
    assert process.returncode == 2 and expected in err.splitlines()[-1], err
    if case == "unreachable":
        assert "retrying" in err and "gave up after 3 s" in err  # a live input is retried, and says why
    else:
        assert time.monotonic() - began < 60  # no retries for what will not change


def test_the_progress_line_says_input_time_cues_and_lag(capsys):
    from streamer.cli.live import Progress

    progress = Progress(enabled=True)
    progress.show(3725.4, 12, 1.26)
    assert "input 1:02:05 · 12 cues written · captions 1.3 s behind the input" in capsys.readouterr().err


@pytest.fixture()
def small_disk(tmp_path):
    """A 16 KiB file system of our own (tmpfs), which fills up while subtitles are written."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root (CAP_SYS_ADMIN)")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_is_one_line_and_keeps_the_captions_so_far(tiny_nb, broadcast, small_disk):
    """The JSONL (partials and finals) fills the disk part-way through: `subtitle` stops with one line that
    names the file and says the disk is full; every file it wrote ends at a whole line or cue (the half
    written is cut off), and the SRT and WebVTT hold the cues of every final the JSONL holds."""
    process = subtitle(str(broadcast["folder"] / "speech.wav"), tiny_nb, small_disk)
    _, err = process.communicate(timeout=240)
    assert process.returncode == 2 and "Traceback" not in err, err
    assert "live.jsonl" in err.splitlines()[-1] and "no space left" in err.lower(), err
    lines = (small_disk / "live.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]  # every line whole
    said = [w["word"] for e in events if e["type"] == "final" for w in e["words"]]
    assert said, events
    from_srt, from_vtt = parsed_cues(small_disk)
    assert [" ".join(c.lines) for c in from_srt] == [" ".join(c.lines) for c in from_vtt]
    assert " ".join(" ".join(c.lines) for c in from_srt).split() == said


def test_a_reconnect_starts_far_enough_back_in_the_playlist():
    from streamer.sources.live import resume_index

    six = [2.0] * 6
    assert resume_index(six, 0.5) == -3  # never nearer the edge than ffmpeg's own start
    assert resume_index(six, 6.5) == -5  # four segments cover 6.5 s, one more for the one being read
    assert resume_index(six, 30.0) == 0  # the playlist does not reach back that far: its first segment
    assert resume_index([2.0] * 40, 30.0) == -16
