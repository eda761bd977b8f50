"""Every dialect end to end: a property set reaches the link exactly as the cloud sent it,
and a property post reaches the cloud exactly as the link published it."""

from __future__ import annotations

import json

import pytest

from custom_components.aliyun_iot_at.core import alink
from custom_components.aliyun_iot_at.core.dialects import DIALECT_NAMES
from custom_components.aliyun_iot_at.core.dialects.base import Endpoint
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator

from .conftest import HOST, TOPICS, Session, cloud_json, property_set


@pytest.fixture(params=DIALECT_NAMES)
def dialect(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def endpoint(dialect: str) -> Endpoint:
    return Endpoint(tls=dialect == "air72x")  # as the Air72x seed: AT+SSLMIPSTART


async def test_property_set_and_post_round_trip(
    cloud: AliyunCloud,
    device: Device,
    module: ModuleEmulator,
    session: Session,
    endpoint: Endpoint,
    dialect: str,
) -> None:
    await session.link.connect_once()
    assert cloud.is_online(device)
    assert module.mqtt.target == (HOST, endpoint.mqtt_port, endpoint.tls)

    msg_id = await cloud.set_properties(device, {"PowerSwitch": 1})
    assert await session.next_message() == property_set(msg_id, {"PowerSwitch": 1})

    # JSON escapes a quote with a backslash, which the ML302 refuses to carry (its docstring).
    label = "温度, 高" if dialect == "ml302" else '温度, "高"'
    payload = alink.property_post("7", {"PowerSwitch": 0, "Label": label})
    await session.link.publish(TOPICS.property_post, payload)
    post = await cloud.wait_post(device)
    assert post == json.loads(payload)
    assert post["method"] == "thing.event.property.post"
    assert cloud.uplinks(device)[-1].topic == TOPICS.property_post
    reply = await session.next_message()  # the cloud's post_reply, through the + filter
    assert reply.topic == TOPICS.property_post_reply
    assert json.loads(reply.payload)["code"] == 200


async def test_quotes_commas_and_utf8_arrive_whole(
    cloud: AliyunCloud, device: Device, session: Session
) -> None:
    await session.link.connect_once()
    params = {"Label": 'say "hi", then {bye}\\', "Name": "客厅, 灯", "List": [1, 2]}
    msg_id = await cloud.set_properties(device, params)
    message = await session.next_message()
    assert json.loads(message.payload)["params"] == params
    assert message.payload == cloud_json(
        {"id": msg_id, "version": "1.0", "params": params, "method": "thing.service.property.set"}
    )
