"""Decoders compared: greedy against the incremental beam search (streamer.text.incremental, flashlight-text's
lexicon decoder over KenLM) at several beam widths, with and without hotwords, fed 0.7 s of frames at a time
as a stream's commits feed it.

The held-out sentences (a text source tiny-nb never trained on, nor its language model) are synthesized
with espeak-ng's `nb` voice and run through tiny-nb once; every decoder then decodes the same logits.
Columns: WER and CER against the references, and decoder CPU per second of audio (the decoder alone, one
stream, not the model). The language model is tiny-nb's own (models/build_lm.py, built once into
benchmarks/out). Hotwords: 20 names of the kind a parliament's list holds, none of them in the text, so
the rows show their cost (a Python hook on every language-model score) without their effect.

    python benchmarks/decoder.py [--sentences 263] [--widths 8 16 32 64]
"""

from __future__ import annotations

import argparse
import time

from common import cpu_name, default_tiny, table, tiny_lm, write_json

from streamer.backends.onnx import OnnxModel
from streamer.text.ctc import greedy_words, words_text
from streamer.text.decoder import DecoderSettings
from streamer.text.incremental import IncrementalBeam, LexiconLM, load_lm
from streamer.text.scoring import cer, wer

HOTWORDS = tuple((name, 10.0) for name in (
    "Bjørdal", "Giske", "Solberg", "Støre", "Vedum", "Listhaug", "Lysbakken", "Hareide", "Grande", "Bergstø",
    "Moxnes", "Tvinnereim", "Gram", "Brenna", "Gahr", "Halleraker", "Kapur", "Søreide", "Trettebergstuen", "Vikse"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=0, help="the first N held-out sentences (default all)")
    parser.add_argument("--widths", type=int, nargs="*", default=[8, 16, 32, 64])
    args = parser.parse_args()

    from models.synth import heldout_sentences, synthesize

    lm = tiny_lm()
    model = OnnxModel(default_tiny())
    sentences = heldout_sentences()[: args.sentences or None]
    print(f"synthesizing and recognizing {len(sentences)} held-out sentences...", flush=True)
    audio = [synthesize(spoken) for spoken, _ in sentences]
    logits = [model.logits([a])[0] for a in audio]
    references = [label for _, label in sentences]
    seconds = sum(len(a) for a in audio) / 16000
    print(f"{len(sentences)} held-out sentences, {seconds:.1f} s of audio", flush=True)

    def run(name: str, width: int | None, hotwords: int, decode) -> dict:
        began = time.process_time()
        hypotheses = [decode(x) for x in logits]
        spent = time.process_time() - began
        row = {"decoder": name, "beam_width": width, "hotwords": hotwords, "wer": wer(references, hypotheses),
               "cer": cer(references, hypotheses), "cpu_ms_per_audio_s": 1000 * spent / seconds}
        print(table([row], COLUMNS).splitlines()[-1], flush=True)
        return row

    rows = [run("greedy", None, 0, lambda x: words_text(greedy_words(x, model.vocab, model.geometry.frame_s)))]
    for hotwords in ((), HOTWORDS):
        for width in args.widths:
            lexicon = load_lm(model.vocab, lm, DecoderSettings(beam_width=width, hotwords=hotwords))
            rows.append(run("incremental beam", width, len(hotwords),
                            lambda x, lx=lexicon: " ".join(w.word for w in incremental(lx, x))))
    print(f"\n{cpu_name()}, tiny-nb fp32, {len(sentences)} sentences, 0.7 s blocks\n" + table(rows, COLUMNS))
    print(f"wrote {write_json('decoder', {'sentences': len(sentences), 'audio_s': seconds, 'rows': rows})}")


def incremental(lexicon: LexiconLM, logits, block_frames: int = 35) -> list:
    beam = IncrementalBeam(lexicon)
    words = [w for start in range(0, len(logits), block_frames) for w in beam.feed(logits[start : start + block_frames])]
    return words + beam.end()


COLUMNS = [("decoder", "decoder", ""), ("beam_width", "width", ""), ("hotwords", "hotwords", ""),
           ("wer", "WER", ".4f"), ("cer", "CER", ".4f"), ("cpu_ms_per_audio_s", "CPU ms per audio s", ".1f")]


if __name__ == "__main__":
    main()
