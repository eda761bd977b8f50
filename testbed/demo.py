"""``scripts/demo``: an emulated module, a local Aliyun-like cloud and a real Home Assistant.

Everything runs on 127.0.0.1. The cloud plays Aliyun (it checks the device's credentials
like Aliyun does); the emulator plays the chosen module on a pseudo-terminal; Home Assistant
runs with this integration, ready to be added from Settings → Devices & services. A small
console on stdin plays the Aliyun console: ``set PowerSwitch 1`` sends a property set.

For scripts (the browser test): ``--auto`` onboards Home Assistant with a demo owner, and once
everything is up one line ``READY {json}`` on stdout gives the URL, the module's port, the
device triple and (with ``--auto``) the login.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from pathlib import Path
import shutil
import signal
import sys

from custom_components.aliyun_iot_at.core.dialects import DIALECT_NAMES
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator
from testbed.hass_onboarding import onboard_and_sign_in, skip_internet_steps, wait_http

ROOT = Path(__file__).resolve().parents[1]
PRODUCT_KEY = "a1DemoKey01"
DEVICE_NAME = "ha_demo"
DEVICE_SECRET = "demoSecret0123456789abcdefABCDEF"
# The owner --auto creates; the demo listens on 127.0.0.1 only.
OWNER = "demo"
OWNER_PASSWORD = "demo-password"
START_TIMEOUT = 300.0

CONFIGURATION = """\
homeassistant:
  name: Aliyun AT demo
  time_zone: Asia/Shanghai
  country: CN
  unit_system: metric
frontend:
config:
http:
  server_host: 127.0.0.1
  server_port: {port}
logger:
  default: warning
  logs:
    custom_components.aliyun_iot_at: debug
