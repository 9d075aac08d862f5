"""Calibration of the punctuation model (models/train_punct.py): the mark weights and the question threshold
that score best on the dev split through the real text stage, stored in the ONNX model's metadata, where
streamer.text.punctuator reads them.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "models"))
from punct_eval import captions_scores  # noqa: E402

from streamer.text.lexicon import Lexicon  # noqa: E402
from streamer.text.punctuator import MARKS, Punctuator  # noqa: E402
from streamer.text.written import Writer  # noqa: E402


def dev_f1(path: Path, dev, look_ahead: int, calibration: dict) -> float:
    """The sum of the marks' F1 on the dev split through the real text stage: each sentence as a caption that
    ends at a pause (paused speech), and three at a time (a monologue's captions), the two sums added."""
    writer = Writer(Lexicon.of([]), Punctuator(look_ahead, path, calibration))
    ref_words = [w for words, _ in dev for w in words]
    ref_marks = [MARKS[m] for _, marks in dev for m in marks]
    total = 0.0
    for size in (1, 3):
        captions = [[w for words, _ in dev[i : i + size] for w in words] for i in range(0, len(dev), size)]
        total += sum(v["f1"] for v in captions_scores(writer, captions, ref_words, ref_marks).values())
    return total


def calibrate(path: Path, dev, look_ahead: int) -> dict:
    """Mark weights and the question threshold that score best on the dev split (coordinate search, twice),
    stored in the model's metadata, where streamer.text.punctuator reads them."""
    best = {"mark_weights": [1.0, 1.0, 1.0, 1.0], "question_threshold": 0.5}
    score = dev_f1(path, dev, look_ahead, best)
    grid = {"comma": [0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0], "end": [0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.3],
            "question_threshold": [0.2, 0.3, 0.4, 0.5, 0.6]}
    for _ in range(2):
        for name, values in grid.items():
            for value in values:
                trial = copy.deepcopy(best)
                if name == "comma":
                    trial["mark_weights"][1] = value
                elif name == "end":
                    trial["mark_weights"][2] = trial["mark_weights"][3] = value
                else:
                    trial["question_threshold"] = value
                if (found := dev_f1(path, dev, look_ahead, trial)) > score:
                    best, score = trial, found
    print(f"calibrated on the dev split: {best} (sum of F1 {score:.3f})", file=sys.stderr)
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {k: json.dumps(v) for k, v in best.items()})
    onnx.save(model, str(path))
    return best | {"dev_f1_sum": score}
