"""Batcher: one consumer that runs the windows of many streams in shared model calls, off the event loop.

Streams (``streamer.stream.Stream``, sans-I/O) are added with a sink for their events. After audio is
fed to a stream, ``wake()``. The consumer then waits up to ``max_wait_ms`` for more streams to have
work, takes the most urgent class of request across all streams (what may end a caption first, then
partials, then commits in running speech; round-robin among streams, one request per stream, at
most ``max_windows``), runs them on a worker thread in ``OnnxModel.logits`` calls of windows of
similar length, and hands each stream its logits back on the event loop. A busy consumer therefore
falls behind on partials (which merge, then drop hops) before it delays a final.

Batched rows are padded and masked, which gives a window the logits it gets alone to ~1e-5 in fp32
(other matrix shapes sum in another order): the same words and times, confidences to 3 decimals. int8 models quantize a call's activations with one scale
for the whole batch, so a window's logits would depend on the other rows: their windows run one per
call unless ``BatchSettings.int8`` allows batching them anyway.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import StreamerError


@dataclass(frozen=True)
class BatchSettings:
    max_windows: int = 8  # a call carries at most this many windows...
    max_wait_ms: float = 10.0  # ...and waits at most this long for more streams to have one
    int8: bool = False  # batch an int8 model's windows too (results then differ slightly from a lone run)

    def __post_init__(self) -> None:
        if self.max_windows < 1 or self.max_wait_ms < 0:
            raise StreamerError("max_windows must be at least 1 and max_wait_ms not negative")


@dataclass(frozen=True)
class BatchReport:
    windows: int
    streams: int
    compute_s: float
    audio_s: float  # seconds of audio the model saw in the call
    waiting: int  # streams that still had work when the call was made


class Entry:
    """A stream in the batcher, the sink its events go to, and whether it has nothing left in flight."""

    def __init__(self, stream, sink: Callable[[list], None]):
        self.stream, self.sink = stream, sink
        self.in_flight = 0
        self.alive = True
        self.drained = asyncio.Event()

    def update_drained(self) -> None:
        if self.in_flight == 0 and self.stream.urgency() is None:
            self.drained.set()
        else:
            self.drained.clear()


class Batcher:
    def __init__(self, model, settings: BatchSettings = BatchSettings(),
                 on_batch: Callable[[BatchReport], None] = lambda report: None):
        self.model, self.settings, self.on_batch = model, settings, on_batch
        int8 = model.manifest.get("precision") == "int8"
        self.max_windows = 1 if int8 and not settings.int8 else settings.max_windows
        self._entries: list[Entry] = []
        self._turn = 0  # round-robin start among streams
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamer-model")

    def add(self, stream, sink: Callable[[list], None]) -> Entry:
        entry = Entry(stream, sink)
        self._entries.append(entry)
        entry.update_drained()
        return entry

    def remove(self, entry: Entry) -> None:
        entry.alive = False
        if entry in self._entries:
            self._entries.remove(entry)

    def wake(self, entry: Entry | None = None) -> None:
        """A stream got audio (or its end): it may have work."""
        if entry is not None:
            entry.update_drained()
        self._wake.set()

    def waiting(self) -> int:
        return sum(1 for entry in self._entries if entry.stream.urgency() is not None)

    async def run(self) -> None:
        """The consumer; runs until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.settings.max_wait_ms > 0 and self.waiting() < self.max_windows:
                await asyncio.sleep(self.settings.max_wait_ms / 1000)
            while batch := self._take():
                await self._run(loop, batch)

    def _take(self) -> list[tuple[Entry, object]]:
        """A request from each of up to max_windows streams whose work is most urgent, in turn."""
        urgencies = {id(e): e.stream.urgency() for e in self._entries}
        levels = [u for u in urgencies.values() if u is not None]
        if not levels:
            return []
        turn = self._turn % len(self._entries)
        self._turn += 1
        rotated = self._entries[turn:] + self._entries[:turn]
        batch = []
        for entry in [e for e in rotated if urgencies[id(e)] == min(levels)][: self.max_windows]:
            request = entry.stream.next_request()
            if request is not None:
                entry.in_flight += 1
                entry.update_drained()
                batch.append((entry, request))
        return batch

    async def _run(self, loop, batch: list[tuple[Entry, object]]) -> None:
        waiting = self.waiting()
        requests = [request for _, request in batch]
        try:
            logits, calls = await loop.run_in_executor(self._executor, self._logits, requests)
        except Exception as exc:  # a failed call must not take down the other streams: each hears of it
            logits, calls = [exc] * len(batch), []
        for (entry, request), result in zip(batch, logits):
            entry.in_flight -= 1
            if not entry.alive:
                continue
            if isinstance(result, Exception):
                entry.sink([result])
            else:
                entry.sink(entry.stream.deliver(request, result))
            entry.update_drained()
        rate = self.model.geometry.sample_rate
        for rows, compute_s in calls:
            streams = len({id(batch[i][0]) for i in rows})
            self.on_batch(BatchReport(len(rows), streams, compute_s, sum(len(requests[i].audio) for i in rows) / rate,
                                      waiting))

    def _logits(self, requests) -> tuple[list[np.ndarray], list[tuple[list[int], float]]]:
        """Logits of every request, in model calls of windows of similar length (at most 1.5 × the
        shortest: padding a 1 s window to 8 s would cost more than it saves); the rows and time of each."""
        pad = self.model.geometry.pad_to_receptive_field
        order = sorted(range(len(requests)), key=lambda i: len(requests[i].audio))
        groups: list[list[int]] = []
        for i in order:
            if groups and len(requests[i].audio) <= 1.5 * len(requests[groups[-1][0]].audio):
                groups[-1].append(i)
            else:
                groups.append([i])
        logits: list = [None] * len(requests)
        calls = []
        for rows in groups:
            began = time.perf_counter()
            results = self.model.logits([pad(requests[i].audio) for i in rows], [requests[i].stats for i in rows])
            calls.append((rows, time.perf_counter() - began))
            for i, result in zip(rows, results):
                logits[i] = result
        return logits, calls

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
