"""Train the Bokmål punctuation model (streamer.text.punctuator) and export it to ONNX.

A one-way LSTM over hashed letter n-grams of each lowercase word; after each word it predicts the mark
after the word 0 .. 5 words back (none , . ?), one head per look-ahead, so a caption's marks never change as
words come; and a backward LSTM that reads a whole sentence and says whether it is a question. Training
sequences are one to four sentences run together, as captions are: most end with <end> (a pause), some are
cut inside a sentence at either side (a caption cut in running speech). The sentences are the corpus, the
same sentences as tiny-nb heard them (punct_asr_text.py), statements turned into questions ("vi har sett
det" → "har vi sett det?", "hvorfor har vi sett det?": the corpus has few) and a share opened with "men",
"og" or "så"; fragments of catalogs are text cut at both ends.

    python models/build_punct_corpus.py            # models/data/punct_train.tsv.gz, once
    python models/punct_asr_text.py                # models/data/punct_asr.tsv.gz, once (about 5 minutes)
    python models/train_punct.py                   # about 10 minutes on 2 cores → streamer/data/punct_nb.onnx

It prints each epoch's loss and the dev split's F1 per mark at look-ahead 0, 1, 2 and 5, keeps the best
epoch, tunes the mark weights and the question threshold on the dev split (punct_calibrate.py; stored in
the model), and writes the history beside it (models/out/punct_train.json). The dev split is 3% of the corpus: the held-out
evaluation (benchmarks/punctuation.py) uses sources never trained on.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "models"))
import synth  # noqa: E402
from punct_calibrate import calibrate  # noqa: E402
from punct_eval import scores, words_and_marks  # noqa: E402

from streamer.text.punctuation import FINITE_VERBS  # noqa: E402
from streamer.text.punctuator import BUCKETS, END, MARKS, MAX_DELAY, MODEL_PATH, word_features  # noqa: E402
from streamer.text.written import TextSettings  # noqa: E402

CORPUS = ROOT / "models" / "data" / "punct_train.tsv.gz"
ASR = ROOT / "models" / "data" / "punct_asr.tsv.gz"  # models/punct_asr_text.py
REPORT = ROOT / "models" / "out" / "punct_train.json"
IGNORE = -100
PRONOUNS = frozenset("jeg du vi de dere han hun det den man dette".split())
ASKING = ("hvorfor", "når", "hvordan")  # a question word that fits before any inverted statement
QUESTION = MARKS.index("?")
JOINING = ("men", "og", "så")


class PunctuationModel(nn.Module):
    def __init__(self, dim: int, hidden: int, layers: int, question_hidden: int = 128):
        super().__init__()
        self.embedding = nn.Embedding(BUCKETS, dim, padding_idx=0)
        self.dropout = nn.Dropout(0.2)
        self.lstm = nn.LSTM(dim, hidden, num_layers=layers, batch_first=True, dropout=0.2 if layers > 1 else 0.0)
        self.head = nn.Linear(hidden, (MAX_DELAY + 1) * len(MARKS))
        self.backward_lstm = nn.LSTM(dim, question_hidden, batch_first=True)
        self.question_head = nn.Linear(question_hidden, 2)

    def words(self, features: torch.Tensor) -> torch.Tensor:
        present = (features > 0).float().unsqueeze(-1)
        return self.dropout((self.embedding(features) * present).sum(2) / present.sum(2).clamp(min=1.0))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features [B, T, N] → logits [B, T, delays, marks]."""
        hidden, _ = self.lstm(self.words(features))
        logits = self.head(hidden)
        return logits.view(*logits.shape[:2], MAX_DELAY + 1, len(MARKS))

    def question(self, features: torch.Tensor) -> torch.Tensor:
        """One sentence's words (no padding) read from the last to the first → logits [B, statement/question]."""
        _, (state, _) = self.backward_lstm(torch.flip(self.words(features), [1]))
        return self.question_head(state[-1])


