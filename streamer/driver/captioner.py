"""The synchronous driver: streams that run their model calls inside ``accept``, for the CLI, the
microphone, library users and tests, through the same ``Batcher`` as the server.

    captioner = Captioner(backend_or_model, StreamSettings())
    stream = captioner.stream(sample_rate=48000)
    for block in blocks:
        for event in stream.accept(block):   # partial, final (and error) events
            ...
    events = stream.finish()

A ``Captioner`` owns a private event loop, run in the calling thread for each call, and one batcher
on it (its consumer runs during each call; between calls nothing is in flight); any number of its
streams share the backend. ``accept`` returns once every model call the
block made possible is done, so the events are exactly those the audio so far gives. Not for use
from inside a running event loop: async code adds its streams to a ``Batcher`` itself.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import replace
from typing import Callable

import numpy as np

from ..model.geometry import SAMPLE_RATE
from ..core.events import Error
from ..core.stream import Recognizer, StreamSettings
from ..errors import StreamerError
from .batcher import Batcher, BatchSettings
from .overload import Skip
from ..backends.onnx import OnnxBackend


def as_backend(model):
    """A Backend as it is, or an OnnxModel wrapped in the in-process ONNX Runtime backend."""
    if hasattr(model, "capabilities"):
        return model

    return OnnxBackend(model)


class Captioner:
    def __init__(self, model, settings: StreamSettings = StreamSettings(), decoder=None,
                 batch: BatchSettings = BatchSettings(max_wait_ms=0)):
        """model: a Backend or an OnnxModel; decoder: a beam decoder to share (else settings.decoder's)."""
        self._owned = not hasattr(model, "capabilities")  # a backend made here is closed here
        self.backend = as_backend(model)
        self.recognizer = Recognizer(self.backend.info, settings, decoder)
        self._loop = asyncio.new_event_loop()
        self.batcher = Batcher(self.backend, replace(batch, max_wait_ms=0))
        weakref.finalize(self, self._loop.close)

    def stream(self, sample_rate: int = SAMPLE_RATE, on_skip: Callable[[Skip], None] = lambda skip: None
               ) -> "SyncStream":
        """A stream of mono audio at sample_rate; on_skip hears of audio the overload policy skipped (its
        ``behind`` error events are not returned: a synchronous caller is told through on_skip)."""
        return SyncStream(self, self.recognizer.stream(sample_rate), on_skip)

    def run(self, coroutine):
        """Run coroutine on the private loop with the batcher's consumer beside it."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._loop.run_until_complete(self._with_consumer(coroutine))
        coroutine.close()
        raise StreamerError("Captioner runs its own event loop: from async code, add streams to a Batcher")

    async def _with_consumer(self, coroutine):
        consumer = asyncio.ensure_future(self.batcher.run())
        try:
            return await coroutine
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.run_until_complete(self.batcher.close())
        self._loop.close()
        if self._owned:
            self.backend.close()

    def __enter__(self) -> "Captioner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SyncStream:
    """A stream whose ``accept`` and ``finish`` run its model calls (sans-I/O ``Stream`` underneath)."""

    def __init__(self, captioner: Captioner, stream, on_skip: Callable[[Skip], None]):
        self.captioner, self.stream = captioner, stream
        self._events: list = []
        self._entry = captioner.batcher.add(stream, self._events.extend, on_skip)

    def accept(self, block: np.ndarray, waited_s: float = 0.0) -> list:
        """Take a block of mono audio at the stream's sample rate, int16 or float32 in [-1, 1], any length;
        return new events. waited_s: how long the block waited after it was read (a live source handed
        over from a thread), which the overload policy counts. A bad block raises StreamerError and
        changes nothing."""
        return self.captioner.run(self._drive(self.captioner.batcher.feed, block, waited_s))

    def finish(self) -> list:
        """End of audio: every open caption becomes final."""
        return self.captioner.run(self._drive(self.captioner.batcher.end))

    async def _drive(self, call, *args) -> list:
        try:
            await call(self._entry, *args)
            self.captioner.batcher.wake()
            await self._entry.drained.wait()
        finally:
            events, self._events[:] = list(self._events), []
        return [e for e in events if not (isinstance(e, Error) and e.code == "behind")]

    def reset(self) -> None:
        self.stream.reset()

    @property
    def failed(self) -> bool:
        return self._entry.failed

    def __getattr__(self, name):  # clipped_samples, dropped_hops, lag_s, text … of the stream
        return getattr(self.stream, name)


def until_error(events):
    """The events, each as it comes; after an error event (the stream failed and ended), a StreamerError
    with its message, for commands that stop there (the captions before it already went out)."""
    for event in events:
        yield event
        if isinstance(event, Error):
            raise StreamerError(event.message)
