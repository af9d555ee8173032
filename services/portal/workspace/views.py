"""What the workspace's pages show, as pure functions: the worklist's filters, deadline badges and
counts; the actions a dossier offers the signed-in officer, each with the input it needs.

Processing decides: the lifecycle (`allowed_actions` of the case) and the role matrix are its;
the workspace only hides a button processing would refuse anyway (a unit head's step for an
officer), and shows processing's refusal when one happens.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from services.portal.domain.labels import STATE_LABELS
from shared.contracts.catalogue import ProcessingTime
from shared.contracts.events import Channel, DossierState

# --- the worklist ---------------------------------------------------------------------------------

PAGE_SIZE = 25

# The states of processing's worklist (active cases), in the lifecycle's order.
WORKLIST_STATES: tuple[DossierState, ...] = (
    DossierState.SUBMITTED,
    DossierState.RECEIVED,
    DossierState.IN_PROCESSING,
    DossierState.SUPPLEMENT_REQUESTED,
    DossierState.PAYMENT_REQUESTED,
    DossierState.WITHDRAWAL_REQUESTED,
    DossierState.PROCESSED,
)
# The deadline clock runs (DOMAIN.md §3): warnings and overdue apply.
CLOCK_RUNNING = frozenset(
    {
        DossierState.RECEIVED,
        DossierState.IN_PROCESSING,
        DossierState.PAYMENT_REQUESTED,
        DossierState.WITHDRAWAL_REQUESTED,
    }
)

CHANNEL_LABELS: dict[int, str] = {
    Channel.ONLINE: "Trực tuyến",
    Channel.COUNTER: "Trực tiếp",
    Channel.POST: "Bưu chính",
}

MAX_CODE = 60
_CODE = re.compile(r"^[0-9A-Za-z.\-_]{1,60}$")
_PROCEDURE = re.compile(r"^[0-9A-Za-z.\-_]{1,40}$")


@dataclass(frozen=True)
class WorklistFilters:
    """The worklist's query: states, channel, procedure, a cursor into processing's order."""

    states: tuple[int, ...] = ()
    channel: int | None = None
    procedure: str | None = None
    cursor: str | None = None

    @classmethod
    def parse(
        cls,
        states: Sequence[str],
        channel: str | None,
        procedure: str | None,
        cursor: str | None,
    ) -> WorklistFilters:
        """From the query string; values out of range are dropped (the list stays usable)."""
        valid_states = {int(s) for s in WORKLIST_STATES}
        chosen = tuple(sorted({int(s) for s in states if s.isdigit() and int(s) in valid_states}))
        channel_value = int(channel) if channel and channel.isdigit() else None
        if channel_value not in CHANNEL_LABELS:
            channel_value = None
        procedure = (procedure or "").strip()
        cursor = (cursor or "").strip()
        return cls(
            states=chosen,
            channel=channel_value,
            procedure=procedure if _PROCEDURE.match(procedure) else None,
            cursor=cursor if 0 < len(cursor) <= 500 else None,
        )

    def query(self, *, cursor: str | None = None) -> list[tuple[str, str]]:
        """The query string's pairs of these filters (with another cursor)."""
        pairs = [("trang-thai", str(s)) for s in self.states]
        if self.channel is not None:
            pairs.append(("kenh", str(self.channel)))
        if self.procedure:
            pairs.append(("thu-tuc", self.procedure))
        if cursor:
            pairs.append(("sau", cursor))
        return pairs


def valid_code(code: str) -> bool:
    return bool(_CODE.match(code))


_STORAGE_ID = re.compile(r"^[0-9A-Za-z\-_]{1,64}$")


def valid_storage_id(storage_id: str) -> bool:
    return bool(_STORAGE_ID.match(storage_id))


def as_attachment(disposition: str | None) -> str:
    """A download's `Content-Disposition`, always `attachment` (never shown inline under the
    workspace's origin), keeping the file name the service gave."""
    if not disposition:
        return "attachment"
    _, _, parameters = disposition.partition(";")
    return "attachment" + (f";{parameters}" if parameters.strip() else "")


def form_rows(dossier: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The applicant's form data as label/value rows (nested values flattened with dots)."""
    if not dossier:
        return []
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list | tuple):
            rows.append((prefix, ", ".join(str(v) for v in value)))
        else:
            rows.append((prefix, "" if value is None else str(value)))

    walk("", dossier.get("form") or {})
    return rows


class Deadline(StrEnum):
    OVERDUE = "overdue"
    WARNING_80 = "80"
    WARNING_50 = "50"


