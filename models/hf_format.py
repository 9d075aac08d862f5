"""The Hugging Face file layout of NbAiLab/XLSR-300M-bokmaal, shared by every checkpoint we write.

`VOCAB` is exactly that model's vocab.json ('|' word delimiter, a–z, å, æ, ø, [UNK], and
[PAD] = 31, the CTC blank). Its tokenizer also has `ADDED_TOKENS` (`<s>` 32, `</s>` 33, in
added_tokens.json and tokenizer_config.json's "added_tokens_decoder"), and its CTC head has
`REAL_HEAD_SIZE` = 34 outputs, as the fine-tuning script of its time sized the head to the
whole tokenizer. `save_processor_files` writes the tokenizer and feature extractor files, so our
checkpoints load through the same code as the real one.
"""

from __future__ import annotations

import json
from pathlib import Path

SAMPLE_RATE_HZ = 16_000
VOCAB: dict[str, int] = {**{c: i for i, c in enumerate("abcdefghijklmnopqrstuvwxyzåæø", start=1)},
                         "|": 0, "[UNK]": 30, "[PAD]": 31}
BLANK_ID = VOCAB["[PAD]"]
ADDED_TOKENS = {"<s>": 32, "</s>": 33}
REAL_HEAD_SIZE = len(VOCAB) + len(ADDED_TOKENS)


def save_processor_files(out_dir: Path, added_tokens: bool = False) -> None:
    """vocab.json, tokenizer, feature extractor and processor configs (new and old layouts).

    added_tokens: also the real checkpoint's `<s>` and `</s>` (ids 32, 33), saved by the tokenizer
    itself (added_tokens.json and "added_tokens_decoder"); its CTC head then needs 34 outputs.
    """
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    out_dir = Path(out_dir)
    vocab_path = out_dir / "vocab.json"
    vocab_path.write_text(json.dumps(VOCAB, ensure_ascii=False), encoding="utf-8")
    tokenizer = Wav2Vec2CTCTokenizer(str(vocab_path), unk_token="[UNK]", pad_token="[PAD]",
                                     word_delimiter_token="|", bos_token="<s>" if added_tokens else None,
                                     eos_token="</s>" if added_tokens else None)
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE_HZ, padding_value=0.0,
                                         do_normalize=True, return_attention_mask=True)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(str(out_dir))
    # Also the per-component files that older transformers versions look for.
    extractor.save_pretrained(str(out_dir))     # preprocessor_config.json
    tokenizer.save_pretrained(str(out_dir))
    special = {"unk_token": "[UNK]", "pad_token": "[PAD]"}
    if added_tokens:
        special |= {"bos_token": "<s>", "eos_token": "</s>"}
        if len(tokenizer) != REAL_HEAD_SIZE:
            raise RuntimeError(f"the tokenizer has {len(tokenizer)} tokens, expected {REAL_HEAD_SIZE}")
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n", encoding="utf-8")
    saved = json.loads(vocab_path.read_text(encoding="utf-8"))
    if saved != VOCAB:
        raise RuntimeError(f"vocab.json changed on save: {saved}")
