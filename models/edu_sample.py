"""Sentences from the Debian Edu documentation (Bokmål), texts kept out of training for independent evaluation.

Two sources, neither ever read by build_corpus.py:

* ``manual``: the bookworm manual of `debian-edu-doc-nb-no`;
* ``itil``: the ITIL, Rosegarden and Audacity manuals of `debian-edu-doc-legacy-nb-no` (IT service
  management and music software: another subject). benchmarks/fidelity.py keeps it as its held-out text,
  read only to check what was built on the others.

Downloads the package with apt-get (no install), takes the paragraphs of its manuals, applies
build_corpus.py's own sentence filters, drops sentences whose label occurs in the training text, and
writes a seeded random sample, one sentence per line, for `evaluate.py --text`:

    python models/edu_sample.py --out /tmp/edu.txt
    python models/edu_sample.py --source itil --out /tmp/itil.txt
    python models/evaluate.py --model models/tiny-nb --text /tmp/edu.txt
"""

from __future__ import annotations

import argparse
import html
import random
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_corpus  # noqa: E402
import synth  # noqa: E402

SOURCES = {  # name → (Debian package, its manuals)
    "manual": ("debian-edu-doc-nb-no", ("debian-edu-bookworm-manual.html",)),
    "itil": ("debian-edu-doc-legacy-nb-no", ("debian-edu-itil-manual.html", "rosegarden-manual.html",
                                             "audacity-manual.html")),
}


def manual_html(cache: Path, source: str = "manual") -> str:
    """The source's manuals' HTML, downloading and unpacking its package into `cache` once."""
    package, manuals = SOURCES[source]
    unpacked = cache / package
    paths = [unpacked / "usr/share/doc" / package / name for name in manuals]
    if not all(path.exists() for path in paths):
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", package], cwd=cache, check=True)
        deb = max(cache.glob(f"{package}_*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), str(unpacked)], check=True)
    return "\n".join(path.read_text(encoding="utf-8") for path in paths)


def sample_sentences(page: str, count: int, seed: int) -> list[str]:
    """`count` distinct sentences of the manual's paragraphs that are not in the training text."""
    paragraphs = [html.unescape(re.sub(r"<[^>]+>", " ", p))
                  for p in re.findall(r"<p[^>]*>(.*?)</p>", page, flags=re.S)]
    training = {label for _, _, label in synth.load_corpus("nb_train")}
    chosen, seen = [], set()
    for spoken, label in build_corpus.sentences_from_strings(paragraphs, build_corpus.SentenceLimits()):
        if label not in training and label not in seen:
            seen.add(label)
            chosen.append(spoken)
    random.Random(seed).shuffle(chosen)
    return chosen[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="text file to write, one sentence per line")
    parser.add_argument("--source", choices=sorted(SOURCES), default="manual",
                        help="which documentation (default: %(default)s)")
    parser.add_argument("--sample", type=int, default=200, help="how many sentences (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the sample (default: %(default)s)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/debian-edu-doc-cache"),
                        help="download/unpack directory (default: %(default)s)")
    args = parser.parse_args()
    sentences = sample_sentences(manual_html(args.cache, args.source), args.sample, args.seed)
    args.out.write_text("".join(s + "\n" for s in sentences), encoding="utf-8")
    print(f"wrote {len(sentences)} sentences to {args.out}")


if __name__ == "__main__":
    main()
