"""What the webhook registry refuses (pure); the API answers each with a problem."""

from __future__ import annotations

from collections.abc import Sequence


class WebhookError(Exception):
    """A request of an agency the registry refuses."""


class SubscriptionNotFound(WebhookError):
    """No such subscription of this agency (another agency's is not found either)."""


class TooManySubscriptions(WebhookError):
    """The agency has `MAX_SUBSCRIPTIONS_PER_AGENCY` subscriptions already."""


class UnknownEventTypes(WebhookError):
    def __init__(self, unknown: Sequence[str]) -> None:
        super().__init__(", ".join(unknown))
        self.unknown = list(unknown)


class ReplayInFuture(WebhookError):
    """A replay must start from a moment in the past."""


class ReplayNotFound(WebhookError):
    """No such replay job of this subscription."""


class TooManyReplays(WebhookError):
    """The agency has `webhook_max_replays_per_agency` replays running already."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} replays may run at once per agency")
        self.limit = limit


class SecretUnreadable(WebhookError):
    """The subscription's signing secret cannot be opened (sealed with a key no longer
    configured, or damaged): it stays paused until the secret is rotated."""
