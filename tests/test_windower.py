"""Windows: which audio each decode sees and which of its frames are kept, for both passes.

Pure arithmetic on sample counts, with the XLS-R feature encoder's shape (320-sample frames, a
400-sample receptive field) unless a test says otherwise."""

import pytest
from hypothesis import given, settings, strategies as st

from streamer.core.windower import (CommitPass, CommitSettings, PartialPass, Window, WindowSettings, kept_frames,
                                    least_right)
from streamer.errors import StreamerError
from streamer.model.geometry import FrameGeometry

XLSR = FrameGeometry()
STRIDE = XLSR.stride_samples  # 320 samples = 20 ms
MS = XLSR.sample_rate // 1000  # samples per ms


def test_xlsr_geometry_and_the_least_right_context():
    assert (STRIDE, XLSR.receptive_field_samples) == (320, 400)
    assert least_right(XLSR) == 320  # 80 samples past the last frame's start, rounded up to a whole frame
    wide = FrameGeometry(conv_kernel=(2000,), conv_stride=(320,))
    assert least_right(wide) == 1920  # 1680 samples, rounded up to 6 frames


# ---- first pass

SMALL = WindowSettings(left_ms=100, hop_ms=200, right_ms=40, max_hops=3)  # left 1600, hop 3200, right 640


def test_partial_window_waits_for_its_right_context():
    partials = PartialPass(SMALL, XLSR)
    assert (partials.left, partials.hop, partials.right) == (1600, 3200, 640)
    assert partials.window(0) is None
    assert partials.window(3200) is None  # a whole hop, but not its right context
    assert partials.window(3839) is None
    assert partials.window(3840) == Window(0, 3840, 0, 3200, "partial")  # left context clipped at 0
    assert partials.window(3840) is None  # that hop is kept: nothing more is due
    assert partials.window(7039) is None
    assert partials.window(7040) == Window(1600, 7040, 3200, 6400, "partial")
    assert partials.next_keep == 6400 and partials.dropped_hops == 0


def test_partial_right_context_is_widened_to_what_the_last_frame_needs():
    partials = PartialPass(WindowSettings(left_ms=0, hop_ms=100, right_ms=0), XLSR)
    assert partials.right == least_right(XLSR) == 320
    assert partials.window(1600 + 319) is None
    window = partials.window(1600 + 320)
    assert window == Window(0, 1920, 0, 1600, "partial")
    assert kept_frames(window, XLSR.n_frames(1920), STRIDE) == (0, 5)


def test_several_due_hops_merge_into_one_window():
    partials = PartialPass(SMALL, XLSR)
    window = partials.window(2 * 3200 + 640)
    assert window == Window(0, 7040, 0, 6400, "partial")
    assert partials.dropped_hops == 0 and partials.next_keep == 6400
    window = partials.window(5 * 3200 + 640 + 100)  # three hops due now: max_hops, none dropped
    assert window == Window(6400 - 1600, 16640, 6400, 16000, "partial")
    assert partials.dropped_hops == 0


def test_more_than_max_hops_due_drops_the_oldest_and_counts_them():
    partials = PartialPass(SMALL, XLSR)
    window = partials.window(5 * 3200 + 640)  # five hops due, three allowed
    assert window == Window(2 * 3200 - 1600, 16640, 2 * 3200, 5 * 3200, "partial")
    assert partials.dropped_hops == 2 and partials.next_keep == 16000
    window = partials.window(16000 + 8 * 3200 + 640)  # eight more: five dropped
    assert window.keep_from == 16000 + 5 * 3200 and window.keep_to == 16000 + 8 * 3200
    assert partials.dropped_hops == 7


def test_skip_to_moves_past_committed_audio_but_never_back():
    partials = PartialPass(SMALL, XLSR)
    partials.skip_to(10_000)
    assert partials.next_keep == 10_000
    assert partials.window(10_000 + 3200 + 639) is None
    assert partials.window(10_000 + 3200 + 640) == Window(8400, 13840, 10_000, 13200, "partial")
    partials.skip_to(5_000)  # already past it
    assert partials.next_keep == 13200
    assert partials.dropped_hops == 0  # skipped audio is committed, not dropped


