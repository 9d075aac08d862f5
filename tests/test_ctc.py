import numpy as np
import pytest

from streamer.text.ctc import Word, best_path, greedy_words, words_from_path, words_text
from streamer.errors import StreamerError
from streamer.core.events import Final, Partial, cut_positions
from streamer.text.scoring import cer, edit_distance, wer, word_break_differences
from streamer.model.vocab import Vocabulary

from models.hf_format import VOCAB as REAL_VOCAB

VOCAB = Vocabulary.from_dict(REAL_VOCAB)
B, D = VOCAB.blank_id, VOCAB.delimiter_id


def ids_of(spec: str) -> np.ndarray:
    """'_' blank, ' ' delimiter, '?' [UNK], letters themselves: one character per frame."""
    table = {"_": B, " ": D, "?": REAL_VOCAB["[UNK]"]}
    return np.array([table.get(c, REAL_VOCAB.get(c)) for c in spec])


def test_collapse_repeats_blanks_and_delimiters():
    ids = ids_of("__hhei__ _dd_d__")
    words = words_from_path(ids, np.full(len(ids), 0.9), VOCAB, frame_s=0.02)
    assert words_text(words) == "hei dd"


def test_word_times_follow_frames():
    ids = ids_of("__ja___ _nei___")
    words = words_from_path(ids, np.full(len(ids), 1.0), VOCAB, frame_s=0.02, offset_s=10.0)
    assert [(w.word, w.start_s, w.end_s) for w in words] == [("ja", pytest.approx(10.04), pytest.approx(10.08)),
                                                               ("nei", pytest.approx(10.18), pytest.approx(10.24))]


def test_confidence_is_mean_letter_probability_and_unk_is_skipped():
    ids = ids_of("o?k")
    words = words_from_path(ids, np.array([0.5, 0.99, 1.0]), VOCAB, frame_s=0.02)
    assert words[0].word == "ok"
    assert words[0].confidence == pytest.approx(0.75)


def test_best_path_probabilities_are_softmax_maxima():
    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=np.float32))
    ids, probs = best_path(logits)
    assert ids.tolist() == [0, 2]
    assert probs == pytest.approx([0.7, 0.8], abs=1e-6)


def test_greedy_words_on_empty_logits():
    assert greedy_words(np.zeros((0, len(VOCAB))), VOCAB, 0.02) == []


def test_vocabulary_errors_say_what_is_expected():
    with pytest.raises(StreamerError, match="0..N-1"):
        Vocabulary.from_dict({"a": 0, "[PAD]": 2, "|": 3})
    with pytest.raises(StreamerError, match="blank"):
        Vocabulary.from_dict({"a": 0, "|": 1})


def test_error_rates():
    assert wer(["stortingets møte er lovlig satt"], ["stortingets møte er lovlig satt"]) == 0.0
    assert wer(["a b c d"], ["a x c"]) == pytest.approx(0.5)
    assert cer(["ab cd"], ["abcd"]) == pytest.approx(0.2)


def test_edit_distance_row_by_row_is_levenshtein():
    """The numpy rows (insertions as a running minimum) against the textbook table, on random strings and
    word lists, empty ones included."""
    rng = np.random.default_rng(3)

    def textbook(a, b):
        previous = list(range(len(b) + 1))
        for i, x in enumerate(a, start=1):
            current = [i]
            for j, y in enumerate(b, start=1):
                current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
            previous = current
        return previous[-1]

    for _ in range(500):
        a = "".join(rng.choice(list("ab c"), rng.integers(0, 12)))
        b = "".join(rng.choice(list("ab c"), rng.integers(0, 12)))
        assert edit_distance(a, b) == textbook(a, b)
        assert edit_distance(a.split(), b.split()) == textbook(a.split(), b.split())


def test_word_break_differences_find_splits_and_joins_where_they_are():
    splits, joins = word_break_differences("hundrev is gikkbra om alt", "hundrevis gikk bra om alt")
    assert splits == [7] and joins == [15]  # positions in the first text: its extra space, its missing one
    assert word_break_differences("hei du", "hei du") == ([], [])
    assert word_break_differences("hei der", "hei du") == ([], [])  # other letters are no word break


def test_cut_positions_are_the_ends_of_stable_prefixes_inside_finals():
    def final(caption: int, text: str) -> Final:
        return Final(caption, tuple(Word(w, 0.0, 0.0, 1.0) for w in text.split()), 0.0, 1.0)

    events = [Partial(0, "hei", 0, 0.0, 1.0), Partial(0, "hei du der", 4, 0.0, 2.0),
              Partial(0, "hei du der", 7, 0.0, 2.5), final(0, "hei du der"),
              Partial(1, "ja", 0, 3.0, 3.5), final(1, "ja takk")]
    assert cut_positions(events) == ("hei du der ja takk", [4, 7])
