"""Fixtures of the workspace's browser tests: Keycloak (test profile), the stack (intake,
processing and the portal as processes, verifying the provider's tokens) and one headless
Chromium (the portal's browser fixtures), for the whole session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.portal.browser.conftest import browser, screenshots
from tests.portal.workspace.stack import (
    WorkspaceStack,
    keycloak_issuer,
    registered_redirects,
    running_workspace,
)

__all__ = ["browser", "screenshots"]


@pytest.fixture(scope="session")
async def workspace_stack(
    kafka_bootstrap: str, mongo_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[WorkspaceStack]:
    issuer = await asyncio.to_thread(keycloak_issuer)
    folder = tmp_path_factory.mktemp("workspace-stack")
    async with running_workspace(kafka_bootstrap, mongo_url, folder, issuer) as stack:
        async with registered_redirects(issuer, stack.portal_url):
            yield stack


@pytest.fixture
async def new_browser(browser, workspace_stack: WorkspaceStack) -> AsyncIterator[object]:
    """Makes browser contexts: each has its own cookies, so its own sign-in at the provider."""
    contexts = []

    async def make() -> object:
        context = await browser.new_context(
            base_url=workspace_stack.portal_url,
            viewport={"width": 1280, "height": 800},
            locale="vi-VN",
        )
        context.set_default_timeout(30_000)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        await context.close()
