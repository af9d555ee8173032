"""Error pages: every failure is a Vietnamese page with a way forward, never a stack trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from services.portal.api.dependencies import PortalWeb
from services.portal.api.security import SECURITY_HEADERS
from services.portal.domain.errors import IntakeUnavailable, NotFound, TooManyRequests

log = logging.getLogger(__name__)

PAGES: dict[int, tuple[str, str]] = {
    400: (
        "Yêu cầu không hợp lệ",
        "Địa chỉ hoặc dữ liệu gửi lên không hợp lệ. Vui lòng quay lại trang trước và thử lại.",
    ),
    404: (
        "Không tìm thấy trang",
        "Trang hoặc thủ tục bạn tìm không tồn tại, hoặc không nhận hồ sơ trực tuyến. "
        "Hãy tìm thủ tục trong danh mục.",
    ),
    405: ("Thao tác không được hỗ trợ", "Vui lòng quay lại trang trước."),
    429: (
        "Quá nhiều yêu cầu",
        "Bạn đã gửi quá nhiều yêu cầu trong thời gian ngắn. Vui lòng thử lại sau ít phút.",
    ),
    500: (
        "Đã có lỗi xảy ra",
        "Hệ thống gặp sự cố khi xử lý yêu cầu của bạn; lỗi đã được ghi nhận. "
        "Vui lòng thử lại sau ít phút.",
    ),
    503: (
        "Hệ thống tạm thời gián đoạn",
        "Hệ thống tiếp nhận hồ sơ tạm thời không phản hồi. Vui lòng thử lại sau ít phút.",
    ),
}


def error_page(request: Request, status: int) -> Response:
    portal: PortalWeb = request.app.state.portal
    title, message = PAGES.get(status, PAGES[500])
    response = portal.render(
        request, "error.html", {"title": title, "message": message}, status_code=status
    )
    if status == 503:
        response.headers["Retry-After"] = "60"
    # A 500 page is answered outside the middlewares: give it the security headers here.
    for name, value in SECURITY_HEADERS:
        response.headers[name.decode()] = value.decode()
    return response


def install_error_pages(app: FastAPI) -> None:
    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> Response:
        return error_page(request, 404)

    @app.exception_handler(IntakeUnavailable)
    async def _unavailable(request: Request, exc: IntakeUnavailable) -> Response:
        log.warning("intake unavailable on %s: %s", request.url.path, exc)
        return error_page(request, 503)

    @app.exception_handler(TooManyRequests)
    async def _throttled(request: Request, exc: TooManyRequests) -> Response:
        return error_page(request, 429)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return error_page(request, exc.status_code if exc.status_code in PAGES else 400)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return error_page(request, 400)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_page(request, 500)
