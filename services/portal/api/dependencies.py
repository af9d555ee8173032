"""What the routes depend on: the portal's web object (built by `main.py`), the client's address,
and rendering a page (with its CSRF token and cache headers)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from services.portal.api.security import Cookies, Network, client_address
from services.portal.service import PortalService
from services.portal.settings import PortalSettings


@dataclass(frozen=True)
class PortalWeb:
    """Everything the page routes use, built once in `main.py` and kept on `app.state.portal`."""

    settings: PortalSettings
    service: PortalService
    cookies: Cookies
    templates: Jinja2Templates
    trusted_proxies: Sequence[Network]

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any],
        *,
        status_code: int = 200,
        private: bool = False,
    ) -> Response:
        """A page; `private` pages (anything about a dossier) are never stored by a cache."""
        token, new = self.cookies.csrf_cookie(request)
        values = {"csrf_token": self.cookies.csrf_field(token), **context}
        response = self.templates.TemplateResponse(
            request, template, values, status_code=status_code
        )
        if new:
            self.cookies.set(response, self.cookies.names.csrf, token, max_age=None)
        response.headers["Cache-Control"] = "no-store" if private or new else "no-cache"
        return response

    def csrf_valid(self, request: Request, field_value: str | None) -> bool:
        return self.cookies.csrf_valid(
            request, field_value, max_age=self.settings.form_session_seconds
        )


async def portal_web(request: Request) -> PortalWeb:
    portal: PortalWeb = request.app.state.portal
    return portal


Portal = Annotated[PortalWeb, Depends(portal_web)]


async def citizen_address(request: Request, portal: Portal) -> str:
    return client_address(request, portal.trusted_proxies)


Client = Annotated[str, Depends(citizen_address)]
