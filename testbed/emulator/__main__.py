"""Run an emulated module until Ctrl-C: ``python -m testbed.emulator --dialect quectel
--link ./ttyEMU --mqtt-port 1883``; the host opens the printed link like a serial port."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
import contextlib
import os
from pathlib import Path

from .emulator import ModuleEmulator


def build(argv: Sequence[str] | None = None) -> ModuleEmulator:
    """The emulator the command line asks for."""
    parser = argparse.ArgumentParser(prog="python -m testbed.emulator", description=__doc__)
    parser.add_argument("--dialect", required=True, help="quectel, ml302, me3630, air72x, w800")
    parser.add_argument("--link", required=True, type=Path, help="symlink the host opens")
    parser.add_argument("--mqtt-port", required=True, type=int, help="the local cloud's MQTT")
    parser.add_argument("--mqtt-host", default="127.0.0.1")
    parser.add_argument("--http-port", type=int, help="the local cloud's HTTP auth endpoint")
    parser.add_argument("--baudrate", type=int, help="pace both directions as on a real line")
    parser.add_argument("--firmware", help="revision string the module reports")
    parser.add_argument("--no-echo", action="store_true", help="start with ATE0")
    args = parser.parse_args(argv)
    return ModuleEmulator(
        args.dialect,
        link=args.link,
        mqtt_host=args.mqtt_host,
        mqtt_port=args.mqtt_port,
        http_port=args.http_port,
        echo=not args.no_echo,
        baudrate=args.baudrate,
        firmware=args.firmware,
    )


async def _serve(emulator: ModuleEmulator) -> None:
    async with emulator:
        print(f"{emulator.path} -> {os.readlink(emulator.path)}", flush=True)
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the emulator ``argv`` describes until interrupted."""
    emulator = build(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(emulator))


if __name__ == "__main__":
    main()
