"""The punctuation corpus builder's text functions on small literal examples (no downloads), and the committed
corpus: its held-out set shares no sentence with the training text and has enough questions and commas."""

from __future__ import annotations

import gzip
import struct

import pytest

from helpers import REPO  # first: it puts the repository on sys.path for models/
from models import build_punct_corpus as bpc
from models import punct_sources

DATA = REPO / "models" / "data"


@pytest.mark.parametrize("sentence", [
    "Dette er en hel setning.",
    "Vil du lagre endringene nå?",
    "Hvis du svarer ja, får du opp dialogvinduet!",
])
def test_whole_sentences_pass(sentence):
    assert bpc.is_whole_sentence(sentence, 4, 60)


@pytest.mark.parametrize("sentence", [
    "dette starter med liten bokstav.",      # not capitalised
    "Dette har ingen sluttmerke",            # no end mark
    "For kort.",                             # under 4 words
    "Vent litt mens vi laster…",             # ellipsis
    "Dette tar 50 % av tiden.",              # %
    "Les filen /etc/fstab nå.",              # path
    "Åpne X i et nytt vindu.",               # Fluent placeholder
    "Verdien {name} er ugyldig her.",        # placeholder
    "E, --show-overlap Likner -e, men viser konflikter.",  # command-line options
])
def test_broken_sentences_fail(sentence):
    assert not bpc.is_whole_sentence(sentence, 4, 60)


def test_word_limits():
    assert bpc.is_whole_sentence("Tre ord her.", 3, 60)
    assert not bpc.is_whole_sentence("Tre ord her.", 4, 60)
    assert not bpc.is_whole_sentence("Ord " * 30 + "slutt.", 4, 25)


def test_heldout_filter_drops_what_espeak_would_read_differently():
    assert bpc.heldout_ok("Men kan stammen din leve i fred med naboene dine?")
    assert not bpc.heldout_ok("Du har 3 nye meldinger i innboksen.")         # digit
    assert not bpc.heldout_ok("Se https:www.debian.org for mer om dette.")   # URL
    assert not bpc.heldout_ok("Bruk filen sources_list for dette formålet.")  # underscore
    assert not bpc.heldout_ok("Kjør LDAP-tjeneren og start den på nytt.")    # all-caps word
    assert not bpc.heldout_ok("Du har $count nye meldinger i innboksen.")    # placeholder


def test_split_sentences():
    text = "Dette er én. Er dette to? Ja! Se f.eks. kapittel tre.  Eller\nikke."
    assert bpc.split_sentences(text) == ["Dette er én.", "Er dette to?", "Ja!", "Se f.eks. kapittel tre.",
                                         "Eller ikke."]
    assert bpc.split_sentences("Versjon 2.1 er ute. apt-get er et verktøy.") == [
        "Versjon 2.1 er ute. apt-get er et verktøy."]  # no cut before a lowercase word


def test_strip_sidebar_label():
    assert bpc.strip_sidebar_label("MERK Du kan også bruke apt.") == "Du kan også bruke apt."
    assert bpc.strip_sidebar_label("VÆR VARSOM Dette sletter alt.") == "Dette sletter alt."
    assert bpc.strip_sidebar_label("FOR VIDEREKOMMENDE Avansert LVM er nyttig.") == "Avansert LVM er nyttig."
    assert bpc.strip_sidebar_label("APT er et stort prosjekt.") == "APT er et stort prosjekt."
    assert bpc.strip_sidebar_label("NFS Tjeneren er oppe.") == "NFS Tjeneren er oppe."  # under 4 letters


@pytest.mark.parametrize("sentence, lang", [
    ("Det er ikke mulig å lagre filen nå.", "nb"),
    ("Hvis du svarer ja, får du opp dialogvinduet.", "nb"),
    ("The private key must be kept secret, otherwise the security is compromised.", "en"),
    ("Det er ikkje mogleg å lagre fila no.", "nn"),
    ("Det er ikke muligt at finde filen af denne grund.", "da"),
    ("Postfix provides two interesting features.", ""),
])
def test_language(sentence, lang):
    assert bpc.language(sentence) == lang
    assert bpc.is_bokmal(sentence) == (lang == "nb")


