"""Why a report cannot be given (the API answers each as an RFC 9457 problem)."""

from __future__ import annotations


class ReportingError(Exception):
    """A request reporting refuses; `detail` says why, in English."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidPeriod(ReportingError):
    """The period asked for is not a quarter, nor a date range of at most ten years."""


class NotAllowed(ReportingError):
    """The reader may not see the scope asked for (unit heads see their own unit only)."""
