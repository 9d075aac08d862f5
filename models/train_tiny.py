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
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synth  # noqa: E402


@dataclass(frozen=True)
class ModelSize:
    conv_dim: int = 32
    hidden_size: int = 192
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 768
    pos_conv_kernel: int = 16


@dataclass(frozen=True)
class VoiceMix:
    """How training voices are drawn; evaluation uses synth.Voice() (plain nb)."""
    default_voice_probability: float = 0.5
    variants: tuple[str, ...] = ("m1", "m2", "m3", "m4", "m5", "m6", "m7",
                                 "f1", "f2", "f3", "f4", "f5")
    default_speed_probability: float = 0.5
    speed_wpm: tuple[int, int] = (140, 215)
    default_pitch_probability: float = 0.5
    pitch: tuple[int, int] = (30, 70)
    normalized_text_probability: float = 0.3  # speak the label instead of the raw text

    def draw(self, rng: np.random.Generator) -> synth.Voice:
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
    reserve_for_final_s: float = 60.0
    curriculum_fraction: float = 0.15  # easy (plain voice, clean) share falls 1 -> 0 over this
    easy_sentences: int = 3000         # the shortest sentences, used for the easy share
    max_steps: int = 0               # 0: until the time budget is spent
    model: ModelSize = field(default_factory=ModelSize)
    voices: VoiceMix = field(default_factory=VoiceMix)


# ------------------------------------------------------------------ data

EASY_AUGMENTATION = synth.Augmentation(gain_db=(-6.0, 0.0), noise_probability=0.0)


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
            audio = synth.augment(synth.synthesize(text, self.settings.voices.draw(rng)), rng)
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
    n_samples = max(len(a) for a, _ in utts)
    n_labels = max(len(ids) for _, ids in utts)
    x = torch.zeros(len(utts), n_samples)
    mask = torch.zeros(len(utts), n_samples, dtype=torch.long)
    labels = torch.full((len(utts), n_labels), -100, dtype=torch.long)
    for i, (audio, ids) in enumerate(utts):
        x[i, :len(audio)] = torch.from_numpy(audio)
        mask[i, :len(audio)] = 1
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
        conv_dim=(size.conv_dim,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_bias=True,
        feat_extract_norm="layer", do_stable_layer_norm=True, feat_extract_activation="gelu",
        num_conv_pos_embeddings=size.pos_conv_kernel, num_conv_pos_embedding_groups=16,
        ctc_loss_reduction="mean", ctc_zero_infinity=True,
        layerdrop=0.0, mask_time_prob=0.05, mask_time_length=5,
        hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
        feat_proj_dropout=0.0, final_dropout=0.0)
    return Wav2Vec2ForCTC(config)


def save_processor(out_dir: Path) -> None:
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    vocab_path = out_dir / "vocab.json"
    vocab_path.write_text(json.dumps(synth.VOCAB, ensure_ascii=False), encoding="utf-8")
    tokenizer = Wav2Vec2CTCTokenizer(str(vocab_path), unk_token="[UNK]", pad_token="[PAD]",
                                     word_delimiter_token="|", bos_token=None, eos_token=None)
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=synth.SAMPLE_RATE_HZ,
                                         padding_value=0.0, do_normalize=True,
                                         return_attention_mask=True)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(str(out_dir))
    # Also the per-component files that older transformers versions look for.
    extractor.save_pretrained(str(out_dir))     # preprocessor_config.json
    tokenizer.save_pretrained(str(out_dir))
    special = {"unk_token": "[UNK]", "pad_token": "[PAD]"}
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n", encoding="utf-8")
    saved = json.loads(vocab_path.read_text(encoding="utf-8"))
    assert saved == synth.VOCAB, f"vocab.json changed on save: {saved}"


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


