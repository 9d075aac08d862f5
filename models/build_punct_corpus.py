"""Build the Bokmål text corpus of the punctuation model (train_punct.py) and its held-out evaluation set.

Sentences are kept as written (case and punctuation), as ``source<TAB>sentence`` lines:

* ``models/data/punct_train.tsv.gz``: TRAINING text, from
  - ``models/data/nb_train.tsv.gz`` (the ASR corpus): only its whole sentences;
  - the Debian Administrator's Handbook, ``html/nb-NO`` of the ``debian-handbook`` package;
  - the ``Description-nb.UTF-8`` fields of the debconf templates of DEBCONF_PACKAGES;
  - the Bokmål gettext catalogs of the whole Debian archive (every package under 3 MB with
    ``locale/{nb,nb_NO,no}/LC_MESSAGES/*.mo``, ``archive:`` sources), of the larger KDE/GIMP/LibreOffice/
    Firefox/Thunderbird packages (``large:``) and of four PyPI wheels (``pypi:``); see punct_sources.py;
  - fragments: lines of nb_train and of those catalogs that are not whole sentences but have a comma
    between words (source ``fragment:<source>``; the trainer reads them as text cut at both ends).
  Exact duplicates are removed, at most 20 sentences may share the same first four words and at most 60
  questions start "Er du sikker". Nothing that is in the held-out pool (or Django's nb_heldout) is kept.
* ``models/data/punct_heldout.tsv``: HELD-OUT evaluation sentences, from sources that neither corpus
  uses: the Bokmål catalogs of the games (widelands, wesnoth, freeciv) and the Debian Edu manuals
  (read with edu_sample.py). Every question, as many comma sentences and as many plain statements,
  drawn with a fixed seed and shuffled. Sentences that also occur in either training corpus are dropped.
* ``models/data/punct_heldout_pool.tsv.gz``: every held-out sentence that passed the filters.

The packages are fetched with ``apt-get download`` (about 1.3 GB; nothing is installed) and ``pip download``
(100 MB) and unpacked into the cache, so a second run reads them from there:

    python models/build_punct_corpus.py --cache /tmp/punct-corpus-cache
"""

from __future__ import annotations

import argparse
import collections
import gzip
import html
import random
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_corpus  # noqa: E402
import edu_sample  # noqa: E402
import punct_sources  # noqa: E402
from punct_sources import download, log, report, unpack, write_tsv  # noqa: E402,F401

DATA = Path(__file__).resolve().parent / "data"
HANDBOOK = "debian-handbook"
HANDBOOK_HTML = "usr/share/doc/debian-handbook/html/nb-NO"
GAMES = {"widelands": "widelands-data", "wesnoth": "wesnoth-1.16-data", "freeciv": "freeciv-data"}
EDU = {"debian-edu-manual": "manual", "debian-edu-legacy": "itil"}  # source -> edu_sample.SOURCES key
DEBCONF_PACKAGES = (  # the packages of a 90-package probe whose templates have Bokmål descriptions
    "grub-pc", "grub-efi-amd64", "strongswan-starter", "console-data", "keyboard-configuration",
    "exim4-config", "nslcd", "dbconfig-common", "console-setup", "dictionaries-common", "wvdial",
    "libc6", "debconf", "apt-listchanges", "tasksel", "samba-common", "locales", "libnss-ldapd",
    "cups", "popularity-contest", "phpmyadmin", "openvpn", "ddclient", "cyrus-common",
)
MAX_PER_OPENING = 20   # sentences sharing their first four words
QUESTION_CAPS = {"er du sikker": 60}  # questions whose key starts so, in all
SEED = 30

# Marker words of the language filter: frequent words that are rare or absent in the other languages.
NB_WORDS = frozenset(
    "og er ikke jeg hva hvordan hvorfor hvem hvor fra noen mye av det som på med til å kan vil har du "
    "når eller hvis også skal må bare denne dette disse være blir ble ved seg sin sitt sine ut nå vi "
    "dere han hun den de et en så etter alle mer flere om deg meg dem deres hvilke hvilken fordi mange slik "
    "derfor hver mellom uten eksempel ingen kun".split())
