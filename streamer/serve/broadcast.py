"""Broadcast mode: one input transcribed once, its events sent to any number of viewers.

``Broadcast`` keeps the recent captions (the last finals and the partial after them) for viewers who
join late, and hands every event to each viewer's own bounded queue without waiting: a viewer whose
queue is full (it does not read) is dropped, never waited for, so every other viewer gets the same
events in the same order at once. ``run_ingest`` feeds a ``LiveSource`` (read on a thread) into a
stream served by the server's batcher.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Callable

from ..errors import StreamerError

HANDOFF_BLOCKS = 20  # blocks (of 100 ms) between the reader thread and the stream
from ..core.events import Error, Final, Partial


class Viewer:
    def __init__(self, queue_size: int):
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=queue_size)
        self.dropped = False


class Broadcast:
    def __init__(self, queue_size: int = 256, history: int = 20,
                 on_drop: Callable[[], None] = lambda: None):
        self.queue_size, self.on_drop = queue_size, on_drop
        self.viewers: set[Viewer] = set()
        self._finals: deque[dict] = deque(maxlen=history)
        self._partial: dict | None = None  # the latest partial, unless a final has replaced it
        self.ended = False

    def join(self) -> Viewer:
        """A new viewer, its queue already holding the recent captions."""
        viewer = Viewer(self.queue_size + len(self._finals) + 2)
        for message in [*self._finals, *([self._partial] if self._partial else [])]:
            viewer.queue.put_nowait(message)
        if self.ended:
            viewer.queue.put_nowait({"type": "end"})
        self.viewers.add(viewer)
        return viewer

    def leave(self, viewer: Viewer) -> None:
        self.viewers.discard(viewer)

    def publish(self, message: dict) -> None:
        if message["type"] == "final":
            self._finals.append(message)
            self._partial = None
        elif message["type"] == "partial":
            self._partial = message if message["text"] else None
        elif message["type"] == "end":
            self.ended = True
        for viewer in list(self.viewers):
            try:
                viewer.queue.put_nowait(message)
            except asyncio.QueueFull:  # it does not read: drop it rather than wait
                viewer.dropped = True
                self.viewers.discard(viewer)
                self.on_drop()

    def sink(self, events: list) -> None:
        """Events of the ingest stream (partials, finals, and an error when its recognition failed)."""
        for event in events:
            if isinstance(event, (Partial, Final, Error)):
                self.publish(event.to_json())


async def run_ingest(source, stream, batcher, broadcast: Broadcast, log: Callable[[str], None]) -> None:
    """Feed source's blocks (read on a thread) to stream until the input ends, then its last finals and end."""
    loop = asyncio.get_running_loop()
    entry = batcher.add(stream, broadcast.sink)
    failure: list[str] = []

    blocks: asyncio.Queue = asyncio.Queue(maxsize=HANDOFF_BLOCKS)

    async def feed() -> None:
        while (block := await blocks.get()) is not None:
            await batcher.feed(entry, block)

    def read() -> None:  # the reader thread waits while the hand-off is full: the input is read as it is recognized
        try:
            for block in source.blocks():
                asyncio.run_coroutine_threadsafe(blocks.put(block), loop).result()
        except StreamerError as exc:
            failure.append(str(exc))
        finally:
            asyncio.run_coroutine_threadsafe(blocks.put(None), loop).result()

    threading.Thread(target=read, daemon=True, name="streamer-ingest").start()
    try:
        await feed()
        if failure:
            log(f"ingest failed: {failure[0]}")
            broadcast.publish({"type": "error", "code": "ingest", "message": failure[0]})
        await batcher.end(entry)
        await entry.drained.wait()
        log(f"ingest ended at {source.position_s:.1f} s of input")
        broadcast.publish({"type": "end"})
    finally:
        batcher.remove(entry)
