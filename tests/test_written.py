"""The text stage: numbers, names and sentences written as Norwegian is written, without breaking a promise.

Numbers are checked against num2words' Norwegian spelling, an independent source, for thousands of
random numbers; the written forms against a table of hand-checked parliament phrases; the stable-text
promise with random word sequences and with real streaming of spoken numbers.
"""

import json
import random
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from num2words import num2words

from streamer.text.ctc import Word
from streamer.core.events import Final, broken_promises
from streamer.text.lexicon import Lexicon, builtin_forms
from streamer.text.numbers import read_numbers
from streamer.text.caption_text import CaptionText
from streamer.text.written import NBSP, TextSettings, Writer, joined, make_writer

from helpers import espeak

TABLE = Path(__file__).parent / "data" / "written_nb.tsv"


@pytest.fixture(scope="module")
def writer() -> Writer:
    """The written form's numbers, names and sentence ends, without the punctuation model's marks: the model
    changes nothing but marks and capitals after them (tests/test_punctuator.py), and its accuracy is
    measured, not hand-checked (benchmarks/punctuation.py)."""
    return make_writer(TextSettings(punctuation=False))


def as_model_writes(text: str) -> list[str]:
    """num2words' spelling the way the model writes: lowercase letters and spaces. num2words writes
    "millard" and a plural "million" ("to million"); Norwegian writes "milliard" and "millioner", and
    the model writes what was said, so both spellings are tested: num2words' own and the corrected one.
    Its ordinal of 13 is "trettførste" (a bug): Norwegian says "trettende"."""
    text = text.lower().replace("é", "e").replace("-", " ").replace("millard", "milliard")
    text = text.replace("trettførste", "trettende")
    return re.sub(r"[^a-zæøå ]", "", text).split()


def corrected(words: list[str]) -> list[str]:
    out = []
    for k, word in enumerate(words):
        plural = k > 0 and out[-1] not in ("en", "ett")
        out.append({"million": "millioner", "milliard": "milliarder"}.get(word, word) if plural else word)
    return out


def compounded(words: list[str], rng: random.Random) -> list[str]:
    """Some neighbouring words run together, as the model may write them ("to hundre" → "tohundre")."""
    out = [words[0]]
    for word in words[1:]:
        if rng.random() < 0.4:
            out[-1] += word
        else:
            out.append(word)
    return out


def whole(words: list[str]):
    """The number read from all the words, or None when it does not span them all."""
    number = read_numbers(words)[0]
    return number if number is not None and number.end == len(words) else None


def value_of(written: str) -> int:
    """A written cardinal back as a number: "12 345", "3 millioner", "2025"."""
    digits, _, scale = written.replace(NBSP, " ").partition(" ")
    if scale and not scale[0].isdigit():
        return int(digits) * {"million": 10**6, "millioner": 10**6, "milliard": 10**9, "milliarder": 10**9}[scale]
    return int(written.replace(NBSP, ""))


def random_numbers(rng: random.Random, count: int) -> list[int]:
    """Spread over every size from 0 to 10^9: uniform in the number of digits, then in the value."""
    numbers = [0, 1, 10**9, 10**6, 1000, 100, 21, 1001, 1100, 2025]
    while len(numbers) < count:
        digits = rng.randint(1, 9)
        numbers.append(rng.randint(10 ** (digits - 1), 10**digits - 1))
        if rng.random() < 0.15:  # round ones too: 3 000 000, 40 000
            numbers[-1] -= numbers[-1] % 10 ** rng.randint(1, digits - 1) if digits > 1 else 0
    return numbers


def test_cardinals_from_0_to_a_billion_come_back_as_the_number(writer):
    rng = random.Random(14)
    failures = []
    for n in random_numbers(rng, 3000):
        spelled = as_model_writes(num2words(n, lang="no"))
        for words in {tuple(spelled), tuple(corrected(spelled)), tuple(compounded(spelled, rng))}:
            number = whole(list(words))
            tokens = writer.tokens(list(words))
            if number is None or number.kind != "cardinal" or number.value != n:
                failures.append((n, " ".join(words), number))
            elif n > 12 and words not in (("hundre",), ("tusen",)):  # small ones stay words in running text
                if len(tokens) != 1 or value_of(tokens[0].text) != n:
                    failures.append((n, " ".join(words), joined(tokens)))
            elif joined(tokens) != " ".join(words):
                failures.append((n, " ".join(words), joined(tokens)))
    assert failures == [], failures[:10]


