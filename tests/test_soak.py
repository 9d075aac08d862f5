"""The soak benchmark in its short form: two minutes of speech through the streaming path and through the
server; every final once, in order, the server's the same as the stream's (benchmarks/soak.py; the hour is run
by hand, see RESULTS.md)."""

import json
import subprocess
import sys

from helpers import REPO


def test_the_soak_benchmark_keeps_every_final():
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "soak.py"), "--minutes", "2", "--speed", "20",
                             "--warmup", "1"], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    written = result.stdout.strip().splitlines()[-1].removeprefix("wrote ")
    summary = json.loads(open(written, encoding="utf-8").read())["summary"]
    assert summary["stream_finals"] > 10 and summary["stream_in_order"] and summary["server_in_order"]
    assert summary["server_finals_are_the_streams"] and summary["server_errors"] == 0, summary
    assert summary["stream_heap_growth_pct"] < 25, summary  # two minutes: a loose bound; the hour is under 5%
