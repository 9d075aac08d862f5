"""Batcher: the one place where windows of audio from many streams become model calls.

Every command drives its streams through a ``Batcher``: the server and broadcast on their event
loop, the CLI and library users through ``streamer.driver.captioner`` (a private loop). Streams
(``streamer.core.stream.Stream``, sans-I/O) join with ``add(stream, sink)``; their events, and an
``Error`` event when they fail, go to the sink.

- **Lifecycle.** A request is taken (``next_request``), then delivered (``deliver``) or failed
  (``fail``). At most one request per stream is in flight, so a stream's requests run in its own
  order. A failed call is retried (``max_retries``, a multi-window call row by row first, so one
  bad window costs its own stream only); a request that still fails, or a stream whose post-model
  work or sink raises, fails that stream alone: an error event, its finals so far stand, and it
  ends. The consumer never dies of a stream's or a backend's exception.
- **Batches** close at ``max_windows`` windows or ``max_wait_ms`` after the first one was ready,
  whichever comes first, and up to the backend's ``max_in_flight`` calls run at once. A call groups
  windows of similar length (at most 1.5 × the shortest: a 1 s window padded to 8 s costs more than
  it saves). A backend whose rows are not independent (int8: one activation scale per call) gets
  one window per call unless ``BatchSettings.int8`` allows batching anyway.
- **Scheduling cannot starve.** What may end a caption goes first, then partials, then commits in
  running speech; but a commit that has waited ``max_commit_wait_ms`` goes before any partial. A
  stream whose partials wait merges their hops into one wider window and then drops the oldest
  (``WindowSettings.max_hops``) before any final is delayed.
- **Overload** (one policy for every command, ``streamer.driver.overload``): partials merge and drop
  hops first; then, while captions trail the audio by more than ``max_lag_s``, newly arriving audio
  is skipped as silence. The stream hears of it in one ``Error`` event of code ``behind`` per skip
  and goes on; ``add(..., on_skip=)`` is told where each skip began and ended.
- **Post-model work** (CTC or beam decoding, the stitcher, the text stage) runs on worker threads,
  one stream at a time under its lock, never on the event loop.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..core.events import Error
from ..errors import StreamerError
from ..backends.backend import Backend, ModelInput
from ..backends.shapes import bucket_of
from .overload import Skip, Skipper


@dataclass(frozen=True)
class BatchSettings:
    max_windows: int | None = None  # a call carries at most this many windows (None: the backend's max_batch)...
    max_wait_ms: float = 10.0  # ...and waits at most this long after the first for more
    int8: bool = False  # batch windows of a backend whose rows are not independent (int8) too
    max_commit_wait_ms: float = 1000.0  # a commit waiting this long goes before every partial
    max_retries: int = 2  # a failed call is tried again this many times
    retry_delay_ms: float = 50.0  # before the first retry (doubled for each next)
    post_threads: int = 2  # worker threads for decoding and the text stage
    max_lag_s: float | None = None  # captions trailing the audio more than this: new audio skipped (None: never)

    def __post_init__(self) -> None:
        if (self.max_windows is not None and self.max_windows < 1) or self.max_wait_ms < 0 or self.max_commit_wait_ms < 0:
            raise StreamerError("max_windows must be at least 1, max_wait_ms and max_commit_wait_ms not negative")
        if self.max_retries < 0 or self.retry_delay_ms < 0 or self.post_threads < 1:
            raise StreamerError("max_retries and retry_delay_ms must not be negative, post_threads at least 1")
        if self.max_lag_s is not None and not self.max_lag_s > 0:
            raise StreamerError(f"max_lag_s must be more than 0 seconds (or None), not {self.max_lag_s}")


@dataclass(frozen=True)
class BatchReport:
    windows: int
    streams: int
    compute_s: float
    audio_s: float  # seconds of audio the model saw in the call
    waiting: int  # streams that still had work when the call was made


class Entry:
    """A stream in the batcher: its sink, its lock (post-model work and new audio never overlap), and
    its state: a request in flight, failed, or drained (nothing waiting, nothing in flight)."""

    def __init__(self, stream, sink: Callable[[list], None], skipper: Skipper):
        self.stream, self.sink, self.skipper = stream, sink, skipper
        self.lock = asyncio.Lock()
        self.in_flight = False
        self.alive = True
        self.failed = False
        self.commit_since: float | None = None  # when a commit was first seen waiting
        self.drained = asyncio.Event()
        self.ended = asyncio.Event()  # set when the stream failed (it has ended)
        self.update()

    def waiting(self):
        return None if self.failed or self.in_flight or not self.alive else self.stream.waiting()

    def update(self) -> None:
        if self.failed or (not self.in_flight and self.stream.waiting() is None):
            self.drained.set()
        else:
            self.drained.clear()

    async def feed(self, call, *args) -> None:
        """call(*args) (the stream's feed or end) on the loop, under the stream's lock; its events to the sink."""
        try:
            async with self.lock:
                if not self.failed:
                    self._sink(call(*args))
        finally:
            self.update()

    def _sink(self, events: list) -> None:
        if events:
            self.sink(events)


class Batcher:
    def __init__(self, backend: Backend, settings: BatchSettings = BatchSettings(),
                 on_batch: Callable[[BatchReport], None] = lambda report: None,
                 on_failure: Callable[[str], None] = lambda message: None,
                 clock: Callable[[], float] = time.monotonic):
        """on_failure: told of each failed call and failed stream (a log line); clock: seconds, for how long a
        commit has waited, a batch's wait and a call's compute time (a fake one in tests)."""
        self.backend, self.settings, self.on_batch, self.on_failure = backend, settings, on_batch, on_failure
        self.clock = clock
        capabilities = backend.capabilities
        batchable = capabilities.rows_independent or settings.int8
        self.max_windows = min(settings.max_windows or capabilities.max_batch, capabilities.max_batch) if batchable else 1
        self.max_in_flight = capabilities.max_in_flight
        self._entries: list[Entry] = []
        self._turn = 0  # round-robin start among streams
        self._wake = asyncio.Event()
        self._calls: set[asyncio.Task] = set()
        self._post = ThreadPoolExecutor(max_workers=settings.post_threads, thread_name_prefix="streamer-post")
        self._closed = False

    # ---- streams
    def add(self, stream, sink: Callable[[list], None], on_skip: Callable[[Skip], None] = lambda skip: None) -> Entry:
        """A stream joins; its events go to sink, and on_skip hears of audio the overload policy skipped."""
        entry = Entry(stream, sink, Skipper(self.settings.max_lag_s, on_skip))
        self._entries.append(entry)
        return entry

    def remove(self, entry: Entry) -> None:
        entry.alive = False
        if entry in self._entries:
            self._entries.remove(entry)

    async def feed(self, entry: Entry, block: np.ndarray, waited_s: float = 0.0) -> None:
        """Audio into a stream (its events to its sink), then wake the consumer. waited_s: how long the block
        waited after it was read (a live source on a thread), part of the lag the overload policy
        measures. A block the stream refuses raises StreamerError and changes nothing; any other
        exception fails that stream alone."""
        await self._guarded(entry, self._admitted, entry, block, waited_s)

    def _admitted(self, entry: Entry, block: np.ndarray, waited_s: float) -> list:
        """The stream's events for the block, or for silence in its place (streamer.driver.overload)."""
        lag_s = waited_s + entry.stream.lag_s()
        block, notices = entry.skipper.admit(block, entry.stream.pcm.sample_rate, lag_s)
        if notices:
            self.on_failure(f"a stream is {lag_s:.1f} s behind its audio: skipping new audio")
        return notices + entry.stream.feed(block)

    async def end(self, entry: Entry) -> None:
        """No more audio for this stream: its last requests are scheduled; await ``entry.drained``."""
        entry.skipper.finish()
        await self._guarded(entry, entry.stream.end)

    async def _guarded(self, entry: Entry, call, *args) -> None:
        try:
            await entry.feed(call, *args)
        except StreamerError:
            raise
        except Exception as exc:  # noqa: BLE001 - a defect in one stream's work ends that stream alone
            self._fail(entry, None, exc)
        finally:
            self.wake()

    def wake(self) -> None:
        self._wake.set()

    def waiting(self) -> int:
        return sum(1 for entry in self._entries if entry.waiting() is not None)

    # ---- the consumer
    async def run(self) -> None:
        """The consumer; runs until cancelled (then waits for nothing: calls in flight are cancelled too)."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if len(self._calls) >= self.max_in_flight:
                    continue  # a call that ends wakes the consumer
                await self._fill_window()
                while len(self._calls) < self.max_in_flight and (batch := self._take()):
                    call = asyncio.create_task(self._run(batch))
                    self._calls.add(call)
                    call.add_done_callback(self._call_done)
        finally:
            for call in self._calls:
                call.cancel()

    def _call_done(self, call: asyncio.Task) -> None:
        self._calls.discard(call)
        self.wake()

    async def _fill_window(self) -> None:
        """Wait (up to max_wait_ms from now) until a full batch is ready or a call slot frees up."""
        if self.settings.max_wait_ms <= 0 or self.max_windows == 1:
            return
        deadline = self.clock() + self.settings.max_wait_ms / 1000
        while 0 < self.waiting() < self.max_windows and (left := deadline - self.clock()) > 0:
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except asyncio.TimeoutError:
                break
            self._wake.clear()

    def _take(self) -> list[tuple[Entry, object]]:
        """A request from each of up to max_windows streams, most urgent first (see the module doc)."""
        now = self.clock()
        ranked = []
        count = len(self._entries)
        for position, entry in enumerate(self._entries):
            if entry.in_flight:
                continue  # a commit it has waiting keeps its age
            waiting = entry.waiting()
            if waiting is None:
                entry.commit_since = None
                continue
            level, has_commit = waiting
            if not has_commit:
                entry.commit_since = None
            elif entry.commit_since is None:
                entry.commit_since = now
            overdue = has_commit and now - entry.commit_since >= self.settings.max_commit_wait_ms / 1000
            ranked.append(((0 if overdue else 1, level, (position - self._turn) % count), overdue, entry))
        if not ranked:
            return []
        self._turn += 1
        batch = []
        for _, overdue, entry in sorted(ranked, key=lambda item: item[0])[: self.max_windows]:
            request = entry.stream.next_request(commit_first=overdue)
            if request is None:
                entry.update()
                continue
            if request.window.kind != "partial":
                entry.commit_since = None
            entry.in_flight = True
            entry.update()
            batch.append((entry, request))
        return batch

    async def _run(self, batch: list[tuple[Entry, object]]) -> None:
        waiting = self.waiting()
        try:
            results = await self._logits([request for _, request in batch], [entry for entry, _ in batch], waiting)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a defect here fails these requests' streams, never hangs them
            self.on_failure(f"a batch of {len(batch)} windows could not be run: {exc.__class__.__name__}: {exc}")
            results = [exc] * len(batch)
        await asyncio.gather(*(self._deliver(entry, request, result)
                               for (entry, request), result in zip(batch, results)))

    async def _deliver(self, entry: Entry, request, result) -> None:
        """Logits (or the exception that stands for them) back into the stream, off the loop."""
        loop = asyncio.get_running_loop()
        try:
            async with entry.lock:
                if not entry.alive or entry.failed:
                    return
                if isinstance(result, BaseException):
                    raise result
                events = await loop.run_in_executor(self._post, entry.stream.deliver, request, result)
                entry.in_flight = False
                entry._sink(events)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # this stream alone: an error event, its finals so far stand
            self._fail(entry, request, exc)
        finally:
            entry.in_flight = False
            entry.update()

    def _fail(self, entry: Entry, request, exc: BaseException) -> None:
        entry.failed = True
        entry.ended.set()
        entry.update()
        message = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
        self.on_failure(f"a stream failed: {message}")
        try:
            events = entry.stream.fail(request, message)
        except Exception as inner:  # noqa: BLE001 - the stream is beyond use; say so all the same
            events = [Error("internal", f"recognition failed ({message}; then {inner})")]
        try:
            entry.sink(events)
        except Exception as inner:  # noqa: BLE001 - a sink that cannot take the error: nothing more to do
            self.on_failure(f"a stream's sink failed: {inner}")

    # ---- model calls
    async def _logits(self, requests, entries, waiting: int) -> list:
        """Logits (or an exception) for each request, in calls of windows of similar length."""
        results: list = [None] * len(requests)
        for rows in self._groups(requests):
            for i, result in zip(rows, await self._call_with_retries([requests[i] for i in rows], entries, rows,
                                                                     waiting)):
                results[i] = result
        return results

    def _groups(self, requests) -> list[list[int]]:
        """Windows of one length bucket together, where the backend pads to buckets; else of lengths within
        1.5 × the shortest."""
        buckets = self.backend.capabilities.length_buckets
        order = sorted(range(len(requests)), key=lambda i: len(requests[i].audio))
        groups: list[list[int]] = []
        for i in order:
            if groups and self._together(len(requests[groups[-1][0]].audio), len(requests[i].audio), buckets):
                groups[-1].append(i)
            else:
                groups.append([i])
        return groups

    @staticmethod
    def _together(shortest: int, n: int, buckets: tuple[int, ...]) -> bool:
        return bucket_of(n, buckets) == bucket_of(shortest, buckets) if buckets else n <= 1.5 * shortest

    async def _call_with_retries(self, requests, entries, rows, waiting: int) -> list:
        """One call's logits; a failed call is retried, a multi-window one window by window first."""
        try:
            return await self._call(requests, [entries[i] for i in rows], waiting)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any backend failure
            self.on_failure(f"a model call of {len(requests)} windows failed: {exc.__class__.__name__}: {exc}")
            if len(requests) > 1:
                return [r for i, request in enumerate(requests)
                        for r in await self._retry([request], [entries[rows[i]]], waiting, exc)]
            return await self._retry(requests, [entries[i] for i in rows], waiting, exc)

    async def _retry(self, requests, entries, waiting: int, error: BaseException) -> list:
        delay = self.settings.retry_delay_ms / 1000
        for _ in range(self.settings.max_retries):
            await asyncio.sleep(delay)
            delay *= 2
            try:
                return await self._call(requests, entries, waiting)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                error = exc
                self.on_failure(f"a retried model call failed: {exc.__class__.__name__}: {exc}")
        return [StreamerError(f"the model call failed {self.settings.max_retries + 1} times ({error})")] * len(requests)

    async def _call(self, requests, entries, waiting: int) -> list[np.ndarray]:
        pad = self.backend.info.geometry.pad_to_receptive_field
        began = self.clock()
        logits = await self.backend.logits([ModelInput(pad(r.audio), r.stats) for r in requests])
        if len(logits) != len(requests):
            raise StreamerError(f"the backend returned {len(logits)} results for {len(requests)} windows")
        rate = self.backend.info.geometry.sample_rate
        self.on_batch(BatchReport(len(requests), len({id(e) for e in entries}), self.clock() - began,
                                  sum(len(r.audio) for r in requests) / rate, waiting))
        return list(logits)

    async def warm_up(self, lengths_s: tuple[float, ...] = (1.24, 8.0)) -> None:
        """One call per window length, so the first streams do not pay the runtime's start-up."""
        rate = self.backend.info.geometry.sample_rate
        for seconds in lengths_s:
            await self.backend.logits([ModelInput(np.zeros(int(seconds * rate), np.float32))])

    async def close(self, timeout_s: float = 2.0) -> None:
        """Wait (at most timeout_s) for calls in flight, then stop the post-model threads."""
        if self._calls:
            await asyncio.wait(set(self._calls), timeout=timeout_s)
        self._post.shutdown(wait=False, cancel_futures=True)
