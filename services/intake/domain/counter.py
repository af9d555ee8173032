"""What a counter officer may record (pure): dossiers of their own unit only, and a receipt time
neither in the future nor further back than the configured window.

A paper dossier's receipt time dates its code (Circular 01/2018 art. 19) and starts its deadline
(DOMAIN §4), so backdating it moves both; the window (`counter_backdate_days`) allows recording
after a weekend what arrived by post on Friday, not rewriting history.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from services.intake.domain.errors import BackdatedReceipt, FutureReceipt, OtherUnitsDossier
from shared.contracts.catalogue import Procedure
from shared.runtime.auth import Staff


def check_recording_unit(officer: Staff, procedure: Procedure) -> None:
    """An officer records dossiers only for the unit that receives the procedure (its lead unit
    in the catalogue); an administrator for any unit."""
    if officer.is_admin or (officer.unit is not None and officer.unit == procedure.unit_code):
        return
    raise OtherUnitsDossier(
        f"Procedure {procedure.code} is received by unit {procedure.unit_code}; "
        f"your unit is {officer.unit or 'not set'}. "
        "Thủ tục này do đơn vị khác tiếp nhận.",
        procedure_unit=procedure.unit_code,
    )


def check_receipt_time(received_at: datetime, now: datetime, backdate_days: int) -> None:
    """Not in the future, and not more than `backdate_days` days before `now`."""
    if received_at > now:
        raise FutureReceipt("received_at cannot be in the future.")
    earliest = now - timedelta(days=backdate_days)
    if received_at < earliest:
        raise BackdatedReceipt(
            f"received_at may be at most {backdate_days} day(s) in the past "
            f"(not before {earliest.isoformat(timespec='seconds')}). "
            f"Thời điểm tiếp nhận chỉ được lùi tối đa {backdate_days} ngày.",
            earliest=earliest.isoformat(timespec="seconds"),
            backdate_days=backdate_days,
        )
