"""Synthetic Norwegian Bokmål speech for training and evaluating tiny CTC models.

Reusable pieces shared by ``train_tiny.py`` and evaluation scripts:

* ``VOCAB`` / ``normalize_label`` / ``spoken_and_label``: text normalization to
  the NbAiLab/XLSR-300M-bokmaal vocabulary (a-z, å, æ, ø, '|' as space).
* ``load_corpus``: the committed sentence lists in ``models/data/``.
* ``synthesize``: espeak-ng speech as float32 mono at 16 kHz.
* ``augment``: silence padding, level change and additive noise.
* ``greedy_decode`` / ``error_rates`` / ``evaluate_model``: CER and WER.

Evaluate a saved model on fresh held-out speech (default nb voice, speed, pitch):

    python models/synth.py --model models/tiny-nb
"""

from __future__ import annotations

import argparse
import gzip
import io
import math
import re
import subprocess
import unicodedata
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:  # imported as models.synth (tests, evaluate.py) or as synth (train_tiny.py)
    from models.hf_format import BLANK_ID, SAMPLE_RATE_HZ, VOCAB
except ModuleNotFoundError:
    from hf_format import BLANK_ID, SAMPLE_RATE_HZ, VOCAB

DATA_DIR = Path(__file__).resolve().parent / "data"
ID_TO_CHAR = {i: c for c, i in VOCAB.items()}

_ACCENT_MAP = str.maketrans("éèêëáàâóòôíìîúùû", "eeeeaaaoooiiiuuu")
_LABEL_OK = re.compile(r"^[a-zåæø]+( [a-zåæø]+)*$")


# ---------------------------------------------------------------- text

def normalize_label(text: str) -> str | None:
    """Lowercase a-z/å/æ/ø words separated by single spaces, or None.

    Dashes and punctuation become word breaks, apostrophes vanish, é→e etc.;
    returns None when digits or foreign letters remain.
    """
    text = unicodedata.normalize("NFC", text).lower().translate(_ACCENT_MAP)
    text = re.sub(r"['’‘`´]", "", text)
    text = re.sub(r"[\s.,!?;:\"«»()\[\]\-–—…“”/]+", " ", text).strip()
    return text if _LABEL_OK.match(text) else None


def spell_numbers(text: str) -> str | None:
    """Replace plain integers by Bokmål number words; None if other digits remain."""
    try:
        from num2words import num2words
    except ImportError:  # without num2words sentences with digits are dropped
        num2words = None
    if num2words is not None:
        text = re.sub(r"(?<![\d.,:])\d{1,7}(?![\d]|[.,:]\d)",
                      lambda m: num2words(int(m.group()), lang="no"), text)
    return None if re.search(r"\d", text) else text


def spoken_and_label(sentence: str) -> tuple[str, str] | None:
    """(text to give espeak-ng, normalized label) or None if unusable."""
    spoken = spell_numbers(sentence)
    if spoken is None:
        return None
    label = normalize_label(spoken)
    return None if label is None else (spoken, label)


def label_to_ids(label: str) -> list[int]:
    return [VOCAB["|" if c == " " else c] for c in label]


def load_corpus(name: str = "nb_train") -> list[tuple[str, str, str]]:
    """(source, spoken text, label) rows of models/data/<name>.tsv.gz."""
    rows = []
    with gzip.open(DATA_DIR / f"{name}.tsv.gz", "rt", encoding="utf-8") as f:
        for line in f:
            source, spoken = line.rstrip("\n").split("\t", 1)
            pair = spoken_and_label(spoken)
            if pair is not None:
                rows.append((source, pair[0], pair[1]))
    return rows


# ---------------------------------------------------------------- audio

@dataclass(frozen=True)
class Voice:
    """espeak-ng settings; the defaults are espeak-ng's own for `-v nb`."""
    name: str = "nb"          # e.g. "nb", "nb+m3", "nb+f2"
    speed_wpm: int = 175
    pitch: int = 50           # 0..99
    word_gap_10ms: int = 0


@dataclass(frozen=True)
class Augmentation:
    """Per-utterance augmentation, drawn by ``augment``."""
    lead_silence_ms: tuple[int, int] = (20, 300)
    trail_silence_ms: tuple[int, int] = (20, 300)
    gain_db: tuple[float, float] = (-20.0, 3.0)
    noise_snr_db: tuple[float, float] = (10.0, 45.0)
    noise_probability: float = 0.5


