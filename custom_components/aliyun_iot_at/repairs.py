"""Repair issues: what only the user can fix (the SIM, the network, the firmware, the secret).

The link reports every failed attempt; an issue stands for the latest reason the user can act
on and goes when the link is back. Fixing one offers a retry at once, instead of waiting for
the link's next attempt (up to five minutes apart).
"""

from __future__ import annotations

from homeassistant.components.repairs import ConfirmRepairFlow, RepairsFlow
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.data_entry_flow import FlowResult
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN
from .core.errors import AtError, AuthRefused, FirmwareTooOld, NoNetwork, SimNotReady
from .core.link import LinkState

# The errors the user must act on, and their issue's translation key.
_ISSUES: tuple[tuple[type[AtError], str], ...] = (
    (FirmwareTooOld, "firmware_too_old"),
    (SimNotReady, "sim_not_ready"),
    (NoNetwork, "no_network"),
    (AuthRefused, "auth_refused"),
)
# New credentials come through the reauthentication flow, not a retry.
_NOT_RETRYABLE = frozenset({"auth_refused"})
_ENTRY_ID = "entry_id"


def issue_key(error: AtError) -> str | None:
    """The issue of ``error``; None when it is not the user's to fix."""
    return next((key for cls, key in _ISSUES if isinstance(error, cls)), None)


def _issue_id(entry_id: str, key: str) -> str:
    return f"{entry_id}_{key}"


@callback
def async_update_link_issues(
    hass: HomeAssistant, entry: ConfigEntry, state: LinkState, error: AtError | None
) -> None:
    """Follow the link: an issue for an error the user must fix, none once connected."""
    if state is LinkState.CONNECTED:
        async_delete_link_issues(hass, entry.entry_id)
        return
    key = issue_key(error) if error is not None else None
    if key is None:
        return  # a passing failure says nothing new about the module
    for _, other in _ISSUES:
        if other != key:
            ir.async_delete_issue(hass, DOMAIN, _issue_id(entry.entry_id, other))
    ir.async_create_issue(
        hass,
        DOMAIN,
        _issue_id(entry.entry_id, key),
        data={_ENTRY_ID: entry.entry_id},
        is_fixable=key not in _NOT_RETRYABLE,
        severity=ir.IssueSeverity.ERROR,
        translation_key=key,
        translation_placeholders={"title": entry.title, "error": str(error)},
    )


@callback
def async_delete_link_issues(hass: HomeAssistant, entry_id: str) -> None:
    """Remove the entry's issues (connected, unloaded or removed)."""
    for _, key in _ISSUES:
        ir.async_delete_issue(hass, DOMAIN, _issue_id(entry_id, key))


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, str | int | float | None] | None
) -> RepairsFlow:
    """The fix of a link issue: confirm, and the entry connects again at once."""
    return RetryRepairFlow(str((data or {}).get(_ENTRY_ID, "")))


class RetryRepairFlow(ConfirmRepairFlow):
    """The user says the module was seen to; the entry reloads. Should the problem remain,
    the next attempt raises the issue again."""

    def __init__(self, entry_id: str) -> None:
        self._entry_id = entry_id

    async def async_step_confirm(self, user_input: dict[str, str] | None = None) -> FlowResult:
        """Reload the entry once confirmed."""
        if user_input is not None and self.hass.config_entries.async_get_entry(self._entry_id):
            self.hass.config_entries.async_schedule_reload(self._entry_id)
        return await super().async_step_confirm(user_input)
