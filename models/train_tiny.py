"""Train a tiny Norwegian Bokmål wav2vec2 CTC model on espeak-ng speech, from scratch.

One command regenerates the data and retrains within a wall-clock budget:

    python models/train_tiny.py --out models/tiny-nb

Text comes from models/data/nb_train.tsv.gz (built by build_corpus.py). Speech
is synthesized on the fly by a DataLoader worker process (espeak-ng with random
voice variant, speed and pitch, then silence padding, level change and noise),
so every utterance the model sees is fresh. Training stops when the time budget
is spent; the learning rate follows warmup + cosine over the elapsed fraction of
the budget. The result is a Hugging Face model directory with the vocabulary and
processor files of NbAiLab/XLSR-300M-bokmaal, evaluated on held-out text (Django's
nb catalogs, never used for training) spoken by the default `nb` voice.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Idle OpenMP threads must sleep, not spin: the trainer's two threads share the two
# cores with the synthesis worker, and spinning threads starve it (measured: 2 threads
# with spinning ran no faster than 1; with PASSIVE, 20% faster). Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synth  # noqa: E402
from hf_format import save_processor_files  # noqa: E402


@dataclass(frozen=True)
class ModelSize:
    conv_dim: int = 32
    hidden_size: int = 192
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 768
    pos_conv_kernel: int = 16
    # Four conv layers (total stride 320 = 20 ms frames, like XLS-R) instead of XLS-R's
    # seven: the narrow, high-rate early layers cost far more time than their arithmetic
    conv_kernel: tuple[int, ...] = (20, 8, 8, 4)
    conv_stride: tuple[int, ...] = (10, 4, 4, 2)
    feature_activation: str = "relu"  # of the conv layers; cheaper backward than gelu


@dataclass(frozen=True)
class VoiceMix:
    """How training voices are drawn; evaluation uses synth.Voice() (plain nb).

    A `plain_probability` share is espeak's own default (nb, 175 wpm, pitch 50), the
    voice most users and tests synthesize with; the rest draws voice, speed and pitch
    independently (which gives the plain voice again now and then).
    """
    plain_probability: float = 0.35
    default_voice_probability: float = 0.5
    variants: tuple[str, ...] = ("m1", "m2", "m3", "m4", "m5", "m6", "m7",
                                 "f1", "f2", "f3", "f4", "f5")
    default_speed_probability: float = 0.5
    speed_wpm: tuple[int, int] = (140, 215)
    default_pitch_probability: float = 0.5
    pitch: tuple[int, int] = (30, 70)
    normalized_text_probability: float = 0.3  # speak the label instead of the raw text

    def draw(self, rng: np.random.Generator) -> synth.Voice:
        if rng.random() < self.plain_probability:
            return synth.Voice()
        name = "nb"
        if rng.random() >= self.default_voice_probability:
            name = "nb+" + self.variants[rng.integers(len(self.variants))]
        speed = 175 if rng.random() < self.default_speed_probability else int(rng.integers(*self.speed_wpm))
        pitch = 50 if rng.random() < self.default_pitch_probability else int(rng.integers(*self.pitch))
        return synth.Voice(name, speed, pitch)


@dataclass(frozen=True)
class TrainSettings:
    minutes: float = 42.0            # whole run: setup, training, final evaluation, saving
    seed: int = 1234
    peak_lr: float = 2e-3
    warmup_fraction: float = 0.05
    final_lr_fraction: float = 0.02
    weight_decay: float = 0.01
    batch_audio_s: float = 40.0      # padded audio per batch, reached after the ramp
    first_batch_audio_s: float = 12.0  # small batches (more updates) at the start
    batch_ramp_fraction: float = 0.3
    pool_utterances: int = 96        # synthesized together, then batched by length
    log_every_steps: int = 25
    eval_every_min: float = 6.0
    eval_sentences_periodic: int = 100
    reserve_for_final_s: float = 60.0  # final held-out evaluation and saving
    curriculum_fraction: float = 0.15  # easy (plain voice, clean) share falls 1 -> 0 over this
    easy_sentences: int = 3000         # the shortest sentences, used for the easy share
    max_steps: int = 0               # 0: until the time budget is spent
    model: ModelSize = field(default_factory=ModelSize)
    voices: VoiceMix = field(default_factory=VoiceMix)


# ------------------------------------------------------------------ data

EASY_AUGMENTATION = synth.Augmentation(gain_db=(-6.0, 0.0), noise_probability=0.0)
TRAIN_AUGMENTATION = synth.Augmentation(noise_probability=0.4)


class SynthStream(torch.utils.data.IterableDataset):
    """Endless length-bucketed batches of freshly synthesized utterances."""

    def __init__(self, labels_and_texts: list[tuple[str, str]], settings: TrainSettings):
        self.rows = labels_and_texts
        self.settings = settings
        by_length = sorted(labels_and_texts, key=lambda r: (len(r[1]), r[1]))
        self.easy_rows = by_length[:settings.easy_sentences]
        self.progress = multiprocessing.Value("d", 0.0)  # training fraction, set by the trainer

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker = info.id if info else 0
        rng = np.random.default_rng(self.settings.seed * 1000 + worker)
        while True:
            yield from self._pool_batches(rng)

    def _utterance(self, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
        easy = rng.random() < self.easy_probability()
        rows = self.easy_rows if easy else self.rows
        spoken, label = rows[rng.integers(len(rows))]
        text = label if rng.random() < self.settings.voices.normalized_text_probability else spoken
        if easy:  # short sentence, plain voice, no noise
            audio = synth.augment(synth.synthesize(text), rng, EASY_AUGMENTATION)
        else:
            audio = synth.augment(synth.synthesize(text, self.settings.voices.draw(rng)), rng,
                                  TRAIN_AUGMENTATION)
        return synth.normalize_audio(audio), synth.label_to_ids(label)

    def easy_probability(self) -> float:
        """Curriculum: all easy utterances at the start, none after the ramp."""
        ramp = self.settings.curriculum_fraction
        return max(0.0, 1.0 - self.progress.value / ramp) if ramp > 0 else 0.0

    def _pool_batches(self, rng: np.random.Generator):
        pool = sorted((self._utterance(rng) for _ in range(self.settings.pool_utterances)),
                      key=lambda u: len(u[0]))
        s = self.settings
        ramp = min(1.0, self.progress.value / s.batch_ramp_fraction) if s.batch_ramp_fraction > 0 else 1.0
        batch_s = s.first_batch_audio_s + (s.batch_audio_s - s.first_batch_audio_s) * ramp
        max_samples = int(batch_s * synth.SAMPLE_RATE_HZ)
        batches, current = [], []
        for utt in pool:
            if current and len(utt[0]) * (len(current) + 1) > max_samples:
                batches.append(current)
                current = []
            current.append(utt)
        batches.append(current)
        for i in rng.permutation(len(batches)):
            yield collate(batches[i])


def collate(utts: list[tuple[np.ndarray, list[int]]]):
    x, mask = synth.pad_batch([audio for audio, _ in utts])
    labels = torch.full((len(utts), max(len(ids) for _, ids in utts)), -100, dtype=torch.long)
    for i, (_, ids) in enumerate(utts):
        labels[i, :len(ids)] = torch.tensor(ids)
    return x, mask, labels


def _worker_init(_worker_id: int) -> None:
    torch.set_num_threads(1)


# ----------------------------------------------------------------- model

def build_model(size: ModelSize):
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    config = Wav2Vec2Config(
        vocab_size=len(synth.VOCAB), pad_token_id=synth.BLANK_ID, bos_token_id=1, eos_token_id=2,
        hidden_size=size.hidden_size, num_hidden_layers=size.num_layers,
        num_attention_heads=size.num_heads, intermediate_size=size.intermediate_size,
        conv_dim=(size.conv_dim,) * len(size.conv_kernel), conv_stride=size.conv_stride,
        conv_kernel=size.conv_kernel, num_feat_extract_layers=len(size.conv_kernel), conv_bias=True,
        feat_extract_norm="layer", do_stable_layer_norm=True,
        feat_extract_activation=size.feature_activation,
        num_conv_pos_embeddings=size.pos_conv_kernel, num_conv_pos_embedding_groups=16,
        ctc_loss_reduction="mean", ctc_zero_infinity=True,
        layerdrop=0.0, mask_time_prob=0.05, mask_time_length=5,
        hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
        feat_proj_dropout=0.0, final_dropout=0.0)
    return Wav2Vec2ForCTC(config)


def lr_at(fraction: float, s: TrainSettings) -> float:
    """Linear warmup, then cosine decay to final_lr_fraction, by budget fraction."""
    if fraction < s.warmup_fraction:
        return s.peak_lr * max(fraction / s.warmup_fraction, 0.01)
    progress = min(1.0, (fraction - s.warmup_fraction) / (1 - s.warmup_fraction))
    floor = s.final_lr_fraction
    return s.peak_lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


# ------------------------------------------------------------- training

class Log:
    def __init__(self, path: Path):
        self.file = path.open("w", encoding="utf-8")

    def write(self, record: dict) -> None:
        self.file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.file.flush()


def settings_from_args(args: argparse.Namespace) -> TrainSettings:
    return TrainSettings(minutes=args.minutes, seed=args.seed, peak_lr=args.peak_lr,
                         max_steps=args.max_steps, batch_audio_s=args.batch_audio_s,
                         curriculum_fraction=args.curriculum_fraction,
                         model=ModelSize(conv_dim=args.conv_dim, hidden_size=args.hidden_size,
                                         num_layers=args.layers, intermediate_size=4 * args.hidden_size))


def split_text() -> tuple[list, list]:
    """(training, held-out) (spoken, label) rows; no held-out label may occur in training."""
    train_rows = [(spoken, label) for _, spoken, label in synth.load_corpus("nb_train")]
    heldout = synth.heldout_sentences()
    assert not {label for _, label in heldout} & {label for _, label in train_rows}, \
        "held-out text leaked into training"
    return train_rows, heldout


class Trainer:
    """The optimization loop, keyed to a wall-clock budget (or a step count)."""

    def __init__(self, model, settings: TrainSettings, log: Log, start_s: float):
        self.model, self.settings, self.log, self.start_s = model, settings, log, start_s
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=settings.peak_lr, betas=(0.9, 0.98),
                                           weight_decay=settings.weight_decay)
        self.step, self.audio_s, self.losses = 0, 0.0, []

    def elapsed_s(self) -> float:
        return time.monotonic() - self.start_s

    def run(self, stream: SynthStream, heldout: list[tuple[str, str]]) -> None:
        s = self.settings
        loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=1, prefetch_factor=6,
                                             worker_init_fn=_worker_init, persistent_workers=True)
        train_start_s, train_end_s = self.elapsed_s(), s.minutes * 60 - s.reserve_for_final_s
        next_eval_s = train_start_s + s.eval_every_min * 60
        self.model.train()
        for batch in loader:
            if self.elapsed_s() >= train_end_s or (s.max_steps and self.step >= s.max_steps):
                break
            fraction = (self.step / s.max_steps if s.max_steps
                        else (self.elapsed_s() - train_start_s) / (train_end_s - train_start_s))
            stream.progress.value = fraction
            self.update(batch, lr_at(fraction, s))
            if self.elapsed_s() >= next_eval_s:
                self.evaluate(heldout[:s.eval_sentences_periodic])
                next_eval_s = self.elapsed_s() + s.eval_every_min * 60

    def update(self, batch, lr: float) -> None:
        x, mask, labels = batch
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss = self.model(x, attention_mask=mask, labels=labels).loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.step += 1
        self.audio_s += float(mask.sum()) / synth.SAMPLE_RATE_HZ
        self.losses.append(loss.item())
        if self.step % self.settings.log_every_steps == 0:
            self.write({"step": self.step, "elapsed_s": round(self.elapsed_s(), 1),
                        "loss": round(sum(self.losses) / len(self.losses), 4), "lr": round(lr, 6),
                        "audio_h": round(self.audio_s / 3600, 3)})
            self.losses = []

    def evaluate(self, sentences: list[tuple[str, str]]) -> None:
        rates, _ = synth.evaluate_model(self.model, sentences)
        self.write({"step": self.step, "elapsed_s": round(self.elapsed_s(), 1),
                    "heldout_cer": round(rates["cer"], 4), "heldout_wer": round(rates["wer"], 4),
                    "n_sentences": rates["n_sentences"]})
        self.model.train()

    def write(self, record: dict) -> None:
        self.log.write(record)
        print(json.dumps(record), flush=True)


def train(args: argparse.Namespace) -> dict:
    start_s = time.monotonic()
    settings = settings_from_args(args)
    torch.set_num_threads(args.threads)
    torch.manual_seed(settings.seed)
    random.seed(settings.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / "training_log.jsonl")
    log.write({"settings": asdict(settings), "argv": sys.argv})
    train_rows, heldout = split_text()
    print(f"sentences: training {len(train_rows)}, held-out {len(heldout)}", flush=True)

    model = build_model(settings.model)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model parameters: {n_params:,}", flush=True)
    trainer = Trainer(model, settings, log, start_s)
    trainer.run(SynthStream(train_rows, settings), heldout)

    model.eval()
    model.save_pretrained(str(out), safe_serialization=True)
    save_processor_files(out)
    rates, pairs = synth.evaluate_model(model, heldout)
    summary = {"final": True, "steps": trainer.step, "audio_hours_seen": round(trainer.audio_s / 3600, 2),
               "parameters": n_params, "wall_s": round(trainer.elapsed_s(), 1),
               "heldout_cer": round(rates["cer"], 4), "heldout_wer": round(rates["wer"], 4),
               "heldout_sentences": rates["n_sentences"], "training_sentences": len(train_rows)}
    trainer.write(summary)
    (out / "heldout_errors.txt").write_text(
        "".join(f"REF: {r}\nHYP: {h}\n\n" for r, h in pairs if r != h), encoding="utf-8")
    return summary


def parse_args(argv=None) -> argparse.Namespace:
    d, m = TrainSettings(), ModelSize()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="models/tiny-nb", help="output model directory (default: %(default)s)")
    p.add_argument("--minutes", type=float, default=d.minutes,
                   help="wall-clock budget of the whole run incl. final eval (default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed for data stream and init (default: %(default)s)")
    p.add_argument("--peak-lr", type=float, default=d.peak_lr, help="peak learning rate (default: %(default)s)")
    p.add_argument("--batch-audio-s", type=float, default=d.batch_audio_s,
                   help="padded seconds of audio per batch after the ramp (default: %(default)s)")
    p.add_argument("--curriculum-fraction", type=float, default=d.curriculum_fraction,
                   help="budget fraction over which easy utterances are phased out (default: %(default)s)")
    p.add_argument("--max-steps", type=int, default=0,
                   help="stop after N steps, LR schedule by step (default: 0 = time budget only)")
    p.add_argument("--threads", type=int, default=2,
                   help="torch threads of the trainer; the synthesis worker is a separate process "
                        "(default: %(default)s; idle threads sleep, OMP_WAIT_POLICY=PASSIVE)")
    p.add_argument("--conv-dim", type=int, default=m.conv_dim, help="channels of every conv layer (default: %(default)s)")
    p.add_argument("--hidden-size", type=int, default=m.hidden_size, help="transformer width (default: %(default)s)")
    p.add_argument("--layers", type=int, default=m.num_layers, help="transformer layers (default: %(default)s)")
    return p.parse_args(argv)


if __name__ == "__main__":
    train(parse_args())
