"""The websocket protocol without I/O: a client's config, its audio frames, and the events it hears."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from streamer.core.events import Final, Partial
from streamer.core.stream import StreamSettings
from streamer.core.windower import WindowSettings
from streamer.serve.protocol import (CONFIG_KEYS, SETTING_LIMITS, ClientConfig, ProtocolError, decode_frame,
                                     event_message, parse_config, stream_settings)
from streamer.text.ctc import Word


def refused(config, code: str) -> str:
    """parse_config's ProtocolError for config (a dict is sent as JSON text): its code checked, its message."""
    text = json.dumps(config) if isinstance(config, dict) else config
    with pytest.raises(ProtocolError) as error:
        parse_config(text)
    assert error.value.code == code, error.value.message
    assert error.value.to_json() == {"type": "error", "code": code, "message": error.value.message}
    return error.value.message


# ---- parse_config

def test_a_minimal_config_takes_the_defaults():
    config = parse_config('{"sample_rate": 16000}')
    assert config == ClientConfig(16000, "pcm_s16le", True, True, None, {})


def test_a_full_config():
    text = json.dumps({"type": "config", "sample_rate": 48000, "format": "pcm_f32le", "partials": False,
                       "words": False, "token": "sekret", "settings": {"hop_ms": 400, "pause_ms": 250}})
    config = parse_config(text)
    assert config == ClientConfig(48000, "pcm_f32le", False, False, "sekret", {"hop_ms": 400, "pause_ms": 250})
    assert "sekret" not in repr(config)  # the token is never in logs


def test_every_setting_is_accepted_at_both_of_its_limits():
    for name, (low, high) in SETTING_LIMITS.items():
        for value in (low, high):
            assert parse_config(json.dumps({"sample_rate": 16000, "settings": {name: value}})).settings == {name: value}


def test_audio_instead_of_the_config():
    message = refused(b'{"sample_rate": 16000}', "bad_config")
    assert "JSON text message" in message and "not audio" in message


@pytest.mark.parametrize("text", ["{not json", "", '{"sample_rate": 16000,}', "{'sample_rate': 16000}"])
def test_invalid_json(text):
    assert "is not valid JSON" in refused(text, "bad_config")


@pytest.mark.parametrize("text", ["[]", '"sample_rate"', "16000", "null", '[{"sample_rate": 16000}]'])
def test_a_config_that_is_not_an_object(text):
    assert refused(text, "bad_config") == "the config must be a JSON object"


def test_unknown_keys_are_named_with_those_allowed():
    message = refused({"sample_rate": 16000, "rate": 16000, "Format": "pcm_s16le"}, "bad_config")
    assert message.startswith("unknown config keys ['Format', 'rate']; allowed: ")
    for key in CONFIG_KEYS:
        assert repr(key) in message


@pytest.mark.parametrize("fmt", ["mp3", "pcm_s16be", "PCM_S16LE", None, 16])
def test_a_format_not_offered(fmt):
    message = refused({"sample_rate": 16000, "format": fmt}, "bad_format")
    assert message == f"format {fmt!r} is not one of pcm_s16le, pcm_f32le"


@pytest.mark.parametrize("config", [
    {}, {"sample_rate": None}, {"sample_rate": 3999}, {"sample_rate": 384_001}, {"sample_rate": 0},
    {"sample_rate": -16000}, {"sample_rate": 16000.0}, {"sample_rate": "16000"}, {"sample_rate": True},
])
def test_a_missing_or_bad_sample_rate(config):
    message = refused(config, "bad_config")
    assert message.startswith("sample_rate must be a whole number of Hz from 4000 to 384000, not ")
    assert message.endswith(repr(config.get("sample_rate")))


def test_sample_rates_at_the_limits():
    assert parse_config('{"sample_rate": 4000}').sample_rate == 4000
    assert parse_config('{"sample_rate": 384000}').sample_rate == 384_000


@pytest.mark.parametrize("flag", ["partials", "words"])
@pytest.mark.parametrize("value", [1, 0, "true", None, [True]])
def test_flags_must_be_booleans(flag, value):
    assert refused({"sample_rate": 16000, flag: value}, "bad_config") == f"{flag} must be true or false"


