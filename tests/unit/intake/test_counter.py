"""What a counter officer may record: their own unit's dossiers, within the backdating window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.intake.domain.counter import check_receipt_time, check_recording_unit
from services.intake.domain.errors import BackdatedReceipt, FutureReceipt, OtherUnitsDossier
from shared.contracts.catalogue import Procedure
from shared.runtime.auth import Role, Staff

NOW = datetime(2026, 3, 9, 3, 0, tzinfo=UTC)
PROCEDURE = Procedure(
    code="1.004940", name="Đăng ký nhãn hiệu", unit_code="SHTT", unit_name="Cục SHTT",
    field="Sở hữu trí tuệ", level=4,
)  # fmt: skip


def staff(unit: str | None, *roles: Role) -> Staff:
    return Staff(subject="mc.1", unit=unit, roles=frozenset(roles or {Role.counter_officer}))


def test_an_officer_records_for_the_unit_receiving_the_procedure() -> None:
    check_recording_unit(staff("SHTT"), PROCEDURE)


@pytest.mark.parametrize("unit", ["VPB", None, "shtt"])
def test_an_officer_of_another_unit_or_none_is_refused(unit: str | None) -> None:
    with pytest.raises(OtherUnitsDossier) as refused:
        check_recording_unit(staff(unit), PROCEDURE)
    assert refused.value.extensions == {"procedure_unit": "SHTT"}


def test_an_administrator_records_for_any_unit() -> None:
    check_recording_unit(staff(None, Role.admin), PROCEDURE)
    check_recording_unit(staff("VPB", Role.admin, Role.counter_officer), PROCEDURE)


@pytest.mark.parametrize("back", [timedelta(0), timedelta(days=3)])
def test_a_receipt_time_within_the_window_is_accepted(back: timedelta) -> None:
    check_receipt_time(NOW - back, NOW, backdate_days=3)


def test_a_receipt_time_beyond_the_window_is_refused() -> None:
    with pytest.raises(BackdatedReceipt) as refused:
        check_receipt_time(NOW - timedelta(days=3, seconds=1), NOW, backdate_days=3)
    assert refused.value.extensions["backdate_days"] == 3
    assert refused.value.extensions["earliest"] == "2026-03-06T03:00:00+00:00"


def test_a_receipt_time_in_the_future_is_refused() -> None:
    with pytest.raises(FutureReceipt):
        check_receipt_time(NOW + timedelta(seconds=1), NOW, backdate_days=3)


def test_a_zero_window_allows_only_now() -> None:
    check_receipt_time(NOW, NOW, backdate_days=0)
    with pytest.raises(BackdatedReceipt):
        check_receipt_time(NOW - timedelta(minutes=1), NOW, backdate_days=0)
