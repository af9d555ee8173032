"""After an expired session, signing in again comes back to the page the officer was on (the
dossier), the return path kept in the server-side sign-in state and only ever a workspace page."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.requests import Request

from services.portal.workspace.routes import return_path, safe_next
from tests.portal.workspace.test_pages import CODE, Workspace, csrf, workspace_client

DOSSIER = f"/can-bo/ho-so/{CODE}"


@pytest.fixture
async def workspace() -> AsyncIterator[Workspace]:
    ws = workspace_client()
    async with ws.client:
        yield ws


def expire_sessions(workspace: Workspace) -> None:
    """What the idle timeout does: the server-side sessions are gone, the cookie stays."""
    transport = workspace.client._transport
    assert isinstance(transport, httpx.ASGITransport)
    sessions = transport.app.state.workspace.sessions  # type: ignore[attr-defined]
    for session_id in list(sessions._sessions):
        sessions.drop(session_id)


async def sign_in_from(workspace: Workspace, page: httpx.Response) -> httpx.Response:
    """Follow the sign-in page's link through the (stand-in) provider: the callback's answer."""
    link = re.search(r'<a class="button" href="([^"]+)"', page.text)
    assert link, page.text
    started = await workspace.client.get(html.unescape(link.group(1)))
    assert started.status_code == 302
    location = started.headers["location"]
    code = workspace.provider.authorise(location)
    workspace.provider.authorisations[code]["username"] = "cv.shtt"
    state = parse_qs(urlsplit(location).query)["state"][0]
    return await workspace.client.get(f"/can-bo/dang-nhap/xong?code={code}&state={state}")


async def test_the_dossier_asked_for_after_expiry_comes_back_after_sign_in(
    workspace: Workspace,
) -> None:
    await workspace.sign_in()
    assert (await workspace.client.get(DOSSIER)).status_code == 200
    expire_sessions(workspace)

    asked = await workspace.client.get(DOSSIER)
    assert asked.status_code == 303
    assert asked.headers["location"] == f"/can-bo?phien=het-han&tiep=%2Fcan-bo%2Fho-so%2F{CODE}"
    page = await workspace.client.get(asked.headers["location"])
    assert "Phiên làm việc đã hết hạn" in page.text
    assert f'href="/can-bo/dang-nhap?tiep=%2Fcan-bo%2Fho-so%2F{CODE}"' in page.text

    back = await sign_in_from(workspace, page)
    assert back.status_code == 303 and back.headers["location"] == DOSSIER
    assert (await workspace.client.get(DOSSIER)).status_code == 200


async def test_a_form_posted_after_expiry_comes_back_to_its_dossier_and_is_not_sent(
    workspace: Workspace,
) -> None:
    await workspace.sign_in()
    page = await workspace.client.get(DOSSIER)
    expire_sessions(workspace)
    posted = await workspace.client.post(
        f"{DOSSIER}/receive", data={"csrf_token": csrf(page.text), "note": "Hợp lệ"}
    )
    assert posted.status_code == 303
    assert posted.headers["location"] == f"/can-bo?phien=het-han&tiep=%2Fcan-bo%2Fho-so%2F{CODE}"
    back = await sign_in_from(workspace, await workspace.client.get(posted.headers["location"]))
    assert back.headers["location"] == DOSSIER
    assert workspace.processing.acted == []  # the expired form was not sent again


async def test_without_a_page_to_return_to_sign_in_leads_to_the_worklist(
    workspace: Workspace,
) -> None:
    page = await workspace.client.get("/can-bo?phien=het-han")
    assert 'href="/can-bo/dang-nhap"' in page.text
    back = await sign_in_from(workspace, page)
    assert back.headers["location"] == "/can-bo"


@pytest.mark.parametrize(
    "unsafe",
    [
        "https://evil.test/can-bo",
        "//evil.test/can-bo",
        "/can-bo//evil.test",
        "/can-bo/../dang-xuat",
        "/can-bo-khac",
        "/ho-so/abc",
        "/can-bo/ho-so/x?y=1",
        "/can-bo\\evil",
    ],
)
async def test_an_unsafe_return_path_is_never_offered_nor_followed(
    workspace: Workspace, unsafe: str
) -> None:
    assert safe_next(unsafe) is None
    page = await workspace.client.get("/can-bo", params={"phien": "het-han", "tiep": unsafe})
    assert 'href="/can-bo/dang-nhap"' in page.text and "evil" not in page.text
    started = await workspace.client.get("/can-bo/dang-nhap", params={"tiep": unsafe})
    location = started.headers["location"]
    code = workspace.provider.authorise(location)
    workspace.provider.authorisations[code]["username"] = "cv.shtt"
    state = parse_qs(urlsplit(location).query)["state"][0]
    back = await workspace.client.get(f"/can-bo/dang-nhap/xong?code={code}&state={state}")
    assert back.headers["location"] == "/can-bo"


def test_the_page_to_return_to_is_the_get_page_of_a_form() -> None:
    def request(method: str, path: str) -> Request:
        scope = {"type": "http", "method": method, "path": path, "query_string": b"", "headers": []}
        return Request(scope)

    assert return_path(request("GET", DOSSIER)) == DOSSIER
    assert return_path(request("POST", f"{DOSSIER}/request-supplement")) == DOSSIER
    admin = "/can-bo/quan-tri/thu-tuc/1.004940"
    assert return_path(request("POST", admin)) == admin
    assert return_path(request("POST", "/can-bo/mot-cua")) == "/can-bo"
    assert return_path(request("GET", "/can-bo//x")) == "/can-bo"