class Exported(nn.Module):
    """The shipped graph: the marks' probabilities, and whether the words are one question."""

    def __init__(self, model: PunctuationModel):
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.softmax(self.model(features), dim=-1), torch.softmax(self.model.question(features), dim=-1)


def read_corpus(path: Path) -> tuple[list, list]:
    """Sentences and fragments (text cut at both ends: "fragment:" sources): each one's words and the
    index of the mark after each word."""
    sentences, fragments = [], []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            source, _, text = line.rstrip("\n").rpartition("\t")
            words, marks = words_and_marks(synth.spell_numbers(text) or text)  # numbers as they are spoken
            if len(words) >= 2:
                item = (["tall" if any(c.isdigit() for c in w) else w for w in words], [MARKS.index(m) for m in marks])
                (fragments if source.startswith("fragment:") else sentences).append(item)
    return sentences, fragments


def read_asr(path: Path, dev) -> list:
    """The recognized sentences of punct_asr_text.py, but for those of the dev split's sentences."""
    if not path.is_file():
        return []
    held = {tuple(words) for words, _ in dev}
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            _, sentence, text = line.rstrip("\n").split("\t")
            words, marks = words_and_marks(text)
            if len(words) >= 2 and tuple(words_and_marks(sentence)[0]) not in held and marks[-1] in (".", "?"):
                out.append((words, [MARKS.index(m) for m in marks]))
    return out


def inverted(words: list[str], marks: list[int], rng: random.Random) -> tuple[list[str], list[int]] | None:
    """A statement that opens with a subject and its finite verb as a question: "vi har sett det." → "har vi
    sett det?" or "hvorfor har vi sett det?" (the corpus has few questions, and most are "Er du sikker ...")."""
    subject_first = words[0] in PRONOUNS or (words[0].endswith(("en", "et", "ene")) and len(words[0]) > 4)
    if len(words) < 4 or not subject_first or words[1] not in FINITE_VERBS or marks[-1] != MARKS.index(".") \
            or any(marks[:2]):
        return None
    asked = [words[1], words[0], *words[2:]]
    if rng.random() < 0.5:
        asked = [rng.choice(ASKING)] + asked
    return asked, [0] * (len(asked) - len(marks)) + marks[:-1] + [QUESTION]


def augmented(corpus, rng: random.Random, share: float) -> list:
    """The corpus and, for a share of the statements that can be turned round, their question; and a share of
    the questions (and fewer statements) opening with "men", "og" or "så", as in dialogue ("Men kan du ...?")."""
    extra = [q for words, marks in corpus if rng.random() < share and (q := inverted(words, marks, rng))]
    joined = [([rng.choice(JOINING)] + words, [0] + marks) for words, marks in corpus + extra
              if rng.random() < (0.3 if marks[-1] == QUESTION else 0.05)]
    return corpus + extra + joined


def sequence(sentences, rng: random.Random) -> tuple[list[str], list[int]]:
    """One to four sentences as one caption: cut inside the first or last one now and then."""
    words, labels = [], []
    for sentence_words, marks in sentences:
        words += sentence_words
        labels += marks
    if rng.random() < 0.2:  # a caption that begins inside a sentence
        cut = rng.randrange(len(sentences[0][0]))
        words, labels = words[cut:], labels[cut:]
    if rng.random() < 0.3 and len(words) > 2:  # one that ends inside one: no <end>, the last marks unknown
        cut = rng.randrange(max(1, len(words) - len(sentences[-1][0])), len(words))
        return words[:cut], labels[:cut]
    return words + [END], labels + [IGNORE]


def sequences(corpus, fragments, rng: random.Random) -> list[tuple[list[str], list[int]]]:
    order = list(range(len(corpus)))
    rng.shuffle(order)
    out, i = [], 0
    while i < len(order):
        n = rng.choice((1, 1, 2, 3, 4))
        out.append(sequence([corpus[k] for k in order[i : i + n]], rng))
        i += n
    return out + [(list(words), list(marks)) for words, marks in fragments]  # no <end>: cut text


