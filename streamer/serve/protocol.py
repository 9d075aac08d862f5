"""The websocket protocol's messages, without I/O: the client's config, audio frames, and what goes back.

A client's first message is a JSON config, for example::

    {"sample_rate": 48000, "format": "pcm_f32le", "partials": true, "words": true,
     "token": "…", "settings": {"hop_ms": 500, "pause_ms": 300}}

then binary frames of mono audio in that format, and ``{"type": "eof"}`` when it is done. The server
answers ``ready``, then ``partial`` and ``final`` events as the library makes them, ``error``
events (``{"type": "error", "code": …, "message": …}``) and, after eof, ``end``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from ..errors import StreamerError
from ..core.events import Error, Final, Partial
from ..core.pcm import check_block, check_rate
from ..core.stream import StreamSettings, with_flat_settings

FORMATS = {"pcm_s16le": np.dtype("<i2"), "pcm_f32le": np.dtype("<f4")}
CONFIG_KEYS = {"type", "sample_rate", "format", "partials", "words", "token", "settings"}
# Per-stream settings a client may choose, and their limits (inclusive).
SETTING_LIMITS = {
    "hop_ms": (200, 2000),  # a partial and a commit per hop of speech
    "pause_ms": (100, 3000),  # a pause this long ends the caption
    "max_caption_s": (2, 60),  # in speech without pauses, captions end at a word boundary after this long
    "vad_aggressiveness": (0, 3),
}


class ProtocolError(Exception):
    """What a client sent is not allowed; code and message go back to it in an error event."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message

    def to_json(self) -> dict:
        return Error(self.code, self.message).to_json()


@dataclass(frozen=True)
class ClientConfig:
    sample_rate: int
    format: str = "pcm_s16le"
    partials: bool = True
    words: bool = True
    token: str | None = field(default=None, repr=False)  # never in logs
    settings: dict = field(default_factory=dict)


def parse_config(text: str | bytes) -> ClientConfig:
    if not isinstance(text, str):
        raise ProtocolError("bad_config", "the first message must be a JSON text message with the config, not audio")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ProtocolError("bad_config", f"the config is not valid JSON ({exc})") from None
    except RecursionError:
        raise ProtocolError("bad_config", "the config is nested too deeply: it must be a flat JSON object") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_config", "the config must be a JSON object")
    unknown = sorted(set(data) - CONFIG_KEYS)
    if unknown:
        raise ProtocolError("bad_config", f"unknown config keys {unknown}; allowed: {sorted(CONFIG_KEYS)}")
    if data.get("format", "pcm_s16le") not in FORMATS:
        raise ProtocolError("bad_format", f"format {data.get('format')!r} is not one of {', '.join(FORMATS)}")
    try:
        rate = check_rate(data.get("sample_rate"))
    except StreamerError as exc:
        raise ProtocolError("bad_config", str(exc)) from None
    for flag in ("partials", "words"):
        if not isinstance(data.get(flag, True), bool):
            raise ProtocolError("bad_config", f"{flag} must be true or false")
    if not isinstance(data.get("token", ""), str):
        raise ProtocolError("bad_config", "token must be a string")
    settings = data.get("settings", {})
    if not isinstance(settings, dict):
        raise ProtocolError("bad_config", "settings must be a JSON object")
    check_settings(settings)
    return ClientConfig(rate, data.get("format", "pcm_s16le"), data.get("partials", True), data.get("words", True),
                        data.get("token"), settings)


def check_settings(settings: dict) -> None:
    for name, value in settings.items():
        if name not in SETTING_LIMITS:
            raise ProtocolError("bad_config", f"setting {name!r} is not one a client may choose: "
                                              f"{', '.join(sorted(SETTING_LIMITS))}")
        low, high = SETTING_LIMITS[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise ProtocolError("bad_config", f"setting {name} must be a number from {low} to {high}, not {value!r}")


def stream_settings(base: StreamSettings, settings: dict) -> StreamSettings:
    """base with a client's settings applied (already checked against SETTING_LIMITS; ``hop_ms`` is both
    passes' hop), through the one mapping of flat settings (``with_flat_settings``)."""
    types = {"hop_ms": int, "pause_ms": int, "max_caption_s": float, "vad_aggressiveness": int}
    try:
        return with_flat_settings(base, **{name: types[name](value) for name, value in settings.items()})
    except StreamerError as exc:
        raise ProtocolError("bad_config", str(exc)) from None


def decode_frame(data: bytes, fmt: str) -> np.ndarray:
    """A binary frame as samples (int16 or float32), or a ProtocolError that says what is wrong."""
    dtype = FORMATS[fmt]
    if len(data) % dtype.itemsize:
        raise ProtocolError("bad_frame", f"a {fmt} frame must hold a whole number of {dtype.itemsize}-byte samples, "
                                         f"got {len(data)} bytes; the frame was dropped")
    samples = np.frombuffer(data, dtype=dtype).astype(dtype.newbyteorder("="))
    try:
        return check_block(samples)
    except StreamerError as exc:
        raise ProtocolError("bad_audio", f"{exc}; the frame was dropped") from None


def event_message(event, config: ClientConfig) -> dict | None:
    """What a client hears of a library event, or None (partials it did not ask for)."""
    if isinstance(event, Partial):
        return event.to_json() if config.partials else None
    message = event.to_json()
    if isinstance(event, Final) and not config.words:
        del message["words"]
    return message
