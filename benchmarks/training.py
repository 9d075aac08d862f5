"""Training throughput of tiny-nb's model shapes: how much synthetic speech per minute the real
training loop (models/train_tiny.py: synthesis worker + trainer on this machine's cores) gets through.

Each case runs `train_tiny.Trainer` for --seconds with steady-state settings (full-size batches,
no curriculum), cases interleaved and repeated so that a busy period of a shared machine hits
all of them; the best repeat counts. Columns: optimizer steps, seconds of audio trained on,
audio per wall second (x real time), wall seconds per step, and the ratio to the first case.

    python benchmarks/training.py                 # XLS-R's 7-layer conv encoder vs tiny-nb's 4 layers
    python benchmarks/training.py --seconds 120 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as train_tiny.py sets it, before torch loads

from common import REPO, table, write_json  # noqa: E402

sys.path.insert(0, str(REPO / "models"))
import torch  # noqa: E402
import train_tiny  # noqa: E402

from streamer.model.geometry import FrameGeometry  # noqa: E402  (its defaults are XLS-R's conv shape)

XLSR = FrameGeometry()
CASES = {
    "XLS-R conv (7 layers, GELU)": train_tiny.ModelSize(
        conv_kernel=XLSR.conv_kernel, conv_stride=XLSR.conv_stride, feature_activation="gelu"),
    "tiny-nb conv (4 layers, ReLU)": train_tiny.ModelSize(),
}


class QuietTrainer(train_tiny.Trainer):
    def write(self, record: dict) -> None:
        pass


def measure(size: train_tiny.ModelSize, rows: list, seconds: float, threads: int) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    settings = train_tiny.TrainSettings(minutes=seconds / 60, reserve_for_final_s=0.0, batch_ramp_fraction=0.0,
                                        curriculum_fraction=0.0, eval_every_min=1e9, model=size)
    trainer = QuietTrainer(train_tiny.build_model(size), settings, log=None, start_s=time.monotonic())
    trainer.run(train_tiny.SynthStream(rows, settings), heldout=[])
    wall_s = trainer.elapsed_s()
    return {"steps": trainer.step, "audio_s": trainer.audio_s, "wall_s": wall_s,
            "x_realtime": trainer.audio_s / wall_s, "s_per_step": wall_s / max(trainer.step, 1)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="training time per case and repeat (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=2, help="interleaved repeats of all cases (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="trainer threads, as train_tiny.py (default: %(default)s)")
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.repeats < 1:
        p.error("--seconds must be > 0 and --repeats >= 1")

    rows, _ = train_tiny.split_text()
    best: dict[str, dict] = {}
    for repeat in range(args.repeats):
        for name, size in CASES.items():
            result = measure(size, rows, args.seconds, args.threads)
            print(f"repeat {repeat + 1}/{args.repeats} {name}: {result['x_realtime']:.1f}x real time",
                  file=sys.stderr, flush=True)
            if name not in best or result["x_realtime"] > best[name]["x_realtime"]:
                best[name] = result
    base = next(iter(best.values()))["x_realtime"]
    table_rows = [{"case": name, **r, "audio_min": r["audio_s"] / 60, "ratio": r["x_realtime"] / base}
                  for name, r in best.items()]
    print(table(table_rows, [("case", "model shape", "s"), ("steps", "steps", "d"), ("audio_min", "audio min", ".1f"),
                             ("x_realtime", "x real time", ".1f"), ("s_per_step", "s/step", ".3f"),
                             ("ratio", "ratio", ".2f")]))
    path = write_json("training", {"settings": vars(args), "results": table_rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