def resample(audio: np.ndarray, rate_in_hz: int, rate_out_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Band-limited FFT resampling of a whole utterance (ideal low-pass)."""
    if rate_in_hz == rate_out_hz:
        return audio.astype(np.float32)
    g = math.gcd(rate_in_hz, rate_out_hz)
    step_in, step_out = rate_in_hz // g, rate_out_hz // g       # 441 -> 320 for 22050 Hz
    pad_samples = step_in  # zeros on both sides keep the circular FFT from wrapping the ends
    blocks = 2 ** math.ceil(math.log2((len(audio) + 2 * pad_samples) / step_in))
    n_in, n_out = blocks * step_in, blocks * step_out            # FFT-friendly sizes
    padded = np.zeros(n_in)
    padded[pad_samples:pad_samples + len(audio)] = audio
    spectrum = np.fft.rfft(padded)[:n_out // 2 + 1]
    out = np.fft.irfft(spectrum, n_out) * (n_out / n_in)
    start = step_out
    return out[start:start + len(audio) * rate_out_hz // rate_in_hz].astype(np.float32)


def synthesize(text: str, voice: Voice = Voice()) -> np.ndarray:
    """espeak-ng speech for `text` as float32 mono in [-1, 1] at 16 kHz."""
    cmd = ["espeak-ng", "--stdout", "-v", voice.name, "-s", str(voice.speed_wpm),
           "-p", str(voice.pitch), "-g", str(voice.word_gap_10ms)]
    wav_bytes = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True,
                               check=True).stdout
    with wave.open(io.BytesIO(wav_bytes)) as w:
        rate_hz = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    if len(pcm) == 0:  # espeak-ng streams may leave the frame count at 0
        pcm = np.frombuffer(wav_bytes[44:], dtype="<i2")
    return resample(pcm.astype(np.float32) / 32768.0, rate_hz)


# Several espeak-ng voices and speeds, for speech the model did not hear in one voice only.
SPEAKERS = (Voice("nb", 175), Voice("nb+m3", 150), Voice("nb+f2", 190, 65), Voice("nb+m1", 165, 40),
            Voice("nb+f4", 180, 55))


def trim_silence(audio: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    """Cut the leading and trailing samples quieter than threshold (espeak-ng pads each utterance)."""
    loud = np.flatnonzero(np.abs(audio) >= threshold)
    return audio[loud[0] : loud[-1] + 1] if len(loud) else audio[:0]


def talk(sentences: list[tuple[str, str]], rng: np.random.Generator, pause_s: tuple[float, float] = (0.0, 0.0),
         speakers: tuple[Voice, ...] = SPEAKERS) -> tuple[np.ndarray, str]:
    """Sentences spoken one after another by speakers in turn (float32 16 kHz), joined by pauses drawn
    from pause_s; (0, 0) joins them with no pause at all, as a monologue that never stops. Also the
    reference text."""
    parts = [np.zeros(int(0.3 * SAMPLE_RATE_HZ), np.float32)]
    for i, (spoken, _) in enumerate(sentences):
        parts.append(trim_silence(synthesize(spoken, speakers[i % len(speakers)])))
        parts.append(np.zeros(int(rng.uniform(*pause_s) * SAMPLE_RATE_HZ), np.float32))
    parts.append(np.zeros(int(0.6 * SAMPLE_RATE_HZ), np.float32))
    return np.concatenate(parts), " ".join(label for _, label in sentences)


def augment(audio: np.ndarray, rng: np.random.Generator, aug: Augmentation = Augmentation()) -> np.ndarray:
    """Random leading/trailing silence, level change and additive noise."""
    lead = int(rng.uniform(*aug.lead_silence_ms) * SAMPLE_RATE_HZ / 1000)
    trail = int(rng.uniform(*aug.trail_silence_ms) * SAMPLE_RATE_HZ / 1000)
    out = np.concatenate([np.zeros(lead, np.float32), audio, np.zeros(trail, np.float32)])
    gain = 10 ** (rng.uniform(*aug.gain_db) / 20)
    out *= np.float32(gain)
    if rng.random() < aug.noise_probability:
        rms = float(np.sqrt(np.mean(audio ** 2)) + 1e-8) * gain  # speech level after gain
        noise = rng.standard_normal(len(out)).astype(np.float32)
        if rng.random() < 0.5:  # brown-ish noise half of the time
            noise = np.cumsum(noise)
            noise -= np.convolve(noise, np.ones(64) / 64, mode="same")
            noise /= noise.std() + 1e-8
        out += noise * np.float32(rms * 10 ** (-rng.uniform(*aug.noise_snr_db) / 20))
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def normalize_audio(audio: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance, as Wav2Vec2FeatureExtractor(do_normalize=True) and streamer's runner."""
    from streamer.backends.onnx import normalize

    return normalize(audio)


# ---------------------------------------------------------------- scoring

def greedy_decode(ids) -> str:
    """Argmax ids -> text: collapse repeats, drop blank (31), '|' -> space."""
    out, prev = [], None
    for i in ids:
        i = int(i)
        if i != prev and i != BLANK_ID:
            out.append(ID_TO_CHAR.get(i, ""))
        prev = i
    text = "".join(" " if c == "|" else c for c in out if c != "[UNK]")
    return " ".join(text.split())


def error_rates(refs: list[str], hyps: list[str]) -> dict[str, float]:
    """Corpus-level CER (characters incl. spaces) and WER, as streamer.text.scoring computes them."""
    from streamer.text.scoring import cer, wer

    return {"cer": cer(refs, hyps), "wer": wer(refs, hyps), "n_sentences": len(refs)}


def heldout_sentences(limit: int | None = None) -> list[tuple[str, str]]:
    """(spoken, label) pairs of the held-out source, in a fixed order."""
    rows = [(spoken, label) for _, spoken, label in load_corpus("nb_heldout")]
    return rows[:limit] if limit else rows


def pad_batch(audios: list[np.ndarray]):
    """(audio, attention mask) tensors of a batch, zero-padded to its longest utterance."""
    import torch

    x = torch.zeros(len(audios), max(len(a) for a in audios))
    mask = torch.zeros(x.shape, dtype=torch.long)
    for i, a in enumerate(audios):
        x[i, :len(a)] = torch.from_numpy(a)
        mask[i, :len(a)] = 1
    return x, mask


def utterance_logits(model, audios: list[np.ndarray], batch_size: int = 16) -> list[np.ndarray]:
    """(frames, vocab) logits of each normalized utterance, cut to its own valid frames."""
    import torch

    out = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(audios), batch_size):
            batch = audios[start:start + batch_size]
            lengths = [len(a) for a in batch]
            x, mask = pad_batch(batch)
            logits = model(x, attention_mask=mask).logits
            frames = model._get_feat_extract_output_lengths(torch.tensor(lengths))
            out += [row[:int(n)].numpy() for row, n in zip(logits, frames)]
    return out