@pytest.mark.parametrize("token", [123, None, ["a"], {"t": "a"}])
def test_the_token_must_be_a_string(token):
    assert refused({"sample_rate": 16000, "token": token}, "bad_config") == "token must be a string"


@pytest.mark.parametrize("settings", [[], "hop_ms=500", 5, None])
def test_settings_must_be_an_object(settings):
    assert refused({"sample_rate": 16000, "settings": settings}, "bad_config") == "settings must be a JSON object"


def test_a_setting_a_client_may_not_choose_is_named_with_those_it_may():
    message = refused({"sample_rate": 16000, "settings": {"left_ms": 500}}, "bad_config")
    assert message == ("setting 'left_ms' is not one a client may choose: "
                       "hop_ms, max_caption_s, pause_ms, vad_aggressiveness")


@pytest.mark.parametrize("name, value", [
    ("hop_ms", 199), ("hop_ms", 2001), ("pause_ms", 99.5), ("pause_ms", 3001), ("max_caption_s", 1.9), ("max_caption_s", 61), ("vad_aggressiveness", -1),
    ("vad_aggressiveness", 4),
    ("vad_aggressiveness", True), ("vad_aggressiveness", False), ("hop_ms", True),  # bools are not numbers
    ("hop_ms", "500"), ("hop_ms", None), ("hop_ms", [500]), ("pause_ms", {"ms": 300}),
])
def test_a_setting_outside_its_limits_says_what_is_allowed(name, value):
    low, high = SETTING_LIMITS[name]
    message = refused({"sample_rate": 16000, "settings": {name: value}}, "bad_config")
    assert message == f"setting {name} must be a number from {low} to {high}, not {value!r}"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_a_setting_that_is_not_a_finite_number(literal):
    """Python's json reads these non-standard literals as floats; no limit lets them through."""
    message = refused('{"sample_rate": 16000, "settings": {"hop_ms": %s}}' % literal, "bad_config")
    assert message.startswith("setting hop_ms must be a number from 200 to 2000, not ")


def test_config_checks_come_in_order():
    """Unknown keys are named before a bad format, and a bad format before a bad rate."""
    assert refused({"nope": 1, "format": "mp3"}, "bad_config").startswith("unknown config keys ['nope']")
    assert refused({"format": "mp3"}, "bad_format")


def test_deeply_nested_json_is_refused_as_a_bad_config():
    """It raised RecursionError, which the server took for a client that left (close 1000, no error event)."""
    message = refused("[" * 100_000 + "]" * 100_000, "bad_config")
    assert "JSON" in message


# ---- stream_settings

def test_no_client_settings_leave_the_defaults():
    base = StreamSettings()
    assert stream_settings(base, {}) is base


def test_client_settings_are_applied_and_nothing_else_changes():
    base = StreamSettings()
    result = stream_settings(base, {"hop_ms": 400, "pause_ms": 500, "max_caption_s": 7.5, "vad_aggressiveness": 3})
    assert result.commit.hop_ms == 400 and result.commit.pause_ms == 500 and result.window is None
    assert result.max_caption_s == 7.5 and result.vad.aggressiveness == 3
    first_pass = stream_settings(replace(base, window=WindowSettings()), {"hop_ms": 400})
    assert first_pass.window.hop_ms == first_pass.commit.hop_ms == 400  # a first pass of its own keeps pace
    assert (result.commit.left_ms, result.commit.right_ms, result.commit.min_commit_ms) == (
        base.commit.left_ms, base.commit.right_ms, base.commit.min_commit_ms)
    assert result.vad.hangover_ms == base.vad.hangover_ms
    assert (result.decoder, result.text) == (base.decoder, base.text)
    assert base == StreamSettings()  # the defaults are not changed in place


def test_one_commit_setting_keeps_the_other():
    base = StreamSettings()
    assert stream_settings(base, {"pause_ms": 600}).commit.hop_ms == base.commit.hop_ms
    assert stream_settings(base, {"hop_ms": 1000}).commit.pause_ms == base.commit.pause_ms


def test_settings_the_stream_cannot_take_are_a_protocol_error():
    """hop_ms 250 is within SETTING_LIMITS but not on the 20 ms frame grid."""
    with pytest.raises(ProtocolError) as error:
        stream_settings(StreamSettings(), parse_config('{"sample_rate": 16000, "settings": {"hop_ms": 250}}').settings)
    assert error.value.code == "bad_config"
    assert "multiple of 20 ms" in error.value.message and "250" in error.value.message


