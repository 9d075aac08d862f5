"""Random-weight wav2vec2 CTC checkpoints in Hugging Face format, with the real model's vocabulary.

For tests and benchmarks on machines that cannot download NbAiLab/XLSR-300M-bokmaal:
`--arch xlsr-300m` has exactly its architecture (24 layers, hidden 1024, 16 heads, layer-norm
feature encoder), so export and inference cost the same; `--arch tiny` is a few hundred kB.
Both have the real checkpoint's file layout: vocab.json with 32 tokens, `<s>` and `</s>` added
by the tokenizer (ids 32 and 33) and a CTC head of 34 outputs (`--plain-vocab`: 32, as tiny-nb).

    python models/random_checkpoint.py --arch xlsr-300m --out /tmp/xlsr-300m-random
"""

from __future__ import annotations

import argparse
from pathlib import Path

from streamer.model.geometry import FrameGeometry

try:  # imported as models.random_checkpoint (tests) or run as a script
    from models.hf_format import REAL_HEAD_SIZE, VOCAB, save_processor_files
except ModuleNotFoundError:
    from hf_format import REAL_HEAD_SIZE, VOCAB, save_processor_files

XLSR = FrameGeometry()  # its defaults are XLS-R-300M's conv shape
COMMON = dict(
    vocab_size=REAL_HEAD_SIZE, pad_token_id=VOCAB["[PAD]"], architectures=["Wav2Vec2ForCTC"],
    feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True,
    conv_kernel=XLSR.conv_kernel, conv_stride=XLSR.conv_stride, ctc_loss_reduction="mean",
)
ARCHITECTURES = {
    # facebook/wav2vec2-xls-r-300m, as fine-tuned in NbAiLab/XLSR-300M-bokmaal
    "xlsr-300m": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                      conv_dim=(512,) * 7, num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16),
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4),
}


def save_random_checkpoint(path: Path, arch: str = "tiny", seed: int = 0, added_tokens: bool = True,
                           **overrides) -> Path:
    """added_tokens: the real layout (34 outputs, `<s>`/`</s>` added); False: 32 tokens and outputs."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    torch.manual_seed(seed)
    head = {} if added_tokens else {"vocab_size": len(VOCAB)}
    model = Wav2Vec2ForCTC(Wav2Vec2Config(**{**COMMON, **ARCHITECTURES[arch], **head, **overrides})).eval()
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    save_processor_files(path, added_tokens)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="xlsr-300m")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint dir to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plain-vocab", action="store_true", help="32 tokens and outputs, no <s> and </s>")
    args = parser.parse_args()
    save_random_checkpoint(args.out, args.arch, args.seed, added_tokens=not args.plain_vocab)
    print(f"wrote {args.out} ({args.arch}, random weights)")


if __name__ == "__main__":
    main()
