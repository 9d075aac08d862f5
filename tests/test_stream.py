import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from streamer.audio import read_audio
from streamer.errors import StreamerError
from streamer.events import Final, Partial
from streamer.offline import transcribe_array
from streamer.runner import OnnxModel
from streamer.stream import Recognizer, StreamSettings
from streamer.vad import VadSettings
from streamer.windower import WindowSettings

from conftest import NPSC, espeak, silence


@pytest.fixture(scope="module")
def model(tiny_export):
    return OnnxModel(tiny_export)


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    path = espeak("Stortingets møte er lovlig satt. Representantene har igjen tatt sete.",
                  tmp_path_factory.mktemp("stream") / "s.wav")
    return read_audio(str(path))


def run_stream(stream, audio: np.ndarray, sizes) -> list:
    events, position = [], 0
    for size in sizes:
        if position >= len(audio):
            break
        events += stream.accept(audio[position : position + size])
        position += size
    if position < len(audio):
        events += stream.accept(audio[position:])
    return events + stream.finish()


def finals(events) -> list[dict]:
    return [e.to_json() for e in events if isinstance(e, Final)]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(min_value=1, max_value=32000), min_size=1, max_size=30))
def test_any_block_split_gives_identical_finals(model, speech, sizes):
    audio = np.concatenate([silence(0.5), speech, silence(1.0), speech, silence(0.3)])
    recognizer = Recognizer(model, StreamSettings(window=WindowSettings(final_window_s=2.0)))
    reference = finals(run_stream(recognizer.stream(), audio, [len(audio)]))
    assert len(reference) == 2
    assert finals(run_stream(recognizer.stream(), audio, sizes)) == reference


def test_single_sample_blocks(model, speech):
    audio = np.concatenate([silence(0.3), speech[:16000]])
    recognizer = Recognizer(model)
    assert finals(run_stream(recognizer.stream(), audio, [1] * len(audio))) == \
        finals(run_stream(recognizer.stream(), audio, [len(audio)]))


def test_finals_equal_offline_when_segments_fit_the_final_window(model, speech):
    audio = np.concatenate([silence(1.0), speech, silence(1.5), speech[:30000], silence(0.2)])
    offline = transcribe_array(audio, model)
    settings = StreamSettings(window=WindowSettings(final_window_s=12.0))
    events = run_stream(Recognizer(model, settings).stream(), audio, [4800] * 1000)
    streamed = [e for e in events if isinstance(e, Final)]
    assert [f.text for f in streamed] == [s.text for s in offline]
    assert [f.words for f in streamed] == [s.words for s in offline]


def test_partials_come_before_their_final_and_grow(model, speech):
    events = run_stream(Recognizer(model).stream(), np.concatenate([silence(0.5), speech, silence(1)]), [1600] * 500)
    kinds = [type(e).__name__ for e in events]
    assert kinds[-1] == "Final" and "Partial" in kinds
    partials = [e for e in events if isinstance(e, Partial)]
    assert all(0 <= p.stable_chars <= len(p.text) for p in partials)
    assert all(p.segment == 0 for p in partials)
    ends = [p.end_s for p in partials]
    assert ends == sorted(ends)


def test_long_monologue_is_cut_into_finals_without_losing_audio(model, speech):
    audio = np.concatenate([speech] * 6)  # ~26 s without a pause long enough to end a segment
    settings = StreamSettings(vad=VadSettings(max_segment_s=8.0, cut_search_s=3.0, hangover_ms=1500),
                              window=WindowSettings(final_window_s=4.0))
    out = finals(run_stream(Recognizer(model, settings).stream(), audio, [8000] * 100))
    assert len(out) >= 3
    assert [f["segment"] for f in out] == list(range(len(out)))
    for a, b in zip(out, out[1:]):
        assert a["end"] <= b["start"] + 1e-9
    words = [w for f in out for w in f["words"]]
    assert all(w1["end"] <= w2["start"] + 1e-9 for w1, w2 in zip(words, words[1:]))


