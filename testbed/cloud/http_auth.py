"""The cloud's HTTP auth endpoint (``POST /auth/devicename``), which hands out iotId/iotToken."""

from __future__ import annotations

from aiohttp import web

from .auth import AuthFailure, AuthLog, AuthRefused, check_http_auth
from .registry import DeviceRegistry

AUTH_PATH = "/auth/devicename"


class HttpAuthServer:
    """aiohttp server on 127.0.0.1 answering like Aliyun's iot-auth: HTTP 200, code in the JSON."""

    def __init__(self, registry: DeviceRegistry, auth_log: AuthLog) -> None:
        self._registry = registry
        self._auth_log = auth_log
        self._runner: web.AppRunner | None = None
        self._port = 0

    @property
    def port(self) -> int:
        """The HTTP port on 127.0.0.1."""
        if self._runner is None:
            raise RuntimeError("HTTP auth server not started")
        return self._port

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_post(AUTH_PATH, self._auth)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runner, self._port = runner, runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop listening."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _auth(self, request: web.Request) -> web.Response:
        form = {
            name: value for name, value in (await request.post()).items() if isinstance(value, str)
        }
        try:
            device = check_http_auth(self._registry, form)
        except AuthRefused as refused:
            username = f"{form.get('deviceName', '')}&{form.get('productKey', '')}"
            self._auth_log.record(
                AuthFailure("http", form.get("clientId", ""), username, refused.reason)
            )
            return web.json_response({"code": refused.code, "data": {}, "message": refused.reason})
        self._registry.accepted(form["sign"])
        token = self._registry.issue_token(device, form["clientId"])
        data = {"iotId": token.iot_id, "iotToken": token.iot_token}
        return web.json_response({"code": 200, "data": data, "message": "success"})
