"""A dossier's status as the citizen sees it (pure): the timeline of its steps with Vietnamese
labels, the due date, what to do now, and which actions the tracking page offers (supplement,
withdrawal, payment, the result, the satisfaction rating)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.events import DossierState

from .labels import STATE_LABELS, datetime_text

MAX_CODE = 60
MAX_SECRET = 100
MAX_NOTE = 1000
MAX_COMMENT = 2000
# Level 4: the fee is paid and the result delivered online.
ONLINE_PAYMENT_LEVEL = 4
WITHDRAWABLE_STATES = frozenset({1, 2, 4, 5, 6})
RATING_LABELS: dict[int, str] = {
    5: "Rất hài lòng",
    4: "Hài lòng",
    3: "Bình thường",
    2: "Chưa hài lòng",
    1: "Rất không hài lòng",
}
# Dossier codes: the agency id, the date and a sequence, e.g. `000.00.21.G12-261205-0001`.
_CODE = re.compile(r"^[0-9A-Za-z.\-]{1,60}$")

ACTION_LABELS: dict[str, str] = {
    "submit": "Nộp hồ sơ",
    "receive": "Tiếp nhận hồ sơ",
    "refuse_intake": "Không tiếp nhận hồ sơ",
    "assign": "Phân công xử lý",
    "start_processing": "Bắt đầu xử lý",
    "request_supplement": "Yêu cầu bổ sung hồ sơ",
    "supplement": "Nộp bổ sung hồ sơ",
    "supplement_received": "Đã nhận hồ sơ bổ sung",
    "request_payment": "Yêu cầu nộp phí, lệ phí",
    "payment_received": "Đã nhận thanh toán",
    "payment_recorded": "Đã ghi nhận thanh toán",
    "request_withdrawal": "Yêu cầu rút hồ sơ",
    "confirm_withdrawal": "Xác nhận rút hồ sơ",
    "extend": "Gia hạn thời gian xử lý",
    "resume": "Tiếp tục xử lý",
    "approve": "Phê duyệt",
    "refuse": "Từ chối giải quyết",
    "issue_result": "Có kết quả",
    "return_result": "Trả kết quả",
}


class HistoryStep(BaseModel):
    model_config = ConfigDict(extra="ignore")

    at: datetime
    state: int
    action: str = ""
    note: str | None = None


class InboxMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    at: datetime
    title: str | None = None
    body: str


class GivenRating(BaseModel):
    model_config = ConfigDict(extra="ignore")

    score: int
    at: datetime


class DossierStatus(BaseModel):
    """Intake's `GET /api/v1/dossiers/{code}` answer (the fields the portal shows)."""

    model_config = ConfigDict(extra="ignore")

    dossier_code: str
    procedure_code: str
    procedure_name: str
    unit_code: str
    level: int = 3
    fee_vnd: int = 0
    submitted_at: datetime
    state: int
    due_at: datetime | None = None
    overdue: bool = False
    citizen_action: str | None = None
    requested_documents: list[str] = Field(default_factory=list)
    result_available: bool = False
    paid: bool = False
    ratable: bool = False
    rating: GivenRating | None = None
    history: list[HistoryStep] = Field(default_factory=list)
    inbox: list[InboxMessage] = Field(default_factory=list)


@dataclass(frozen=True)
class TimelineStep:
    at: datetime
    when: str
    title: str
    state_label: str
    note: str | None
    current: bool


def tracking_form_errors(code: str, secret: str) -> dict[str, str]:
    """Field -> message for the tracking form (code and secret)."""
    errors: dict[str, str] = {}
    if not code:
        errors["code"] = "Nhập mã hồ sơ in trên giấy tiếp nhận."
    elif len(code) > MAX_CODE or not _CODE.match(code):
        errors["code"] = "Mã hồ sơ không đúng định dạng, ví dụ: 000.00.21.G12-261205-0001."
    if not secret:
        errors["secret"] = "Nhập mã bí mật in trên giấy tiếp nhận."
    elif len(secret) > MAX_SECRET:
        errors["secret"] = "Mã bí mật không đúng."
    return errors


def state_label(state: int) -> str:
    return STATE_LABELS.get(state, f"Trạng thái {state}")


def timeline(status: DossierStatus) -> list[TimelineStep]:
    """The dossier's steps, oldest first; the last one is the current step."""
    steps = sorted(status.history, key=lambda step: step.at)
    return [
        TimelineStep(
            at=step.at,
            when=datetime_text(step.at),
            title=ACTION_LABELS.get(step.action, state_label(step.state)),
            state_label=state_label(step.state),
            note=step.note,
            current=index == len(steps) - 1,
        )
        for index, step in enumerate(steps)
    ]


