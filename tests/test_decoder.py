"""Beam search with a KenLM language model and hotwords (flashlight-text's incremental lexicon search): it mends
what greedy decoding gets wrong."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from streamer.text.ctc import greedy_words, words_text
from streamer.text import incremental
from streamer.text.decoder import DecoderSettings, read_hotwords
from streamer.text.incremental import IncrementalBeam, load_lm
from streamer.errors import StreamerError
from streamer.model.vocab import Vocabulary
from streamer.sources.ffmpeg import read_audio

from helpers import espeak, start_server, wav_of
from models.build_lm import ATTRS, count_ngrams, estimate, write_arpa
from models.hf_format import VOCAB

pytest.importorskip("flashlight.lib.text.decoder", reason="beam search needs the lm extra (.ci/run installs it)")

VOCABULARY = Vocabulary.from_dict(VOCAB)
CORPUS = """stortinget vedtok budsjettet for neste år
stortinget vedtok forslaget fra regjeringen
regjeringen la fram budsjettet i dag
representantene har igjen tatt sete
stortingets møte er lovlig satt
komiteen vedtok innstillingen enstemmig
presidenten ga ordet til representanten""".splitlines()


@pytest.fixture(scope="module")
def small_lm(tmp_path_factory):
    """A 3-gram ARPA model from a handful of parliament sentences, in a language_model folder."""
    folder = tmp_path_factory.mktemp("small") / "language_model"
    folder.mkdir()
    sentences = [line.split() for line in CORPUS]
    write_arpa(folder / "lm.arpa", *estimate(count_ngrams(sentences, 3)))
    (folder / "unigrams.txt").write_text("\n".join(sorted({w for s in sentences for w in s})) + "\n")
    (folder / "attrs.json").write_text(json.dumps(ATTRS))
    return folder


def logits_spelling(text: str, doubts: dict[int, tuple[str, str]] | None = None) -> np.ndarray:
    """Frames that spell text (a letter, then a blank; '|' between words), but at the given character
    positions the first token of the pair narrowly beats the second ('_' is the blank)."""
    rows = []

    def frame(probs: dict[int, float]) -> None:
        row = np.full(len(VOCABULARY), 1e-4)
        for token, p in probs.items():
            row[token] = p
        rows.append(np.log(row / row.sum()))

    for i, char in enumerate(text):
        token = VOCABULARY.delimiter_id if char == " " else VOCAB[char]
        if doubts and i in doubts:
            first, second = (VOCABULARY.blank_id if t == "_" else VOCABULARY.delimiter_id if t == " " else VOCAB[t]
                             for t in doubts[i])
            frame({first: 0.52, second: 0.46})
        else:
            frame({token: 0.97})
        frame({VOCABULARY.blank_id: 0.97})
    return np.array(rows, np.float32)


def greedy(logits) -> str:
    return words_text(greedy_words(logits, VOCABULARY, 0.02))


def beam_words(logits, lm, **settings) -> list:
    search = IncrementalBeam(load_lm(VOCABULARY, lm, DecoderSettings("beam", **settings)))
    return search.feed(logits) + search.end()


def beam(logits, lm, **settings) -> str:
    return " ".join(w.word for w in beam_words(logits, lm, **settings))


def test_the_language_model_mends_what_greedy_decoding_gets_wrong(small_lm):
    text = "stortinget vedtok budsjettet"
    missing_space = logits_spelling(text, {10: ("_", " ")})  # the word delimiter narrowly loses to the blank
    assert greedy(missing_space) == "stortingetvedtok budsjettet"
    assert beam(missing_space, small_lm) == text
    wrong_letter = logits_spelling("regjeringen la fram budsjettet", {5: ("k", "r")})
    assert greedy(wrong_letter) == "regjekingen la fram budsjettet"
    assert beam(wrong_letter, small_lm) == "regjeringen la fram budsjettet"


def test_a_hotword_spells_a_name_as_written(small_lm, tmp_path):
    logits = logits_spelling("representanten bjørdal", {19: ("t", "d")})
    assert greedy(logits) == "representanten bjørtal"
    # neither name is in the lexicon, and a lexicon search spells only what its lexicon's words begin with
    assert "bjørdal" not in beam(logits, small_lm)
    names = tmp_path / "names.txt"
    names.write_text("# people in the room\nBjørdal 12\nTrond Giske\n", encoding="utf-8")
    assert read_hotwords(names) == (("Bjørdal", 12.0), ("Trond Giske", 10.0))  # capitals kept for the written form
    assert beam(logits, small_lm, hotwords=read_hotwords(names)) == "representanten bjørdal"


def test_word_times_and_confidences_come_from_the_frames(small_lm):
    logits = logits_spelling("stortinget vedtok")
    words = beam_words(logits, small_lm)
    expected = greedy_words(logits, VOCABULARY, 0.02)
    assert [(w.word, w.first_frame * 0.02, (w.last_frame + 1) * 0.02) for w in words] == [
        (w.word, w.start_s, w.end_s) for w in expected]
    assert all(0.9 < w.confidence <= 1 for w in words)


def test_missing_pieces_and_broken_files_are_clear_errors(small_lm, tmp_path, monkeypatch):
    broken = tmp_path / "broken.arpa"
    broken.write_text("this is not an n-gram model\n")
    with pytest.raises(StreamerError, match="is not a KenLM language model"):
        load_lm(VOCABULARY, broken)
    broken.write_text("\\data\\\n\n\\end\\\n")
    with pytest.raises(StreamerError, match="lists no words"):  # no 1-grams to take a lexicon from
        load_lm(VOCABULARY, broken)
    broken.write_text("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\tstortinget\n\n\\2-grams:\n")
    with pytest.raises(StreamerError, match="is not a KenLM language model"):
        load_lm(VOCABULARY, broken)
    with pytest.raises(StreamerError, match="no such language model"):
        load_lm(VOCABULARY, tmp_path / "nope.bin")
    empty = tmp_path / "empty_lm"
    empty.mkdir()
    with pytest.raises(StreamerError, match="holds no KenLM model"):
        load_lm(VOCABULARY, empty)
    monkeypatch.setattr(incremental, "KenLM", None)  # as if flashlight-text were not installed
    with pytest.raises(StreamerError, match="pip install"):
        load_lm(VOCABULARY, small_lm)
    assert greedy(logits_spelling("stortinget")) == "stortinget"  # greedy decoding still works


def test_cli_beam_search_with_an_lm_file_and_hotwords(tiny_nb, tiny_nb_lm, tmp_path):
    wav = espeak("representanten bjørdal og representanten giske", tmp_path / "s.wav")
    names = tmp_path / "names.txt"
    names.write_text("Bjørdal\nGiske\n", encoding="utf-8")

    def run(*extra):
        result = subprocess.run([sys.executable, "-m", "streamer.cli", "transcribe", str(wav), "--model", str(tiny_nb),
                                 *map(str, extra)], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    with_names = run("--decoder", "beam", "--lm", tiny_nb_lm / "lm.arpa", "--hotwords", names)
    assert "Bjørdal" in with_names and "Giske" in with_names, with_names  # hotwords are names to capitalize too
    assert run("--decoder", "beam", "--lm", tiny_nb_lm, "--stream", "--format", "text")
    bad = subprocess.run([sys.executable, "-m", "streamer.cli", "transcribe", str(wav), "--model", str(tiny_nb),
                          "--decoder", "beam", "--lm", tmp_path / "missing.arpa"], capture_output=True, text=True)
    assert bad.returncode == 2 and "no such language model" in bad.stderr


def test_a_checkpoints_language_model_goes_with_its_export(tiny_checkpoint, small_lm, tmp_path, monkeypatch):
    import shutil

    from streamer.export import onnx_export as export
    from streamer.export.checkpoint import resolve_checkpoint
    from streamer.backends.onnx import OnnxModel

    checkpoint = shutil.copytree(tiny_checkpoint, tmp_path / "ckpt")
    shutil.copytree(small_lm, checkpoint / "language_model")
    copied = export.export_checkpoint(resolve_checkpoint(str(checkpoint)), tmp_path / "small")
    assert copied["language_model"] == "language_model"
    assert OnnxModel(tmp_path / "small").language_model_dir == tmp_path / "small" / "language_model"
    monkeypatch.setattr(export, "LM_COPY_LIMIT_BYTES", 100)  # as if it were a 4 GB binary
    referred = export.export_checkpoint(resolve_checkpoint(str(checkpoint)), tmp_path / "big")
    assert referred["language_model"] == str((checkpoint / "language_model").resolve())
    assert not (tmp_path / "big" / "language_model").exists()
    assert OnnxModel(tmp_path / "big").language_model_dir == checkpoint / "language_model"


def test_loading_a_language_model_prints_no_progress_bar(tiny_nb, tiny_nb_lm, tmp_path):
    """KenLM draws a progress bar (from C++, on stderr) as it reads an ARPA file: none of it reaches the terminal,
    for a language_model folder or a bare ARPA file (whose 1-grams are the word list)."""
    wav = espeak("stortinget vedtok budsjettet", tmp_path / "s.wav")
    for lm, expected in ((tiny_nb_lm, []), (tiny_nb_lm / "lm.arpa", [])):
        result = subprocess.run([sys.executable, "-m", "streamer.cli", "transcribe", str(wav), "--model", str(tiny_nb),
                                 "--decoder", "beam", "--lm", str(lm)], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0 and result.stdout.strip(), result.stderr
        lines = result.stderr.splitlines()
        assert [line.split(",")[0] for line in lines] == expected, result.stderr


def test_stderr_is_given_back_when_a_language_model_fails_to_load(tmp_path, capfd):
    broken = tmp_path / "broken.arpa"
    broken.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\tstortinget\n")  # one unigram short
    with pytest.raises(StreamerError, match="is not a KenLM language model"):
        load_lm(VOCABULARY, broken)
    print("still here", file=sys.stderr, flush=True)
    os.write(2, b"and here\n")
    err = capfd.readouterr().err
    assert "still here\nand here\n" in err and "****" not in err and "Loading the LM" not in err


def test_serve_connect_subtitle_and_transcribe_stream_give_the_same_beam_finals(tiny_nb, tiny_nb_lm, tmp_path):
    """One beam search per speech segment in the stream core, whatever shell drives it: the server (through
    `connect`), `subtitle` and `transcribe --stream` give the same finals, hotwords' names as written."""
    sentences = ["representanten bjørdal tok ordet", "stortinget vedtok budsjettet for neste år",
                 "representanten giske svarte på spørsmålet"]
    clips = [read_audio(str(espeak(text, tmp_path / f"{n}.wav"))) for n, text in enumerate(sentences)]
    pause = np.zeros(16000, np.int16)
    wav = wav_of(np.concatenate([pause] + [x for clip in clips for x in (clip, pause)]), tmp_path / "talk.wav")
    names = tmp_path / "names.txt"
    names.write_text("Bjørdal\nGiske\n", encoding="utf-8")
    beam = ["--decoder", "beam", "--lm", str(tiny_nb_lm), "--hotwords", str(names)]

    def cli(*args) -> str:
        result = subprocess.run([sys.executable, "-m", "streamer.cli", *map(str, args)], capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def finals(jsonl: str) -> list[tuple]:
        return [(e["text"], e["raw"], [(w["word"], w["start"], w["end"]) for w in e["words"]])
                for e in map(json.loads, jsonl.splitlines()) if e["type"] == "final"]

    streamed = finals(cli("transcribe", wav, "--model", tiny_nb, "--stream", "--format", "jsonl", *beam))
    assert len(streamed) == 3 and "Bjørdal" in streamed[0][0] and "Giske" in streamed[2][0], streamed
    cli("subtitle", wav, "--model", tiny_nb, "--jsonl", tmp_path / "live.jsonl", "--no-progress", *beam)
    assert finals((tmp_path / "live.jsonl").read_text(encoding="utf-8")) == streamed
    server = start_server(tiny_nb, *beam)
    try:
        assert finals(cli("connect", server.url, wav, "--format", "jsonl")) == streamed
    finally:
        assert server.stop() == 0


def test_auto_decoding_takes_the_models_language_model_when_it_is_whole(small_lm, tmp_path, caplog):
    from types import SimpleNamespace

    from streamer.text.incremental import LexiconLM, make_decoder

    def model(lm):
        return SimpleNamespace(model_dir=tmp_path, vocab=VOCABULARY, language_model_dir=lm)

    assert isinstance(make_decoder(model(small_lm), DecoderSettings()), LexiconLM)  # auto: the model's own
    assert make_decoder(model(small_lm), DecoderSettings(kind="greedy")) is None
    assert make_decoder(model(None), DecoderSettings()) is None  # none to use: greedy
    partial = tmp_path / "language_model"
    partial.mkdir()
    (partial / "attrs.json").write_text("{}")
    with caplog.at_level("WARNING", logger="streamer"):
        assert make_decoder(model(partial), DecoderSettings()) is None  # no KenLM file in it: said, and greedy
    assert "holds no KenLM model" in caplog.text and "decoding greedily" in caplog.text
    for settings in (DecoderSettings(kind="beam"), DecoderSettings(lm=str(partial))):  # asked for: an error
        with pytest.raises(StreamerError, match="holds no KenLM model"):
            make_decoder(model(partial), settings)
    with pytest.raises(StreamerError, match="hotwords need beam search"):
        make_decoder(model(None), DecoderSettings(hotwords=(("Giske", 10.0),)))
