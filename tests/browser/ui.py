"""Home Assistant's web UI in headless Chromium, driven with Selenium through chromedriver.

Home Assistant's frontend is built of web components, each with its own shadow DOM, so plain
CSS selectors do not reach most of it: the lookups here walk every shadow root.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
import subprocess
import time
from typing import Any, cast

from selenium import webdriver
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    ElementNotInteractableException,
    StaleElementReferenceException,
)
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from .net import free_port, wait_listening

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1200",
]
TIMEOUT = 30.0
_POLL = 0.25
# Transient while Home Assistant's frontend re-renders.
_RETRIED = (
    StaleElementReferenceException,
    ElementNotInteractableException,
    ElementClickInterceptedException,
)

# Visible elements matching a CSS selector, in the document and in every shadow root.
_DEEP_QUERY = """
const [selector] = arguments;
const found = [];
const visit = (root) => {
  for (const element of root.querySelectorAll('*')) {
    if (element.matches(selector) && element.getClientRects().length) found.push(element);
    if (element.shadowRoot) visit(element.shadowRoot);
  }
};
visit(document);
return found;
"""

# The input (or textarea) of the visible form field labelled so, however deep it sits.
_LABELLED_INPUT = """
const [label] = arguments;
let field = null;
const visit = (root) => {
  for (const element of root.querySelectorAll('*')) {
    if (!field && element.label === label && element.getClientRects().length) field = element;
    if (element.shadowRoot) visit(element.shadowRoot);
  }
};
visit(document);
const input = (root) => {
  for (const element of root.querySelectorAll('*')) {
    if (element.matches('input, textarea')) return element;
    const inner = element.shadowRoot && input(element.shadowRoot);
    if (inner) return inner;
  }
  return null;
};
return field && ((field.shadowRoot && input(field.shadowRoot)) || input(field));
"""


class UI:
    """One browser tab on Home Assistant; screenshots saved under ``screenshots``, those of
    failures under ``failures``."""

    def __init__(self, driver: WebDriver, screenshots: Path, failures: Path) -> None:
        self.driver = driver
        self.screenshots = screenshots
        self.failures = failures

    @classmethod
    @contextmanager
    def start(
        cls,
        chromium: str,
        chromedriver: str,
        screenshots: Path,
        scratch: Path,
        hosts: dict[str, str],
    ) -> Iterator[UI]:
        """Chromium under its chromedriver, both stopped on exit. ``hosts`` maps host names
        to 127.0.0.1:port; no other name resolves, so the page cannot reach the internet."""
        scratch.mkdir(parents=True, exist_ok=True)
        screenshots.mkdir(parents=True, exist_ok=True)
        port = free_port()
        # Started here rather than by Selenium, so Selenium never looks for a driver to
        # download and talks to it on 127.0.0.1.
        driver_process = subprocess.Popen(
            [chromedriver, f"--port={port}", f"--log-path={scratch / 'chromedriver.log'}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_listening(port, TIMEOUT)
            options = webdriver.ChromeOptions()
            options.binary_location = chromium
            # The stand-ins for internet hosts have throwaway certificates.
            options.accept_insecure_certs = True
            rules = [f"MAP {host} {address}" for host, address in hosts.items()]
            rules += ["MAP * ~NOTFOUND", "EXCLUDE 127.0.0.1"]
            for flag in [
                *CHROMIUM_FLAGS,
                f"--host-resolver-rules={', '.join(rules)}",
                f"--user-data-dir={scratch / 'profile'}",
            ]:
                options.add_argument(flag)
            driver = webdriver.Remote(f"http://127.0.0.1:{port}", options=options)
            try:
                yield cls(driver, screenshots, scratch)
            finally:
                driver.quit()
        finally:
            driver_process.terminate()
            driver_process.wait(timeout=30)

    def open(self, url: str) -> None:
        """Load ``url`` in the tab."""
        self.driver.get(url)

    def screenshot(self, name: str, folder: Path | None = None) -> Path:
        """The visible page as ``<name>.png`` in ``folder`` (the screenshots' by default)."""
        path = (folder or self.screenshots) / f"{name}.png"
        if not self.driver.save_screenshot(str(path)):
            raise AssertionError(f"no screenshot {path}")
        return path

    def wait_for[T](self, what: str, found: Callable[[], T | None], timeout: float = TIMEOUT) -> T:
        """What ``found`` returns once it is truthy; on timeout a screenshot and a failure."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if result := found():
                    return result
            except _RETRIED:
                pass
            if time.monotonic() > deadline:
                shot = self.screenshot(f"failed-{'-'.join(what.split())}", self.failures)
                raise AssertionError(f"timed out waiting for {what} (see {shot})")
            time.sleep(_POLL)

    def script(self, source: str, *args: object) -> Any:
        """Run JavaScript in the page; what it returns."""
        return self.driver.execute_script(source, *args)  # type: ignore[no-untyped-call]

    def find(self, selector: str, text: str | None = None) -> list[WebElement]:
        """Visible elements matching ``selector`` whose text or label contains ``text``."""
        elements = cast(list[WebElement], self.script(_DEEP_QUERY, selector))
        if text is None:
            return elements
        wanted = text.casefold()
        return [element for element in elements if wanted in _words(element)]

    def element(self, selector: str, text: str | None = None) -> WebElement:
        """The first visible element matching, once there is one."""
        what = f"{selector} {text or ''}"
        return self.wait_for(what, lambda: next(iter(self.find(selector, text)), None))

    def click(self, selector: str, text: str | None = None) -> None:
        """Click the first visible element matching, once it takes the click."""

        def clicked() -> bool:
            elements = self.find(selector, text)
            if elements:
                elements[0].click()
            return bool(elements)

        self.wait_for(f"{selector} {text or ''} to click", clicked)

    def field(self, label: str) -> WebElement:
        """The input of the form field labelled ``label``."""
        return self.wait_for(
            f"field {label}",
            lambda: cast(WebElement | None, self.script(_LABELLED_INPUT, label)),
        )

    def fill(self, label: str, text: str) -> None:
        """Replace the field's text with ``text`` by typing, as a person does."""
        field = self.field(label)
        old = field.get_attribute("value") or ""
        field.send_keys(Keys.END, Keys.BACKSPACE * len(old), text)
        # A combo box takes a typed value that is none of its options on Enter.
        if field.get_attribute("role") == "combobox":
            field.send_keys(Keys.ENTER)
        self.wait_for(f"{label} to read {text}", lambda: field.get_attribute("value") == text)

    def dialog_text(self) -> str:
        """The text of the open dialogs."""
        return "\n".join(dialog.text for dialog in self.find("ha-dialog"))


def _words(element: WebElement) -> str:
    return f"{element.text} {element.get_attribute('label') or ''}".casefold()
