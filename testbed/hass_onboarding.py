"""Onboarding a fresh Home Assistant and signing in over its HTTP API, as its frontend does.

The demo's ``--auto`` uses it so a person or a browser test can log in at once. The owner is
created by the onboarding API. The other onboarding steps are marked done in the store before
Home Assistant first starts, because finishing the core-config step sets up weather, radio and
text-to-speech integrations that would reach the internet.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
import json
from pathlib import Path
from typing import Any

import aiohttp

# Home Assistant migrates an older store, so a newer release still reads this one.
_STORE = {
    "version": 4,
    "minor_version": 1,
    "key": "onboarding",
    "data": {"done": ["core_config", "analytics", "integration"]},
}
_POLL = 0.5


def skip_internet_steps(config: Path) -> None:
    """On a configuration Home Assistant never ran: leave only the owner's step to do."""
    store = config / ".storage" / "onboarding"
    if not store.exists():
        store.parent.mkdir(parents=True, exist_ok=True)
        store.write_text(json.dumps(_STORE, indent=2))


async def wait_http(url: str, timeout: float) -> None:
    """Wait until Home Assistant at ``url`` serves HTTP."""
    async with asyncio.timeout(timeout), aiohttp.ClientSession(url) as http:
        await _serving(http)


async def onboard_and_sign_in(url: str, username: str, password: str, timeout: float) -> None:
    """Wait for Home Assistant at ``url``, create the owner if there is none, sign in with it
    and wait until Home Assistant has finished starting."""
    client_id = f"{url}/"
    async with asyncio.timeout(timeout), aiohttp.ClientSession(url) as http:
        await _serving(http)
        async with http.get("/api/onboarding") as response:
            # The onboarding API is gone once onboarding is over.
            steps = await response.json() if response.status == HTTPStatus.OK else []
        if any(step == {"step": "user", "done": False} for step in steps):
            owner = {"name": "Demo", "username": username, "password": password}
            await _post(
                http, "/api/onboarding/users", owner | {"client_id": client_id, "language": "en"}
            )
        token = await _sign_in(http, client_id, username, password)
        await _wait_running(http, token)


async def _serving(http: aiohttp.ClientSession) -> None:
    while True:
        try:
            async with http.get("/auth/providers"):
                return
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(_POLL)


async def _post(http: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> Any:
    async with http.post(path, json=body) as response:
        if response.status != HTTPStatus.OK:
            raise RuntimeError(f"{path}: HTTP {response.status}")
        return await response.json()


async def _sign_in(
    http: aiohttp.ClientSession, client_id: str, username: str, password: str
) -> str:
    """The login form's flow, then the token exchange; returns an access token."""
    flow = await _post(
        http,
        "/auth/login_flow",
        {
            "client_id": client_id,
            "handler": ["homeassistant", None],
            "redirect_uri": f"{client_id}?auth_callback=1",
        },
    )
    step = await _post(
        http,
        f"/auth/login_flow/{flow['flow_id']}",
        {"client_id": client_id, "username": username, "password": password},
    )
    if step.get("type") != "create_entry":
        raise RuntimeError(f"signing in failed: {step.get('errors')}")
    form = {"grant_type": "authorization_code", "code": step["result"], "client_id": client_id}
    async with http.post("/auth/token", data=form) as response:
        if response.status != HTTPStatus.OK:
            raise RuntimeError(f"/auth/token: HTTP {response.status}")
        tokens = await response.json()
    token: str = tokens["access_token"]
    return token


async def _wait_running(http: aiohttp.ClientSession, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    while True:
        async with http.get("/api/config", headers=headers) as response:
            if response.status == HTTPStatus.OK and (await response.json())["state"] == "RUNNING":
                return
        await asyncio.sleep(_POLL)
