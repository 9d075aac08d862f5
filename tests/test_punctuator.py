"""The shipped punctuation model in the text stage: marks that never change as words come, stable text never
revised, the sentence end from the model, --no-punctuation as before, clear errors."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import drive_lazily, silence, to_int16
from hypothesis import given, settings
from hypothesis import strategies as st

from models import synth
from streamer.backends.onnx import OnnxModel
from streamer.core.events import Final, Partial, broken_promises
from streamer.core.stream import Recognizer, StreamSettings
from streamer.driver.offline import OfflineSettings, transcribe_array
from streamer.errors import StreamerError
from streamer.text.caption_text import CaptionText
from streamer.text.ctc import Word
from streamer.text.punctuator import MAX_DELAY, MODEL_PATH, Punctuator, _session
from streamer.text.written import TextSettings, make_writer

VOCABULARY = ("når vi ser på tallene er det tydelig at ordningen virker men regjeringen har ikke fulgt opp "
              "vedtaket hvorfor kan du si hva som skjer ja president jeg og de fra i fjor").split()
QUESTIONS = ["hvorfor har regjeringen ikke fulgt opp vedtaket fra i fjor",
             "hva mener statsråden om dette", "kan statsråden svare på spørsmålet",
             "hvem har ansvaret for denne saken", "er det riktig at budsjettet øker",
             "vil du lagre endringene", "hvordan skal vi løse dette"]
STATEMENTS = ["regjeringen la fram budsjettet i dag", "vi ser på tallene hver uke",
              "det er tydelig at ordningen virker", "jeg mener at dette er riktig",
              "stortinget vedtok forslaget", "saken er sendt til komiteen"]


def timed(raw: str) -> list[Word]:
    return [Word(w, k * 0.4, k * 0.4 + 0.3, 0.9) for k, w in enumerate(raw.split())]


def test_the_model_ships_in_the_package_and_is_small():
    assert MODEL_PATH.is_file()
    assert MODEL_PATH.stat().st_size < 10_000_000


@settings(max_examples=60, deadline=None)
@given(words=st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=30), k=st.integers(0, MAX_DELAY))
def test_a_decided_mark_never_changes_as_words_come(words, k):
    """The mark after a word depends only on the words up to its look-ahead, so every mark decided on a
    prefix is the one the whole caption gets, ended or not."""
    model = Punctuator(k)
    whole = model.marks(words, ended=False)
    ended = model.marks(words, ended=True)
    for n in range(1, len(words) + 1):
        prefix = model.marks(words[:n], ended=False)
        assert all(m is not None for m in prefix[: max(0, n - k)])  # decided once k words follow, if not before
        assert all(m is None or m == w for m, w in zip(prefix, whole))
        assert all(m is None or m == e for m, e in zip(prefix, ended[:-1]))
    assert None not in ended


def test_questions_end_with_a_question_mark_and_statements_with_a_full_stop():
    writer = make_writer(TextSettings())
    ends = {raw: CaptionText(writer).final(0, timed(raw), at_pause=True)[0][-1].word[-1] for raw in
            QUESTIONS + STATEMENTS}
    assert sum(ends[q] == "?" for q in QUESTIONS) >= len(QUESTIONS) - 1, ends
    assert sum(ends[s] == "." for s in STATEMENTS) >= len(STATEMENTS) - 1, ends


def test_without_punctuation_a_caption_ends_with_a_full_stop_as_before():
    writer = make_writer(TextSettings(punctuation=False))
    words, raw = CaptionText(writer).final(0, timed(QUESTIONS[0]), at_pause=True)
    assert " ".join(w.word for w in words) == "Hvorfor har regjeringen ikke fulgt opp vedtaket fra i fjor."
    assert raw == QUESTIONS[0]  # the raw text is untouched either way
    with_marks, raw = CaptionText(make_writer(TextSettings())).final(0, timed(QUESTIONS[0]), at_pause=True)
    assert with_marks[-1].word.endswith("?") and raw == QUESTIONS[0]


def test_a_caption_cut_in_running_speech_gets_no_end_mark():
    words, _ = CaptionText(make_writer(TextSettings())).final(0, timed(STATEMENTS[0]), at_pause=False)
    assert words[-1].word == "dag"


@settings(max_examples=80, deadline=None)
@given(words=st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=25), k=st.integers(0, 3),
       behind=st.integers(0, 3), at_pause=st.booleans())
def test_stable_text_with_marks_is_never_revised(words, k, behind, at_pause):
    """Partials that grow a word at a time, the newest `behind` words unstable: each stable text extends the
    one before, the partial's text starts with it, and so does the final's."""
    text = CaptionText(make_writer(TextSettings(look_ahead_words=k)))
    timed_words = [Word(w, i * 0.4, i * 0.4 + 0.3, 0.9) for i, w in enumerate(words)]
    shown = ""
    for n in range(1, len(words) + 1):
        partial, chars = text.partial(0, timed_words[:n], timed_words[: max(0, n - behind)])
        assert partial[:chars].startswith(shown)
        shown = partial[:chars]
    final, _ = text.final(0, timed_words, at_pause)
    assert " ".join(w.word for w in final).startswith(shown)


@pytest.mark.parametrize("punctuation", [True, False])
def test_stable_text_keeps_up_with_the_stable_words(punctuation):
    """With a look-ahead of one word (or no punctuation) every stable word is in the stable text at once."""
    text = CaptionText(make_writer(TextSettings(punctuation=punctuation)))
    spoken = timed("vi mener at regjeringen har gjort det riktige men vi vil se tallene")
    for n in range(2, len(spoken) + 1):
        partial, chars = text.partial(0, spoken[:n], spoken[: n - 1])
        assert len(partial[:chars].split()) == n - 1


def test_a_mark_after_the_newest_stable_word_waits_for_the_next_one():
    text = CaptionText(make_writer(TextSettings()))
    spoken = timed("jeg vil gjerne hjelpe men jeg kan ikke")
    for n in range(1, len(spoken) + 1):
        partial, chars = text.partial(0, spoken[:n], spoken[: n - 1])
        assert not partial[:chars].endswith((",", ".", "?"))  # the last stable word's mark is not shown yet


def test_a_missing_model_is_a_clear_error(tmp_path):
    _session.cache_clear()
    with pytest.raises(StreamerError, match="--no-punctuation"):
        Punctuator(1, tmp_path / "none.onnx")


def test_bad_look_ahead_is_refused():
    with pytest.raises(StreamerError, match="0 to 5"):
        TextSettings(look_ahead_words=6)


def test_the_command_line_refuses_no_punctuation_with_raw(tmp_path):
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"")
    done = subprocess.run([sys.executable, "-m", "streamer.cli", "transcribe", str(wav), "--raw", "--no-punctuation"],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode != 0 and "--raw has no punctuation" in done.stderr


WRITTEN_VOCABULARY = ("stortinget vedtok med sekstiåtte mot trettien stemmer at paragraf tolv skal gjelde fra første "
                      "januar to tusen og tjuefem klokka fjorten tretti prosent kroner og femti øre flere hundre "
                      "millioner møre romsdal trøndelag miljøpartiet de grønne men hvorfor er det tre komma fem "
                      "i tromsø bodø").split()


@settings(max_examples=150, deadline=None)
@given(words=st.lists(st.sampled_from(WRITTEN_VOCABULARY), min_size=1, max_size=20), at_pause=st.booleans())
def test_punctuation_changes_only_marks_and_capitals(words, at_pause):
    """Numbers, names and their spans are the written form's: with punctuation on, the same tokens with the
    same raw words come out, with at most a mark after them and a capital after a sentence's end."""
    timed_words = [Word(w, i * 0.4, i * 0.4 + 0.3, 0.9) for i, w in enumerate(words)]
    plain, _ = CaptionText(make_writer(TextSettings(punctuation=False))).final(0, timed_words, at_pause)
    marked, _ = CaptionText(make_writer(TextSettings())).final(0, timed_words, at_pause)
    spans = lambda ws: [(w.start_s, w.end_s, (w.raw or w.word).lower()) for w in ws]  # noqa: E731
    assert spans(plain) == [(start, end, raw.rstrip(",.?")) for start, end, raw in spans(marked)]
    assert [w.word.rstrip(",.?").lower() for w in plain] == [w.word.rstrip(",.?").lower() for w in marked]


