"""The one overload policy (streamer.driver.overload): audio skipped as silence while captions trail it by
more than max_lag_s, measured as the wait at the hand-over plus the stream's own lag, for every command."""

import numpy as np
import pytest

from streamer.core.events import Error
from streamer.driver.batcher import BatchSettings
from streamer.driver.captioner import Captioner
from streamer.driver.overload import Skip, Skipper
from streamer.backends.onnx import OnnxModel
from streamer.sources.handoff import read_ahead

from helpers import espeak, finals_of, silence


def test_a_skip_starts_past_the_limit_ends_under_half_of_it_and_is_told_once():
    told: list[Skip] = []
    skipper = Skipper(2.0, told.append)
    block = np.ones(1600, np.int16)  # 0.1 s
    lags = [0.0, 2.5, 1.5, 1.1, 0.9, 0.0, 3.0]
    admitted = [skipper.admit(block, 16000, lag) for lag in lags]
    skipped = [not out.any() for out, _ in admitted]
    assert skipped == [False, True, True, True, False, False, True]
    notices = [e for _, events in admitted for e in events]
    assert [type(e) for e in notices] == [Error, Error] and {e.code for e in notices} == {"behind"}
    assert [(s.start_s, s.end_s) for s in told] == [pytest.approx((0.1, 0.4))]
    skipper.finish()
    assert (told[-1].start_s, told[-1].end_s) == pytest.approx((0.6, 0.7)) and skipper.skipped_s == pytest.approx(0.4)
    assert Skipper(None).admit(block, 16000, 1e9)[0].any()  # no limit: never skipped


def test_a_block_that_waited_too_long_at_the_hand_over_is_skipped_by_the_synchronous_driver(tiny_nb, tmp_path):
    """mic and subtitle: blocks read on a thread come with how long they waited; past max_lag_s the audio
    goes in as silence (no words captioned in it), the caller hears of it through on_skip, and no
    ``behind`` error reaches a command that stops at errors."""
    from streamer.sources.ffmpeg import read_wav

    speech = read_wav(espeak("God morgen. Stortinget er satt. Vi skal behandle forslaget fra regjeringen om skatt.",
                             tmp_path / "speech.wav"))
    audio = np.concatenate([silence(0.5), speech, silence(1.0)])
    skips: list[Skip] = []
    with Captioner(OnnxModel(tiny_nb), batch=BatchSettings(max_lag_s=1.0)) as captioner:
        stream = captioner.stream(on_skip=skips.append)
        events = []
        for i, start in enumerate(range(0, len(audio), 1600)):
            waited_s = 5.0 if 20 <= i < 40 else 0.0  # 2 s of audio that waited 5 s each
            events += stream.accept(audio[start:start + 1600], waited_s)
        events += stream.finish()
    assert skips == [Skip(pytest.approx(2.0), pytest.approx(4.0))]
    assert not [e for e in events if isinstance(e, Error)]
    words = [w for f in finals_of(events) for w in f["words"]]
    assert words and not [w for w in words if 2.05 < w["start"] < 3.95], words


def test_the_hand_over_reports_how_long_a_live_block_waited_and_nothing_for_a_file():
    now = [0.0]

    def source():
        for i in range(3):
            now[0] += 1.0
            yield np.full(160, i, np.int16)

    live = list(read_ahead(source(), live=True, clock=lambda: now[0]))
    assert [int(b[0]) for b, _ in live] == [0, 1, 2] and all(w >= 0 for _, w in live)
    assert [w for _, w in read_ahead(source(), live=False, clock=lambda: now[0])] == [0.0, 0.0, 0.0]