DEADLINE_LABELS: dict[Deadline, str] = {
    Deadline.OVERDUE: "Quá hạn",
    Deadline.WARNING_80: "Đã dùng 80% thời gian",
    Deadline.WARNING_50: "Đã dùng 50% thời gian",
}


def deadline_badge(item: Mapping[str, Any]) -> Deadline | None:
    """Overdue (processing's flag), else the 80% or 50% warning processing's deadline scanner
    emitted (`warnings_emitted`, on the worklist's items as on the case): the law counts the
    share of the time used in working days, which processing computes (its calendar, pauses and
    extensions); the page does not estimate it."""
    if item.get("overdue"):
        return Deadline.OVERDUE
    if int(item.get("state", 0)) not in CLOCK_RUNNING:
        return None
    emitted = set(item.get("warnings_emitted") or ())
    if "deadline_warning_80" in emitted:
        return Deadline.WARNING_80
    if "deadline_warning_50" in emitted:
        return Deadline.WARNING_50
    return None


@dataclass(frozen=True)
class StateCount:
    state: int
    label: str
    count: int


def state_counts(answer: Mapping[str, Any]) -> list[StateCount]:
    """Processing's counts per state of the unit (`GET /api/v1/case-counts`), in the
    lifecycle's order; states without a case are left out."""
    counts = {int(row["state"]): int(row["count"]) for row in answer.get("states") or ()}
    return [
        StateCount(int(state), STATE_LABELS[state], counts[int(state)])
        for state in WORKLIST_STATES
        if counts.get(int(state))
    ]


# --- actions on a dossier -------------------------------------------------------------------------


class FieldKind(StrEnum):
    TEXT = "text"  # one line
    LONG_TEXT = "long_text"  # a textarea
    LINES = "lines"  # a textarea, one item per line -> a list
    AMOUNT = "amount"  # whole đồng > 0
    DATE = "date"
    CHOICE = "choice"
    FILE = "file"  # an uploaded document (the form is multipart)
    # A staff member's subject: a choice of processing's list of the unit's officers
    # (`assignee_choices`), or one line typed when that list is empty or does not come.
    STAFF = "staff"


@dataclass(frozen=True)
class ActionField:
    name: str  # the form field's and processing's body field's name
    label: str
    kind: FieldKind
    required: bool = True
    hint: str | None = None
    choices: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ActionForm:
    action: str  # processing's action (`allowed_actions`)
    label: str
    fields: tuple[ActionField, ...] = ()
    head_only: bool = False
    danger: bool = False
    done: str = ""  # the notice after it succeeded

    @property
    def multipart(self) -> bool:
        return any(f.kind is FieldKind.FILE for f in self.fields)

    @property
    def path(self) -> str:
        """The action's segment in processing's API and in the workspace's form URL."""
        return self.action.replace("_", "-")


NOTE = ActionField("note", "Ghi chú", FieldKind.LONG_TEXT, required=False)
REASON = ActionField("reason", "Lý do", FieldKind.LONG_TEXT)

