"""The load benchmark in its short form: a few real-time clients for a few streams each, on loopback, and
not one final lost or wrong, no error (benchmarks/load.py; the full run is by hand, see RESULTS.md)."""

import json
import subprocess
import sys

from helpers import REPO


def test_the_load_benchmark_loses_no_final():
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "load.py"), "--clients", "3", "--minutes", "0.3",
                             "--track-s", "12"], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    written = result.stdout.strip().splitlines()[-1].removeprefix("wrote ")
    row = json.loads(open(written, encoding="utf-8").read())["row"]
    assert row["streams"] >= 3 and row["expected"] > 0
    assert row["lost"] == 0 and row["wrong"] == 0 and row["errors"] == 0, row
    assert row["rss_peak"] < 4 * row["rss_start"] + 200  # bounded, not growing with the streams run
