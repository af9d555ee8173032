"""Erasing the contact details and messages of finished dossiers past retention (pure).

Decree 13/2023 (storage limitation). The notification service keeps, per dossier, the
applicant's name, phone and e-mail (`recipients`), and per message its text and address
(`deliveries`, `inbox`). They are needed while the dossier may still change; once it finished —
not received (3), stopped (8: refused or withdrawn), result returned (10) — and the retention
period after that has passed, `python -m services.notification.citizens.erasure` blanks them.
What stays: which message was sent when, on which channel, with which outcome (the delivery
log the unit answers complaints with).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from shared.contracts.events import DossierState

FINISHED_STATES = frozenset(
    {DossierState.NOT_RECEIVED, DossierState.STOPPED, DossierState.RESULT_RETURNED}
)
# Set on a finished dossier's recipient until its contact details are erased, with the finish
# date: the erasure command's query.
ERASABLE = "erasable"
FINISHED_AT = "finished_at"
DEFAULT_RETENTION_DAYS = 730  # as intake's `personal_data_retention_days` [check]


def retention_cutoff(now: datetime, older_than_days: int) -> datetime:
    if older_than_days < 0:
        raise ValueError("older_than_days must be 0 or more")
    return now - timedelta(days=older_than_days)


def erased_recipient(now: datetime) -> dict[str, Any]:
    """The `$set` replacing a recipient's contact details."""
    return {
        "applicant_name": None,
        "phone": None,
        "email": None,
        "personal_data_erased_at": now,
    }


# The `$set` blanking a delivery's message and address (its status, channel, dates stay).
ERASED_DELIVERY: dict[str, Any] = {
    "address": "",
    "hops": [],
    "title": None,
    "body": "",
    "email_body": None,
    "sms_text": "",
    "last_error": None,
}
ERASED_INBOX_MESSAGE: dict[str, Any] = {"title": None, "body": ""}