def test_digits_are_grouped_from_ten_thousand_with_no_break_spaces(writer):
    assert joined(writer.tokens("tolv tusen tre hundre og førtifem".split())) == f"12{NBSP}345"
    assert joined(writer.tokens("to tusen fem hundre".split())) == "2500"
    assert joined(writer.tokens("ni hundre og nittini millioner ni hundre og nittini tusen ni hundre og nittini".split())) \
        == f"999{NBSP}999{NBSP}999"
    assert joined(writer.tokens("tre millioner".split())) == f"3{NBSP}millioner"


def test_ordinals_come_back_as_the_number(writer):
    rng = random.Random(15)
    failures = []
    for n in list(range(1, 130)) + [rng.randint(130, 10**6) for _ in range(1000)]:
        words = as_model_writes(num2words(n, lang="no", to="ordinal"))
        number = whole(words)
        if number is None or number.kind != "ordinal" or number.value != n:
            failures.append((n, " ".join(words), number))
        elif n > 12 and joined(writer.tokens(words)).replace(NBSP, "") != f"{n}.":
            failures.append((n, " ".join(words), joined(writer.tokens(words))))
    assert failures == [], failures[:10]


def test_years_1800_to_2100_in_both_spoken_forms(writer):
    """num2words' year ("nitten hundre og åttifire", "to tusen og tjuefem") alone, and the spoken short
    form after "i" ("i nitten åttifire", "i tjue tjuefem": "tjue tretti" alone is 20 and 30)."""
    failures = []
    for year in range(1800, 2101):
        words = as_model_writes(num2words(year, lang="no", to="year"))
        number, written = whole(words), joined(writer.tokens(words))
        if number is None or number.value != year or written != str(year):
            failures.append((year, " ".join(words), written))
        if year % 100 >= 10 and year < 2100:
            short = ["i"] + as_model_writes(num2words(year // 100, lang="no")) + as_model_writes(num2words(year % 100, lang="no"))
            if (written := joined(writer.tokens(short))) != f"i {year}":
                failures.append((year, " ".join(short), written))
    assert failures == [], failures[:10]


def test_decimals_come_back_with_a_decimal_comma(writer):
    rng = random.Random(16)
    failures = []
    for _ in range(1500):
        whole_part = rng.choice([0, rng.randint(1, 99), rng.randint(100, 99_999)])
        fraction = str(rng.randint(1, 999)).zfill(rng.randint(1, 3)).rstrip("0") or "5"
        value = Decimal(f"{whole_part}.{fraction}")
        words = as_model_writes(num2words(value, lang="no"))
        expected = f"{whole_part:,}".replace(",", NBSP) if whole_part >= 10_000 else str(whole_part)
        expected += f",{fraction}"
        number = whole(words)
        written = joined(writer.tokens(words))
        if number is None or number.kind != "decimal" or written != expected:
            failures.append((str(value), " ".join(words), written))
    assert failures == [], failures[:10]


def table() -> list[tuple[str, str]]:
    rows = []
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            raw, written = line.split("\t")
            rows.append((raw, written))
    return rows


def caption(writer, raw: str, at_pause: bool = True) -> str:
    """One caption of the words, the first of its stream, ending at a pause: its final's text."""
    words = [Word(w, k * 0.5, k * 0.5 + 0.4, 0.9) for k, w in enumerate(raw.split())]
    tokens, _ = CaptionText(writer).final(0, words, at_pause)
    return " ".join(t.word for t in tokens)


def test_at_least_a_hundred_hand_checked_phrases(writer):
    rows = table()
    assert len(rows) >= 100
    wrong = [(raw, expected, got) for raw, expected in rows
             if (got := caption(writer, raw).replace(NBSP, " ")) != expected]
    assert wrong == [], "\n".join(f"{raw!r}: expected {expected!r}, got {got!r}" for raw, expected, got in wrong)


def test_no_break_spaces_keep_a_written_number_on_one_line(writer):
    text = caption(writer, "paragraf tolv gjelder fra klokka fjorten og koster tre komma fem prosent")
    assert f"§{NBSP}12" in text and f"kl.{NBSP}14" in text and f"3,5{NBSP}%" in text


def test_a_caption_cut_in_running_speech_ends_no_sentence(writer):
    text = CaptionText(writer)
    words = lambda raw, t0: [Word(w, t0 + k * 0.5, t0 + k * 0.5 + 0.4, 0.9) for k, w in enumerate(raw.split())]
    first, _ = text.final(0, words("vi har vedtatt at budsjettet", 0.0), at_pause=False)
    second, _ = text.final(1, words("skal økes neste år", 3.0), at_pause=True)
    third, _ = text.final(2, words("det er bra", 6.0), at_pause=True)
    assert [" ".join(w.word for w in f) for f in (first, second, third)] == [
        "Vi har vedtatt at budsjettet", "skal økes neste år.", "Det er bra."]


def test_word_times_map_onto_written_tokens(writer):
    words = [Word(w, k * 0.5, k * 0.5 + 0.4, 0.9 - k / 100) for k, w in enumerate("i to tusen og tjuefem kom det".split())]
    tokens, raw = CaptionText(writer).final(0, words, True)
    assert raw == "i to tusen og tjuefem kom det"
    year = tokens[1]
    assert (year.word, year.start_s, year.end_s, year.raw) == ("2025", 0.5, 2.4, "to tusen og tjuefem")
    assert year.confidence == pytest.approx(0.86)  # the lowest of its words'
    assert tokens[0].raw == "i" and tokens[2].raw is None  # "I" differs from its raw word, "kom" does not


def test_users_names_hotwords_and_overrides():
    lexicon = Lexicon.of([*builtin_forms(), "Bjørdal", "Trond Giske", "Sør-Trøndelag", "høyre"])
    writer = Writer(lexicon)
    assert joined(writer.tokens("representanten trond giske fra sør trøndelag".split())) \
        == "representanten Trond Giske fra Sør-Trøndelag"
    assert joined(writer.tokens("bjørdals forslag fra sørtrøndelag".split())) == "Bjørdals forslag fra Sør-Trøndelag"
    assert joined(writer.tokens("til høyre".split())) == "til høyre"  # a user's lowercase entry turns a built-in off
    assert joined(writer.tokens("arbeiderpartiets forslag".split())) == "Arbeiderpartiets forslag"


VOCABULARY = ("to tre fem tolv tjue tjuefem hundre tusen og komma prosent kroner øre mot til første januar "
              "paragraf klokka millioner null seksti åtte en mellom kristelig folkeparti møre romsdal "
              "miljøpartiet de grønne stortinget vi har at det er budsjettet på av flere i for mai halv tretti "
              "femogtjue andre nord norge eøs avtalen").split()


@settings(max_examples=400, deadline=None)
@given(words=st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=14), data=st.data())
def test_settled_words_are_never_rewritten_by_what_follows(words, data):
    """Whatever words come after a stable prefix, the written text of its settled words stays a prefix."""
    writer = make_writer(TextSettings())
    n_stable = data.draw(st.integers(0, len(words)))
    start = data.draw(st.booleans())
    settled = writer.settled(words[:n_stable])
    stable = joined(writer.tokens(words[:settled], start))
    assert joined(writer.tokens(words, start)).startswith(stable)


def test_a_number_being_spoken_stays_unstable_until_it_is_complete(writer):
    text = CaptionText(writer)
    spoken = "fristen er to tusen og tjuefem sier hun".split()
    words = [Word(w, k * 0.5, k * 0.5 + 0.4, 0.9) for k, w in enumerate(spoken)]
    shown = []
    for n in range(1, len(words) + 1):
        shown.append(text.partial(0, words[:n], words[: n - 1]))  # every word but the newest committed
    stable = [t[:chars] for t, chars in shown]
    assert stable[3] == "Fristen er"  # "to tusen" could still become 2025 or 2000: not stable yet
    assert shown[-1][0].startswith("Fristen er 2025 sier")
    assert all(shown[-1][0].startswith(s) for s in stable)


def test_a_sentence_start_waits_for_the_caption_before(writer):
    """A partial of the next caption marks nothing stable while the caption before is open: whether it
    begins a sentence (a capital) depends on how that one ends."""
    text = CaptionText(writer)
    w = lambda raw: [Word(x, 0.0, 0.1, 0.9) for x in raw.split()]
    text.partial(0, w("vi mener at"), w("vi mener"))
    assert text.partial(1, w("dette er riktig"), w("dette er")) == ("dette er riktig", 0)
    text.final(0, w("vi mener at"), at_pause=True)  # ends with "at": no sentence ends
    assert text.partial(1, w("dette er riktig"), w("dette er")) == ("dette er riktig", len("dette er"))


SPOKEN = ["stortinget vedtok med sekstiåtte mot trettien stemmer",
          "loven gjelder fra første januar to tusen og tjuefem",
          "renten er tre komma fem prosent og budsjettet er på tolv tusen kroner",
          "arbeiderpartiet og høyre var enige om paragraf tolv"]


@pytest.fixture(scope="module")
def spoken_numbers(tmp_path_factory):
    """Number-heavy sentences from espeak-ng, paused and run together."""
    from streamer.sources.ffmpeg import read_audio

    folder = tmp_path_factory.mktemp("numbers")
    parts = []
    for k, sentence in enumerate(SPOKEN):
        parts += [read_audio(str(espeak(sentence, folder / f"{k}.wav"))), np.zeros(16000 * (k % 2), np.int16)]
    return np.concatenate(parts)


def run_stream(model, audio, sizes, written=True, max_caption_s=4.0) -> list:
    from streamer.core.stream import StreamSettings
    from streamer.driver.captioner import Captioner

    stream = Captioner(model, StreamSettings(max_caption_s=max_caption_s, text=TextSettings(written=written))).stream()
    events, position, k = [], 0, 0
    while position < len(audio):
        events += stream.accept(audio[position : position + sizes[k % len(sizes)]])
        position, k = position + sizes[k % len(sizes)], k + 1
    return events + stream.finish()


def test_streaming_spoken_numbers_keeps_every_promise(tiny_nb, spoken_numbers):
    """Real streaming of spoken numbers in random blocks, captions cut every ~4 s inside sentences: no stable
    text revised, the same finals as one block, the written finals carry the raw finals' words and times."""
    from streamer.backends.onnx import OnnxModel

    model = OnnxModel(tiny_nb)
    rng = np.random.default_rng(14)
    written_finals = None
    for _ in range(3):
        events = run_stream(model, spoken_numbers, [int(s) for s in rng.integers(1, 12000, 8)])
        assert broken_promises(events) == []
        finals = [e.to_json() for e in events if isinstance(e, Final)]
        assert written_finals is None or finals == written_finals
        written_finals = finals
    raw = [e for e in run_stream(model, spoken_numbers, [1600], written=False) if isinstance(e, Final)]
    assert [f["raw"] for f in written_finals] == [f.text for f in raw]
    for f_written, f_raw in zip(written_finals, raw):
        raw_words = [w.word for w in f_raw.words]
        spans = [(w.get("raw") or w["word"]).split() for w in f_written["words"]]
        assert [x for span in spans for x in span] == raw_words
        k = 0
        for token, span in zip(f_written["words"], spans):  # a token from its first raw word's start to its last's end
            assert token["start"] == round(f_raw.words[k].start_s, 3)
            assert token["end"] == round(f_raw.words[k + len(span) - 1].end_s, 3)
            k += len(span)
    assert any(re.search(r"\d", f["text"]) for f in written_finals), written_finals  # numbers did get written


def test_cli_raw_and_written(tiny_nb, tmp_path):
    wav = espeak("stortinget vedtok med sekstiåtte mot trettien stemmer", tmp_path / "s.wav")

    def run(*extra):
        result = subprocess.run([sys.executable, "-m", "streamer.cli", "transcribe", str(wav), "--model", str(tiny_nb),
                                 *extra], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    written, raw = run(), run("--raw")
    assert written.startswith("Stortinget") and written.endswith(".") and "31" in written, written
    assert raw == raw.lower() and "31" not in raw and "trettien" in raw, raw
    events = [json.loads(x) for x in run("--stream", "--format", "jsonl").splitlines()]
    finals = [e for e in events if e["type"] == "final"]
    assert finals and all(f["raw"] == f["raw"].lower() and f["text"] != f["raw"] for f in finals)
    names = tmp_path / "names.txt"
    names.write_text("Vedtok\n", encoding="utf-8")
    assert "Vedtok" in run("--names", str(names))
    bad = subprocess.run([sys.executable, "-m", "streamer.cli", "transcribe", str(wav), "--model", str(tiny_nb),
                          "--names", str(tmp_path / "missing.txt")], capture_output=True, text=True)
    assert bad.returncode == 2 and "cannot read names" in bad.stderr
