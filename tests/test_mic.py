"""`streamer mic` end to end: PortAudio reads an ALSA device whose input is a file of real speech."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from streamer.audio import read_audio

from conftest import NPSC, silence

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


def mic(home, *args, **kwargs):
    env = {**os.environ, "HOME": str(home), "PYTHONUNBUFFERED": "1"}
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


def test_missing_device_is_one_clear_line(alsa_home, tiny_export):
    process = mic(alsa_home, "--device", "no-such-mic", "--model", str(tiny_export))
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert len(err.strip().splitlines()) == 1 and ("cannot open input device" in err or "PortAudio" in err)
