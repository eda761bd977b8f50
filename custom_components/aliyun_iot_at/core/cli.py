"""``scripts/modem``: the protocol core for a person with a module on the desk.

``probe`` says what answers on a port; ``connect`` joins Aliyun, prints every message received
as one JSON line on stdout, and posts each JSON object read from stdin as a property post.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
import contextlib
import json
import logging
import signal
import sys
import time

from .alink import MessageIds, Topics, property_post
from .dialects import DIALECT_NAMES, guess_dialect
from .dialects.base import REGIONS, DeviceIdentity, Endpoint, InboundMessage, LinkSettings
from .errors import AtError
from .identify import read_info, wake
from .link import Link, LinkState, PortSettings
from .transport import DEFAULT_BAUDRATE, open_channel


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modem", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log AT traffic")
    sub = parser.add_subparsers(dest="action", required=True)
    for name in ("probe", "connect"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--device", required=True, help="path or pyserial URL of the port")
        cmd.add_argument("--baudrate", type=int, default=DEFAULT_BAUDRATE)
        if name == "connect":
            cmd.add_argument("--dialect", required=True, choices=DIALECT_NAMES)
            cmd.add_argument("--product-key", required=True)
            cmd.add_argument("--device-name", required=True)
            cmd.add_argument("--device-secret", required=True)
            where = cmd.add_mutually_exclusive_group()
            where.add_argument("--region", choices=REGIONS, default=REGIONS[0])
            where.add_argument("--host", help="the MQTT host shown in the Aliyun console")
            cmd.add_argument("--mqtt-port", type=int)
            cmd.add_argument("--tls", action="store_true")
            cmd.add_argument("--keepalive", type=int, default=300)
    return parser


async def probe(device: str, baudrate: int) -> int:
    """Print what answers on ``device`` and the dialect that fits."""
    channel = await open_channel(device, baudrate)
    try:
        await wake(channel)
        info = await read_info(channel)
    finally:
        channel.close()
    for key in ("manufacturer", "model", "firmware", "imei"):
        print(f"{key}: {getattr(info, key) or '-'}")
    dialect = guess_dialect(info)
    print(f"dialect: {dialect or 'unknown (choose one with --dialect)'}")
    return 0 if dialect else 3


def _print_message(message: InboundMessage) -> None:
    payload = message.payload.decode("utf-8", errors="replace")
    print(json.dumps({"topic": message.topic, "payload": payload}, ensure_ascii=False))
    sys.stdout.flush()


def _report_state(state: LinkState, error: AtError | None) -> None:
    print(f"link {state}{f': {error}' if error else ''}", file=sys.stderr)


async def _stdin_lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def connect(args: argparse.Namespace) -> int:
    """Connect, then relay stdin → property posts and messages → stdout until EOF."""
    identity = DeviceIdentity(args.product_key, args.device_name, args.device_secret)
    endpoint = Endpoint(region=args.region, host=args.host, port=args.mqtt_port, tls=args.tls)
    topics = Topics(args.product_key, args.device_name)
    link = Link(
        PortSettings(args.device, args.baudrate),
        args.dialect,
        LinkSettings(identity, endpoint, keepalive=args.keepalive),
        topics.subscriptions(),
        on_message=_print_message,
        on_state=_report_state,
    )
    ids = MessageIds.from_clock(time.time_ns() // 1_000_000)
    try:
        await link.connect_once()
        link.start()
        reader = await _stdin_lines()
        while line := await reader.readline():
            text = line.decode("utf-8", errors="replace").strip()
            if not text:
                continue
            try:
                params = json.loads(text)
                if not isinstance(params, dict):
                    raise TypeError("not a JSON object")
                msg_id = ids.next()
                await link.publish(topics.property_post, property_post(msg_id, params))
            except (ValueError, TypeError, AtError) as err:
                print(f"not posted: {err}", file=sys.stderr)
            else:
                print(f"posted id {msg_id}", file=sys.stderr)
    finally:
        await link.stop()
    return 0


async def _main(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, task.cancel)
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        if args.action == "probe":
            return await probe(args.device, args.baudrate)
        return await connect(args)
    except asyncio.CancelledError:
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; errors go to stderr with a non-zero exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return asyncio.run(_main(args))
    except AtError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
