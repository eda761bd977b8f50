"""Alink topics, inbound classification, message ids and the JSON messages."""

from __future__ import annotations

import re

import pytest

from custom_components.aliyun_iot_at.core.alink import (
    MAX_PAYLOAD,
    AlinkCode,
    AlinkError,
    EventPostReply,
    Inbound,
    MessageIds,
    NotOurs,
    PropertyPostReply,
    PropertySet,
    Reply,
    Request,
    RrpcRequest,
    ServiceCall,
    Topics,
    classify,
    event_post,
    parse_reply,
    parse_request,
    property_post,
    reply,
    request,
)
from custom_components.aliyun_iot_at.core.tsl import DataType, TypeSpec, encode_value

TOPICS = Topics("a1FPRUWiCPA", "lamp")
BASE = "/sys/a1FPRUWiCPA/lamp/"


# --- topics --------------------------------------------------------------------------------


def test_topic_names() -> None:
    assert TOPICS.property_post == f"{BASE}thing/event/property/post"
    assert TOPICS.property_post_reply == f"{BASE}thing/event/property/post_reply"
    assert TOPICS.property_set == f"{BASE}thing/service/property/set"
    assert TOPICS.property_set_reply == f"{BASE}thing/service/property/set_reply"
    assert TOPICS.event_post("Error") == f"{BASE}thing/event/Error/post"
    assert TOPICS.event_post_reply("Error") == f"{BASE}thing/event/Error/post_reply"
    assert TOPICS.event_post("blk:Alarm") == f"{BASE}thing/event/blk:Alarm/post"
    assert TOPICS.service("Toggle") == f"{BASE}thing/service/Toggle"
    assert TOPICS.service_reply("Toggle") == f"{BASE}thing/service/Toggle_reply"
    assert TOPICS.rrpc_request_prefix == f"{BASE}rrpc/request/"
    assert TOPICS.rrpc_response("1136009519218802688") == (
        f"{BASE}rrpc/response/1136009519218802688"
    )


