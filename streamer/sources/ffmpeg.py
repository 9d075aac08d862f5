"""Audio sources for files and URLs: an ffmpeg subprocess that yields 16 kHz mono int16 blocks.

``FfmpegProcess`` is the one place that runs ffmpeg, reads its PCM and cleans up after it, for
``ffmpeg_blocks`` here and for live ingest's connections (``streamer.sources.live``)."""

from __future__ import annotations

import re
import select
import shutil
import subprocess
import threading
import wave
from collections import deque
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..model.geometry import SAMPLE_RATE
from ..errors import StreamerError

PTS_LINE = re.compile(r"Parsed_ashowinfo.*?\bpts_time:(-?[0-9.]+)")  # ashowinfo's report of a frame
URL_SCHEMES = ("http://", "https://", "rtmp://", "rtsp://", "srt://", "udp://", "tcp://")


def is_url(source: str) -> bool:
    return source.startswith(URL_SCHEMES)


def find_ffmpeg(tool: str = "ffmpeg") -> str:
    found = shutil.which(tool)
    if found is None:
        raise StreamerError(f"{tool} is not installed: streamer reads audio with it (apt-get install ffmpeg)")
    return found


def check_input(source: str) -> None:
    if is_url(source):
        return
    path = Path(source)
    if not path.exists():
        raise StreamerError(f"{source}: no such file")
    if path.is_dir():
        raise StreamerError(f"{source} is a directory: expected an audio or video file")
    if path.is_file() and path.stat().st_size == 0:  # a named pipe has no size: its writer is still to come
        raise StreamerError(f"{source} is empty: expected an audio or video file")


def probe_duration_s(source: str) -> float | None:
    """The container's duration, for progress bars; None when unknown (live streams, odd files)."""
    try:
        out = subprocess.run(
            [find_ffmpeg("ffprobe"), "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", source],
            capture_output=True, text=True, timeout=30, check=False,
        ).stdout.strip()
        return float(out) if out and out != "N/A" else None
    except (StreamerError, ValueError, subprocess.TimeoutExpired):
        return None


def explain_ffmpeg_error(source: str, stderr: str) -> str:
    text = stderr.lower()
    if "does not contain any stream" in text or "matches no streams" in text or "no audio" in text:
        return f"{source} has no audio stream: expected a file or URL with audio"
    for code, meaning in ((404, "not found"), (403, "forbidden"), (401, "unauthorized")):
        if re.search(rf"(http error|returned) {code}\b", text):
            return f"{source}: {meaning} ({code})"
    if "connection refused" in text:
        return f"cannot connect to {source}: connection refused"
    if "timed out" in text or "timeout" in text:
        return f"{source} did not answer in time"
    if any(sign in text for sign in ("invalid data found", "could not find codec", "moov atom not found",
                                     "invalid argument", "unknown format")):
        return f"{source} is not a media file ffmpeg can read"
    last = stderr.strip().splitlines()[-1] if stderr.strip() else "no message"
    return f"ffmpeg could not decode {source}: {last}"


def stall_error(source: str, stall_s: float) -> StreamerError:
    """What a run that gave no output for stall_s says (FfmpegProcess, and fakes of it in the tests)."""
    return StreamerError(f"no audio from {source} for {stall_s:g} s")


def exit_error(source: str, returncode: int, stderr: str, gave_audio: bool) -> StreamerError | None:
    """Why a finished run failed, from its exit code and stderr, or that it gave no audio; None when it did
    neither (FfmpegProcess.check, and fakes of it in the tests)."""
    if returncode != 0:
        return StreamerError(explain_ffmpeg_error(source, stderr))
    if not gave_audio:
        return StreamerError(f"{source} contains no audio samples")
    return None