def batch(items, cache: dict[str, list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    rows = [[cache[w] if w in cache else cache.setdefault(w, word_features(w)) for w in words] for words, _ in items]
    steps = max(len(r) for r in rows)
    width = max(len(f) for r in rows for f in r)
    feats = np.zeros((len(rows), steps, width), dtype=np.int64)
    labels = np.full((len(rows), steps), IGNORE, dtype=np.int64)
    for b, (row, (_, marks)) in enumerate(zip(rows, items)):
        for t, f in enumerate(row):
            feats[b, t, : len(f)] = f
        labels[b, : len(marks)] = marks
    return torch.from_numpy(feats), torch.from_numpy(labels)


def delayed_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Head d at step t is scored on the mark after word t - d."""
    loss = torch.zeros(())
    for d in range(MAX_DELAY + 1):
        steps = logits.shape[1] - d
        if steps > 0:
            loss = loss + nn.functional.cross_entropy(logits[:, d:, d].reshape(-1, len(MARKS)),
                                                      labels[:, :steps].reshape(-1), weight=weights,
                                                      ignore_index=IGNORE)
    return loss / (MAX_DELAY + 1)


def question_batches(corpus, size: int, rng: random.Random) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Whole sentences ending in "." or "?", batched by length (the backward read sees no padding)."""
    by_length: dict[int, list] = {}
    for words, marks in corpus:
        if marks[-1] in (MARKS.index("."), QUESTION):
            by_length.setdefault(len(words), []).append((words, [int(marks[-1] == QUESTION)] * len(words)))
    out = []
    for items in by_length.values():
        rng.shuffle(items)
        for i in range(0, len(items), size):
            feats, labels = batch(items[i : i + size], {})
            out.append((feats, labels[:, 0]))
    rng.shuffle(out)
    return out


def evaluate(model, dev, cache, delays=(0, 1, 2, 5)) -> dict:
    """Dev F1 per mark at each look-ahead, on whole sentences ending in <end>, as the stream sees them."""
    model.eval()
    out = {}
    with torch.no_grad():
        probs = []
        for start in range(0, len(dev), 256):
            items = [(w + [END], m + [IGNORE]) for w, m in dev[start : start + 256]]
            feats, _ = batch(items, cache)
            probs += [p for p in torch.softmax(model(feats), -1).numpy()]
        asked = [model.question(batch([(w, m)], cache)[0])[0].argmax().item() == 1 for w, m in dev]
        for k in delays:
            refs, preds = [], []
            for (words, marks), p, question in zip(dev, probs, asked):
                last = len(words)
                pred = [int(np.argmax(p[i + k, k] if i + k <= last else p[last, last - i])) for i in range(len(words))]
                pred[-1] = QUESTION if question else MARKS.index(".")
                refs.append([MARKS[m] for m in marks])
                preds.append([MARKS[m] for m in pred])
            out[f"look_ahead_{k}"] = scores(refs, preds)
    model.train()
    return out


def export(model: PunctuationModel, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    example = torch.ones((1, 7, 5), dtype=torch.int64)
    torch.onnx.export(Exported(model), (example,), str(path), input_names=["features"],
                      output_names=["probabilities", "question"],
                      dynamic_axes={"features": {1: "words", 2: "grams"}, "probabilities": {1: "words"}},
                      opset_version=17, dynamo=False)


def step(model, optimizer, loss: torch.Tensor) -> float:
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss.item()


def epoch(model, optimizer, train_set, fragments, cache, args, rng: random.Random) -> float:
    """One pass over the marks (captions of sentences, and fragments) and one over the question head
    (single sentences); the mean loss of the marks."""
    weights = torch.tensor([1.0, args.comma_weight, 1.0, args.question_weight])
    items = sequences(train_set, fragments, rng)
    items.sort(key=lambda item: len(item[0]) + rng.random() * 8)  # batches of like length
    batches = [items[i : i + args.batch] for i in range(0, len(items), args.batch)]
    rng.shuffle(batches)
    total = 0.0
    for group in batches:
        feats, labels = batch(group, cache)
        total += step(model, optimizer, delayed_loss(model(feats), labels, weights))
    for feats, labels in question_batches(train_set, args.batch, rng):
        step(model, optimizer, nn.functional.cross_entropy(model.question(feats), labels))
    for group in optimizer.param_groups:
        group["lr"] *= args.lr_decay
    return total / len(batches)


def split(args, rng: random.Random) -> tuple[list, list, list]:
    """The dev split (3% of the sentences, the same for a seed), the training sentences and the fragments."""
    corpus, fragments = read_corpus(args.corpus)
    rng.shuffle(corpus)
    n_dev = max(200, len(corpus) * 3 // 100)
    return corpus[:n_dev], corpus[n_dev:], fragments


def train(args) -> dict:
    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    dev, sentences, fragments = split(args, rng)
    asr = read_asr(args.asr, dev)
    train_set = augmented(sentences, rng, args.invert_share) + asr
    print(f"{len(train_set)} training sentences ({len(asr)} as tiny-nb heard them), "
          f"{len(fragments)} fragments, {len(dev)} dev", file=sys.stderr)
    model = PunctuationModel(args.dim, args.hidden, args.layers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    cache: dict[str, list[int]] = {}
    started, history, best = time.monotonic(), [], None
    for number in range(1, args.epochs + 1):
        loss = epoch(model, optimizer, train_set, fragments, cache, args, rng)
        dev_scores = evaluate(model, dev, cache)
        f1 = {k: {m: round(v[m]["f1"], 3) for m in (",", ".", "?")} for k, v in dev_scores.items()}
        history.append({"epoch": number, "loss": loss, "dev_f1": f1})
        if best is None or sum(f1["look_ahead_1"].values()) > best[0]:
            best = (sum(f1["look_ahead_1"].values()), number, copy.deepcopy(model.state_dict()), dev_scores)
        print(f"epoch {number}: loss {loss:.4f}, {time.monotonic() - started:.0f} s, dev F1 {f1}", file=sys.stderr)
        if time.monotonic() - started > args.minutes * 60:
            print(f"stopping: {args.minutes} minutes", file=sys.stderr)
            break
    print(f"keeping epoch {best[1]}, the best on the dev split", file=sys.stderr)
    model.load_state_dict(best[2])
    export(model, args.out)
    calibration = calibrate(args.out, dev, TextSettings().look_ahead_words)
    return {"calibration": calibration, "sentences": len(train_set), "dev": len(dev), "history": history, "best_epoch": best[1], "final": best[3],
            "settings": {k: str(v) for k, v in vars(args).items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="source<TAB>sentence, gzipped")
    parser.add_argument("--asr", type=Path, default=ASR, help="recognized sentences (models/punct_asr_text.py)")
    parser.add_argument("--out", type=Path, default=MODEL_PATH, help="the ONNX model to write")
    parser.add_argument("--report", type=Path, default=REPORT, help="training history and dev scores (JSON)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--minutes", type=float, default=50, help="stop after the epoch that passes this")
    parser.add_argument("--dim", type=int, default=64, help="feature embedding size")
    parser.add_argument("--hidden", type=int, default=192, help="LSTM size")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--lr-decay", type=float, default=0.85, help="per epoch")
    parser.add_argument("--comma-weight", type=float, default=1.5, help="loss weight of a comma")
    parser.add_argument("--question-weight", type=float, default=1.5, help="loss weight of a question mark")
    parser.add_argument("--invert-share", type=float, default=0.5,
                        help="share of the statements that open with subject and verb also trained as a question")
    parser.add_argument("--calibrate-only", action="store_true",
                        help="only tune the mark weights and question threshold of the model at --out again")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not args.corpus.is_file():
        parser.error(f"no corpus at {args.corpus}: build it with models/build_punct_corpus.py")
    if args.calibrate_only:
        dev, _, _ = split(args, random.Random(args.seed))
        report = json.loads(args.report.read_text()) if args.report.is_file() else {}
        report["calibration"] = calibrate(args.out, dev, TextSettings().look_ahead_words)
    else:
        report = train(args)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) and {args.report}", file=sys.stderr)


if __name__ == "__main__":
    main()
