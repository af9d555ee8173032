"""Who a staff token identifies: the roles of the platform, the `Staff` behind a request, and the
errors of verification."""

from collections.abc import Sequence
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class Role(StrEnum):
    officer = "officer"
    unit_head = "unit_head"
    counter_officer = "counter_officer"
    admin = "admin"
    # A service's own narrow credential (no person): intake reading issued results from
    # processing, in a token whose audience is processing's alone (`dvc-processing`).
    result_reader = "result_reader"


# A verifier accepts tokens whose `aud` names any of these: the platform's (staff, whom every
# service serves) or the service's own (service-to-service tokens, good at that service only).
Audience = str | Sequence[str]


class Staff(BaseModel):
    """The authenticated staff member behind a request."""

    model_config = ConfigDict(frozen=True)

    subject: str
    name: str | None = None
    unit: str | None = None  # unit code, e.g. "G12"; admins may have none
    roles: frozenset[Role]

    def has_role(self, *roles: Role | str) -> bool:
        """True when the staff holds at least one of `roles`."""
        return any(role in self.roles for role in roles)

    @property
    def is_admin(self) -> bool:
        return Role.admin in self.roles


class AuthenticationError(Exception):
    """A bearer token was refused. `reason` is a short, metric-friendly code."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail or reason


class KeysUnavailable(Exception):
    """The identity provider's keys could not be fetched: the token is neither accepted nor
    refused (503, not 401)."""