NN_WORDS = frozenset("ikkje eg kva korleis kvifor frå nokon noko mykje ein eit dei berre vere kvar "
                     "ho sjå fleire heile sjølv".split())
DA_WORDS = frozenset("af hvad nogle nogen efter nu mig sig ud blev mellem".split())
EN_WORDS = frozenset(
    "the and is of in that it with are this by an or not you your which on have has will from these "
    "was were its their they we when also if but only can would should there what how why been "
    "does each other such may than then into".split())

SIDEBAR_LABEL_RE = re.compile(r"^((?:[A-ZÆØÅ][A-ZÆØÅ-]+ )+)(?=[A-ZÆØÅ][a-zæøå])")
SPLIT_RE = re.compile(r"(?<=[.?!])\s+(?=[A-ZÆØÅÄÖÜÉ])")
BLOCK_TAG_RE = re.compile(r"</?(?:div|p|li|ul|ol|dl|dt|dd|h\d|table|tr|td|th|br|hr|blockquote|title)\b[^>]*>",
                          re.I)
CODE_RE = re.compile(r'<code\b[^>]*>(.*?)</code>|<tt>(.*?)</tt>|<strong class="userinput">(.*?)</strong>'
                     r'|<em class="replaceable">(.*?)</em>', re.S)
NORMAL_CHARS = set(" .,?!;:-–—«»\"'’()")


# ------------------------------------------------------------------ sentences

def key(sentence: str) -> str:
    """What makes two sentences the same: their lowercase letters and single spaces."""
    letters = "".join(c for c in sentence.lower() if c.isalpha() or c.isspace())
    return " ".join(letters.split())


def split_sentences(text: str) -> list[str]:
    """Sentences of a paragraph: cut after . ? ! followed by a space and an uppercase letter."""
    return [s.strip() for s in SPLIT_RE.split(" ".join(text.split())) if s.strip()]


def strip_sidebar_label(sentence: str) -> str:
    """Drop an all-caps label glued to the front ("MERK Du kan …" -> "Du kan …")."""
    match = SIDEBAR_LABEL_RE.match(sentence)
    if match and len(match.group(1).replace(" ", "")) >= 4:
        return sentence[match.end():]
    return sentence


def language(sentence: str) -> str:
    """"nb", "nn", "da", "en" or "" (undecided), by counting marker words."""
    words = re.findall(r"[^\W\d_]+", sentence.lower())
    hits = {lang: sum(w in markers for w in words)
            for lang, markers in (("nb", NB_WORDS), ("nn", NN_WORDS), ("da", DA_WORDS), ("en", EN_WORDS))}
    if hits["nn"] or hits["da"]:  # one word that Bokmål lacks is enough
        return "nn" if hits["nn"] >= hits["da"] else "da"
    if hits["en"] and hits["en"] * 2 >= hits["nb"]:
        return "en"
    return "nb" if hits["nb"] else ""


def is_bokmal(sentence: str) -> bool:
    return language(sentence) == "nb"


def is_whole_sentence(sentence: str, min_words: int, max_words: int) -> bool:
    """Capitalised, ends in . ? or !, min..max words; no ellipsis, markup, paths, --options or placeholder X."""
    return bool(sentence) and sentence[-1] in ".?!" and is_plain_text(sentence, min_words, max_words)


def is_fragment(text: str, min_words: int = 5, max_words: int = 60) -> bool:
    """Text cut off (no end mark) with a comma between two words, capitalised, min..max words, else as above."""
    if not text or text[-1] in ".?!" or not re.search(r"[^\W\d_],\s+[^\W\d_]", text):
        return False
    return is_plain_text(text, min_words, max_words)


def is_plain_text(sentence: str, min_words: int, max_words: int) -> bool:
    words = sentence.split()
    if not sentence or not (sentence[0].isalpha() and sentence[0].isupper()):
        return False
    if not min_words <= len(words) <= max_words or "…" in sentence or "..." in sentence:
        return False
    if any(c in sentence for c in "%{}<>/\\") or re.search(r"(?<!\S)--?\w", sentence):  # --option
        return False
    return "X" not in {w.strip(".,;:!?«»\"'()") for w in words}


