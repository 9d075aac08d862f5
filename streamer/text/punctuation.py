"""Punctuation by rule: the mark after each word of a Bokmål sentence (none, ",", "." or "?"), from Språkrådet's
comma advice and question word order. The baseline a learned punctuation model has to beat (issue 30); not yet
part of the text stage.

- A question: the sentence opens with a question word ("Hvorfor har regjeringen ...", "Hva er ...") or with a
  finite verb ("Kan du ...", "Er det ..."), so an indirect question ("Jeg lurer på hva ...") stays a statement.
  "Når" and "hvor" open a question only when a finite verb follows them ("Når kommer ...", not "Når vi ser ...").
- A comma before "men"; after an answer word or a form of address that opens the sentence ("Ja, ...",
  "President, ..."); after a leading subordinate clause, before the main clause's verb, which comes before
  its subject ("Når vi ser på tallene, er det tydelig ...").
"""

from __future__ import annotations

QUESTION_WORDS = frozenset("hva hvem hvorfor hvordan hvilken hvilket hvilke hvor når".split())
NEEDS_VERB_AFTER = frozenset({"når", "hvor"})  # also subjunctions ("når vi ser"), or "hvor mange" (a question)
FINITE_VERBS = frozenset("""er var har hadde kan kunne vil ville skal skulle må måtte bør burde får fikk blir ble
    gjør gjorde vet visste tror trodde mener mente synes syntes ser så finnes fantes kommer kom går gikk står sto
    ligger lå tar tok gir ga sier sa betyr betydde trenger trengte ønsker ønsket""".split())
SUBJECTS = frozenset("det vi jeg du han hun de dere man den dette disse regjeringen stortinget".split())
SUBJUNCTIONS = frozenset("når hvis dersom fordi da om mens siden ettersom selv før etter enda".split())
ANSWERS = frozenset("ja nei jo takk".split())
ADDRESS = frozenset("president visepresident statsråd statsminister ordfører".split())


def question(words: list[str]) -> bool:
    """Whether a sentence of these (lowercase) words is a direct question, by its word order."""
    if not words:
        return False
    first, rest = words[0], words[1:]
    if first in QUESTION_WORDS:
        return first not in NEEDS_VERB_AFTER or (bool(rest) and (rest[0] in FINITE_VERBS or rest[0] == "mange"))
    return first in FINITE_VERBS and bool(rest) and rest[0] in SUBJECTS


def marks(words: list[str], ends_sentence: bool = True) -> list[str]:
    """The mark after each word: "" (none), ",", or at the end of a sentence "." or "?"."""
    lowered = [w.lower() for w in words]
    out = [""] * len(words)
    for i, word in enumerate(lowered[1:], start=1):
        if word == "men" and out[i - 1] == "":
            out[i - 1] = ","
    if len(lowered) > 1 and (lowered[0] in ANSWERS or lowered[0] in ADDRESS):
        out[0] = ","
    if lowered and lowered[0] in SUBJUNCTIONS and not question(lowered):
        main = main_clause_start(lowered)
        if main is not None:
            out[main - 1] = ","
    if ends_sentence and words:
        out[-1] = "?" if question(lowered) else "."
    return out


def main_clause_start(words: list[str]) -> int | None:
    """Where the main clause begins after a leading subordinate clause: the first finite verb, after the
    clause's own verb, that its subject follows ("... tallene | er det ...")."""
    seen_verb = False
    for i in range(1, len(words) - 1):
        if words[i] in FINITE_VERBS:
            if seen_verb and words[i + 1] in SUBJECTS:
                return i
            seen_verb = True
    return None


def punctuate(words: list[str], ends_sentence: bool = True) -> str:
    return " ".join(word + mark for word, mark in zip(words, marks(words, ends_sentence)))
