"""The mapping from our events to the national portal's sync messages (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devstack.simulators.portal import dossier_errors, step_errors
from services.notification.portal.domain import messages
from services.notification.portal.domain.messages import (
    DossierRecord,
    dossier_message,
    portal_time,
    step_message,
)
from shared.contracts.events import (
    Applicant,
    ApplicantKind,
    Channel,
    Contact,
    DocumentRef,
    DossierPaid,
    DossierProcessed,
    DossierState,
    DossierSubmitted,
    DossierSupplemented,
)

CODE = "000.00.21.G12-261129-0001"
T0 = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)  # 09:00 in Ha Noi


def doc(name: str, kind: str = "to_khai") -> DocumentRef:
    return DocumentRef(
        document_type=kind,
        file_name=name,
        content_type="application/pdf",
        size_bytes=1234,
        storage_id="s-" + name,
    )


def submitted(channel: Channel = Channel.ONLINE, fee: int = 300_000) -> DossierSubmitted:
    return DossierSubmitted(
        dossier_code=CODE,
        occurred_at=T0,
        procedure_code="1.004473",
        unit_code="G12",
        level=4,
        channel=channel,
        applicant=Applicant(
            kind=ApplicantKind.PERSON, name="Nguyễn Văn A", identifier="001203004567"
        ),
        contact=Contact(email="a@example.vn", phone="0912345678"),
        documents=[doc("to_khai.pdf")],
        fee_vnd=fee,
    )


def step(
    action: str,
    state: DossierState,
    previous: DossierState | None,
    at: datetime,
    **extra: object,
) -> DossierProcessed:
    return DossierProcessed(
        dossier_code=CODE,
        occurred_at=at,
        procedure_code="1.004473",
        unit_code="G12",
        action=action,
        state=state,
        previous_state=previous,
        actor=extra.pop("actor", "officer-7"),  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )


def record_of(
    submission: DossierSubmitted | None, *events: object, event_ids: list[str] | None = None
) -> DossierRecord:
    """What the store holds after these events, built with the same pure mapping."""
    raw: dict = {"_id": CODE, "steps": [], "payments": [], "supplies": [], "withdrawals": []}
    if submission is not None:
        raw["submission"] = messages.submission_fact(submission, "ev-submit").model_dump()
        if first := messages.submission_step(submission, "ev-submit"):
            raw["steps"].append(first.model_dump())
    for index, event in enumerate(events):
        event_id = (event_ids or [])[index] if event_ids else f"ev-{index}"
        if isinstance(event, DossierProcessed):
            if fact := messages.step_fact(event, event_id):
                raw["steps"].append(fact.model_dump())
        elif isinstance(event, DossierPaid):
            raw["payments"].append(messages.payment_fact(event, event_id).model_dump())
        elif isinstance(event, DossierSupplemented):
            raw["supplies"].append(messages.supply_fact(event, event_id).model_dump())
    raw["seq"] = len(events) + 1
    return DossierRecord.model_validate(raw)


def test_portal_dates_are_ho_chi_minh_local_time_even_across_midnight() -> None:
    # 17:30 UTC on 31 Dec is 00:30 on 1 Jan in Ha Noi (UTC+7): the date and the year change.
    assert portal_time(datetime(2026, 12, 31, 17, 30, 5, tzinfo=UTC)) == "20270101003005"
    assert portal_time(datetime(2026, 12, 31, 16, 59, 59, tzinfo=UTC)) == "20261231235959"
    # A time already in another zone is converted, and a naive one is taken as UTC (as stored).
    tokyo = datetime(2026, 6, 1, 9, 0, tzinfo=UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("Asia/Tokyo")
    )
    assert portal_time(tokyo) == "20260601160000"
    assert portal_time(datetime(2026, 6, 1, 9, 0)) == "20260601160000"


def test_a_new_online_dossier_is_state_1_with_channel_2_and_no_citizen_id() -> None:
    message = dossier_message(record_of(submitted()))
    payload = message.payload()
    assert payload["MaHoSo"] == CODE
    assert payload["TrangThaiHoSo"] == 1 and payload["KenhThucHien"] == 2
    assert payload["ChuHoSo"] == "Nguyễn Văn A" and payload["LoaiDoiTuong"] == 1
    assert payload["NgayNopHoSo"] == "20261127090000"
    assert "NgayTiepNhan" not in payload and "NgayHenTra" not in payload
    assert payload["TaiLieuNop"] == [
        {
            "MaGiayTo": "to_khai",
            "TenTepDinhKem": "to_khai.pdf",
            "DinhDang": "application/pdf",
            "KichThuoc": 1234,
            "BoSung": 0,
        }
    ]
    assert payload["DanhSachLePhi"][0]["MucPhi"] == 300_000
    assert payload["DanhSachLePhi"][0]["DaThanhToan"] == 0
    text = str(payload)
    assert "001203004567" not in text and "0912345678" not in text and "a@example" not in text
    assert dossier_errors(payload) == []


@pytest.mark.parametrize(
    ("channel", "code"), [(Channel.COUNTER, 1), (Channel.ONLINE, 2), (Channel.POST, 3)]
)
def test_channel_codes(channel: Channel, code: int) -> None:
    assert dossier_message(record_of(submitted(channel))).payload()["KenhThucHien"] == code


def test_a_paper_dossier_is_received_when_recorded_and_has_no_submission_step() -> None:
    record = record_of(submitted(Channel.COUNTER))
    payload = dossier_message(record).payload()
    assert payload["TrangThaiHoSo"] == 2
    assert payload["NgayTiepNhan"] == payload["NgayNopHoSo"] == "20261127090000"
    assert record.steps == []
    assert dossier_errors(payload) == []


def test_the_whole_life_of_a_dossier_sets_every_date_and_state() -> None:
    due1 = datetime(2026, 12, 4, 16, 59, 59, tzinfo=UTC)  # 23:59:59 on 4 Dec in Ha Noi
    due2 = datetime(2026, 12, 11, 16, 59, 59, tzinfo=UTC)
    at = T0 + timedelta(hours=1)
    result = doc("giay_phep.pdf", "ket_qua")
    events = [
        step("receive", DossierState.RECEIVED, DossierState.SUBMITTED, at, due_at=due1),
        step(
            "start_processing",
            DossierState.IN_PROCESSING,
            DossierState.RECEIVED,
            at,
            due_at=due1,
            actor="system",
        ),
        step(
            "request_supplement",
            DossierState.SUPPLEMENT_REQUESTED,
            DossierState.IN_PROCESSING,
            at + timedelta(days=1),
            note="Thiếu bản sao",
            requested_documents=["Bản sao Giấy phép"],
        ),
        DossierSupplemented(
            dossier_code=CODE, occurred_at=at + timedelta(days=2), documents=[doc("ban_sao.pdf")]
        ),
        step(
            "supplement_received",
            DossierState.IN_PROCESSING,
            DossierState.SUPPLEMENT_REQUESTED,
            at + timedelta(days=2),
            due_at=due2,
        ),
        step(
            "deadline_warning_50",
            DossierState.IN_PROCESSING,
            DossierState.IN_PROCESSING,
            at + timedelta(days=3),
        ),
        DossierPaid(
            dossier_code=CODE,
            occurred_at=at + timedelta(days=3),
            transaction_id="TX-1",
            amount_vnd=300_000,
            provider="payment-platform",
        ),
        step(
            "issue_result",
            DossierState.PROCESSED,
            DossierState.IN_PROCESSING,
            at + timedelta(days=4),
            due_at=due2,
            result_document=result,
        ),
        step(
            "return_result",
            DossierState.RESULT_RETURNED,
            DossierState.PROCESSED,
            at + timedelta(days=5),
            due_at=due2,
        ),
    ]
    record = record_of(submitted(), *events)
    payload = dossier_message(record).payload()
    assert payload["TrangThaiHoSo"] == 10
    assert payload["NgayTiepNhan"] == "20261127100000"
    assert payload["NgayHenTra"] == "20261211235959"  # the due date in force, Ha Noi time
    assert payload["NgayKetThucXuLy"] == "20261201100000"
    assert payload["NgayTra"] == "20261202100000"
    assert payload["DanhSachHoSoBoSung"] == [
        {
            "NgayYeuCauBoSung": "20261128100000",
            "GiayToYeuCau": ["Bản sao Giấy phép"],
            "LyDo": "Thiếu bản sao",
            "NgayHenTraTruoc": "20261204235959",
            "NgayTiepNhanBoSung": "20261129100000",
            "NgayHenTraMoi": "20261211235959",
        }
    ]
    assert [d["BoSung"] for d in payload["TaiLieuNop"]] == [0, 1]
    fee = payload["DanhSachLePhi"][0]
    assert fee["DaThanhToan"] == 1 and fee["CacLanThanhToan"][0]["MaGiaoDich"] == "TX-1"
    assert payload["DanhSachGiayToKetQua"] == [
        {"MaGiayTo": "ket_qua", "TenGiayTo": "giay_phep.pdf", "DinhDang": "application/pdf"}
    ]
    assert dossier_errors(payload) == []

    # Steps: the submission, then each processing step; the internal warning is left out.
    actions = [s.action for s in record.ordered_steps()]
    assert actions == [
        "submit",
        "receive",
        "start_processing",
        "request_supplement",
        "supplement_received",
        "issue_result",
        "return_result",
    ]
    steps = [step_message(CODE, s, "G12").payload() for s in record.ordered_steps()]
    assert [s["TrangThai"] for s in steps] == [1, 2, 4, 5, 4, 9, 10]
    assert steps[0]["NguoiXuLy"] == "Người nộp hồ sơ"
    assert steps[2]["NguoiXuLy"] == "Hệ thống"
    assert steps[3]["NoiDungXuLy"] == "Yêu cầu bổ sung hồ sơ: Thiếu bản sao"
    assert steps[1]["ThoiDiemXuLy"] == "20261127100000" and steps[1]["PhongBanXuLy"] == "G12"
    assert all(step_errors(s) == [] for s in steps)


def test_an_electronic_dossier_received_straight_into_processing_counts_as_received() -> None:
    at = T0 + timedelta(minutes=5)
    record = record_of(
        submitted(), step("receive", DossierState.IN_PROCESSING, DossierState.SUBMITTED, at)
    )
    payload = dossier_message(record).payload()
    assert payload["TrangThaiHoSo"] == 4 and payload["NgayTiepNhan"] == "20261127090500"


def test_steps_arriving_out_of_order_are_sent_in_time_order() -> None:
    later = step(
        "start_processing",
        DossierState.IN_PROCESSING,
        DossierState.RECEIVED,
        T0 + timedelta(hours=2),
    )
    earlier = step(
        "receive", DossierState.RECEIVED, DossierState.SUBMITTED, T0 + timedelta(hours=1)
    )
    record = record_of(submitted(), later, earlier)
    assert [s.action for s in record.ordered_steps()] == ["submit", "receive", "start_processing"]
    assert dossier_message(record).state == 4  # the latest step in time, not in arrival


def test_a_record_without_its_submission_cannot_make_a_dossier_message() -> None:
    record = record_of(None, step("receive", DossierState.RECEIVED, DossierState.SUBMITTED, T0))
    with pytest.raises(ValueError, match="submission"):
        dossier_message(record)


def test_an_over_long_note_is_cut_to_the_portal_limit() -> None:
    long = step("refuse", DossierState.STOPPED, DossierState.IN_PROCESSING, T0, note="x" * 5000)
    fact = messages.step_fact(long, "e1")
    assert fact is not None
    payload = step_message(CODE, fact, "G12").payload()
    assert len(payload["NoiDungXuLy"]) == messages.CONTENT_MAX_LENGTH
    assert step_errors(payload) == []