def test_subscriptions() -> None:
    assert TOPICS.subscriptions() == (
        f"{BASE}thing/service/property/set",
        f"{BASE}thing/event/+/post_reply",
        f"{BASE}thing/service/+",
        f"{BASE}rrpc/request/+",
    )


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic matching with ``+`` (the only wildcard the subscriptions use)."""
    wanted, levels = topic_filter.split("/"), topic.split("/")
    return len(wanted) == len(levels) and all(
        w in ("+", t) for w, t in zip(wanted, levels, strict=True)
    )


INBOUND: list[tuple[str, Inbound]] = [
    (f"{BASE}thing/service/property/set", PropertySet()),
    (f"{BASE}thing/event/property/post_reply", PropertyPostReply()),
    (f"{BASE}thing/event/Error/post_reply", EventPostReply("Error")),
    (f"{BASE}thing/event/blk:Alarm/post_reply", EventPostReply("blk:Alarm")),
    (f"{BASE}thing/service/Toggle", ServiceCall("Toggle")),
    (f"{BASE}rrpc/request/1136009519218802688", RrpcRequest("1136009519218802688")),
]


@pytest.mark.parametrize(("topic", "expected"), INBOUND)
def test_classify_inbound(topic: str, expected: Inbound) -> None:
    assert classify(TOPICS, topic) == expected


@pytest.mark.parametrize("topic", [topic for topic, _ in INBOUND])
def test_each_inbound_topic_has_exactly_one_subscription(topic: str) -> None:
    # Overlapping subscriptions could deliver a message twice.
    assert sum(matches(f, topic) for f in TOPICS.subscriptions()) == 1


@pytest.mark.parametrize(
    "topic",
    [
        f"{BASE}thing/service/Toggle_reply",
        f"{BASE}thing/service/property/set_reply",
        f"{BASE}thing/event/property/post",
        f"{BASE}thing/event/Error/post",
        f"{BASE}thing/service/",
        f"{BASE}thing/event//post_reply",
        f"{BASE}rrpc/request/",
        f"{BASE}rrpc/response/1",
        f"{BASE}thing/service/a/b",
        "/sys/a1FPRUWiCPA/other/thing/service/property/set",
        "/sys/a1FPRUWiCPA/lamp2/thing/service/property/set",
        "/ext/ntp/a1FPRUWiCPA/lamp/response",
        "",
    ],
)
def test_classify_refuses_other_topics(topic: str) -> None:
    assert classify(TOPICS, topic) == NotOurs()


@pytest.mark.parametrize(
    ("product_key", "device_name"), [("", "d"), ("p/k", "d"), ("pk", "+"), ("pk", "d#")]
)
def test_topics_refuse_what_is_not_one_level(product_key: str, device_name: str) -> None:
    with pytest.raises(ValueError, match="topic level"):
        Topics(product_key, device_name)


@pytest.mark.parametrize("identifier", ["", "a/b", "+", "#"])
def test_topic_ids_must_be_one_level(identifier: str) -> None:
    with pytest.raises(ValueError, match="topic level"):
        TOPICS.event_post(identifier)
    with pytest.raises(ValueError, match="topic level"):
        TOPICS.service_reply(identifier)
    with pytest.raises(ValueError, match="topic level"):
        TOPICS.rrpc_response(identifier)


# --- message ids ---------------------------------------------------------------------------


def test_message_ids_count_from_one() -> None:
    ids = MessageIds()
    assert [ids.next() for _ in range(3)] == ["1", "2", "3"]


def test_message_ids_wrap_after_the_largest() -> None:
    ids = MessageIds(start=4_294_967_294)
    assert [ids.next() for _ in range(3)] == ["4294967294", "4294967295", "1"]


@pytest.mark.parametrize("start", [0, -1, 4_294_967_296])
def test_message_ids_refuse_a_start_out_of_range(start: int) -> None:
    with pytest.raises(ValueError, match="from 1 to 4294967295"):
        MessageIds(start=start)


# --- encoders ------------------------------------------------------------------------------


def test_property_post_bytes() -> None:
    assert property_post("1", {"PowerSwitch": 0}) == (
        b'{"id":"1","version":"1.0","sys":{"ack":1},"params":{"PowerSwitch":0},'
        b'"method":"thing.event.property.post"}'
    )


def test_encoded_floats_keep_their_decimal_point() -> None:
    power = TypeSpec(DataType.FLOAT, min=0, max=5000)
    params = {
        "CurrentTemperature": encode_value(power, 22.5),
        "RealTimePower": encode_value(power, 10),
    }
    assert b'"params":{"CurrentTemperature":22.5,"RealTimePower":10.0}' in property_post(
        "7", params
    )


def test_request_without_ack_and_with_utf8_text() -> None:
    assert (
        request("9", "thing.service.Toggle", {"DeviceAlias": "客厅灯"}, ack=False)
        == (
            '{"id":"9","version":"1.0","sys":{"ack":0},"params":{"DeviceAlias":"客厅灯"},'
            '"method":"thing.service.Toggle"}'
        ).encode()
    )


def test_event_post_bytes() -> None:
    assert event_post("12", "Error", {"ErrorCode": 1}, 1700000000000) == (
        b'{"id":"12","version":"1.0","sys":{"ack":1},'
        b'"params":{"value":{"ErrorCode":1},"time":1700000000000},'
        b'"method":"thing.event.Error.post"}'
    )


def test_nan_is_refused_not_sent() -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        property_post("1", {"RealTimePower": float("nan")})


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (AlinkCode.SUCCESS, "success"),
        (AlinkCode.REQUEST_ERROR, "request error"),
        (AlinkCode.THROTTLED, "too many requests"),
        (AlinkCode.PARAM_ERROR, "request parameter error"),
        (AlinkCode.INTERNAL_ERROR, "internal error"),
        (200, "success"),
        (100001, "error"),
    ],
)
def test_reply_default_messages(code: int, message: str) -> None:
    assert (
        reply("123", code)
        == f'{{"id":"123","code":{int(code)},"data":{{}},"message":"{message}"}}'.encode()
    )


def test_reply_with_data_and_message() -> None:
    assert reply("4294967295", AlinkCode.SUCCESS, {"PowerSwitch": 1}, "好") == (
        '{"id":"4294967295","code":200,"data":{"PowerSwitch":1},"message":"好"}'.encode()
    )


# --- decoders ------------------------------------------------------------------------------


def test_parse_request() -> None:
    payload = (
        b'{"method":"thing.service.property.set","id":"1849393960","params":{"PowerSwitch":1},'
        b'"version":"1.0.0"}'
    )
    assert parse_request(payload) == Request(
        "1849393960", "thing.service.property.set", {"PowerSwitch": 1}, "1.0.0"
    )


def test_parse_request_keeps_an_integer_id_as_text_and_defaults_the_version() -> None:
    decoded = parse_request(b'{"id":42,"method":"thing.service.Toggle","params":{}}')
    assert (decoded.id, decoded.version) == ("42", "1.0")


def test_parse_request_keeps_a_long_rrpc_id_unchanged() -> None:
    payload = b'{"id":"001136009519218802688","method":"thing.service.Toggle","params":{}}'
    assert parse_request(payload).id == "001136009519218802688"


BAD_REQUESTS: list[tuple[str, bytes, str]] = [
    ("not UTF-8", b'{"id":"1","method":"m","params":{"a":"\xff"}}', "not UTF-8"),
    ("not JSON", b'{"id":"1",', "not JSON"),
    ("empty", b"", "not JSON"),
    ("NaN", b'{"id":"1","method":"m","params":{"a":NaN}}', "not JSON (NaN is not a JSON number)"),
    ("deep", b"[" * 50_000, "nested too deeply"),
    ("list", b"[]", "not a JSON object"),
    ("no id", b'{"method":"m","params":{}}', "id is missing or not a decimal string"),
    ("id text", b'{"id":"abc","method":"m","params":{}}', "id is missing"),
    ("id signed", b'{"id":"-1","method":"m","params":{}}', "id is missing"),
    ("id negative", b'{"id":-1,"method":"m","params":{}}', "id is missing"),
    ("id float", b'{"id":1.0,"method":"m","params":{}}', "id is missing"),
    ("id bool", b'{"id":true,"method":"m","params":{}}', "id is missing"),
    ("id empty", b'{"id":"","method":"m","params":{}}', "id is missing"),
    ("id full-width digits", '{"id":"１","method":"m","params":{}}'.encode(), "id is missing"),
    ("no method", b'{"id":"1","params":{}}', "method is missing or not a non-empty string"),
    ("empty method", b'{"id":"1","method":"","params":{}}', "method is missing"),
    ("method number", b'{"id":"1","method":5,"params":{}}', "method is missing"),
    ("no params", b'{"id":"1","method":"m"}', "params is missing or not an object"),
    ("params list", b'{"id":"1","method":"m","params":[]}', "params is missing"),
    (
        "version number",
        b'{"id":"1","method":"m","params":{},"version":1}',
        "version is not a string",
    ),
]


@pytest.mark.parametrize(
    ("payload", "message"), [b[1:] for b in BAD_REQUESTS], ids=[b[0] for b in BAD_REQUESTS]
)
def test_parse_request_refuses_malformed_payloads(payload: bytes, message: str) -> None:
    with pytest.raises(AlinkError, match=re.escape(message)):
        parse_request(payload)


def test_oversized_payloads_are_refused_before_parsing() -> None:
    params = b'{"a":"' + b"x" * MAX_PAYLOAD + b'"}'
    with pytest.raises(AlinkError, match=f"more than {MAX_PAYLOAD}"):
        parse_request(b'{"id":"1","method":"m","params":' + params + b"}")
    # Not JSON at all, yet the size is what is reported: nothing was parsed.
    with pytest.raises(AlinkError, match="more than"):
        parse_reply(b"\xff" * (MAX_PAYLOAD + 1))
    largest = b'{"id":"1","method":"m","params":{"a":"'
    largest += b"x" * (MAX_PAYLOAD - len(largest) - 3) + b'"}}'
    assert len(largest) == MAX_PAYLOAD
    assert parse_request(largest).method == "m"


def test_errors_do_not_echo_the_payload() -> None:
    with pytest.raises(AlinkError) as info:
        parse_request(b'{"id":"1","method":"m","params":{"token":"hunter2"},')
    assert "hunter2" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_parse_reply() -> None:
    payload = b'{"code":200,"data":{},"id":"45","message":"success","version":"1.0"}'
    assert parse_reply(payload) == Reply("45", 200, {}, "success")


def test_parse_reply_of_a_refused_post() -> None:
    payload = b'{"code":6300,"id":"2","message":"method not found"}'
    assert parse_reply(payload) == Reply("2", 6300, None, "method not found")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"id":"1","data":{}}', "code is missing or not an integer"),
        (b'{"id":"1","code":"200"}', "code is missing"),
        (b'{"id":"1","code":true}', "code is missing"),
        (b'{"id":"1","code":200,"message":5}', "message is not a string"),
        (b'{"code":200}', "id is missing"),
        (b'"success"', "not a JSON object"),
    ],
)
def test_parse_reply_refuses_malformed_payloads(payload: bytes, message: str) -> None:
    with pytest.raises(AlinkError, match=re.escape(message)):
        parse_reply(payload)


def test_message_ids_from_the_clock_do_not_repeat_an_earlier_start() -> None:
    start = 1_700_000_000_000
    first_run = MessageIds.from_clock(start)
    # Ten seconds at Aliyun's most (30 a second), then a restart.
    sent = {int(first_run.next()) for _ in range(300)}
    restarted = MessageIds.from_clock(start + 10_000)
    assert all(int(restarted.next()) not in sent for _ in range(300))
    assert MessageIds.from_clock(4_294_967_295 * 3 - 1).next() == "4294967295"
