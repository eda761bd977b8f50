"""A stand-in for brands.home-assistant.io that serves the integration's own brand/ folder.

Home Assistant 2025.4's frontend loads every integration's icon from brands.home-assistant.io;
from 2026.3 on, Home Assistant serves a custom integration's brand/ folder itself. The browser
test has no internet, so Chromium is sent here for that host and the UI shows the icon users
see. Other integrations' images are not found, as offline.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
import re
import ssl
import subprocess
import threading

HOST = "brands.home-assistant.io"


def _image(brand: Path, domain: str, path: str) -> Path | None:
    """The file the brands site would serve for ``path``: a missing logo falls back to the
    icon, a missing dark variant to the light image."""
    pattern = rf"/(?:brands/)?(?:_/)?{re.escape(domain)}/(dark_)?(icon|logo)(@2x)?\.png"
    if not (match := re.fullmatch(pattern, path)):
        return None
    dark, kind, scale = (part or "" for part in match.groups())
    for candidate in (f"{dark}{kind}", kind, f"{dark}icon", "icon"):
        if (file := brand / f"{candidate}{scale}.png").is_file():
            return file
    return None


@contextmanager
def serve_brand(brand: Path, domain: str, scratch: Path) -> Iterator[int]:
    """Serve ``brand`` over HTTPS (a throwaway self-signed certificate) on 127.0.0.1; yields
    the port. The serving thread is stopped on exit."""
    scratch.mkdir(parents=True, exist_ok=True)
    key, certificate = scratch / "key.pem", scratch / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", f"/CN={HOST}", "-keyout", str(key), "-out", str(certificate)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            image = _image(brand, domain, self.path.split("?")[0])
            if image is None:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            body = image.read_bytes()
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "image/png")
            # The frontend loads these images cross-origin, as from the real site.
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the test's output is about the UI."""

    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name="brands-stand-in")
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
