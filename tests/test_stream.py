import argparse
import json
import subprocess
import sys
import time

import numpy as np
import pytest

from streamer.sources.ffmpeg import read_audio
from streamer.errors import StreamerError
from streamer.core.events import Final, Partial
from streamer.driver.offline import transcribe_array
from streamer.backends.onnx import OnnxModel
from streamer.cli.options import add_stream_options, stream_settings
from streamer.core.stream import StreamSettings, with_flat_settings
from streamer.driver.captioner import Captioner
from streamer.core.windower import MAX_WORD_MS, CommitSettings, Window, WindowSettings, kept_frames

from helpers import lone_logits, NPSC, espeak, silence


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


def test_single_sample_blocks(model, speech):
    audio = np.concatenate([silence(0.3), speech[:16000]])
    recognizer = Captioner(model)
    assert finals(run_stream(recognizer.stream(), audio, [1] * len(audio))) == \
        finals(run_stream(recognizer.stream(), audio, [len(audio)]))


def test_finals_equal_offline_when_each_segment_fits_one_commit_window(model, speech):
    """The same frame-level machinery: with no pause commits and a window longer than any segment, each
    segment's final is one pass over it, as offline."""
    audio = np.concatenate([silence(1.0), speech, silence(1.5), speech[:30000], silence(0.2)])
    offline = transcribe_array(audio, model)
    settings = StreamSettings(commit=CommitSettings(left_ms=2000, right_ms=1000, hop_ms=17_000, pause_ms=None))
    streamed = [e for e in run_stream(Captioner(model, settings).stream(), audio, [4800] * 1000)
                if isinstance(e, Final)]
    assert [f.to_json() for f in streamed] == [f.to_json() for f in offline] and len(offline) == 2


def test_partials_come_before_their_final_and_grow(model, speech):
    events = run_stream(Captioner(model).stream(), np.concatenate([silence(0.5), speech, silence(1)]), [1600] * 500)
    kinds = [type(e).__name__ for e in events]
    assert kinds[-1] == "Final" and "Partial" in kinds
    partials = [e for e in events if isinstance(e, Partial)]
    assert all(0 <= p.stable_chars <= len(p.text) for p in partials)
    ends = [p.end_s for p in partials]
    assert ends == sorted(ends)
    numbers = [e.caption for e in events]
    assert numbers == sorted(numbers)  # a caption's events all come before the next caption's


def test_sans_io_requests_come_most_urgent_first(model, speech):
    """A driver that comes late (all the speech and its pause already fed) is handed the commits in order,
    the one that ends the caption last, and no window of a pass of its own for partials (they come from
    the commits' right context)."""
    stream = Captioner(model).stream()
    stream.feed(np.concatenate([silence(0.3), speech, silence(0.4)]))
    kinds = []
    while (request := stream.next_request()) is not None:
        kinds.append(request.window.kind)
        stream.deliver(request, lone_logits(model, request))
    assert kinds[-1] == "pause" and set(kinds[:-1]) <= {"commit"}


def test_silence_noise_click_and_mid_word_end(model, speech):
    recognizer = Captioner(model)
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
def test_npsc_clip_finals_cover_the_speech(tiny_nb, clip):
    """Real parliament speech through the trained small model: every word offline finds lies in a final."""
    model = OnnxModel(tiny_nb)
    audio = read_audio(str(NPSC / clip))
    out = finals(run_stream(Captioner(model).stream(), audio, [2048] * 200))
    spoken = [w for f in transcribe_array(audio, model) for w in f.words]
    assert out and out[0]["start"] <= min(0.3, spoken[0].start_s) and out[-1]["end"] >= spoken[-1].end_s
    assert all(a["end"] <= b["start"] + 1e-9 for a, b in zip(out, out[1:]))
    assert [f["segment"] for f in out] == list(range(len(out)))


def test_reset_starts_a_new_stream(model, speech):
    stream = Captioner(model).stream()
    first = finals(run_stream(stream, speech, [4000] * 100))
    stream.reset()
    assert finals(run_stream(stream, speech, [4000] * 100)) == first


def test_window_settings_errors():
    with pytest.raises(StreamerError, match="multiple of 20 ms"):
        WindowSettings(hop_ms=250)
    with pytest.raises(StreamerError, match="hop_ms"):
        WindowSettings(hop_ms=0)
    with pytest.raises(StreamerError, match="at least min_commit_ms"):
        CommitSettings(hop_ms=1000, min_commit_ms=2000)
    with pytest.raises(StreamerError, match="pause_ms"):
        CommitSettings(pause_ms=20)
    with pytest.raises(StreamerError, match="max_caption_s"):
        StreamSettings(max_caption_s=0)


def test_a_short_right_context_is_widened_to_what_the_model_needs(model, speech):
    """No right context at all: the last kept frame of every hop still exists (the window is widened by
    receptive field − stride), and a window that lacks a frame is an error, never a silent loss."""
    geometry = model.geometry
    settings = StreamSettings(window=WindowSettings(left_ms=500, hop_ms=500, right_ms=0))
    stream = Captioner(model, settings).stream()
    stream.feed(np.concatenate([silence(0.3), speech]))
    partials = []
    while (request := stream.next_request()) is not None:
        if request.window.kind == "partial":
            partials.append(request.window)
            frames = geometry.n_frames(len(request.audio))
            assert frames >= (request.window.keep_to - request.window.start_sample) // geometry.stride_samples
        stream.deliver(request, lone_logits(model, request))
    assert partials and all(w.end_sample > w.keep_to for w in partials)
    with pytest.raises(AssertionError, match="frames"):
        kept_frames(Window(0, 16000, 0, 16000), geometry.n_frames(16000), geometry.stride_samples)


