"""Broadcast mode: `streamer serve --ingest` transcribes one input once for any number of viewers."""

import asyncio
import json
import time

import pytest
import websockets

from streamer.text.scoring import cer

from helpers import LiveHls, hls_broadcast, speech_file, start_server

@pytest.fixture(scope="module")
def ingest(tmp_path_factory):
    return speech_file(tmp_path_factory.mktemp("broadcast"))


async def view(url: str, messages: list[dict] | None = None, **connect) -> tuple[list[dict], list[float]]:
    """Every message (and when it came) until end; into messages as they come, when given."""
    messages, times = [] if messages is None else messages, []
    async with websockets.connect(url, **connect) as ws:
        async for text in ws:
            messages.append(json.loads(text))
            times.append(time.monotonic())
            if messages[-1]["type"] == "end":
                break
    return messages, times


async def until_final(messages: list[dict], after: int = 0, timeout_s: float = 60.0) -> None:
    """Until messages (a viewer's, as they come) hold more than after finals."""
    deadline = time.monotonic() + timeout_s
    while sum(m["type"] == "final" for m in messages) <= after:
        assert time.monotonic() < deadline, messages
        await asyncio.sleep(0.05)


def test_fifty_viewers_get_the_same_events_in_the_same_order(tiny_nb, ingest):
    """50 viewers, and one that never reads, which holds nobody back; a viewer who joins after the first
    captions gets the recent ones first."""
    server = start_server(tiny_nb, "--ingest", ingest, "--ingest-realtime")
    url = f"ws://127.0.0.1:{server.port}/live"
    try:
        async def scenario():
            idle = await websockets.connect(url, max_queue=1)  # joins, then never reads a thing
            first: list[dict] = []
            viewers = [asyncio.create_task(view(url, first if i == 0 else None)) for i in range(50)]
            await until_final(first)  # the first sentence is out
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


@pytest.fixture(scope="module")
def hls(tmp_path_factory):
    """8 sentences (about 22 s): room for an outage, a reconnect and a viewer who joins after it."""
    return hls_broadcast(tmp_path_factory.mktemp("hls"), sentences=8)


def test_the_ingest_dying_and_coming_back_costs_the_viewers_nothing(tiny_nb, hls):
    """serve --ingest on a live HLS stream whose HTTP server dies 4 s after the first viewer joins and is back
    3 s later: the caption server stays up, its viewer stays connected and gets every sentence once, in
    order (the playlist is taken up where the audio stopped), a viewer who joins after the outage gets the
    recent captions, and the server exits cleanly.

    End to end on purpose (reconnecting itself is tests/test_live_source.py's, on a fake clock): only real
    ffmpeg on a real playlist shows that -live_start_index and -copyts take the audio up where it stopped,
    and only the serving process shows that an ingest outage costs the viewers and the server nothing."""
    live = LiveHls(hls["folder"])
    live.start()
    server = start_server(tiny_nb, "--ingest", f"http://127.0.0.1:{live.port}/live.m3u8")
    url = f"ws://127.0.0.1:{server.port}/live"
    try:
        async def scenario():
            seen: list[dict] = []
            viewer = asyncio.create_task(view(url, seen))
            await asyncio.sleep(4)
            await asyncio.to_thread(live.stop)
            await asyncio.sleep(3)
            await asyncio.to_thread(live.start)
            await until_final(seen, after=sum(m["type"] == "final" for m in seen))  # captions again
            late = asyncio.create_task(view(url))
            return await viewer, await late

        (messages, _), (late, _) = asyncio.run(scenario())
        assert server.get("/healthz")[0] == 200
    finally:
        code = server.stop()
        live.stop()
    err = server.process.stderr.read()
    assert code == 0, err
    assert "input dropped" in err and "taking up the playlist" in err, err
    assert messages[-1]["type"] == "end" and not [m for m in messages if m["type"] == "error"], messages
    finals = [m for m in messages if m["type"] == "final"]
    assert [m["segment"] for m in finals] == list(range(len(finals)))  # each once, in order
    assert all(a["end"] <= b["start"] + 0.01 for a, b in zip(finals, finals[1:]))
    heard = " ".join(m["raw"] for m in finals)
    assert cer([" ".join(hls["texts"])], [heard]) <= 0.1, heard  # nothing lost in the outage
    late_finals = [m for m in late if m["type"] == "final"]
    assert late_finals and late_finals == finals[len(finals) - len(late_finals):]
