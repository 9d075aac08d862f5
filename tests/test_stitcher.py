"""The stitcher: frames kept from windows by frame index, a caption's committed frames, and where to cut
between words. Pure, so the id sequences are written by hand: one character per frame."""

import numpy as np
import pytest

from streamer.core.stitcher import Caption, FrameTrack, cut_between_words, word_ends
from streamer.model.vocab import Vocabulary
from streamer.text.ctc import words_from_path, words_text

from models.hf_format import VOCAB as REAL_VOCAB

VOCAB = Vocabulary.from_dict(REAL_VOCAB)
B, D, UNK = VOCAB.blank_id, VOCAB.delimiter_id, REAL_VOCAB["[UNK]"]
FRAME_S = 0.02


def ids_of(spec: str) -> np.ndarray:
    """'_' blank, ' ' delimiter, '?' [UNK], letters themselves: one character per frame."""
    table = {"_": B, " ": D, "?": UNK}
    return np.array([table[c] if c in table else REAL_VOCAB[c] for c in spec], dtype=np.int64)


def probs_of(spec: str, p: float = 0.9) -> np.ndarray:
    return np.full(len(spec), p, dtype=np.float32)


def spell(ids: np.ndarray) -> str:
    """The frames as ids_of writes them (the inverse of ids_of)."""
    back = {B: "_", D: " ", UNK: "?"}
    return "".join(back.get(int(i), VOCAB.tokens[int(i)]) for i in ids)


def text_of(ids: np.ndarray) -> str:
    return words_text(words_from_path(ids, np.ones(len(ids), np.float32), VOCAB, FRAME_S))


def test_the_vocabulary_is_the_real_one():
    assert (B, D) == (REAL_VOCAB["[PAD]"], REAL_VOCAB["|"]) and B != D
    assert spell(ids_of("ha_ _?ø")) == "ha_ _?ø"


# ---- FrameTrack

def test_track_write_appends_and_overwrites_the_tail():
    track = FrameTrack(D)
    track.write(0, ids_of("hei__"), probs_of("hei__", 0.5))
    assert track.end == 5
    track.write(3, ids_of("a_ du"), probs_of("a_ du", 0.8))  # a later window replaces frames 3.. on
    ids, probs = track.since(0)
    assert spell(ids) == "heia_ du"
    assert probs.tolist() == pytest.approx([0.5] * 3 + [0.8] * 5)
    assert track.end == 8


def test_track_write_shorter_than_the_tail_drops_the_rest():
    track = FrameTrack(D)
    track.write(0, ids_of("abcdef"), probs_of("abcdef"))
    track.write(2, ids_of("x"), probs_of("x"))
    assert spell(track.since(0)[0]) == "abx" and track.end == 3


def test_track_gap_is_filled_with_the_delimiter_so_words_stay_apart():
    track = FrameTrack(D)
    track.write(0, ids_of("__hei"), probs_of("__hei"))
    track.write(8, ids_of("du__"), probs_of("du__"))  # frames 5..7 were never written (dropped hops)
    ids, probs = track.since(0)
    assert spell(ids) == "__hei   du__"
    assert probs[5:8].tolist() == [0.0, 0.0, 0.0]
    assert text_of(ids) == "hei du"  # without the gap's delimiters it would read "heidu"


def test_track_since_reads_from_a_frame_and_from_before_the_origin():
    track = FrameTrack(D)
    track.write(0, ids_of("ja_ nei"), probs_of("ja_ nei"))
    assert spell(track.since(4)[0]) == "nei"
    assert spell(track.since(7)[0]) == ""
    track.drop_before(3)
    assert track.origin == 3
    assert spell(track.since(0)[0]) == " nei"  # frames before the origin are gone: reads from the origin
    assert spell(track.since(5)[0]) == "ei"


def test_track_drop_before_keeps_frame_indices():
    track = FrameTrack(D)
    track.write(0, ids_of("abcdef"), probs_of("abcdef"))
    track.drop_before(2)
    assert (track.origin, track.end) == (2, 6)
    track.write(4, ids_of("xy"), probs_of("xy"))  # frame 4 is still frame 4 after the drop
    assert spell(track.since(2)[0]) == "cdxy"
    track.drop_before(1)  # dropping before the origin again changes nothing
    assert (track.origin, track.end) == (2, 6)


def test_track_drop_before_past_the_end_restarts_the_track_there():
    track = FrameTrack(D)
    track.write(0, ids_of("abc"), probs_of("abc"))
    track.drop_before(10)
    assert (track.origin, track.end) == (10, 10)
    assert len(track.since(0)[0]) == 0
    track.write(12, ids_of("ok"), probs_of("ok"))  # a gap after the new origin reads as delimiters
    assert track.origin == 10 and spell(track.since(10)[0]) == "  ok"


