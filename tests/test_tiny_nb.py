"""The project's small Norwegian model end to end: synthesized speech in, the right words out."""

import json
import subprocess
import sys

import numpy as np
import pytest

from streamer.sources.ffmpeg import read_audio
from streamer.core.events import Final
from streamer.text.scoring import cer, wer
from streamer.driver.offline import transcribe_array
from streamer.backends.onnx import OnnxModel
from streamer.driver.captioner import Captioner

from helpers import TINY_NB, espeak, silence

# Not in the training text (the model card lists its sources), a different register from it.
UNSEEN = [
    "elevene leser bøker på biblioteket hver fredag",
    "vi møtes ved inngangen klokken halv ni i morgen",
    "skolen har fått nye maskiner til alle klasserommene",
]


@pytest.fixture(scope="module")
def model(tiny_nb):
    return OnnxModel(tiny_nb)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("unseen")
    return [read_audio(str(espeak(text, folder / f"{i}.wav"))) for i, text in enumerate(UNSEEN)]


def test_model_card_and_log_are_committed():
    card = (TINY_NB / "README.md").read_text(encoding="utf-8")
    assert "synthetic" in card.lower() and "CER" in card and "WER" in card
    assert json.loads((TINY_NB / "vocab.json").read_text(encoding="utf-8"))["[PAD]"] == 31
    assert sum(p.stat().st_size for p in TINY_NB.iterdir()) < 16 * 2**20


def test_cli_transcribes_an_unseen_espeak_sentence(tmp_path):
    wav = espeak(UNSEEN[0], tmp_path / "s.wav")
    result = subprocess.run([sys.executable, "-m", "streamer.cli", "transcribe", str(wav), "--model", str(TINY_NB)],
                            capture_output=True, text=True, timeout=600, env={**__import__("os").environ,
                                                                               "STREAMER_CACHE": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert cer([UNSEEN[0]], [result.stdout.strip()]) <= 0.15, result.stdout


def test_unseen_sentences_have_small_error(model, clips):
    hypotheses = [" ".join(s.raw for s in transcribe_array(audio, model)) for audio in clips]
    assert cer(UNSEEN, hypotheses) <= 0.12, hypotheses
    assert wer(UNSEEN, hypotheses) <= 0.5, hypotheses


def test_streamed_finals_spell_what_offline_spells(model, clips):
    """Unseen sentences with pauses between them, default streaming settings: the finals are offline's
    words (each sentence one pass in both), give or take a letter."""
    audio = np.concatenate([silence(0.5)] + [np.concatenate([c, silence(1.0)]) for c in clips])
    offline = " ".join(f.raw for f in transcribe_array(audio, model))
    stream = Captioner(model).stream()
    events = []
    for start in range(0, len(audio), 1600):
        events += stream.accept(audio[start : start + 1600])
    events += stream.finish()
    streamed = " ".join(e.raw for e in events if isinstance(e, Final))
    assert cer([offline], [streamed]) <= 0.03
    reference = " ".join(UNSEEN)
    assert cer([reference], [streamed]) <= cer([reference], [offline]) * 1.03 + 0.01
