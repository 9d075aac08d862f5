"""OnnxModel gives back what a long window took (RunnerSettings.release_memory, the default): without it,
ONNX Runtime's CPU arena keeps the largest call's memory for good, which made the soak's RSS step up
whenever a window longer than any before came (benchmarks/RESULTS.md, soak). The logits are the same
either way."""

import json
import subprocess
import sys

import numpy as np

from streamer.backends.onnx import OnnxModel, RunnerSettings

PROBE = """
import json, sys
import numpy as np
from streamer.backends.onnx import OnnxModel, RunnerSettings

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

model = OnnxModel(sys.argv[1], RunnerSettings(device="cpu", release_memory=sys.argv[2] == "on"))
audio = (np.random.default_rng(0).standard_normal(16 * 16000) * 0.1).astype(np.float32)
short = [audio[:n] for n in range(12000, 40000, 2000)]
for _ in range(2):
    for window in short:
        model.logits([window])
before = rss_mb()
model.logits([audio])  # a 16 s window, far longer than any before
for window in short:
    model.logits([window])
print(json.dumps({"grew_mb": rss_mb() - before}))
"""


def grew_mb(model_dir, release: str) -> float:
    result = subprocess.run([sys.executable, "-c", PROBE, str(model_dir), release], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])["grew_mb"]


def test_a_long_window_leaves_no_memory_behind(tiny_export):
    kept, released = grew_mb(tiny_export, "off"), grew_mb(tiny_export, "on")
    assert released < 3, (kept, released)  # the arena alone kept 34 MB (onnxruntime 1.32)


def test_releasing_memory_changes_no_output(tiny_export):
    kept = OnnxModel(tiny_export, RunnerSettings(device="cpu", release_memory=False))
    released = OnnxModel(tiny_export, RunnerSettings(device="cpu"))
    rng = np.random.default_rng(2)
    audios = [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in (128000, 9000, 40000, 19840)]
    for audio in audios:
        assert np.array_equal(kept.logits([audio])[0], released.logits([audio])[0])
    for a, b in zip(kept.logits(audios[1:]), released.logits(audios[1:])):
        assert np.array_equal(a, b)
