"""`streamer connect URL [FILE | --mic]`: stream audio to a caption server and print its captions.

The audio is sent as 16 kHz pcm_s16le in 100 ms frames (a file paced like live audio with
--realtime, else as fast as the server takes it); events come back as the server makes them. Ctrl-C
(or the end of the file) sends eof, and the client waits for the last finals and ``end``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Callable, Iterator

import numpy as np

from streamer.model.geometry import SAMPLE_RATE
from streamer.errors import StreamerError
from streamer.core.events import Final, Partial

BLOCK_SAMPLES = SAMPLE_RATE // 10


class ServerError(StreamerError):
    """The server refused the stream or ended it with an error."""


def event_from_json(message: dict):
    """A partial or final event as the library's classes (for the terminal view), or None."""
    from streamer.text.ctc import Word

    raw = message.get("raw")
    if message.get("type") == "partial":
        return Partial(message["segment"], message["text"], message["stable_chars"], message["start"], message["end"],
                       raw if raw != message["text"] else None)
    if message.get("type") == "final":
        words = tuple(Word(w["word"], w["start"], w["end"], w["confidence"], w.get("raw"))
                      for w in message.get("words", []))
        return Final(message["segment"], words, message["start"], message["end"], raw if raw != message["text"] else None)
    return None


def websocket_url(url: str) -> str:
    """The server's websocket URL: the http:// address `streamer serve` prints works too."""
    for web, socket in (("http://", "ws://"), ("https://", "wss://")):
        if url.startswith(web):
            return socket + url[len(web):]
    return url


async def caption(url: str, blocks: Iterator[np.ndarray], on_message: Callable[[dict], None],
                  token: str | None = None, settings: dict | None = None, stop: threading.Event | None = None) -> None:
    """Send int16 16 kHz blocks (a blocking iterator, read on a thread) to url; every message the server
    sends goes to on_message, up to its end. Raises ServerError when the server refuses or errs fatally."""
    import websockets

    url = websocket_url(url)
    config = {"sample_rate": SAMPLE_RATE, "format": "pcm_s16le", "partials": True, "words": True}
    config |= {"token": token} if token else {}
    config |= {"settings": settings} if settings else {}
    try:
        ws = await websockets.connect(url, max_size=None, open_timeout=30)
    except (OSError, websockets.exceptions.InvalidHandshake, websockets.exceptions.InvalidURI,
            asyncio.TimeoutError) as exc:
        raise ServerError(f"cannot connect to {url}: {exc}") from None
    async with ws:
        try:
            await ws.send(json.dumps(config))
            first = json.loads(await ws.recv())
        except websockets.exceptions.ConnectionClosed as exc:
            raise ServerError(f"the server closed the stream: {exc.rcvd.reason if exc.rcvd else exc}") from None
        if first.get("type") != "ready":
            raise ServerError(f"the server refused the stream: {first.get('message', first)}")
        sender = asyncio.create_task(send_audio(ws, blocks, stop or threading.Event()))
        try:
            async for text in ws:
                message = json.loads(text)
                on_message(message)
                if message.get("type") == "end":
                    break
        except websockets.exceptions.ConnectionClosedError as exc:
            raise ServerError(f"the server closed the stream: {exc.rcvd.reason if exc.rcvd else exc}") from None
        finally:
            if sender.done() and not sender.cancelled() and sender.exception() is not None:
                raise sender.exception()
            sender.cancel()


async def send_audio(ws, blocks: Iterator[np.ndarray], stop: threading.Event) -> None:
    """Blocks from a thread (the source may block: a microphone, a paced file) to the socket, then eof."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(maxsize=50)

    def read() -> None:
        try:
            for block in blocks:
                if stop.is_set():
                    break
                asyncio.run_coroutine_threadsafe(queue.put(block), loop).result()
        except BaseException as exc:  # noqa: BLE001 - handed to the event loop, which reports it
            asyncio.run_coroutine_threadsafe(queue.put(exc), loop).result()
        asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()

    threading.Thread(target=read, daemon=True, name="streamer-connect-audio").start()
    while (block := await queue.get()) is not None:
        if isinstance(block, BaseException):
            await ws.send(json.dumps({"type": "eof"}))
            raise block
        await ws.send(np.asarray(block, "<i2").tobytes())
    await ws.send(json.dumps({"type": "eof"}))
