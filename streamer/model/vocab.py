"""The CTC output alphabet of a wav2vec2 model: vocab.json plus the tokenizer's added tokens."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import StreamerError

WORD_DELIMITER = "|"
BLANK_TOKEN = "[PAD]"
UNKNOWN_TOKEN = "[UNK]"


def is_markup(token: str) -> bool:
    """[PAD], [UNK], <s>, </s> and the like: tokens that never spell a letter."""
    return len(token) > 1 and (token[0], token[-1]) in (("[", "]"), ("<", ">"))


@dataclass(frozen=True)
class Vocabulary:
    """Token strings by id; the blank (CTC's no-symbol), the word delimiter, and the ids that spell nothing."""

    tokens: tuple[str, ...]
    blank_id: int
    delimiter_id: int
    special_ids: frozenset[int] = frozenset()  # blank, delimiter, markup and special added tokens

    @classmethod
    def from_dict(cls, token_to_id: dict[str, int], blank_token: str = BLANK_TOKEN,
                  special_tokens: tuple[str, ...] = ()) -> "Vocabulary":
        ids = sorted(token_to_id.values())
        if ids != list(range(len(ids))):
            raise StreamerError("vocab.json (with the tokenizer's added tokens) must map tokens to the ids "
                                "0..N-1 with no gaps")
        tokens = [""] * len(ids)
        for token, index in token_to_id.items():
            tokens[index] = token
        for needed in (blank_token, WORD_DELIMITER):
            if needed not in token_to_id:
                raise StreamerError(
                    f"vocab.json has no {needed!r} token: a wav2vec2 CTC vocabulary needs "
                    f"{BLANK_TOKEN!r} (the blank) and {WORD_DELIMITER!r} (the word delimiter)"
                )
        blank, delimiter = token_to_id[blank_token], token_to_id[WORD_DELIMITER]
        special = {blank, delimiter} | {i for i, t in enumerate(tokens) if is_markup(t) or t in special_tokens}
        return cls(tuple(tokens), blank, delimiter, frozenset(special))

    @classmethod
    def load(cls, model_dir: Path, blank_token: str = BLANK_TOKEN,
             special_tokens: tuple[str, ...] = ()) -> "Vocabulary":
        """vocab.json, joined with the tokens a Hugging Face tokenizer added after it: added_tokens.json
        (older layout) and tokenizer_config.json's "added_tokens_decoder" (newer), when present."""
        model_dir = Path(model_dir)
        path = model_dir / "vocab.json"
        if not path.is_file():
            raise StreamerError(
                f"{model_dir} has no vocab.json: a CTC model dir needs vocab.json (token → id)"
            )
        data = read_json(path)
        if data and all(isinstance(v, dict) for v in data.values()):
            data = next(iter(data.values()))  # multi-language layout {"nb": {...}}
        added, flagged = added_tokens(model_dir)
        return cls.from_dict(merge_added(data, added, path), blank_token, tuple(special_tokens) + flagged)

    def to_dict(self) -> dict[str, int]:
        return {token: index for index, token in enumerate(self.tokens)}

    @property
    def special_tokens(self) -> tuple[str, ...]:
        return tuple(self.tokens[i] for i in sorted(self.special_ids))

    def __len__(self) -> int:
        return len(self.tokens)

    def is_text(self, token_id: int) -> bool:
        """True for tokens that spell letters (not blank, delimiter or special tokens)."""
        return token_id not in self.special_ids

    def text_mask(self) -> np.ndarray:
        """Per id: True where is_text."""
        return np.array([self.is_text(i) for i in range(len(self))], dtype=bool)


def read_json(path: Path) -> dict:
    """A JSON object from a file; {} when the file does not exist."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise StreamerError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise StreamerError(f"{path}: expected a JSON object")
    return data


def added_tokens(model_dir: Path) -> tuple[dict[str, int], tuple[str, ...]]:
    """Tokens a tokenizer added beside vocab.json (token → id), and those it flags as special."""
    added: dict[str, int] = {}
    flagged: list[str] = []
    added |= {str(k): v for k, v in read_json(model_dir / "added_tokens.json").items()}
    decoder = read_json(model_dir / "tokenizer_config.json").get("added_tokens_decoder") or {}
    for index, entry in decoder.items():
        content = entry.get("content") if isinstance(entry, dict) else None
        if content is None or not str(index).isdigit():
            raise StreamerError(f"{model_dir / 'tokenizer_config.json'}: unreadable added_tokens_decoder "
                                f"entry {index!r}: expected {{id: {{'content': token, ...}}}}")
        added[content] = int(index)
        if entry.get("special"):
            flagged.append(content)
    return added, tuple(flagged)


def merge_added(vocab: dict[str, int], added: dict[str, int], path: Path) -> dict[str, int]:
    """vocab.json's tokens plus added ones; an added token may repeat a vocab entry, never contradict it."""
    merged = dict(vocab)
    by_id = {index: token for token, index in vocab.items()}
    for token, index in added.items():
        if not isinstance(index, int) or index < 0:
            raise StreamerError(f"{path.parent}: added token {token!r} has id {index!r}, expected an id ≥ 0")
        if merged.get(token, index) != index or by_id.get(index, token) != token:
            raise StreamerError(
                f"{path.parent}: added token {token!r} (id {index}) contradicts vocab.json "
                f"({token!r} → {merged.get(token)}, id {index} → {by_id.get(index)!r})"
            )
        merged[token] = index
        by_id[index] = token
    return merged
