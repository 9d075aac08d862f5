"""`streamer mic` end to end: PortAudio reads an ALSA device whose input is a file of real speech."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from streamer.sources.ffmpeg import read_audio

from helpers import NPSC, silence, start_server

ASOUNDRC = """pcm.filemic {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{infile}"
    format "raw"
}}
"""


@pytest.fixture
def alsa_home(tmp_path):
    pytest.importorskip("sounddevice")
    speech = read_audio(str(NPSC / "norwegian-short-3s.mp3"))
    raw = tmp_path / "mic.raw"
    np.concatenate([silence(0.5), speech, silence(30.0)]).astype("<i2").tofile(raw)
    (tmp_path / ".asoundrc").write_text(ASOUNDRC.format(infile=raw))
    return tmp_path


def mic(home, *args, env_extra=None, **kwargs):
    env = {**os.environ, "HOME": str(home), "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "streamer.cli", "mic", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_list_devices_shows_the_alsa_device(alsa_home):
    process = mic(alsa_home, "--list-devices")
    out, err = process.communicate(timeout=60)
    if "PortAudio is not installed" in err:
        pytest.skip("no PortAudio library")
    assert process.returncode == 0 and "filemic" in out


def test_captions_from_a_device_then_ctrl_c_flushes_the_final(alsa_home, tiny_export):
    process = mic(alsa_home, "--device", "filemic", "--model", str(tiny_export), "--format", "jsonl")
    deadline = time.time() + 60
    while time.time() < deadline and process.poll() is None:
        time.sleep(0.5)
        if time.time() > deadline - 52:  # ~8 s of audio
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    if "PortAudio is not installed" in err:
        pytest.skip("no PortAudio library")
    assert process.returncode == 0, err
    assert "listening" in err and "Traceback" not in err
    assert '"type": "final"' in out


def test_connect_streams_the_microphone_to_a_server(alsa_home, tiny_export):
    """`streamer connect --mic`: the device's blocks go to the server as they come, captions come back."""
    server = start_server(tiny_export)
    try:
        env = {**os.environ, "HOME": str(alsa_home), "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen([sys.executable, "-m", "streamer.cli", "connect", "--mic", "--device", "filemic",
                                    "--format", "jsonl", server.url], env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(8)  # ~8 s of the device's audio, in real time as a microphone gives it
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        server.stop()
    if "PortAudio is not installed" in err:
        pytest.skip("no PortAudio library")
    assert "Traceback" not in err, err
    assert '"type": "final"' in out, (out, err)


def test_missing_device_is_one_clear_line_before_the_model_loads(alsa_home, tiny_checkpoint, tmp_path):
    cache = tmp_path / "cache"
    process = mic(alsa_home, "--device", "no-such-mic", "--model", str(tiny_checkpoint),
                  env_extra={"STREAMER_CACHE": str(cache)})
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert len(err.strip().splitlines()) == 1 and ("cannot open input device" in err or "PortAudio" in err)
    assert not cache.exists()  # the checkpoint was not exported first


def test_repeated_ctrl_c_still_flushes_the_last_final(alsa_home, tiny_export):
    """Ctrl-C in the middle of speech, then again and again while it finishes: the final is kept."""
    process = mic(alsa_home, "--device", "filemic", "--model", str(tiny_export), "--format", "jsonl")
    lines = []
    for line in process.stdout:  # wait until the speech is being captioned
        lines.append(line)
        if '"partial"' in line:
            break
    assert lines, process.stderr.read()
    deadline = time.time() + 30
    while process.poll() is None and time.time() < deadline:
        process.send_signal(signal.SIGINT)
        time.sleep(0.002)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert '"type": "final"' in "".join(lines) + out and "Traceback" not in err


def test_the_hand_over_says_how_long_each_block_waited_and_drops_only_past_its_cap():
    """Between PortAudio's thread and recognition: each block comes out with how long it waited (what the
    overload policy counts), and only past HARD_CAP_S of audio are blocks dropped, coming back as a gap of
    the same length, so memory stays bounded and times stay on the audio clock."""
    from streamer.sources import handoff

    now = [100.0]
    blocks = handoff.BlockQueue(block_samples=160, clock=lambda: now[0])
    cap = int(handoff.HARD_CAP_S * 16000 / 160)
    for i in range(cap + 7):  # the device delivers while recognition takes none
        blocks.put(np.full(160, i % 1000, np.int16))
        now[0] += 0.01
    gap, waited_s, block = blocks.get(0.01)
    assert gap == 0 and int(block[0]) == 0 and waited_s == pytest.approx((cap + 7) * 0.01)
    for _ in range(cap - 1):
        blocks.get(0.01)
    assert blocks.get(0.01) is None
    blocks.put(np.full(160, 10, np.int16))
    gap, waited_s, block = blocks.get(0.01)
    assert gap == 7 * 160 and int(block[0]) == 10 and waited_s == 0.0