def test_html_paragraphs_drop_code_blocks_and_keep_plain_commands():
    page = ('<head><title>T</title></head><div class="para">Bruk <code class="command">apt-get</code> '
            'eller <code class="filename">/etc/apt</code> her.</div><pre class="screen">$ ls</pre>'
            '<div class="para">Hei &amp; hå .</div>')
    assert bpc.html_paragraphs(page) == ["Bruk apt-get eller {code} her.", "Hei & hå."]


def test_debconf_descriptions():
    templates = ("Template: x/y\nType: boolean\nDescription: Continue?\n Long.\n"
                 "Description-nb.UTF-8: Vil du fortsette?\n Første linje\n fortsetter her.\n .\n Andre avsnitt.\n\n")
    assert bpc.debconf_descriptions(templates) == ["Vil du fortsette?", "Første linje fortsetter her.",
                                                   "Andre avsnitt."]


def test_dedup_and_near_duplicate_cap():
    rows = [("a", "Er du sikker på dette?"), ("b", "er du sikker på DETTE"), ("a", "Er du sikker på det?"),
            ("a", "Er du sikker på alt?")]
    assert bpc.dedup(rows) == [rows[0], rows[2], rows[3]]
    assert bpc.dedup(rows, cap=2) == [rows[0], rows[2]]
    assert bpc.dedup(rows, taken={"er du sikker på det"}) == [rows[0], rows[3]]


@pytest.mark.parametrize("text", [
    "Hvis du velger dette, vil filen bli slettet",
    "Legg linjer fra standard inndata i tabellen, eller",
    "Velg en mappe, en fil eller en lenke:",
])
def test_fragments_pass(text):
    assert bpc.is_fragment(text)


@pytest.mark.parametrize("text", [
    "Hvis du velger dette, vil filen bli slettet.",  # a whole sentence, not a fragment
    "Hvis du velger dette vil filen bli slettet",    # no comma
    "Verdien 1,5 er for høy her",                    # a decimal comma is not between words
    "Lagre, lukk og avslutt",                        # under 5 words
    "hvis du velger dette, vil filen bli slettet",   # not capitalised
    "Hvis du velger dette, vil filen…",              # ellipsis
    "Åpne X i et nytt vindu, eller lukk det",        # placeholder X
])
def test_non_fragments_fail(text):
    assert not bpc.is_fragment(text)


@pytest.mark.parametrize("text, kind", [
    ("Vil du lagre endringene i dokumentet?", "sentence"),
    ("Kan ikke åpne filen.", "sentence"),                          # 3 words are enough in catalogs
    ("Hvis du velger dette, vil filen bli slettet", "fragment"),
    ("Kan ikke åpne filen %s fordi den er låst.", ""),             # placeholder
    ("Kan ikke åpne filen $name fordi den er låst.", ""),
    ("Sett verdien av max_size til noe annet.", ""),               # identifier
    ("The file could not be opened, and it is gone.", ""),         # English
    ("Det er ikkje mogleg å opne fila no.", ""),                   # Nynorsk
])
def test_catalog_kind(text, kind):
    assert bpc.catalog_kind(text) == kind


def test_strip_accelerators():
    assert bpc.strip_accelerators("Vil du &lagre _filen nå? La&gre") == "Vil du lagre filen nå? Lagre"
    assert bpc.strip_accelerators("Tom & Jerry og sources_list") == "Tom & Jerry og sources_list"


def test_question_cap():
    rows = [("a", f"Er du sikker på at du vil slette {w}?") for w in ("den", "dem", "alt")]
    rows += [("a", "Er du sikker nå?"), ("a", "Er du sikker på det.")]
    assert bpc.dedup(rows, question_caps={"er du sikker": 2}) == [rows[0], rows[1], rows[4]]


