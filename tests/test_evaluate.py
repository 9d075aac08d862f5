"""models/evaluate.py: error rates of a model on synthesized text or on a folder of recordings."""

import json
import subprocess
import sys

from helpers import REPO, espeak

EVALUATE = [sys.executable, str(REPO / "models" / "evaluate.py")]


def run(*args):
    return subprocess.run(EVALUATE + [str(a) for a in args], capture_output=True, text=True, timeout=600)


def test_text_file_is_synthesized_and_scored(tiny_nb, tmp_path):
    text = tmp_path / "sentences.txt"
    text.write_text("Elevene leser bøker på biblioteket.\n\nDu har 3 nye meldinger.\nπ ≈ 3,14\n", encoding="utf-8")
    result = run("--model", tiny_nb, "--text", text, "--json", tmp_path / "out.json")
    assert result.returncode == 0, result.stderr
    assert "skipping 1 line" in result.stderr
    report = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert report["totals"]["items"] == 2
    assert [item["reference"] for item in report["items"]] == [
        "elevene leser bøker på biblioteket", "du har tre nye meldinger"]
    assert report["totals"]["cer"] <= 0.15, report["items"]
    assert f"CER {report['totals']['cer']:.4f}" in result.stdout


def test_folder_of_recordings_with_references(tiny_nb, tmp_path):
    espeak("vi møtes ved inngangen i morgen", tmp_path / "a.wav")
    (tmp_path / "a.txt").write_text("Vi møtes ved inngangen i morgen.", encoding="utf-8")
    espeak("dette har ingen fasit", tmp_path / "b.wav")
    result = run("--model", tiny_nb, "--data", tmp_path, "--vad")
    assert result.returncode == 0, result.stderr
    assert "skipping b.wav: no b.txt" in result.stderr
    assert "1 items, 6 words" in result.stdout


def test_bad_inputs_give_one_line_errors(tiny_nb, tmp_path):
    missing = run("--model", tiny_nb, "--data", tmp_path / "nope")
    assert missing.returncode == 2 and "is not a directory" in missing.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("3,14\nπ\n", encoding="utf-8")
    unusable = run("--model", tiny_nb, "--text", empty)
    assert unusable.returncode == 2 and "no usable sentence" in unusable.stderr


def test_edu_sample_takes_new_sentences_from_the_manual_paragraphs():
    sys.path.insert(0, str(REPO / "models"))
    import synth
    from edu_sample import sample_sentences

    seen_in_training = synth.load_corpus("nb_train")[0][1]
    page = (f"<h1>Tittel</h1><p>Elevene logger inn på tynnklientene.</p><p class='x'>{seen_in_training}</p>"
            "<p>Elevene logger inn på tynnklientene.</p><p>Serveren &laquo;tjener&raquo; starter på nytt hver natt.</p>")
    sample = sample_sentences(page, 10, seed=7)
    assert sorted(sample) == ["Elevene logger inn på tynnklientene.", "Serveren «tjener» starter på nytt hver natt."]
    assert sample_sentences(page, 1, seed=7) == sample_sentences(page, 1, seed=7)
