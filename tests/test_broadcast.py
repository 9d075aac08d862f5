"""Broadcast mode: `streamer serve --ingest` transcribes one input once for any number of viewers."""

import asyncio
import json
import time
import wave

import numpy as np
import pytest
import websockets

from streamer.sources.ffmpeg import read_audio

from conftest import espeak
from test_server import start_server

SENTENCES = ["stortinget har vedtatt budsjettet", "regjeringen tar det til etterretning",
             "kongen åpnet stortinget i dag"]


def speech_file(folder, lead_s: float = 4.0):
    """The sentences with pauses between them, after lead_s of silence (time for viewers to join)."""
    parts = [np.zeros(int(lead_s * 16000), np.int16)]
    for i, text in enumerate(SENTENCES):
        parts += [read_audio(str(espeak(text, folder / f"{i}.wav"))), np.zeros(12000, np.int16)]
    path = folder / "ingest.wav"
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1), f.setsampwidth(2), f.setframerate(16000)
        f.writeframes(np.concatenate(parts).tobytes())
    return path


@pytest.fixture(scope="module")
def ingest(tmp_path_factory):
    return speech_file(tmp_path_factory.mktemp("broadcast"))


async def view(url: str, **connect) -> tuple[list[dict], list[float]]:
    """Every message (and when it came) until end."""
    messages, times = [], []
    async with websockets.connect(url, **connect) as ws:
        async for text in ws:
            messages.append(json.loads(text))
            times.append(time.monotonic())
            if messages[-1]["type"] == "end":
                break
    return messages, times


def test_fifty_viewers_get_the_same_events_in_the_same_order(tiny_nb, ingest):
    """50 viewers, and one that never reads, which holds nobody back; a viewer who joins after the first
    captions gets the recent ones first."""
    server = start_server(tiny_nb, "--ingest", ingest, "--ingest-realtime")
    url = f"ws://127.0.0.1:{server.port}/live"
    try:
        async def scenario():
            idle = await websockets.connect(url, max_queue=1)  # joins, then never reads a thing
            viewers = [asyncio.create_task(view(url)) for _ in range(50)]
            await asyncio.sleep(9)  # the first sentence is out by now
            late = await view(url)
            results = await asyncio.gather(*viewers)
            idle.transport.abort()
            return results, late

        results, (late, _) = asyncio.run(scenario())
        sequences = [messages for messages, _ in results]
        assert all(s == sequences[0] for s in sequences)
        kinds = [m["type"] for m in sequences[0]]
        assert kinds[0] == "ready" and kinds[-1] == "end" and kinds.count("final") >= 2 and "partial" in kinds
        heard = " ".join(m["raw"] for m in sequences[0] if m["type"] == "final")
        assert "stortinget" in heard and "regjeringen" in heard
        ends = [times[-1] for _, times in results]
        assert max(ends) - min(ends) < 1.0  # every viewer heard the end at once
        finals = [m for m in sequences[0] if m["type"] == "final"]
        late_finals = [m for m in late if m["type"] == "final"]
        assert late[0]["type"] == "ready" and late_finals == finals  # joined late, got the recent captions first
        assert len(late) < len(sequences[0])  # ...not the partials it missed
    finally:
        assert server.stop() == 0


def test_viewers_of_a_server_without_ingest_are_told_so(tiny_nb):
    server = start_server(tiny_nb)
    try:
        async def scenario():
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/live") as ws:
                message = json.loads(await ws.recv())
                await ws.wait_closed()
                return message, ws.close_code

        message, code = asyncio.run(scenario())
        assert message["code"] == "no_broadcast" and code == 1008
    finally:
        server.stop()


def test_a_viewer_whose_queue_fills_is_dropped_and_the_others_get_everything():
    from streamer.serve.broadcast import Broadcast

    async def scenario():
        dropped = []
        broadcast = Broadcast(queue_size=4, history=2, on_drop=lambda: dropped.append(1))
        slow, fast = broadcast.join(), broadcast.join()
        got = []
        for k in range(10):
            broadcast.publish({"type": "final", "segment": k, "text": f"ord {k}"})
            got.append(fast.queue.get_nowait())  # the fast viewer reads as it comes
        late = broadcast.join()
        history = [late.queue.get_nowait() for _ in range(late.queue.qsize())]
        return dropped, slow, broadcast, got, history

    dropped, slow, broadcast, got, history = asyncio.run(scenario())
    assert dropped == [1] and slow.dropped and slow not in broadcast.viewers
    assert [m["segment"] for m in got] == list(range(10))
    assert [m["segment"] for m in history] == [8, 9]  # the recent captions
