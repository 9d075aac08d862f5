"""The CTC output alphabet of a wav2vec2 model (vocab.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import StreamerError

WORD_DELIMITER = "|"
BLANK_TOKEN = "[PAD]"
UNKNOWN_TOKEN = "[UNK]"


@dataclass(frozen=True)
class Vocabulary:
    """Token strings by id; the blank (CTC's no-symbol) and the word delimiter."""

    tokens: tuple[str, ...]
    blank_id: int
    delimiter_id: int

    @classmethod
    def from_dict(cls, token_to_id: dict[str, int], blank_token: str = BLANK_TOKEN) -> "Vocabulary":
        ids = sorted(token_to_id.values())
        if ids != list(range(len(ids))):
            raise StreamerError("vocab.json must map tokens to the ids 0..N-1 with no gaps")
        tokens = [""] * len(ids)
        for token, index in token_to_id.items():
            tokens[index] = token
        for needed in (blank_token, WORD_DELIMITER):
            if needed not in token_to_id:
                raise StreamerError(
                    f"vocab.json has no {needed!r} token: a wav2vec2 CTC vocabulary needs "
                    f"{BLANK_TOKEN!r} (the blank) and {WORD_DELIMITER!r} (the word delimiter)"
                )
        return cls(tuple(tokens), token_to_id[blank_token], token_to_id[WORD_DELIMITER])

    @classmethod
    def load(cls, model_dir: Path, blank_token: str = BLANK_TOKEN) -> "Vocabulary":
        path = Path(model_dir) / "vocab.json"
        if not path.is_file():
            raise StreamerError(
                f"{model_dir} has no vocab.json: a CTC model dir needs vocab.json (token → id)"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StreamerError(f"{path} is not readable JSON: {exc}") from None
        if data and all(isinstance(v, dict) for v in data.values()):
            data = next(iter(data.values()))  # multi-language layout {"nb": {...}}
        return cls.from_dict(data, blank_token)

    def to_dict(self) -> dict[str, int]:
        return {token: index for index, token in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def is_text(self, token_id: int) -> bool:
        """True for tokens that spell letters (not blank, delimiter or special [..] tokens)."""
        token = self.tokens[token_id]
        return token_id not in (self.blank_id, self.delimiter_id) and not (
            token.startswith("[") and token.endswith("]") or token.startswith("<") and token.endswith(">")
        )
