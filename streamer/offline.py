"""Offline (reference) transcription: VAD segments at pauses, each recognized whole (or in chunks)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Iterator

import numpy as np

from . import SAMPLE_RATE
from .chunking import ChunkSettings, SegmentDecoder
from .ctc import Word, words_text
from .pcm import PcmInput, to_float32
from .vad import SpeechAudio, SpeechEnd, VadGate, VadSettings


@dataclass(frozen=True)
class Segment:
    index: int
    start_s: float
    end_s: float
    words: tuple[Word, ...]

    @property
    def text(self) -> str:
        return words_text(list(self.words))


@dataclass(frozen=True)
class OfflineSettings:
    vad: VadSettings = VadSettings(max_segment_s=None)  # offline splits at pauses only
    chunks: ChunkSettings = ChunkSettings()


def shift(words: list[Word], offset_s: float) -> tuple[Word, ...]:
    return tuple(replace(w, start_s=w.start_s + offset_s, end_s=w.end_s + offset_s) for w in words)


def transcribe_blocks(blocks: Iterable[np.ndarray], model, settings: OfflineSettings = OfflineSettings(),
                      sample_rate: int = SAMPLE_RATE) -> Iterator[Segment]:
    """Segments with words (stream times in seconds) as each speech segment ends; silent ones skipped.
    Blocks as the streaming push API takes them: int16 or float32 mono at sample_rate."""
    pcm = PcmInput(sample_rate)
    gate = VadGate(settings.vad)
    rate = model.geometry.sample_rate
    decoder: SegmentDecoder | None = None
    start_sample = 0
    count = 0

    def handle(events) -> Iterator[Segment]:
        nonlocal decoder, start_sample, count
        for event in events:
            if isinstance(event, SpeechAudio):
                if decoder is None:
                    decoder, start_sample = SegmentDecoder(model, settings.chunks), event.start_sample
                decoder.accept(to_float32(event.samples))
            elif isinstance(event, SpeechEnd) and decoder is not None:
                words = decoder.finish()
                decoder = None
                if words:
                    yield Segment(count, start_sample / rate, event.end_sample / rate, shift(words, start_sample / rate))
                    count += 1

    for block in blocks:
        yield from handle(gate.accept(pcm.accept(block)))
    yield from handle(gate.accept(pcm.finish()) + gate.finish())


def transcribe_array(audio: np.ndarray, model, settings: OfflineSettings = OfflineSettings(),
                     sample_rate: int = SAMPLE_RATE) -> list[Segment]:
    return list(transcribe_blocks([audio], model, settings, sample_rate))
