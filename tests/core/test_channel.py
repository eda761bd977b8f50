"""The AT channel over a real pseudo-terminal: framing, URC routing, prompts, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import logging
import os
import re
import tty

import pytest

from custom_components.aliyun_iot_at.core.channel import (
    AtChannel,
    ResultLine,
    UrcSpec,
    parse_fields,
)
from custom_components.aliyun_iot_at.core.dialects.base import parse_length_framed
from custom_components.aliyun_iot_at.core.errors import (
    AtCommandError,
    AtTimeout,
    CmeError,
    CmsError,
    ModuleRestarted,
    NoResult,
    PortError,
)
from custom_components.aliyun_iot_at.core.transport import open_channel


class Wire:
    """The module's end of the pty: read what the host wrote, write what a module says."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self._data = bytearray()
        self._more = asyncio.Event()
        asyncio.get_running_loop().add_reader(self.master, self._readable)

    def _readable(self) -> None:
        try:
            self._data += os.read(self.master, 4096)
        except OSError:
            return
        self._more.set()

    async def read_until(self, token: bytes, timeout: float = 2.0) -> bytes:
        async with asyncio.timeout(timeout):
            while token not in self._data:
                self._more.clear()
                await self._more.wait()
        end = self._data.index(token) + len(token)
        chunk = bytes(self._data[:end])
        del self._data[:end]
        return chunk

    async def command(self) -> str:
        """The next command line the host sent."""
        return (await self.read_until(b"\r")).decode().strip()

    def unread(self) -> bytes:
        return bytes(self._data)

    def say(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
async def wire() -> AsyncIterator[Wire]:
    w = Wire()
    yield w
    w.close()


@pytest.fixture
async def channel(wire: Wire) -> AsyncIterator[AtChannel]:
    ch = await open_channel(wire.path)
    yield ch
    ch.close()
    await ch.wait_closed()


async def answer(wire: Wire, channel_task: asyncio.Task[list[str]], reply: bytes) -> list[str]:
    await wire.command()
    wire.say(reply)
    return await channel_task


async def test_info_lines_and_ok(wire: Wire, channel: AtChannel) -> None:
    task = asyncio.create_task(channel.command("AT+CGMI"))
    assert await answer(wire, task, b"\r\nQuectel\r\n\r\nOK\r\n") == ["Quectel"]


async def test_echo_is_dropped(wire: Wire, channel: AtChannel) -> None:
    task = asyncio.create_task(channel.command("AT+CGMM"))
    assert await answer(wire, task, b"AT+CGMM\r\r\nEC600S\r\nOK\r\n") == ["EC600S"]


@pytest.mark.parametrize("eol", [b"\r\n", b"\r", b"\n", b"\n\r"])
async def test_any_line_ending(wire: Wire, channel: AtChannel, eol: bytes) -> None:
    task = asyncio.create_task(channel.command("ATI"))
    assert await answer(wire, task, b"Quectel" + eol + b"OK" + eol) == ["Quectel"]


async def test_partial_lines_and_noise(wire: Wire, channel: AtChannel) -> None:
    task = asyncio.create_task(channel.command("ATI"))
    await wire.command()
    for chunk in (b"\x00\x00\r\nQue", b"ctel\xff\xfe\r", b"\nO", b"K\r\n"):
        wire.say(chunk)
        await asyncio.sleep(0.01)
    assert await task == ["Quectel\ufffd\ufffd"]


async def test_urc_between_response_and_ok(wire: Wire, channel: AtChannel) -> None:
    seen: list[str] = []
    channel.add_urc(UrcSpec("+QMTSTAT:", seen.append))
    task = asyncio.create_task(channel.command("AT+CSQ"))
    reply = b"\r\n+CSQ: 20,99\r\n\r\n+QMTSTAT: 0,1\r\n\r\nOK\r\n"
    assert await answer(wire, task, reply) == ["+CSQ: 20,99"]
    assert seen == ["+QMTSTAT: 0,1"]


async def test_urc_while_idle_and_unknown_lines(wire: Wire, channel: AtChannel) -> None:
    seen: list[str] = []
    channel.add_urc(UrcSpec("+QMTSTAT:", seen.append))
    wire.say(b"\r\n+QMTSTAT: 0,1\r\ngarbage\r\nOK\r\n")
    await asyncio.sleep(0.05)  # let the idle lines arrive before the command goes out
    task = asyncio.create_task(channel.command("AT"))
    # The stray OK before the command must not answer it: it came while idle.
    assert await answer(wire, task, b"\r\nOK\r\n") == []
    assert seen == ["+QMTSTAT: 0,1"]


async def test_response_prefix_wins_over_urc(wire: Wire, channel: AtChannel) -> None:
    seen: list[str] = []
    channel.add_urc(UrcSpec("+QMTOPEN:", seen.append))
    task = asyncio.create_task(channel.command("AT+QMTOPEN?", response_prefix="+QMTOPEN:"))
    reply = b'\r\n+QMTOPEN: 0,"host",1883\r\n\r\nOK\r\n\r\n+QMTOPEN: 0,0\r\n'
    assert await answer(wire, task, reply) == ['+QMTOPEN: 0,"host",1883']
    await asyncio.sleep(0.05)
    assert seen == ["+QMTOPEN: 0,0"]


@pytest.mark.parametrize(
    ("reply", "error", "kind", "code"),
    [
        (b"\r\nERROR\r\n", AtCommandError, "ERROR", None),
        (b"\r\n+CME ERROR: 10\r\n", CmeError, "CME", 10),
        (b"\r\n+CME ERROR: SIM not inserted\r\n", CmeError, "CME", None),
        (b"\r\n+CMD ERROR: 3\r\n", CmeError, "CME", 3),
        (b"\r\n+CMS ERROR: 500\r\n", CmsError, "CMS", 500),
    ],
)
async def test_error_results_are_typed(
    wire: Wire,
    channel: AtChannel,
    reply: bytes,
    error: type[AtCommandError],
    kind: str,
    code: int | None,
) -> None:
    task = asyncio.create_task(channel.command("AT+CPIN?"))
    with pytest.raises(error) as info:
        await answer(wire, task, reply)
    assert (info.value.kind, info.value.code) == (kind, code)


async def test_vendor_error_line(wire: Wire, channel: AtChannel) -> None:
    task = asyncio.create_task(
        channel.command('AT+MQTTSUB=0,"t",0', errors=("ALREADY FULL SUBSCRIBE",))
    )
    with pytest.raises(AtCommandError, match="ALREADY FULL SUBSCRIBE"):
        await answer(wire, task, b"\r\nALREADY FULL SUBSCRIBE\r\n")


async def test_timeout_then_usable(wire: Wire, channel: AtChannel) -> None:
    with pytest.raises(AtTimeout):
        await channel.command("AT+SLOW", timeout=0.1)
    await wire.command()
    task = asyncio.create_task(channel.command("AT"))
    assert await answer(wire, task, b"\r\nOK\r\n") == []


async def test_one_command_in_flight(wire: Wire, channel: AtChannel) -> None:
    first = asyncio.create_task(channel.command("AT+A"))
    second = asyncio.create_task(channel.command("AT+B"))
    assert await wire.command() == "AT+A"
    await asyncio.sleep(0.05)
    assert b"AT+B" not in wire.unread()  # nothing else was written yet
    wire.say(b"\r\nOK\r\n")
    assert await first == []
    assert await wire.command() == "AT+B"
    wire.say(b"\r\nOK\r\n")
    assert await second == []


async def test_prompt_then_payload(wire: Wire, channel: AtChannel) -> None:
    payload = b'{"id":"1","params":{"a":"x,\\"y\\""}}'
    task = asyncio.create_task(
        channel.command('AT+QMTPUBEX=0,1,1,0,"t",37', prompt=">", payload=payload)
    )
    await wire.command()
    wire.say(b"\r\n> ")
    assert await wire.read_until(payload) == payload
    wire.say(b"\r\nOK\r\n")
    assert await task == []


async def test_ok_before_prompt_is_not_final(wire: Wire, channel: AtChannel) -> None:
    task = asyncio.create_task(
        channel.command(
            'AT+MQTTPUBRAW=0,"t",2,0,0',
            prompt=">",
            payload=b"hi",
            ok=("+MQTTPUB:OK",),
            errors=("+MQTTPUB:FAIL",),
        )
    )
    await wire.command()
    wire.say(b"\r\nOK\r\n\r\n>")
    assert await wire.read_until(b"hi") == b"hi"
    wire.say(b"\r\n+MQTTPUB:OK\r\n")
    assert await task == []


async def test_download_prompt(wire: Wire, channel: AtChannel) -> None:
    task = asyncio.create_task(
        channel.command("AT+HTTPDATA=5,20000", prompt="DOWNLOAD", payload=b"a=b&c")
    )
    await wire.command()
    wire.say(b"\r\nDOWNLOAD\r\n")
    assert await wire.read_until(b"a=b&c") == b"a=b&c"
    wire.say(b"\r\nOK\r\n")
    assert await task == []


QMTRECV = re.compile(rb'\+QMTRECV: \d+,\d+,"[^"]*",(?P<len>\d+),"')


async def test_length_framed_urc_keeps_payload_intact(wire: Wire, channel: AtChannel) -> None:
    seen: list[str] = []
    channel.add_urc(UrcSpec("+QMTRECV:", seen.append, parse_length_framed(QMTRECV, b'"')))
    payload = b'{"a":"x\r\ny","b":"OK\r\n"}'
    urc = b'+QMTRECV: 0,0,"/sys/t",%d,"%s"' % (len(payload), payload)
    wire.say(b"\r\n" + urc[:20])
    await asyncio.sleep(0.02)
    wire.say(urc[20:] + b"\r\n")
    task = asyncio.create_task(channel.command("AT"))
    assert await answer(wire, task, b"\r\nOK\r\n") == []
    assert seen == [urc.decode()]


async def test_overlong_line_is_dropped(wire: Wire, channel: AtChannel) -> None:
    channel.max_line = 64
    wire.say(b"\r\n" + b"x" * 500 + b"\r\n")
    task = asyncio.create_task(channel.command("ATI"))
    assert await answer(wire, task, b"\r\nQuectel\r\nOK\r\n") == ["Quectel"]


async def test_restart_fails_the_command(wire: Wire, channel: AtChannel) -> None:
    restarts: list[str] = []
    channel.on_restart = restarts.append
    task = asyncio.create_task(channel.command('AT+QMTOPEN=0,"h",1883'))
    with pytest.raises(ModuleRestarted):
        await answer(wire, task, b"\r\nRDY\r\n")
    assert restarts == ["RDY"]


async def test_restart_fails_a_result_still_awaited(wire: Wire, channel: AtChannel) -> None:
    task = asyncio.create_task(
        channel.request(
            'AT+QMTPUBEX=0,1,1,0,"t",2', results=("+QMTPUBEX: 0,1,",), result_timeout=30.0
        )
    )
    await wire.command()
    wire.say(b"\r\nOK\r\n")
    await asyncio.sleep(0.02)
    wire.say(b"\r\nRDY\r\n")
    async with asyncio.timeout(1.0):  # not the 30 s of the result's timeout
        with pytest.raises(ModuleRestarted):
            await task
    assert not channel._waiters  # none left behind


async def test_waiter_sees_result_urc_after_ok(wire: Wire, channel: AtChannel) -> None:
    waiter = channel.expect("+QMTOPEN: 0,")
    task = asyncio.create_task(channel.command('AT+QMTOPEN=0,"h",1883'))
    assert await answer(wire, task, b"\r\nOK\r\n") == []
    wire.say(b"\r\n+QMTOPEN: 0,0\r\n")
    assert await waiter.wait(1.0) == "+QMTOPEN: 0,0"


async def test_waiter_timeout(channel: AtChannel) -> None:
    waiter = channel.expect("+QMTCONN:")
    with pytest.raises(AtTimeout):
        await waiter.wait(0.05)


@pytest.mark.parametrize(
    ("prefix", "line", "rest"),
    [
        ("+QMTPUBEX: 0,5,", "+QMTPUBEX: 0,5,0", "0"),
        ("+QMTPUBEX: 0,5,", "+QMTPUBEX:0,5,0", "0"),
        ("+QMTPUBEX:0,5,", "+QMTPUBEX: 0,5,2", "2"),
        ("+HTTPACTION:", "+HTTPACTION: 1,200,56", "1,200,56"),
        ("+HTTPACTION:", "+HTTPACTION:1,200,56", "1,200,56"),
        ("SUBACK", "SUBACK", ""),
    ],
)
async def test_result_prefixes_match_with_or_without_a_space_after_the_colon(
    wire: Wire, channel: AtChannel, prefix: str, line: str, rest: str
) -> None:
    task = asyncio.create_task(
        channel.request("AT+X", results=("+OTHER:", prefix), result_timeout=1.0)
    )
    await wire.command()
    wire.say(b"\r\nOK\r\n\r\n" + line.encode() + b"\r\n")
    assert await task == ResultLine(prefix, line, rest)


@pytest.mark.parametrize("line", ["+QMTPUBEX: 0,50,0", "+QMTPUBEX:  0,5,0", "+QMTPUBEX 0,5,0"])
async def test_other_lines_are_no_result(wire: Wire, channel: AtChannel, line: str) -> None:
    channel.add_secret("s3cr3t")
    task = asyncio.create_task(
        channel.request("AT+X=s3cr3t", results=("+QMTPUBEX: 0,5,",), result_timeout=0.2)
    )
    await wire.command()
    wire.say(b"\r\nOK\r\n\r\n" + line.encode() + b"\r\n")
    with pytest.raises(NoResult, match=r"^AT\+X=\*+: no '\+QMTPUBEX: 0,5,' within 0\.2 s$"):
        await task
    assert not channel._waiters  # none left behind


async def test_a_result_before_the_ok_counts_and_the_first_given_wins(
    wire: Wire, channel: AtChannel
) -> None:
    task = asyncio.create_task(
        channel.request("AT+X", results=("+A:", "+B:"), timeout=1.0, result_timeout=1.0)
    )
    await wire.command()
    wire.say(b"\r\n+B: 2\r\n+A: 1\r\nOK\r\n")
    assert await task == ResultLine("+A:", "+A: 1", "1")


async def test_a_failed_request_leaves_no_waiter(wire: Wire, channel: AtChannel) -> None:
    task = asyncio.create_task(channel.request("AT+X", results=("+A:",), result_timeout=1.0))
    await wire.command()
    wire.say(b"\r\n+CME ERROR: 3\r\n")
    with pytest.raises(CmeError):
        await task
    assert not channel._waiters  # none left behind


async def test_port_loss_fails_pending_work(wire: Wire) -> None:
    channel = await open_channel(wire.path)
    lost: list[Exception | None] = []
    channel.on_lost = lost.append
    waiter = channel.expect("+X:")
    task = asyncio.create_task(channel.command("AT"))
    await wire.command()
    channel.close()
    with pytest.raises(PortError):
        await task
    with pytest.raises(PortError):
        await waiter.wait(1.0)
    assert len(lost) == 1
    with pytest.raises(PortError):
        await channel.command("AT")


async def test_command_with_line_break_is_refused(channel: AtChannel) -> None:
    with pytest.raises(ValueError, match="CR or LF"):
        await channel.command("AT\r+X")


async def test_secrets_are_masked_in_logs(
    wire: Wire, channel: AtChannel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="custom_components.aliyun_iot_at.core")
    channel.add_secret("s3cr3tValue")
    task = asyncio.create_task(channel.command('AT+QMTCFG="aliauth",0,"pk","dn","s3cr3tValue"'))
    await answer(wire, task, b"\r\n+X: s3cr3tValue\r\nOK\r\n")
    assert "s3cr3tValue" not in caplog.text
    assert "aliauth" in caplog.text


async def test_unopenable_port() -> None:
    with pytest.raises(PortError):
        await open_channel("/dev/nonexistent-tty")


def test_parse_fields() -> None:
    assert parse_fields('0,"a,b",12, x ') == ["0", "a,b", "12", "x"]
    assert parse_fields("") == [""]
