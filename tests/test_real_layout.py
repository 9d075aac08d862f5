"""The real NbAiLab/XLSR-300M-bokmaal file layout: vocab.json with 32 tokens, `<s>` and `</s>` added by
the tokenizer (ids 32, 33) and a CTC head of 34 outputs."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from streamer.errors import StreamerError
from streamer.backends.onnx import OnnxModel
from streamer.model.vocab import Vocabulary

from helpers import NPSC
from models.hf_format import VOCAB
from models.random_checkpoint import save_random_checkpoint


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "streamer.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env=env)


def test_tiny_checkpoint_has_the_real_layout(tiny_checkpoint):
    assert json.loads((tiny_checkpoint / "added_tokens.json").read_text()) == {"<s>": 32, "</s>": 33}
    assert len(json.loads((tiny_checkpoint / "vocab.json").read_text())) == 32
    assert json.loads((tiny_checkpoint / "config.json").read_text())["vocab_size"] == 34


@pytest.mark.parametrize("layout", ["added_tokens.json", "added_tokens_decoder"])
def test_added_tokens_join_the_vocabulary_as_non_text(tmp_path, layout):
    (tmp_path / "vocab.json").write_text(json.dumps(VOCAB))
    if layout == "added_tokens.json":
        (tmp_path / "added_tokens.json").write_text(json.dumps({"<s>": 32, "</s>": 33}))
    else:
        decoder = {str(i): {"content": t, "special": True} for t, i in (("|", 0), ("<s>", 32), ("</s>", 33))}
        (tmp_path / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": decoder}))
    vocab = Vocabulary.load(tmp_path)
    assert len(vocab) == 34 and vocab.tokens[32:] == ("<s>", "</s>")
    assert not vocab.is_text(32) and not vocab.is_text(33) and vocab.is_text(VOCAB["a"])
    assert vocab.text_mask().sum() == 29  # a–z, å, æ, ø


def test_an_added_token_that_contradicts_vocab_json_is_refused(tmp_path):
    (tmp_path / "vocab.json").write_text(json.dumps(VOCAB))
    (tmp_path / "added_tokens.json").write_text(json.dumps({"<s>": 5}))
    with pytest.raises(StreamerError, match="contradicts vocab.json"):
        Vocabulary.load(tmp_path)


@pytest.fixture(scope="module")
def favours_added_tokens(tmp_path_factory):
    """Real layout, random weights, the head biased so that `<s>` and `</s>` win many frames."""
    from safetensors.torch import load_file, save_file

    path = save_random_checkpoint(tmp_path_factory.mktemp("added") / "ckpt", "tiny", seed=3)
    weights = load_file(path / "model.safetensors")
    bias = weights["lm_head.bias"].clone()
    bias[32] += 0.25
    bias[33] += 0.1
    weights["lm_head.bias"] = bias
    save_file(weights, path / "model.safetensors", metadata={"format": "pt"})
    return path


def test_export_and_stream_when_added_tokens_win_frames(favours_added_tokens, tmp_path):
    out = tmp_path / "onnx"
    exported = cli("export", favours_added_tokens, "--out", out)
    assert exported.returncode == 0, exported.stderr
    model = OnnxModel(out)
    winners = model.logits([(np.random.default_rng(0).standard_normal(64000) * 0.1).astype(np.float32)])[0].argmax(-1)
    assert {32, 33} <= set(winners.tolist()), "the test needs frames won by the added tokens"
    streamed = cli("transcribe", NPSC / "norwegian-medium-8s.mp3", "--model", out, "--stream", "--format", "jsonl",
                   "--no-vad")
    assert streamed.returncode == 0, streamed.stderr
    finals = [json.loads(line) for line in streamed.stdout.splitlines() if '"final"' in line]
    assert finals and all(set(f["raw"]) <= set("abcdefghijklmnopqrstuvwxyzåæø ") for f in finals)
    assert "<" not in streamed.stdout and ">" not in streamed.stdout


def test_a_head_that_fits_no_vocabulary_is_one_line(tiny_checkpoint, tmp_path):
    wide = shutil.copytree(tiny_checkpoint, tmp_path / "wide")
    config = json.loads((wide / "config.json").read_text())
    (wide / "config.json").write_text(json.dumps({**config, "vocab_size": 40}))
    result = cli("export", wide, "--out", tmp_path / "out")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "40 outputs" in result.stderr and "34 tokens" in result.stderr
    assert not (tmp_path / "out").exists()
