"""Fixtures of the portal's browser tests: the real stack (intake, processing, reporting, the
payment simulator and the portal as processes on the test Kafka broker and FerretDB) and one
headless Chromium, both for the whole session.

Playwright (its async API: the tests share the session's event loop) drives Debian's Chromium
(`apt-get install chromium`; Playwright's own browser download is not used). axe-core comes with
the `axe-playwright-python` package.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devstack.config import PROJECT_ROOT
from tests.portal.browser.stack import Stack, running_stack

CHROMIUM = os.environ.get("DVC_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = PROJECT_ROOT / ".artifacts" / "screenshots"


@pytest.fixture(scope="session")
async def stack(
    kafka_bootstrap: str, mongo_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    folder = tmp_path_factory.mktemp("portal-stack")
    async with running_stack(kafka_bootstrap, mongo_url, folder, officer_side=True) as running:
        yield running


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[object]:
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 - once per session
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install -y chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture
async def page(browser, stack: Stack) -> AsyncIterator[object]:
    context = await browser.new_context(
        base_url=stack.portal_url, viewport={"width": 1280, "height": 800}, locale="vi-VN"
    )
    context.set_default_timeout(30_000)
    page = await context.new_page()
    yield page
    await context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
