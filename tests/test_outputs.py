"""Output files are never lost: checked before the work, written beside and renamed, partial results kept."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from streamer.sources.ffmpeg import read_audio

from helpers import NPSC, espeak, silence, wav_of

KEEP = "1\n00:00:01,000 --> 00:00:02,000\nthe user's own subtitles\n\n"


def cli(*args, env=None, timeout=600, **kwargs):
    return subprocess.run([sys.executable, "-m", "streamer.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, **kwargs)


def one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    """Three utterances with pauses: a final after each, ~12 s."""
    folder = tmp_path_factory.mktemp("talk")
    speech = read_audio(str(espeak("stortingets møte er lovlig satt", folder / "s.wav")))
    audio = np.concatenate([silence(0.5), speech, silence(1.5), speech, silence(1.5), speech, silence(1.0)])
    return wav_of(audio, folder / "talk.wav")


def test_unreachable_url_leaves_the_output_file_as_it_was(tiny_export, tmp_path):
    keep = tmp_path / "keep.srt"
    keep.write_text(KEEP)
    result = cli("transcribe", "http://127.0.0.1:9/live.mp3", "--model", tiny_export, "--format", "srt", "-o", keep)
    one_line_error(result)
    assert keep.read_text() == KEEP
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.srt"]  # no temporary file left behind


def test_unwritable_outputs_are_refused_before_the_model_is_loaded(tiny_checkpoint, tmp_path):
    cache = tmp_path / "cache"
    clip = NPSC / "norwegian-short-3s.mp3"
    env = {"STREAMER_CACHE": str(cache)}
    one_line_error(cli("transcribe", clip, "--model", tiny_checkpoint, "-o", tmp_path / "missing" / "out.txt", env=env),
                   "does not exist")
    one_line_error(cli("transcribe", clip, "--model", tiny_checkpoint, "-o", tmp_path, env=env), "is a directory")
    assert not cache.exists()  # refused before the checkpoint was exported


def test_export_out_under_a_file_is_refused_first(tmp_path):
    (tmp_path / "file").write_text("mine")
    result = cli("export", "no-such/model", "--out", tmp_path / "file" / "onnx", env={"HF_HUB_OFFLINE": "1"})
    one_line_error(result, "lies under the file")  # about --out, before the hub is even asked
    assert (tmp_path / "file").read_text() == "mine"


def test_cache_under_a_file_is_one_line(tiny_checkpoint, tmp_path):
    (tmp_path / "file").write_text("")
    result = cli("transcribe", NPSC / "norwegian-short-3s.mp3", "--model", tiny_checkpoint,
                 env={"STREAMER_CACHE": str(tmp_path / "file" / "cache")})
    one_line_error(result, "STREAMER_CACHE")


def test_success_replaces_the_file(tiny_export, talk, tmp_path):
    out = tmp_path / "out.srt"
    out.write_text(KEEP)
    result = cli("transcribe", talk, "--model", tiny_export, "--stream", "--format", "srt", "-o", out)
    assert result.returncode == 0, result.stderr
    assert out.read_text().count("-->") >= 3 and "the user's own" not in out.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.srt"]


def failing_ffmpeg(folder, after_s: float):
    """An ffmpeg on PATH that decodes the first after_s seconds, then dies as a dropped live stream does."""
    real = subprocess.run(["which", "ffmpeg"], capture_output=True, text=True, check=True).stdout.strip()
    shim = folder / "bin" / "ffmpeg"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\n"{real}" "$@" -t {after_s}\necho "Connection reset by peer" >&2\nexit 1\n')
    shim.chmod(0o755)
    return {"PATH": f"{shim.parent}:{os.environ['PATH']}"}


@pytest.mark.parametrize("fmt", ["srt", "json"])
def test_input_failing_midway_keeps_the_captions_as_partial(tiny_export, talk, tmp_path, fmt):
    out = tmp_path / f"out.{fmt}"
    out.write_text(KEEP)
    result = cli("transcribe", talk, "--model", tiny_export, "--stream", "--format", fmt, "-o", out,
                 env=failing_ffmpeg(tmp_path, 9.0))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    kept, error = result.stderr.strip().splitlines()  # where the captions are, then why the input failed
    assert "kept in" in kept and "Connection reset by peer" in error
    assert out.read_text() == KEEP
    partial = (tmp_path / f"out.{fmt}.partial").read_text()
    assert (partial.count("-->") >= 2) if fmt == "srt" else len(__import__("json").loads(partial)["segments"]) >= 2


def test_ctrl_c_midway_keeps_the_captions_as_partial(tiny_export, talk, tmp_path):
    out = tmp_path / "out.vtt"
    process = subprocess.Popen([sys.executable, "-m", "streamer.cli", "transcribe", str(talk), "--model",
                                str(tiny_export), "--stream", "--realtime", "--format", "vtt", "-o", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # a suite started in
    deadline = time.time() + 120  # the background hands its children SIGINT ignored: give Ctrl-C back to this one
    while time.time() < deadline:  # wait for the first cue in the temporary file
        tmp = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        if tmp and "-->" in tmp[0].read_text():
            break
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert not out.exists()
    assert "-->" in (tmp_path / "out.vtt.partial").read_text()


def test_a_chatty_source_does_not_stall_the_decode(tiny_export, talk, tmp_path):
    """ffmpeg's stderr is drained as it comes: 2 MB of warnings before the audio (more than a pipe holds)."""
    real = subprocess.run(["which", "ffmpeg"], capture_output=True, text=True, check=True).stdout.strip()
    shim = tmp_path / "bin" / "ffmpeg"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nyes "[mpegts] warning: chatty live source" | head -c 2000000 >&2\nexec "{real}" "$@"\n')
    shim.chmod(0o755)
    result = cli("transcribe", talk, "--model", tiny_export, "--stream", "--format", "text", timeout=120,
                 env={"PATH": f"{shim.parent}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr[-500:]
    assert len(result.stdout.strip().splitlines()) == 3