def test_silence_noise_click_and_mid_word_end(model, speech):
    recognizer = Recognizer(model)
    assert run_stream(recognizer.stream(), silence(5.0), [16000] * 10) == []
    click = silence(3.0)
    click[20000:20010] = 30000
    assert run_stream(recognizer.stream(), click, [512] * 200) == []  # too short to open a segment
    noise = (np.random.default_rng(0).standard_normal(16000 * 4) * 3000).astype(np.int16)
    noisy = finals(run_stream(recognizer.stream(), noise, [3200] * 50))
    assert noisy == finals(run_stream(recognizer.stream(), noise, [777] * 300))
    assert all(0 <= w["start"] < w["end"] <= 4.0 for f in noisy for w in f["words"])
    half = np.concatenate([silence(0.5), speech[: len(speech) // 2]])  # the audio ends inside a word
    cut_mid_word = run_stream(recognizer.stream(), half, [1600] * 300)
    assert isinstance(cut_mid_word[-1], Final) and cut_mid_word[-1].end_s == pytest.approx(len(half) / 16000)


@pytest.mark.parametrize("clip", ["norwegian-short-3s.mp3", "norwegian-medium-8s.mp3"])
def test_npsc_clip_is_one_final(model, clip):
    audio = read_audio(str(NPSC / clip))
    out = finals(run_stream(Recognizer(model).stream(), audio, [2048] * 200))
    assert len(out) == 1
    assert out[0]["start"] <= 0.3 and out[0]["end"] >= len(audio) / 16000 - 0.3


def test_reset_starts_a_new_stream(model, speech):
    stream = Recognizer(model).stream()
    first = finals(run_stream(stream, speech, [4000] * 100))
    stream.reset()
    assert finals(run_stream(stream, speech, [4000] * 100)) == first


def test_window_settings_errors():
    with pytest.raises(StreamerError, match="multiple of 20 ms"):
        WindowSettings(hop_ms=250)
    with pytest.raises(StreamerError, match="hop_ms"):
        WindowSettings(hop_ms=0)


def test_cli_stream_jsonl_prints_every_event_and_matches_offline_text(tiny_export):
    import json
    import subprocess
    import sys

    def run(*extra):
        result = subprocess.run([sys.executable, "-m", "streamer.cli", "transcribe", str(NPSC / "norwegian-medium-8s.mp3"),
                                 "--model", str(tiny_export), *extra], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return result.stdout

    events = [json.loads(line) for line in run("--stream", "--format", "jsonl", "--final-window-s", "12").splitlines()]
    assert {e["type"] for e in events} == {"partial", "final"}
    assert events[-1]["type"] == "final"
    offline = run("--format", "text").strip()
    assert " ".join(e["text"] for e in events if e["type"] == "final") == offline
    assert "-->" in run("--stream", "--format", "srt")
    bad = subprocess.run([sys.executable, "-m", "streamer.cli", "transcribe", str(NPSC / "norwegian-short-3s.mp3"),
                          "--model", str(tiny_export), "--format", "jsonl"], capture_output=True, text=True)
    assert bad.returncode == 2 and "add --stream" in bad.stderr


def test_ten_minute_stream_keeps_memory_bounded(model, speech):
    """10 minutes of talk with short pauses: finals keep coming, buffers never outgrow the segment cap."""
    import tracemalloc

    settings = StreamSettings(vad=VadSettings(max_segment_s=10.0, cut_search_s=4.0))
    stream = Recognizer(model, settings).stream()
    piece = np.concatenate([speech, silence(0.2)])
    audio = np.tile(piece, int(np.ceil(600 * 16000 / len(piece))))[: 600 * 16000]
    finals_seen, longest, memory = [], 0, []
    tracemalloc.start()
    for start in range(0, len(audio), 16000):
        for event in stream.accept(audio[start : start + 16000]):
            if isinstance(event, Final):
                finals_seen.append(event)
        if stream._segment is not None:
            longest = max(longest, stream._segment.length)
        if start % (60 * 16000) == 0:
            memory.append(tracemalloc.get_traced_memory()[0])
    finals_seen += [e for e in stream.finish() if isinstance(e, Final)]
    tracemalloc.stop()
    assert len(finals_seen) >= 600 / 10
    assert longest <= 10.0 * 16000 + 16000
    assert max(memory[2:]) - min(memory[2:]) < 8 * 2**20  # flat after the first minutes
    assert all(a.end_s <= b.start_s + 1e-9 for a, b in zip(finals_seen, finals_seen[1:]))


def test_a_bad_block_is_refused_and_loses_nothing(model, speech):
    audio = np.concatenate([silence(0.5), speech, silence(1.0)])
    recognizer = Recognizer(model)
    reference = finals(run_stream(recognizer.stream(), audio, [3200] * 400))
    stream, events = recognizer.stream(), []
    for i, start in enumerate(range(0, len(audio), 3200)):
        if i == 5:
            for bad in (np.zeros((2, 100), np.int16), np.array([np.nan], np.float32), np.zeros(10, np.int64)):
                with pytest.raises(StreamerError):
                    stream.accept(bad)
        events += stream.accept(audio[start : start + 3200])
    assert finals(events + stream.finish()) == reference


def test_realtime_pacing_takes_the_audio_time(tiny_export):
    import subprocess
    import sys
    import time

    began = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "streamer.cli", "transcribe", str(NPSC / "norwegian-short-3s.mp3"),
                             "--model", str(tiny_export), "--stream", "--realtime", "--format", "jsonl"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - began >= 3.0  # paced like live audio: no faster than the clip lasts
    assert '"type": "final"' in result.stdout
