"""The push API takes audio at any sample rate, as int16 or float32, and gives the same captions."""

import numpy as np
import pytest
import soxr
from hypothesis import given, settings, strategies as st

from streamer.sources.ffmpeg import read_audio
from streamer.errors import StreamerError
from streamer.core.events import Final
from streamer.text.scoring import cer
from streamer.core.pcm import PcmInput, float_to_int16
from streamer.backends.onnx import OnnxModel
from streamer.driver.captioner import Captioner

from helpers import espeak, silence

SENTENCE = "stortingets møte er lovlig satt"


@pytest.fixture(scope="module")
def model(tiny_nb):
    return OnnxModel(tiny_nb)


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    audio = read_audio(str(espeak(SENTENCE, tmp_path_factory.mktemp("pcm") / "s.wav")))
    return np.concatenate([silence(0.5), audio, silence(1.0), audio, silence(0.8)])


def stream_text(model, audio, sample_rate=16000, block=1600) -> list[str]:
    stream = Captioner(model).stream(sample_rate)
    events = []
    for start in range(0, len(audio), block):
        events += stream.accept(audio[start : start + block])
    return [e.text for e in events + stream.finish() if isinstance(e, Final)]


def test_float32_and_int16_of_the_same_audio_give_identical_finals(model, speech):
    as_float = speech.astype(np.float32) / 32768.0
    assert float_to_int16(as_float)[0].tolist() == speech.tolist()  # int16 → float32 → int16 is exact
    recognizer = Captioner(model)
    finals = lambda s, a: [e.to_json() for e in s.accept(a) + s.finish() if isinstance(e, Final)]
    assert finals(recognizer.stream(), as_float) == finals(recognizer.stream(), speech)
    assert stream_text(model, as_float) == stream_text(model, speech) != []


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_other_sample_rates_are_resampled(model, speech, rate):
    """A stream at any rate gives the captions of the same audio resampled to 16 kHz beforehand; from 22 kHz
    up they are the captions of the original 16 kHz audio, within a few letters (8 kHz has lost s, f, t)."""
    audio = soxr.resample(speech.astype(np.float32) / 32768.0, 16000, rate).astype(np.float32)
    got = stream_text(model, audio, rate, block=rate // 10)
    at_16k = float_to_int16(soxr.resample(audio, rate, 16000, quality="HQ"))[0]
    assert got == stream_text(model, at_16k)
    if rate > 16000:
        assert cer([" ".join(stream_text(model, speech))], [" ".join(got)]) <= 0.05


def test_event_times_stay_on_the_audio_clock_at_48k(model, speech):
    audio48 = soxr.resample(speech.astype(np.float32) / 32768.0, 16000, 48000).astype(np.float32)
    stream = Captioner(model).stream(48000)
    finals = [e for e in stream.accept(audio48) + stream.finish() if isinstance(e, Final)]
    ref_stream = Captioner(model).stream()
    reference = [e for e in ref_stream.accept(speech) + ref_stream.finish() if isinstance(e, Final)]
    assert len(finals) == len(reference) == 2
    for got, want in zip(finals, reference):
        assert abs(got.start_s - want.start_s) <= 0.05 and abs(got.end_s - want.end_s) <= 0.05


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=9000), min_size=1, max_size=20))
def test_resampling_does_not_depend_on_the_block_split(sizes):
    audio = (np.random.default_rng(5).standard_normal(48000) * 0.2).astype(np.float32)
    whole = PcmInput(44100)
    reference = np.concatenate([whole.accept(audio), whole.finish()])
    split, parts, position = PcmInput(44100), [], 0
    for size in sizes + [len(audio)]:
        parts.append(split.accept(audio[position : position + size]))
        position += size
    parts.append(split.finish())
    assert np.array_equal(np.concatenate(parts), reference)
    assert abs(len(reference) - round(48000 * 16000 / 44100)) <= 1


def test_overshoot_is_clipped_and_counted_wrong_scale_refused(model):
    stream = Captioner(model).stream()
    loud = np.full(1600, 1.25, np.float32)
    stream.accept(loud)
    assert stream.clipped_samples == 1600
    with pytest.raises(StreamerError, match=r"\[-1, 1\].*int16"):
        stream.accept(np.full(1600, 3000.0, np.float32))  # int16-scale numbers given as floats
    assert stream.clipped_samples == 1600  # the refused block changed nothing


@pytest.mark.parametrize("rate", [0, -16000, 1_000_000, 16000.5])
def test_impossible_sample_rates_are_refused(model, rate):
    with pytest.raises(StreamerError, match="sample_rate must be"):
        Captioner(model).stream(rate)
