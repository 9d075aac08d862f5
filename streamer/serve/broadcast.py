"""Broadcast mode: one input transcribed once, its events sent to any number of viewers.

``Broadcast`` keeps the recent captions (the last finals and the partial after them) for viewers who
join late, and hands every event to each viewer's own bounded queue without waiting: a viewer whose
queue is full (it does not read) is dropped, never waited for, so every other viewer gets the same
events in the same order at once. ``run_ingest`` feeds a ``LiveSource`` (read on a thread, handed
over with how long each block waited) into a stream served by the server's batcher; ``serve_viewer``
is one viewer's connection.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Callable

from ..core.events import Error, Final, Partial
from ..errors import StreamerError
from ..sources.handoff import read_ahead
from .http import query_token, token_ok
from .protocol import ProtocolError
from .session import CLOSE_GOING_AWAY, CLOSE_POLICY, count_failed, refuse
from .telemetry import Metrics


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


async def run_ingest(source, stream, batcher, broadcast: Broadcast, log: Callable[[str], None]) -> str | None:
    """Feed source's blocks to stream until the input ends, then its last finals and end. The blocks are
    read on a thread and handed over with how long each waited (``read_ahead``): a live input never
    waits, and the batcher's overload policy skips audio as silence when the captions fall too far
    behind (viewers get its ``behind`` error event); a file waits. Returns why the input failed when
    it never gave any audio (a 404, no audio stream), else None."""
    def skipped(skip) -> None:
        log(f"captions fell behind: skipped {skip.end_s - skip.start_s:.1f} s of the input at {skip.start_s:.1f} s "
            "(--max-lag-s)")

    entry = batcher.add(stream, broadcast.sink, skipped)
    blocks = read_ahead(source.blocks(), source.live or source.settings.realtime)
    failure = None
    try:
        while (item := await asyncio.to_thread(next, blocks, None)) is not None:
            await batcher.feed(entry, *item)
    except StreamerError as exc:
        failure = str(exc)
    try:
        if failure:
            log(f"ingest failed: {failure}")
            broadcast.publish(Error("ingest", failure).to_json())
        await batcher.end(entry)
        await entry.drained.wait()
        log(f"ingest ended at {source.position_s:.1f} s of input")
        broadcast.publish({"type": "end"})
    finally:
        batcher.remove(entry)
    return failure if failure and source.origin_pts_s is None else None


async def serve_viewer(ws, broadcast: "Broadcast | None", settings, metrics: Metrics, stopping: asyncio.Event) -> None:
    """A viewer of the broadcast: ready, the recent captions, then every event as it comes, until end.
    settings: the server's (token, max_viewers, video_url)."""
    if broadcast is None:
        metrics.refused.labels("no_broadcast").inc()
        await refuse(ws, ProtocolError("no_broadcast", "this server has no broadcast: start it with --ingest"))
        return
    if not token_ok(query_token(ws.request.path.partition("?")[2]), settings.token):
        metrics.refused.labels("unauthorized").inc()
        await refuse(ws, ProtocolError("unauthorized", "a token is required: add ?token=… to the URL"))
        return
    if len(broadcast.viewers) >= settings.max_viewers:  # no await between this and join: no race
        metrics.refused.labels("busy").inc()
        await refuse(ws, ProtocolError("busy", f"the broadcast is full ({settings.max_viewers} "
                                                     "viewers); try again later"))
        return
    viewer = broadcast.join()
    metrics.viewers.inc()
    try:
        await ws.send(json.dumps({"type": "ready", "mode": "viewer", "video": settings.video_url}))
        while True:
            message = await viewer.queue.get()
            sent = asyncio.ensure_future(ws.send(json.dumps(message, ensure_ascii=False)))
            while not sent.done():  # a viewer that stops reading is dropped, not waited for
                await asyncio.wait({sent}, timeout=0.5)
                if viewer.dropped and not sent.done():
                    sent.cancel()
                    ws.transport.abort()
                    return
            sent.result()
            if message["type"] == "end":
                await ws.close(CLOSE_GOING_AWAY if stopping.is_set() else 1000)
                return
            if viewer.dropped and viewer.queue.empty():
                await ws.close(CLOSE_POLICY, "viewer too slow: dropped from the broadcast")
                return
    except Exception as exc:  # the viewer went away, or its connection failed
        if not viewer.dropped:
            count_failed(exc, metrics.dropped_viewers, lost=True)
        return
    finally:
        broadcast.leave(viewer)
        metrics.viewers.dec()