sample_ms = st.integers(0, 30).map(lambda n: 20 * n)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    left_ms=sample_ms, hop_ms=st.integers(1, 30).map(lambda n: 20 * n), right_ms=sample_ms,
    max_hops=st.integers(1, 5), kernel=st.sampled_from([400, 700, 2000]),
    total=st.integers(0, 160_000), steps=st.lists(st.integers(1, 40_000), min_size=1, max_size=40),
)
def test_partial_windows_never_overlap_and_only_counted_hops_are_missing(left_ms, hop_ms, right_ms, max_hops,
                                                                         kernel, total, steps):
    """Audio of any length fed in any increments: kept ranges follow one another, a gap between them is
    exactly the hops counted as dropped, every kept frame has the right context it needs (and exists in
    the model's output), a window never reaches past the audio, and nothing due is left at the end."""
    geometry = FrameGeometry(conv_kernel=(kernel,), conv_stride=(320,))
    partials = PartialPass(WindowSettings(left_ms, hop_ms, right_ms, max_hops), geometry)
    hop = hop_ms * MS
    kept_to, dropped, n, kept = 0, 0, 0, 0
    lengths = []
    for step in steps * (total // max(1, sum(steps)) + 1):
        if n >= total:
            break
        n = min(total, n + step)
        lengths.append(n)
        window = partials.window(n)
        if window is None:
            continue
        newly_dropped = partials.dropped_hops - dropped
        dropped = partials.dropped_hops
        assert window.kind == "partial"
        assert window.keep_from == kept_to + newly_dropped * hop  # no overlap; a gap only for dropped hops
        hops = (window.keep_to - window.keep_from) // hop
        assert window.keep_to - window.keep_from == hops * hop and 1 <= hops <= max_hops
        assert window.end_sample <= n  # only audio that has arrived
        assert window.end_sample - window.keep_to >= least_right(geometry)
        assert window.end_sample - window.keep_to >= right_ms * MS
        assert window.start_sample == max(0, window.keep_from - left_ms * MS)
        first, last = kept_frames(window, geometry.n_frames(window.end_sample - window.start_sample), 320)
        assert (last - first) * 320 == window.keep_to - window.keep_from
        assert partials.window(n) is None  # one window takes every due hop
        kept_to = window.keep_to
        kept += hops
    assert partials.next_keep == kept_to == (kept + dropped) * hop
    assert partials.due(n) == 0 and kept_to + hop + partials.right > n  # nothing due is left unkept
    if all(b - a <= hop for a, b in zip([0] + lengths, lengths)):
        assert dropped == 0  # a driver that keeps up drops nothing


# ---- second pass

EIGHT_S = CommitSettings(left_ms=2000, right_ms=1000, hop_ms=5000, min_commit_ms=2000)  # 8 s windows


def test_commit_in_speech_window_and_when_it_is_due():
    commits = CommitPass(EIGHT_S, XLSR)
    assert commits.due_at() == 96_000  # window − left of audio waits: at the start the window is shorter
    window = commits.in_speech()
    assert window == Window(0, 96_000, 0, 80_000, "commit")
    assert commits.search_from(window) == 32_000  # a cut at least min_commit_ms on
    commits.advance(100_000)
    assert commits.due_at() == 100_000 - 32_000 + 128_000
    window = commits.in_speech()
    assert window == Window(68_000, 196_000, 100_000, 180_000, "commit")
    assert commits.search_from(window) == 132_000
    assert kept_frames(window, XLSR.n_frames(128_000), STRIDE) == (100, 350)


def test_commit_without_min_commit_cuts_right_before_the_right_context():
    commits = CommitPass(CommitSettings(left_ms=3000, right_ms=3000, hop_ms=24_000, min_commit_ms=None,
                                        pause_ms=None), XLSR)
    window = commits.in_speech()
    assert window == Window(0, 432_000, 0, 384_000, "commit")  # 27 s: no left context at the start
    assert commits.search_from(window) == window.keep_to


def test_commit_at_a_pause_cuts_in_its_middle_on_a_frame_boundary():
    commits = CommitPass(EIGHT_S, XLSR)
    window = commits.at_pause(48_000, 52_800)  # middle 50_400, down to a frame: 50_240
    assert window == Window(0, 52_800, 0, 50_240, "pause")
    assert window.keep_to % STRIDE == 0
    assert kept_frames(window, XLSR.n_frames(52_800), STRIDE) == (0, 157)


def test_commit_at_a_short_pause_widens_the_window_to_the_least_right_context():
    commits = CommitPass(EIGHT_S, XLSR)
    window = commits.at_pause(1000, 1100)
    assert window == Window(0, 960 + 320, 0, 960, "pause")
    assert kept_frames(window, XLSR.n_frames(window.end_sample), STRIDE) == (0, 3)


def test_commit_at_a_pause_before_what_is_committed_never_cuts_back():
    commits = CommitPass(EIGHT_S, XLSR)
    commits.advance(60_000)
    window = commits.at_pause(50_000, 56_000)
    assert window == Window(28_000, 60_320, 60_000, 60_000, "pause")  # nothing new is kept


def test_commit_at_end_keeps_every_frame_to_the_end():
    commits = CommitPass(EIGHT_S, XLSR)
    assert commits.at_end(20_000) == Window(0, 20_000, 0, 20_000, "final")
    commits.advance(100_000)
    window = commits.at_end(150_000)
    assert window == Window(68_000, 150_000, 100_000, 150_000, "final")
    n = XLSR.n_frames(150_000 - 68_000)
    assert kept_frames(window, n, STRIDE) == (100, n)  # a final keeps every frame the model gave


def test_kept_frames_refuses_a_window_whose_kept_frames_are_missing():
    window = Window(0, 52_800, 0, 50_240, "pause")
    assert kept_frames(window, 157, STRIDE) == (0, 157)
    with pytest.raises(AssertionError, match="gave 156 frames, 157 needed"):
        kept_frames(window, 156, STRIDE)
    assert kept_frames(Window(0, 1000, 0, 1000, "final"), 0, STRIDE) == (0, 0)


# ---- settings

@pytest.mark.parametrize("kwargs, message", [
    (dict(hop_ms=250), "partial window hop_ms must be a non-negative multiple of 20 ms, not 250"),
    (dict(left_ms=-20), "partial window left_ms must be a non-negative multiple of 20 ms, not -20"),
    (dict(right_ms=30), "partial window right_ms must be a non-negative multiple of 20 ms, not 30"),
    (dict(hop_ms=0), "hop_ms must be at least 20 ms"),
    (dict(max_hops=0), "max_hops must be at least 1, not 0"),
])
def test_window_settings_errors_say_what_is_allowed(kwargs, message):
    with pytest.raises(StreamerError) as error:
        WindowSettings(**kwargs)
    assert str(error.value) == message


@pytest.mark.parametrize("kwargs, message", [
    (dict(hop_ms=510), "commit window hop_ms must be a non-negative multiple of 20 ms, not 510"),
    (dict(left_ms=1990), "commit window left_ms must be a non-negative multiple of 20 ms, not 1990"),
    (dict(min_commit_ms=-20), "commit window min_commit_ms must be a non-negative multiple of 20 ms, not -20"),
    (dict(hop_ms=480, min_commit_ms=500), "commit hop_ms (480) must be at least min_commit_ms and 20 ms (500)"),
    (dict(left_ms=0, right_ms=0, hop_ms=0, min_commit_ms=None),
     "commit hop_ms (0) must be at least min_commit_ms and 20 ms (20)"),
    (dict(pause_ms=20), "pause_ms must be at least 40 ms (or None), not 20"),
    (dict(word_end_prob=1.5), "word_end_prob must be between 0 and 1, not 1.5"),
])
def test_commit_settings_errors_say_what_is_allowed(kwargs, message):
    with pytest.raises(StreamerError) as error:
        CommitSettings(**kwargs)
    assert str(error.value) == message


def test_settings_at_their_limits_are_accepted():
    WindowSettings(left_ms=0, hop_ms=20, right_ms=0, max_hops=1)
    CommitSettings(hop_ms=20)
    CommitSettings(left_ms=0, right_ms=0, hop_ms=20, min_commit_ms=None, pause_ms=None)
    CommitSettings(pause_ms=40)
