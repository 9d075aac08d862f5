"""The rule baseline for punctuation (issue 30): Språkrådet's comma advice and question word order, and the
text evaluation that scores it per mark."""

from streamer.text.punctuation import marks, punctuate, question

from models.punct_eval import scores, words_and_marks


def test_questions_come_from_word_order():
    assert question("hvorfor har regjeringen ikke fulgt opp vedtaket fra i fjor".split())
    assert question("kan du si noe om tallene".split()) and question("er det riktig".split())
    assert question("hvor mange stemte for".split()) and question("når kommer saken".split())
    assert not question("når vi ser på tallene er det tydelig at ordningen virker".split())  # a subjunction
    assert not question("jeg lurer på hva regjeringen vil gjøre".split())  # an indirect question
    assert not question("trykk på knappen".split()) and not question([])


def test_commas_follow_the_advice():
    assert punctuate("når vi ser på tallene er det tydelig at ordningen virker".split()) == \
        "når vi ser på tallene, er det tydelig at ordningen virker."
    assert punctuate("ja det er riktig".split()) == "ja, det er riktig."
    assert punctuate("president jeg tar ordet".split()) == "president, jeg tar ordet."
    assert punctuate("vi vil men vi kan ikke".split()) == "vi vil, men vi kan ikke."
    assert punctuate("hvorfor har regjeringen ikke svart".split()) == "hvorfor har regjeringen ikke svart?"
    assert marks("og så videre".split(), ends_sentence=False) == ["", "", ""]  # mid-sentence: no end mark


def test_the_evaluation_reads_written_marks_and_scores_each():
    words, written = words_and_marks("«Ja», sa han; hvorfor ikke? Ferdig !")
    assert words == ["ja", "sa", "han", "hvorfor", "ikke", "ferdig"]
    assert written == [",", "", ",", "", "?", "."]
    found = scores([["", ",", "."], ["", "?"]], [["", ",", "?"], ["", "?"]])
    assert found[","] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "written": 1}
    assert found["?"]["precision"] == 0.5 and found["?"]["recall"] == 1.0
    assert found["."]["recall"] == 0.0 and found["."]["f1"] == 0.0
