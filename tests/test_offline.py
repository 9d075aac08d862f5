import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from streamer.sources.ffmpeg import read_audio
from streamer.text.ctc import Word
from streamer.driver.offline import OFFLINE_CHUNKS, OfflineSettings, transcribe_array, transcribe_blocks
from streamer.backends.onnx import OnnxModel
from streamer.driver.captioner import Captioner
from streamer.core.vad import VadSettings

from helpers import lone_logits, NPSC, espeak, silence


@pytest.fixture(scope="module")
def model(tiny_export):
    return OnnxModel(tiny_export)


def chunked(window_s: float, context_s: float) -> OfflineSettings:
    return OfflineSettings(vad=VadSettings(enabled=False),
                           chunks=replace(OFFLINE_CHUNKS, hop_ms=int((window_s - 2 * context_s) * 1000),
                                          left_ms=int(context_s * 1000), right_ms=int(context_s * 1000)))


def test_long_segment_in_chunks_keeps_every_frame_once(model):
    """A segment longer than one window runs in chunks whose kept frames tile it: as many words and frames
    as any block split gives, times in order and inside the audio."""
    audio = (np.random.default_rng(3).standard_normal(16000 * 9) * 3000).astype(np.int16)
    settings = chunked(2.0, 0.5)
    stream = Captioner(model, settings.stream_settings()).stream()
    stream.feed(audio)
    stream.end()
    windows = []
    while (request := stream.next_request()) is not None:
        windows.append(request.window)
        stream.deliver(request, lone_logits(model, request))
    assert len(windows) > 4 and windows[-1].kind == "final"
    kept = [(w.keep_from, w.keep_to) for w in windows]
    assert kept[0][0] == 0 and all(a[1] == b[0] for a, b in zip(kept, kept[1:])) and kept[-1][1] == len(audio)
    one_block = [f.to_json() for f in transcribe_array(audio, model, settings)]
    for size in (1234, 5000):
        blocks = np.split(audio, range(size, len(audio), size))
        assert [f.to_json() for f in transcribe_blocks(blocks, model, settings)] == one_block
    one_block = transcribe_array(audio, model, settings)
    words = [w for f in one_block for w in f.words]
    assert all(a.end_s <= b.start_s for a, b in zip(words, words[1:])) and words[-1].end_s <= 9.0


def test_a_segment_up_to_the_window_is_one_pass(model):
    audio = (np.random.default_rng(4).standard_normal(16000 * 3) * 3000).astype(np.int16)
    stream = Captioner(model, OfflineSettings(vad=VadSettings(enabled=False)).stream_settings()).stream()
    stream.feed(audio)
    stream.end()
    request = stream.next_request()
    assert (request.window.start_sample, request.window.end_sample, request.window.kind) == (0, len(audio), "final")
    stream.deliver(request, lone_logits(model, request))
    assert stream.next_request() is None


def test_segments_come_in_order_with_stream_times(model, tmp_path):
    speech = read_audio(str(espeak("Stortingets møte er lovlig satt.", tmp_path / "a.wav")))
    audio = np.concatenate([silence(1.0), speech, silence(2.0), speech, silence(0.5)])
    segments = transcribe_array(audio, model)
    assert len(segments) == 2
    assert 0.5 < segments[0].start_s < 1.0 < segments[0].end_s < segments[1].start_s
    for segment in segments:
        assert all(segment.start_s <= w.start_s < w.end_s <= segment.end_s for w in segment.words)


def test_a_long_segment_in_chunks_ends_before_the_short_one_after_it(model, tmp_path):
    """A segment that needs several chunks, then a short one, all in one block: the finals come in the
    order they were spoken (the short one's single pass may not overtake the long one's chunks)."""
    long = read_audio(str(espeak("Stortingets møte er lovlig satt og vi går videre til dagens kart med saker fra "
                                 "komiteen for finans og økonomi", tmp_path / "long.wav")))
    short = read_audio(str(espeak("Takk.", tmp_path / "short.wav")))
    audio = np.concatenate([silence(0.5), long, silence(1.5), short, silence(1.5), short, silence(0.5)])
    settings = replace(OfflineSettings(), chunks=replace(OFFLINE_CHUNKS, hop_ms=2000, left_ms=500, right_ms=500))
    segments = transcribe_array(audio, model, settings)
    assert len(segments) == 3 and len(long) > 3 * 16000
    assert [s.start_s for s in segments] == sorted(s.start_s for s in segments)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "streamer.cli", *args], capture_output=True, text=True, timeout=300)


def test_transcribe_npsc_clip_json_has_monotonic_word_times_inside_the_clip(tiny_export):
    result = run_cli("transcribe", str(NPSC / "norwegian-medium-8s.mp3"), "--model", str(tiny_export),
                     "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= {"text", "words", "duration"}
    assert 7.5 < data["duration"] < 8.5
    assert data["words"], "a random model still emits letters"
    times = [(w["start"], w["end"]) for w in data["words"]]
    assert all(0 <= s < e <= data["duration"] for s, e in times)
    assert all(e1 <= s2 for (_, e1), (s2, _) in zip(times, times[1:]))
    assert all(0 <= w["confidence"] <= 1 for w in data["words"])


@pytest.mark.parametrize("fmt", ["text", "srt", "vtt"])
def test_transcribe_formats_and_output_file(tiny_export, tmp_path, fmt):
    out = tmp_path / f"out.{fmt}"
    result = run_cli("transcribe", str(NPSC / "norwegian-short-3s.mp3"), "--model", str(tiny_export),
                     "--format", fmt, "-o", str(out))
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    if fmt == "text":  # one line per speech segment: the clip is one
        assert len(text.strip().splitlines()) == 1 and text.strip().rstrip(".").replace(" ", "").isalpha()
    else:
        assert {"srt": "-->", "vtt": "WEBVTT"}[fmt] in text and text.count("-->") >= 1


def test_bad_inputs_are_one_line_errors(tiny_export, tmp_path):
    empty = tmp_path / "empty.wav"
    empty.touch()
    garbage = tmp_path / "noise.mp3"
    garbage.write_bytes(b"this is not audio" * 10)
    video = tmp_path / "video.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=black:s=32x32:d=1",
                    "-c:v", "mpeg4", str(video)], check=True)
    cases = {
        str(tmp_path / "missing.wav"): "no such file",
        str(empty): "is empty",
        str(garbage): "not a media file",
        str(video): "no audio stream",
    }
    for path, message in cases.items():
        result = run_cli("transcribe", path, "--model", str(tiny_export))
        assert result.returncode == 2
        assert message in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_terminal_view_redraws_the_partial_and_scrolls_finals():
    import io

    from streamer.core.events import Final, Partial
    from streamer.captions.output import TerminalView

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    events = [Partial(0, "stortingets møte", 11, 0.0, 1.0), Partial(0, "stortingets møte er", 16, 0.0, 1.5),
              Final(0, (Word("stortingets", 0.1, 0.7, 0.9), Word("møte", 0.8, 1.1, 0.9)), 0.0, 1.6)]
    terminal, pipe = Terminal(), io.StringIO()
    for out in (terminal, pipe):
        view = TerminalView(out)
        for event in events:
            view.event(event)
    text = terminal.getvalue()
    assert text.count("\r\033[K") == 3  # each update clears the line in place
    assert text.endswith("stortingets møte\n") and "[   0.00]" in text and "\033[2m" in text
    assert pipe.getvalue() == "[   0.00] stortingets møte\n"  # a pipe or a file gets the finals, no control codes
