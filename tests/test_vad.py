import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from streamer.audio import read_audio
from streamer.errors import StreamerError
from streamer.pcm import check_block
from streamer.vad import SpeechAudio, SpeechEnd, VadGate, VadSettings

from conftest import NPSC, espeak, silence


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


def test_segment_cap_cuts_at_a_quiet_point_and_loses_nothing(speech):
    """A monologue past max_segment_s is cut; every sample lands in exactly one segment."""
    audio = np.concatenate([silence(0.5)] + [np.concatenate([speech, silence(0.25)])] * 5)
    gate = VadGate(VadSettings(max_segment_s=8.0, cut_search_s=4.0, hangover_ms=900))
    events = run_gate(gate, audio, list(range(4000, len(audio), 4000)))
    spans = segments(events)
    assert len(spans) >= 2
    assert any(e.cut for e in events if isinstance(e, SpeechEnd))
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start == end  # cut: the next segment starts exactly where the last one ended
    assert all(end - start <= 8.0 * 16000 + 480 for start, end in spans)
    rebuilt = np.zeros(len(audio), np.int16)
    for event in events:  # a consumer keeps samples up to each SpeechEnd.end_sample
        if isinstance(event, SpeechAudio):
            rebuilt[event.start_sample : event.start_sample + len(event.samples)] = event.samples
    first = spans[0][0]
    assert np.array_equal(rebuilt[first:spans[-1][1]], audio[first:spans[-1][1]])


def test_cut_is_quieter_than_the_speech_around_it(speech):
    audio = np.concatenate([np.concatenate([speech, silence(0.3)])] * 4)
    events = run_gate(VadGate(VadSettings(max_segment_s=6.0, cut_search_s=3.0, hangover_ms=900)), audio, [])
    cuts = [e.end_sample for e in events if isinstance(e, SpeechEnd) and e.cut]
    assert cuts
    level = np.abs(audio.astype(np.float64)).mean()
    for cut in cuts:
        assert np.abs(audio[cut - 480 : cut + 480].astype(np.float64)).mean() < 0.25 * level


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
