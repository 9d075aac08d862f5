"""Decoders compared: greedy against beam search with tiny-nb's language model at several beam widths.

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
from streamer.text.decoder import BeamDecoder, DecoderSettings
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
    print(f"\n{cpu_name()}, tiny-nb fp32, {len(sentences)} sentences\n" + table(rows, COLUMNS))
    print(f"wrote {write_json('decoder', {'sentences': len(sentences), 'audio_s': seconds, 'rows': rows})}")


COLUMNS = [("decoder", "decoder", ""), ("wer", "WER", ".4f"), ("cer", "CER", ".4f"),
           ("ms_per_s", "decode ms per audio s", ".1f")]


if __name__ == "__main__":
    main()