def ffmpeg_blocks(source: str, block_samples: int = SAMPLE_RATE, realtime: bool = False) -> Iterator[np.ndarray]:
    """16 kHz mono int16 blocks of any file or URL ffmpeg reads (any rate, any channel count)."""
    check_input(source)
    with FfmpegProcess(source, realtime=realtime) as ffmpeg:
        produced = 0
        for chunk in ffmpeg.chunks(block_samples * 2):
            chunk = chunk[: len(chunk) // 2 * 2]
            produced += len(chunk) // 2
            yield np.frombuffer(chunk, dtype=np.int16)
        ffmpeg.check(gave_audio=produced > 0)


def ffmpeg_command(source: str, realtime: bool = False, timestamps: bool = False,
                   stall_s: float | None = None, input_options: tuple[str, ...] = ()) -> list[str]:
    """ffmpeg decoding source's first audio stream to 16 kHz mono s16le on stdout (see FfmpegProcess);
    input_options go before -i (demuxer options such as -live_start_index)."""
    command = [find_ffmpeg(), "-nostdin", "-hide_banner"]
    command += ["-nostats", "-loglevel", "info"] if timestamps else ["-loglevel", "error"]
    command += ["-re"] if realtime else []
    command += ["-rw_timeout", str(int(stall_s * 1e6))] if stall_s is not None and is_url(source) else []
    command += ["-copyts"] if timestamps else []
    command += list(input_options)
    command += ["-i", source, "-vn", "-map", "0:a:0"]
    command += ["-af", "ashowinfo,aresample=async=1"] if timestamps else []
    return command + ["-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "-"]


class FfmpegProcess:
    """One ffmpeg run on a file or URL: its 16 kHz mono s16le output, its reason when it fails, and its
    clean-up (close(), or use it as a context manager). Its stderr is drained all along on a thread, so
    that a chatty source cannot fill the pipe.

    realtime: read no faster than the input plays (-re). timestamps: keep the input's timestamps
    (-copyts) and report them (ashowinfo), so that first_pts() gives the first audio's. stall_s: no
    output for this long is a StreamerError (and a URL gets it as -rw_timeout); without it, reads block
    until a whole chunk or the end comes. input_options: demuxer options, before -i."""

    def __init__(self, source: str, realtime: bool = False, timestamps: bool = False,
                 stall_s: float | None = None, input_options: tuple[str, ...] = ()):
        self.source, self.stall_s = source, stall_s
        command = ffmpeg_command(source, realtime, timestamps, stall_s, input_options)
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        keep = (lambda line: "Parsed_ashowinfo" not in line) if timestamps else (lambda line: True)
        self.stderr = StderrTail(self.process.stderr, keep=keep, watch=PTS_LINE if timestamps else None)

    def chunks(self, size: int) -> Iterator[bytes]:
        """The output until it ends, in chunks of size bytes (the last may be shorter); with stall_s, in
        chunks of at most size bytes, as they come."""
        while chunk := self._read(size):
            yield chunk

    def _read(self, size: int) -> bytes:
        stdout = self.process.stdout
        if self.stall_s is None:
            return stdout.read(size)
        ready, _, _ = select.select([stdout], [], [], self.stall_s)
        if not ready:
            raise stall_error(self.source, self.stall_s)
        return stdout.read1(size) if hasattr(stdout, "read1") else b""

    def check(self, gave_audio: bool) -> None:
        """Once the output has ended: a StreamerError with ffmpeg's reason when it failed, or when it gave
        no audio."""
        returncode = self.process.wait()
        if error := exit_error(self.source, returncode, self.stderr.text() if returncode else "", gave_audio):
            raise error

    def first_pts(self) -> float:
        """The timestamp ffmpeg reported for the first audio frame (0 when it said none); needs timestamps."""
        match = self.stderr.first_match(timeout_s=5.0)
        return float(match.group(1)) if match else 0.0

    def close(self) -> None:
        """Kill ffmpeg if it still runs, reap it, and close its pipes."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.stderr.join()
        self.process.stdout.close()
        self.process.stderr.close()

    def __enter__(self) -> FfmpegProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class StderrTail:
    """Reads a subprocess's stderr on a thread as it comes, keeping its last lines (those keep() accepts)
    for error messages, and the first line that matches watch."""

    def __init__(self, pipe, max_lines: int = 50, keep: Callable[[str], bool] = lambda line: True,
                 watch: re.Pattern | None = None):
        self._lines: deque[str] = deque(maxlen=max_lines)
        self._keep, self._watch = keep, watch
        self._match: re.Match | None = None
        self._matched = threading.Event()
        self._thread = threading.Thread(target=self._drain, args=(pipe,), daemon=True)
        self._thread.start()

    def _drain(self, pipe) -> None:
        for raw in iter(pipe.readline, b""):
            line = raw.decode("utf-8", "replace")
            if self._watch is not None and self._match is None and (match := self._watch.search(line)):
                self._match = match
                self._matched.set()
            if self._keep(line):
                self._lines.append(line)
        self._matched.set()

    def first_match(self, timeout_s: float) -> re.Match | None:
        self._matched.wait(timeout_s)
        return self._match

    def join(self) -> None:
        self._thread.join(timeout=5)

    def text(self) -> str:
        self.join()
        return "".join(self._lines)


def read_audio(source: str) -> np.ndarray:
    """A whole file as one int16 array (short files and tests; long inputs should stream blocks)."""
    return np.concatenate(list(ffmpeg_blocks(source)))


def read_wav(path: Path) -> np.ndarray:
    """A 16 kHz mono 16-bit WAV as float32 in [-1, 1], without ffmpeg (package data)."""
    with wave.open(str(path), "rb") as f:
        if (f.getframerate(), f.getnchannels(), f.getsampwidth()) != (SAMPLE_RATE, 1, 2):
            raise StreamerError(f"{path}: expected 16 kHz mono 16-bit WAV")
        return np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0
