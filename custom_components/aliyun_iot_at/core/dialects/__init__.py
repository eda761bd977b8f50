"""The five module dialects, each one file that reads like its vendor manual."""

from __future__ import annotations

# Imported up front: importing on first use would block Home Assistant's event loop.
from . import air72x, me3630, ml302, quectel, w800
from .base import Dialect, ModuleInfo

# Dialect name (stored in config entries, typed on the command line) → its class.
DIALECTS: dict[str, type[Dialect]] = {
    module.DIALECT.name: module.DIALECT for module in (quectel, ml302, me3630, air72x, w800)
}
DIALECT_NAMES = tuple(DIALECTS)


def dialect_class(name: str) -> type[Dialect]:
    """The dialect called ``name``; ``ValueError`` for an unknown name."""
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(
            f"unknown dialect {name!r}; choose one of {', '.join(DIALECT_NAMES)}"
        ) from None


def guess_dialect(info: ModuleInfo) -> str | None:
    """The dialect whose module identifies itself like ``info``, if exactly one does."""
    found = [name for name, cls in DIALECTS.items() if cls.matches(info)]
    return found[0] if len(found) == 1 else None