def make_mo(entries: dict[bytes, bytes]) -> bytes:
    """A little-endian .mo file with these msgid -> msgstr entries."""
    keys = sorted(entries)
    ids, strs = b"".join(k + b"\0" for k in keys), b"".join(entries[k] + b"\0" for k in keys)
    start = 28 + 16 * len(keys)
    table, offset = [], start
    for k in keys:
        table += [len(k), offset]
        offset += len(k) + 1
    for k in keys:
        table += [len(entries[k]), offset]
        offset += len(entries[k]) + 1
    header = struct.pack("<7I", 0x950412DE, 0, len(keys), 28, 28 + 8 * len(keys), 0, 0)
    return header + struct.pack(f"<{len(table)}I", *table) + ids + strs


def test_translated_mo_skips_untranslated_entries():
    data = make_mo({b"": b"Content-Type: text/plain; charset=UTF-8\n", b"Save the file?": b"Lagre filen?",
                    b"Untranslated.": b"Untranslated.", b"ctx\x04Open": b"\xc3\x85pne",
                    b"One file\0%d files": b"\xc3\x89n fil\0%d filer"})
    assert sorted(punct_sources.translated_mo(data)) == ["%d filer", "Lagre filen?", "Åpne", "Én fil"]


def test_archive_packages_exclude_the_heldout_sources():
    for name in ("widelands", "wesnoth-1.16-data", "freeciv-client-gtk3", "debian-edu-router-config",
                 "python3-django"):
        assert punct_sources.ARCHIVE_EXCLUDE_RE.match(name)
    for name in ("coreutils", "python3-django-allauth", "gnome-games-app"):
        assert not punct_sources.ARCHIVE_EXCLUDE_RE.match(name)
    assert not any("django" in spec for spec in punct_sources.PYPI_PACKAGES)


def test_source_group():
    assert punct_sources.source_group("deb:inkscape") == "nb_train"
    assert punct_sources.source_group("fragment:archive:bash") == "fragment:archive"
    assert punct_sources.source_group("pypi:weblate") == "pypi:weblate"
    assert punct_sources.source_group("debconf:cups") == "debconf"


def read_tsv(path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t", 1) for line in f]


def test_committed_heldout_is_disjoint_from_training_and_has_questions_and_commas():
    heldout = [sentence for _, sentence in read_tsv(DATA / "punct_heldout.tsv")]
    training = {bpc.key(s) for name in ("punct_train.tsv.gz", "nb_train.tsv.gz") for _, s in read_tsv(DATA / name)}
    assert not {bpc.key(s) for s in heldout} & training
    assert len(heldout) >= 50
    assert sum(s.endswith("?") for s in heldout) >= 20
    assert sum("," in s for s in heldout) >= 20
    assert all(bpc.heldout_ok(s) for s in heldout)


def test_committed_training_marks_fragments_and_skips_the_heldout_sources():
    rows = read_tsv(DATA / "punct_train.tsv.gz")
    pool = {bpc.key(s) for _, s in read_tsv(DATA / "punct_heldout_pool.tsv.gz")}
    assert not {bpc.key(s) for _, s in rows} & pool
    fragments = [s for source, s in rows if source.startswith("fragment:")]
    assert len(fragments) > 1000 and all(bpc.is_fragment(s) for s in fragments)
    sources = {source.removeprefix("fragment:").split(":")[0] for source, _ in rows}
    assert {"archive", "large", "pypi", "debian-handbook", "debconf"} <= sources
    packages = {source.split(":")[-1] for source, _ in rows}
    assert not any(punct_sources.ARCHIVE_EXCLUDE_RE.match(p) or "django" == p for p in packages)
    assert sum(s.endswith("?") and bpc.key(s).startswith("er du sikker") for _, s in rows) <= 60