def test_no_mark_inside_a_number_and_its_unit():
    words, _ = CaptionText(make_writer(TextSettings())).final(0, timed("flere hundre millioner kroner"), True)
    assert " ".join(w.word for w in words) == "Flere hundre millioner kroner."


def test_a_failing_punctuation_model_costs_its_marks_not_the_captions(tiny_nb, monkeypatch, caplog):
    """Injected: every run of the punctuation model fails. The stream goes on, its finals are the text
    without punctuation (a full stop where a sentence ends), stable text still advances, and a log says so."""
    audio = to_int16(np.concatenate([silence(0.3), synth.synthesize(QUESTIONS[0]), silence(0.8),
                                     synth.synthesize(STATEMENTS[0]), silence(0.8)]))
    model = OnnxModel(tiny_nb)
    plain = transcribe_array(audio, model, OfflineSettings(text=TextSettings(punctuation=False)))

    def broken(self, *args, **kwargs):
        raise RuntimeError("injected punctuation failure")

    monkeypatch.setattr(Punctuator, "probabilities", broken)
    monkeypatch.setattr(Punctuator, "sentence_end", broken)
    logger = logging.getLogger("streamer.text.caption_text")  # its own handler: another test may have
    monkeypatch.setattr(logger, "handlers", [*logger.handlers, caplog.handler])  # stopped the package's
    caplog.set_level(logging.WARNING, logger=logger.name)  # loggers from propagating to the root
    assert [f.text for f in transcribe_array(audio, model)] == [f.text for f in plain]
    blocks = [audio[i : i + 1600] for i in range(0, len(audio), 1600)]
    events = drive_lazily(Recognizer(model.info).stream(), model, blocks)
    plain_settings = StreamSettings(text=TextSettings(punctuation=False))
    streamed_plain = drive_lazily(Recognizer(model.info, plain_settings).stream(), model, blocks)
    finals = [e.text for e in events if isinstance(e, Final)]
    assert finals == [e.text for e in streamed_plain if isinstance(e, Final)] and not broken_promises(events)
    assert any(isinstance(e, Partial) and e.stable_chars for e in events)
    assert "injected punctuation failure" in caplog.text


def test_a_partial_runs_the_model_once(monkeypatch):
    """The stable words' marks come from the partial's own run: the model reads left to right, so the
    first rows of its output for all the words are the stable words' own."""
    runs = []
    original = Punctuator.probabilities
    monkeypatch.setattr(Punctuator, "probabilities", lambda self, *a: runs.append(a) or original(self, *a))
    text = CaptionText(make_writer(TextSettings()))
    spoken = timed("når vi ser på tallene er det tydelig at ordningen virker")
    text.partial(0, spoken, spoken[:-3])
    assert len(runs) == 1
