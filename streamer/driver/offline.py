"""Offline (reference) transcription: each VAD speech segment recognized whole, or in 30 s chunks.

The same frame-level machinery as streaming at other settings: a stream with no partial pass whose
commit windows are 30 s long with 3 s of context on each side (``OFFLINE_CHUNKS``), so a segment up
to 27 s (no left context at its start) runs through the model in one pass, and a longer one in chunks joined at the frame level
before the CTC collapse. Memory stays bounded by one chunk of audio. One final per speech segment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from ..model.geometry import SAMPLE_RATE
from ..text.decoder import DecoderSettings
from ..core.events import Final
from ..core.stream import StreamSettings
from ..core.vad import VadSettings
from ..core.windower import CommitSettings
from ..text.written import TextSettings
from .captioner import Captioner, until_error

OFFLINE_CHUNKS = CommitSettings(left_ms=3000, right_ms=3000, hop_ms=24_000, min_commit_ms=None, pause_ms=None)


@dataclass(frozen=True)
class OfflineSettings:
    vad: VadSettings = VadSettings()
    chunks: CommitSettings = OFFLINE_CHUNKS
    decoder: DecoderSettings = DecoderSettings()
    text: TextSettings = TextSettings()

    def stream_settings(self) -> StreamSettings:
        """A caption per speech segment: no partials, no pause commits, no caption length limit."""
        return StreamSettings(vad=self.vad, window=None, commit=self.chunks, max_caption_s=math.inf,
                              decoder=self.decoder, text=self.text)


def transcribe_blocks(blocks: Iterable[np.ndarray], model, settings: OfflineSettings = OfflineSettings(),
                      sample_rate: int = SAMPLE_RATE, decoder=None) -> Iterator[Final]:
    """A final per speech segment (stream times in seconds) as each ends; silent ones skipped.
    Blocks as the streaming push API takes them: int16 or float32 mono at sample_rate. model: a Backend or
    an OnnxModel; decoder: a beam decoder to share (else the one settings.decoder asks for is made).
    A failed model call raises StreamerError after the finals before it."""

    with Captioner(model, settings.stream_settings(), decoder) as captioner:
        stream = captioner.stream(sample_rate)
        for block in blocks:
            yield from finals(until_error(stream.accept(block)))
        yield from finals(until_error(stream.finish()))


def finals(events) -> list[Final]:
    return [event for event in events if isinstance(event, Final)]


def transcribe_array(audio: np.ndarray, model, settings: OfflineSettings = OfflineSettings(),
                     sample_rate: int = SAMPLE_RATE, decoder=None) -> list[Final]:
    return list(transcribe_blocks([audio], model, settings, sample_rate, decoder))
