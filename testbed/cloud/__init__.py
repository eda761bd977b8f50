"""An Aliyun IoT Platform stand-in: MQTT broker, HTTP auth and the cloud side of Alink."""

from .alink import Uplink
from .auth import AuthFailure
from .cloud import AliyunCloud
from .registry import Device

__all__ = ["AliyunCloud", "AuthFailure", "Device", "Uplink"]