ACTION_FORMS: tuple[ActionForm, ...] = (
    ActionForm("receive", "Tiếp nhận hồ sơ", (NOTE,), done="Đã tiếp nhận hồ sơ."),
    ActionForm(
        "refuse_intake",
        "Không tiếp nhận",
        (REASON,),
        danger=True,
        done="Đã ghi nhận không tiếp nhận hồ sơ.",
    ),
    ActionForm(
        "start_processing", "Chuyển xử lý", (NOTE,), done="Hồ sơ đã chuyển sang đang xử lý."
    ),
    ActionForm(
        "request_supplement",
        "Yêu cầu bổ sung hồ sơ",
        (
            ActionField(
                "documents",
                "Giấy tờ cần bổ sung",
                FieldKind.LINES,
                hint="Mỗi giấy tờ một dòng.",
            ),
            REASON,
        ),
        done="Đã gửi yêu cầu bổ sung.",
    ),
    ActionForm(
        "request_payment",
        "Yêu cầu thực hiện nghĩa vụ tài chính",
        (
            ActionField(
                "amount_vnd", "Số tiền (đồng)", FieldKind.AMOUNT, hint="Số nguyên, ví dụ 150000."
            ),
            NOTE,
        ),
        done="Đã gửi yêu cầu thực hiện nghĩa vụ tài chính.",
    ),
    ActionForm(
        "assign",
        "Phân công xử lý",
        (
            ActionField(
                "assignee",
                "Cán bộ được phân công",
                FieldKind.STAFF,
            ),
            NOTE,
        ),
        head_only=True,
        done="Đã phân công.",
    ),
    ActionForm("approve", "Phê duyệt", (NOTE,), head_only=True, done="Đã phê duyệt."),
    ActionForm(
        "refuse",
        "Từ chối giải quyết",
        (REASON,),
        head_only=True,
        danger=True,
        done="Đã từ chối giải quyết hồ sơ.",
    ),
    ActionForm(
        "issue_result",
        "Ban hành kết quả",
        (
            ActionField(
                "file",
                "Văn bản kết quả đã ký",
                FieldKind.FILE,
                hint="Tệp PDF, XML, JPEG, PNG hoặc chữ ký số PKCS #7; tối đa 10 MB.",
            ),
            NOTE,
        ),
        done="Đã ban hành kết quả; hồ sơ chờ trả kết quả.",
    ),
    ActionForm(
        "return_result",
        "Trả kết quả",
        (
            ActionField(
                "method",
                "Hình thức trả kết quả",
                FieldKind.CHOICE,
                choices=(
                    ("counter", "Tại bộ phận một cửa"),
                    ("post", "Qua bưu chính"),
                    ("online", "Trực tuyến"),
                ),
            ),
            NOTE,
        ),
        done="Đã ghi nhận trả kết quả.",
    ),
    ActionForm(
        "extend",
        "Gia hạn (Mẫu 04: thư xin lỗi và hẹn lại ngày trả kết quả)",
        (
            ActionField(
                "new_due_date",
                "Ngày hẹn trả kết quả mới",
                FieldKind.DATE,
                hint="Một ngày làm việc sau hạn hiện tại; chỉ gia hạn một lần.",
            ),
            ActionField("reason", "Lý do xin lỗi và gia hạn", FieldKind.LONG_TEXT),
        ),
        head_only=True,
        done="Đã gia hạn và gửi thư xin lỗi.",
    ),
    ActionForm(
        "confirm_withdrawal",
        "Xác nhận rút hồ sơ",
        (NOTE,),
        danger=True,
        done="Đã xác nhận rút hồ sơ.",
    ),
)
ACTIONS_BY_PATH: dict[str, ActionForm] = {form.path: form for form in ACTION_FORMS}

OFFICER_ROLES = frozenset({"officer", "unit_head", "admin"})
HEAD_ROLES = frozenset({"unit_head", "admin"})


def offered_actions(
    allowed: Iterable[str],
    roles: Iterable[str],
    *,
    approved: bool = False,
    extended: bool = False,
) -> list[ActionForm]:
    """The forms to show: what the lifecycle allows now (processing's `allowed_actions`) and
    the officer's roles may take, in the lifecycle's order; the result is issued only once the
    unit head approved (`approved`), and the due date is extended once (`extended`: done)."""
    held = set(roles)
    allowed_now = set(allowed)
    if not held & OFFICER_ROLES:
        return []
    if not approved:
        allowed_now.discard("issue_result")
    if extended:
        allowed_now.discard("extend")
    head = bool(held & HEAD_ROLES)
    return [
        form for form in ACTION_FORMS if form.action in allowed_now and (head or not form.head_only)
    ]


@dataclass
class ActionInput:
    """A submitted action form: the body for processing, or the errors to show."""

    body: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)


MAX_TEXT = 2000
MAX_SUBJECT = 100  # processing's limit on an assignee


def assignee_choices(
    officers: Iterable[Mapping[str, Any]], unit: str | None, current: str | None
) -> tuple[tuple[str, str], ...]:
    """The assignment form's choices: the officers of the case's unit as processing lists them
    (`GET /api/v1/staff`: `subject`, `name`, `username`, `unit`; by name), and the current
    assignee (kept, first, even if no longer among them)."""
    assigned = " – đang được phân công"
    choices: list[tuple[str, str]] = []
    for officer in officers:
        subject = str(officer.get("subject") or "")
        if not subject or officer.get("unit") != unit:
            continue
        name = str(officer.get("name") or officer.get("username") or subject)
        username = officer.get("username")
        label = f"{name} ({username})" if username and username != name else name
        choices.append((subject, label + (assigned if subject == current else "")))
    if current and current not in {value for value, _ in choices}:
        choices.insert(0, (current, current + assigned))
    return tuple(choices)


