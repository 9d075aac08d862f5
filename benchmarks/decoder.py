"""Decoders compared: greedy against beam search with tiny-nb's language model at several beam widths:
pyctcdecode's (each sentence in one call) and the incremental one (streamer.text.incremental,
flashlight-text's lexicon decoder fed 0.7 s of frames at a time).

The held-out sentences (a text source tiny-nb never trained on, nor its language model) are
synthesized with espeak-ng's `nb` voice and run through tiny-nb once; every decoder then decodes the
same logits. Columns: WER and CER against the references, and decode time per second of audio (the
decoder alone, not the model). The language model is tiny-nb's own, built by models/build_lm.py
from the training text when it is not there yet.

    python benchmarks/decoder.py [--sentences 263] [--widths 8 16 32 64]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from common import REPO, cpu_name, table, write_json

from streamer.text.ctc import greedy_words, words_text
from streamer.text.decoder import BeamDecoder, DecoderSettings, find_lm_file, read_unigrams
from streamer.text.incremental import IncrementalBeam, IncrementalSettings, LexiconLM
from streamer.text.scoring import cer, wer
from streamer.backends.onnx import OnnxModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=0, help="the first N held-out sentences (default all)")
    parser.add_argument("--widths", type=int, nargs="*", default=[8, 16, 32, 64])
    args = parser.parse_args()

    from models.synth import heldout_sentences, synthesize
    from common import default_tiny

    lm = REPO / "models" / "tiny-nb" / "language_model"
    if not (lm / "lm.arpa").exists():
        subprocess.run([sys.executable, str(REPO / "models" / "build_lm.py"), "--out", str(lm)], check=True)
    model = OnnxModel(default_tiny())
    sentences = heldout_sentences()[: args.sentences or None]
    audio = [synthesize(spoken) for spoken, _ in sentences]
    logits = [model.logits([a])[0] for a in audio]
    references = [label for _, label in sentences]
    seconds = sum(len(a) for a in audio) / 16000
    print(f"{len(sentences)} held-out sentences, {seconds:.1f} s of audio", flush=True)

    def run(name: str, decode) -> dict:
        began = time.perf_counter()
        hypotheses = [decode(x) for x in logits]
        spent = time.perf_counter() - began
        row = {"decoder": name, "wer": wer(references, hypotheses), "cer": cer(references, hypotheses),
               "ms_per_s": 1000 * spent / seconds}
        print(table([row], COLUMNS).splitlines()[-1], flush=True)
        return row

    rows = [run("greedy", lambda x: words_text(greedy_words(x, model.vocab, model.geometry.frame_s)))]
    for width in args.widths:
        decoder = BeamDecoder(model.vocab, model.geometry.frame_s, DecoderSettings("beam", beam_width=width), lm)
        rows.append(run(f"beam {width}, alpha {decoder.alpha:g}, beta {decoder.beta:g}",
                        lambda x, d=decoder: words_text(d.decode(x)[0])))
    lexicon = LexiconLM(model.vocab, find_lm_file(lm), read_unigrams(lm / "unigrams.txt"))
    for width in args.widths:  # fed 0.7 s at a time, as a stream's commits would feed it
        settings = IncrementalSettings(beam_width=width)
        rows.append(run(f"incremental beam {width} (flashlight-text, 0.7 s blocks)",
                        lambda x, s=settings: " ".join(w.word for w in incremental(lexicon, s, x))))
    print(f"\n{cpu_name()}, tiny-nb fp32, {len(sentences)} sentences\n" + table(rows, COLUMNS))
    print(f"wrote {write_json('decoder', {'sentences': len(sentences), 'audio_s': seconds, 'rows': rows})}")


def incremental(lexicon: LexiconLM, settings: IncrementalSettings, logits, block_frames: int = 35) -> list:
    beam = IncrementalBeam(lexicon, settings)
    words = [w for start in range(0, len(logits), block_frames) for w in beam.feed(logits[start : start + block_frames])]
    return words + beam.end()


COLUMNS = [("decoder", "decoder", ""), ("wer", "WER", ".4f"), ("cer", "CER", ".4f"),
           ("ms_per_s", "decode ms per audio s", ".1f")]


if __name__ == "__main__":
    main()