"""

HELP = """\
Console commands (the Aliyun console's side):
  set <Identifier> <json value>   send a thing.service.property.set, e.g. set PowerSwitch 0
  posts                           the messages the device sent so far
  drop                            drop the module's cloud link (it recovers by itself)
  quit                            stop everything
"""


def _write_config(config: Path, port: int) -> None:
    config.mkdir(parents=True, exist_ok=True)
    (config / "configuration.yaml").write_text(CONFIGURATION.format(port=port))
    components = config / "custom_components"
    components.mkdir(exist_ok=True)
    link = components / "aliyun_iot_at"
    if link.is_symlink() or link.exists():
        link.unlink() if link.is_symlink() else shutil.rmtree(link)
    link.symlink_to(ROOT / "custom_components" / "aliyun_iot_at", target_is_directory=True)


async def _console(cloud: AliyunCloud, device: Device, module: ModuleEmulator) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(HELP, flush=True)
    while line := await reader.readline():
        words = line.decode(errors="replace").split(maxsplit=2)
        if not words:
            continue
        try:
            if words[0] == "set" and len(words) == 3:
                msg_id = await cloud.set_properties(device, {words[1]: json.loads(words[2])})
                reply = await cloud.wait_reply(device, msg_id, timeout=10)
                print(f"set_reply: {json.dumps(reply, ensure_ascii=False)}", flush=True)
            elif words[0] == "posts":
                uplinks = cloud.uplinks(device)
                for uplink in uplinks:
                    print(f"{uplink.topic} {json.dumps(uplink.payload, ensure_ascii=False)}")
                # The count closes the listing, for a script reading it.
                print(f"({len(uplinks)} messages)", flush=True)
            elif words[0] == "drop":
                await module.drop_link()
                print("link dropped", flush=True)
            elif words[0] == "quit":
                return
            else:
                print(HELP, flush=True)
        except (ValueError, TimeoutError) as err:
            print(f"error: {err}", flush=True)


async def _wait_ready(hass: asyncio.subprocess.Process, url: str, auto: bool) -> None:
    """Until Home Assistant serves (and with ``auto``: is onboarded, signed in, running)."""
    ready = asyncio.ensure_future(
        onboard_and_sign_in(url, OWNER, OWNER_PASSWORD, START_TIMEOUT)
        if auto
        else wait_http(url, START_TIMEOUT)
    )
    exited = asyncio.ensure_future(hass.wait())
    try:
        await asyncio.wait([ready, exited], return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            raise RuntimeError(f"Home Assistant exited with {hass.returncode}")
        ready.result()
    finally:
        ready.cancel()
        exited.cancel()


def _ready_line(args: argparse.Namespace, module: ModuleEmulator) -> str:
    ready: dict[str, object] = {
        "port": str(module.path),
        "dialect": args.dialect,
        "product_key": PRODUCT_KEY,
        "device_name": DEVICE_NAME,
        "device_secret": DEVICE_SECRET,
    }
    if not args.no_hass:
        ready["url"] = f"http://127.0.0.1:{args.port}"
    if args.auto:
        ready |= {"username": OWNER, "password": OWNER_PASSWORD}
    return f"READY {json.dumps(ready)}"


async def run(args: argparse.Namespace) -> int:
    """Start the cloud, the emulator and (unless --no-hass) Home Assistant; wait for quit."""
    config: Path = args.config
    async with AliyunCloud() as cloud:
        device = cloud.add_device(PRODUCT_KEY, DEVICE_NAME, DEVICE_SECRET)
        async with ModuleEmulator(
            args.dialect,
            link=config / f"tty-{args.dialect}",
            mqtt_port=cloud.mqtt_port,
            http_port=cloud.http_port,
        ) as module:
            hass: asyncio.subprocess.Process | None = None
            if not args.no_hass:
                log = args.log
                hass = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "homeassistant", "-c", str(config),
                    stdout=log, stderr=log,
                )  # fmt: skip
            print(
                f"""
Aliyun AT demo is running.
  module ({args.dialect}) on:  {module.path}
  Home Assistant:            {"(not started)" if hass is None else f"http://127.0.0.1:{args.port}"}
  its log:                   {config / "hass.log"}

Add the integration in Home Assistant: Settings → Devices & services → Add integration →
"Aliyun IoT via AT module". Port: {module.path} (type it), baud rate 115200, then
  ProductKey {PRODUCT_KEY}   DeviceName {DEVICE_NAME}   DeviceSecret {DEVICE_SECRET}
  Region cn-shanghai (the demo maps every Aliyun host to the local cloud), thing model: standard.
""",
                flush=True,
            )
            try:
                if hass is not None:
                    await _wait_ready(hass, f"http://127.0.0.1:{args.port}", args.auto)
                    if args.auto:
                        print(f"Log in as {OWNER} / {OWNER_PASSWORD}.", flush=True)
                print(_ready_line(args, module), flush=True)
                await _console(cloud, device, module)
            finally:
                if hass is not None and hass.returncode is None:
                    hass.terminate()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(30):
                            await hass.wait()
                    if hass.returncode is None:
                        hass.kill()
    return 0


async def _main(args: argparse.Namespace) -> int:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, task.cancel)
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await run(args)
    except asyncio.CancelledError:
        return 0


def main() -> int:
    """Entry point of ``python -m testbed.demo``."""
    parser = argparse.ArgumentParser(prog="demo", description=__doc__)
    parser.add_argument("--dialect", choices=DIALECT_NAMES, default="quectel")
    parser.add_argument("--config", default=str(ROOT / "demo-config"))
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--no-hass", action="store_true", help="only the cloud and the module")
    parser.add_argument(
        "--auto",
        action="store_true",
        help=f"onboard Home Assistant with the owner {OWNER} / {OWNER_PASSWORD}",
    )
    args = parser.parse_args()
    args.config = Path(args.config).resolve()
    args.config.mkdir(parents=True, exist_ok=True)
    if not args.no_hass:
        _write_config(args.config, args.port)
        if args.auto:
            skip_internet_steps(args.config)
        args.log = (args.config / "hass.log").open("ab")
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
