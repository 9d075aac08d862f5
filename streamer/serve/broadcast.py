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
from ..core.events import Final, Partial


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
        """Events of the ingest stream (or an exception from a model call)."""
        for event in events:
            if isinstance(event, (Partial, Final)):
                self.publish(event.to_json())
            elif isinstance(event, Exception):
                self.publish({"type": "error", "code": "internal", "message": f"the model call failed: {event}"})


async def run_ingest(source, stream, batcher, broadcast: Broadcast, log: Callable[[str], None]) -> None:
    """Feed source's blocks (read on a thread) to stream until the input ends, then its last finals and end."""
    loop = asyncio.get_running_loop()
    entry = batcher.add(stream, broadcast.sink)
    finished = asyncio.Event()
    failure: list[str] = []

    def feed(block) -> None:
        broadcast.sink(stream.feed(block))
        batcher.wake(entry)

    def read() -> None:
        try:
            for block in source.blocks():
                loop.call_soon_threadsafe(feed, block)
        except StreamerError as exc:
            failure.append(str(exc))
        finally:
            loop.call_soon_threadsafe(finished.set)

    threading.Thread(target=read, daemon=True, name="streamer-ingest").start()
    try:
        await finished.wait()
        if failure:
            log(f"ingest failed: {failure[0]}")
            broadcast.publish({"type": "error", "code": "ingest", "message": failure[0]})
        broadcast.sink(stream.end())
        batcher.wake(entry)
        await entry.drained.wait()
        log(f"ingest ended at {source.position_s:.1f} s of input")
        broadcast.publish({"type": "end"})
    finally:
        batcher.remove(entry)
