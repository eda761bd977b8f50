"""Topic rules of the cloud: which topics a device owns, and the Alink topic names."""

from __future__ import annotations

from .registry import Device, DeviceKey

PROPERTY_POST = "thing/event/property/post"
PROPERTY_SET = "thing/service/property/set"
SERVICE_PREFIX = "thing/service/"
REPLY_SUFFIX = "_reply"


def own_prefixes(device: Device) -> tuple[str, ...]:
    """The topic prefixes a device may publish and subscribe under."""
    pk, dn = device.key
    return (f"/sys/{pk}/{dn}/", f"/ext/ntp/{pk}/{dn}/", f"/{pk}/{dn}/")


def may_use(device: Device, topic: str) -> bool:
    """Whether ``topic`` (a name or a filter) lies under the device's own prefixes.

    The prefixes hold no wildcard, so a filter whose wildcards come after them stays inside.
    """
    return topic.startswith(own_prefixes(device))


def sys_topic(device: Device, suffix: str) -> str:
    """``/sys/{pk}/{dn}/{suffix}``."""
    pk, dn = device.key
    return f"/sys/{pk}/{dn}/{suffix}"


def split_sys_topic(topic: str) -> tuple[DeviceKey, str] | None:
    """``((pk, dn), suffix)`` of a ``/sys/{pk}/{dn}/{suffix}`` topic, else None."""
    parts = topic.split("/", 4)
    if len(parts) != 5 or parts[:2] != ["", "sys"] or not all(parts[2:]):
        return None
    return (parts[2], parts[3]), parts[4]
