"""Offline real-time factor of the XLS-R-300M architecture: PyTorch eager vs ONNX Runtime fp32 and int8.

Random weights with the exact architecture cost what the real model costs. All engines run in one
process on the same audio, so their ratios hold even on a busy machine. Prints a table and writes
benchmarks/out/offline.json.

    python benchmarks/offline.py [--seconds 8] [--repeats 3] [--checkpoint DIR]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path


from common import speech_audio, table, write_json, xlsr_export


def best_time_s(run, repeats: int) -> tuple[float, float]:
    run()  # warm-up: graph optimisation, allocator
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the audio recognized in one pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkpoint", type=Path, help="a real checkpoint dir instead of random XLS-R-300M weights")
    args = parser.parse_args()

    import torch

    from streamer.export.checkpoint import load_torch_model, resolve_checkpoint
    from streamer.backends.onnx import OnnxModel, normalize

    audio = speech_audio(args.seconds)
    exports = {p: xlsr_export(p, args.checkpoint) for p in ("fp32", "int8")}
    source = OnnxModel(exports["fp32"]).manifest["source"]
    torch_model = load_torch_model(resolve_checkpoint(source))
    inputs = torch.from_numpy(normalize(audio))[None]

    def run_torch():
        with torch.no_grad():
            return torch_model(input_values=inputs).logits[0].numpy()

    engines = {"pytorch eager fp32": run_torch}
    for precision, path in exports.items():
        model = OnnxModel(path)
        engines[f"onnxruntime {precision} ({model.provider.replace('ExecutionProvider', '')})"] = (
            lambda m=model: m.logits([audio])[0])
    reference = run_torch()
    rows = []
    for name, run in engines.items():
        median_s, best_s = best_time_s(run, args.repeats)
        agreement = float((run().argmax(-1) == reference.argmax(-1)).mean())
        rows.append({"engine": name, "seconds": median_s, "best": best_s, "rtf": median_s / args.seconds,
                     "speedup": 0.0, "frames_agree": agreement})
    for row in rows:
        row["speedup"] = rows[0]["seconds"] / row["seconds"]
    print(f"XLS-R-300M architecture, {args.seconds:g} s of speech in one pass, torch threads {torch.get_num_threads()}")
    print(table(rows, [("engine", "engine", ""), ("seconds", "median s", ".2f"), ("rtf", "RTF", ".3f"),
                       ("speedup", "vs torch", ".2f"), ("frames_agree", "argmax = torch", ".1%")]))
    path = write_json("offline", {"audio_s": args.seconds, "repeats": args.repeats, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
