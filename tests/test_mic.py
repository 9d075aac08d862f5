"""`streamer mic` end to end: PortAudio reads an ALSA device whose input is a file of real speech."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from streamer.sources.ffmpeg import read_audio

from helpers import NPSC, silence

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


def test_a_slow_consumer_gets_silence_for_what_was_dropped():
    """The queue between PortAudio's thread and recognition is bounded: blocks that do not fit are dropped
    and come back as a gap of the same length, so lag stays bounded and times stay on the audio clock."""
    from streamer.sources.handoff import BlockQueue

    blocks = BlockQueue(max_blocks=3)
    for i in range(10):  # the device delivers 10 blocks while recognition takes none
        blocks.put(np.full(160, i, np.int16))
    got = [blocks.get(0.01) for _ in range(3)]
    assert [(gap, int(block[0])) for gap, block in got] == [(0, 0), (0, 1), (0, 2)]
    assert blocks.get(0.01) is None
    blocks.put(np.full(160, 10, np.int16))
    gap, block = blocks.get(0.01)
    assert gap == 7 * 160 and int(block[0]) == 10
