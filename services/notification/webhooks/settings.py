"""Settings of the webhook subscriptions (mixed into `NotificationSettings`: environment variables
`DVC_NOTIFICATION_WEBHOOK_<FIELD>`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from services.notification.webhooks.adapters.sealing import DEV_SEALING_KEY
from services.notification.webhooks.domain.subscriptions import RETRY_SCHEDULE_SECONDS
from services.notification.webhooks.domain.urls import UrlRules


class WebhookSettings(BaseSettings):
    webhook_enabled: bool = True
    # Fernet keys sealing the signing secrets at rest (first seals, all open); see `sealing`.
    webhook_sealing_keys: SecretStr = SecretStr(DEV_SEALING_KEY)
    # Plain http, any port and private, loopback or link-local subscriber addresses; allowed
    # only in development and tests (refused in production). Otherwise https on port 443, and
    # also 80 outside production (`url_rules`).
    webhook_allow_private_urls: bool = False
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_workers_per_subscription: int = Field(default=16, ge=1, le=64)
    webhook_retry_schedule_seconds: list[float] = Field(
        default_factory=lambda: list(RETRY_SCHEDULE_SECONDS),
        min_length=1,
        description="Delays after each failed attempt; the default spans about 27.6 hours",
    )
    # Consecutive failures that pause a subscription, and the time before a probe attempt.
    webhook_breaker_failures: int = Field(default=20, ge=1)
    webhook_breaker_probe_seconds: float = Field(default=300.0, gt=0)
    webhook_max_queued_per_subscription: int = Field(default=10_000, ge=10)
    webhook_max_connections: int = Field(default=200, ge=1)
    # How often the registry and the pending deliveries (redrives, replays, other replicas'
    # partitions) are looked up again.
    webhook_refresh_seconds: float = Field(default=10.0, gt=0)
    webhook_batch_size: int = Field(default=500, ge=1)
    # Replays one agency may have running at once (over all replicas); more are answered 429.
    webhook_max_replays_per_agency: int = Field(default=2, ge=1)
    public_stream_batch_size: int = Field(default=1000, ge=1)


def allows_private_urls(settings: Any) -> bool:
    """Development and tests may call local receivers; production never does."""
    return bool(settings.webhook_allow_private_urls) and settings.environment != "production"


def url_rules(settings: Any) -> UrlRules:
    """The subscriber URL rules of the environment (`domain.urls.UrlRules.for_environment`)."""
    return UrlRules.for_environment(
        production=settings.environment == "production", allow_private=allows_private_urls(settings)
    )