def train(args: argparse.Namespace) -> dict:
    start_s = time.monotonic()
    settings = TrainSettings(minutes=args.minutes, seed=args.seed, peak_lr=args.peak_lr,
                             max_steps=args.max_steps, batch_audio_s=args.batch_audio_s,
                             curriculum_fraction=args.curriculum_fraction,
                             model=ModelSize(conv_dim=args.conv_dim, hidden_size=args.hidden_size,
                                             num_layers=args.layers,
                                             intermediate_size=4 * args.hidden_size))
    torch.set_num_threads(args.threads)
    torch.manual_seed(settings.seed)
    random.seed(settings.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / "training_log.jsonl")
    log.write({"settings": asdict(settings), "argv": sys.argv})

    train_rows = [(spoken, label) for _, spoken, label in synth.load_corpus("nb_train")]
    heldout = synth.heldout_sentences()
    held_labels = {label for _, label in heldout}
    assert not held_labels & {label for _, label in train_rows}, "held-out text leaked into training"
    print(f"training sentences: {len(train_rows)}, held-out sentences: {len(heldout)}", flush=True)

    model = build_model(settings.model)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model parameters: {n_params:,}", flush=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.peak_lr, betas=(0.9, 0.98),
                                  weight_decay=settings.weight_decay)
    stream = SynthStream(train_rows, settings)
    loader = torch.utils.data.DataLoader(stream, batch_size=None,
                                         num_workers=1, prefetch_factor=6,
                                         worker_init_fn=_worker_init, persistent_workers=True)
    budget_s = settings.minutes * 60
    train_end_s = budget_s - settings.reserve_for_final_s
    train_start_s = time.monotonic() - start_s
    next_eval_s = train_start_s + settings.eval_every_min * 60
    step, audio_s, loss_sum, loss_n = 0, 0.0, 0.0, 0
    model.train()
    for x, mask, labels in loader:
        elapsed_s = time.monotonic() - start_s
        if elapsed_s >= train_end_s or (settings.max_steps and step >= settings.max_steps):
            break
        fraction = (elapsed_s - train_start_s) / (train_end_s - train_start_s)
        if settings.max_steps:
            fraction = step / settings.max_steps
        stream.progress.value = fraction
        for group in optimizer.param_groups:
            group["lr"] = lr_at(fraction, settings)
        loss = model(x, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        audio_s += float(mask.sum()) / synth.SAMPLE_RATE_HZ
        loss_sum, loss_n = loss_sum + loss.item(), loss_n + 1
        if step % settings.log_every_steps == 0:
            record = {"step": step, "elapsed_s": round(elapsed_s, 1), "loss": round(loss_sum / loss_n, 4),
                      "lr": round(optimizer.param_groups[0]["lr"], 6), "audio_h": round(audio_s / 3600, 3)}
            log.write(record)
            print(json.dumps(record), flush=True)
            loss_sum, loss_n = 0.0, 0
        if elapsed_s >= next_eval_s:
            rates, _ = synth.evaluate_model(model, heldout[:settings.eval_sentences_periodic])
            record = {"step": step, "elapsed_s": round(time.monotonic() - start_s, 1),
                      "heldout_cer": round(rates["cer"], 4), "heldout_wer": round(rates["wer"], 4),
                      "n_sentences": rates["n_sentences"]}
            log.write(record)
            print(json.dumps(record), flush=True)
            next_eval_s = time.monotonic() - start_s + settings.eval_every_min * 60
            model.train()

    model.eval()
    model.save_pretrained(str(out), safe_serialization=True)
    save_processor(out)
    rates, pairs = synth.evaluate_model(model, heldout)
    total_s = time.monotonic() - start_s
    summary = {"final": True, "steps": step, "audio_hours_seen": round(audio_s / 3600, 2),
               "parameters": n_params, "wall_s": round(total_s, 1),
               "heldout_cer": round(rates["cer"], 4), "heldout_wer": round(rates["wer"], 4),
               "heldout_sentences": rates["n_sentences"], "training_sentences": len(train_rows)}
    log.write(summary)
    (out / "heldout_errors.txt").write_text(
        "".join(f"REF: {r}\nHYP: {h}\n\n" for r, h in pairs if r != h), encoding="utf-8")
    print(json.dumps(summary), flush=True)
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
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads of the trainer; the synthesis worker is a second process "
                        "(default: %(default)s, faster than 2 on a shared 2-core machine)")
    p.add_argument("--conv-dim", type=int, default=m.conv_dim, help="channels of every conv layer (default: %(default)s)")
    p.add_argument("--hidden-size", type=int, default=m.hidden_size, help="transformer width (default: %(default)s)")
    p.add_argument("--layers", type=int, default=m.num_layers, help="transformer layers (default: %(default)s)")
    return p.parse_args(argv)


if __name__ == "__main__":
    train(parse_args())
