"""Cues from final words, by Norwegian subtitle practice: lines, durations, reading speed, no overlap."""

import pytest
from hypothesis import given, settings, strategies as st

from streamer.captions.cues import CueSettings, CueWriter, LiveCues, break_lines, cue_problems, make_cues
from streamer.text.ctc import Word
from streamer.errors import StreamerError

RULES = CueSettings()


def speech(texts_and_times) -> list[Word]:
    return [Word(text, start, end, 0.9) for text, start, end in texts_and_times]


def spoken(text: str, start_s: float = 0.0, cps: float = 14.0, pause_after: dict | None = None) -> list[Word]:
    """Words spoken at cps characters per second, with the given pauses after some of them."""
    words, t = [], start_s
    for i, word in enumerate(text.split()):
        duration = len(word) / cps
        words.append(Word(word, t, t + duration, 0.9))
        t += duration + 1 / cps + (pause_after or {}).get(i, 0.0)
    return words


def cue_words(cues) -> list[str]:
    """The words the cues show, hyphenated pieces joined again."""
    return " ".join(" ".join(cue.lines) for cue in cues).replace("- ", "").split()


word_lists = st.lists(
    st.tuples(st.text("abcdefghijklmnopqrstuvwxyzæøå", min_size=1, max_size=60), st.floats(0.0, 1.5),
              st.floats(0.05, 9.0)), min_size=1, max_size=80)


@settings(max_examples=200, deadline=None)
@given(word_lists)
def test_any_words_give_valid_cues(raw):
    """Random words (some longer than a line), gaps and durations (some held longer than 7 s): every cue
    obeys the rules, cues never overlap, and every word is shown once, in order."""
    words, t = [], 0.0
    for text, gap, duration in raw:
        words.append(Word(text, t + gap, t + gap + duration, 0.9))
        t += gap + duration
    cues = make_cues(words)
    assert cue_problems(cues) == []
    assert cue_words(cues) == [w.word for w in words]
    assert cues[0].start_s >= words[0].start_s


@settings(max_examples=100, deadline=None)
@given(st.floats(8.0, 16.0), st.lists(st.integers(2, 12), min_size=5, max_size=60))
def test_readable_speech_gives_cues_at_most_17_characters_per_second(cps, lengths):
    """Speech no faster than a viewer reads (≤ 16 characters per second): no cue shows faster than 17."""
    text = " ".join("a" * n for n in lengths)
    cues = make_cues(spoken(text, cps=cps))
    assert cue_problems(cues) == []
    assert all(cue.chars / (cue.end_s - cue.start_s) <= RULES.max_cps + 1e-6 for cue in cues)


def test_lines_break_at_phrase_boundaries_and_are_balanced():
    words = spoken("representantene fra stortinget har vedtatt budsjettet og regjeringen tar det til etterretning")
    cues = make_cues(words)
    assert cue_problems(cues) == [] and len(cues) >= 2
    first = cues[0].lines
    assert len(first) == 2 and first[1].split()[0] in ("og", "fra", "har") and not first[0].endswith(" og")
    assert break_lines(spoken("vi møtes i morgen"), RULES) == ("vi møtes i morgen",)


def test_a_pause_starts_a_new_cue_and_short_cues_stay_readable():
    words = spoken("ja", 1.0) + spoken("takk", 4.0)
    cues = make_cues(words)
    assert [c.lines for c in cues] == [("ja",), ("takk",)]
    assert all(c.end_s - c.start_s >= RULES.min_duration_s for c in cues)


def test_an_over_long_word_and_a_word_held_too_long_still_give_valid_cues():
    long_word = "a" * 100
    cues = make_cues(speech([(long_word, 0.0, 3.0), ("ja", 3.2, 3.4)]))
    assert cue_problems(cues) == [] and cue_words(cues) == [long_word, "ja"]
    assert all(len(line) <= 42 for cue in cues for line in cue.lines)
    held = make_cues(speech([("eeeeh", 0.0, 12.0), ("ja", 12.2, 12.5)]))
    assert cue_problems(held) == [] and held[0].end_s - held[0].start_s == pytest.approx(7.0)


def test_cues_of_consecutive_finals_never_overlap_and_number_on():
    writer = CueWriter("srt")
    first = writer.segment(spoken("dette er den første setningen som blir lest opp her i salen", 0.0))
    second = writer.segment(spoken("og dette er den andre", 4.3))  # starts while the first cue is still readable
    numbers = [int(block.split("\n")[0]) for block in (first + second).strip().split("\n\n")]
    assert numbers == list(range(1, len(numbers) + 1))
    vtt = CueWriter("vtt")
    assert (vtt.header() + vtt.segment(spoken("hei"))).startswith("WEBVTT\n\n00:00:00.000 --> 00:00:00.830\nhei")


def test_settings_are_checked():
    with pytest.raises(StreamerError, match="min_duration_s"):
        CueSettings(min_duration_s=8.0)
    with pytest.raises(StreamerError, match="max_line_chars"):
        CueSettings(max_line_chars=4)


def speech_words(text: str, start_s: float = 0.0, word_s: float = 0.3, gap_s: float = 0.05) -> list[Word]:
    out, t = [], start_s
    for token in text.split():
        out.append(Word(token, t, t + word_s, 1.0))
        t += word_s + gap_s
    return out


LONG = ("Stortinget har i dag behandlet forslaget om endringer i lov om folketrygd og vedtok det med "
        "stort flertall etter en lang debatt")


@given(hold_s=st.sampled_from([0.5, 1.0, 2.0, 7.0]), step=st.integers(1, 4))
def test_live_cues_come_as_words_settle_and_hold_every_word_once(hold_s, step):
    """Stable words arrive a few at a time (never the partial's last word, as a stream gives them), then the
    final (with a full stop): cues are written before the final, hold every word once and in order,
    follow the rules, and a longer hold gives fewer cues."""
    words = speech_words(LONG)
    live = LiveCues(CueWriter(settings=CueSettings(max_hold_s=hold_s)))
    cues, before_final = [], 0
    for n in range(1, len(words), step):
        cues += live.stable(0, words[:n])
    before_final = len(cues)
    final = words[:-1] + [Word(words[-1].word + ".", words[-1].start_s, words[-1].end_s, 1.0)]
    cues += live.final(0, final)
    assert " ".join(" ".join(c.lines) for c in cues) == " ".join(w.word for w in final)
    assert cue_problems(cues) == []
    assert before_final >= 1  # subtitles did not wait for the final
    if hold_s <= 1.0:  # the first words are on screen within about a second of speech
        assert cues[0].start_s == 0.0 and len(" ".join(cues[0].lines)) <= 42


def test_a_newer_captions_words_wait_for_the_final_before_it():
    live = LiveCues(CueWriter(settings=CueSettings(max_hold_s=0.5)))
    first, second = speech_words("dette er den første setningen"), speech_words("og her kommer den andre", 3.0)
    assert live.stable(0, first[:3])  # caption 0's first words are cued
    assert live.stable(1, second) == []  # caption 1 waits: caption 0 is still open
    rest = live.final(0, first)
    later = live.final(1, second)
    assert " ".join(" ".join(c.lines) for c in rest + later).split()[-5:] == [w.word for w in second]
    assert live.writer.count >= 3