def next_step(status: DossierStatus) -> str:
    """What the citizen should do now, in one or two sentences."""
    if status.citizen_action:
        return status.citizen_action
    due = f" Ngày hẹn trả kết quả: {datetime_text(status.due_at)}." if status.due_at else ""
    match status.state:
        case DossierState.SUBMITTED:
            return (
                "Bạn chưa cần làm gì: hồ sơ đang chờ cán bộ kiểm tra và tiếp nhận. "
                "Bạn sẽ nhận được thông báo khi hồ sơ được tiếp nhận."
            )
        case DossierState.RECEIVED | DossierState.IN_PROCESSING:
            return "Bạn chưa cần làm gì: hồ sơ đang được xử lý." + due
        case DossierState.NOT_RECEIVED:
            return "Hồ sơ không được tiếp nhận. Xem lý do trong quá trình xử lý bên dưới."
        case DossierState.SUPPLEMENT_REQUESTED:
            documents = "; ".join(status.requested_documents)
            asked = f" Giấy tờ cần bổ sung: {documents}." if documents else ""
            return (
                "Hồ sơ cần bổ sung giấy tờ." + asked + " Vui lòng nộp bổ sung trực tuyến bằng "
                "mẫu “Nộp bổ sung hồ sơ” dưới đây."
            )
        case DossierState.PAYMENT_REQUESTED:
            if status.level >= ONLINE_PAYMENT_LEVEL:
                return (
                    "Vui lòng nộp phí, lệ phí trực tuyến bằng nút “Thanh toán trực tuyến” dưới "
                    "đây để hồ sơ được tiếp tục xử lý."
                )
            return (
                "Vui lòng nộp phí, lệ phí tại Bộ phận Một cửa của đơn vị giải quyết để hồ sơ được "
                "tiếp tục xử lý."
            )
        case DossierState.WITHDRAWAL_REQUESTED:
            return "Đơn vị đang xem xét yêu cầu rút hồ sơ của bạn."
        case DossierState.STOPPED:
            return "Hồ sơ đã dừng xử lý. Xem lý do trong quá trình xử lý bên dưới."
        case DossierState.PROCESSED:
            if status.result_available and status.level >= ONLINE_PAYMENT_LEVEL:
                return "Hồ sơ đã có kết quả. Bạn có thể tải kết quả điện tử dưới đây."
            return "Hồ sơ đã có kết quả. Vui lòng nhận kết quả theo hướng dẫn của đơn vị."
        case DossierState.RESULT_RETURNED:
            return "Hồ sơ đã hoàn tất và kết quả đã được trả."
    return "Vui lòng liên hệ Bộ phận Một cửa của đơn vị giải quyết nếu cần hỗ trợ."


@dataclass(frozen=True)
class Actions:
    """What the tracking page offers the citizen now."""

    supplement: bool
    withdraw: bool
    pay: bool
    download_result: bool
    rate: bool

    @property
    def any(self) -> bool:
        return self.supplement or self.withdraw or self.pay or self.download_result or self.rate


def withdrawal_requested(status: DossierStatus) -> bool:
    return status.state == DossierState.WITHDRAWAL_REQUESTED or any(
        step.action == "request_withdrawal" for step in status.history
    )


def actions(status: DossierStatus) -> Actions:
    """The actions intake would accept in this state (intake still decides)."""
    online = status.level >= ONLINE_PAYMENT_LEVEL
    return Actions(
        supplement=status.state == DossierState.SUPPLEMENT_REQUESTED,
        withdraw=status.state in WITHDRAWABLE_STATES and not withdrawal_requested(status),
        pay=online and status.state == DossierState.PAYMENT_REQUESTED and not status.paid,
        download_result=online and status.result_available,
        rate=status.ratable and status.rating is None,
    )


def rating_errors(score: str | None, comment: str) -> dict[str, str]:
    """Field -> message for the rating form."""
    errors: dict[str, str] = {}
    if score not in {str(n) for n in RATING_LABELS}:
        errors["score"] = "Chọn mức độ hài lòng của bạn, từ 1 đến 5."
    if len(comment) > MAX_COMMENT:
        errors["comment"] = f"Góp ý không quá {MAX_COMMENT} ký tự (hiện có {len(comment)})."
    return errors


def withdrawal_errors(confirmed: bool, reason: str) -> dict[str, str]:
    errors: dict[str, str] = {}
    if len(reason) > MAX_NOTE:
        errors["reason"] = f"Lý do không quá {MAX_NOTE} ký tự (hiện có {len(reason)})."
    if not confirmed:
        errors["confirm"] = "Đánh dấu ô xác nhận nếu bạn chắc chắn muốn rút hồ sơ."
    return errors


# What the page says after an action succeeded (the redirect names one of these, never text).
DONE_MESSAGES: dict[str, str] = {
    "bo-sung": "Đã gửi giấy tờ bổ sung. Đơn vị sẽ kiểm tra và tiếp tục xử lý hồ sơ.",
    "rut-ho-so": "Đã gửi yêu cầu rút hồ sơ. Đơn vị sẽ xem xét và xác nhận.",
    "danh-gia": "Cảm ơn bạn đã đánh giá. Ý kiến của bạn giúp chúng tôi phục vụ tốt hơn.",
}
