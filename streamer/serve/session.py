"""One websocket connection of the caption server: its stream, its outgoing events (a bounded queue), and
when each piece of its audio arrived, for the latency metrics."""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import deque

from ..core.events import Error, Final, Partial
from .protocol import ClientConfig, event_message
from .telemetry import Metrics


class Session:
    """One connection: its stream, its outgoing events, and when each piece of its audio arrived."""

    def __init__(self, ws, config: ClientConfig, stream, metrics: Metrics, queue_size: int):
        self.ws, self.config, self.stream, self.metrics = ws, config, stream, metrics
        self.outbox: asyncio.Queue = asyncio.Queue(maxsize=queue_size)
        self.samples_in = 0  # at the stream's 16 kHz
        self._arrivals: deque[tuple[int, float]] = deque(maxlen=4096)  # (16 kHz sample reached, time)
        self.overflowed = False
        self.failed = False  # recognition failed: the stream ends (its finals so far were sent)
        self.dropped_hops = 0
        self.farewell: dict | None = None  # an error event that goes out after the last finals (idle time)

    def audio_arrived(self, n_samples: int, rate: int) -> None:
        self.samples_in += round(n_samples * 16000 / rate)
        self._arrivals.append((self.samples_in, time.monotonic()))
        self.metrics.audio_in(n_samples / rate)

    def arrival(self, seconds: float) -> float | None:
        """When the audio at this stream time arrived."""
        positions = [p for p, _ in self._arrivals]
        i = bisect.bisect_left(positions, round(seconds * 16000))
        return self._arrivals[i][1] if i < len(self._arrivals) else None

    def sink(self, events: list) -> None:
        """Events of the stream (or an exception from the model call) into the client's queue."""
        now = time.monotonic()
        for event in events:
            if isinstance(event, Error) and event.code == "behind":
                self.metrics.behind.inc()
            elif isinstance(event, Error):
                self.failed = True
            self._observe(event, now)
            message = event_message(event, self.config)
            if message is not None:
                self.put(message)
        dropped = self.stream.dropped_hops
        self.metrics.dropped.inc(max(0, dropped - self.dropped_hops))
        self.dropped_hops = max(self.dropped_hops, dropped)

    def _observe(self, event, now: float) -> None:
        if isinstance(event, Partial) and event.text:
            arrived = self.arrival(event.end_s)
            if arrived is not None:
                self.metrics.partial.observe(now - arrived)
        elif isinstance(event, Final):
            arrived = self.arrival(event.words[-1].end_s)
            if arrived is not None:
                self.metrics.final.observe(now - arrived)

    def put(self, message: dict) -> None:
        try:
            self.outbox.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True  # the client does not read: the receive loop drops it