def test_cli_stream_jsonl_prints_every_event_and_matches_offline_text(tiny_export):
    def run(*extra):
        result = subprocess.run([sys.executable, "-m", "streamer.cli", "transcribe", str(NPSC / "norwegian-medium-8s.mp3"),
                                 "--model", str(tiny_export), *extra], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return result.stdout

    one_pass = ("--commit-hop-ms", "20000", "--pause-ms", "60000", "--first-pass")  # a segment in one commit
    events = [json.loads(line) for line in run("--stream", "--format", "jsonl", *one_pass).splitlines()]
    assert {e["type"] for e in events} == {"partial", "final"}
    assert events[-1]["type"] == "final"
    offline = run("--format", "text").strip()
    assert " ".join(e["text"] for e in events if e["type"] == "final") == offline
    assert "-->" in run("--stream", "--format", "srt")
    bad = subprocess.run([sys.executable, "-m", "streamer.cli", "transcribe", str(NPSC / "norwegian-short-3s.mp3"),
                          "--model", str(tiny_export), "--format", "jsonl"], capture_output=True, text=True)
    assert bad.returncode == 2 and "add --stream" in bad.stderr


def test_ten_minute_monologue_keeps_memory_bounded(model, speech):
    """10 minutes of talk whose pauses are all shorter than the VAD hangover (one speech segment):
    captions keep coming, and the audio kept never outgrows a commit window."""
    import tracemalloc

    settings = StreamSettings(max_caption_s=8.0)
    stream = Captioner(model, settings).stream()
    piece = np.concatenate([speech, silence(0.2)])
    audio = np.tile(piece, int(np.ceil(600 * 16000 / len(piece))))[: 600 * 16000]
    finals_seen, kept, memory = [], 0, []
    tracemalloc.start()
    for start in range(0, len(audio), 16000):
        finals_seen += [e for e in stream.accept(audio[start : start + 16000]) if isinstance(e, Final)]
        kept = max([kept] + [len(s.audio.slice(s.audio.origin, s.audio.length)) for s in stream._segments.values()])
        if start % (60 * 16000) == 0:
            memory.append(tracemalloc.get_traced_memory()[0])
    finals_seen += [e for e in stream.finish() if isinstance(e, Final)]
    tracemalloc.stop()
    assert len(finals_seen) >= 600 / 10
    # a commit window, one that waited for a word to end, and a block
    assert kept <= (settings.commit.window_ms + MAX_WORD_MS) * 16 + 16000
    assert max(memory[2:]) - min(memory[2:]) < 8 * 2**20  # flat after the first minutes
    assert all(a.end_s <= b.start_s + 1e-9 for a, b in zip(finals_seen, finals_seen[1:]))


def test_a_bad_block_is_refused_and_loses_nothing(model, speech):
    audio = np.concatenate([silence(0.5), speech, silence(1.0)])
    recognizer = Captioner(model)
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
    began = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "streamer.cli", "transcribe", str(NPSC / "norwegian-short-3s.mp3"),
                             "--model", str(tiny_export), "--stream", "--realtime", "--format", "jsonl"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - began >= 3.0  # paced like live audio: no faster than the clip lasts
    assert '"type": "final"' in result.stdout


def test_flat_settings_map_onto_the_stream_settings_from_the_command_line_too():
    """with_flat_settings is the one mapping of flat names (a client's, the command line's) onto
    StreamSettings: each lands on its field, bad values raise from the dataclass that checks them."""
    base = StreamSettings()
    assert with_flat_settings(base) is base
    flat = with_flat_settings(base, commit_right_ms=400, word_end_prob=0.5, pause_ms=None, hop_ms=500,
                              first_pass=True, vad_aggressiveness=1, max_caption_s=4.0)
    assert (flat.commit.right_ms, flat.commit.word_end_prob, flat.commit.pause_ms, flat.commit.hop_ms) == (400, 0.5, None, 500)
    assert (flat.window.hop_ms, flat.vad.aggressiveness, flat.max_caption_s) == (500, 1, 4.0)
    assert flat.commit.left_ms == base.commit.left_ms
    with pytest.raises(StreamerError, match="unknown stream settings"):
        with_flat_settings(base, word_end=0.5)
    with pytest.raises(StreamerError, match="word_end_prob must be between 0 and 1, not 2"):
        with_flat_settings(base, word_end_prob=2)
    parser = argparse.ArgumentParser()
    add_stream_options(parser)
    assert stream_settings(parser.parse_args([])).commit == base.commit
    chosen = stream_settings(parser.parse_args(["--word-end-prob", "0", "--commit-right-ms", "800"])).commit
    assert (chosen.word_end_prob, chosen.right_ms) == (0.0, 800)
