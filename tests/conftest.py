"""Fixtures shared by the tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from testbed.cloud import AliyunCloud


@pytest.fixture
async def cloud(socket_enabled: None) -> AsyncIterator[AliyunCloud]:
    """A running Aliyun-like cloud on 127.0.0.1, stopped after the test."""
    async with AliyunCloud() as running:
        yield running