@pytest.mark.parametrize("name, value", [(name, value) for name, limits in SETTING_LIMITS.items() for value in limits])
def test_every_setting_at_its_limits_is_one_the_default_stream_takes(name, value):
    """Every limit a client may choose is one the default stream takes (commit_window_ms once was not)."""
    stream_settings(StreamSettings(), parse_config(json.dumps({"sample_rate": 16000, "settings": {name: value}})).settings)


# ---- decode_frame

def test_int16_frames_are_little_endian_samples():
    samples = decode_frame(b"\x01\x00\xff\x7f\x00\x80\xff\xff", "pcm_s16le")
    assert samples.dtype == np.int16 and samples.dtype.isnative
    assert samples.tolist() == [1, 32767, -32768, -1]


def test_float32_frames_are_little_endian_samples():
    values = [0.0, 0.5, -1.0, 1.25]
    samples = decode_frame(np.array(values, dtype="<f4").tobytes(), "pcm_f32le")
    assert samples.dtype == np.float32 and samples.dtype.isnative
    assert samples.tolist() == values
    assert decode_frame(np.array(values, dtype=">f4").tobytes(), "pcm_f32le").tolist() != values  # not big-endian


def test_an_empty_frame_is_no_samples():
    assert len(decode_frame(b"", "pcm_s16le")) == 0 and len(decode_frame(b"", "pcm_f32le")) == 0


@pytest.mark.parametrize("fmt, size, itemsize", [("pcm_s16le", 3, 2), ("pcm_s16le", 1, 2), ("pcm_f32le", 6, 4),
                                                 ("pcm_f32le", 1023, 4)])
def test_frames_with_a_partial_sample_are_refused(fmt, size, itemsize):
    with pytest.raises(ProtocolError) as error:
        decode_frame(b"\x00" * size, fmt)
    assert error.value.code == "bad_frame"
    assert error.value.message == (f"a {fmt} frame must hold a whole number of {itemsize}-byte samples, "
                                   f"got {size} bytes; the frame was dropped")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_float_frames_with_nan_or_inf_are_refused(bad):
    with pytest.raises(ProtocolError) as error:
        decode_frame(np.array([0.1, bad, 0.2], dtype="<f4").tobytes(), "pcm_f32le")
    assert error.value.code == "bad_audio"
    assert "NaN or infinite" in error.value.message and error.value.message.endswith("the frame was dropped")


def test_float_frames_at_int16_scale_are_refused():
    with pytest.raises(ProtocolError) as error:
        decode_frame(np.array([0.0, 1000.0], dtype="<f4").tobytes(), "pcm_f32le")
    assert error.value.code == "bad_audio" and "[-1, 1]" in error.value.message


# ---- event_message

PARTIAL = Partial(caption=2, text="god morgen", stable_chars=3, start_s=1.0, end_s=2.5)
FINAL = Final(caption=2, words=(Word("god", 1.0, 1.3, 0.9), Word("morgen", 1.4, 2.0, 0.8)), start_s=1.0, end_s=2.0)


def config(**kwargs) -> ClientConfig:
    return ClientConfig(16000, **kwargs)


def test_partials_go_only_to_clients_that_asked_for_them():
    assert event_message(PARTIAL, config()) == PARTIAL.to_json()
    assert event_message(PARTIAL, config(words=False)) == PARTIAL.to_json()
    assert event_message(PARTIAL, config(partials=False)) is None


def test_final_words_go_only_to_clients_that_asked_for_them():
    full = event_message(FINAL, config())
    assert full == FINAL.to_json() and [w["word"] for w in full["words"]] == ["god", "morgen"]
    assert event_message(FINAL, config(partials=False)) == FINAL.to_json()  # finals always go
    bare = event_message(FINAL, config(words=False))
    assert "words" not in bare
    assert bare == {k: v for k, v in FINAL.to_json().items() if k != "words"}
    assert bare["text"] == "god morgen" and bare["type"] == "final"
    assert "words" in FINAL.to_json()  # the event itself is not changed
