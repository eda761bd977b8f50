"""The typed config entry of the integration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntry

if TYPE_CHECKING:
    from .coordinator import AliyunIotAtCoordinator

type AliyunIotAtConfigEntry = ConfigEntry[AliyunIotAtData]


@dataclass
class AliyunIotAtData:
    """What a loaded entry keeps in ``entry.runtime_data``."""

    coordinator: AliyunIotAtCoordinator
