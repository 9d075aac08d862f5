import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from streamer.sources.ffmpeg import read_audio
from streamer.errors import StreamerError
from streamer.core.pcm import check_block
from streamer.core.vad import SpeechAudio, SpeechEnd, VadGate, VadSettings

from helpers import NPSC, espeak, silence


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    path = espeak("Stortingets møte er lovlig satt. Representantene har igjen tatt sete.",
                  tmp_path_factory.mktemp("vad") / "s.wav")
    return read_audio(str(path))


def run_gate(gate: VadGate, audio: np.ndarray, cuts: list[int]) -> list:
    events = []
    for block in np.split(audio, cuts):
        events += gate.accept(block)
    return events + gate.finish()


def segments(events) -> list[tuple[int, int]]:
    """(start, end) per segment, rebuilt from the events as a consumer would."""
    spans, start = [], None
    for event in events:
        if isinstance(event, SpeechAudio) and start is None:
            start = event.start_sample
        elif isinstance(event, SpeechEnd):
            spans.append((start, event.end_sample))
            start = None
    return spans


def test_speech_between_silences_is_one_segment_with_pre_roll_and_hangover(speech):
    audio = np.concatenate([silence(2.0), speech, silence(2.0)])
    spans = segments(run_gate(VadGate(), audio, []))
    assert len(spans) == 1
    start, end = spans[0]
    assert 1.5 * 16000 <= start <= 2.0 * 16000  # pre-roll kept before the first word
    assert end >= 2 * 16000 + len(speech)  # hangover past the last word


def test_two_utterances_apart_are_two_segments(speech):
    audio = np.concatenate([silence(1.0), speech, silence(2.0), speech, silence(1.0)])
    assert len(segments(run_gate(VadGate(), audio, []))) == 2


def test_silence_and_a_click_give_no_segment():
    click = silence(3.0)
    click[24000:24010] = 30000
    assert run_gate(VadGate(), click, []) == []
    assert run_gate(VadGate(), silence(5.0), []) == []


@pytest.mark.parametrize("clip", ["norwegian-short-3s.mp3", "norwegian-medium-8s.mp3"])
def test_npsc_clips_are_one_segment_covering_the_speech(clip):
    audio = read_audio(str(NPSC / clip))
    spans = segments(run_gate(VadGate(), audio, []))
    assert len(spans) == 1
    start, end = spans[0]
    assert start <= 0.3 * 16000 and end >= len(audio) - 0.3 * 16000


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=32000), min_size=1, max_size=40))
def test_any_block_split_gives_the_same_events(speech, sizes):
    audio = np.concatenate([silence(0.7), speech, silence(1.1), speech[:20000]])
    cuts = np.cumsum(sizes)
    cuts = cuts[cuts < len(audio)].tolist()
    reference = run_gate(VadGate(), audio, [])
    split = run_gate(VadGate(), audio, cuts)
    assert segments(split) == segments(reference)
    joined = lambda events: np.concatenate([e.samples for e in events if isinstance(e, SpeechAudio)])
    assert np.array_equal(joined(split), joined(reference))


def test_every_sample_of_a_segment_comes_once_with_a_decision_per_frame(speech):
    """A monologue whose pauses are shorter than the hangover is one segment, however long; each event
    carries webrtcvad's decision for each of its frames, and the pauses between sentences show there."""
    audio = np.concatenate([silence(0.5)] + [np.concatenate([speech, silence(0.25)])] * 5)
    events = run_gate(VadGate(VadSettings(hangover_ms=900)), audio, list(range(4000, len(audio), 4000)))
    spans = segments(events)
    assert len(spans) == 1
    audio_events = [e for e in events if isinstance(e, SpeechAudio)]
    start, end = spans[0]
    assert np.array_equal(np.concatenate([e.samples for e in audio_events]), audio[start:end])
    frame = VadSettings().frame_samples
    assert all(len(e.voiced) == -(-len(e.samples) // frame) for e in audio_events)
    voiced = np.concatenate([e.voiced for e in audio_events])
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[1], voiced.astype(int), [1]]))))[::2]
    assert voiced.mean() > 0.5 and (runs >= 0.2 * 16000 // frame).sum() >= 4  # the pauses between the sentences


def test_without_vad_everything_is_speech():
    audio = (np.random.default_rng(0).standard_normal(16000 * 3) * 100).astype(np.int16)
    spans = segments(run_gate(VadGate(VadSettings(enabled=False)), audio, [1000, 5000]))
    assert spans == [(0, len(audio))]


def test_bad_blocks_and_settings_are_clear_errors():
    with pytest.raises(StreamerError, match="1-D"):
        check_block(np.zeros((2, 100), np.int16))
    with pytest.raises(StreamerError, match="int16 or float32"):
        check_block(np.zeros(100, np.int32))
    with pytest.raises(StreamerError, match="NaN"):
        check_block(np.array([0.0, np.nan], np.float32))
    with pytest.raises(StreamerError, match="10, 20, 30"):
        VadSettings(frame_ms=25)
    with pytest.raises(StreamerError, match="0, 1, 2 or 3"):
        VadSettings(aggressiveness=5)
