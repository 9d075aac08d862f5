"""The punctuation model's training text: marks carried onto recognized words, statements turned into
questions (models/punct_asr_text.py, models/train_punct.py)."""

from __future__ import annotations

import random

from models import punct_asr_text, train_punct
from streamer.text.punctuator import MARKS

FULL_STOP, QUESTION = MARKS.index("."), MARKS.index("?")


def test_marks_follow_the_words_a_recognizer_wrote():
    ref, marks = "hvor raskt skal man få det".split(), ["", "", "", "", "", "?"]
    assert punct_asr_text.transferred(ref, marks, "vor raskt skal man få det".split()) == marks
    # a word split in two: its mark goes after the second piece
    assert punct_asr_text.transferred(["filer", "og", "mapper"], [",", "", "."], ["fil", "er", "og", "mapper"]) \
        == ["", ",", "", "."]
    # a lost last word: its mark goes to the word before
    assert punct_asr_text.transferred(["ja", "takk", "nå"], ["", "", "."], ["ja", "takk"]) == ["", "."]
    # an inserted word takes none
    assert punct_asr_text.transferred(["ja", "takk"], [",", "."], ["ja", "e", "takk"]) == [",", "", "."]


def test_a_statement_opening_with_subject_and_verb_becomes_a_question():
    words, marks = "vi har sett det".split(), [0, 0, 0, FULL_STOP]
    asked = {tuple(train_punct.inverted(words, marks, random.Random(seed))[0]) for seed in range(20)}
    assert ("har", "vi", "sett", "det") in asked and any(a[0] in train_punct.ASKING for a in asked)
    for seed in range(20):
        question, question_marks = train_punct.inverted(words, marks, random.Random(seed))
        assert question_marks[-1] == QUESTION and len(question_marks) == len(question)
    assert train_punct.inverted("nå har vi sett det".split(), [0, 0, 0, 0, FULL_STOP], random.Random(1)) is None
    assert train_punct.inverted("har vi sett det".split(), [0, 0, 0, QUESTION], random.Random(1)) is None