def evaluate_model(model, sentences: list[tuple[str, str]], voice: Voice = Voice(),
                   batch_size: int = 16) -> tuple[dict[str, float], list[tuple[str, str]]]:
    """Synthesize `sentences` with `voice`, decode greedily, return (rates, (ref, hyp) pairs)."""
    audios = [normalize_audio(synthesize(spoken, voice)) for spoken, _ in sentences]
    hyps = [greedy_decode(logits.argmax(-1)) for logits in utterance_logits(model, audios, batch_size)]
    refs = [label for _, label in sentences]
    return error_rates(refs, hyps), list(zip(refs, hyps))


def main() -> None:
    parser = argparse.ArgumentParser(description="Greedy CER/WER of a saved model on held-out "
                                     "sentences synthesized with espeak-ng.")
    parser.add_argument("--model", default="models/tiny-nb", help="HF model directory")
    parser.add_argument("--voice", default="nb")
    parser.add_argument("--speed-wpm", type=int, default=175)
    parser.add_argument("--pitch", type=int, default=50)
    parser.add_argument("--limit", type=int, default=None, help="first N held-out sentences")
    parser.add_argument("--show", type=int, default=10, help="print N example errors")
    args = parser.parse_args()
    import torch
    from transformers import Wav2Vec2ForCTC

    torch.set_num_threads(2)
    model = Wav2Vec2ForCTC.from_pretrained(args.model)
    sentences = heldout_sentences(args.limit)
    rates, pairs = evaluate_model(model, sentences, Voice(args.voice, args.speed_wpm, args.pitch))
    shown = 0
    for ref, hyp in pairs:
        if ref != hyp and shown < args.show:
            print(f"REF: {ref}\nHYP: {hyp}\n")
            shown += 1
    print(f"held-out sentences: {rates['n_sentences']}  voice={args.voice} "
          f"speed={args.speed_wpm} pitch={args.pitch}")
    print(f"CER {rates['cer']:.4f}  WER {rates['wer']:.4f}")


if __name__ == "__main__":
    main()