def is_clean_for_speech(sentence: str) -> bool:
    """Held-out extras: no placeholders, digits, URLs, _ / @, long all-caps words; ≥ 90 % plain text."""
    if build_corpus._FORMAT_RE.search(sentence) or "$" in sentence or any(c.isdigit() for c in sentence):
        return False
    if any(c in sentence for c in "_/@") or "http" in sentence or "www." in sentence:
        return False
    if any(len(w) > 3 and w.isupper() for w in re.findall(r"[^\W\d_]+", sentence)):
        return False
    plain = sum(c.isalpha() or c in NORMAL_CHARS for c in sentence)
    return plain >= 0.9 * len(sentence)


def heldout_ok(sentence: str) -> bool:
    return is_whole_sentence(sentence, 4, 25) and is_clean_for_speech(sentence) and is_bokmal(sentence)


def no_placeholders(text: str) -> bool:
    """No printf/Python/Qt placeholders ({} % are already out), $variables, identifiers, e-mail or markup."""
    return not build_corpus._FORMAT_RE.search(text) and not re.search(r"[$_@#~^|=]", text)


def catalog_kind(text: str) -> str:
    """A catalog piece as "sentence" (3-60 words), "fragment" or "" (dropped); Bokmål, no placeholders."""
    if not no_placeholders(text) or not is_bokmal(text):
        return ""
    if is_whole_sentence(text, 3, 60):
        return "sentence"
    return "fragment" if is_fragment(text) else ""


# ------------------------------------------------------------------ text formats

def keep_simple_code(match: re.Match) -> str:
    """A code span stays if it is one plain word (apt-get); else it becomes {code}, which the filter drops."""
    text = re.sub(r"<[^>]+>", "", next(g for g in match.groups() if g is not None))
    return text if re.fullmatch(r"[\w.+-]+", text) and "_" not in text else "{code}"


def html_paragraphs(page: str) -> list[str]:
    """The text blocks of an HTML page: no <pre>/<screen>, <head>, scripts; entities unescaped."""
    page = re.sub(r"<(pre|screen|head|script|style)\b.*?</\1>", "\n\n", page, flags=re.S | re.I)
    page = CODE_RE.sub(keep_simple_code, page)
    page = BLOCK_TAG_RE.sub("\n\n", page)
    page = html.unescape(re.sub(r"<[^>]+>", "", page))
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", page) if p.strip()]
    return [re.sub(r" (?=[,.?!;:](?: |$))", "", p) for p in paragraphs]  # "ord ," -> "ord,"


def catalog_paragraphs(strings: list[str]) -> list[str]:
    """Catalog strings cut at every line end (a wrapped line is not a whole sentence) and at markup."""
    out = []
    for s in strings:
        out += html_paragraphs(s.replace("\\n", "\n").replace("\n", "\n\n"))
    return out


def strip_accelerators(text: str) -> str:
    """Keyboard accelerators out: "&Lagre", "_Lagre", "La&gre" -> "Lagre"."""
    return re.sub(r"(?<!\S)[&_](?=[^\W\d_])|(?<=[^\W\d_])&(?=[^\W\d_])", "", text)


def debconf_descriptions(templates: str) -> list[str]:
    """Paragraphs of the Description-nb.UTF-8 fields of a debconf templates file."""
    out, current = [], None
    for line in templates.splitlines() + [""]:
        if line.startswith("Description-nb"):
            current = [line.split(":", 1)[1].strip(), ""]  # the short line is a paragraph of its own
        elif current is not None and line.startswith(" "):
            current.append("" if line.strip() == "." else line.strip())
        elif current is not None:
            out += [p for p in " ".join(w or "\n" for w in current).split("\n") if p.strip()]
            current = None
    return [" ".join(p.split()) for p in out]


# ------------------------------------------------------------------ sources

