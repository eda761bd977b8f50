"""Fixtures of the browser test: the demo and a headless Chromium, both stopped after the test.

They run only from ``scripts/browser-test``, which installs Selenium and sets
``ALIYUN_AT_BROWSER_TEST=1``; elsewhere the test is reported as skipped with that reason.
"""

from __future__ import annotations

from collections.abc import Iterator
import logging
import os
from pathlib import Path
import shutil
import tempfile
from typing import TYPE_CHECKING

import pytest

from .brands import HOST as BRANDS_HOST, serve_brand
from .demo_process import DemoProcess
from .net import free_port

if TYPE_CHECKING:
    from .ui import UI

ROOT = Path(__file__).parents[2]
INTEGRATION = ROOT / "custom_components" / "aliyun_iot_at"
ENABLED = os.environ.get("ALIYUN_AT_BROWSER_TEST") == "1"
# Home Assistant's first start in a fresh configuration, the frontend's install included.
DEMO_START_TIMEOUT = 420.0


@pytest.fixture
def chromium() -> tuple[str, str]:
    """Debian's chromium and its chromedriver; missing, the test is skipped (fails under CI)."""
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = "Chromium is not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(f"CI runs the browser test, but {missing}", pytrace=False)
        pytest.skip(missing)
    return browser, driver


@pytest.fixture
def demo(socket_enabled: None, tmp_path: Path) -> Iterator[DemoProcess]:
    """scripts/demo --auto: the cloud, the emulated module and Home Assistant, ready to log in."""
    # A short neutral folder: the module's port path in it is typed and shown in screenshots.
    with (
        tempfile.TemporaryDirectory(prefix="aliyun-demo-") as folder,
        DemoProcess.run(
            ROOT / "scripts" / "demo",
            Path(folder) / "config",
            free_port(),
            DEMO_START_TIMEOUT,
            logs=tmp_path / "demo",
        ) as running,
    ):
        yield running


@pytest.fixture
def ui(
    chromium: tuple[str, str],
    socket_enabled: None,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> Iterator[UI]:
    """A headless Chromium tab; screenshots go to $BROWSER_SCREENSHOTS or the test's tmp dir."""
    from .ui import UI  # noqa: PLC0415 - Selenium is there only under scripts/browser-test

    # Every WebDriver request would be logged, burying a failure's own messages.
    for chatty in ("selenium", "urllib3"):
        caplog.set_level(logging.WARNING, logger=chatty)

    screenshots = Path(os.environ.get("BROWSER_SCREENSHOTS") or tmp_path / "screenshots")
    with (
        serve_brand(INTEGRATION / "brand", INTEGRATION.name, tmp_path / "brands") as brands,
        UI.start(
            *chromium,
            screenshots,
            tmp_path / "chromium",
            hosts={BRANDS_HOST: f"127.0.0.1:{brands}"},
        ) as browser,
    ):
        yield browser
