"""Hostile cloud input as data: what the cloud sends, and how the device must answer it.

``test_hostile_cloud.py`` sends each through the whole stack; ``docs/reliability.md`` lists
them (generated, see ``reliability.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
import json
from typing import Any

import pytest

PROPERTY_SET = "thing/service/property/set"
SET_METHOD = "thing.service.property.set"


@dataclass(frozen=True)
class Hostile:
    """A message the cloud should never send. ``code``: the Alink code of the reply; ``None``:
    no reply (dropped with one log line, or never delivered). ``msg_id``: the id a reply
    would carry, when the message has a readable one."""

    key: str
    title: str
    payload: bytes
    code: int | None
    suffix: str = PROPERTY_SET
    msg_id: str = ""
    # Sent to another device's topic: the cloud must never deliver it to ours.
    elsewhere: bool = False


def _request(msg_id: str, params: object, method: str = SET_METHOD) -> bytes:
    doc = {"id": msg_id, "version": "1.0", "params": params, "method": method}
    return json.dumps(doc, ensure_ascii=False).encode()


def _without_id(payload: bytes) -> bytes:
    doc = json.loads(payload)
    del doc["id"]
    return json.dumps(doc).encode()


def _deep(depth: int) -> bytes:
    """A set whose value is ``depth`` nested arrays: as deep as fits in a line."""
    return _request("9006", {"LocalTimer": "NESTED"}).replace(
        b'"NESTED"', b"[" * depth + b"]" * depth
    )


HOSTILE: tuple[Hostile, ...] = (
    Hostile("malformed_json", "malformed JSON", b'{"id":"9001","params":{"Bright', None),
    Hostile("not_an_object", "JSON that is not an object", b"[9002, 1]", None),
    Hostile("no_id", "no message id", _without_id(_request("9003", {"Brightness": 1})), None),
    Hostile("bad_id", "a message id that is not decimal", _request("x9", {"Brightness": 1}), None),
    Hostile(
        "nan",
        "NaN for a number",
        b'{"id":"9005","version":"1.0","params":{"Brightness":NaN},"method":"'
        + SET_METHOD.encode()
        + b'"}',
        None,
    ),
    Hostile("deep_nesting", "JSON nested 8000 deep", _deep(8000), 460, msg_id="9006"),
    Hostile(
        "wrong_method",
        "a `method` that is not the topic's",
        _request("9007", {"Brightness": 1}, "thing.service.property.get"),
        400,
        msg_id="9007",
    ),
    Hostile(
        "unknown_identifier",
        "an identifier not in the thing model",
        _request("9008", {"NoSuchProperty": 1}),
        460,
        msg_id="9008",
    ),
    Hostile(
        "wrong_type",
        "a string for an int",
        _request("9009", {"Brightness": "bright"}),
        460,
        msg_id="9009",
    ),
    Hostile(
        "bool_for_int",
        "`true` for an int",
        _request("9010", {"Brightness": True}),
        460,
        msg_id="9010",
    ),
    Hostile(
        "out_of_range",
        "an int above its max",
        _request("9011", {"Brightness": 101}),
        460,
        msg_id="9011",
    ),
    Hostile(
        "bad_enum",
        "an enum key not in the model",
        _request("9012", {"WorkMode": 9}),
        460,
        msg_id="9012",
    ),
    Hostile(
        "text_too_long",
        "text longer than its length",
        _request("9013", {"DeviceAlias": "x" * 33}),
        460,
        msg_id="9013",
    ),
    Hostile(
        "read_only",
        "a set of a read-only property",
        _request("9014", {"CurrentTemperature": 20.5}),
        460,
        msg_id="9014",
    ),
    Hostile(
        "partly_valid",
        "one valid and one invalid value (neither applied)",
        _request("9015", {"PowerSwitch": 0, "Brightness": 500}),
        460,
        msg_id="9015",
    ),
    Hostile(
        "huge",
        "a 100 kB payload",
        _request("9016", {"DeviceAlias": "x" * 100_000}),
        None,
        msg_id="9016",
    ),
    Hostile(
        "unknown_service",
        "a call of a service not in the model",
        _request("9017", {}, "thing.service.NoSuchService"),
        400,
        suffix="thing/service/NoSuchService",
        msg_id="9017",
    ),
    Hostile(
        "not_ours",
        "a message on a topic that is not a request (a reply topic)",
        _request("9018", {"Brightness": 1}),
        None,
        suffix="thing/service/Toggle_reply",
        msg_id="9018",
    ),
    Hostile(
        "other_device",
        "a set on another device's topic",
        _request("9019", {"Brightness": 77}),
        None,
        msg_id="9019",
        elsewhere=True,
    ),
)


def cases() -> list[Any]:
    """The parameters of the hostile input test: one per message."""
    return [pytest.param(hostile, id=hostile.key) for hostile in HOSTILE]
