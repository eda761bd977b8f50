"""An AT module on a pseudo-terminal, bridging its MQTT to the local cloud.

``ModuleEmulator("quectel", link=..., mqtt_port=...)`` plays the module as its vendor manual
describes; a personality (one file per dialect) is a table of command handlers on top of the
commands every module shares.
"""

from .emulator import ModuleEmulator
from .mqtt import NO_LINK, InboundMessage, MqttBridge
from .parser import ERROR, OK, Command, Kind, ParamError
from .personality import Handler, Personality, resolve_personality

__all__ = [
    "ERROR",
    "NO_LINK",
    "OK",
    "Command",
    "Handler",
    "InboundMessage",
    "Kind",
    "ModuleEmulator",
    "MqttBridge",
    "ParamError",
    "Personality",
    "resolve_personality",
]