def test_track_write_before_the_origin_keeps_only_frames_from_the_origin_on():
    track = FrameTrack(D)
    track.write(0, ids_of("abcdef"), probs_of("abcdef"))
    track.drop_before(4)
    track.write(2, ids_of("wxyz"), probs_of("wxyz"))  # frames 2, 3 lie before the origin
    assert track.origin == 4 and spell(track.since(0)[0]) == "yz"


# ---- Caption

def test_caption_append_grows_its_frames():
    caption = Caption(100, VOCAB, FRAME_S)
    assert caption.n_frames == 0 and len(caption.frames()[0]) == 0 and caption.words() == []
    caption.append(ids_of("__hei_ "), probs_of("__hei_ "))
    caption.append(ids_of("_du"), probs_of("_du", 0.5))
    assert caption.n_frames == 10
    ids, probs = caption.frames()
    assert spell(ids) == "__hei_ _du"
    assert probs.tolist() == pytest.approx([0.9] * 7 + [0.5] * 3)
    caption.append(ids_of("u "), probs_of("u "))
    assert spell(caption.frames()[0]) == "__hei_ _duu " and caption.n_frames == 12


def test_caption_words_are_timed_from_the_offset_at_its_first_frame():
    caption = Caption(250, VOCAB, FRAME_S)
    caption.append(ids_of("__ja_ "), probs_of("__ja_ "))
    caption.append(ids_of("_nei__"), probs_of("_nei__"))
    words = caption.words(offset_s=5.0)
    assert [(w.word, w.start_s, w.end_s) for w in words] == [
        ("ja", pytest.approx(5.04), pytest.approx(5.08)),
        ("nei", pytest.approx(5.14), pytest.approx(5.20)),
    ]
    assert [w.start_s for w in caption.words()] == pytest.approx([0.04, 0.14])


def test_caption_partial_is_the_committed_words_then_the_tail():
    caption = Caption(0, VOCAB, FRAME_S)
    caption.append(ids_of("_god_ "), probs_of("_god_ "))
    caption.append(ids_of("morgen "), probs_of("morgen "))
    tail = "_al_le"
    words, stable = caption.partial(ids_of(tail), probs_of(tail))
    assert words_text(stable) == "god morgen"
    assert words_text(words) == "god morgen alle"
    assert [w.word for w in words[: len(stable)]] == [w.word for w in stable]
    assert words[-1].start_s == pytest.approx(14 * FRAME_S)  # the tail's frames follow the committed ones


@pytest.mark.parametrize("committed, tail", [
    ("_hei_ _d", "u_ "),  # committed frames end inside a word the tail goes on with
    ("_aa", "a_ b"),  # a letter repeated across the join is one letter
    ("", "_hei"),  # nothing committed yet
    ("_hei ", ""),  # no tail
    ("___", "___"),  # blanks only
])
def test_caption_stable_text_is_a_prefix_of_the_partial(committed, tail):
    caption = Caption(0, VOCAB, FRAME_S)
    if committed:
        caption.append(ids_of(committed), probs_of(committed))
    words, stable = caption.partial(ids_of(tail), probs_of(tail))
    assert words_text(words).startswith(words_text(stable))
    assert words_text(words) == text_of(ids_of(committed + tail))


def test_caption_successor_and_restart_at():
    caption = Caption(10, VOCAB, FRAME_S)
    caption.append(ids_of("hei "), probs_of("hei "))
    caption.number, caption.shown = 3, "hei"
    nxt = caption.successor(40)
    assert (nxt.first_frame, nxt.n_frames, nxt.number, nxt.shown) == (40, 0, None, "")
    assert nxt.vocab is caption.vocab and nxt.frame_s == caption.frame_s and nxt.words() == []
    assert caption.words()[0].word == "hei"  # the old caption is untouched

    caption.restart_at(30)
    assert (caption.first_frame, caption.n_frames) == (30, 0)
    assert caption.words() == [] and len(caption.frames()[0]) == 0
    assert (caption.number, caption.shown) == (3, "hei")  # it keeps its number and the text shown


def test_caption_has_letters():
    caption = Caption(0, VOCAB, FRAME_S)
    assert not caption.has_letters()  # no frames
    caption.append(ids_of("__ _? _"), probs_of("__ _? _"))  # blanks, delimiters and [UNK] spell nothing
    assert not caption.has_letters()
    caption.append(ids_of("_ø"), probs_of("_ø"))
    assert caption.has_letters()


