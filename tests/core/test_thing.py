"""The Alink device logic: answers to the cloud, posts, and their reply bookkeeping."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hypothesis import given, settings, strategies as st
import pytest

from custom_components.aliyun_iot_at.core.alink import MessageIds, Topics
from custom_components.aliyun_iot_at.core.dialects.base import InboundMessage
from custom_components.aliyun_iot_at.core.thing import (
    MAX_PENDING,
    InvalidValues,
    Outcome,
    PostRefused,
    Publish,
    Thing,
)
from custom_components.aliyun_iot_at.core.tsl import ThingModel, default_model, parse_thing_model

SAMPLE_TEXT = (Path(__file__).parent.parent / "fixtures" / "smart_light.json").read_text("utf-8")
PK, DN = "a1FPRUWiCPA", "lamp1"
TOPICS = Topics(PK, DN)
BASE = f"/sys/{PK}/{DN}/"
NOW_MS = 1_700_000_000_000


def sample_model() -> ThingModel:
    doc = json.loads(SAMPLE_TEXT)
    # An asynchronous service with inputs, besides the sample's synchronous Toggle.
    doc["services"].append(
        {
            "identifier": "Blink",
            "name": "闪烁",
            "callType": "async",
            "method": "thing.service.Blink",
            "inputData": [
                {
                    "identifier": "Times",
                    "name": "次数",
                    "dataType": {"type": "int", "specs": {"min": "1", "max": "10"}},
                }
            ],
            "outputData": [],
        }
    )
    return parse_thing_model(doc)


def make_thing(model: ThingModel | None = None) -> Thing:
    return Thing(model or sample_model(), TOPICS, ids=MessageIds(100), clock=lambda: NOW_MS)


def request(method: str, params: object, msg_id: str = "7") -> bytes:
    doc = {"id": msg_id, "version": "1.0", "params": params, "method": method}
    return json.dumps(doc).encode()


def property_set(params: dict[str, Any], msg_id: str = "7") -> InboundMessage:
    payload = request("thing.service.property.set", params, msg_id)
    return InboundMessage(f"{BASE}thing/service/property/set", payload)


def decoded(publish: Publish) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(publish.payload)
    return doc


def reply_of(outcome: Outcome) -> tuple[str, dict[str, Any]]:
    first = outcome.publish[0]
    return first.topic, decoded(first)


# --- property set ------------------------------------------------------------------------


def test_property_set_applies_answers_200_and_reports_the_changes() -> None:
    thing = make_thing()
    outcome = thing.handle(property_set({"PowerSwitch": 1, "Brightness": 40}, "1234"))

    assert outcome.changes == {"PowerSwitch": True, "Brightness": 40}
    assert thing.values == {"PowerSwitch": True, "Brightness": 40}
    assert len(outcome.publish) == 1  # the reply; the caller posts the changes
    topic, answer = reply_of(outcome)
    assert topic == f"{BASE}thing/service/property/set_reply"
    assert answer == {"id": "1234", "code": 200, "data": {}, "message": "success"}
    post = thing.post_values(outcome.changes)
    assert post.topic == f"{BASE}thing/event/property/post"
    assert decoded(post)["method"] == "thing.event.property.post"
    assert decoded(post)["params"] == {"PowerSwitch": 1, "Brightness": 40}
    assert decoded(post)["id"] == "100"


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"Nope": 1}, ["Nope: not a property of the thing model"]),
        ({"Brightness": "40"}, ["Brightness: expected an integer"]),
        ({"Brightness": 101}, ["Brightness: 101 is above the maximum 100"]),
        ({"WorkMode": 9}, ["WorkMode: 9 is not one of the enum values"]),
        ({"CurrentTemperature": 20.5}, ["CurrentTemperature: read-only"]),
        ({"DeviceAlias": "x" * 33}, ["DeviceAlias: the text is 33 bytes long"]),
        ({"RGBColor": {"Red": 256}}, ["RGBColor: field Red: 256 is above the maximum 255"]),
        ({"PowerSwitch": 2, "Nope": 1}, ["PowerSwitch: expected 0 or 1", "Nope: not a property"]),
    ],
)
def test_property_set_refused_names_every_problem_and_applies_nothing(
    params: dict[str, Any], named: list[str]
) -> None:
    thing = make_thing()
    # A valid value in the same message must not be applied either.
    outcome = thing.handle(property_set({"ColorTemperature": 3000, **params}, "55"))

    assert outcome.changes == {}
    assert thing.values == {}
    assert len(outcome.publish) == 1
    topic, answer = reply_of(outcome)
    assert topic == f"{BASE}thing/service/property/set_reply"
    assert answer["id"] == "55"
    assert answer["code"] == 460
    for text in named:
        assert text in answer["message"]


def test_property_set_with_another_method_is_a_request_error() -> None:
    thing = make_thing()
    payload = request("thing.service.property.get", {"PowerSwitch": 1})
    outcome = thing.handle(InboundMessage(f"{BASE}thing/service/property/set", payload))

    _, answer = reply_of(outcome)
    assert answer["code"] == 400
    assert "thing.service.property.get" in answer["message"]
    assert thing.values == {}


def test_empty_property_set_is_answered_without_a_post() -> None:
    outcome = make_thing().handle(property_set({}))
    assert [p.topic for p in outcome.publish] == [f"{BASE}thing/service/property/set_reply"]
    assert reply_of(outcome)[1]["code"] == 200


def test_default_model_accepts_a_power_switch_set() -> None:
    thing = make_thing(default_model())
    outcome = thing.handle(property_set({"PowerSwitch": 0}))
    assert outcome.changes == {"PowerSwitch": False}
    assert decoded(thing.post_values(outcome.changes))["params"] == {"PowerSwitch": 0}


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"[1,2]", b'{"id":"1","params":{}}', b'{"method":"x","params":{}}', b"\xff"],
)
def test_malformed_requests_are_dropped_with_one_log_line(
    payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    thing = make_thing()
    with caplog.at_level(logging.DEBUG, "custom_components.aliyun_iot_at.core.thing"):
        outcome = thing.handle(InboundMessage(f"{BASE}thing/service/property/set", payload))
    assert outcome == Outcome()
    assert len(caplog.records) == 1
    assert "malformed" in caplog.records[0].getMessage()


@pytest.mark.parametrize(
    "topic",
    [
        f"/sys/{PK}/other/thing/service/property/set",
        f"{BASE}thing/service/property/set_reply",
        "/ext/ntp/x/y/response",
    ],
)
def test_messages_not_for_this_device_are_dropped(topic: str) -> None:
    thing = make_thing()
    assert thing.handle(InboundMessage(topic, request("x", {}))) == Outcome()
    assert thing.values == {}


# --- services ------------------------------------------------------------------------------


def test_async_service_call_is_reported_and_answered() -> None:
    thing = make_thing()
    payload = request("thing.service.Blink", {"Times": 3}, "88")
    outcome = thing.handle(InboundMessage(f"{BASE}thing/service/Blink", payload))

    assert outcome.service_call is not None
    assert outcome.service_call.service.identifier == "Blink"
    assert outcome.service_call.message_id == "88"
    assert outcome.service_call.params == {"Times": 3}
    topic, answer = reply_of(outcome)
    assert topic == f"{BASE}thing/service/Blink_reply"
    assert answer["code"] == 200
    assert answer["id"] == "88"


def test_sync_service_over_rrpc_is_answered_on_the_response_topic() -> None:
    thing = make_thing()
    payload = request("thing.service.Toggle", {}, "9")
    outcome = thing.handle(InboundMessage(f"{BASE}rrpc/request/1500000000", payload))

    assert outcome.service_call is not None
    assert outcome.service_call.service.identifier == "Toggle"
    topic, answer = reply_of(outcome)
    assert topic == f"{BASE}rrpc/response/1500000000"
    assert answer["code"] == 200


def test_property_set_over_rrpc() -> None:
    thing = make_thing()
    payload = request("thing.service.property.set", {"PowerSwitch": 1})
    outcome = thing.handle(InboundMessage(f"{BASE}rrpc/request/42", payload))

    assert outcome.changes == {"PowerSwitch": True}
    assert [p.topic for p in outcome.publish] == [f"{BASE}rrpc/response/42"]


@pytest.mark.parametrize(
    ("topic", "method", "params", "code", "text"),
    [
        ("thing/service/Dance", "thing.service.Dance", {}, 400, "Dance: not a service"),
        ("thing/service/Blink", "thing.service.Toggle", {}, 400, "is not thing.service.Blink"),
        ("thing/service/Blink", "thing.service.Blink", {"Times": 11}, 460, "Times: 11 is above"),
        ("thing/service/Blink", "thing.service.Blink", {"Speed": 1}, 460, "Speed: not an input"),
        ("rrpc/request/5", "thing.service.Dance", {}, 400, "not a service"),
    ],
)
def test_bad_service_calls_are_refused(
    topic: str, method: str, params: dict[str, Any], code: int, text: str
) -> None:
    outcome = make_thing().handle(InboundMessage(BASE + topic, request(method, params)))
    assert outcome.service_call is None
    _, answer = reply_of(outcome)
    assert answer["code"] == code
    assert text in answer["message"]


# --- posts and their replies ---------------------------------------------------------------


def test_post_properties_records_and_encodes_per_type() -> None:
    thing = make_thing()
    post = thing.post_properties(
        {"CurrentTemperature": 21, "LastOnTime": 1_700_000_000_123, "PowerSwitch": False}
    )
    assert post.topic == f"{BASE}thing/event/property/post"
    assert b'"CurrentTemperature":21.0' in post.payload
    params = decoded(post)["params"]
    assert params == {"CurrentTemperature": 21.0, "LastOnTime": "1700000000123", "PowerSwitch": 0}
    assert thing.values == {
        "CurrentTemperature": 21.0,
        "LastOnTime": 1_700_000_000_123,
        "PowerSwitch": False,
    }


@pytest.mark.parametrize(
    ("values", "text"),
    [
        ({}, "no property values"),
        ({"Nope": 1}, "Nope: not a property"),
        ({"Brightness": 1.5}, "Brightness: expected an integer"),
        ({"PowerSwitch": 1, "RealTimePower": -1}, "RealTimePower: -1.0 is below the minimum 0"),
    ],
)
def test_invalid_property_posts_are_refused_before_anything_is_recorded(
    values: dict[str, Any], text: str
) -> None:
    thing = make_thing()
    with pytest.raises(InvalidValues, match=text):
        thing.post_properties(values)
    assert thing.values == {}


def test_every_known_value_can_be_posted_again() -> None:
    thing = make_thing()
    thing.handle(property_set({"Brightness": 10}))
    thing.post_properties({"PowerSwitch": True})
    post = thing.post_values(thing.values)
    assert decoded(post)["params"] == {"Brightness": 10, "PowerSwitch": 1}


def test_post_event_is_validated_and_stamped() -> None:
    thing = make_thing()
    post = thing.post_event("Error", {"ErrorCode": 1})
    assert post.topic == f"{BASE}thing/event/Error/post"
    doc = decoded(post)
    assert doc["method"] == "thing.event.Error.post"
    assert doc["params"] == {"value": {"ErrorCode": 1}, "time": NOW_MS}


@pytest.mark.parametrize(
    ("event", "output", "text"),
    [
        ("Fire", {}, "Fire: not an event"),
        ("post", {}, "post: not an event"),  # the built-in property post is not a custom event
        ("Error", {"ErrorCode": 5}, "ErrorCode: 5 is not one of the enum values"),
        ("Error", {"Cause": "x"}, "Cause: not an output of the event"),
    ],
)
def test_invalid_event_posts_are_refused(event: str, output: dict[str, Any], text: str) -> None:
    with pytest.raises(InvalidValues, match=text):
        make_thing().post_event(event, output)


def post_reply(msg_id: str, code: int, message: str = "success", event: str = "property") -> Any:
    payload = json.dumps({"id": msg_id, "code": code, "data": {}, "message": message}).encode()
    return InboundMessage(f"{BASE}thing/event/{event}/post_reply", payload)


def test_accepted_post_reply_is_quiet() -> None:
    thing = make_thing()
    post = thing.post_properties({"PowerSwitch": True})
    assert thing.handle(post_reply(decoded(post)["id"], 200)) == Outcome()


def test_refused_posts_are_reported_with_the_clouds_code_and_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    thing = make_thing()
    prop_id = decoded(thing.post_properties({"PowerSwitch": True}))["id"]
    event_id = decoded(thing.post_event("Error", {"ErrorCode": 0}))["id"]

    with caplog.at_level(logging.WARNING):
        refused = thing.handle(post_reply(prop_id, 6300, "method not found")).refused
        event_refused = thing.handle(post_reply(event_id, 5160, "no event", "Error")).refused

    assert refused == PostRefused(prop_id, "property post (PowerSwitch)", 6300, "method not found")
    assert event_refused == PostRefused(event_id, "event Error", 5160, "no event")
    assert "6300" in caplog.text
    assert "method not found" in caplog.text
    # A second reply to the same post is not reported again.
    assert thing.handle(post_reply(prop_id, 6300)) == Outcome()


def test_replies_to_unknown_or_malformed_posts_are_dropped() -> None:
    thing = make_thing()
    assert thing.handle(post_reply("999", 6300)) == Outcome()
    bad = InboundMessage(f"{BASE}thing/event/property/post_reply", b'{"id":"1"}')
    assert thing.handle(bad) == Outcome()


def test_pending_posts_are_bounded() -> None:
    thing = make_thing()
    first = decoded(thing.post_properties({"PowerSwitch": True}))["id"]
    for _ in range(MAX_PENDING):
        last = decoded(thing.post_properties({"PowerSwitch": True}))["id"]
    # The oldest was forgotten; the newest is still awaited.
    assert thing.handle(post_reply(first, 500)).refused is None
    assert thing.handle(post_reply(last, 500)).refused is not None


# --- robustness ----------------------------------------------------------------------------

_TOPIC_TAILS = st.sampled_from(
    [
        "thing/service/property/set",
        "thing/service/Blink",
        "thing/service/Toggle",
        "thing/event/property/post_reply",
        "thing/event/Error/post_reply",
        "rrpc/request/1",
        "rrpc/request/a+b",
        "thing/service/a#",
    ]
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    tail=_TOPIC_TAILS,
    method=st.sampled_from(["thing.service.property.set", "thing.service.Blink", "x"]),
    params=_JSON,
    msg_id=st.one_of(st.text(max_size=5), st.integers(), st.just("12")),
    raw=st.binary(max_size=40),
)
def test_handle_never_raises(
    tail: str, method: str, params: object, msg_id: object, raw: bytes
) -> None:
    thing = make_thing()
    doc = {"id": msg_id, "method": method, "params": params, "code": 200, "message": "m"}
    for payload in (json.dumps(doc).encode(), raw):
        outcome = thing.handle(InboundMessage(BASE + tail, payload))
        assert isinstance(outcome, Outcome)


def test_restore_takes_valid_values_without_posting_or_overriding() -> None:
    thing = make_thing()
    thing.handle(property_set({"Brightness": 10}))
    thing.restore({"Brightness": 90, "PowerSwitch": 1, "WorkMode": 42, "Gone": 1})

    # The cloud's newer value stays; an invalid or unknown one is left out.
    assert thing.values == {"Brightness": 10, "PowerSwitch": True}
    assert decoded(thing.post_values(thing.values))["params"] == {
        "Brightness": 10,
        "PowerSwitch": 1,
    }


# --- what the outbox builds on -------------------------------------------------------------


def test_message_ids_start_from_the_clock() -> None:
    thing = Thing(sample_model(), TOPICS, clock=lambda: NOW_MS)
    post = thing.post_properties({"PowerSwitch": True})
    assert decoded(post)["id"] == str(NOW_MS % 4_294_967_295 + 1)


def test_an_event_is_posted_with_the_time_it_happened() -> None:
    now = [NOW_MS]
    thing = Thing(sample_model(), TOPICS, clock=lambda: now[0])
    happened = thing.occurrence("Error", {"ErrorCode": 1})
    now[0] += 60_000  # posted a minute later, after an outage
    assert decoded(thing.post_occurrence(happened))["params"] == {
        "value": {"ErrorCode": 1},
        "time": NOW_MS,
    }
    restored = thing.occurrence("Error", {"ErrorCode": 0}, time_ms=5)
    assert decoded(thing.post_occurrence(restored))["params"]["time"] == 5


def test_post_values_size_is_never_less_than_the_post() -> None:
    thing = make_thing()
    values = thing.record({"DeviceAlias": "客厅", "RGBColor": {"Red": 1}, "Brightness": 5})
    assert thing.post_values_size(values) >= len(thing.post_values(values).payload)


def test_restore_returns_what_it_took() -> None:
    thing = make_thing()
    thing.record({"Brightness": 10})
    taken = thing.restore({"Brightness": 90, "PowerSwitch": 1, "WorkMode": 42})
    assert taken == {"PowerSwitch": True}


# What a cloud can send: JSON has no NaN or infinity.
_CLOUD_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    params=st.dictionaries(
        st.sampled_from(["PowerSwitch", "Brightness", "WorkMode", "CurrentTemperature", "Nope"]),
        _CLOUD_JSON,
        max_size=4,
    )
)
def test_a_set_is_answered_once_and_200_only_when_applied(params: dict[str, Any]) -> None:
    thing = make_thing()
    thing.record({"Brightness": 1})
    before = dict(thing.values)

    outcome = thing.handle(property_set(params))

    assert len(outcome.publish) == 1
    code = decoded(outcome.publish[0])["code"]
    if code == 200:
        assert outcome.changes.keys() == params.keys()
        assert thing.values == {**before, **outcome.changes}
    else:
        assert code == 460
        assert (outcome.changes, thing.values) == ({}, before)
