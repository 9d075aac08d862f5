"""Hand-over of audio blocks from a thread that reads a source to the thread or loop that recognizes them.

A live source must never wait for recognition, so its blocks are read on a thread of their own and
handed over in order with how long each waited (``waited_s``); the overload policy
(``streamer.driver.overload``, applied by the batcher) counts that wait in the lag that decides when
audio is skipped as silence. ``BlockQueue`` serves a microphone's audio thread, ``read_ahead`` ffmpeg
sources. Neither skips anything itself: they only bound the audio they hold (``HARD_CAP_S``) so a
stalled consumer cannot exhaust memory: a microphone's blocks beyond it are dropped and come back as
silence, a reader waits.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable, Iterator

import numpy as np

from ..model.geometry import SAMPLE_RATE

END = object()
HARD_CAP_S = 600.0  # a hand-over never holds more than this much audio, however fast its source delivers


class BlockQueue:
    """Hand-over from an audio thread that must never wait: ``put`` drops a block when the queue holds
    ``HARD_CAP_S`` of audio and counts its samples as a gap, which ``get`` returns before the next block."""

    def __init__(self, block_samples: int, clock: Callable[[], float] = time.monotonic):
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(HARD_CAP_S * SAMPLE_RATE / block_samples)))
        self._gap_samples = 0  # dropped since the last block that got in (touched by the producer only)
        self._clock = clock

    def put(self, block: np.ndarray) -> None:
        try:
            self._queue.put_nowait((self._gap_samples, self._clock(), block))
            self._gap_samples = 0
        except queue.Full:
            self._gap_samples += len(block)

    def get(self, timeout_s: float) -> tuple[int, float, np.ndarray] | None:
        """(samples dropped just before this block, seconds it waited, the block), or None when nothing came
        in time."""
        try:
            gap, put_at, block = self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None
        return gap, self._clock() - put_at, block


def read_ahead(blocks: Iterator[np.ndarray], live: bool, block_samples: int = SAMPLE_RATE // 10,
               clock: Callable[[], float] = time.monotonic) -> Iterator[tuple[np.ndarray, float]]:
    """blocks (16 kHz int16), read on a thread of their own and handed over in order, each with how long
    it waited for recognition (live) or 0.0 (not live: a file waits for recognition, nothing is ever
    skipped). The reader holds at most HARD_CAP_S of audio, then waits. An exception of the reader is
    raised here, after the blocks before it."""
    hand: queue.Queue = queue.Queue(maxsize=max(1, int(HARD_CAP_S * SAMPLE_RATE / block_samples)))
    failure: list[BaseException] = []

    def read() -> None:
        try:
            for block in blocks:
                hand.put((clock(), block))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            failure.append(exc)
        finally:
            hand.put((clock(), END))

    threading.Thread(target=read, daemon=True, name="streamer-reader").start()
    while (item := hand.get())[1] is not END:
        put_at, block = item
        yield block, (clock() - put_at) if live else 0.0
    if failure:
        raise failure[0]