def test_a_beam_caption_holds_its_stable_words_timed_from_its_first_frame():
    from streamer.text.incremental import BeamWord

    caption = Caption(10, VOCAB, FRAME_S, beam=True)
    assert not caption.has_letters() and caption.last_word_frame is None
    caption.add_words([BeamWord("ja", 11, 12, 0.9), BeamWord("nei", 15, 18, 0.8)])
    assert caption.has_letters() and caption.last_word_frame == 18
    assert [(w.word, w.start_s, w.end_s, w.confidence) for w in caption.words(1.0)] == [
        ("ja", pytest.approx(1.02), pytest.approx(1.06), 0.9), ("nei", pytest.approx(1.10), pytest.approx(1.18), 0.8)]
    # the partial: the stable words, the beam's words not yet stable, then the tail frames' (from frame 25)
    words, stable = caption.partial(ids_of("_du"), probs_of("_du"), 25, [BeamWord("vel", 20, 22, 0.5)])
    assert words_text(stable) == "ja nei" and words_text(words) == "ja nei vel du"
    assert words[-1].start_s == pytest.approx((25 + 1 - 10) * FRAME_S)
    successor = caption.successor(19)
    assert successor.beam and not successor.has_letters() and successor.first_frame == 19


# ---- word ends and cuts

def test_word_ends_are_the_frames_after_a_delimiter_that_follows_a_letter():
    #       012345678901234
    spec = "  _hei_  _du__ "
    ends = word_ends(ids_of(spec), VOCAB).tolist()
    assert ends == [8, 15]  # leading delimiters (no letter before) are no word end; a run counts once
    for end in ends:
        assert spell(ids_of(spec)[end - 1: end]) == " "


def test_word_ends_of_nothing():
    assert word_ends(ids_of(""), VOCAB).tolist() == []
    assert word_ends(ids_of("__ _ "), VOCAB).tolist() == []
    assert word_ends(ids_of("hei"), VOCAB).tolist() == []  # a word not yet ended


def test_cut_between_words_is_the_latest_word_end_in_range():
    #             012345678901234567
    ids = ids_of("ja_ nei_ _kan__ du")
    probs = np.ones(len(ids), np.float32)
    assert word_ends(ids, VOCAB).tolist() == [4, 9, 16]
    assert cut_between_words(ids, probs, VOCAB, 0, len(ids)) == 16
    assert cut_between_words(ids, probs, VOCAB, 0, 15) == 9
    assert cut_between_words(ids, probs, VOCAB, 9, 9) == 9  # both ends of the range are inside it
    assert cut_between_words(ids, probs, VOCAB, 4, 8) == 4
    assert cut_between_words(ids, probs, VOCAB, 5, 8) is None
    assert cut_between_words(ids, probs, VOCAB, 17, 30) is None
    assert cut_between_words(ids_of("____"), probs[:4], VOCAB, 0, 4) is None


def test_a_cut_needs_a_word_end_the_model_is_sure_of():
    """A delimiter that barely beat the blank is a near-tie another window may read as one word: with
    min_prob the cut falls at the latest word end whose delimiter reaches it, in any of its frames."""
    #             01234567890123456
    ids = ids_of("ja_ nei  _kan_ du")
    assert word_ends(ids, VOCAB).tolist() == [4, 8, 15]
    probs = np.full(len(ids), 0.99, np.float32)
    probs[14] = 0.55  # kan's delimiter: a near-tie
    probs[7], probs[8] = 0.6, 0.95  # nei's: two frames, the second sure
    assert cut_between_words(ids, probs, VOCAB, 0, len(ids)) == 15
    assert cut_between_words(ids, probs, VOCAB, 0, len(ids), min_prob=0.9) == 8
    probs[8] = 0.8
    assert cut_between_words(ids, probs, VOCAB, 0, len(ids), min_prob=0.9) == 4
    assert cut_between_words(ids, probs, VOCAB, 5, len(ids), min_prob=0.9) is None


@pytest.mark.parametrize("spec", ["ja_ nei_ _kan__ du", "_hei  på deg_", "a b c ", "ø  _ æ"])
def test_a_cut_keeps_the_delimiter_with_the_words_before(spec):
    ids = ids_of(spec)
    for cut in word_ends(ids, VOCAB).tolist():
        before, after = ids[:cut], ids[cut:]
        assert before[-1] == D
        # each side spelled alone, then joined, reads as the whole: no word split or run together
        assert " ".join(t for t in (text_of(before), text_of(after)) if t) == text_of(ids)
        # whatever another window makes of the frames after, the words before stay apart from it
        assert text_of(np.concatenate([before, ids_of("x")])) == text_of(before) + " x"
