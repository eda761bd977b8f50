"""The five module dialects, each one file that reads like its vendor manual."""

from __future__ import annotations

import importlib

from .base import Dialect, ModuleInfo

# Dialect name (stored in config entries, typed on the command line) → module in this package.
DIALECT_NAMES = ("quectel", "ml302", "me3630", "air72x", "w800")


def dialect_class(name: str) -> type[Dialect]:
    """The dialect called ``name``; ``ValueError`` for an unknown name."""
    if name not in DIALECT_NAMES:
        raise ValueError(f"unknown dialect {name!r}; choose one of {', '.join(DIALECT_NAMES)}")
    module = importlib.import_module(f"{__name__}.{name}")
    cls: type[Dialect] = module.DIALECT
    return cls


def guess_dialect(info: ModuleInfo) -> str | None:
    """The dialect whose module identifies itself like ``info``, if exactly one does."""
    found = [name for name in DIALECT_NAMES if dialect_class(name).matches(info)]
    return found[0] if len(found) == 1 else None
