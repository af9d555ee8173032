"""What can go wrong when the portal asks intake for something (raised by the intake client,
mapped to Vietnamese pages by the routes)."""

from __future__ import annotations

from typing import Any


class PortalError(Exception):
    """Base of the portal's errors."""


class IntakeUnavailable(PortalError):
    """Intake did not answer, timed out or failed (5xx): try again later."""


class NotFound(PortalError):
    """No such procedure, or no dossier with this code and secret."""


class TooManyRequests(PortalError):
    """Intake throttled the citizen (too many requests or wrong secrets)."""

    def __init__(self, retry_after_seconds: int | None) -> None:
        super().__init__("too many requests")
        self.retry_after_seconds = retry_after_seconds


class SubmissionRefused(PortalError):
    """Intake refused a submission; `problem` is its RFC 9457 body."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(problem.get("title") or f"refused ({status})")
        self.status = status
        self.problem = problem

    @property
    def reason(self) -> str:
        """`urn:dvc:problem:<reason>` -> `<reason>` (empty for other problem types)."""
        problem_type = str(self.problem.get("type") or "")
        prefix = "urn:dvc:problem:"
        return problem_type.removeprefix(prefix) if problem_type.startswith(prefix) else ""


class ActionRefused(SubmissionRefused):
    """Intake refused a citizen's action on a dossier (a state conflict, invalid files, ...)."""


class FiguresUnavailable(PortalError):
    """Reporting did not answer the public figures (or refused the year)."""
