"""No request waits on a worker thread: FastAPI runs a plain `def` dependency or endpoint in
anyio's thread pool, two thread switches (and a fight for the GIL) per call. Under the
end-to-end bench those switches were a sixth of intake's CPU for two dependencies that only read
`app.state`."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from services.portal.main import create_app as create_portal
from shared.runtime.auth import DevIssuer
from tests.contract.documents import SERVICES, create


def api_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):  # FastAPI >= 0.165 keeps included routers
            yield from api_routes(route.original_router.routes)


def calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from calls(sub)


def runs_on_a_thread(call: Any) -> bool:
    function = call if inspect.isroutine(call) else type(call).__call__
    return not (inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function))


def threaded(app: FastAPI) -> set[str]:
    found = set()
    for route in api_routes(app.routes):
        for call in [route.endpoint, *calls(route.dependant)]:
            if runs_on_a_thread(call):
                found.add(f"{route.path}: {getattr(call, '__qualname__', call)}")
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_no_route_of_a_service_runs_code_on_a_worker_thread(service: str, tmp_path: Path) -> None:
    app = create(service, DevIssuer(tmp_path).public_key_path)
    assert list(api_routes(app.routes)), "the walk found no route"
    assert threaded(app) == set()


def test_no_page_of_the_portal_runs_code_on_a_worker_thread() -> None:
    app = create_portal()
    assert list(api_routes(app.routes)), "the walk found no route"
    assert threaded(app) == set()
