"""Typed errors of the protocol core.

Every failure the core can report is one of these, so callers (the coordinator, the CLI,
the config flow) can map each to a user-facing message without parsing strings.
"""

from __future__ import annotations


class AtError(Exception):
    """Base class of every error raised by the protocol core."""


class PortError(AtError):
    """The serial port (or its URL) cannot be opened, or was lost."""


class AtTimeout(AtError):
    """A command got no final result code in time."""


class NoResult(AtTimeout):
    """A command was accepted, but the result line it announces did not come in time."""


class ModuleRestarted(AtError):
    """The module rebooted (``RDY`` or its dialect's power-on line) while we waited."""


class AtCommandError(AtError):
    """The module answered a command with a failure result code.

    ``kind`` is the family (``ERROR``, ``CME``, ``CMS`` or a vendor word); ``code`` the
    numeric code when the module gave one.
    """

    def __init__(self, command: str, line: str, kind: str = "ERROR", code: int | None = None):
        self.command = command
        self.line = line
        self.kind = kind
        self.code = code
        super().__init__(f"{command!s} failed: {line}")


class CmeError(AtCommandError):
    """``+CME ERROR: n`` (equipment error; ML302's 700-708 and ME3630's variants too)."""


class CmsError(AtCommandError):
    """``+CMS ERROR: n`` (message service error)."""


class UnsafeValue(AtError, ValueError):
    """A value cannot be carried safely in this dialect's command syntax: refused, not sent."""


class LinkError(AtError):
    """Bringing the cloud link up failed for a reason the user can act on."""


class UnknownModule(LinkError):
    """The port answers, but not like any supported module."""


class FirmwareTooOld(LinkError):
    """The module's firmware predates the commands Aliyun needs: only an update helps."""


class NoAnswer(LinkError):
    """Nothing answers ``AT`` on the port."""


class SimNotReady(LinkError):
    """The SIM is missing, locked or not ready."""


class NoNetwork(LinkError):
    """The module is not registered on a network, or has no data connection."""


class AuthRefused(LinkError):
    """The cloud refused the device's credentials."""


class NotConnected(LinkError):
    """An operation needs the MQTT session, which is down."""


class PublishFailed(LinkError):
    """The module reported that a publish did not go out."""