def read_action(form: ActionForm, submitted: Mapping[str, str]) -> ActionInput:
    """Check the submitted fields (required, lengths, a whole amount, a date) and build the
    body processing expects; processing checks the rest (its 422 is shown)."""
    result = ActionInput()
    for spec in form.fields:
        raw = (submitted.get(spec.name) or "").strip()
        result.values[spec.name] = raw
        if not raw:
            if spec.required:
                verb = "chọn tệp" if spec.kind is FieldKind.FILE else "nhập"
                result.errors[spec.name] = f"Vui lòng {verb} {spec.label.lower()}."
            elif spec.kind is not FieldKind.LINES:
                result.body[spec.name] = None
            continue
        if len(raw) > MAX_TEXT * (10 if spec.kind is FieldKind.LINES else 1):
            result.errors[spec.name] = f"{spec.label} quá dài (tối đa {MAX_TEXT} ký tự)."
            continue
        if spec.kind is FieldKind.LINES:
            lines = [line.strip() for line in raw.splitlines() if line.strip()]
            if len(lines) > 50 or any(len(line) > 300 for line in lines):
                result.errors[spec.name] = "Tối đa 50 giấy tờ, mỗi dòng tối đa 300 ký tự."
            else:
                result.body[spec.name] = lines
        elif spec.kind is FieldKind.AMOUNT:
            digits = raw.replace(".", "").replace(",", "").replace(" ", "")
            if not digits.isdigit() or int(digits) <= 0 or int(digits) > 10_000_000_000:
                result.errors[spec.name] = "Số tiền phải là số nguyên dương (đồng)."
            else:
                result.body[spec.name] = int(digits)
        elif spec.kind is FieldKind.DATE:
            try:
                result.body[spec.name] = date.fromisoformat(raw).isoformat()
            except ValueError:
                result.errors[spec.name] = "Ngày không hợp lệ (định dạng năm-tháng-ngày)."
        elif spec.kind is FieldKind.FILE:
            pass  # the route reads the file itself; `raw` is its name, which says it came
        elif spec.kind is FieldKind.STAFF:
            # Processing checks the subject (a forced value is its to refuse).
            if len(raw) > MAX_SUBJECT:
                result.errors[spec.name] = f"Vui lòng chọn {spec.label.lower()}."
            else:
                result.body[spec.name] = raw
        elif spec.kind is FieldKind.CHOICE:
            if raw not in {value for value, _ in spec.choices}:
                result.errors[spec.name] = f"Vui lòng chọn {spec.label.lower()}."
            else:
                result.body[spec.name] = raw
        else:
            result.body[spec.name] = raw
    return result


# --- history and deadlines ------------------------------------------------------------------------

STEP_LABELS: dict[str, str] = {
    "submit": "Nộp hồ sơ",
    "receive": "Tiếp nhận",
    "refuse_intake": "Không tiếp nhận",
    "start_processing": "Chuyển xử lý",
    "request_supplement": "Yêu cầu bổ sung",
    "supplement_received": "Đã nhận hồ sơ bổ sung",
    "request_payment": "Yêu cầu thực hiện nghĩa vụ tài chính",
    "payment_received": "Đã nộp phí, lệ phí",
    "refuse": "Từ chối giải quyết",
    "request_withdrawal": "Công dân xin rút hồ sơ",
    "confirm_withdrawal": "Xác nhận rút hồ sơ",
    "issue_result": "Ban hành kết quả",
    "return_result": "Trả kết quả",
    "assign": "Phân công",
    "approve": "Phê duyệt",
    "extend": "Gia hạn (Mẫu 04)",
    "clock_started": "Bắt đầu tính thời hạn",
    "deadline_warning_50": "Cảnh báo: đã dùng 50% thời gian",
    "deadline_warning_80": "Cảnh báo: đã dùng 80% thời gian",
    "overdue": "Quá hạn",
}


def step_label(action: str) -> str:
    return STEP_LABELS.get(action, action)


# Why processing set a due date (`due_history[].reason`).
DUE_REASONS = {
    "receipt": "Tiếp nhận hồ sơ",
    "payment": "Đã nộp phí, lệ phí",
    "supplement": "Đã bổ sung hồ sơ",
    "extension": "Gia hạn (Mẫu 04)",
}


def due_reason_label(reason: str) -> str:
    return DUE_REASONS.get(reason, reason)


def processing_time(case: Mapping[str, Any]) -> ProcessingTime | None:
    """The legal processing time the case's deadline is computed from (as the catalogue had it
    when the case opened)."""
    value = case.get("processing_time")
    return ProcessingTime.model_validate(value) if value else None


def state_label(state: int | None) -> str:
    if state is None:
        return ""
    return STATE_LABELS.get(int(state), str(state))
