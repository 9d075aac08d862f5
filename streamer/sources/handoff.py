"""Hand-over of audio blocks from a thread that reads a source to the thread or loop that recognizes them:
the one bounded queue behind the overload policy (``streamer.driver.batcher``'s module doc).

A live source must never wait for recognition: audio that waited more than ``max_lag_s`` is
skipped and comes out as silence of the same length, so lag never grows past it and caption times
stay on the audio's clock. ``BlockQueue`` serves a microphone's audio thread (a bounded queue that
drops the newest blocks when full); ``read_ahead`` serves ffmpeg sources (blocks dropped by their
age, so a reconnect's burst of catch-up audio that recognition keeps up with loses nothing). A file
read as fast as it can be recognized waits instead (nothing is dropped).
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable, Iterator

import numpy as np

from ..model.geometry import SAMPLE_RATE


class BlockQueue:
    """Bounded hand-over from an audio thread that must never wait: ``put`` drops a block when the
    queue is full and counts its samples as a gap, which ``get`` returns before the next block."""

    def __init__(self, max_blocks: int):
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, max_blocks))
        self._gap_samples = 0  # dropped since the last block that got in (touched by the producer only)

    def put(self, block: np.ndarray) -> None:
        try:
            self._queue.put_nowait((self._gap_samples, block))
            self._gap_samples = 0
        except queue.Full:
            self._gap_samples += len(block)

    def get(self, timeout_s: float) -> tuple[int, np.ndarray] | None:
        """(samples dropped just before this block, the block), or None when nothing came in time."""
        try:
            return self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None


END = object()
HARD_CAP_S = 600.0  # a reader never holds more than this much audio, however fast its source delivers


def read_ahead(blocks: Iterator[np.ndarray], max_lag_s: float, live: bool,
               on_gap: Callable[[float], None] = lambda seconds: None, block_samples: int = SAMPLE_RATE // 10
               ) -> Iterator[np.ndarray]:
    """blocks (16 kHz int16), read on a thread of their own and handed over in order. live: a block that
    has waited more than max_lag_s of wall time for recognition is skipped (given as silence of the same
    length, on_gap told), so the captions catch up with the live edge; a burst that recognition keeps
    up with (a reconnect's catch-up) loses nothing. Not live (a file): nothing is skipped. The reader
    holds at most HARD_CAP_S of audio, then waits. An exception of the reader is raised here, after the
    blocks before it."""
    hand: queue.Queue = queue.Queue(maxsize=max(1, int(HARD_CAP_S * SAMPLE_RATE / block_samples)))
    failure: list[BaseException] = []

    def read() -> None:
        try:
            for block in blocks:
                hand.put((time.monotonic(), block))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            failure.append(exc)
        finally:
            hand.put((time.monotonic(), END))

    threading.Thread(target=read, daemon=True, name="streamer-reader").start()
    skipped = 0
    while (item := hand.get())[1] is not END:
        put_at, block = item
        if live and time.monotonic() - put_at > max_lag_s:
            skipped += len(block)
            continue
        if skipped:
            on_gap(skipped / SAMPLE_RATE)
            yield np.zeros(skipped, np.int16)
            skipped = 0
        yield block
    if skipped:
        on_gap(skipped / SAMPLE_RATE)
        yield np.zeros(skipped, np.int16)
    if failure:
        raise failure[0]
