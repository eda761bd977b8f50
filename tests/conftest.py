"""Fixtures shared by the tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
import logging
import re
import warnings

import pytest

from testbed.cloud import AliyunCloud


@pytest.fixture
async def cloud(socket_enabled: None, secrets_in_use: SecretsInUse) -> AsyncIterator[AliyunCloud]:
    """A running Aliyun-like cloud on 127.0.0.1, stopped after the test."""
    async with AliyunCloud() as running:
        secrets_in_use.add_source(running.secrets)
        yield running


# --- Home Assistant's reports about our code fail the test -----------------------------------
# Users run the newest Home Assistant: what it flags in our code today stops working in a later
# release. So a test during which it reports our integration fails, and so does collecting a
# test module whose imports made it report (deprecated constants are reported on import).

# Not imported from the integration: the core's tests must not depend on it importing cleanly.
_DOMAIN = "aliyun_iot_at"
# Deprecation warnings attributed to these modules (by the warning's stack level) are errors.
_OUR_MODULES = rf"{re.escape(f'custom_components.{_DOMAIN}')}(\.|$)"


def _names_our_code(message: str) -> bool:
    """Whether a Home Assistant log line reports a problem in our integration's code."""
    # The frame helper ("Detected that custom integration 'x' ... This will stop working in
    # Home Assistant ..."), the blocking-call detector and manifest checks quote the domain;
    # the deprecation helpers say "... deprecated ... from x" (wording differs by release).
    return f"custom integration '{_DOMAIN}'" in message or (
        "deprecated" in message and f" from {_DOMAIN}" in message
    )


class _OurReports(logging.Handler):
    """Keeps, in order, the messages of Home Assistant's reports about our integration."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if _names_our_code(message := record.getMessage()):
            self.messages.append(message)


# For the whole session, from before any test module imports the integration.
_REPORTS = _OurReports()
logging.getLogger("homeassistant").addHandler(_REPORTS)


@contextmanager
def _strict_about_us() -> Iterator[list[str]]:
    """Raises deprecation warnings in our modules; yields the list of reports made inside."""
    start = len(_REPORTS.messages)
    reported: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("error", category=DeprecationWarning, module=_OUR_MODULES)
            yield reported
    finally:
        reported.extend(_REPORTS.messages[start:])


def _failure(reported: list[str]) -> str:
    return "Home Assistant reported our code:\n" + "\n".join(reported)


@pytest.fixture(autouse=True)
def _no_home_assistant_reports_about_us() -> Iterator[None]:
    """Fails the test if Home Assistant reported our code while it ran."""
    with _strict_about_us() as reported:
        yield
    if reported:
        pytest.fail(_failure(reported), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """Fails collecting a test module whose imports made Home Assistant report our code."""
    with _strict_about_us() as reported:
        report = yield
    if reported and report.passed:
        report.outcome = "failed"
        report.longrepr = _failure(reported)
    return report


# --- No secret in any log line -----------------------------------------------------------------
# Device secrets, tokens and passwords must never reach a log, at any level. Every test runs
# with our loggers at DEBUG, so the masking is really exercised, and every record is checked
# as it is emitted (a test clearing caplog cannot hide one, and none has to be kept) against
# the secrets the test bed knows: the cloud's, and those fixtures add to ``secrets_in_use``.

_OUR_LOGGERS = (f"custom_components.{_DOMAIN}", "testbed")
# Shorter strings are placeholders (the W800's "p"), not secrets.
_MIN_SECRET = 8


class SecretsInUse:
    """The secrets of one test: added one by one, or read from a source at every check."""

    def __init__(self) -> None:
        self._known: set[str] = set()
        self._sources: list[Callable[[], Iterable[str]]] = []

    def add(self, *secrets: str) -> None:
        """Secrets in use from now on."""
        self._known.update(secrets)

    def add_source(self, source: Callable[[], Iterable[str]]) -> None:
        """A source of secrets that grows (the cloud issues tokens): asked at every check."""
        self._sources.append(source)

    def current(self) -> set[str]:
        """Every secret known now."""
        found = set(self._known)
        for source in self._sources:
            found.update(source())
        return {secret for secret in found if len(secret) >= _MIN_SECRET}


class SecretLogCheck(logging.Handler):
    """Keeps, secrets masked, the log lines (with their tracebacks) that carry a secret."""

    def __init__(self, secrets: SecretsInUse) -> None:
        super().__init__(logging.DEBUG)
        self.secrets = secrets
        self.leaks: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        found = [secret for secret in self.secrets.current() if secret in text]
        for secret in found:
            text = text.replace(secret, "<secret>")
        if found:
            self.leaks.append(text)


@pytest.fixture
def secrets_in_use() -> SecretsInUse:
    """The test's secrets; a fixture that configures one adds it here."""
    return SecretsInUse()


@pytest.fixture(autouse=True)
def secret_log_check(secrets_in_use: SecretsInUse) -> Iterator[SecretLogCheck]:
    """Fails the test if a log line carried a secret in use."""
    check = SecretLogCheck(secrets_in_use)
    ours = [logging.getLogger(name) for name in _OUR_LOGGERS]
    levels = [logger.level for logger in ours]
    for logger in ours:
        logger.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(check)
    try:
        yield check
    finally:
        root.removeHandler(check)
        for logger, level in zip(ours, levels, strict=True):
            logger.setLevel(level)
    if check.leaks:
        pytest.fail("secrets in the log:\n" + "\n".join(check.leaks[:20]), pytrace=False)
