"""Incremental beam search (flashlight-text's lexicon decoder and KenLM) on tiny-nb's logits and language model:
fed in blocks of any size it gives the words of one beam search over all the frames, stable words are never
taken back, and words outside the lexicon come out as the model spells them."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from streamer.backends.onnx import OnnxModel
from streamer.core.pcm import to_float32
from streamer.errors import StreamerError
from streamer.text.ctc import greedy_words, words_text
from streamer.text.decoder import DecoderSettings, find_lm_file, read_unigrams
from streamer.text.incremental import IncrementalBeam, LexiconLM, load_lm
from streamer.text.scoring import wer

from models import synth

pytest.importorskip("flashlight.lib.text.decoder", reason="incremental beam search needs the lm extra")


@pytest.fixture(scope="module")
def piece(tiny_nb):
    """About 60 s of held-out sentences (five voices, paused) as tiny-nb's logits, and the reference."""
    model = OnnxModel(tiny_nb)
    rng = np.random.default_rng(4)
    sentences = [synth.heldout_sentences()[i] for i in rng.choice(len(synth.heldout_sentences()), 20, replace=False)]
    audio, reference = synth.talk(sentences, rng, (0.5, 1.0))
    return model, model.logits([to_float32(audio)], [None])[0], reference


@pytest.fixture(scope="module")
def lexicon_lm(piece, tiny_nb_lm):
    return load_lm(piece[0].vocab, tiny_nb_lm)


def decode(lm, logits, sizes) -> tuple[list, list]:
    """Every stable word as it came, in blocks of the given sizes (cycled), and the end's words."""
    beam, stable, position, k = IncrementalBeam(lm), [], 0, 0
    while position < len(logits):
        stable += beam.feed(logits[position : position + sizes[k % len(sizes)]])
        position, k = position + sizes[k % len(sizes)], k + 1
    return stable, beam.end()


def spans(words) -> list[tuple[str, int, int]]:
    return [(w.word, w.first_frame, w.last_frame) for w in words]


def test_beam_search_with_the_language_model_beats_greedy_and_settles_as_it_goes(piece, lexicon_lm):
    model, logits, reference = piece
    stable, rest = decode(lexicon_lm, logits, [35])
    words = [w.word for w in stable + rest]
    greedy = words_text(greedy_words(logits, model.vocab, model.geometry.frame_s))
    assert wer([reference], [" ".join(words)]) <= 0.7 * wer([reference], [greedy])
    assert len(stable) >= 0.8 * len(words)  # most words were stable long before the end
    frames = [(w.first_frame, w.last_frame) for w in stable + rest]
    assert all(a <= b for a, b in frames) and [a for a, _ in frames] == sorted(a for a, _ in frames)
    assert frames[-1][1] < len(logits)
    assert all(a[1] < b[0] for a, b in zip(frames, frames[1:]))  # a word cut by a prune keeps its first letter
    assert min(w.confidence for w in stable + rest) > 0.3


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 120), min_size=1, max_size=6))
def test_any_blocks_give_the_words_of_one_beam_search(piece, lexicon_lm, sizes):
    """Blocks of any size: the same words, stable ones included (the decoder is pruned at the same frames
    however it is fed), as one feed of every frame and as a search that never prunes."""
    _, logits, _ = piece
    stable, rest = decode(lexicon_lm, logits, sizes)
    whole_stable, whole_rest = decode(lexicon_lm, logits, [len(logits)])
    assert spans(stable + rest) == spans(whole_stable + whole_rest)
    assert np.allclose([w.confidence for w in stable + rest], [w.confidence for w in whole_stable + whole_rest],
                       atol=1e-5)  # a softmax of one row and of many differ in the last bits
    assert spans(stable) == spans(whole_stable)[: len(stable)] or spans(whole_stable) == spans(stable)[: len(whole_stable)]
    unpruned = decode(load_lm(lexicon_lm.vocab, lexicon_lm.lm_file.parent, DecoderSettings(lookback_frames=10**6)),
                      logits, [50])
    _, _, reference = piece  # pruned as the stream core prunes, it is as accurate as a search that never prunes
    assert wer([reference], [" ".join(w.word for w in stable + rest)]) <= wer(
        [reference], [" ".join(w.word for w in unpruned[0] + unpruned[1])]) + 0.01


def test_a_long_search_holds_a_bounded_buffer(piece, lexicon_lm):
    """Three minutes of speech in one search (a monologue's segment): the decoder keeps about lookback_frames,
    not the whole stream, and its words are still found as it goes."""
    _, logits, _ = piece
    beam, stable, held = IncrementalBeam(lexicon_lm), [], []
    for _ in range(3):
        for start in range(0, len(logits), 35):
            stable += beam.feed(logits[start : start + 35])
            held.append(beam.held_frames)
    assert max(held) <= lexicon_lm.settings.lookback_frames + 150, max(held)  # flashlight cuts at a word start
    assert len(stable) >= 0.9 * len(stable + beam.end())


def test_a_word_outside_the_lexicon_comes_out_as_the_model_spells_it(piece, tiny_nb_lm):
    model, logits, _ = piece
    words = read_unigrams(tiny_nb_lm / "unigrams.txt")
    full = LexiconLM(model.vocab, find_lm_file(tiny_nb_lm), words)
    found = [w.word for w in sum(decode(full, logits, [40]), [])]
    common = max(set(found), key=lambda w: (found.count(w), len(w)) if len(w) > 3 else (0, 0))
    without = LexiconLM(model.vocab, find_lm_file(tiny_nb_lm), [w for w in words if w != common])
    again = [w.word for w in sum(decode(without, logits, [40]), [])]
    assert "<unk>" not in again
    assert common not in set(again) or again.count(common) < found.count(common)
    assert len(again) >= 0.9 * len(found)  # its stretches still spell words, not nothing


def test_bad_language_models_and_settings_are_refused(piece, tmp_path):
    model = piece[0]
    bad = tmp_path / "lm.arpa"
    bad.write_text("this is no language model\n", encoding="utf-8")
    with pytest.raises(StreamerError, match="is not a KenLM language model"):
        LexiconLM(model.vocab, bad, ["hei"])
    with pytest.raises(StreamerError, match="none of the language model's 1 words"):
        LexiconLM(model.vocab, bad, ["qwerty!"])
    with pytest.raises(StreamerError, match="must be at least 1"):
        DecoderSettings(lookback_frames=0)
