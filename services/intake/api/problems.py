"""Domain errors as RFC 9457 problems: one status and title per error, and the problem type of
refused requests (`urn:dvc:problem:<reason>`, counted in `dvc_rejected_requests_total`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from services.intake.domain import errors
from shared.runtime.http import Problem, problem_response
from shared.runtime.metrics import REJECTED_REQUESTS


@dataclass(frozen=True)
class Answer:
    status: int
    title: str
    # Refusals with a reason get the problem type `urn:dvc:problem:<reason>` and are counted;
    # the others are `about:blank`.
    reason: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


# Looked up along the error's class hierarchy: the most specific entry wins.
ANSWERS: dict[type[errors.IntakeError], Answer] = {
    errors.UnknownProcedure: Answer(
        422, "Thủ tục không tồn tại (unknown procedure)", "unknown-procedure"
    ),
    errors.NotOfferedOnline: Answer(
        422, "Thủ tục chưa cung cấp trực tuyến (not offered online)", "not-online"
    ),
    errors.UnexpectedDocument: Answer(
        422, "Giấy tờ không thuộc thủ tục (unexpected document)", "unknown-document"
    ),
    errors.MissingDocument: Answer(
        422, "Thiếu giấy tờ bắt buộc (missing mandatory document)", "missing-document"
    ),
    errors.NoFiles: Answer(422, "Thiếu tệp bổ sung (no files)", "missing-document"),
    errors.InvalidDossier: Answer(
        422, "Dữ liệu hồ sơ không hợp lệ (invalid dossier data)", "invalid-dossier"
    ),
    errors.IdempotencyKeyReused: Answer(
        422, "Khóa Idempotency-Key đã dùng cho yêu cầu khác", "idempotency-key-reused"
    ),
    errors.RequestInProgress: Answer(
        409, "Yêu cầu đang được xử lý (request in progress)", headers={"Retry-After": "1"}
    ),
    errors.DailyNumbersExhausted: Answer(
        503,
        "Đã hết số hồ sơ trong ngày, vui lòng nộp lại sau 0 giờ (today's numbers are used up)",
        "daily-numbers-exhausted",
    ),
    errors.OtherUnitsDossier: Answer(
        403, "Hồ sơ thuộc đơn vị khác (dossier of another unit)", "other-unit"
    ),
    errors.FutureReceipt: Answer(
        422, "Thời điểm tiếp nhận không hợp lệ (receipt time in the future)", "future-receipt"
    ),
    errors.BackdatedReceipt: Answer(
        422,
        "Thời điểm tiếp nhận lùi quá thời hạn cho phép (receipt time too far back)",
        "backdated-receipt",
    ),
    errors.DossierNotFound: Answer(404, "Không tìm thấy hồ sơ (dossier not found)"),
    errors.ProcedureNotFound: Answer(404, "Không tìm thấy thủ tục (procedure not found)"),
    errors.CannotWithdraw: Answer(
        409, "Không thể rút hồ sơ ở trạng thái này (cannot withdraw now)"
    ),
    errors.NoSupplementRequested: Answer(
        409, "Hồ sơ không có yêu cầu bổ sung (no supplement requested)"
    ),
    errors.DossierChanged: Answer(409, "Hồ sơ vừa thay đổi (dossier changed)"),
    errors.NoOnlinePayment: Answer(
        409, "Thủ tục không hỗ trợ thanh toán trực tuyến (no online payment)"
    ),
    errors.NoPaymentRequested: Answer(409, "Chưa có yêu cầu thanh toán (no payment requested)"),
    errors.NothingToPay: Answer(409, "Không có khoản phí (nothing to pay)"),
    errors.ResultAtCounter: Answer(
        409, "Kết quả được trả tại bộ phận một cửa (result at the counter)"
    ),
    errors.NoResultYet: Answer(404, "Chưa có kết quả (no result yet)"),
    errors.NotFinished: Answer(
        409, "Hồ sơ chưa hoàn tất, chưa thể đánh giá (dossier not finished)", "not-finished"
    ),
    errors.AlreadyRated: Answer(409, "Hồ sơ đã được đánh giá (already rated)", "already-rated"),
    errors.PaymentProviderUnavailable: Answer(
        503,
        "Cổng thanh toán tạm thời không phản hồi (payment provider unavailable)",
        headers={"Retry-After": "60"},
    ),
    errors.CallbackSignatureRejected: Answer(
        401, "Chữ ký không hợp lệ (callback rejected)", "payment-callback-rejected"
    ),
    errors.UnknownTransaction: Answer(
        404, "Giao dịch không tồn tại (unknown transaction)", "payment-callback-rejected"
    ),
    errors.AmountMismatch: Answer(
        422, "Số tiền không khớp (amount mismatch)", "payment-callback-rejected"
    ),
    errors.TransactionSettled: Answer(409, "Giao dịch đã được xử lý (transaction already settled)"),
}
INVALID_ATTACHMENT_TITLE = "Tệp đính kèm không hợp lệ (invalid attachment)"


def rejected(
    reason: str,
    status: int,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> Problem:
    """A refused request (counted), for refusals the routes make themselves."""
    REJECTED_REQUESTS.labels("intake", reason).inc()
    return Problem(
        status, title, detail, type_=f"urn:dvc:problem:{reason}", headers=headers, **extensions
    )


def problem(error: errors.IntakeError) -> Problem:
    """The problem that answers `error`."""
    if isinstance(error, errors.InvalidAttachment):
        status = 413 if error.code == "too_large" else 422
        reason = f"attachment-{error.code}".replace("_", "-")
        return rejected(reason, status, INVALID_ATTACHMENT_TITLE, error.detail, **error.extensions)
    answer = next(ANSWERS[kind] for kind in type(error).__mro__ if kind in ANSWERS)
    headers = {**answer.headers, **error.headers}
    if answer.reason is not None:
        return rejected(
            answer.reason, answer.status, answer.title, error.detail, headers, **error.extensions
        )
    return Problem(answer.status, answer.title, error.detail, headers=headers, **error.extensions)


def install(app: FastAPI) -> None:
    """Answer every `IntakeError` raised by a route or a dependency with its problem."""

    async def answer(request: Request, error: Exception) -> Response:
        assert isinstance(error, errors.IntakeError)
        found = problem(error)
        return problem_response(
            request,
            found.status,
            found.title,
            found.detail,
            type_=found.type,
            headers=found.headers,
            **found.extensions,
        )

    app.add_exception_handler(errors.IntakeError, answer)