def read_rows(path: Path) -> list[tuple[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [tuple(line.rstrip("\n").split("\t", 1)) for line in f]


def nb_train_sentences() -> list[tuple[str, str]]:
    """The whole sentences (3-60 words) of the ASR corpus, with its source names; none judged English,
    Nynorsk or Danish (but a sentence without marker words stays: most are short Bokmål UI lines)."""
    rows = read_rows(DATA / "nb_train.tsv.gz")
    return [(source, s) for source, s in rows if is_whole_sentence(s, 3, 60) and language(s) in ("nb", "")]


def nb_train_fragments() -> list[tuple[str, str]]:
    """The ASR corpus's lines that are fragments (is_fragment), as fragment:<source>; language as above."""
    rows = read_rows(DATA / "nb_train.tsv.gz")
    return [(f"fragment:{source}", s) for source, s in rows if is_fragment(s) and language(s) in ("nb", "")]


def catalog_rows(cache: Path) -> tuple[list, list]:
    """Sentences and fragment:<source> rows of the whole-archive, large and PyPI catalogs (punct_sources)."""
    sentences, fragments = [], []
    sources = [("the whole-archive catalogs", punct_sources.archive_catalogs),
               ("the large catalogs", punct_sources.large_catalogs), ("the PyPI catalogs", punct_sources.pypi_catalogs)]
    for title, catalogs in sources:
        log(f"reading {title}")
        for source, strings in catalogs(cache):
            for paragraph in catalog_paragraphs(strings):
                for piece in split_sentences(strip_accelerators(paragraph)):
                    kind = catalog_kind(piece)
                    if kind == "sentence":
                        sentences.append((source, piece))
                    elif kind == "fragment":
                        fragments.append((f"fragment:{source}", piece))
    return sentences, fragments


def handbook_sentences(cache: Path) -> list[tuple[str, str]]:
    deb = download([HANDBOOK], cache)[HANDBOOK]
    root = unpack(deb, cache / "x" / HANDBOOK, f"./{HANDBOOK_HTML}/*.html") / HANDBOOK_HTML
    out = []
    for page in sorted(root.glob("*.html")):
        for paragraph in html_paragraphs(page.read_text(encoding="utf-8")):
            for sentence in split_sentences(paragraph):
                sentence = strip_sidebar_label(sentence)
                if is_whole_sentence(sentence, 4, 60) and is_bokmal(sentence):
                    out.append((HANDBOOK, sentence))
    return out


def debconf_sentences(cache: Path) -> list[tuple[str, str]]:
    out = []
    for package, deb in download(DEBCONF_PACKAGES, cache).items():
        templates = subprocess.run(["dpkg-deb", "-I", str(deb), "templates"], capture_output=True, text=True)
        for paragraph in debconf_descriptions(templates.stdout):
            out += [(f"debconf:{package}", s) for s in split_sentences(paragraph)
                    if is_whole_sentence(s, 3, 60) and is_bokmal(s)]
    return out


def game_sentences(cache: Path) -> list[tuple[str, str]]:
    out = []
    debs = download(GAMES.values(), cache)
    for source, package in GAMES.items():
        root = unpack(debs[package], cache / "x" / package, "*/locale/nb*/LC_MESSAGES/*.mo")
        strings = [s for mo in sorted(root.glob("**/locale/nb*/LC_MESSAGES/*.mo")) for s in build_corpus.read_mo(mo)]
        out += [(source, s) for p in catalog_paragraphs(strings) for s in split_sentences(p) if heldout_ok(s)]
    return out


def edu_sentences(cache: Path) -> list[tuple[str, str]]:
    out = []
    for source, edu_key in EDU.items():
        log(f"reading {source}")
        page = edu_sample.manual_html(cache / "debian-edu", edu_key)
        out += [(source, s) for p in html_paragraphs(page) for s in split_sentences(p) if heldout_ok(s)]
    return out


# ------------------------------------------------------------------ assembly

def dedup(rows, taken: set[str] = frozenset(), cap: int | None = None,
          question_caps: dict[str, int] | None = None) -> list[tuple[str, str]]:
    """Rows whose key is new and not in `taken`; with `cap`, at most that many per first four words; with
    `question_caps`, at most that many questions whose key starts with each prefix."""
    seen, openings, out = set(), collections.Counter(), []
    for source, sentence in rows:
        k = key(sentence)
        opening = " ".join(k.split()[:4])
        prefixes = [p for p in question_caps or {} if sentence.endswith("?") and k.startswith(p)]
        if k in seen or k in taken or (cap is not None and openings[opening] >= cap):
            continue
        if any(openings["?" + p] >= question_caps[p] for p in prefixes):
            continue
        seen.add(k)
        openings.update([opening] + ["?" + p for p in prefixes])
        out.append((source, sentence))
    return out


def mark(sentence: str) -> str:
    """The kind of sentence: "?" (question), "," (has a comma) or "." (plain statement) or "" (other)."""
    if sentence.endswith("?"):
        return "?"
    if "," in sentence:
        return ","
    return "." if sentence.endswith(".") else ""


def pick_balanced(rows, count: int, rng: random.Random) -> list[tuple[str, str]]:
    """`count` rows, half from the games and half from the Edu manuals where each has enough."""
    edu = [r for r in rows if r[0] in EDU]
    games = [r for r in rows if r[0] not in EDU]
    rng.shuffle(edu)
    rng.shuffle(games)
    n_edu = min(len(edu), max(count // 2, count - len(games)))
    return edu[:n_edu] + games[:count - n_edu]


def pick_heldout(pool, seed: int = SEED) -> list[tuple[str, str]]:
    """Every question, as many comma sentences and as many plain statements; shuffled."""
    rng = random.Random(seed)
    questions = [r for r in pool if mark(r[1]) == "?"]
    picked = questions + pick_balanced([r for r in pool if mark(r[1]) == ","], len(questions), rng)
    picked += pick_balanced([r for r in pool if mark(r[1]) == "."], len(questions), rng)
    rng.shuffle(picked)
    return picked


def training_rows(cache: Path, base: list, pool: list) -> list[tuple[str, str]]:
    """`base` (the first sources), then the catalogs' sentences, then all fragments; nothing in the pool or in
    Django's nb_heldout; the caps count all of them."""
    sentences, fragments = catalog_rows(cache)
    taken = {key(s) for _, s in pool} | {key(s) for _, s in read_rows(DATA / "nb_heldout.tsv.gz")}
    train = dedup(base + sentences + nb_train_fragments() + fragments, taken=taken, cap=MAX_PER_OPENING,
                  question_caps=QUESTION_CAPS)
    if train[:len(base)] != base:
        sys.exit("internal error: the new sources changed the first training rows (caps or held-out overlap)")
    return train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/punct-corpus-cache"),
                        help="where the .debs are downloaded and unpacked (default: %(default)s)")
    parser.add_argument("--out-dir", type=Path, default=DATA, help="where the files go (default: models/data)")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the held-out pick (default: %(default)s)")
    args = parser.parse_args()
    log("reading nb_train.tsv.gz")
    nb_train = nb_train_sentences()
    log("reading the handbook")
    handbook = handbook_sentences(args.cache)
    log("reading the debconf templates")
    debconf = debconf_sentences(args.cache)
    base = dedup(handbook + debconf + nb_train, cap=MAX_PER_OPENING)  # the held-out pool is deduped against it
    taken = {key(s) for _, s in read_rows(DATA / "nb_train.tsv.gz")} | {key(s) for _, s in base}
    log("reading the games' catalogs")
    pool = dedup(game_sentences(args.cache) + edu_sentences(args.cache), taken=taken)
    heldout = pick_heldout(pool, args.seed)
    train = training_rows(args.cache, base, pool)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_tsv(train, args.out_dir / "punct_train.tsv.gz")
    write_tsv(heldout, args.out_dir / "punct_heldout.tsv")
    pool_path = args.out_dir / "punct_heldout_pool.tsv.gz"
    write_tsv(pool, pool_path)
    if pool_path.stat().st_size > 500_000:
        pool_path.unlink()
        log(f"removed {pool_path}: over 500 kB")
    report("punct_train.tsv.gz", train)
    report("punct_heldout_pool.tsv.gz", pool)
    report("punct_heldout.tsv", heldout)


if __name__ == "__main__":
    main()
